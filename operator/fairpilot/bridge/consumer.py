"""The inbound half of the bridge: trigger topics -> custom resources, at least once.

Each batch from `getmany` is turned into resources (inbound.plan), the resources are created
(a 409 means a redelivery: nothing new), messages that cannot become resources go to the
dead-letter topic, and only then are the batch's offsets committed. A crash anywhere before the
commit re-delivers the batch, which creates nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

import kubernetes
import urllib3

from fairpilot import metrics
from fairpilot.api.kinds import Kind
from fairpilot.backoff import Backoff
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.inbound import Rejected, Source, decode, plan
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.outbox import blocking

log = logging.getLogger(__name__)
# A create the API server could not take now (an outage, a 429) is retried, never dropped; the
# jitter spreads a batch's retries. The dead-letter topic, likewise, until the broker is back.
CREATE_RETRY = Backoff(first=0.2, limit=10.0, jitter=0.25)
PRODUCE_RETRY = Backoff(first=0.2, limit=10.0)
# Roles in the order a batch is handled: a Dataset from dataset-events exists before the
# triggers in the same batch look it up.
ROLE_ORDER = {"dataset": 0, "bias_trigger": 1, "automl_trigger": 2, "xai_trigger": 3}
HEADER = "fairpilot.dlq."

# (document id, document) -> None: writes one audit record (the warehouse, when there is one).
Audit = Callable[[str, dict[str, Any]], None]


def transient(error: BaseException) -> bool:
    """Worth retrying (the API server is down or busy), as opposed to a refusal of the object."""
    if isinstance(error, kubernetes.client.ApiException):
        return error.status in (0, 408, 429) or error.status >= 500
    return True  # connection errors, timeouts


def api_reason(error: kubernetes.client.ApiException) -> str:
    import json

    if error.body is None:
        return str(error.reason)
    try:
        return str(json.loads(error.body).get("message") or error.reason)
    except (TypeError, ValueError, AttributeError):
        return str(error.reason)


class Consumer:
    def __init__(
        self,
        config: BridgeConfig,
        cluster: Cluster,
        producer: Any,
        audit: Audit | None = None,
        *,
        operator: OperatorConfig | None = None,
        pool: Executor | None = None,
    ) -> None:
        self.pool = pool  # where its blocking calls run (outbox.blocking)
        self.config = config
        self.operator = operator
        self.cluster = cluster
        self.producer = producer
        self.audit = audit
        self.roles = config.routes()
        self._limit = asyncio.Semaphore(config.concurrency)
        self.consumer: Any = None

    # -- reads the plan needs (blocking; run in threads) ----------------------------------
    def _get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cluster.get(kind, namespace, name)

    def _list(self, kind: Kind, namespace: str) -> list[dict[str, Any]]:
        listing = self.cluster.custom.list_namespaced_custom_object(
            kind.api_version.split("/")[0], kind.api_version.split("/")[1], namespace,
            kind.plural, _preload_content=False,
        )  # fmt: skip
        return Cluster._json(listing).get("items") or []

    def _handle_sync(self, record: Any) -> tuple[str, list[tuple[str, bool]]]:
        """('ok', [(kind, created?)]) or raises Rejected / a transient error."""
        role = self.roles[record.topic]
        source = Source(record.topic, record.partition, record.offset)
        try:
            data = decode(record.value, self.config.max_message_bytes)
            resources = plan(
                role, data, source, self.config, self._get, self._list, self.operator
            )
        except (Rejected, kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError):
            raise
        except Exception as exc:
            # Anything else out of these pure functions is a message they were not written
            # for: retrying it would block the partition behind it for ever (a poison pill),
            # so it becomes a dead letter that says what went wrong, and consuming goes on.
            log.exception("%s: unexpected error while reading the message", source)
            raise Rejected("InternalError", f"{type(exc).__name__}: {exc}") from None
        outcome = []
        for resource in resources:
            try:
                created = self.cluster.create_resource(resource)
            except kubernetes.client.ApiException as exc:
                if transient(exc):
                    raise
                raise Rejected(
                    "RefusedByApiServer",
                    f"{resource['kind']} {resource['metadata']['name']}: HTTP {exc.status}: "
                    f"{api_reason(exc)}",
                ) from None
            outcome.append((resource["kind"], created))
        return "ok", outcome

    async def handle(self, record: Any) -> None:
        """One message, until it is a resource or a dead letter (transient errors: retried)."""
        metrics.CONSUMED.labels(record.topic).inc()

        async def create() -> list[tuple[str, bool]] | Rejected:
            async with self._limit:
                try:
                    _, outcome = await blocking(self.pool, self._handle_sync, record)
                except Rejected as rejected:
                    return rejected
            return outcome

        def failed(exc: Exception, delay: float) -> None:
            metrics.FAILED.labels("create").inc()
            log.warning(
                "%s/%s/%s: %s: %s; retrying in %.1f s",
                record.topic, record.partition, record.offset, type(exc).__name__, exc, delay,
            )  # fmt: skip

        result = await CREATE_RETRY.retry(create, failed)
        if isinstance(result, Rejected):
            await self.dead_letter(record, result)
            return
        for kind, created in result:
            metrics.CREATED.labels(kind, "created" if created else "exists").inc()
        self._audit(record, "received", None)

    async def dead_letter(self, record: Any, rejected: Rejected) -> None:
        """The original key and bytes to the dead-letter topic; why, and whence, in headers."""
        await send_dead_letter(self.producer, self.config.topics.dead_letter, record, rejected)
        self._audit(record, "dead-lettered", rejected)

    def _audit(self, record: Any, direction: str, rejected: Rejected | None) -> None:
        if self.audit is None:
            return
        source = f"{record.topic}/{record.partition}/{record.offset}"
        document = audit_document(record, direction, rejected, self.config.max_message_bytes)
        self.audit(f"in:{source}", document)

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        config = self.config
        self.consumer = consumer = AIOKafkaConsumer(
            *self.roles,
            group_id=config.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=config.session_timeout_ms,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
            max_poll_interval_ms=config.max_poll_interval_ms,
            max_poll_records=config.batch_size,
            fetch_max_wait_ms=config.fetch_max_wait_ms,
            **config.client_options(),
        )
        try:
            # Inside the try: a stop during a slow group join must still close the consumer.
            await consumer.start()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=config.batch_size)
                records = [record for items in batches.values() for record in items]
                records.sort(key=lambda r: (ROLE_ORDER[self.roles[r.topic]], r.topic,
                                            r.partition, r.offset))  # fmt: skip
                if records:
                    await asyncio.gather(*(self.handle(record) for record in records))
                    offsets = {tp: items[-1].offset + 1 for tp, items in batches.items() if items}
                    await self._commit(offsets)
                await self._lag()
        finally:
            await consumer.stop()

    async def _commit(self, offsets: dict[Any, int]) -> None:
        from aiokafka.errors import CommitFailedError

        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # A rebalance took the partitions away: whoever has them now re-reads the batch,
            # which only finds the resources made here.
            metrics.FAILED.labels("commit").inc()
            log.warning("offsets not committed (%s); the batch will be re-read", exc)

    async def _lag(self) -> None:
        await report_lag(self.consumer)


async def report_lag(consumer: Any) -> None:
    """fairpilot_kafka_consumer_lag of each partition an aiokafka consumer has."""
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:  # a partition just assigned may have no position yet: skip it this time
            position = await asyncio.wait_for(consumer.position(tp), 0.2)
        except (TimeoutError, Exception):
            continue
        metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - position))


def dead_letter_headers(record: Any, rejected: Rejected) -> list[tuple[str, bytes]]:
    """The record's own headers, then why it was refused and where it came from."""
    # The producer's own headers travel on, except any posing as ours: a dead letter must
    # carry one reason, FairPilot's.
    return [
        *((key, value) for key, value in record.headers or [] if not key.startswith(HEADER)),
        (f"{HEADER}reason", rejected.reason.encode()),
        # Cut on a character boundary, so that the header stays valid UTF-8.
        (f"{HEADER}message", rejected.message.encode()[:4096].decode(errors="ignore").encode()),
        (f"{HEADER}topic", record.topic.encode()),
        (f"{HEADER}partition", str(record.partition).encode()),
        (f"{HEADER}offset", str(record.offset).encode()),
        (f"{HEADER}timestamp", datetime.now(UTC).isoformat().encode()),
    ]


