"""decide(): the reconciler's plan from what was read, with no cluster at all.

Each test describes a cluster as a table of reads (the World's keys) and checks the reads
decide asks for, the writes it plans and the events it reports.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fairpilot.api.kinds import DATASET, TRAINING_RUN, Kind
from fairpilot.config import OperatorConfig
from fairpilot.controller.reconcile import (
    CreateJob,
    CreateResource,
    Need,
    Outcome,
    PatchStatus,
    World,
    decide,
)
from fairpilot.references import Resolved, UnresolvedReference

CONFIG = OperatorConfig(artifact_root="file:///artifacts", jobs_image="local")


def dataset(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "census", "namespace": "ml", "uid": "u1", "generation": 1},
        "spec": {"uri": "file:///data/census.csv", **spec},
        "status": status or {},
    }


def job(state: str, name: str = "fp-profile-census-g1", owner: str = "u1") -> dict[str, Any]:
    conditions = {"running": [], "succeeded": [{"type": "Complete", "status": "True"}],
                  "failed": [{"type": "Failed", "status": "True"}]}[state]  # fmt: skip
    return {
        "metadata": {"name": name, "namespace": "ml", "ownerReferences": [{"uid": owner}]},
        "status": {"conditions": conditions},
    }


def plan_for(kind: Kind, world: World, reads: dict[tuple[Any, ...], Any]) -> Outcome:
    """decide() until it has every read it asks for; each read must be in `reads`, once."""
    asked: list[tuple[Any, ...]] = []
    while True:
        try:
            return decide(kind, world, CONFIG)
        except Need as need:
            assert need.key not in asked, f"{need.key} asked twice"
            assert need.key in reads, f"unexpected read {need.key}"
            asked.append(need.key)
            world.knows(need.key, reads[need.key])


def resolved(spec: dict[str, Any]) -> Resolved:
    return Resolved(spec=spec, inputs=[])


def test_a_new_dataset_writes_running_then_creates_its_job() -> None:
    world = World(dataset())
    with pytest.raises(Need) as need:
        decide(DATASET, world, CONFIG)
    assert need.value.key == ("get", "Dataset", "census"), "the body may be stale: read it"
    plan = plan_for(
        DATASET,
        world,
        {
            ("get", "Dataset", "census"): dataset(),
            ("references", "g1"): resolved({"uri": "file:///data/census.csv"}),
        },
    )
    running, create = plan.writes
    assert isinstance(running, PatchStatus) and running.patch["phase"] == "Running"
    assert running.patch["jobName"] == "fp-profile-census-g1"
    assert isinstance(create, CreateJob) and create.name == "fp-profile-census-g1"
    assert create.job["metadata"]["name"] == create.name
    assert plan.events == [("Normal", "Running", "Job fp-profile-census-g1 started")]
    # Asked again with the same World: the same plan (act relies on it).
    assert decide(DATASET, world, CONFIG) == plan


def test_a_stale_body_of_a_finished_resource_plans_nothing() -> None:
    done = {"phase": "Succeeded", "observedGeneration": 1, "jobName": "fp-profile-census-g1"}
    world = World(dataset())  # the event's body, from before the run
    plan = plan_for(DATASET, world, {("get", "Dataset", "census"): dataset(done)})
    assert plan.writes == [] and plan.events == []


def test_a_reference_not_ready_waits_with_one_status_write() -> None:
    waiting = UnresolvedReference("DatasetNotReady", "waiting for Dataset 'census'", waiting=True,
                                  on=("Dataset", "census"))  # fmt: skip
    world = World(dataset())
    plan = plan_for(
        DATASET,
        world,
        {("get", "Dataset", "census"): dataset(), ("references", "g1"): waiting},
    )
    (pending,) = plan.writes
    assert isinstance(pending, PatchStatus) and pending.patch["phase"] == "Pending"
    assert plan.waiting and plan.waiting_on == ("Dataset", "census")
    # The same wait again, on a body that already says so: nothing to write.
    again = World(dataset(pending.patch))
    plan = plan_for(
        DATASET,
        again,
        {("get", "Dataset", "census"): dataset(pending.patch), ("references", "g1"): waiting},
    )
    assert plan.writes == [] and plan.waiting


def test_a_job_that_exists_already_is_adopted_and_its_end_reported() -> None:
    world = World(dataset())
    reads = {
        ("get", "Dataset", "census"): dataset(),
        ("references", "g1"): resolved({"uri": "file:///data/census.csv"}),
    }
    first = plan_for(DATASET, world, reads)
    world.applied = list(first.writes)
    world.created[("Job", "fp-profile-census-g1")] = False  # what act found
    uri = first.writes[0].patch["outputUri"]  # type: ignore[union-attr]
    result = {"rows": 6, "columns": 3, "suggestion": {"target": "income"}, "reports": {}}
    plan = plan_for(
        DATASET,
        world,
        {
            **reads,
            ("adopted job", "fp-profile-census-g1"): job("succeeded"),
            ("json", f"{uri}/result.json"): result,
        },
    )
    assert plan.writes[: len(first.writes)] == first.writes, "what was applied stays first"
    (succeeded,) = plan.writes[len(first.writes) :]
    assert isinstance(succeeded, PatchStatus) and succeeded.patch["phase"] == "Succeeded"
    assert [event[1] for event in plan.events] == ["Running", "Succeeded"]
    assert succeeded.patch["suggestedTarget"] == "income" and succeeded.patch["rows"] == 6


def test_a_job_of_an_earlier_resource_of_the_same_name_is_not_adopted() -> None:
    status = {"jobName": "fp-profile-census-g1", "phase": "Running", "runId": "g1"}
    world = World(dataset(status), job("succeeded", owner="someone-else"))
    plan = plan_for(DATASET, world, {})
    (pending,) = plan.writes
    assert pending.patch["conditions"][-1]["reason"] == "PreviousJobPresent"  # type: ignore[union-attr]
    assert plan.waiting


def test_a_failed_job_reports_the_pods_reason() -> None:
    status = {"jobName": "fp-profile-census-g1", "phase": "Running", "runId": "g1",
              "outputUri": "file:///artifacts/out"}  # fmt: skip
    world = World(dataset(status), job("failed"))
    terminated = {"exitCode": 137, "reason": "OOMKilled", "message": ""}
    plan = plan_for(
        DATASET,
        world,
        {
            ("json", "file:///artifacts/out/error.json"): None,
            ("termination", "fp-profile-census-g1"): terminated,
        },
    )
    (failed,) = plan.writes
    assert isinstance(failed, PatchStatus) and failed.patch["phase"] == "Failed"
    assert "OOMKilled" in failed.patch["message"]
    assert plan.events[0][0] == "Warning"


def test_a_retraining_candidate_that_ends_asks_its_monitor_to_look() -> None:
    """A monitor follows its candidate at a look; the candidate's end asks for one, so that it
    is compared (or refused) at the monitor's next tick, not at its next scheduled look."""
    status = {"jobName": "fp-train-watch-r1-g1", "phase": "Running", "runId": "g1",
              "outputUri": "file:///artifacts/out"}  # fmt: skip
    candidate = {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": "watch-r1", "namespace": "ml", "uid": "t1", "generation": 1,
                     "ownerReferences": [{"apiVersion": "fairpilot.io/v1alpha1",
                                          "kind": "ModelMonitor", "name": "watch", "uid": "m1"}]},
        "spec": {"datasetRef": "recent", "target": "income"},
        "status": status,
    }  # fmt: skip
    world = World(candidate, job("failed", "fp-train-watch-r1-g1", "t1"))
    terminated = {"exitCode": 1, "reason": "Error", "message": "boom"}
    plan = plan_for(
        TRAINING_RUN,
        world,
        {
            ("json", "file:///artifacts/out/error.json"): None,
            ("termination", "fp-train-watch-r1-g1"): terminated,
        },
    )
    failed, woken = plan.writes
    assert isinstance(failed, PatchStatus) and failed.patch["phase"] == "Failed"
    assert isinstance(woken, PatchStatus) and (woken.kind.kind, woken.name) == ("ModelMonitor",
                                                                               "watch")  # fmt: skip
    assert woken.patch == {"wakeRequestedAt": world.now}


