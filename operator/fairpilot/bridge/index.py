"""Which ModelMonitors take which prediction records: the bridge's index of monitors with a
Kafka source (`spec.kafka`), kept from the changes the operator's watch hands the bridge and
from listings of the monitors in the bridge's namespaces.

A record goes to every monitor whose `userId` is the record's `user_id` and whose model id is
its `model_id`, on the monitor's topic (or, with principals, the principal's own copy of it),
in the record's namespace when it names one, else in the bridge's own namespace (as for a
trigger), where its principal, if any, must be allowed to act. A monitor's model id is
`spec.kafka.modelId`, else its TrainingRun's (`spec.modelId`, else the run's name); a window's
label column is the TrainingRun's target.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from fairpilot.api.kinds import MODEL_MONITOR, TRAINING_RUN
from fairpilot.api.monitor import KafkaSource
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.inbound import Rejected, granted
from fairpilot.bridge.windows import MonitorKey
from fairpilot.config import OperatorConfig
from fairpilot.events.payloads import PredictionRecord
from fairpilot.runs import model_id_of, records_uri

log = logging.getLogger(__name__)
PREDICTION_COLUMN = "prediction"  # where a record's prediction goes, unless the monitor says
LABEL_COLUMN = "label"  # where its label goes while the TrainingRun's target is unknown
MISSING_RUN_RETRY = 5.0  # seconds before a TrainingRun not found is looked up again
DEFAULTS = KafkaSource()


@dataclass(frozen=True)
class Watcher:
    """A ModelMonitor that takes prediction records, as the bridge needs it."""

    namespace: str
    name: str
    uid: str
    user_id: str | None
    topic: str
    model_id: str | None  # spec.kafka.modelId; None: the TrainingRun's
    training_run: str
    window_records: int
    window_seconds: int
    prediction_column: str
    records_uri: str

    @property
    def key(self) -> MonitorKey:
        return (self.namespace, self.name, self.uid)


@dataclass(frozen=True)
class RunInfo:
    model_id: str
    target: str | None


def watcher_of(body: dict[str, Any], operator: OperatorConfig) -> Watcher | None:
    """The monitor as a Watcher; None when it reads no Kafka topic (or is not whole yet)."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    kafka = spec.get("kafka")
    if not isinstance(kafka, dict) or not meta.get("uid") or not spec.get("trainingRunRef"):
        return None
    return Watcher(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        user_id=spec.get("userId"),
        topic=kafka.get("topic") or DEFAULTS.topic,
        model_id=kafka.get("modelId"),
        training_run=spec["trainingRunRef"],
        window_records=int(kafka.get("windowRecords") or DEFAULTS.window_records),
        window_seconds=int(kafka.get("windowSeconds") or DEFAULTS.window_seconds),
        prediction_column=spec.get("predictionColumn") or PREDICTION_COLUMN,
        records_uri=records_uri(operator, body),
    )


