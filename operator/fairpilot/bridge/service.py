"""The bridge as the operator runs it: Kafka consumer, Kafka outbox, warehouse outbox.

It lives in the operator's process and event loop (see README, "Kafka bridge"): Kopf's startup
handler starts it, its cleanup handler stops it, and its event handler passes every change of a
FairPilot resource to `notify`. Either half is optional: Kafka when FAIRPILOT_KAFKA_BOOTSTRAP_
SERVERS is set, the warehouse when MONGO_URI is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fairpilot.api.kinds import Kind
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.consumer import Consumer
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
    ) -> None:
        self.cluster = cluster
        self.operator = operator  # its data locations bound what a message may point at
        self.kafka = kafka
        self.warehouse = warehouse
        self.consume = consume
        self.kafka_workers = kafka_workers
        self.outboxes: list[Outbox] = []
        self.consumer: Consumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: Any = None
        self._audits: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._connected = asyncio.Event()
        self._kafka_sink: KafkaSink | None = None
        self._kafka_outbox: Outbox | None = None

    def _get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cluster.get(kind, namespace, name) if name else None

    async def start(self) -> None:
        if self.warehouse is not None:
            self._audits = asyncio.Queue(AUDIT_BACKLOG)
            topics = self.kafka.topics if self.kafka else None
            self.outboxes.append(
                Outbox(
                    WarehouseSink(self.warehouse, self._get, topics),
                    self.cluster,
                    workers=WAREHOUSE_WORKERS,
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
            self._kafka_outbox = Outbox(sink, self.cluster, workers=self.kafka_workers)
            self.outboxes.append(self._kafka_outbox)
            if self.consume:
                self.consumer = Consumer(
                    self.kafka,
                    self.cluster,
                    self._producer,
                    self._audit if self.warehouse is not None else None,
                    operator=self.operator,
                )
            self._tasks.append(asyncio.create_task(self._connect(), name="kafka"))
        for outbox in self.outboxes:
            outbox.start()

    async def _connect(self) -> None:
        # In the background: Kopf waits for startup handlers before it watches anything, and
        # the operator must run (and its events wait in the outbox) while Kafka is down.
        delay = 0.5
        while True:
            try:
                await self._producer.start()
                break
            except Exception as exc:
                log.warning("Kafka not reachable yet (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15)
        await self._recover()
        self._connected.set()
        if self.consumer is not None:
            await self._consume()

    async def _recover(self) -> None:
        """Before the first event: what earlier operators sent (see KafkaSink.recover)."""
        assert self.kafka is not None and self._kafka_sink and self._kafka_outbox
        delay = 0.5
        while True:
            try:
                found = await self._kafka_sink.recover()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away again: nothing is sent meanwhile
                log.warning("reading back sent events failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15)
        self._kafka_outbox.recovered(found)
        log.info("read back %d resources' sent events", len(found))

    async def _consume(self) -> None:
        assert self.consumer is not None
        delay = 0.5
        while True:
            try:
                await self.consumer.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Kafka consumer stopped (%s: %s); restarting", type(exc).__name__, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15)

    async def _ensure_indexes(self) -> None:
        # In the background: MongoDB may be down when the operator starts, which must not
        # hold up the operator (Kopf waits for startup handlers before it watches anything).
        assert self.warehouse is not None
        delay = 1.0
        while True:
            try:
                await blocking(self.warehouse.ensure_indexes)
                return
            except Exception as exc:
                log.warning("warehouse indexes not created yet (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)

    def _audit(self, key: str, document: dict[str, Any]) -> None:
        assert self._audits is not None
        try:
            self._audits.put_nowait((key, document))
        except asyncio.QueueFull:
            log.error("audit backlog full: MongoDB has been down too long; dropping %s", key)

    async def _write_audits(self) -> None:
        assert self._audits is not None and self.warehouse is not None
        delay = 0.5
        while True:
            key, document = await self._audits.get()
            while True:
                try:
                    await blocking(self.warehouse.audit, key, document)
                    delay = 0.5
                    break
                except Exception as exc:
                    log.warning("warehouse unavailable (%s); audit retried in %.0f s", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30)

    async def connected(self) -> None:
        """Until Kafka is reached and what earlier operators sent is read back."""
        await self._connected.wait()

    def notify(self, body: dict[str, Any], event_type: str | None) -> None:
        for outbox in self.outboxes:
            outbox.notify(body, event_type)

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
