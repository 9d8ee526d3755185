"""Attacker probes of issue 13's classes against Datasets, BiasAnalyses, TrainingRuns and
Explanations (the ModelMonitor's are in test_monitor_security.py): each test here is a hole
one of them found, closed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from support import seed

from fairpilot import access, artifacts
from fairpilot.api import DatasetSpec, TrainingRunSpec
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.inbound import Rejected, Source, plan
from fairpilot.errors import JobError
from fairpilot.events.payloads import AutomlTrigger
from fairpilot_jobs import cli


# -- locations: the stage pod decodes a file:// path once, as the operator does ------------------
def test_a_path_holding_an_encoded_slash_is_judged_as_the_file_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /data/ns-a%2Fsecret.csv is a file of /data, not of /data/ns-a: decoding its name a second
    # time (`access.within` decodes the URI it is given) made the pod read it as ns-a's.
    (tmp_path / "ns-a").mkdir()
    outside = tmp_path / "ns-a%2Fsecret.csv"
    outside.write_text("a\n1\n")
    monkeypatch.setenv(artifacts.ALLOWED_LOCATIONS_ENV, json.dumps([f"file://{tmp_path}/ns-a/"]))
    with pytest.raises(JobError) as refused:
        artifacts.parse_uri(f"file://{tmp_path}/ns-a%252Fsecret.csv")
    assert refused.value.reason == "LocationNotAllowed"
    # ... and a folder of ns-a whose name is `%2e%2e` is ns-a's, as the operator judges it.
    inside = f"file://{tmp_path}/ns-a/%252e%252e/x.csv"
    assert access.problem(inside, [f"file://{tmp_path}/ns-a/"]) is None
    assert artifacts.parse_uri(inside).path == f"{tmp_path}/ns-a/%2e%2e/x.csv"


# -- limits: odd data is an input error, never an internal one ----------------------------------
@pytest.mark.parametrize("data", [b"a,b\n1,\n", b"x,y,z\n,,\n,,\n", b"a,b\n1,\x002\n"])
def test_a_table_whose_suggested_target_has_no_value_is_profiled(
    tmp_path: Path, data: bytes
) -> None:
    table = tmp_path / "t.csv"
    table.write_bytes(data)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"uri": f"file://{table}"}))
    code = cli.run("profile", str(spec), f"file://{tmp_path}/out")
    error = tmp_path / "out" / "error.json"
    assert code == 0, error.read_text() if error.exists() else code


# -- input rules: a message's ids are a resource's, whitespace included ---------------------------
SEED = {**seed.AUTOML_TRIGGER}


def _accepted(validate: Callable[[], object]) -> bool:
    try:
        validate()
    except ValidationError:
        return False
    return True


FIELDS = {"user_id": "userId", "target_column_name": "target", "model_id": "modelId"}


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("value", ["\talice", "alice\t", " ", "\u3000", "x" * 128 + " ", " m1"])
def test_messages_and_resources_take_the_same_padded_ids(field: str, value: str) -> None:
    resource = _accepted(
        lambda: TrainingRunSpec.model_validate(
            {"datasetRef": "d", "target": "y", FIELDS[field]: value}
        )
    )
    message = _accepted(lambda: AutomlTrigger.model_validate({**SEED, field: value}))
    assert resource == message, (field, value, resource, message)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=st.sampled_from(list(" \t\n\u3000\xa0a.-_~é\u200b/%")), max_size=130))
def test_messages_and_resources_take_the_same_user_ids(value: str) -> None:
    resource = _accepted(
        lambda: DatasetSpec.model_validate({"uri": "s3://bucket/k.csv", "userId": value})
    )
    message = _accepted(lambda: AutomlTrigger.model_validate({**SEED, "user_id": value}))
    assert resource == message


def test_a_message_naming_a_sensitive_feature_twice_is_an_invalid_payload() -> None:
    data = {**seed.AUTOML_TRIGGER, "sensitive_features": ["sex", "sex"]}
    with pytest.raises(Rejected) as refused:
        plan(
            "automl_trigger",
            data,
            Source("automl-trigger-events", 0, 0),
            BridgeConfig(bootstrap_servers="x:1"),
            lambda *a: None,
            lambda *a: [],
        )
    assert refused.value.reason == "InvalidPayload"
