"""The bridge as the operator runs it: Kafka consumer, Kafka outbox, warehouse outbox, and the
prediction consumer that fills ModelMonitors' windows (bridge/predictions.py).

It lives in the operator's process and event loop (see README, "Kafka bridge"): Kopf's startup
handler starts it, its cleanup handler stops it, and its event handler passes every change of a
FairPilot resource to `notify`. Either half is optional: Kafka when FAIRPILOT_KAFKA_BOOTSTRAP_
SERVERS is set, the warehouse when MONGO_URI is.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fairpilot.api.kinds import Kind
from fairpilot.backoff import Backoff
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.consumer import Consumer
from fairpilot.bridge.predictions import PredictionConsumer, Wake
from fairpilot.bridge.publisher import KafkaSink
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.outbox import Outbox, blocking
from fairpilot.warehouse.sink import WarehouseSink
from fairpilot.warehouse.store import Warehouse

log = logging.getLogger(__name__)
# Deliveries in flight at once per outbox: each waits on a round trip (the broker's ack, the
# status patch that records it), so more workers overlap more of them (bench/bench_outbox.py).
KAFKA_WORKERS, WAREHOUSE_WORKERS = 32, 4
# Kafka or MongoDB not reachable (yet): the operator runs meanwhile, and its events wait.
RECONNECT = Backoff(first=0.5, limit=15.0)
INDEXES = Backoff(first=1.0, limit=60.0)
AUDIT = Backoff(first=0.5, limit=30.0)
AUDIT_BACKLOG = 100_000  # audit records of received messages held while MongoDB is down


class Bridge:
    def __init__(
        self,
        cluster: Cluster,
        kafka: BridgeConfig | None = None,
        warehouse: Warehouse | None = None,
        *,
        consume: bool = True,
        kafka_workers: int = KAFKA_WORKERS,
        operator: OperatorConfig | None = None,
        threads: int = 48,
        wake: Wake | None = None,
    ) -> None:
        self.cluster = cluster
        self.threads = threads  # for the blocking calls of its outboxes and consumer
        self.pool: ThreadPoolExecutor | None = None
        self.operator = operator  # its data locations bound what a message may point at
        self.kafka = kafka
        self.warehouse = warehouse
        self.consume = consume
        self.kafka_workers = kafka_workers
        self.outboxes: list[Outbox] = []
        self.consumer: Consumer | None = None
        # Prediction records into ModelMonitors' windows (with Kafka, consuming, and the
        # operator's configuration, which says where a monitor's records folder is).
        self.predictions: PredictionConsumer | None = None
        # (namespace, name) -> None: a ModelMonitor's window was written; look at it now. Set
        # by the controller (controller/runtime.py), which is above the bridge.
        self.wake = wake
        self._handler_context: contextvars.Context | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: Any = None
        self._audits: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._connected = asyncio.Event()
        self._kafka_sink: KafkaSink | None = None
        self._kafka_outbox: Outbox | None = None

    def _get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cluster.get(kind, namespace, name) if name else None

    async def start(self) -> None:
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="fairpilot-bridge")
        if self.warehouse is not None:
            self._audits = asyncio.Queue(AUDIT_BACKLOG)
            topics = self.kafka.topics if self.kafka else None
            self.outboxes.append(
                Outbox(
                    WarehouseSink(self.warehouse, self._get, topics, pool=self.pool),
                    self.cluster,
                    workers=WAREHOUSE_WORKERS,
                    pool=self.pool,
                )
            )
            self._tasks.append(asyncio.create_task(self._write_audits(), name="audit"))
            self._tasks.append(asyncio.create_task(self._ensure_indexes(), name="indexes"))
        if self.kafka is not None:
            from aiokafka import AIOKafkaProducer

            self._producer = AIOKafkaProducer(
                acks="all",
                enable_idempotence=self.kafka.idempotent_producer,
                request_timeout_ms=15_000,
                retry_backoff_ms=250,
                **self.kafka.client_options(),
            )
            self._connected = asyncio.Event()
            sink = KafkaSink(
                self._producer,
                self.kafka.topics,
                self._get,
                self._connected,
                self.kafka.client_options(),
            )
            self._kafka_sink = sink
            self._kafka_outbox = Outbox(
                sink, self.cluster, workers=self.kafka_workers, pool=self.pool
            )
            self.outboxes.append(self._kafka_outbox)
            if self.consume:
                self.consumer = Consumer(
                    self.kafka,
                    self.cluster,
                    self._producer,
                    self._audit if self.warehouse is not None else None,
                    operator=self.operator,
                    pool=self.pool,
                )
                if self.operator is not None:
                    self.predictions = PredictionConsumer(
                        self.kafka,
                        self.cluster,
                        self._producer,
                        self.operator,
                        pool=self.pool,
                        wake=self._wake,
                        audit=self._audit if self.warehouse is not None else None,
                    )
            self._tasks.append(asyncio.create_task(self._connect(), name="kafka"))
        for outbox in self.outboxes:
            outbox.start()

    async def _connect(self) -> None:
        # In the background: Kopf waits for startup handlers before it watches anything, and
        # the operator must run (and its events wait in the outbox) while Kafka is down.
        await RECONNECT.retry(
            self._producer.start,
            lambda exc, delay: log.warning(
                "Kafka not reachable yet (%s); retrying in %.0f s", exc, delay
            ),
        )
        if self.predictions is not None:
            # Its own task: it needs the producer (dead letters) but not the read-back.
            self._tasks.append(
                asyncio.create_task(self._consume_predictions(), name="kafka-predictions")
            )
        await self._recover()
        self._connected.set()
        if self.consumer is not None:
            await self._consume()

    async def _recover(self) -> None:
        """Before the first event: what earlier operators sent (see KafkaSink.recover)."""
        assert self.kafka is not None and self._kafka_sink and self._kafka_outbox
        # The broker may go away again meanwhile: nothing is sent until this is done.
        found = await RECONNECT.retry(
            self._kafka_sink.recover,
            lambda exc, delay: log.warning("reading back sent events failed (%s); retrying", exc),
        )
        self._kafka_outbox.recovered(found)
        log.info("read back %d resources' sent events", len(found))

    async def _consume(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        while True:  # run() returns only when it stops; it is started again

            def stopped(exc: Exception, delay: float) -> None:
                name = type(exc).__name__
                log.warning("Kafka consumer stopped (%s: %s); restarting", name, exc)

            await RECONNECT.retry(consumer.run, stopped)

    async def _consume_predictions(self) -> None:
        assert self.predictions is not None
        predictions = self.predictions

        def stopped(exc: Exception, delay: float) -> None:
            name = type(exc).__name__
            log.warning("prediction consumer stopped (%s: %s); restarting", name, exc)

        await RECONNECT.retry(predictions.run, stopped)

    def _wake(self, namespace: str, name: str) -> None:
        # In the context of the operator's handlers (that of the last `notify`): a wake-up that
        # reconciles posts Kubernetes Events through Kopf, which finds its event queue in
        # context variables that the bridge's own tasks do not have. Without one, no handler
        # has handed the bridge a change (a replica standing by for its Kopf peer, which must
        # not reconcile): the monitor's own next look, within a minute, takes the window.
        if self.wake is not None and self._handler_context is not None:
            self._handler_context.run(self.wake, namespace, name)

    async def _ensure_indexes(self) -> None:
        # In the background: MongoDB may be down when the operator starts, which must not
        # hold up the operator (Kopf waits for startup handlers before it watches anything).
        assert self.warehouse is not None
        warehouse = self.warehouse
        await INDEXES.retry(
            lambda: blocking(self.pool, warehouse.ensure_indexes),
            lambda exc, delay: log.warning(
                "warehouse indexes not created yet (%s); retrying", exc
            ),
        )

    def _audit(self, key: str, document: dict[str, Any]) -> None:
        assert self._audits is not None
        try:
            self._audits.put_nowait((key, document))
        except asyncio.QueueFull:
            log.error("audit backlog full: MongoDB has been down too long; dropping %s", key)

    async def _write_audits(self) -> None:
        assert self._audits is not None and self.warehouse is not None
        warehouse = self.warehouse
        while True:
            key, document = await self._audits.get()
            await AUDIT.retry(
                lambda: blocking(self.pool, warehouse.audit, key, document),  # noqa: B023 (awaited here)
                lambda exc, delay: log.warning(
                    "warehouse unavailable (%s); audit retried in %.0f s", exc, delay
                ),
            )

    async def connected(self) -> None:
        """Until Kafka is reached and what earlier operators sent is read back."""
        await self._connected.wait()

    def notify(self, body: dict[str, Any], event_type: str | None) -> None:
        self._handler_context = contextvars.copy_context()
        for outbox in self.outboxes:
            outbox.notify(body, event_type)
        if self.predictions is not None:
            self.predictions.notify(body, event_type)

    async def idle(self, timeout: float) -> bool:
        results = [await outbox.idle(timeout) for outbox in self.outboxes]
        return all(results)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for outbox in self.outboxes:
            await outbox.stop()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
        self._tasks, self.outboxes, self._producer = [], [], None
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
