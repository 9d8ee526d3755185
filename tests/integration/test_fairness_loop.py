"""Closing the fairness loop (issue 14): a trained model's fairness in its status and
conditions, in the pipeline and Kafka plans that make every model measured (and mitigated
when bias was detected), and in the model.uploaded event and the warehouse.

Train results are built by hand: no AutoGluon here.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import mongomock
import pytest
from support import seed
from support.bridge import CONFIG, SOURCE, Store, finished, planned
from support.chart import container, plain_env, render
from support.crds import validate

from fairpilot.api.dataset import DatasetSpec
from fairpilot.api.kinds import BIAS_ANALYSIS, BY_KIND, DATASET, EXPLANATION, TRAINING_RUN
from fairpilot.api.status import MAX_FAIRNESS_GATES
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.inbound import decode, plan
from fairpilot.crds import crd
from fairpilot.events.topics import Topics
from fairpilot.kinds import events_for, project_result, result_conditions
from fairpilot.kinds.fairness import project_fairness
from fairpilot.pipeline import next_resource
from fairpilot.warehouse import Warehouse
from fairpilot.warehouse.sink import WarehouseSink

ROLES = Topics().inbound()
FAILED_DI = (
    "disparateImpact of 'sex' on the test split is 0.310 (selection rate 0.080 for 'Female' "
    "vs 0.258 for 'Male'), which misses the bound >= 0.8"
)


def group(count: int, rate: float) -> dict[str, Any]:
    return {
        "count": count,
        "predictedPositiveRate": rate,
        "truePositiveRate": 0.6,
        "falsePositiveRate": 0.05,
        "falseNegativeRate": 0.4,
        "precision": 0.7,
        "meanScore": rate,
        "calibrationGap": 0.01,
        "small": count < 30,
    }


def summary(di: float | None, low: str | None, high: str | None, **more: Any) -> dict[str, Any]:
    return {
        "groupsCompared": 2,
        "groupsTooSmall": 0,
        "disparateImpact": di,
        "statisticalParityDifference": 0.178,
        "equalOpportunityDifference": 0.09,
        "equalizedOddsDifference": 0.12,
        "lowestSelectionGroup": low,
        "highestSelectionGroup": high,
    } | more


def train_result(fairness: dict[str, Any] | None, *, ready: bool = False) -> dict[str, Any]:
    """A train stage's result.json, as run_train writes it (the parts the operator reads)."""
    return {
        "evalMetric": "roc_auc",
        "metrics": {"validation": {"roc_auc": 0.91}, "test": {"roc_auc": 0.9}},
        "bestModel": {"name": "WeightedEnsemble_L2"},
        "validation": {"checked": False, "passed": None, "message": "no threshold"},
        "sampleWeights": "reweighing",
        "fairness": fairness,
        "productionReady": {
            "ready": ready,
            "reason": "AllGatesPassed" if ready else "GateFailed",
            "message": "" if ready else f"fairness: {FAILED_DI}",
        },
        "model": {"uri": "s3://b/u1/models/m1/v1", "sizeMb": 1.5, "digest": "sha256:" + "0" * 64},
        "reports": {"training": "s3://b/run/report.html"},
    }


def measured() -> dict[str, Any]:
    """result.json `fairness` of a model measured on sex, race and their intersection."""
    return {
        "measured": True,
        "split": "test",
        "rows": 16281,
        "positiveLabel": ">50K",
        "minGroupSize": 30,
        "features": {
            "sex": {
                "privilegedGroup": "Male",
                "privilegedChosenBy": "highest positive rate",
                "groups": {"Female": group(5421, 0.08), "Male": group(10860, 0.258)},
                "metrics": {"Female": {"DPPL": 0.178, "DI": 0.31}},
                "summary": summary(0.31, "Female", "Male"),
            },
            "race": {
                "privilegedGroup": "White",
                "privilegedChosenBy": "highest positive rate",
                "groups": {"White": group(13946, 0.2), "Other": group(12, 0.0)},
                "metrics": {},
                "summary": summary(0.7, "Black", "White", groupsCompared=4, groupsTooSmall=1),
            },
        },
        "intersections": {
            "sex × race": {
                "privilegedGroup": "Male × White",
                "groups": {"Female × Black": group(700, 0.03)},
                "metrics": {},
                "summary": summary(0.11, "Female × Black", "Male × Asian-Pac-Islander"),
            }
        },
        "gates": [
            {
                "metric": "equalizedOddsDifference",
                "feature": "race",
                "min": None,
                "max": 0.2,
                "split": "test",
                "passed": True,
                "value": 0.12,
                "message": "equalizedOddsDifference of 'race' on the test split is 0.120, "
                "which meets the bound <= 0.2",
            },
            {
                "metric": "disparateImpact",
                "feature": "sex",
                "min": 0.8,
                "max": None,
                "split": "test",
                "passed": False,
                "value": 0.31,
                "message": FAILED_DI,
            },
        ],
    }


