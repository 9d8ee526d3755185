"""What a kind does with its stage's result: the base class of the four kinds' behaviours.

Everything that differs between Dataset, BiasAnalysis, TrainingRun and Explanation once their
stage has run lives in one class per kind (`kinds/dataset.py`, ...), not in `if kind == ...`
branches across modules: the status fields and conditions it projects from its result, the
line `kubectl get -o wide` shows, the seed's Kafka events it calls for, the warehouse
documents it writes. The generic halves (parsing the result, the status events every kind
sends, the fields every warehouse document has) are in `kinds/__init__.py`.

A behaviour is a stateless object of plain methods over dicts and parsed results: easy to
test with a hand-made resource, no cluster, no Kafka, no MongoDB.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from fairpilot.api.kinds import Kind
from fairpilot.api.results import StageResult
from fairpilot.events.outbound import Event, Get, seed_time, user_of
from fairpilot.events.topics import Topics

# (type, status, reason, message) of a condition that a succeeded run sets.
Condition = tuple[str, bool | None, str, str]
# (collection, _id, document) of one warehouse upsert.
Write = tuple[str, str, dict[str, Any]]
# (uri) -> the JSON document there, or None.
ReadJson = Callable[[str], dict[str, Any] | None]

# The warehouse's collections (the seed's names where it had them; warehouse/store.py).
DATASETS, BIAS_REPORTS, MODELS, XAI_REPORTS, AUDIT = (
    "datasets",
    "bias_reports",
    "ai_models",
    "xai_reports",
    "audit",
)
# A ModelMonitor's: one document per alert, one per window.
DRIFT_ALERTS, MONITOR_WINDOWS, MODEL_PROMOTIONS = (
    "drift_alerts",
    "monitor_windows",
    "model_promotions",
)
# A document larger than this keeps a summary of the stage's result, not all of it (MongoDB
# refuses documents over 16 MiB; SHAP results can hold thousands of rows).
MAX_RESULT_BYTES = 4 * 2**20


def bounded(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stage's result as a warehouse document carries it: whole, or, over MAX_RESULT_BYTES,
    its fields under 64 KiB each."""
    if result is None:
        return None
    size = len(json.dumps(result, default=str))
    if size <= MAX_RESULT_BYTES:
        return result
    return {k: v for k, v in result.items() if len(json.dumps(v, default=str)) < 64 * 1024}


@dataclass(frozen=True)
class Succeeded:
    """A resource whose current run succeeded, as its events and records read it."""

    resource: dict[str, Any]
    run: str  # its current run's id (runs.current_run)
    get: Get  # reads what it references

    # The resource's own dicts, not copies: behaviours only read them.
    @property
    def meta(self) -> dict[str, Any]:
        return self.resource["metadata"]

    @property
    def spec(self) -> dict[str, Any]:
        return self.resource.get("spec") or {}

    @property
    def status(self) -> dict[str, Any]:
        return self.resource.get("status") or {}

    @property
    def user(self) -> str:
        return user_of(self.resource)

    @property
    def finished(self) -> str:
        """When it finished, as the seed writes time."""
        return seed_time(self.status.get("finishedAt"))

    @property
    def reports(self) -> dict[str, str]:
        return dict(self.status.get("reports") or {})

    @property
    def first_report(self) -> str | None:
        return next(iter(self.reports.values()), None)


class KindBehaviour:
    """One kind's behaviour; the defaults are a kind with no extra fields, conditions, events
    or records."""

    kind: ClassVar[Kind]
    # Its events and warehouse documents name a model (model_id and version).
    names_a_model: ClassVar[bool] = False

    def status(self, result: StageResult) -> dict[str, Any]:
        """The status fields it shows, from its stage's parsed result (besides `reports`)."""
        return {}

    def conditions(self, result: StageResult, status: dict[str, Any]) -> list[Condition]:
        """The conditions a succeeded run sets; `status` is what `status()` made of it."""
        return []

    def summary(self, status: dict[str, Any]) -> str:
        """The one line `kubectl get -o wide` shows for a finished resource."""
        raise NotImplementedError

    def result_event_ids(self, status: dict[str, Any], run: str) -> list[str]:
        """The ids of the seed's events a succeeded run calls for (no lookups needed)."""
        return []

    def result_events(self, done: Succeeded, topics: Topics, stamp: int) -> list[Event]:
        """The seed's events themselves; `stamp` is the finish time in epoch seconds, as the
        seed's event ids carry it."""
        return []

    def records(self, done: Succeeded, common: dict[str, Any], read_json: ReadJson) -> list[Write]:
        """The warehouse documents a succeeded run writes; `common` holds the fields every
        document has (ids, namespace, name, uid, generation, run, times)."""
        return []