async def send_dead_letter(producer: Any, topic: str, record: Any, rejected: Rejected) -> None:
    """The original key and bytes to the dead-letter topic, until the broker takes them."""
    headers = dead_letter_headers(record, rejected)
    log.warning(
        "%s/%s/%s dead-lettered: %s: %s",
        record.topic, record.partition, record.offset, rejected.reason, rejected.message,
    )  # fmt: skip

    def failed(exc: Exception, delay: float) -> None:
        metrics.FAILED.labels("dead-letter").inc()
        log.warning("dead-letter topic unavailable (%s); retrying in %.1f s", exc, delay)

    await PRODUCE_RETRY.retry(
        lambda: producer.send_and_wait(topic, value=record.value, key=record.key, headers=headers),
        failed,
    )
    metrics.DEAD_LETTERED.labels(rejected.reason).inc()
    metrics.PRODUCED.labels(topic).inc()


def audit_document(
    record: Any, direction: str, rejected: Rejected | None, limit: int
) -> dict[str, Any]:
    """What the warehouse's audit log keeps of a received (or dead-lettered) message."""
    document: dict[str, Any] = {
        "direction": direction,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key else None,
        "at": datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(),
    }
    try:
        payload = decode(record.value, limit)
        if isinstance(payload, dict):
            document |= {
                "payload": payload,
                "event_type": payload.get("event_type"),
                "event_id": payload.get("event_id"),
                "user_id": payload.get("user_id"),
            }
    except Rejected:
        # Not a JSON object we would store (not JSON, too large, too deep for MongoDB):
        # the start of the bytes, as text, tells a person what it was.
        document["value"] = (record.value or b"")[:4096].decode(errors="replace")
    if rejected is not None:
        document |= {"reason": rejected.reason, "message": rejected.message}
    return document
