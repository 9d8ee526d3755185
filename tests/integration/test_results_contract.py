"""The contract of result.json and error.json (fairpilot.api.results), from both ends.

The stages validate what they write against their kind's result model and refuse a result the
operator could not read; the operator parses what it reads through the same model, and a
result.json that does not parse fails the resource (InvalidResult) naming the field. Fields the
model does not name are kept: a newer stage may add to its result without breaking an older
operator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.jobs import JobRun, run_job

from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET, EXPLANATION, KINDS, TRAINING_RUN, Kind
from fairpilot.api.results import (
    BiasResult,
    ExplanationResult,
    MonitorResult,
    ProfileResult,
    StageError,
    StageResult,
    TrainingResult,
)
from fairpilot.api.status import Phase
from fairpilot.artifacts import ArtifactStore
from fairpilot.conditions import InvalidResult, failure, parse_result
from fairpilot.config import OperatorConfig
from fairpilot.controller.reconcile import Need, Outcome, PatchStatus, World, decide
from fairpilot.errors import JobError
from fairpilot.kinds import project_result, result_conditions
from fairpilot.kinds.fairness import project_fairness
from fairpilot_jobs import cli

CONFIG = OperatorConfig(artifact_root="file:///artifacts", jobs_image="local")
OUT = "file:///artifacts/out"
DIGEST = "sha256:" + "0" * 64


# -- each kind names its model, and the jobs use the same ------------------------------------
def test_each_kind_names_the_model_of_its_stages_result() -> None:
    assert {kind.kind: kind.result for kind in KINDS} == {
        "Dataset": ProfileResult,
        "BiasAnalysis": BiasResult,
        "TrainingRun": TrainingResult,
        "Explanation": ExplanationResult,
        "ModelMonitor": MonitorResult,
    }
    assert {kind.stage: kind.result for kind in KINDS} == cli.RESULT_MODELS


# -- the real stages' results ----------------------------------------------------------------
def _parsed(kind: Kind, run: JobRun) -> StageResult:
    raw = run.result
    parsed = kind.result.model_validate(raw)
    # The operator projects the same status from the parsed model as from the raw file.
    assert project_result(kind, parsed) == project_result(kind, raw)
    # What the stage wrote and the model does not name is kept, not dropped: the envelope.
    assert parsed.model_extra is not None
    assert parsed.model_extra["apiVersion"] == "fairpilot.io/v1alpha1"
    assert parsed.model_extra["stage"] == kind.stage
    return parsed


def test_the_profile_stages_result_is_a_profile_result(profiled: JobRun) -> None:
    parsed = _parsed(DATASET, profiled)
    assert isinstance(parsed, ProfileResult)
    assert (parsed.rows, parsed.columns) == (32561, 15)
    assert parsed.suggestion is not None and parsed.suggestion.target == "income"
    assert [p.name for p in parsed.column_profiles][-1] == "income"
    assert "duplicateRows" in (parsed.model_extra or {})


def test_the_bias_stages_result_is_a_bias_result(biased: JobRun) -> None:
    parsed = _parsed(BIAS_ANALYSIS, biased)
    assert isinstance(parsed, BiasResult)
    assert parsed.bias_detected is True and parsed.findings
    assert parsed.summary.min_disparate_impact == pytest.approx(0.358, abs=1e-3)
    assert parsed.mitigation is not None and parsed.mitigation.uri
    assert parsed.mitigation.uri.endswith("reweighing.json")
    assert set((parsed.model_extra or {})["features"]) == {"sex", "race"}


def test_the_train_stages_result_is_a_training_result(trained: JobRun) -> None:
    parsed = _parsed(TRAINING_RUN, trained)
    assert isinstance(parsed, TrainingResult)
    assert parsed.eval_metric == "roc_auc" and parsed.best_model.name
    assert parsed.model_digest == parsed.model.digest == trained.result["modelDigest"]
    assert parsed.validation.checked and parsed.production_ready is not None
    metadata = parsed.model.metadata
    assert metadata is not None and metadata.model_id == "adult-income"
    assert metadata.custom_metadata is not None
    assert (metadata.custom_metadata.framework or "").startswith("autogluon.tabular")
    assert "files" in (metadata.model_extra or {}), "seed 004's other keys are kept"
    fairness = parsed.fairness
    assert fairness is not None and fairness.measured and set(fairness.features) == {"sex", "race"}
    sex = fairness.features["sex"]
    assert sex.summary is not None and sex.summary.disparate_impact is not None
    assert "groups" in (sex.model_extra or {}), "the per-group tables stay in the result"
    assert "leaderboard" in (parsed.model_extra or {})


def test_the_explain_stages_result_is_an_explanation_result(explained: JobRun) -> None:
    parsed = _parsed(EXPLANATION, explained)
    assert isinstance(parsed, ExplanationResult)
    assert parsed.method == "tree" and parsed.top_feature
    assert parsed.local_accuracy.max_abs_error <= 1e-6
    assert parsed.model.model_id == "adult-income" and parsed.model.version
    assert "globalImportance" in (parsed.model_extra or {})


def test_a_failed_stages_error_json_is_a_stage_error(tmp_path: Path) -> None:
    run = run_job("profile", {"uri": f"file://{tmp_path}/absent.csv"}, tmp_path / "out")
    assert run.returncode == 2
    error = StageError.model_validate(run.error)
    assert (error.stage, error.reason, error.exit_code) == ("profile", "DatasetNotFound", 2)
    assert failure(run.error, None) == (error.reason, error.message)


# -- the operator: a result.json it cannot read fails the resource --------------------------
def _dataset(pipeline: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"uri": "file:///data/census.csv"}
    if pipeline:
        spec |= {"target": "income", "sensitiveFeatures": ["sex"], "pipeline": {"bias": {}}}
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "census", "namespace": "ml", "uid": "u1", "generation": 1},
        "spec": spec,
        "status": {
            "jobName": "fp-profile-census-g1",
            "phase": "Running",
            "runId": "g1",
            "outputUri": OUT,
        },
    }


def _explanation() -> dict[str, Any]:
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "Explanation",
        "metadata": {"name": "why", "namespace": "ml", "uid": "e1", "generation": 1},
        "spec": {"trainingRunRef": "model", "datasetRef": "census"},
        "status": {
            "jobName": "fp-explain-why-g1",
            "phase": "Running",
            "runId": "g1",
            "outputUri": OUT,
        },
    }


def _succeeded(name: str, owner: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ml", "ownerReferences": [{"uid": owner}]},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }


def _decided(kind: Kind, world: World, reads: dict[tuple[Any, ...], Any]) -> Outcome:
    """decide() until it has every read it asks for (each must be in `reads`)."""
    while True:
        try:
            return decide(kind, world, CONFIG)
        except Need as need:
            assert need.key in reads, f"unexpected read {need.key}"
            world.knows(need.key, reads[need.key])


def _ready(patch: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in patch["conditions"] if c["type"] == "Ready")


def test_a_result_missing_a_required_field_fails_the_resource_naming_it() -> None:
    world = World(_dataset(), _succeeded("fp-profile-census-g1", "u1"))
    result = {"columns": 3, "reports": {}}  # no `rows`
    plan = _decided(DATASET, world, {("json", f"{OUT}/result.json"): result})
    (failed,) = plan.writes
    assert isinstance(failed, PatchStatus)
    assert failed.patch["phase"] == Phase.FAILED and failed.patch["finishedAt"] == world.now
    ready = _ready(failed.patch)
    assert (ready["status"], ready["reason"]) == ("False", "InvalidResult")
    assert ready["message"] == failed.patch["message"]
    assert "rows: Field required" in ready["message"]
    assert "profile stage's result.json" in ready["message"]
    assert plan.events == [("Warning", "Failed", failed.patch["message"])]
    # The phase is written as the plain string it has always been.
    assert '"phase": "Failed"' in json.dumps(failed.patch)
    # The same plan when asked again (act() relies on it).
    assert decide(DATASET, world, CONFIG) == plan


def test_a_result_with_a_wrong_nested_field_fails_naming_its_path() -> None:
    world = World(_explanation(), _succeeded("fp-explain-why-g1", "e1"))
    result = {
        "method": "tree",
        "topFeature": "age",
        "model": {"uri": "s3://b/models/m/v1", "modelId": "m", "version": "v1"},
        "localAccuracy": {"maxAbsError": "tiny"},
        "reports": {},
    }
    plan = _decided(EXPLANATION, world, {("json", f"{OUT}/result.json"): result})
    (failed,) = plan.writes
    assert isinstance(failed, PatchStatus) and failed.patch["phase"] == "Failed"
    assert _ready(failed.patch)["reason"] == "InvalidResult"
    assert "localAccuracy.maxAbsError: Input should be a valid number" in failed.patch["message"]
    # Corrected, the same World's result succeeds: only what the model refuses fails.
    good = World(_explanation(), _succeeded("fp-explain-why-g1", "e1"))
    result["localAccuracy"] = {"maxAbsError": 1e-9}
    plan = _decided(EXPLANATION, good, {("json", f"{OUT}/result.json"): result})
    (succeeded,) = plan.writes
    assert isinstance(succeeded, PatchStatus) and succeeded.patch["phase"] == Phase.SUCCEEDED
    assert succeeded.patch["topFeature"] == "age" and succeeded.patch["additivityError"] == 1e-9


def test_an_unreadable_result_fails_the_pipeline_it_is_a_step_of() -> None:
    world = World(_dataset(pipeline=True), _succeeded("fp-profile-census-g1", "u1"))
    reads = {("json", f"{OUT}/result.json"): ["not", "an", "object"]}
    plan = _decided(DATASET, world, reads)
    failed, pipeline = plan.writes
    assert isinstance(failed, PatchStatus) and failed.patch["phase"] == "Failed"
    assert _ready(failed.patch)["reason"] == "InvalidResult"
    assert "result.json holds a JSON list, not an object" in failed.patch["message"]
    assert isinstance(pipeline, PatchStatus)
    said = "Dataset census failed: InvalidResult"
    assert pipeline.patch == {"pipeline": "Failed", "pipelineMessage": said}


def test_the_operators_functions_parse_what_they_are_given() -> None:
    with pytest.raises(InvalidResult) as caught:
        parse_result(TRAINING_RUN, {"evalMetric": "roc_auc", "reports": {}})
    said = str(caught.value)
    assert "train stage's result.json" in said
    for field in ("metrics", "bestModel", "validation", "model"):
        assert f"{field}: Field required" in said
    with pytest.raises(InvalidResult, match="findings: Input should be a valid list"):
        project_result(BIAS_ANALYSIS, {"biasDetected": True, "findings": "x", "summary": {}})
    # A digest that is not one cannot reach the status (nor an Explanation's job spec).
    with pytest.raises(InvalidResult, match="modelDigest: String should match pattern"):
        parse_result(TRAINING_RUN, _training_result(modelDigest="sha256:oops"))


# -- extra fields are allowed, and change nothing the operator shows -------------------------
def _training_result(**more: Any) -> dict[str, Any]:
    return {
        "evalMetric": "roc_auc",
        "metrics": {"validation": {"roc_auc": 0.91}, "test": {"roc_auc": 0.9}},
        "bestModel": {"name": "WeightedEnsemble_L2"},
        "validation": {"checked": True, "passed": True, "message": "roc_auc 0.9 >= 0.85"},
        "productionReady": {"ready": True, "reason": "AllGatesPassed", "message": "all met"},
        "fairness": {
            "measured": True,
            "split": "test",
            "rows": 100,
            "positiveLabel": True,
            "minGroupSize": 30,
            "features": {"sex": {"summary": {"groupsCompared": 2, "disparateImpact": 0.9}}},
            "gates": [
                {
                    "metric": "disparateImpact",
                    "feature": "sex",
                    "passed": True,
                    "value": 0.9,
                    "min": 0.8,
                    "message": "met",
                }
            ],
        },
        "model": {"uri": "s3://b/models/m/v1", "sizeMb": 1.5, "digest": DIGEST},
        "modelDigest": DIGEST,
        "reports": {"training": "s3://b/run/report.html"},
    } | more


def test_extra_fields_anywhere_are_kept_and_change_no_status() -> None:
    plain = _training_result()
    extended = json.loads(json.dumps(plain))
    extended["carbonGrams"] = 12.5
    extended["model"]["onnx"] = {"uri": "s3://b/models/m/v1/model.onnx"}
    extended["fairness"]["features"]["sex"]["summary"]["theilIndex"] = 0.02
    extended["fairness"]["gates"][0]["note"] = "a newer stage's"
    extended["productionReady"]["gates"] = {"validationThreshold": {"checked": True}}
    parsed = TrainingResult.model_validate(extended)
    assert parsed.model_extra == {"carbonGrams": 12.5}
    assert parsed.model.model_extra == {"onnx": {"uri": "s3://b/models/m/v1/model.onnx"}}
    assert parsed.fairness is not None and parsed.fairness.gates[0].model_extra == {
        "note": "a newer stage's"
    }
    status = project_result(TRAINING_RUN, extended)
    assert status == project_result(TRAINING_RUN, plain)
    assert status["fairness"]["features"][0]["disparateImpact"] == 0.9
    assert "theilIndex" not in json.dumps(status), "the status keeps its own shape"
    assert status["fairness"]["positiveLabel"] == "true"  # a label as JSON writes it
    assert result_conditions(TRAINING_RUN, status, parsed) == result_conditions(
        TRAINING_RUN, status, plain
    )
    assert project_fairness(parsed.fairness) == status["fairness"]


# -- the stage refuses to write a result its operator cannot read ----------------------------
def test_the_stage_refuses_to_write_an_invalid_result(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/out")
    result = {"method": "tree", "model": {"uri": "s3://b/m"}, "reports": {}}
    with pytest.raises(JobError) as caught:
        cli.write_result(store, "explain", result)
    assert caught.value.reason == "InvalidResult"
    assert "topFeature: Field required" in caught.value.message
    assert "localAccuracy: Field required" in caught.value.message
    assert not (tmp_path / "out" / "result.json").exists()


def test_the_stage_writes_a_valid_result_as_it_is_extra_fields_included(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/out")
    result = {"rows": 6, "columns": 3, "reports": {}, "duplicateRows": 0, "future": [1, 2]}
    uri = cli.write_result(store, "profile", result)
    assert uri == f"file://{tmp_path}/out/result.json"
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == result


def test_a_stage_whose_result_is_invalid_fails_with_invalid_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"uri: file://{tmp_path}/data.csv\n")
    # A stage that forgets a field (its own bug): refused, with the reason and the field.
    monkeypatch.setattr(cli, "stage_function", lambda stage: lambda spec, store: {"rows": 6})
    code = cli.run("profile", str(spec), f"file://{tmp_path}/out")
    assert code == 2, "deterministic: a retry would write the same result"
    out = tmp_path / "out"
    assert not (out / "result.json").exists()
    error = StageError.model_validate_json((out / "error.json").read_text())
    assert error.reason == "InvalidResult" and "columns: Field required" in error.message


def test_error_json_carries_a_reason_the_operator_can_use(tmp_path: Path) -> None:
    payload = cli.error_payload("bias", "ColumnNotFound", "no column 'sexx'", 2)
    assert StageError.model_validate(payload).reason == "ColumnNotFound"
    # A reason that is no condition reason cannot reach a condition: InternalError, and the
    # original said in the message.
    bad = cli.error_payload("bias", "column not found", "no column 'sexx'", 2)
    assert bad["reason"] == "InternalError" and bad["exitCode"] == 2
    assert bad["message"].startswith("column not found: no column 'sexx' (not a valid reason")
    StageError.model_validate(bad)


def test_an_unusable_error_json_gives_way_to_the_pods_message() -> None:
    said = {"exitCode": 2, "message": json.dumps({"reason": "TargetNotFound", "message": "no"})}
    for error in ({}, {"reason": ""}, {"reason": "not a reason", "message": "x"}, None):
        assert failure(error, said) == ("TargetNotFound", "no")
    parsed = StageError(reason="EmptyTable", message="no rows")
    assert failure(parsed, said) == ("EmptyTable", "no rows")