class MonitorIndex:
    """The monitors that read Kafka, in the bridge's namespaces, and their TrainingRuns."""

    def __init__(self, config: BridgeConfig, operator: OperatorConfig) -> None:
        self.config = config
        self.operator = operator
        self.monitors: dict[tuple[str, str], Watcher] = {}
        self.runs: dict[tuple[str, str], RunInfo | None] = {}  # None: not found
        self._looked: dict[tuple[str, str], float] = {}  # when a run was found missing
        self._stamps: dict[tuple[str, str], int] = {}  # the change that last set a monitor
        self._changes = 0
        self._routes: dict[tuple[str, str, str], list[Watcher]] | None = None
        self.reserved = reserved_topics(config)

    # -- kept up to date -----------------------------------------------------------------------
    def update(self, body: dict[str, Any], event_type: str | None) -> bool:
        """A change the operator's watch saw; whether the topics to read changed."""
        kind, meta = body.get("kind"), body.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        if namespace not in self.config.namespaces():
            return False
        if kind == TRAINING_RUN.kind:
            if event_type == "DELETED":
                self.runs.pop((namespace, name), None)
            else:
                self.runs[(namespace, name)] = _run_info(body)
            self._routes = None
            return False
        if kind != MODEL_MONITOR.kind:
            return False
        before = self.topics()
        self._changes += 1
        self._stamps[(namespace, name)] = self._changes
        watcher = None if event_type == "DELETED" else watcher_of(body, self.operator)
        self._set((namespace, name), watcher)
        return self.topics() != before

    def mark(self) -> int:
        """Before a listing: changes after this mark are newer than what it lists."""
        return self._changes

    def replace(self, listed: list[dict[str, Any]], since: int) -> bool:
        """The monitors a listing found (started at `since`, a `mark`); what the watch told of
        after it started stays. Whether the topics to read changed."""
        before = self.topics()
        found = {}
        for body in listed:
            meta = body.get("metadata") or {}
            if meta.get("namespace") in self.config.namespaces():
                found[(meta["namespace"], meta["name"])] = watcher_of(body, self.operator)
        for key in set(self.monitors) | set(found):
            if self._stamps.get(key, 0) <= since:
                self._set(key, found.get(key))
        return self.topics() != before

    def learn_run(self, namespace: str, name: str, run: dict[str, Any] | None) -> None:
        """A TrainingRun looked up (None: there is none)."""
        self.runs[(namespace, name)] = _run_info(run) if run is not None else None
        if run is None:
            self._looked[(namespace, name)] = time.monotonic()
        self._routes = None

    def runs_to_look_up(self) -> list[tuple[str, str]]:
        """TrainingRuns of monitors that the index does not know (or found missing a while ago)."""
        now = time.monotonic()
        wanted = []
        for watcher in self.monitors.values():
            key = (watcher.namespace, watcher.training_run)
            if key not in self.runs or (
                self.runs[key] is None and now - self._looked.get(key, 0) >= MISSING_RUN_RETRY
            ):
                wanted.append(key)
        return list(dict.fromkeys(wanted))

    def _set(self, key: tuple[str, str], watcher: Watcher | None) -> None:
        if watcher is not None and watcher.topic in self.reserved:
            # The bridge's own topics are no monitor's to read: a monitor on the dead-letter
            # topic would read back every record it dead-letters and send it there again, for
            # ever; on a trigger or event topic it would dead-letter every message twice.
            log.warning(
                "ModelMonitor %s/%s names the bridge's own topic %s: not read for it",
                key[0], key[1], watcher.topic,
            )  # fmt: skip
            watcher = None
        if watcher is None:
            self.monitors.pop(key, None)
        else:
            self.monitors[key] = watcher
        self._routes = None

    # -- asked -------------------------------------------------------------------------------
    def topics(self) -> set[str]:
        """The prediction topics the monitors name."""
        return {watcher.topic for watcher in self.monitors.values()}

    def subscription(self) -> set[str]:
        """Every topic to read: the monitors' and, per principal, `<topic>.<principal>`."""
        topics = self.topics()
        return topics | {f"{t}.{p}" for t in topics for p in self.config.principals}

    def base_topic(self, topic: str) -> tuple[str, str | None]:
        """(the monitors' topic, the principal whose copy it is) of a topic read."""
        if topic in self.topics():
            return topic, None
        for principal in self.config.principals:
            base = topic.removesuffix(f".{principal}")
            if base != topic and base in self.topics():
                return base, principal
        return topic, None

    def get(self, key: MonitorKey) -> Watcher | None:
        watcher = self.monitors.get((key[0], key[1]))
        return watcher if watcher is not None and watcher.uid == key[2] else None

    def model_id(self, watcher: Watcher) -> str | None:
        if watcher.model_id:
            return watcher.model_id
        run = self.runs.get((watcher.namespace, watcher.training_run))
        return run.model_id if run else None

    def label_column(self, watcher: Watcher) -> str:
        run = self.runs.get((watcher.namespace, watcher.training_run))
        return (run.target if run else None) or LABEL_COLUMN

    def namespaces_for(self, record: PredictionRecord, topic: str) -> set[str]:
        """Where the record may find its monitors, or Rejected: the rules a trigger's namespace
        and user id follow (`inbound._namespace`, `inbound._authorise`). A record that names
        no namespace is the bridge's own namespace's, as a trigger is, never every namespace's:
        a monitor in another team's namespace that names the same user and model id would
        otherwise receive its features."""
        config = self.config
        allowed = config.namespaces()
        namespace = record.namespace or config.namespace
        if namespace not in allowed:
            raise Rejected(
                "NamespaceNotAllowed",
                f"namespace {namespace!r} is not one of the allowed: {', '.join(sorted(allowed))}",
            )
        if config.principals:
            _, principal = self.base_topic(topic)
            if namespace not in granted(config, principal, topic, record.user_id):
                raise Rejected(
                    "NamespaceNotAllowed",
                    f"principal {principal!r} may not act in namespace {namespace!r}",
                )
        return {namespace}

    def route(self, record: PredictionRecord, topic: str) -> list[Watcher]:
        """The monitors that take the record (Rejected when it may go to none)."""
        namespaces = self.namespaces_for(record, topic)
        base, _ = self.base_topic(topic)
        if self._routes is None:
            routes: dict[tuple[str, str, str], list[Watcher]] = {}
            for watcher in self.monitors.values():
                model_id = self.model_id(watcher)
                if watcher.user_id and model_id:
                    routes.setdefault((watcher.topic, watcher.user_id, model_id), []).append(
                        watcher
                    )
            self._routes = routes
        found = self._routes.get((base, record.user_id, record.model_id), [])
        return [watcher for watcher in found if watcher.namespace in namespaces]


def reserved_topics(config: BridgeConfig) -> set[str]:
    """The topics the bridge itself reads or writes (triggers and the principals' copies of
    them, events, status, dead letters): never a prediction topic."""
    own = {value for value in config.topics.model_dump().values() if isinstance(value, str)}
    return own | set(config.routes())


def _run_info(run: dict[str, Any]) -> RunInfo:
    return RunInfo(model_id_of(run), (run.get("spec") or {}).get("target"))


def no_monitor(record: PredictionRecord, topic: str) -> Rejected:
    where = f" in namespace {record.namespace!r}" if record.namespace else ""
    return Rejected(
        "NoMonitor",
        f"no ModelMonitor reading {topic} takes model_id {record.model_id!r} of user_id "
        f"{record.user_id[:80]!r}{where} (a monitor's spec.kafka.modelId, else its "
        "TrainingRun's model id, and its spec.userId)",
    )
