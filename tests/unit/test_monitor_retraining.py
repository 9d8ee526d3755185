"""A ModelMonitor's gated retraining in the reconciler, with no cluster: a trigger creates a
candidate, a trained candidate is scored on the next labelled window, and the gates decide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fairpilot import monitoring
from fairpilot.api.kinds import MODEL_MONITOR
from fairpilot.config import OperatorConfig
from fairpilot.controller.reconcile import CreateResource, Need, Outcome, PatchStatus, World, decide
from fairpilot.events.topics import Topics
from fairpilot.kinds import events_for, project_result
from fairpilot.references import Resolved

CONFIG = OperatorConfig(artifact_root="file:///artifacts", jobs_image="local")
NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
STAMP = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
POLICY = {"triggers": ["DriftDetected", "BiasDrift"], "datasetRef": "recent", "keepVersions": 2}
OUT = "file:///artifacts/out"
DIGEST = "sha256:" + "1" * 64


def monitor(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {"name": "watch", "namespace": "ml", "uid": "m1", "generation": 1,
                     "creationTimestamp": "2026-12-01T12:00:00Z"},
        "spec": {"trainingRunRef": "income", "userId": "ana", "retraining": POLICY,
                 "batches": {"uri": "file:///data/batches/"}, **spec},
        "status": status,
    }  # fmt: skip


def training_run(name: str, **status: Any) -> dict[str, Any]:
    """A TrainingRun; the monitor's own (an owner reference to `watch`) when named as its
    candidates are."""
    owners = [{"kind": "ModelMonitor", "name": "watch", "uid": "m1"}]
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": "ml", "uid": f"u-{name}", "generation": 1,
                     **({"ownerReferences": owners} if name.startswith("watch-r") else {})},
        "spec": {"datasetRef": "adult", "target": "income", "modelId": "income", "version": "v1",
                 "mitigation": {"biasAnalysisRef": "adult-bias"},
                 "validationThreshold": {"metric": "roc_auc", "min": 0.85},
                 "fairness": {"gates": [{"metric": "disparateImpact", "min": 0.8}]}},
        "status": {"observedGeneration": 1, **status},
    }  # fmt: skip


def finished_window(status: dict[str, Any], result: dict[str, Any]) -> tuple[World, dict]:
    running = {"phase": "Running", "observedGeneration": 1, "runId": "g1r2", "window": 3,
               "jobName": "fp-monitor-watch-g1r2", "outputUri": OUT, **status}  # fmt: skip
    job = {"metadata": {"name": "fp-monitor-watch-g1r2", "ownerReferences": [{"uid": "m1"}]},
           "status": {"conditions": [{"type": "Complete", "status": "True"}]}}  # fmt: skip
    world = World(monitor(running), job)
    world.now = STAMP
    return world, {("json", f"{OUT}/result.json"): result}


def window_result(alerts: list[dict[str, Any]], candidate: dict[str, Any] | None = None) -> dict:
    summary = {"window": 3, "rows": 2000, "alerts": sorted({a["type"] for a in alerts})}
    result = {
        "window": 3, "rows": 2000, "judged": True, "labelledRows": 2000, "alerts": alerts,
        "summary": summary, "history": [summary], "reports": {"window": f"{OUT}/report.html"},
        "model": {"uri": "file:///m/v1", "modelId": "income", "version": "v1"},
    }  # fmt: skip
    return result | ({"candidate": candidate} if candidate else {})


def plan_for(world: World, reads: dict[tuple[Any, ...], Any]) -> Outcome:
    while True:
        try:
            return decide(MODEL_MONITOR, world, CONFIG)
        except Need as need:
            assert need.key in reads, f"unexpected read {need.key}"
            world.knows(need.key, reads[need.key])


DRIFT = {"type": "DriftDetected", "feature": "age", "metric": "psi", "value": 0.3,
         "baseline": None, "threshold": 0.2, "message": "age drifted: PSI 0.3"}  # fmt: skip


def test_a_triggering_window_creates_the_candidate_first_then_records_it() -> None:
    world, reads = finished_window({}, window_result([DRIFT]))
    reads[("get", "TrainingRun", "income")] = training_run("income")
    plan = plan_for(world, reads)
    (create,) = plan.writes  # the create alone: decide() runs again once it is made
    assert isinstance(create, CreateResource)
    candidate = create.resource
    assert candidate["kind"] == "TrainingRun" and candidate["metadata"]["name"] == "watch-r1"
    # The watched spec (mitigation, validation threshold, fairness gates, model id) on the
    # policy's Dataset, and the next free version rather than v1 again.
    spec = candidate["spec"]
    assert spec["datasetRef"] == "recent" and "version" not in spec
    assert spec["mitigation"] == {"biasAnalysisRef": "adult-bias"}
    assert spec["fairness"]["gates"] == [{"metric": "disparateImpact", "min": 0.8}]
    assert spec["modelId"] == "income" and spec["validationThreshold"]["min"] == 0.85
    (owner,) = candidate["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ModelMonitor", "m1", True)
    # Created: the same create first, then the window's status naming the candidate.
    world.applied = list(plan.writes)
    world.created[("TrainingRun", "watch-r1")] = True
    plan = plan_for(world, reads)
    assert plan.writes[0] == create
    succeeded = plan.writes[1]
    assert isinstance(succeeded, PatchStatus) and succeeded.patch["phase"] == "Succeeded"
    retraining = succeeded.patch["retraining"]
    assert retraining["candidate"]["name"] == "watch-r1"
    assert retraining["candidate"]["state"] == "Training"
    assert "window 3: DriftDetected: age drifted" in retraining["candidate"]["reason"]
    assert retraining["started"] == 1 and retraining["lastStartedAt"] == STAMP
    assert ("Normal", "RetrainingStarted") in [(e[0], e[1]) for e in plan.events]


def test_no_second_candidate_within_the_cooldown_or_while_one_trains() -> None:
    raised = {"DriftDetected": "age drifted"}
    spec = monitor({})["spec"]
    recent = {"retraining": {"lastStartedAt": "2026-12-02T11:30:00Z", "started": 1}}
    assert monitoring.retrain_reason(spec, recent, raised, NOW, None) is None
    later = NOW + timedelta(minutes=31)
    assert monitoring.retrain_reason(spec, recent, raised, later, None) is not None
    busy = {"retraining": {"candidate": {"name": "watch-r1", "state": "Training"}}}
    assert monitoring.retrain_reason(spec, busy, raised, later, None) is None
    # Not a trigger of the policy: nothing.
    assert monitoring.retrain_reason(spec, {}, {"PerformanceDegraded": "x"}, NOW, None) is None
    # The schedule: due once its next time after the last start has passed.
    nightly = {**spec, "retraining": {"triggers": ["Schedule"], "schedule": "0 3 * * *"}}
    last = {"retraining": {"lastStartedAt": "2026-12-01T03:00:00Z"}}
    assert monitoring.retrain_reason(nightly, last, {}, NOW, None) is not None
    today = {"retraining": {"lastStartedAt": "2026-12-02T03:00:00Z"}}
    assert monitoring.retrain_reason(nightly, today, {}, NOW, None) is None


@pytest.mark.parametrize(
    ("phase", "state"), [("Succeeded", "Comparing"), ("Failed", "Refused"), (None, None)]
)
def test_a_look_follows_the_training_candidate(phase: str | None, state: str | None) -> None:
    candidate = {"name": "watch-r1", "state": "Training", "reason": "r", "startedAt": STAMP}
    status = {"phase": "Succeeded", "observedGeneration": 1, "runId": "g1r2", "window": 3,
              "retraining": {"candidate": candidate, "started": 1}}  # fmt: skip
    run = training_run("watch-r1", phase=phase or "Running", modelVersion="v2",
                       productionReady=True, message="Job failed: OOMKilled")  # fmt: skip
    after = monitoring.trained(status, run, STAMP)
    if state is None:
        assert after is None, "still training"
        return
    assert after is not None
    if state == "Comparing":
        assert after["candidate"]["state"] == "Comparing"
        assert after["candidate"]["modelVersion"] == "v2"
        assert after["candidate"]["productionReady"] is True
    else:
        assert after["candidate"] is None
        (refused,) = after["candidates"]
        assert refused["state"] == "Refused" and "OOMKilled" in refused["message"]


def test_the_next_window_scores_a_trained_candidate_beside_the_watched_model() -> None:
    candidate = {"name": "watch-r1", "state": "Comparing", "reason": "r", "modelVersion": "v2"}
    status = {"retraining": {"candidate": candidate}, "pending": ["file:///data/batches/b.csv"],
              "window": 4}  # fmt: skip
    world = World(monitor(status))
    trained = training_run("watch-r1", phase="Succeeded", modelUri="file:///m/v2",
                           modelDigest=DIGEST)  # fmt: skip
    world.knows(("get", "TrainingRun", "watch-r1"), trained)
    from fairpilot.controller.monitors import models_of_window

    meta = world.resource["metadata"]
    found = models_of_window(world, meta, status)
    assert found == {"candidate": {"uri": "file:///m/v2", "digest": DIGEST}}
    # After a promotion, windows resolve the promoted TrainingRun's model (if still its own).
    promoted = {**status, "watched": {"trainingRun": "watch-r1"}, "retraining": {}}
    assert models_of_window(world, meta, promoted) == {"trainingRun": "watch-r1", "owner": "m1"}


def impostor(run: dict[str, Any]) -> dict[str, Any]:
    """`run` deleted and made again under its name by someone else: no owner reference."""
    return {**run, "metadata": {**run["metadata"], "uid": "other", "ownerReferences": []}}


def test_a_candidate_made_again_by_someone_else_is_neither_scored_nor_followed() -> None:
    from fairpilot.controller.monitors import models_of_window, retraining_at_look

    candidate = {"name": "watch-r1", "state": "Comparing", "reason": "r", "modelVersion": "v2"}
    status = {"retraining": {"candidate": candidate}, "window": 4}
    world = World(monitor(status))
    taken = impostor(training_run("watch-r1", phase="Succeeded", modelUri="file:///evil",
                                  modelDigest=DIGEST))  # fmt: skip
    world.knows(("get", "TrainingRun", "watch-r1"), taken)
    assert models_of_window(world, world.resource["metadata"], status) == {}
    # At the next look it is refused, which frees the monitor to start another.
    plan = Outcome()
    at = datetime.fromisoformat(STAMP.replace("Z", "+00:00"))
    after = retraining_at_look(world, plan, world.resource, status, {}, at)
    assert isinstance(after, dict)
    (refused,) = after["candidates"]
    assert refused["state"] == "Refused" and "no longer this monitor's" in refused["message"]
    assert after.get("candidate") is None
    assert [e[1] for e in plan.events] == ["CandidateRefused"]
    # One still training, replaced: refused the same way, never Comparing.
    training = {"retraining": {"candidate": {**candidate, "state": "Training"}}}
    still = World(monitor(training)).knows(("get", "TrainingRun", "watch-r1"), taken)
    after = retraining_at_look(still, Outcome(), still.resource, training, {}, at)
    assert isinstance(after, dict) and after["candidates"][-1]["state"] == "Refused"


def test_a_promoted_training_run_made_again_by_someone_else_is_not_watched() -> None:
    from fairpilot.references import UnresolvedReference, resolve

    promoted = impostor(training_run("watch-r1", phase="Succeeded", modelUri="file:///evil",
                                     modelDigest=DIGEST, modelVersion="v2"))  # fmt: skip
    lookup = {("TrainingRun", "watch-r1"): promoted}
    window = {"batches": [{"uri": "file:///b/1.csv"}], "trainingRun": "watch-r1", "owner": "m1"}
    with pytest.raises(UnresolvedReference) as refused:
        resolve(MODEL_MONITOR, monitor({})["spec"], lambda k, n: lookup.get((k, n)), "watch",
                window=window)  # fmt: skip
    assert refused.value.reason == "WatchedModelNotOwned" and not refused.value.waiting


def test_a_candidate_s_monitor_label_is_a_valid_label_value() -> None:
    long = monitor({})
    long["metadata"]["name"] = "a" * 62 + "-b"
    made = monitoring.candidate_resource(long, training_run("income"), 1)
    assert made["metadata"]["labels"]["fairpilot.io/monitor"] == "a" * 62


def comparing(ready: bool | None) -> dict[str, Any]:
    candidate = {"name": "watch-r1", "state": "Comparing", "reason": "window 3: DriftDetected",
                 "modelVersion": "v2", "productionReady": ready}  # fmt: skip
    older = [{"name": f"watch-r0{i}", "state": "Refused", "reason": "r"} for i in range(3)]
    return {"retraining": {"candidate": candidate, "candidates": older, "started": 4}}


SCORED = {"measured": True, "metric": "roc_auc", "greaterIsBetter": True, "rows": 2000,
          "version": "v2"}  # fmt: skip


@pytest.mark.parametrize(
    ("ready", "score", "current", "promoted", "words"),
    [
        (True, 0.91, 0.90, True, "promoted: production-ready"),
        (True, 0.895, 0.90, False, "worse by more than the tolerance 0"),
        (False, 0.95, 0.90, False, "not production-ready"),
        (None, 0.95, 0.90, False, "not production-ready"),
    ],
)
def test_a_scored_candidate_is_promoted_only_past_every_gate_and_as_good(
    ready: bool | None, score: float, current: float, promoted: bool, words: str
) -> None:
    scored = SCORED | {"score": score, "currentScore": current}
    world, reads = finished_window(comparing(ready), window_result([], scored))
    plan = plan_for(world, reads)
    *labels, succeeded = plan.writes
    patch = succeeded.patch  # type: ignore[union-attr]
    retraining = patch["retraining"]
    assert retraining["candidate"] is None
    decided = retraining["candidates"][-1]
    assert decided["name"] == "watch-r1" and decided["decidedBy"] == "g1r2"
    assert decided["state"] == ("Promoted" if promoted else "Refused")
    assert words in decided["message"]
    assert (decided["score"], decided["currentScore"], decided["rows"]) == (score, current, 2000)
    promoted_condition = next(c for c in patch["conditions"] if c["type"] == "Promoted")
    assert promoted_condition["status"] == ("True" if promoted else "False")
    if promoted:
        assert patch["watched"] == {"trainingRun": "watch-r1", "modelVersion": "v2",
                                    "promotedAt": STAMP}  # fmt: skip
    else:
        assert "watched" not in patch
    # keepVersions 2: the oldest decided ones beyond two are archived, never the watched one
    # (a promoted candidate is watched: three others, one archived; else four, two archived).
    states = [c["state"] for c in retraining["candidates"]]
    archived = 1 if promoted else 2
    assert states[:archived] == ["Archived"] * archived
    assert "Archived" not in states[archived:]
    # Their TrainingRuns are labelled, so `kubectl get -l fairpilot.io/archived=true` finds them.
    assert [(w.name, w.labels) for w in labels] == [  # type: ignore[union-attr]
        (f"watch-r0{i}", {"fairpilot.io/archived": "true"}) for i in range(archived)
    ]
    # The verdict goes to Kafka (automl-events) with the seed's ids.
    resource = monitor({**world.resource["status"], **patch, "finishedAt": STAMP})
    events = events_for(MODEL_MONITOR, resource, Topics(), lambda *_: None)
    (verdict,) = [e for e in events if e.topic == "automl-events"]
    kind = "promoted" if promoted else "refused"
    assert verdict.id == f"model.{kind}/g1r2/watch-r1"
    assert verdict.payload["event_type"] == f"model.{kind}"
    assert verdict.payload["version"] == "v2" and verdict.payload["previous_version"] == "v1"
    assert verdict.payload["user_id"] == "ana" and verdict.payload["model_id"] == "income"


def test_a_tolerance_lets_a_slightly_worse_candidate_through() -> None:
    spec = {"retraining": {**POLICY, "tolerance": 0.01}}
    candidate = {"name": "watch-r1", "productionReady": True}
    scored = SCORED | {"score": 0.895, "currentScore": 0.90}
    assert monitoring.verdict(spec, candidate, scored, 3)[0]
    lower = SCORED | {"greaterIsBetter": False, "score": 10.05, "currentScore": 10.0}
    assert monitoring.verdict({"retraining": {**POLICY, "tolerance": 0.1}}, candidate, lower, 3)[0]
    assert not monitoring.verdict(spec, candidate, lower | {"score": 10.5}, 3)[0]


def test_an_unmeasured_comparison_keeps_the_candidate_waiting() -> None:
    unmeasured = {"measured": False, "rows": 0, "message": "no labelled rows"}
    world, reads = finished_window(comparing(True), window_result([], unmeasured))
    plan = plan_for(world, reads)
    (succeeded,) = plan.writes
    assert "retraining" not in succeeded.patch  # type: ignore[union-attr]
    projected = project_result(MODEL_MONITOR, window_result([], unmeasured))
    assert "retraining" not in projected


def test_a_resolved_window_of_a_promoted_model_uses_its_training_run() -> None:
    from fairpilot.references import resolve

    promoted = training_run("watch-r1", phase="Succeeded", modelUri="file:///m/v2",
                            modelDigest=DIGEST, modelVersion="v2")  # fmt: skip
    promoted["spec"]["datasetRef"] = "recent"
    dataset = {"metadata": {"name": "recent", "uid": "d"}, "spec": {"uri": "file:///d.csv"},
               "status": {"phase": "Succeeded", "observedGeneration": 1}}  # fmt: skip
    lookup = {("TrainingRun", "watch-r1"): promoted, ("Dataset", "recent"): dataset}
    window = {"batches": [{"uri": "file:///b/1.csv"}], "trainingRun": "watch-r1", "owner": "m1"}
    spec = monitor({})["spec"]
    resolved: Resolved = resolve(MODEL_MONITOR, spec, lambda k, n: lookup.get((k, n)), "watch",
                                 window=window)  # fmt: skip
    assert resolved.spec["model"] == {"uri": "file:///m/v2", "digest": DIGEST}
    assert resolved.spec["reference"] == {"uri": "file:///d.csv"}
