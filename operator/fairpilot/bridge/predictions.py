"""The bridge's prediction half: records on ModelMonitors' topics -> windows, at least once.

A consumer group of its own (`<group id>-predictions`) reads the topics the monitors with a
Kafka source name (`spec.kafka.topic`; none: it does not run). Each record is checked
(`PredictionRecord`), routed to the monitors that take it (bridge/index.py) or dead-lettered
with the reason, and put into each monitor's open window of its partition (bridge/windows.py).
A window that closes (by count, by time, or early when the open windows hold too much) is
written as one JSON-lines file into the monitor's records folder (`runs.records_uri`, its
`status.recordsUri`), under a name made of its topic, partition and offsets; then the monitor
is woken (`wake`) so that the window is measured at once rather than at its next look.

Offsets are committed only up to the first record of a window not yet written, so a crash
loses nothing: those records are read again. Records of windows already written are skipped
when read again (the offsets in the folder's file names say which), so none is written twice.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from pydantic import ValidationError

from fairpilot import access, artifacts, metrics
from fairpilot.api.kinds import MODEL_MONITOR, TRAINING_RUN
from fairpilot.backoff import Backoff
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.consumer import Audit, audit_document, report_lag, send_dead_letter
from fairpilot.bridge.inbound import Rejected, decode, invalid
from fairpilot.bridge.index import MonitorIndex, Watcher, no_monitor
from fairpilot.bridge.windows import TopicPartition, Window, WindowKey, Windows, watermark
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.events.payloads import PredictionRecord
from fairpilot.outbox import blocking

log = logging.getLogger(__name__)
# A write the store refused now is tried again a few times before the consumer gives up and
# starts over from the committed offsets (the Bridge restarts it with its own backoff).
WRITE_RETRY = Backoff(first=0.5, limit=4.0)
WRITE_TRIES = 4
RELIST_SECONDS = 60.0  # with no monitor to read for, the monitors are listed again this often
MISS_RELIST_SECONDS = 1.0  # a record no monitor takes lists them again, at most this often
POLL_MS = 500  # how long one fetch waits: also how often windows are checked for their time

# (namespace, name) of a ModelMonitor whose window was just written.
Wake = Callable[[str, str], None]


def parse_record(value: bytes | None, limit: int) -> PredictionRecord:
    """The record, or Rejected with the reason (decode's, InvalidName, InvalidPayload)."""
    data = decode(value, limit, walk=False)
    try:
        return PredictionRecord.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, ("model_id",)) from None


def parse_all(values: list[bytes | None], limit: int) -> list[PredictionRecord | Rejected]:
    found: list[PredictionRecord | Rejected] = []
    for value in values:
        try:
            found.append(parse_record(value, limit))
        except Rejected as rejected:
            found.append(rejected)
        except Exception as exc:  # a record the checks were not written for: no poison pill
            log.exception("unexpected error while reading a prediction record")
            found.append(Rejected("InternalError", f"{type(exc).__name__}: {exc}"))
    return found


def window_lines(records: list[PredictionRecord], label: str, prediction: str) -> bytes:
    """A window as JSON lines, one object per record: its features at the top level, the
    prediction under `prediction` (the monitor's predictionColumn, else "prediction"), the label
    under `label` (the TrainingRun's target), and record_id and timestamp unless a feature has
    that name."""
    lines = []
    for record in records:
        row: dict[str, Any] = dict(record.features)
        if record.record_id is not None and "record_id" not in row:
            row["record_id"] = record.record_id
        if record.timestamp is not None and "timestamp" not in row:
            row["timestamp"] = record.timestamp
        if record.prediction is not None:
            row[prediction] = record.prediction
        if record.label is not None:
            row[label] = record.label
        lines.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_window(
    uri: str,
    name: str,
    records: list[PredictionRecord],
    label: str,
    prediction: str,
    trusted: str | None = None,
) -> str:
    """One window file (atomically on a disk: a reader never sees half of it), as the stages
    write: every folder below `trusted` (the namespace's artifact root) is opened without
    following a link, the file made under a temporary name exclusively, then renamed."""
    data = window_lines(records, label, prediction)
    store = artifacts.ArtifactStore(uri, trusted=trusted)
    return store.write_bytes(name, data, "application/x-ndjson")