def test_a_dataset_pipeline_creates_its_next_step_and_reports_it_once_created() -> None:
    status = {"jobName": "fp-profile-census-g1", "phase": "Running", "runId": "g1",
              "outputUri": "file:///artifacts/out"}  # fmt: skip
    body = dataset(status, target="income", sensitiveFeatures=["sex"], pipeline={"bias": {}})
    world = World(body, job("succeeded"))
    result = {"rows": 6, "columns": 3, "suggestion": {"target": "income"}, "reports": {},
              "columnProfiles": [{"name": c} for c in ("age", "sex", "income")]}  # fmt: skip
    reads = {("json", "file:///artifacts/out/result.json"): result}
    plan = plan_for(DATASET, world, reads)
    kinds = [type(write).__name__ for write in plan.writes]
    assert kinds == ["PatchStatus", "PatchStatus", "CreateResource"]
    step = plan.writes[-1]
    assert isinstance(step, CreateResource) and step.resource["kind"] == "BiasAnalysis"
    assert "PipelineStep" not in [event[1] for event in plan.events], "not created yet"
    world.applied = list(plan.writes)
    world.created[("BiasAnalysis", step.resource["metadata"]["name"])] = True
    plan = plan_for(DATASET, world, reads)
    assert plan.writes == world.applied
    assert plan.events[-1][1] == "PipelineStep"