def conditions(result: dict[str, Any]) -> dict[str, tuple[Any, str, str]]:
    status = project_result(TRAINING_RUN, result)
    return {t: (v, reason, message) for t, v, reason, message in result_conditions(
        TRAINING_RUN, status, result)}  # fmt: skip


def training_run(status: dict[str, Any], name: str = "run") -> dict[str, Any]:
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {"datasetRef": "ds", "target": "income"},
        "status": {"phase": "Succeeded", **status},
    }


# --- status --------------------------------------------------------------------------------


def test_the_status_keeps_each_features_measures_and_the_gates_not_the_groups() -> None:
    status = project_result(TRAINING_RUN, train_result(measured()))
    fairness = status["fairness"]
    assert (fairness["split"], fairness["rows"], fairness["positiveLabel"]) == (
        "test", 16281, ">50K",
    )  # fmt: skip
    assert fairness["measured"] is True and fairness["minGroupSize"] == 30
    assert [f["name"] for f in fairness["features"]] == ["sex", "race"]
    assert fairness["features"][0] == {
        "name": "sex",
        "groupsCompared": 2,
        "groupsTooSmall": 0,
        "disparateImpact": 0.31,
        "disparateImpactInterval": None,  # the hand-built result gives none
        "statisticalParityDifference": 0.178,
        "statisticalParityDifferenceInterval": None,
        "equalOpportunityDifference": 0.09,
        "equalizedOddsDifference": 0.12,
        "lowestSelectionGroup": "Female",
        "highestSelectionGroup": "Male",
    }
    assert fairness["features"][1]["groupsTooSmall"] == 1
    (joint,) = fairness["intersections"]
    assert joint["name"] == "sex × race" and joint["lowestSelectionGroup"] == "Female × Black"
    # Failed gates first, with their bounds, value and words.
    assert [(g["metric"], g["feature"], g["passed"]) for g in fairness["gates"]] == [
        ("disparateImpact", "sex", False),
        ("equalizedOddsDifference", "race", True),
    ]
    assert fairness["gates"][0] | {"message": ""} == {
        "metric": "disparateImpact", "feature": "sex", "passed": False, "value": 0.31,
        "min": 0.8, "max": None, "message": "",
    }  # fmt: skip
    assert fairness["gates"][0]["message"] == FAILED_DI
    assert (fairness["gatesChecked"], fairness["gatesFailed"], fairness["gatesPassed"]) == (
        2, 1, False,
    )  # fmt: skip
    assert status["mitigation"] == "reweighing"
    text = json.dumps(fairness)
    assert '"groups"' not in text and "predictedPositiveRate" not in text and "DPPL" not in text
    TRAINING_RUN.status.model_validate(status)
    validate(training_run(status))  # the CRD's status schema takes it as it is


def test_a_model_not_measured_or_not_asked_has_no_measures() -> None:
    said = "a multiclass model needs fairness.positiveLabel: the favourable class"
    status = project_result(TRAINING_RUN, train_result({"measured": False, "message": said}))
    fairness = status["fairness"]
    assert fairness["measured"] is False and fairness["message"] == said
    assert all(fairness[k] is None for k in fairness if k not in ("measured", "message"))
    validate(training_run(status))
    # Every key is written, None included: a merge patch then clears the previous run's.
    assert set(fairness) == set(project_fairness(measured()))
    status = project_result(TRAINING_RUN, train_result(None))
    assert "fairness" in status and status["fairness"] is None
    TRAINING_RUN.status.model_validate(status)