class PredictionConsumer:
    def __init__(
        self,
        config: BridgeConfig,
        cluster: Cluster,
        producer: Any,
        operator: OperatorConfig,
        *,
        pool: Executor | None = None,
        wake: Wake | None = None,
        audit: Audit | None = None,
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.producer = producer
        self.pool = pool
        self.wake = wake
        self.audit = audit
        self.index = MonitorIndex(config, operator)
        self.group_id = f"{config.group_id}-predictions"
        self.windows = Windows(config.predictions_buffer_bytes)
        self.consumer: Any = None
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()  # one batch (or a rebalance) at a time
        self._listed_at = float("-inf")
        self._consumed: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    # -- the monitors ------------------------------------------------------------------------
    def notify(self, body: dict[str, Any], event_type: str | None) -> None:
        """A change of a FairPilot resource (the Bridge passes every one on)."""
        if self.index.update(body, event_type):
            self._changed.set()

    def _list(self, namespace: str) -> list[dict[str, Any]]:
        group, version = MODEL_MONITOR.api_version.split("/")
        listing = self.cluster.custom.list_namespaced_custom_object(
            group, version, namespace, MODEL_MONITOR.plural, _preload_content=False
        )
        return Cluster._json(listing).get("items") or []

    async def refresh(self) -> None:
        """List the monitors of the bridge's namespaces: the index from the API itself."""
        since = self.index.mark()
        self._listed_at = time.monotonic()
        listed: list[dict[str, Any]] = []
        for namespace in sorted(self.config.namespaces()):
            listed += await blocking(self.pool, self._list, namespace)
        if self.index.replace(listed, since):
            self._changed.set()

    async def _resolve(self) -> None:
        """Look up the TrainingRuns of monitors the index has no model id or target for."""
        wanted = self.index.runs_to_look_up()
        if not wanted:
            return
        runs = await asyncio.gather(
            *(blocking(self.pool, self.cluster.get, TRAINING_RUN, ns, name) for ns, name in wanted)
        )
        for (namespace, name), run in zip(wanted, runs, strict=True):
            self.index.learn_run(namespace, name, run)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled: idle while no monitor reads Kafka, else consume. An error ends it
        (the Bridge starts it again, and it reads on from the committed offsets)."""
        await self.refresh()
        while True:
            if not self.index.subscription():
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), RELIST_SECONDS)
                except TimeoutError:
                    await self.refresh()
                continue
            await self._consume()

    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer

        config = self.config
        self.windows = Windows(config.predictions_buffer_bytes)
        self._consumed, self._committed = {}, {}
        consumer = self.consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=config.session_timeout_ms,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
            max_poll_interval_ms=config.max_poll_interval_ms,
            max_poll_records=config.predictions_batch_size,
            fetch_max_wait_ms=config.fetch_max_wait_ms,
            **config.client_options(),
        )
        listener = _rebalance_listener(self)
        try:
            await consumer.start()
            topics = self.index.subscription()
            consumer.subscribe(sorted(topics), listener=listener)
            log.info("reading prediction records from %s", ", ".join(sorted(topics)))
            while True:
                wanted = self.index.subscription()
                if not wanted:
                    async with self._lock:  # no monitor left: what it held is let go
                        await self._windows_due()
                        await self._commit()
                    return
                if wanted != topics:
                    topics = wanted
                    consumer.subscribe(sorted(topics), listener=listener)
                    log.info("reading prediction records from %s", ", ".join(sorted(topics)))
                batches = await consumer.getmany(
                    timeout_ms=POLL_MS, max_records=config.predictions_batch_size
                )
                fetched = time.monotonic()
                async with self._lock:
                    await self._handle(batches, fetched)
                    await self._windows_due()
                    await self._commit()
                self._gauges()
                await report_lag(consumer)
        finally:
            self.consumer = None
            await consumer.stop()
            metrics.PREDICTION_WINDOWS_OPEN.set(0)
            metrics.PREDICTION_BUFFERED_BYTES.set(0)

    async def _handle(self, batches: dict[Any, list[Any]], fetched: float) -> None:
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        # A partition taken away between the fetch and now is another consumer's.
        records = [r for tp, items in batches.items() if tp in assigned for r in items]
        if not records:
            return
        for topic, count in collections.Counter(r.topic for r in records).items():
            metrics.PREDICTIONS_CONSUMED.labels(topic).inc(count)
        limit = self.config.max_message_bytes
        parsed = await blocking(self.pool, parse_all, [r.value for r in records], limit)
        await self._resolve()
        routes = self._route(records, parsed)
        missed = any(isinstance(found, list) and not found for found in routes)
        if (
            missed
            and self._listed_at < fetched
            and (time.monotonic() - self._listed_at >= MISS_RELIST_SECONDS)
        ):
            # A monitor made a moment ago may not have reached the bridge through the watch.
            await self.refresh()
            await self._resolve()
            routes = self._route(records, parsed)
        await self._learn_watermarks(records, routes)
        closed: list[Window] = []
        rejected: list[tuple[Any, Rejected]] = []
        now = time.monotonic()
        for record, found, result in zip(records, routes, parsed, strict=True):
            tp = (record.topic, record.partition)
            self._consumed[tp] = max(self._consumed.get(tp, 0), record.offset + 1)
            if isinstance(found, Rejected):
                rejected.append((record, found))
                continue
            assert isinstance(result, PredictionRecord)
            if not found:
                rejected.append((record, no_monitor(result, record.topic)))
                continue
            size = len(record.value or b"")
            for watcher in found:
                closed += self.windows.add(
                    (watcher.key, record.topic, record.partition),
                    record.offset,
                    result,
                    size,
                    records=watcher.window_records,
                    seconds=watcher.window_seconds,
                    now=now,
                )
        await asyncio.gather(*(self._dead_letter(record, why) for record, why in rejected))
        await self._write(closed)

    def _route(
        self, records: list[Any], parsed: list[PredictionRecord | Rejected]
    ) -> list[list[Watcher] | Rejected]:
        routes: list[list[Watcher] | Rejected] = []
        for record, result in zip(records, parsed, strict=True):
            if isinstance(result, Rejected):
                routes.append(result)
                continue
            try:
                routes.append(self.index.route(result, record.topic))
            except Rejected as rejected:
                routes.append(rejected)
        return routes

    async def _learn_watermarks(
        self, records: list[Any], routes: list[list[Watcher] | Rejected]
    ) -> None:
        """What each monitor's folder holds of the partitions met, before any record is added."""
        unknown: dict[str, tuple[Watcher, set[WindowKey]]] = {}
        for record, found in zip(records, routes, strict=True):
            if isinstance(found, Rejected):
                continue
            for watcher in found:
                key = (watcher.key, record.topic, record.partition)
                if not self.windows.knows(key):
                    unknown.setdefault(watcher.records_uri, (watcher, set()))[1].add(key)
        if not unknown:
            return
        listings = await asyncio.gather(
            *(blocking(self.pool, artifacts.names, uri) for uri in unknown)
        )
        for (_, keys), names in zip(unknown.values(), listings, strict=True):
            for key in keys:
                self.windows.learn(key, watermark(names, key[1], key[2]))

    async def _windows_due(self) -> None:
        def limits(key: Any) -> tuple[int, float] | None:
            watcher = self.index.get(key)
            return (watcher.window_records, watcher.window_seconds) if watcher else None

        closed = self.windows.retune(limits)
        closed += self.windows.due(time.monotonic())
        await self._write(closed)

    async def _write(self, closed: list[Window]) -> None:
        """Write the windows: those of one monitor and partition in order (its watermark must
        never pass a window not written), different ones at once."""
        chains: dict[WindowKey, list[Window]] = {}
        for window in closed:
            chains.setdefault(window.key, []).append(window)

        async def chain(windows: list[Window]) -> None:
            for window in windows:
                await self._write_one(window)

        await asyncio.gather(*(chain(windows) for windows in chains.values()))

    async def _write_one(self, window: Window) -> None:
        watcher = self.index.get(window.monitor)
        if watcher is None:  # deleted (or no longer reading Kafka) meanwhile
            self.windows.written(window)
            return
        items = [item for _, item in window.items]
        label, prediction = self.index.label_column(watcher), watcher.prediction_column
        trusted = access.artifact_root(self.index.operator, watcher.namespace)
        for attempt in range(WRITE_TRIES):
            try:
                await blocking(
                    self.pool, write_window, watcher.records_uri, window.name, items, label,
                    prediction, trusted,
                )  # fmt: skip
                break
            except Exception as exc:
                metrics.FAILED.labels("window").inc()
                if attempt + 1 == WRITE_TRIES:
                    raise
                delay = WRITE_RETRY.delay(attempt)
                log.warning(
                    "writing %s under %s failed (%s); retrying in %.1f s",
                    window.name, watcher.records_uri, exc, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
        self.windows.written(window)
        metrics.PREDICTION_WINDOWS.labels(window.reason or "count").inc()
        metrics.PREDICTIONS_WINDOWED.inc(len(items))
        log.info(
            "ModelMonitor %s/%s: window %s (%d records, closed by %s)",
            watcher.namespace, watcher.name, window.name, len(items), window.reason,
        )  # fmt: skip
        if self.wake is not None:
            try:
                self.wake(watcher.namespace, watcher.name)
            except Exception:  # the monitor still looks on its own schedule
                log.exception("waking ModelMonitor %s/%s failed", watcher.namespace, watcher.name)

    async def _dead_letter(self, record: Any, rejected: Rejected) -> None:
        await send_dead_letter(self.producer, self.config.topics.dead_letter, record, rejected)
        if self.audit is not None:
            source = f"{record.topic}/{record.partition}/{record.offset}"
            limit = self.config.max_message_bytes
            self.audit(f"in:{source}", audit_document(record, "dead-lettered", rejected, limit))

    async def _commit(self) -> None:
        from aiokafka import TopicPartition as KafkaPartition
        from aiokafka.errors import CommitFailedError, IllegalStateError

        assert self.consumer is not None
        assigned = self.consumer.assignment()
        offsets = {
            KafkaPartition(topic, partition): offset
            for (topic, partition), offset in self.windows.commits(self._consumed).items()
            if self._committed.get((topic, partition)) != offset
            and KafkaPartition(topic, partition) in assigned
        }
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions away: whoever has them now reads the records of
            # the windows not written again, and skips those written.
            metrics.FAILED.labels("commit").inc()
            log.warning("prediction offsets not committed (%s); they will be read again", exc)
            return
        for tp, offset in offsets.items():
            self._committed[(tp.topic, tp.partition)] = offset

    def revoke(self, partitions: list[TopicPartition]) -> None:
        self.windows.revoke(partitions)
        for tp in partitions:
            self._consumed.pop(tp, None)
            self._committed.pop(tp, None)

    def _gauges(self) -> None:
        metrics.PREDICTION_WINDOWS_OPEN.set(len(self.windows.open))
        metrics.PREDICTION_BUFFERED_BYTES.set(self.windows.buffered)


def _rebalance_listener(owner: PredictionConsumer) -> Any:
    from aiokafka.abc import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: Any) -> None:
            # After the batch in hand is written and committed: then its windows are let go.
            async with owner._lock:
                owner.revoke([(tp.topic, tp.partition) for tp in revoked])

        async def on_partitions_assigned(self, assigned: Any) -> None:
            # What the folders hold of them is listed when their first records come.
            return None

    return Listener()