def test_a_training_run_takes_a_model_version_nobody_has() -> None:
    run = {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": "model", "namespace": "ml", "uid": "t1", "generation": 1},
        "spec": {"datasetRef": "census", "target": "income"},
        "status": {},
    }
    spec = {"modelId": "income", "version": "v1", "target": "income",
            "dataset": {"uri": "file:///data/census.csv"}}  # fmt: skip
    registry = "file:///artifacts/ml/~none/models/income"  # no userId: the ~none folder
    plan = plan_for(
        TRAINING_RUN,
        World(run),
        {
            ("get", "TrainingRun", "model"): run,
            ("references", "g1"): resolved(spec),
            ("names", registry): ["v1", "v2"],
        },
    )
    running = plan.writes[0]
    assert isinstance(running, PatchStatus)
    assert running.patch["modelVersion"] == "v3"
    assert running.patch["modelUri"] == f"{registry}/v3"


def test_the_plan_does_not_change_when_the_clock_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """act() applies a plan's writes across passes; a condition's transition time taken from
    the clock on each pass made the second plan differ from the first (seen under load)."""
    import itertools

    from fairpilot import conditions

    ticks = (f"2026-01-01T00:00:{second:02d}Z" for second in itertools.count())
    monkeypatch.setattr(conditions, "now", lambda: next(ticks))
    world = World(dataset())
    reads = {
        ("get", "Dataset", "census"): dataset(),
        ("references", "g1"): resolved({"uri": "file:///data/census.csv"}),
    }
    first = plan_for(DATASET, world, reads)
    assert decide(DATASET, world, CONFIG) == first


def _job_spec(plan: Outcome) -> dict[str, Any]:
    create = next(w for w in plan.writes if isinstance(w, CreateJob))
    return yaml.safe_load(next(iter(create.config_map["data"].values())))


def test_a_pipeline_stage_job_spec_names_the_pipeline_index() -> None:
    """Every stage of a Dataset's pipeline (the Dataset's own profile too) is told where the
    index page is, so its report links to it; a Dataset without a pipeline is not."""
    body = dataset(pipeline={"bias": {}})
    reads = {
        ("get", "Dataset", "census"): body,
        ("references", "g1"): resolved({"uri": "file:///data/census.csv"}),
    }
    spec = _job_spec(plan_for(DATASET, World(body), reads))
    assert spec["pipelineIndex"] == "file:///artifacts/ml/~none/datasets/census/u1/index.html"
    alone = dataset()
    reads[("get", "Dataset", "census")] = alone
    assert "pipelineIndex" not in _job_spec(plan_for(DATASET, World(alone), reads))

    owner = {"apiVersion": "fairpilot.io/v1alpha1", "kind": "Dataset", "name": "census",
             "uid": "u1"}  # fmt: skip
    run = {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {
            "name": "census-train",
            "namespace": "ml",
            "uid": "t1",
            "generation": 1,
            "ownerReferences": [owner],
        },
        "spec": {"target": "income", "datasetRef": "census"},
        "status": {},
    }
    train_reads: dict[tuple[Any, ...], Any] = {
        ("get", "TrainingRun", "census-train"): run,
        ("references", "g1"): resolved(
            {"target": "income", "modelId": "census-train", "dataset": {"uri": "file:///d"}}
        ),
        ("names", "file:///artifacts/ml/~none/models/census-train"): [],
        ("get", "Dataset", "census"): body,
    }
    spec = _job_spec(plan_for(TRAINING_RUN, World(run), train_reads))
    assert spec["pipelineIndex"] == "file:///artifacts/ml/~none/datasets/census/u1/index.html"
    # An owner reference to a Dataset made again under that name (another uid): no index.
    again = {**body, "metadata": {**body["metadata"], "uid": "u2"}}
    train_reads[("get", "Dataset", "census")] = again
    assert "pipelineIndex" not in _job_spec(plan_for(TRAINING_RUN, World(run), train_reads))