def test_the_status_stays_small_however_many_groups_and_gates() -> None:
    fairness = measured()
    many = {f"g{i}": group(40, i / 10_000) for i in range(10_000)}
    fairness["features"]["zip"] = {"groups": many, "summary": summary(0.0, "g0", "g9999")}
    gate = fairness["gates"][0]
    fairness["gates"] = [gate] * 99 + [fairness["gates"][1]]
    status = project_result(TRAINING_RUN, train_result(fairness))
    assert len(json.dumps(status["fairness"])) < 64 * 1024
    gates = status["fairness"]["gates"]
    assert len(gates) == MAX_FAIRNESS_GATES and gates[0]["passed"] is False  # failed first
    assert status["fairness"]["gatesChecked"] == 100 and status["fairness"]["gatesFailed"] == 1
    validate(training_run(status))


def test_fairness_gates_passed_names_the_failing_gate_the_groups_and_the_numbers() -> None:
    found = conditions(train_result(measured()))
    passed, reason, message = found["FairnessGatesPassed"]
    assert (passed, reason) == (False, "GateFailed")
    assert FAILED_DI in message and "'Female'" in message and "0.310" in message
    assert "equalizedOddsDifference" not in message  # only what failed
    assert found["ProductionReady"][0] is False  # the train stage's verdict, as before
    assert found["ProductionReady"][1] == "GateFailed"


def test_fairness_gates_passed_true_unknown_without_gates_and_when_not_measured() -> None:
    fairness = measured()
    fairness["gates"] = [fairness["gates"][0]]
    found = conditions(train_result(fairness, ready=True))
    assert found["FairnessGatesPassed"][:2] == (True, "GatesPassed")
    assert "meets the bound" in found["FairnessGatesPassed"][2]
    fairness["gates"] = []
    value, reason, message = conditions(train_result(fairness))["FairnessGatesPassed"]
    assert (value, reason) == (None, "NoGates")
    assert "sex 0.310" in message and "sex × race 0.110" in message
    value, reason, message = conditions(
        train_result({"measured": False, "message": "fairness is measured for classifiers only"})
    )["FairnessGatesPassed"]
    assert (value, reason) == (None, "NotMeasured") and "classifiers only" in message
    value, reason, message = conditions(train_result(None))["FairnessGatesPassed"]
    assert (value, reason) == (None, "NotMeasured") and "sensitive features" in message


# --- the pipeline ---------------------------------------------------------------------------


def dataset(pipeline: dict[str, Any], sensitive: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "uri": "s3://data/adult.csv",
        "userId": "demo",
        "target": "income",
        "taskType": "binary",
        "pipeline": pipeline,
    }
    if sensitive is not None:
        spec["sensitiveFeatures"] = sensitive
    DatasetSpec.model_validate(spec)
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "adult", "namespace": "ml", "uid": "u-1"},
        "spec": spec,
    }


def run_spec(step: Any) -> dict[str, Any]:
    assert isinstance(step, dict) and step["kind"] == "TrainingRun", step
    TRAINING_RUN.spec.model_validate(step["spec"])
    return step["spec"]


def test_a_pipeline_measures_its_model_on_the_datasets_sensitive_features() -> None:
    plain = dataset({"training": {}}, ["sex", "race"])
    assert run_spec(next_resource(plain, DATASET, {}))["fairness"] == {
        "sensitiveFeatures": ["sex", "race"]
    }
    # The bias stage's positive label is the favourable prediction too.
    biased = dataset({"bias": {"positiveLabel": ">50K"}, "training": {}}, ["sex"])
    spec = run_spec(next_resource(biased, BIAS_ANALYSIS, {"biasDetected": False}))
    assert spec["fairness"] == {"sensitiveFeatures": ["sex"], "positiveLabel": ">50K"}
    # The training block's own fairness is kept; what it leaves empty comes from the Dataset.
    gates = [{"metric": "disparateImpact", "min": 0.8}]
    own = dataset({"training": {"fairness": {"gates": gates}}}, ["sex", "race"])
    assert run_spec(next_resource(own, DATASET, {}))["fairness"] == {
        "gates": gates,
        "sensitiveFeatures": ["sex", "race"],
    }
    named = dataset({"training": {"fairness": {"sensitiveFeatures": ["age"]}}}, ["sex"])
    spec = run_spec(next_resource(named, DATASET, {}))
    assert spec["fairness"] == {"sensitiveFeatures": ["age"]}
    # Nothing to measure on, nothing asked: no fairness block.
    assert "fairness" not in run_spec(next_resource(dataset({"training": {}}), DATASET, {}))
    # A Dataset may name 64 sensitive features, a model's fairness 16: the first 16.
    wide = dataset({"training": {}}, [f"c{i}" for i in range(20)])
    assert run_spec(next_resource(wide, DATASET, {}))["fairness"]["sensitiveFeatures"] == [
        f"c{i}" for i in range(16)
    ]


