"""The Kafka bridge's plain functions: messages -> resources, resources -> events, dead letters."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from support import seed
from support.bridge import (
    CONFIG,
    DEAD_LETTERS,
    ROLES,
    SOURCE,
    Store,
    dead_letter_topic,
    finished,
    planned,
)

from fairpilot.api.kinds import BY_KIND, TRAINING_RUN
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.inbound import Rejected, dataset_name, decode, plan
from fairpilot.events.outbound import seed_time
from fairpilot.events.topics import Topics
from fairpilot.kinds import events_for


def test_the_seed_copy_matches_the_seed_file() -> None:
    if not seed.SEED_FILE.exists():
        pytest.skip(f"{seed.SEED_FILE} is not on this machine")
    text = seed.SEED_FILE.read_text()
    blocks = re.findall(r"`([a-z-]+-events)`:\n```json\n(.*?)\n```", text, re.S)
    found = {topic: json.loads(body.replace("{...}", "{}")) for topic, body in blocks}
    assert found == {**seed.INBOUND, **seed.OUTBOUND}


def test_a_seed_bias_trigger_makes_its_dataset_and_the_analysis() -> None:
    message = {**seed.BIAS_TRIGGER, "sensitive_features": ["sex"]}
    dataset, analysis = planned("bias-trigger-events", message)
    assert dataset["kind"] == "Dataset" and analysis["kind"] == "BiasAnalysis"
    assert dataset["metadata"]["name"] == dataset_name("user123", "dataset123")
    assert dataset["spec"] == {
        "uri": "s3://datasets/user123/dataset123.csv",  # the configured template
        "userId": "user123",
        "target": "target",
        "taskType": "classification",
        "sensitiveFeatures": ["sex"],
    }
    assert analysis["spec"] == {
        "datasetRef": dataset["metadata"]["name"],
        "target": "target",
        "sensitiveFeatures": ["sex"],
        "userId": "user123",
    }
    for made in (dataset, analysis):
        meta = made["metadata"]
        assert meta["namespace"] == "default"
        assert meta["labels"]["fairpilot.io/user-id"] == "user123"
        assert meta["labels"]["fairpilot.io/dataset-id"] == "dataset123"
        assert meta["annotations"]["fairpilot.io/source"] == "bias-trigger-events/0/7"
        BY_KIND[made["kind"]].spec.model_validate(made["spec"])


def test_names_are_deterministic_so_a_redelivery_makes_nothing_new() -> None:
    message = {**seed.BIAS_TRIGGER, "sensitive_features": ["sex"]}
    first = [r["metadata"]["name"] for r in planned("bias-trigger-events", message)]
    again = [r["metadata"]["name"] for r in planned("bias-trigger-events", dict(message))]
    assert first == again
    later = {**message, "timestamp": "2025-10-11T08:00:00.000000"}  # a new trigger
    second = [r["metadata"]["name"] for r in planned("bias-trigger-events", later)]
    assert second[0] == first[0] and second[1] != first[1]  # same Dataset, a new analysis
    by_event = {**message, "event_id": "e-1"}
    resent = {**by_event, "timestamp": "2025-10-12T00:00:00.000000"}
    assert (
        planned("bias-trigger-events", by_event)[1]["metadata"]["name"]
        == planned("bias-trigger-events", resent)[1]["metadata"]["name"]
    )  # the producer's event_id decides when it sends one
    other_user = {**message, "user_id": "someone-else"}
    assert planned("bias-trigger-events", other_user)[0]["metadata"]["name"] != first[0]


def test_a_user_id_that_is_no_label_value_is_kept_in_annotations() -> None:
    message = {
        **seed.BIAS_TRIGGER,
        "user_id": "Ada Lovelace <ada@example.org>",
        "sensitive_features": ["sex"],
    }
    _, analysis = planned("bias-trigger-events", message)
    assert analysis["spec"]["userId"] == message["user_id"]
    assert analysis["metadata"]["annotations"]["fairpilot.io/user-id"] == message["user_id"]
    assert re.fullmatch(r"h-[0-9a-f]{10}", analysis["metadata"]["labels"]["fairpilot.io/user-id"])


def test_a_trigger_takes_what_it_leaves_out_from_the_dataset() -> None:
    known = planned(
        "dataset-events",
        {
            "dataset_id": "dataset123",
            "user_id": "user123",
            "sensitive_features": ["sex", "race"],
            "target_column_name": "income",
            "uri": "s3://bucket/adult.csv",
        },
    )[0]
    known["metadata"]["namespace"] = "default"
    trigger = {k: v for k, v in seed.BIAS_TRIGGER.items() if k != "target_column_name"}
    _, analysis = planned("bias-trigger-events", trigger, Store(known))
    assert analysis["spec"]["sensitiveFeatures"] == ["sex", "race"]
    assert analysis["spec"]["target"] == "income"
    with pytest.raises(Rejected) as error:  # nothing to go on: a clear dead letter
        planned("bias-trigger-events", seed.BIAS_TRIGGER)
    assert error.value.reason == "MissingField" and "sensitive_features" in error.value.message


def test_a_dataset_event_with_target_and_task_type_starts_the_whole_chain() -> None:
    message = {
        "event_type": "dataset.uploaded",
        "dataset_id": "adult",
        "user_id": "u1",
        "uri": "s3://data/adult.csv",
        "target_column_name": "income",
        "task_type": "Classification",
        "sensitive_features": ["sex"],
        "time_budget": "60",
    }
    (dataset,) = planned("dataset-events", message)
    assert dataset["spec"]["pipeline"] == {
        "bias": {},
        # Bias-aware by default: reweighing only if the bias stage detects bias.
        "training": {"timeLimitSeconds": 60, "mitigateIfBiasDetected": True},
        "explanation": {"levels": ["beginner", "intermediate", "expert"]},
    }
    assert dataset["spec"]["uri"] == "s3://data/adult.csv"
    no_sensitive = {k: v for k, v in message.items() if k != "sensitive_features"}
    pipeline = planned("dataset-events", no_sensitive)[0]["spec"]["pipeline"]
    assert "bias" not in pipeline and pipeline["training"] == {"timeLimitSeconds": 60}
    no_target = {k: v for k, v in message.items() if k != "target_column_name"}
    assert "pipeline" not in planned("dataset-events", no_target)[0]["spec"]


def test_a_seed_automl_trigger_makes_a_training_run_named_by_its_model() -> None:
    _, run = planned("automl-trigger-events", seed.AUTOML_TRIGGER)
    assert run["kind"] == "TrainingRun"
    assert run["spec"]["timeLimitSeconds"] == 10  # the seed's "10", in seconds
    assert run["spec"]["modelId"] == run["metadata"]["name"]
    # No version in the message: v1 for the first model, the next free one per retrain.
    assert "version" not in run["spec"] and run["spec"]["taskType"] == "classification"


def test_an_xai_trigger_finds_the_users_training_run_by_model_and_version() -> None:
    _, run = planned("automl-trigger-events", seed.AUTOML_TRIGGER)
    model_id = run["metadata"]["name"]
    store = Store(run)
    trigger = {**seed.XAI_TRIGGER, "model_id": model_id}
    (explanation,) = planned("xai-trigger-events", trigger, store)
    assert explanation["spec"] == {
        "trainingRunRef": model_id,
        "levels": ["beginner"],
        "userId": "user123",
    }
    assert explanation["metadata"]["labels"]["fairpilot.io/dataset-id"] == "dataset123"
    named = copy.deepcopy(run)
    named["metadata"]["name"], named["spec"]["modelId"] = "my-run", "model123"
    assert (
        planned("xai-trigger-events", seed.XAI_TRIGGER, Store(named))[0]["spec"]["trainingRunRef"]
        == "my-run"
    )  # found by its spec's modelId
    for wrong in ({"version": "v2"}, {"user_id": "someone-else"}):
        with pytest.raises(Rejected) as error:
            planned("xai-trigger-events", {**trigger, **wrong}, store)
        assert error.value.reason == "ModelNotFound"


def test_an_xai_trigger_for_a_replaced_model_version_explains_that_version() -> None:
    """A TrainingRun retrained since: v1 is still one model, and a trigger naming it gets it."""
    _, run = planned("automl-trigger-events", seed.AUTOML_TRIGGER)
    run["status"] = {
        "modelVersion": "v2",
        "models": [{"version": "v1", "modelUri": "s3://m/v1"}, {"version": "v2"}],
    }
    store = Store(run)
    trigger = {**seed.XAI_TRIGGER, "model_id": run["metadata"]["name"]}
    (old,) = planned("xai-trigger-events", {**trigger, "version": "v1"}, store)
    assert old["spec"]["modelVersion"] == "v1"
    (current,) = planned("xai-trigger-events", {**trigger, "version": "v2"}, store)
    assert "modelVersion" not in current["spec"]
    latest = {k: v for k, v in trigger.items() if k != "version"}
    (unversioned,) = planned("xai-trigger-events", latest, store)
    assert "modelVersion" not in unversioned["spec"]
    with pytest.raises(Rejected) as error:
        planned("xai-trigger-events", {**trigger, "version": "v3"}, store)
    assert error.value.reason == "ModelNotFound"






@pytest.mark.parametrize(
    ("description", "reason", "payload"), DEAD_LETTERS, ids=[d[0] for d in DEAD_LETTERS]
)
def test_every_malformed_message_is_refused_with_its_reason(
    description: str, reason: str, payload: Any
) -> None:
    raw = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    store = Store()
    with pytest.raises(Rejected) as error:
        data = decode(raw, CONFIG.max_message_bytes)
        plan(
            ROLES[dead_letter_topic(description, payload)],
            data,
            SOURCE,
            CONFIG,
            store.get,
            store.list_all,
        )
    assert error.value.reason == reason, error.value.message
    assert error.value.message  # a person can tell what to fix




def test_events_carry_every_seed_field_filled_from_the_status() -> None:
    ids = {"fairpilot.io/dataset-id": "dataset123"}
    dataset = finished("Dataset", {"uri": "s3://b/k.csv", "taskType": "binary"}, {}, name="ds")
    store = Store(dataset)
    bias = finished(
        "BiasAnalysis",
        {"datasetRef": "ds", "target": "income", "sensitiveFeatures": ["sex"], "userId": "u1"},
        {
            "biasDetected": True,
            "minDisparateImpact": 0.36,
            "reweighingUri": "s3://b/rw.json",
            "reports": {"bias": "s3://b/report.html"},
            "findings": ["sex: DI 0.36 < 0.8"],
        },
        annotations=ids,
    )
    train = finished(
        "TrainingRun",
        {"datasetRef": "ds", "target": "income", "userId": "u1", "version": "v3"},
        {
            "modelId": "m1",
            "modelVersion": "v3",
            "framework": "autogluon",
            "modelType": "classification",
            "algorithm": "WeightedEnsemble_L2",
            "modelSizeMb": 1.5,
            "accuracy": {"training": 0.9, "validation": 0.85, "test": 0.84},
            "reports": {"training": "s3://b/t.html"},
        },
        name="run",
    )
    store.items[("TrainingRun", "default", "run")] = train
    explain = finished(
        "Explanation",
        {"trainingRunRef": "run", "userId": "u1"},
        {
            "method": "tree",
            "topFeature": "age",
            "reports": {"beginner": "s3://b/b.html", "expert": "s3://b/e.html"},
        },
    )
    topics = Topics()
    produced = {}
    for resource in (bias, train, explain):
        for event in events_for(resource["kind"], resource, topics, store.get):
            produced.setdefault(event.topic, []).append(event)
    (reported,) = produced["bias-events"]
    seed.check_against_seed(reported.payload, "bias-events")
    assert reported.key == "u1_dataset123"
    assert reported.payload["has_transformation_report"] is True
    assert reported.payload["task_type"] == "binary"  # from the Dataset it analysed
    (uploaded,) = produced["automl-events"]
    seed.check_against_seed(uploaded.payload, "automl-events")
    assert uploaded.payload["dataset_id"] == "ds"  # no annotation: the Dataset's name
    assert (uploaded.payload["model_id"], uploaded.payload["version"]) == ("m1", "v3")
    assert uploaded.payload["test_accuracy"] == 0.84 and uploaded.key == "u1_m1"
    assert (
        uploaded.payload["timestamp"]
        == "2026-01-02T03:04:05.000000"
        == seed_time("2026-01-02T03:04:05Z")
    )
    levels = [e.payload["level"] for e in produced["xai-events"]]
    assert levels == ["beginner", "expert"]
    for event in produced["xai-events"]:
        seed.check_against_seed(event.payload, "xai-events")
        assert event.payload["model_id"] == "m1" and event.payload["version"] == "v3"
    statuses = [e.payload["phase"] for e in produced["fairpilot-status-events"]]
    assert statuses == ["Running", "Succeeded"] * 3
    # The same state gives the same events: what makes "recorded as delivered" mean something.
    again = events_for("TrainingRun", train, topics, store.get)
    assert [e.payload for e in again] == [
        e.payload for e in produced["fairpilot-status-events"][2:4]
    ] + [uploaded.payload]


def test_a_failure_is_one_status_event_with_its_reason() -> None:
    failed = finished("TrainingRun", {"datasetRef": "ds", "target": "y"}, {})
    failed["status"] |= {
        "phase": "Failed",
        "message": "LabelMismatch: test data has unseen labels",
        "conditions": [{"type": "Ready", "status": "False", "reason": "LabelMismatch"}],
    }
    events = events_for(TRAINING_RUN, failed, Topics(), Store().get)
    assert [e.payload["phase"] for e in events] == ["Running", "Failed"]
    assert events[-1].payload["reason"] == "LabelMismatch"
    assert events[-1].payload["user_id"] == "default"


def test_configuration_from_the_environment() -> None:
    assert BridgeConfig.from_env({}) is None
    config = BridgeConfig.from_env(
        {
            "FAIRPILOT_KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9092,kafka-1:9092",
            "FAIRPILOT_KAFKA_GROUP_ID": "fp",
            "FAIRPILOT_KAFKA_TOPIC_BIAS": "team.bias-events",
            "FAIRPILOT_KAFKA_ALLOWED_NAMESPACES": "team-a, team-b",
            "FAIRPILOT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FAIRPILOT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "FAIRPILOT_KAFKA_SASL_USERNAME": "fairpilot",
            "FAIRPILOT_KAFKA_SASL_PASSWORD": "secret",
            "FAIRPILOT_KAFKA_DATA_URI_TEMPLATE": "s3://lake/{user_id}/{dataset_id}.parquet",
        }
    )
    assert config is not None
    assert config.topics.bias == "team.bias-events" and config.topics.xai == "xai-events"
    assert config.namespaces() == {"default", "team-a", "team-b"}
    options = config.client_options()
    assert options["sasl_plain_username"] == "fairpilot" and "ssl_context" in options
    assert "secret" not in repr(config)
    with pytest.raises(ValueError, match="SASL_MECHANISM"):
        BridgeConfig.from_env(
            {
                "FAIRPILOT_KAFKA_BOOTSTRAP_SERVERS": "k:9092",
                "FAIRPILOT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            }
        )


def test_the_operator_runs_the_bridge_and_warehouse_its_environment_asks_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fairpilot.controller.main import runtime_from_env

    def bridge_from_env() -> Any:
        return runtime_from_env().bridge

    for name in ("FAIRPILOT_KAFKA_BOOTSTRAP_SERVERS", "MONGO_URI"):
        monkeypatch.delenv(name, raising=False)
    assert bridge_from_env() is None
    monkeypatch.setenv("FAIRPILOT_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("FAIRPILOT_KAFKA_NAMESPACE", "ml")
    bridge = bridge_from_env()
    assert bridge is not None and bridge.kafka is not None and bridge.warehouse is None
    assert bridge.kafka.namespace == "ml"
    monkeypatch.setenv("MONGO_URI", "mongodb://mongo.example:27017/registry")
    bridge = bridge_from_env()
    assert bridge is not None and bridge.warehouse is not None
    assert bridge.warehouse.db.name == "registry"  # the URI's database wins over the default
    bridge.warehouse.close()


def test_the_test_kits_bias_trigger_is_the_seeds_example() -> None:
    from fairpilot.sandbox.testing import bias_trigger

    expected = {**seed.BIAS_TRIGGER, "dataset_id": "d", "sensitive_features": ["sex"]}
    assert bias_trigger("d") == expected
