"""Property-based tests: whatever arrives, the answer is a resource or a clear refusal.

Hypothesis generates the inputs; `derandomize=True` makes every run (and CI) try the same
examples, and the example counts keep the whole file to seconds. No example database is kept,
so a run does not depend on an earlier one.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from support import seed
from support.bridge import CONFIG, ROLES, SOURCE, Store

from fairpilot.access import folder_name
from fairpilot.api import JOB_SPECS, safe_yaml
from fairpilot.api.kinds import BY_KIND, KINDS
from fairpilot.api.validation import (
    MAX_ANNOTATIONS_BYTES,
    describe,
    invisible_characters,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    metadata_problems,
)
from fairpilot.bridge.inbound import (
    Rejected,
    dataset_name,
    decode,
    label_value,
    path_segment,
    plan,
)
from fairpilot.config import OperatorConfig
from fairpilot.jobs import build_job
from fairpilot.references import UnresolvedReference, job_spec

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# Text that hits the edges: path characters, dots, percent signs, controls, right-to-left and
# zero-width marks, surrogates, emoji, and plain letters.
EDGY = st.sampled_from(
    ["/", "..", ".", "%2e", "%2F", "\\", "?", "#", " ", "\x00", "\n", "\u202e", "\u200b",
     "\ud800", "📈", "é", "A", "a", "0", "-", "_", "@"]
)  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=80),
    st.lists(EDGY, max_size=12).map("".join),
    st.text(alphabet="abc.-_019", min_size=1, max_size=70),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)


def outcome(topic: str, raw: bytes) -> list[dict[str, Any]] | Rejected:
    """What the bridge makes of one message; any exception but Rejected fails the test."""
    store = Store()
    try:
        data = decode(raw, CONFIG.max_message_bytes)
        return plan(ROLES[topic], data, SOURCE, CONFIG, store.get, store.list_all)
    except Rejected as refused:
        return refused


def check_planned(resources: list[dict[str, Any]] | Rejected) -> None:
    """A plan is either a clear refusal, or resources the API server would take as they are."""
    if isinstance(resources, Rejected):
        assert resources.reason.isidentifier() and resources.reason[0].isupper()
        assert resources.message and "\n" not in resources.message
        assert len(resources.message) < 4096
        return
    for item in resources:
        meta = item["metadata"]
        assert metadata_problems(meta) == [], meta
        assert is_dns1123_label(meta["name"]), meta["name"]  # also fits in Job names
        assert all(is_label_value(v) for v in meta["labels"].values())
        size = sum(len(k.encode()) + len(v.encode()) for k, v in meta["annotations"].items())
        assert size < MAX_ANNOTATIONS_BYTES
        BY_KIND[item["kind"]].spec.model_validate(item["spec"])
        uri = item["spec"].get("uri", "")
        assert ".." not in unquote(uri).split("/"), uri
        json.dumps(item).encode("utf-8")  # what the API client sends: encodable


@FUZZ
@given(topic=st.sampled_from(sorted(ROLES)), raw=st.binary(max_size=2000))
def test_any_bytes_become_resources_or_a_dead_letter_reason(topic: str, raw: bytes) -> None:
    check_planned(outcome(topic, raw))


@FUZZ
@given(topic=st.sampled_from(sorted(ROLES)), value=JSON)
def test_any_json_becomes_resources_or_a_dead_letter_reason(topic: str, value: Any) -> None:
    check_planned(outcome(topic, json.dumps(value).encode("utf-8", "surrogatepass")))


SEEDS = {
    "dataset-events": {"dataset_id": "d1", "user_id": "u1", "target_column_name": "income",
                       "task_type": "classification", "sensitive_features": ["sex"]},
    "bias-trigger-events": {**seed.BIAS_TRIGGER, "sensitive_features": ["sex"]},
    "automl-trigger-events": seed.AUTOML_TRIGGER,
    "xai-trigger-events": seed.XAI_TRIGGER,
}  # fmt: skip
FIELDS = sorted({key for payload in SEEDS.values() for key in payload} | {"uri", "event_id"})


@FUZZ
@given(
    topic=st.sampled_from(sorted(SEEDS)),
    changes=st.dictionaries(st.sampled_from(FIELDS), JSON | TEXT, min_size=1, max_size=3),
)
def test_seed_payloads_with_fields_changed_are_planned_or_refused(
    topic: str, changes: dict[str, Any]
) -> None:
    # Close to what producers send, so most examples get past parsing and exercise the names,
    # labels, annotations and URIs made from the payload.
    payload = {**SEEDS[topic], **changes}
    check_planned(outcome(topic, json.dumps(payload).encode("utf-8", "surrogatepass")))


SHELL = "; rm -rf / # $(reboot) `id` | & > < * ' \" \n"


@FUZZ
@given(
    topic=st.sampled_from(sorted(SEEDS)),
    user_id=st.one_of(TEXT, st.just(SHELL), st.just("../../../etc")),
    column=st.one_of(TEXT, st.just(SHELL)),
)
def test_nothing_from_a_payload_reaches_the_jobs_command_line(
    topic: str, user_id: str, column: str
) -> None:
    # The Job's argv is fixed but for the output URI, whose only payload-derived part (the
    # owner) is reduced to [A-Za-z0-9._-]; everything else travels in the spec file. The
    # sandbox's runner and the kubelet both exec the argv as it is: no shell anywhere.
    payload = {**SEEDS[topic], "user_id": user_id, "target_column_name": column}
    planned = outcome(topic, json.dumps(payload).encode("utf-8", "surrogatepass"))
    check_planned(planned)
    if isinstance(planned, Rejected):
        return
    config = OperatorConfig(artifact_root="s3://artifacts")
    for item in planned:
        kind = BY_KIND[item["kind"]]
        meta = {**item["metadata"], "uid": "uid-1", "generation": 1}
        job = build_job(kind, {**item, "metadata": meta}, config, "g1")
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["fairpilot-job", kind.stage]
        assert container["args"][:3] == ["--spec", "/etc/fairpilot/spec.yaml", "--output"]
        # One folder per id, each of [A-Za-z0-9._~-] and not starting with '.' (access.folder_name).
        folders = r"s3://artifacts(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+"
        assert re.fullmatch(folders, container["args"][3])


@FUZZ
@given(user_id=TEXT, dataset_id=TEXT)
def test_ids_in_the_data_uri_template_cannot_escape(user_id: str, dataset_id: str) -> None:
    message = {"dataset_id": dataset_id, "user_id": user_id}
    planned = outcome("dataset-events", json.dumps(message).encode("utf-8", "surrogatepass"))
    check_planned(planned)
    if isinstance(planned, list):
        uri = planned[0]["spec"]["uri"]
        assert uri == f"s3://datasets/{user_id}/{dataset_id}.csv"
        for part in (user_id, dataset_id):
            assert "/" not in part and "%" not in part and not part.startswith(".")


@FUZZ
@given(value=TEXT)
def test_path_segments_are_one_segment_or_refused(value: str) -> None:
    try:
        accepted = path_segment("user_id", value)
    except Rejected as refused:
        assert refused.reason == "UnsafePathSegment"
        return
    decoded = unquote(accepted)
    assert "/" not in decoded and "\\" not in decoded and decoded not in (".", "..")
    assert not invisible_characters(accepted)


@FUZZ
@given(first=TEXT, second=TEXT)
def test_distinct_user_ids_never_share_an_artifact_folder(first: str, second: str) -> None:
    one, other = folder_name(first), folder_name(second)
    for folder in (one, other):
        assert re.fullmatch(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,127}", folder)
    assert (one == other) == (first == second)
    assert folder_name(first) == one  # and the same id is always the same folder


@FUZZ
@given(text=TEXT)
def test_label_values_are_always_valid(text: str) -> None:
    value = label_value(text)
    assert is_label_value(value)
    assert value == text or value.startswith("h-")


@FUZZ
@given(user_id=TEXT, dataset_id=st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?\Z"))
def test_dataset_names_are_dns_labels(user_id: str, dataset_id: str) -> None:
    name = dataset_name(user_id, dataset_id)
    assert is_dns1123_label(name) and is_dns1123_subdomain(name)
    assert name == dataset_name(user_id, dataset_id)  # stable: redeliveries name the same one


MODELS: list[type[BaseModel]] = [kind.spec for kind in KINDS] + list(JOB_SPECS.values())
VALID: dict[str, dict[str, Any]] = {
    "DatasetSpec": {"uri": "file:///d.csv"},
    "ProfileJobSpec": {"uri": "file:///d.csv"},
    "BiasAnalysisSpec": {"datasetRef": "d", "target": "y", "sensitiveFeatures": ["s"]},
    "BiasJobSpec": {"dataset": {"uri": "file:///d.csv"}, "target": "y", "sensitiveFeatures": ["s"]},
    "TrainingRunSpec": {"datasetRef": "d", "target": "y"},
    "TrainJobSpec": {"dataset": {"uri": "file:///d.csv"}, "target": "y"},
    "ExplanationSpec": {"trainingRunRef": "t"},
    "ExplainJobSpec": {"model": {"uri": "file:///m"}, "dataset": {"uri": "file:///d.csv"}},
    "ModelMonitorSpec": {"trainingRunRef": "t", "batches": {"uri": "file:///b/"}},
    "MonitorJobSpec": {
        "model": {"uri": "file:///m"},
        "reference": {"uri": "file:///d.csv"},
        "target": "y",
        "batches": [{"uri": "file:///b/1.csv"}],
    },
}


def fields_of(model: type[BaseModel]) -> list[str]:
    return sorted(field.alias or name for name, field in model.model_fields.items())


def check_model(model: type[BaseModel], document: Any) -> None:
    try:
        model.model_validate(document)
    except ValidationError as exc:
        message = describe(exc)
        assert message and "\n" not in message and len(message) < 2000, message
        assert "errors.pydantic.dev" not in message


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@FUZZ
@given(data=st.data())
def test_any_spec_is_a_model_or_a_one_line_reason(model: type[BaseModel], data: Any) -> None:
    check_model(model, data.draw(JSON))
    # One field of a valid spec changed: reaches the per-field and cross-field validators.
    name = data.draw(st.sampled_from(fields_of(model)))
    check_model(model, {**VALID[model.__name__], name: data.draw(JSON)})


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
@FUZZ
@given(data=st.data())
def test_the_operator_answers_any_spec_with_a_job_spec_or_a_reason(kind: Any, data: Any) -> None:
    # What reconcile() does with a resource the API server did not validate: a job spec, or a
    # condition (never an exception that Kopf would retry for ever).
    base = {
        "Dataset": {"uri": "file:///d.csv"},
        "BiasAnalysis": {"datasetRef": "d", "target": "y", "sensitiveFeatures": ["s"]},
        "TrainingRun": {"datasetRef": "d", "target": "y"},
        "Explanation": {"trainingRunRef": "t"},
        "ModelMonitor": {"trainingRunRef": "t", "batches": {"uri": "file:///b/"}},
    }[kind.kind]
    name = data.draw(st.sampled_from(fields_of(kind.spec)))
    spec = data.draw(st.one_of(JSON, st.just({**base, name: data.draw(JSON)})))
    ready = {"status": {"phase": "Succeeded", "modelUri": "file:///m", "reweighingUri": "file:///r"},
             "spec": {"uri": "file:///d.csv", "datasetRef": "d"}}  # fmt: skip
    try:
        window = {"batches": [{"uri": "file:///b/1.csv"}]}
        job_spec(kind, spec, lambda kind, name: ready, data.draw(TEXT), window)
    except UnresolvedReference as exc:
        assert exc.reason and exc.message and "\n" not in exc.message


YAML_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(["a: ", "&x ", "*x ", "[", "]", "{", "}", "- ", "\n", "  ", "!!",
                              "python/object ", "'", '"', "\\ud800", ",", "b", "1"]),
             max_size=40).map("".join),
)  # fmt: skip


@FUZZ
@given(text=YAML_TEXT)
def test_any_yaml_is_documents_or_a_clear_refusal(text: str) -> None:
    try:
        safe_yaml.load_all(text)
    except safe_yaml.UnsafeYaml as exc:
        assert str(exc) and "\n" not in str(exc)