def test_a_pipelines_fairness_block_must_hold_with_the_datasets_features() -> None:
    # Thresholds are per group of one feature: the Dataset's two would not do.
    thresholds = {
        "method": "thresholds",
        "constraints": [{"metric": "disparateImpact", "min": 0.8}],
    }
    with pytest.raises(ValueError, match="per group of one feature"):
        dataset({"training": {"fairness": thresholds}}, ["sex", "race"])
    one = dataset({"training": {"fairness": thresholds}}, ["sex"])
    assert run_spec(next_resource(one, DATASET, {}))["fairness"]["sensitiveFeatures"] == ["sex"]


def test_mitigate_if_bias_detected_reweighs_only_when_the_bias_stage_found_bias() -> None:
    source = dataset({"bias": {}, "training": {"mitigateIfBiasDetected": True}}, ["sex"])
    detected = run_spec(next_resource(source, BIAS_ANALYSIS, {"biasDetected": True}))
    assert detected["mitigation"] == {"biasAnalysisRef": "adult-bias"}
    assert "mitigateIfBiasDetected" not in detected  # a pipeline field, not a TrainingRun's
    for status in ({"biasDetected": False}, {}):
        clean = run_spec(next_resource(source, BIAS_ANALYSIS, status))
        assert "mitigation" not in clean and clean["fairness"] == {"sensitiveFeatures": ["sex"]}
    # `mitigate` still always does.
    always = dataset({"bias": {}, "training": {"mitigate": True}}, ["sex"])
    assert run_spec(next_resource(always, BIAS_ANALYSIS, {"biasDetected": False}))["mitigation"]
    # The bias stage's BiasDetected still stops the pipeline when asked to.
    stop = dataset(
        {"bias": {"stopIfBiasDetected": True}, "training": {"mitigateIfBiasDetected": True}},
        ["sex"],
    )
    assert "stopped" in next_resource(stop, BIAS_ANALYSIS, {"biasDetected": True})


def test_mitigate_if_bias_detected_needs_the_bias_stage() -> None:
    with pytest.raises(ValueError, match=r"mitigateIfBiasDetected needs pipeline\.bias"):
        dataset({"training": {"mitigateIfBiasDetected": True}}, ["sex"])
    schema = crd(DATASET)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = schema["properties"]["spec"]["x-kubernetes-validations"]
    (rule,) = [r for r in rules if "mitigateIfBiasDetected" in r["rule"]]
    assert "has(self.pipeline.bias)" in rule["rule"] and "mitigate)" in rule["rule"]


# --- Kafka ----------------------------------------------------------------------------------

DATASET_EVENT = {
    "event_type": "dataset.uploaded",
    "dataset_id": "adult",
    "user_id": "u1",
    "uri": "s3://data/adult.csv",
    "target_column_name": "income",
    "task_type": "classification",
    "sensitive_features": ["sex", "race"],
}


def planned_with(config: BridgeConfig, topic: str, payload: dict[str, Any]) -> list:
    data = decode(json.dumps(payload).encode(), config.max_message_bytes)
    store = Store()
    return plan(ROLES[topic], data, SOURCE, config, store.get, store.list_all)


