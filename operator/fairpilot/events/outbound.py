"""The Kafka events every kind sends (its status changes) and the ids they and the seed's
result events carry (user, dataset, model).

Each kind's own result events are its behaviour's (`fairpilot.kinds`), and
`fairpilot.kinds.events_for` puts the two together. Both are plain functions of the resource
(and, through `get`, what it references), so they give the same events with the same payloads
however often they are asked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fairpilot.api import labels as label
from fairpilot.api.kinds import DATASET, TRAINING_RUN, Kind
from fairpilot.api.status import Phase
from fairpilot.conditions import condition_of
from fairpilot.events.payloads import StatusChanged
from fairpilot.events.topics import Topics
from fairpilot.runs import current_run, model_id_of

Get = Callable[[Kind, str, str], dict[str, Any] | None]
ANONYMOUS = "default"  # a resource applied without userId; its artifacts go under default/ too


@dataclass(frozen=True)
class Event:
    """One message to produce; `id` is what the resource records once it is delivered."""

    id: str
    topic: str
    key: str
    payload: dict[str, Any]


def seed_time(stamp: str | None) -> str:
    """`2025-10-10T12:00:00Z` as the seed writes time: `2025-10-10T12:00:00.000000` (UTC)."""
    moment = parse_time(stamp)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds")


def parse_time(stamp: str | None) -> datetime:
    if not stamp:
        return datetime.fromtimestamp(0, UTC)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def user_of(resource: dict[str, Any]) -> str:
    spec = resource.get("spec") or {}
    annotations = resource["metadata"].get("annotations") or {}
    return spec.get("userId") or annotations.get(label.USER_ID) or ANONYMOUS


def dataset_id_of(kind: Kind, resource: dict[str, Any], get: Get) -> str:
    """The seed's dataset_id: the annotation the bridge or pipeline set, else by reference."""
    meta = resource["metadata"]
    known = (meta.get("annotations") or {}).get(label.DATASET_ID)
    if known:
        return known
    spec = resource.get("spec") or {}
    if kind is DATASET:
        return meta["name"]
    if spec.get("datasetRef"):
        dataset = get(DATASET, meta["namespace"], spec["datasetRef"])
        return dataset_id_of(DATASET, dataset, get) if dataset else spec["datasetRef"]
    if spec.get("trainingRunRef"):
        run = get(TRAINING_RUN, meta["namespace"], spec["trainingRunRef"])
        return dataset_id_of(TRAINING_RUN, run, get) if run else ""
    return ""


def model_of(kind: Kind, resource: dict[str, Any], get: Get) -> tuple[str, str]:
    """(model_id, version) of a TrainingRun's model, or of the model an Explanation explained
    (its own status says which: the TrainingRun may have trained another since)."""
    own = resource.get("status") or {}
    if kind is not TRAINING_RUN and own.get("modelId") and own.get("modelVersion"):
        return own["modelId"], own["modelVersion"]
    if kind is not TRAINING_RUN:
        spec = resource.get("spec") or {}
        run = get(TRAINING_RUN, resource["metadata"]["namespace"], spec.get("trainingRunRef", ""))
        if run is None:
            return "", "v1"
        resource = run
    status, spec = resource.get("status") or {}, resource.get("spec") or {}
    model_id = status.get("modelId") or model_id_of(resource)
    return model_id, status.get("modelVersion") or spec.get("version") or "v1"


def _ready_reason(status: dict[str, Any]) -> str | None:
    return (condition_of(status, "Ready") or {}).get("reason")


def status_events(
    kind: Kind, resource: dict[str, Any], topics: Topics, done: Collection[str] = ()
) -> list[Event]:
    """A status event for every phase this run has reached (as far as the status shows)."""
    meta, status = resource["metadata"], resource.get("status") or {}
    generation = int(meta.get("generation") or 1)
    phase = status.get("phase")
    if not phase or status.get("observedGeneration") != generation:
        return []
    run = current_run(status, generation)
    reached: list[tuple[str, str | None]] = []
    if phase == Phase.PENDING:
        reached.append((Phase.PENDING, _transition(status)))
    if status.get("jobName") and status.get("startedAt"):
        reached.append((Phase.RUNNING, status["startedAt"]))
    if phase in (Phase.SUCCEEDED, Phase.FAILED):
        reached.append((phase, status.get("finishedAt") or _transition(status)))
    user = user_of(resource)
    annotations = meta.get("annotations") or {}
    events = []
    for entered, at in reached:
        if f"status/{run}/{entered}" in done:
            continue
        terminal = entered == phase
        payload = StatusChanged(
            event_id=f"status_{meta['uid']}_{run}_{entered.lower()}",
            timestamp=seed_time(at),
            user_id=user,
            kind=kind.kind,
            namespace=meta["namespace"],
            resource=meta["name"],
            uid=meta["uid"],
            generation=generation,
            run_id=run,
            phase=entered,
            reason=_ready_reason(status) if terminal else None,
            message=status.get("message") if terminal else None,
            dataset_id=annotations.get(label.DATASET_ID),
        )
        events.append(
            Event(
                f"status/{run}/{entered}",
                topics.status,
                f"{user}_{meta['name']}",
                payload.to_json(),
            )
        )
    return events


def _transition(status: dict[str, Any]) -> str | None:
    times = [c.get("lastTransitionTime") for c in status.get("conditions") or []]
    return max((t for t in times if t), default=None)
