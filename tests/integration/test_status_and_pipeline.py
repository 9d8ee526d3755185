"""Projecting real stage results into status, conditions, and the pipeline's next step."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.jobs import JobRun

from fairpilot.api.kinds import BIAS_ANALYSIS, BY_KIND, DATASET, EXPLANATION, TRAINING_RUN
from fairpilot.conditions import failure, set_condition
from fairpilot.config import OperatorConfig
from fairpilot.kinds import project_result, summary_message
from fairpilot.pipeline import next_resource
from fairpilot.runs import output_uri

PIPELINE = (
    Path(__file__).resolve().parents[2] / "manifests" / "examples" / "adult" / "pipeline.yaml"
)


def test_profile_result_projects_into_dataset_status(profiled: JobRun) -> None:
    status = project_result(DATASET, profiled.result)
    assert status["rows"] == 32561 and status["columns"] == 15
    assert status["suggestedTarget"] == "income"
    assert status["reports"]["profile"].endswith("report.html")
    DATASET.status.model_validate(status)
    assert summary_message(DATASET, status) == "32561 rows, 15 columns, target income"


def test_bias_result_projects_into_status(biased: JobRun) -> None:
    status = project_result(BIAS_ANALYSIS, biased.result)
    assert status["biasDetected"] is True
    # race=Other against White (the best off of the groups of at least 10% of the rows)
    assert status["minDisparateImpact"] == pytest.approx(0.358, abs=1e-3)
    assert status["reweighingUri"].endswith("reweighing.json")
    BIAS_ANALYSIS.status.model_validate(status)


def test_training_and_explanation_results_project_into_status(
    trained: JobRun, explained: JobRun
) -> None:
    status = project_result(TRAINING_RUN, trained.result)
    assert status["evalMetric"] == "roc_auc"
    # The score the best model won by (validation), and the test score, each named.
    assert status["bestScore"] == trained.result["metrics"]["validation"]["roc_auc"]
    assert status["validationScore"] == status["bestScore"]
    assert status["testScore"] == trained.result["metrics"]["test"]["roc_auc"]
    assert status["modelUri"].endswith("/model") and status["validationPassed"] is True
    assert status["productionReady"] is True
    assert status["framework"] == "other" and status["frameworkDetail"].startswith("autogluon")
    TRAINING_RUN.status.model_validate(status)
    explanation = project_result(EXPLANATION, explained.result)
    assert explanation["method"] == "tree" and explanation["additivityError"] <= 1e-6
    EXPLANATION.status.model_validate(explanation)


def test_condition_transition_time_changes_only_with_status() -> None:
    conditions = set_condition([], "Ready", False, "JobRunning", "running", 1, at="t1")
    conditions = set_condition(
        conditions, "Ready", False, "JobRunning", "still running", 1, at="t2"
    )
    assert conditions == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "JobRunning",
            "message": "still running",
            "lastTransitionTime": "t1",
            "observedGeneration": 1,
        }
    ]
    conditions = set_condition(conditions, "Ready", True, "Succeeded", "done", 1, at="t3")
    assert conditions[0]["lastTransitionTime"] == "t3" and conditions[0]["status"] == "True"


def test_failure_reason_from_error_json_or_termination_message() -> None:
    assert failure({"reason": "TargetNotFound", "message": "no"}, None) == ("TargetNotFound", "no")
    said = {"exitCode": 2, "message": '{"reason": "DatasetNotFound", "message": "gone"}'}
    assert failure(None, said) == ("DatasetNotFound", "gone")
    crashed = {"exitCode": 1, "reason": "Error", "message": "Traceback...\nMemoryError"}
    assert failure(None, crashed) == ("JobFailed", "the stage exited with code 1: MemoryError")
    assert failure(None, None)[0] == "JobFailed"


def test_failure_says_when_kubernetes_stopped_the_stage() -> None:
    job = {
        "spec": {
            "activeDeadlineSeconds": 90,
            "template": {"spec": {"containers": [{"resources": {"limits": {"memory": "2Gi"}}}]}},
        },
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimit"}]},
    }
    reason, message = failure(None, {"exitCode": 137, "reason": "OOMKilled"}, job)
    assert reason == "OOMKilled" and "(2Gi)" in message and "spec.resources.memory" in message
    job["status"]["conditions"][0]["reason"] = "DeadlineExceeded"
    reason, message = failure(None, {"exitCode": 137, "reason": "Error"}, job)
    assert reason == "DeadlineExceeded" and "deadline of 90 s" in message


def test_pipeline_chains_bias_training_explanation() -> None:
    dataset = next(iter(yaml.safe_load_all(PIPELINE.read_text())))
    dataset["metadata"] |= {"namespace": "ml", "uid": "u-1"}
    bias = next_resource(dataset, DATASET, {})
    assert bias["kind"] == "BiasAnalysis" and bias["metadata"]["name"] == "adult-bias"
    assert bias["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert bias["spec"]["sensitiveFeatures"] == ["sex", "race"]
    training = next_resource(dataset, BIAS_ANALYSIS, {"biasDetected": True})
    assert training["spec"]["mitigation"] == {"biasAnalysisRef": "adult-bias"}
    assert training["spec"]["testDatasetRef"] == "adult-test"
    assert training["spec"]["target"] == "income"
    explanation = next_resource(dataset, TRAINING_RUN, {})
    assert explanation["spec"]["trainingRunRef"] == "adult-train"
    assert next_resource(dataset, EXPLANATION, {}) is None
    for created in (bias, training, explanation):
        BY_KIND[created["kind"]].spec.model_validate(created["spec"])


def test_pipeline_stops_on_bias_when_asked() -> None:
    dataset = next(iter(yaml.safe_load_all(PIPELINE.read_text())))
    dataset["metadata"] |= {"namespace": "ml", "uid": "u-1"}
    dataset["spec"]["pipeline"]["bias"]["stopIfBiasDetected"] = True
    assert "stopped" in next_resource(dataset, BIAS_ANALYSIS, {"biasDetected": True})
    assert next_resource(dataset, BIAS_ANALYSIS, {"biasDetected": False})["kind"] == "TrainingRun"


@pytest.mark.parametrize("owner", ["demo", None])
def test_pipeline_stages_belong_to_the_datasets_owner(owner: str | None) -> None:
    dataset = next(iter(yaml.safe_load_all(PIPELINE.read_text())))
    dataset["metadata"] |= {"namespace": "ml", "uid": "u-1"}
    assert dataset["spec"]["userId"] == "demo"
    if owner is None:
        del dataset["spec"]["userId"]
    config = OperatorConfig(artifact_root="s3://artifacts/root")
    stages = [next_resource(dataset, done, {}) for done in (DATASET, BIAS_ANALYSIS, TRAINING_RUN)]
    assert [stage["kind"] for stage in stages] == ["BiasAnalysis", "TrainingRun", "Explanation"]
    for stage in stages:
        kind = BY_KIND[stage["kind"]]
        assert kind.spec.model_validate(stage["spec"]).user_id == owner
        stage["metadata"] |= {"generation": 1, "uid": "uid-7"}
        assert output_uri(config, kind, stage, "g1") == (
            f"s3://artifacts/root/ml/{owner or '~none'}/{kind.plural}/"
            f"{stage['metadata']['name']}/uid-7/g1"
        )