def test_a_dataset_event_makes_a_bias_aware_pipeline_by_default() -> None:
    (made,) = planned("dataset-events", DATASET_EVENT)
    made["metadata"] |= {"uid": "u-1"}
    assert made["spec"]["pipeline"]["training"]["mitigateIfBiasDetected"] is True
    # Through the chain: the model is measured on the message's groups, reweighed on bias.
    training = run_spec(next_resource(made, BIAS_ANALYSIS, {"biasDetected": True}))
    assert training["fairness"] == {"sensitiveFeatures": ["sex", "race"]}
    assert training["mitigation"] == {"biasAnalysisRef": f"{made['metadata']['name']}-bias"}
    assert "mitigation" not in run_spec(next_resource(made, BIAS_ANALYSIS, {}))
    # No sensitive features: no bias stage, so nothing to mitigate with.
    bare = {k: v for k, v in DATASET_EVENT.items() if k != "sensitive_features"}
    (made,) = planned("dataset-events", bare)
    assert "mitigateIfBiasDetected" not in made["spec"]["pipeline"]["training"]


def test_the_bridge_can_be_told_not_to_mitigate() -> None:
    config = CONFIG.model_copy(update={"mitigate_if_biased": False})
    (made,) = planned_with(config, "dataset-events", DATASET_EVENT)
    assert "bias" in made["spec"]["pipeline"]
    assert "mitigateIfBiasDetected" not in made["spec"]["pipeline"]["training"]
    base = {"FAIRPILOT_KAFKA_BOOTSTRAP_SERVERS": "k:9092"}
    assert BridgeConfig.from_env(base).mitigate_if_biased is True
    off = BridgeConfig.from_env(base | {"FAIRPILOT_KAFKA_MITIGATE_IF_BIASED": "false"})
    assert off.mitigate_if_biased is False
    assert off.to_env()["FAIRPILOT_KAFKA_MITIGATE_IF_BIASED"] == "false"


def test_an_automl_trigger_measures_its_model_on_the_sensitive_features() -> None:
    message = {**seed.AUTOML_TRIGGER, "sensitive_features": ["sex"]}
    _, run = planned("automl-trigger-events", message)
    assert run["spec"]["fairness"] == {"sensitiveFeatures": ["sex"]}
    TRAINING_RUN.spec.model_validate(run["spec"])
    # None in the message: the Dataset's (from an earlier dataset-events message).
    (known,) = planned("dataset-events", {**DATASET_EVENT, "dataset_id": seed.AUTOML_TRIGGER[
        "dataset_id"], "user_id": seed.AUTOML_TRIGGER["user_id"]})  # fmt: skip
    _, run = planned("automl-trigger-events", seed.AUTOML_TRIGGER, Store(known))
    assert run["spec"]["fairness"] == {"sensitiveFeatures": ["sex", "race"]}
    # Neither: nothing to measure on.
    _, run = planned("automl-trigger-events", seed.AUTOML_TRIGGER)
    assert "fairness" not in run["spec"]


# --- events and the warehouse ---------------------------------------------------------------


def trained(result: dict[str, Any], uid: str = "uid-run") -> dict[str, Any]:
    status = project_result(TRAINING_RUN, result) | {
        "modelId": "m1",
        "modelVersion": "v1",
        "framework": "other",
        "modelType": "classification",
        "algorithm": "WeightedEnsemble_L2",
        "accuracy": {"training": 0.9, "validation": 0.85, "test": 0.84},
    }
    run = finished(
        "TrainingRun",
        {"datasetRef": "ds", "target": "income", "userId": "u1"},
        status,
        name="run",
        annotations={"fairpilot.io/dataset-id": "adult"},
    )
    run["metadata"]["uid"] = uid
    return run


def uploaded(run: dict[str, Any]) -> dict[str, Any]:
    events = events_for(TRAINING_RUN, run, Topics(), Store().get)
    (event,) = [e for e in events if e.topic == "automl-events"]
    return event.payload


def test_model_uploaded_carries_the_fairness_and_the_mitigation() -> None:
    payload = uploaded(trained(train_result(measured())))
    seed.check_against_seed(payload, "automl-events")
    fairness = payload["fairness"]
    assert fairness["split"] == "test" and fairness["positive_label"] == ">50K"
    assert fairness["features"]["sex"] == {
        "groups_compared": 2,
        "groups_too_small": 0,
        "disparate_impact": 0.31,
        "statistical_parity_difference": 0.178,
        "equal_opportunity_difference": 0.09,
        "equalized_odds_difference": 0.12,
        "lowest_selection_group": "Female",
        "highest_selection_group": "Male",
    }
    assert set(fairness["intersections"]) == {"sex × race"}
    assert fairness["gates"][0]["message"] == FAILED_DI and fairness["gates_passed"] is False
    assert payload["fairness_gates_passed"] is False
    assert payload["mitigation"] == "reweighing"
    assert payload["production_ready"] is False


