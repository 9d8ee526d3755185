"""The Kafka events a resource's state calls for: the seed's result events and status changes.

`events_for` is a plain function of the resource (and, through `get`, what it references), so
it gives the same events with the same payloads however often it is asked: the outbox sends
those whose ids are not yet recorded on the resource, and a restart recomputes the same list.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic.alias_generators import to_camel

from fairpilot.api import labels as label
from fairpilot.api.kinds import BIAS_ANALYSIS, BY_KIND, DATASET, TRAINING_RUN, Kind
from fairpilot.api.status import Phase
from fairpilot.conditions import condition_of
from fairpilot.events.payloads import (
    BiasReported,
    FairnessGateVerdict,
    FairnessMeasures,
    ModelFairness,
    ModelUploaded,
    Outbound,
    StatusChanged,
    XaiReported,
)
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
    moment = _parse(stamp)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds")


def _parse(stamp: str | None) -> datetime:
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


# status.fairness' measures (camelCase) -> the events' names (snake_case, as the seed's).
MEASURES = {to_camel(name): name for name in FairnessMeasures.model_fields}


def fairness_of(status: dict[str, Any]) -> ModelFairness | None:
    """A TrainingRun's status.fairness as the events and the warehouse carry it: snake_case,
    the measures keyed by feature (and intersection)."""
    brief = status.get("fairness")
    if not isinstance(brief, dict):
        return None

    def measures(items: list[dict[str, Any]] | None) -> dict[str, FairnessMeasures]:
        return {
            str(m.get("name")): FairnessMeasures(
                **{k: m.get(camel) for camel, k in MEASURES.items()}
            )
            for m in items or []
        }

    return ModelFairness(
        measured=bool(brief.get("measured")),
        message=brief.get("message"),
        split=brief.get("split"),
        rows=brief.get("rows"),
        positive_label=brief.get("positiveLabel"),
        min_group_size=brief.get("minGroupSize"),
        features=measures(brief.get("features")),
        intersections=measures(brief.get("intersections")),
        gates=[
            FairnessGateVerdict(**{k: gate.get(k) for k in FairnessGateVerdict.model_fields})
            for gate in brief.get("gates") or []
        ],
        gates_passed=brief.get("gatesPassed"),
    )


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


def result_event_ids(kind: Kind, resource: dict[str, Any]) -> list[str]:
    """The ids of the seed's events the resource's state calls for (no lookups needed)."""
    meta, status = resource["metadata"], resource.get("status") or {}
    generation = int(meta.get("generation") or 1)
    if status.get("phase") != Phase.SUCCEEDED or status.get("observedGeneration") != generation:
        return []
    run = current_run(status, generation)
    if kind is BIAS_ANALYSIS:
        return [f"bias.reported/{run}"]
    if kind is TRAINING_RUN:
        return [f"model.uploaded/{run}"]
    if kind.kind == "Explanation":
        return [f"xai.reported/{run}/{level}" for level in sorted(status.get("reports") or {})]
    return []


def result_events(
    kind: Kind, resource: dict[str, Any], topics: Topics, get: Get, done: Collection[str] = ()
) -> list[Event]:
    """The seed's event for a stage whose current run succeeded (none otherwise).

    Events whose ids are in `done` are left out before anything is looked up: a resource that
    has all its events delivered costs no API call however often it changes.
    """
    if all(event_id in done for event_id in result_event_ids(kind, resource)):
        return []
    meta, status = resource["metadata"], resource.get("status") or {}
    spec = resource.get("spec") or {}
    run = current_run(status, int(meta.get("generation") or 1))
    user = user_of(resource)
    finished = status.get("finishedAt")
    stamp = int(_parse(finished).timestamp())
    common = {"namespace": meta["namespace"], "resource": meta["name"]}
    reports = status.get("reports") or {}
    if kind is BIAS_ANALYSIS:
        dataset_id = dataset_id_of(kind, resource, get)
        dataset = get(DATASET, meta["namespace"], spec.get("datasetRef", ""))
        dataset_spec = (dataset or {}).get("spec") or {}
        task_type = dataset_spec.get("taskType") or ((dataset or {}).get("status") or {}).get(
            "suggestedTaskType"
        )
        payload: Outbound = BiasReported(
            dataset_id=dataset_id,
            user_id=user,
            bias_report_id=f"{meta['uid']}-{run}",
            has_transformation_report=bool(status.get("reweighingUri")),
            target_column_name=spec.get("target", ""),
            task_type=task_type,
            timestamp=seed_time(finished),
            event_id=f"bias_reported_{meta['name']}_{stamp}",
            bias_detected=status.get("biasDetected"),
            min_disparate_impact=status.get("minDisparateImpact"),
            findings=list(status.get("findings") or []),
            report_uri=next(iter(reports.values()), None),
            transformation_uri=status.get("reweighingUri"),
            **common,
        )
        return [
            Event(f"bias.reported/{run}", topics.bias, f"{user}_{dataset_id}",
                  payload.to_json())
        ]  # fmt: skip
    if kind is TRAINING_RUN:
        model_id, version = model_of(kind, resource, get)
        accuracy = status.get("accuracy") or {}
        fairness = fairness_of(status)
        payload = ModelUploaded(
            event_id=f"model_uploaded_{model_id}_{stamp}",
            timestamp=seed_time(finished),
            user_id=user,
            model_id=model_id,
            dataset_id=dataset_id_of(kind, resource, get),
            version=version,
            framework=status.get("framework") or "other",
            framework_detail=status.get("frameworkDetail"),
            model_type=status.get("modelType"),
            algorithm=status.get("algorithm") or status.get("bestModel"),
            model_size_mb=status.get("modelSizeMb"),
            training_accuracy=accuracy.get("training"),
            validation_accuracy=accuracy.get("validation"),
            test_accuracy=accuracy.get("test"),
            eval_metric=status.get("evalMetric"),
            best_score=status.get("bestScore"),
            validation_passed=status.get("validationPassed"),
            validation_score=status.get("validationScore"),
            test_score=status.get("testScore"),
            production_ready=status.get("productionReady"),
            model_uri=status.get("modelUri"),
            report_uri=next(iter(reports.values()), None),
            fairness=fairness,
            fairness_gates_passed=fairness.gates_passed if fairness else None,
            mitigation=status.get("mitigation"),
            **common,
        )
        return [
            Event(f"model.uploaded/{run}", topics.automl, f"{user}_{model_id}",
                  payload.to_json())
        ]  # fmt: skip
    if kind.kind == "Explanation":
        model_id, version = model_of(kind, resource, get)
        dataset_id = dataset_id_of(kind, resource, get)
        events = []
        for level, uri in sorted(reports.items()):
            payload = XaiReported(
                event_id=f"xai_reported_{model_id}_{level}_{stamp}",
                timestamp=seed_time(finished),
                user_id=user,
                dataset_id=dataset_id,
                model_id=model_id,
                level=level,
                xai_report_id=f"{meta['uid']}-{run}-{level}",
                version=version,
                method=status.get("method"),
                top_feature=status.get("topFeature"),
                model_uri=status.get("modelUri"),
                report_uri=uri,
                **common,
            )
            events.append(
                Event(f"xai.reported/{run}/{level}", topics.xai, f"{user}_{model_id}",
                      payload.to_json())
            )  # fmt: skip
        return events
    return []


def events_for(
    kind: Kind | str,
    resource: dict[str, Any],
    topics: Topics,
    get: Get,
    done: Collection[str] = (),
) -> list[Event]:
    """Every event the resource's current state calls for and `done` lacks, in sending order."""
    kind = BY_KIND[kind] if isinstance(kind, str) else kind
    events = status_events(kind, resource, topics, done) + result_events(
        kind, resource, topics, get, done
    )
    return [event for event in events if event.id not in done]
