"""Per-kind behaviour, one class per kind, and the generic functions that dispatch to it.

    project_result(kind, result)            -> the status fields of a succeeded run
    result_conditions(kind, status, result) -> the conditions it sets
    summary_message(kind, status)           -> its `kubectl get -o wide` line
    events_for(kind, resource, topics, get) -> the Kafka events its state calls for
    behaviour(kind).records(...)            -> its warehouse documents (warehouse/store.py)

Each kind's module (`dataset.py`, `bias_analysis.py`, `training_run.py`, `explanation.py`)
holds everything particular to it; `base.py` says what a behaviour is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from fairpilot.api.kinds import BY_KIND, Kind
from fairpilot.api.results import StageResult
from fairpilot.api.status import Phase
from fairpilot.conditions import parse_result
from fairpilot.events.outbound import Event, Get, parse_time, status_events
from fairpilot.events.topics import Topics
from fairpilot.kinds.base import Condition, KindBehaviour, Succeeded
from fairpilot.kinds.bias_analysis import BiasAnalysisBehaviour
from fairpilot.kinds.dataset import DatasetBehaviour
from fairpilot.kinds.explanation import ExplanationBehaviour
from fairpilot.kinds.model_monitor import ModelMonitorBehaviour
from fairpilot.kinds.training_run import TrainingRunBehaviour
from fairpilot.runs import current_run

BEHAVIOURS: dict[str, KindBehaviour] = {
    behaviour.kind.kind: behaviour
    for behaviour in (
        DatasetBehaviour(),
        BiasAnalysisBehaviour(),
        TrainingRunBehaviour(),
        ExplanationBehaviour(),
        ModelMonitorBehaviour(),
    )
}


def behaviour(kind: Kind | str) -> KindBehaviour:
    return BEHAVIOURS[kind if isinstance(kind, str) else kind.kind]


def project_result(kind: Kind, result: StageResult | Mapping[str, Any]) -> dict[str, Any]:
    """The status fields a kind shows, taken from its stage's result.json (parsed by the kind's
    result model; a raw result is parsed here, and one that does not parse raises
    InvalidResult)."""
    parsed = parse_result(kind, result)
    return {"reports": dict(parsed.reports), **behaviour(kind).status(parsed)}


def result_conditions(
    kind: Kind, status: dict[str, Any], result: StageResult | Mapping[str, Any]
) -> list[Condition]:
    """(type, status, reason, message) of the conditions a succeeded stage's result sets.

    status: what project_result made of `result`."""
    return behaviour(kind).conditions(parse_result(kind, result), status)


def summary_message(kind: Kind, status: dict[str, Any]) -> str:
    """The one line `kubectl get -o wide` shows for a finished resource."""
    return behaviour(kind).summary(status)


def _succeeded_run(resource: dict[str, Any]) -> str | None:
    """The current run's id when it succeeded (and the status is of this generation)."""
    meta, status = resource["metadata"], resource.get("status") or {}
    generation = int(meta.get("generation") or 1)
    if status.get("phase") != Phase.SUCCEEDED or status.get("observedGeneration") != generation:
        return None
    return current_run(status, generation)


def result_events(
    kind: Kind, resource: dict[str, Any], topics: Topics, get: Get, done: Collection[str] = ()
) -> list[Event]:
    """The seed's events for a stage whose current run succeeded (none otherwise).

    Events whose ids are in `done` are left out before anything is looked up: a resource that
    has all its events delivered costs no API call however often it changes.
    """
    run = _succeeded_run(resource)
    if run is None:
        return []
    kind_behaviour = behaviour(kind)
    wanted = kind_behaviour.result_event_ids(resource["status"], run)
    if all(event_id in done for event_id in wanted):
        return []
    stamp = int(parse_time(resource["status"].get("finishedAt")).timestamp())
    return kind_behaviour.result_events(Succeeded(resource, run, get), topics, stamp)


def events_for(
    kind: Kind | str,
    resource: dict[str, Any],
    topics: Topics,
    get: Get,
    done: Collection[str] = (),
) -> list[Event]:
    """Every event the resource's current state calls for and `done` lacks, in sending order.

    A plain function of the resource (and, through `get`, what it references), so it gives
    the same events with the same payloads however often it is asked: the outbox sends those
    whose ids are not yet recorded on the resource, and a restart recomputes the same list.
    """
    kind = BY_KIND[kind] if isinstance(kind, str) else kind
    events = status_events(kind, resource, topics, done) + result_events(
        kind, resource, topics, get, done
    )
    return [event for event in events if event.id not in done]