def test_the_seed_fields_of_model_uploaded_are_unchanged_by_fairness() -> None:
    without = train_result(None)
    without["sampleWeights"] = None
    plain = uploaded(trained(without))
    assert (plain["fairness"], plain["fairness_gates_passed"], plain["mitigation"]) == (
        None, None, None,
    )  # fmt: skip
    fair = uploaded(trained(train_result(measured())))
    for field in seed.MODEL_UPLOADED:
        assert fair[field] == plain[field], field
    seed.check_against_seed(plain, "automl-events")
    # Not measured: the reason, and no verdict.
    said = {"measured": False, "message": "fairness is measured for classifiers only"}
    payload = uploaded(trained(train_result(said)))
    assert payload["fairness"]["measured"] is False and payload["fairness_gates_passed"] is None
    assert payload["fairness"]["features"] == {} and payload["fairness"]["message"] == said[
        "message"]  # fmt: skip


def test_the_warehouse_model_has_the_events_fairness(tmp_path: Path) -> None:
    run = trained(train_result(measured()))
    run["status"]["outputUri"] = f"file://{tmp_path}"
    (tmp_path / "model_metadata.json").write_text(json.dumps({"model_id": "m1"}))
    warehouse = Warehouse(mongomock.MongoClient().fairpilot)
    sink = WarehouseSink(warehouse, Store().get)
    for delivery in sink.pending(TRAINING_RUN, run, set()):
        asyncio.run(sink.deliver(delivery))
    (model,) = warehouse.db.ai_models.find({"user_id": "u1", "model_id": "m1"})
    payload = uploaded(run)
    assert model["fairness"] == payload["fairness"]
    assert model["fairness_gates_passed"] is False and model["mitigation"] == "reweighing"
    assert model["fairness"]["features"]["race"]["groups_too_small"] == 1


def test_every_stage_of_a_fair_pipeline_validates() -> None:
    # The pipeline's resources still pass their models with the new fields in place.
    source = dataset(
        {"bias": {}, "training": {"mitigateIfBiasDetected": True}, "explanation": {}}, ["sex"]
    )
    for finished_kind, status in ((DATASET, {}), (BIAS_ANALYSIS, {"biasDetected": True}),
                                  (TRAINING_RUN, {})):  # fmt: skip
        step = next_resource(copy.deepcopy(source), finished_kind, status)
        BY_KIND[step["kind"]].spec.model_validate(step["spec"])
    assert next_resource(source, EXPLANATION, {}) is None


def test_the_chart_sets_whether_the_bridge_mitigates(helm: Path) -> None:
    for value, expected in ((None, True), (False, False)):
        kafka: dict[str, Any] = {"bootstrapServers": "kafka:9092"}
        if value is not None:
            kafka["mitigateIfBiased"] = value
        env = plain_env(container(render(helm, {"kafka": kafka})))
        assert env["FAIRPILOT_KAFKA_MITIGATE_IF_BIASED"] == str(expected).lower()
        bridge = BridgeConfig.from_env(env)
        assert bridge is not None and bridge.mitigate_if_biased is expected


def test_the_one_line_summary_tells_the_fairness_story() -> None:
    from fairpilot.kinds.fairness import fairness_line

    def measures(value: float) -> list[dict]:
        return [{"name": "sex", "disparateImpact": value}]

    status = {
        "measured": True,
        "split": "test",
        "features": measures(0.93),
        "reweighing": {"baseline": measures(0.32), "reweighed": measures(0.55)},
        "thresholds": {"before": measures(0.55)},
        "gatesChecked": 1,
        "gatesPassed": True,
    }
    assert fairness_line(status) == (
        "sex disparate impact 0.32 -> 0.55 (reweighing) -> 0.93 (thresholds) on test; "
        "fairness gates passed"
    )
    only = {"measured": True, "split": "validation", "features": measures(0.4)}
    assert fairness_line(only) == "sex disparate impact 0.40 on validation"
    assert fairness_line({"measured": False}) is None and fairness_line(None) is None
