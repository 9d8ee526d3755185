"""Bad input on each of the three ways in, as data: what is sent, and what the user must see.

- Kafka messages -> the bridge: a dead letter whose `fairpilot.dlq.reason` header is the reason
  (KAFKA_CASES here, plus test_bridge_payloads.DEAD_LETTERS).
- Resources applied to the API -> the operator: `Failed` with a `Ready` condition that names
  the problem (RESOURCE_CASES), or a refusal by the API server itself; manifests that
  `fairpilot sandbox run` reads (MANIFEST_CASES).
- Spec files and dataset files -> the stage jobs: exit code 2, one line on stderr, the reason
  in error.json (JOB_CASES here, plus test_bad_input.cases).

The Kafka and resource corpora go through one sandbox: the real Kopf operator, the real Tansu
broker, real stage jobs confined to a file root. After them, in the same sandbox, a good
pipeline must still succeed and a good message must still become a resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaProducer
from support import seed
from support.bad_input import cases as existing_job_cases
from support.bridge import CONFIG, DEAD_LETTERS, ROLES, SOURCE, Store
from support.jobs import run_job

from fairpilot.bridge.inbound import Rejected, decode, plan
from fairpilot.config import OperatorConfig
from fairpilot.sandbox.app import Sandbox, documents
from fairpilot.sandbox.testing import TINY_CSV, by_name, eventually, read_until, resource, wait_for

DEAD = "fairpilot-dead-letter"
# The operator's rules a message's uri is held to, as in the sandbox below (a file root).
OPERATOR = OperatorConfig(file_root="/srv/fairpilot")
BIAS_TOPIC, AUTOML_TOPIC, XAI_TOPIC, DATASET_TOPIC = (
    "bias-trigger-events",
    "automl-trigger-events",
    "xai-trigger-events",
    "dataset-events",
)


def bias(**extra: Any) -> dict[str, Any]:
    """A seed bias trigger that would be good but for `extra`."""
    return {**seed.BIAS_TRIGGER, "sensitive_features": ["sex"], **extra}


def nested(depth: int) -> bytes:
    return b'{"user_id": "u", "dataset_id": "d", "metadata": ' + b"[" * depth + b"]" * depth + b"}"


# -- Kafka ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class KafkaCase:
    description: str
    topic: str
    payload: bytes | dict[str, Any]
    reason: str  # the dead letter's fairpilot.dlq.reason
    words: str  # what its fairpilot.dlq.message must say
    headers: tuple[tuple[str, bytes], ...] = ()

    def raw(self) -> bytes:
        if isinstance(self.payload, bytes):
            return self.payload
        return json.dumps(self.payload).encode()


KAFKA_CASES = [
    # JSON bombs
    KafkaCase("JSON nested 5,000 deep", BIAS_TOPIC, nested(5000), "TooDeeplyNested", "32 levels"),
    KafkaCase("JSON nested 40 deep", BIAS_TOPIC, nested(40), "TooDeeplyNested", "32 levels"),
    KafkaCase(
        "10,000 sensitive features",
        BIAS_TOPIC,
        bias(sensitive_features=[f"f{i}" for i in range(10_000)]),
        "InvalidPayload",
        "at most 64 items",
    ),
    KafkaCase(
        "10 MB string (over the size limit)",
        BIAS_TOPIC,
        bias(target_column_name="x" * 10_000_000),
        "PayloadTooLarge",
        "more than the limit of 262144 bytes",
    ),
    KafkaCase(
        "integer of 5,000 digits",
        BIAS_TOPIC,
        b'{"record_count": ' + b"9" * 5000 + b"}",
        "NotJson",
        "digits",
    ),
    # not quite JSON
    KafkaCase(
        "NaN",
        BIAS_TOPIC,
        b'{"user_id": "u", "dataset_id": "d", "record_count": NaN}',
        "NotJson",
        "NaN",
    ),
    KafkaCase(
        "Infinity",
        AUTOML_TOPIC,
        b'{"user_id": "u", "time_budget": Infinity}',
        "NotJson",
        "Infinity",
    ),
    KafkaCase(
        "repeated key",
        BIAS_TOPIC,
        b'{"user_id": "alice", "user_id": "mallory"}',
        "NotJson",
        "'user_id' appears twice",
    ),
    KafkaCase(
        "Latin-1 bytes",
        BIAS_TOPIC,
        json.dumps(bias(user_id="josé"), ensure_ascii=False).encode("latin-1"),
        "NotJson",
        "not UTF-8",
    ),
    KafkaCase("UTF-16", BIAS_TOPIC, json.dumps(bias()).encode("utf-16"), "NotJson", "not UTF-8"),
    KafkaCase(
        "UTF-8 byte-order mark",
        BIAS_TOPIC,
        b"\xef\xbb\xbf" + json.dumps(bias()).encode(),
        "NotJson",
        "BOM",
    ),
    KafkaCase("only white space", BIAS_TOPIC, b"  \n\t ", "EmptyMessage", "no value"),
    # unicode in ids and names
    KafkaCase(
        "NUL in user_id", BIAS_TOPIC, bias(user_id="user\x00123"), "InvalidPayload", "U+0000"
    ),
    KafkaCase(
        "lone surrogate in user_id",
        BIAS_TOPIC,
        b'{"user_id": "u\\ud800", "dataset_id": "d"}',
        "InvalidPayload",
        "user_id",
    ),
    KafkaCase(
        "right-to-left override in user_id",
        BIAS_TOPIC,
        bias(user_id="admin\u202etxt.exe"),
        "InvalidPayload",
        "U+202E",
    ),
    KafkaCase(
        "zero-width space in event_id",
        BIAS_TOPIC,
        bias(event_id="evt\u200b1"),
        "InvalidPayload",
        "U+200B",
    ),
    KafkaCase(
        "newline in target column",
        BIAS_TOPIC,
        bias(target_column_name="income\nx"),
        "InvalidPayload",
        "U+000A",
    ),
    KafkaCase(
        "emoji in dataset_id", BIAS_TOPIC, bias(dataset_id="sales-📈"), "InvalidName", "dataset_id"
    ),
    # invalid Kubernetes names and label values
    KafkaCase("dataset_id '..'", BIAS_TOPIC, bias(dataset_id=".."), "InvalidName", "dataset_id"),
    KafkaCase(
        "dataset_id ending in '-'",
        BIAS_TOPIC,
        bias(dataset_id="sales-"),
        "InvalidName",
        "dataset_id",
    ),
    KafkaCase(
        "model_id with a slash",
        XAI_TOPIC,
        {**seed.XAI_TRIGGER, "model_id": "m/../n"},
        "InvalidName",
        "model_id",
    ),
    KafkaCase(
        "version of 64 characters",
        XAI_TOPIC,
        {**seed.XAI_TRIGGER, "version": "v" * 64},
        "InvalidName",
        "version",
    ),
    KafkaCase(
        "user_id of 129 characters",
        BIAS_TOPIC,
        bias(user_id="u" * 129),
        "InvalidPayload",
        "at most 128",
    ),
    KafkaCase(
        "event_id of 257 characters",
        BIAS_TOPIC,
        bias(event_id="e" * 257),
        "InvalidPayload",
        "at most 256",
    ),
    KafkaCase(
        "event_type of 10,000 characters",
        BIAS_TOPIC,
        bias(event_type="x" * 10_000),
        "InvalidPayload",
        "at most 128",
    ),
    # ids substituted into the data URI template
    KafkaCase(
        "user_id '../../etc'",
        BIAS_TOPIC,
        bias(user_id="../../etc"),
        "UnsafePathSegment",
        "one path segment",
    ),
    KafkaCase(
        "user_id with a slash",
        DATASET_TOPIC,
        {"dataset_id": "d1", "user_id": "team/alice"},
        "UnsafePathSegment",
        "'team/alice'",
    ),
    KafkaCase(
        "user_id '.'",
        AUTOML_TOPIC,
        {**seed.AUTOML_TRIGGER, "user_id": "."},
        "UnsafePathSegment",
        "not starting with '.'",
    ),
    KafkaCase(
        "user_id percent-encoded '..'",
        BIAS_TOPIC,
        bias(user_id="%2e%2e"),
        "UnsafePathSegment",
        "'%'",
    ),
    KafkaCase(
        "user_id with ? and #", BIAS_TOPIC, bias(user_id="a?b#c"), "UnsafePathSegment", "'?'"
    ),
    # path traversal in a message's own uri
    KafkaCase(
        "uri with '..'",
        BIAS_TOPIC,
        bias(uri="file:///data/../etc/passwd"),
        "InvalidPayload",
        "'..' is not allowed",
    ),
    KafkaCase(
        "uri with '%2e%2e'",
        BIAS_TOPIC,
        bias(uri="file:///data/%2E%2e/etc/passwd"),
        "InvalidPayload",
        "'..' is not allowed",
    ),
    KafkaCase(
        "s3 uri with '..'",
        DATASET_TOPIC,
        {"dataset_id": "d", "user_id": "u", "uri": "s3://datasets/u/../../other/x.csv"},
        "InvalidPayload",
        "'..'",
    ),
    KafkaCase(
        "relative file uri", BIAS_TOPIC, bias(uri="file://etc/passwd"), "InvalidPayload", "uri"
    ),
    KafkaCase(
        "uri with NUL", BIAS_TOPIC, bias(uri="file:///data/x.csv\x00.txt"), "InvalidPayload", "uri"
    ),
    KafkaCase(
        "uri with a query",
        BIAS_TOPIC,
        bias(uri="s3://datasets/x.csv?versionId=1"),
        "InvalidPayload",
        "uri",
    ),
    # a message's own uri is held to what the operator allows its user and namespace to read
    KafkaCase(
        "uri outside the file root",
        BIAS_TOPIC,
        bias(uri="file:///etc/passwd"),
        "InvalidURI",
        "outside the allowed root",
    ),
    KafkaCase(
        "uri of the operator's own credentials",
        AUTOML_TOPIC,
        {**seed.AUTOML_TRIGGER, "uri": "file:///proc/self/environ"},
        "InvalidURI",
        "outside the allowed root",
    ),
    KafkaCase(
        "uri with an invisible character",
        BIAS_TOPIC,
        bias(uri="file:///data/a\u200bb.csv"),
        "InvalidPayload",
        "uri",
    ),
    # wrong types, missing fields, huge values
    KafkaCase(
        "time_budget of a year",
        AUTOML_TOPIC,
        {**seed.AUTOML_TRIGGER, "time_budget": str(365 * 24 * 3600)},
        "InvalidPayload",
        "604800",
    ),
    KafkaCase(
        "record_count negative", BIAS_TOPIC, bias(record_count=-1), "InvalidPayload", "record_count"
    ),
    KafkaCase(
        "levels empty", XAI_TOPIC, {**seed.XAI_TRIGGER, "levels": []}, "InvalidPayload", "levels"
    ),
    KafkaCase("task_type a number", BIAS_TOPIC, bias(task_type=3), "InvalidPayload", "task_type"),
    KafkaCase("user_id a list", BIAS_TOPIC, bias(user_id=["a", "b"]), "InvalidPayload", "user_id"),
    KafkaCase(
        "xai trigger without model_id",
        XAI_TOPIC,
        {k: v for k, v in seed.XAI_TRIGGER.items() if k != "model_id"},
        "InvalidPayload",
        "model_id: Field required",
    ),
    KafkaCase(
        "a forged dead-letter reason header",
        BIAS_TOPIC,
        b"not json",
        "NotJson",
        "not JSON",
        headers=(("fairpilot.dlq.reason", b"Forged"),),
    ),
]


@pytest.mark.parametrize("case", KAFKA_CASES, ids=lambda c: c.description)
def test_each_bad_message_is_refused_with_its_reason(case: KafkaCase) -> None:
    store = Store()
    started = time.monotonic()
    with pytest.raises(Rejected) as refused:
        data = decode(case.raw(), CONFIG.max_message_bytes)
        plan(ROLES[case.topic], data, SOURCE, CONFIG, store.get, store.list_all, OPERATOR)
    assert (refused.value.reason, case.words in refused.value.message) == (case.reason, True), (
        refused.value.message
    )
    assert "\n" not in refused.value.message and len(refused.value.message) < 2000
    assert time.monotonic() - started < 1, "a bad message must be cheap to refuse"


# -- resources applied to the API -----------------------------------------------------------
@dataclass(frozen=True)
class ResourceCase:
    description: str
    kind: str
    name: str
    spec: Any
    reason: str  # the Ready condition's reason
    words: str  # what its message must say


def resource_cases(files: dict[str, str]) -> list[ResourceCase]:
    good = files["tiny"]
    cases = [
        ResourceCase(
            "spec a string",
            "Dataset",
            "spec-string",
            "uri: file:///x.csv",
            "InvalidSpec",
            "spec must be a mapping of fields, not str",
        ),
        ResourceCase("spec a list", "Dataset", "spec-list", [good], "InvalidSpec", "not list"),
        ResourceCase(
            "no uri",
            "Dataset",
            "no-uri",
            {"target": "income"},
            "InvalidSpec",
            "uri: Field required",
        ),
        ResourceCase(
            "uri a number",
            "Dataset",
            "uri-number",
            {"uri": 42},
            "InvalidSpec",
            "uri: Input should be a valid string (got 42)",
        ),
        ResourceCase(
            "uri not s3 or file",
            "Dataset",
            "uri-http",
            {"uri": "http://x/y.csv"},
            "InvalidSpec",
            "uri: String should match pattern",
        ),
        ResourceCase(
            "uri with '..'",
            "Dataset",
            "uri-dots",
            {"uri": files["dots"]},
            "InvalidSpec",
            "'..' is not allowed in a URI",
        ),
        ResourceCase(
            "uri with '%2e%2e'",
            "Dataset",
            "uri-encoded-dots",
            {"uri": files["dots"].replace("..", "%2e%2e")},
            "InvalidSpec",
            "'..' is not allowed",
        ),
        ResourceCase(
            "relative file uri",
            "Dataset",
            "uri-relative",
            {"uri": "file://data/tiny.csv"},
            "InvalidSpec",
            "uri",
        ),
        ResourceCase(
            "file uri outside the file root",
            "Dataset",
            "uri-outside",
            {"uri": files["outside"]},
            "InvalidURI",
            "outside the allowed root",
        ),
        ResourceCase(
            "target of 500 KB",
            "Dataset",
            "target-huge",
            {"uri": good, "target": "x" * 500_000},
            "InvalidSpec",
            "target: String should have at most 256 characters",
        ),
        ResourceCase(
            "unknown field",
            "Dataset",
            "unknown-field",
            {"uri": good, "colour": "red"},
            "InvalidSpec",
            "colour: unknown field",
        ),
        ResourceCase(
            "sensitiveFeatures a string",
            "Dataset",
            "features-string",
            {"uri": good, "sensitiveFeatures": "sex"},
            "InvalidSpec",
            "sensitiveFeatures: Input should be a valid list",
        ),
        ResourceCase(
            "taskType unknown",
            "Dataset",
            "task-clustering",
            {"uri": good, "taskType": "clustering"},
            "InvalidSpec",
            "taskType",
        ),
        ResourceCase(
            "userId of 129 characters",
            "Dataset",
            "user-long",
            {"uri": good, "userId": "u" * 129},
            "InvalidSpec",
            "userId",
        ),
        ResourceCase(
            "name with capitals and _",
            "Dataset",
            "Bad_Name",
            {"uri": good},
            "InvalidName",
            "not a DNS-1123 subdomain",
        ),
        ResourceCase(
            "NUL in the target",
            "Dataset",
            "target-nul",
            {"uri": good, "target": "income\x00"},
            "InvalidSpec",  # column names follow one rule in resources and messages
            "target: holds invisible or control characters (U+0000)",
        ),
        ResourceCase(
            "a million columns",
            "Dataset",
            "million-columns",
            {"uri": files["wide"]},
            "TooManyColumns",
            "1000000 columns, more than the limit of 10000",
        ),
        ResourceCase(
            "binary garbage as CSV",
            "Dataset",
            "binary-csv",
            {"uri": files["binary"]},
            "UnreadableData",
            "not UTF-8",
        ),
        ResourceCase(
            "no target",
            "BiasAnalysis",
            "bias-no-target",
            {"datasetRef": "good", "sensitiveFeatures": ["sex"]},
            "InvalidSpec",
            "target: Field required",
        ),
        ResourceCase(
            "datasetRef a number",
            "BiasAnalysis",
            "bias-ref-number",
            {"datasetRef": 7, "target": "income", "sensitiveFeatures": ["sex"]},
            "InvalidSpec",
            "datasetRef: Input should be a valid string",
        ),
        ResourceCase(
            "disparate impact threshold 5",
            "BiasAnalysis",
            "bias-threshold",
            {
                "datasetRef": "good",
                "target": "income",
                "sensitiveFeatures": ["sex"],
                "thresholds": {"disparateImpact": 5},
            },
            "InvalidSpec",
            "thresholds.disparateImpact",
        ),
        ResourceCase(
            "65 sensitive features",
            "BiasAnalysis",
            "bias-many-features",
            {
                "datasetRef": "good",
                "target": "income",
                "sensitiveFeatures": [f"f{i}" for i in range(65)],
            },
            "InvalidSpec",
            "at most 64",
        ),
        ResourceCase(
            "time budget of 30 years",
            "TrainingRun",
            "train-years",
            {"datasetRef": "good", "target": "income", "timeLimitSeconds": 10**9},
            "InvalidSpec",
            "less than or equal to 604800",
        ),
        ResourceCase(
            "resources a string",
            "TrainingRun",
            "train-resources",
            {"datasetRef": "good", "target": "income", "resources": "big"},
            "InvalidSpec",
            "resources",
        ),
        ResourceCase(
            "a million GPUs",
            "TrainingRun",
            "train-gpus",
            {"datasetRef": "good", "target": "income", "resources": {"gpu": 10**6}},
            "InvalidSpec",
            "resources.gpu",
        ),
        ResourceCase(
            "seed negative",
            "TrainingRun",
            "train-seed",
            {"datasetRef": "good", "target": "income", "seed": -1},
            "InvalidSpec",
            "seed",
        ),
        ResourceCase(
            "sampleSize 10**12 (and a missing reference)",
            "Explanation",
            "explain-huge",
            {"trainingRunRef": "nope", "sampleSize": 10**12},
            "InvalidSpec",
            "sampleSize: Input should be less than or equal to 100000",
        ),
        ResourceCase(
            "level unknown",
            "Explanation",
            "explain-guru",
            {"trainingRunRef": "nope", "levels": ["guru"]},
            "InvalidSpec",
            "levels.0",
        ),
        ResourceCase(
            "backgroundSize a word",
            "Explanation",
            "explain-background",
            {"trainingRunRef": "nope", "backgroundSize": "lots"},
            "InvalidSpec",
            "backgroundSize",
        ),
    ]
    return cases


# Refused by the API server before the operator sees them: the user sees the HTTP error.
API_REFUSED = [("a 10 MB spec", "Dataset", "ten-mb", {"uri": "file:///x.csv", "x": "y" * 10**7})]


# -- manifests read by `fairpilot sandbox run DIR` --------------------------------------------
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)
MANIFEST_CASES = [
    ("billion laughs", BOMB, "YAML bomb"),
    ("recursive alias", "a: &a [*a]\n", "levels deep"),
    ("nested 10,000 deep", "[" * 10_000 + "]" * 10_000, "levels deep"),
    (
        "python tag",
        "!!python/object/apply:os.system ['touch /tmp/fairpilot-pwned']\n",
        "could not determine a constructor",
    ),
    ("not YAML", "kind: Dataset\n  metadata: {\n", "not valid YAML"),
    ("a list, not a resource", "- a\n- b\n", "is a list, not a resource"),
    ("17 MB file", "# " + "x" * (17 * 1024 * 1024) + "\n", "more than the limit"),
]


@pytest.mark.parametrize(
    ("description", "text", "words"), MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES]
)
def test_bad_manifests_are_refused_before_anything_is_applied(
    description: str, text: str, words: str, tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"bad\.yaml") as refused:
        documents(tmp_path)
    assert words in str(refused.value)
    assert time.monotonic() - started < 5
    assert not Path("/tmp/fairpilot-pwned").exists()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (MANIFEST_CASES[0][1], "bad.yaml"),
        ("kind: Secret\nmetadata: {name: s}\n", "not FairPilot resources: Secret"),
    ],
)
def test_sandbox_run_says_why_it_refuses_a_manifest(text: str, words: str, tmp_path: Path) -> None:
    from fairpilot.sandbox.cli import run

    (tmp_path / "bad.yaml").write_text(text)
    error = io.StringIO()
    with contextlib.redirect_stderr(error):
        code = run(tmp_path, tmp_path / "artifacts", 10, None)
    assert code == 2
    assert error.getvalue().startswith("fairpilot sandbox run: ") and words in error.getvalue()
    assert not (tmp_path / "artifacts").exists(), "nothing was started"


def test_anchors_and_aliases_in_moderation_still_work(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(
        "kind: Dataset\nmetadata: {name: a, labels: &l {team: x}, annotations: *l}\n"
        "spec: {uri: 'file:///a.csv'}\n"
    )
    (document,) = documents(tmp_path)
    assert document["metadata"]["labels"] == document["metadata"]["annotations"] == {"team": "x"}


# -- the sandbox: resources and messages, then good ones ------------------------------------
@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="module")
def files(root: Path) -> dict[str, str]:
    data = root / "data"
    data.mkdir()
    (data / "tiny.csv").write_text(TINY_CSV)
    with (data / "wide.csv").open("w") as out:
        out.write(",".join(f"c{i}" for i in range(1_000_000)) + "\n")
        out.write(",".join("1" for _ in range(1_000_000)) + "\n")
    # Bytes of no format (a gzip stream would be decompressed: tables.py reads magic bytes).
    noise = random.Random(7)
    (data / "binary.csv").write_bytes(bytes(noise.randrange(128, 256) for _ in range(4096)))
    outside = root.parent / f"{root.name}-outside.csv"
    outside.write_text(TINY_CSV)
    return {
        "tiny": f"file://{data / 'tiny.csv'}",
        "wide": f"file://{data / 'wide.csv'}",
        "binary": f"file://{data / 'binary.csv'}",
        "dots": f"file://{data}/../data/tiny.csv",
        "outside": f"file://{outside}",
    }


@pytest.fixture(scope="module")
def sandbox(root: Path, files: dict[str, str]) -> Iterator[Sandbox]:
    # FAIRPILOT_FILE_ROOT confines every job to `root`, as `make demo` confines them.
    with Sandbox(root / "artifacts", file_root=root) as running:
        running.apply([resource("Dataset", "good", {"uri": files["tiny"]})])
        yield running


def ready(item: dict[str, Any]) -> dict[str, Any]:
    conditions = (item.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def test_bad_resources_fail_with_a_condition_that_says_why(
    sandbox: Sandbox, files: dict[str, str]
) -> None:
    cases = resource_cases(files)
    for case in cases:
        sandbox.apply([{**resource(case.kind, case.name, {}), "spec": case.spec}])
    for description, kind, name, spec in API_REFUSED:
        with pytest.raises(kubernetes.client.ApiException) as refused:
            sandbox.apply([resource(kind, name, spec)])
        assert refused.value.status == 413, description  # Request Entity Too Large

    def settled() -> bool:
        items = by_name(sandbox)
        return all(items.get(c.name, {}).get("status", {}).get("phase") == "Failed" for c in cases)

    eventually(settled, 90)
    items, problems = by_name(sandbox), []
    for case in cases:
        item = items.get(case.name, {})
        condition = ready(item)
        phase = (item.get("status") or {}).get("phase")
        message = condition.get("message", "")
        if (phase, condition.get("reason")) != ("Failed", case.reason) or case.words not in message:
            problems.append(f"{case.description}: {phase} {condition}")
        elif "\n" in message or len(message) > 1000:
            problems.append(f"{case.description}: message not one short line: {message[:200]!r}")
    assert not problems, "\n".join(problems)
    assert by_name(sandbox)["good"]["status"]["phase"] == "Succeeded"
    assert not any(name in items for _, _, name, _ in API_REFUSED)


async def _produce(bootstrap: str, cases: list[KafkaCase], good: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, max_request_size=2**20
    )
    try:  # a start that fails leaves a producer to stop too
        await producer.start()
        for case in cases:
            headers = list(case.headers)
            await producer.send_and_wait(case.topic, case.raw(), key=b"k", headers=headers)
        await producer.send_and_wait(BIAS_TOPIC, json.dumps(good).encode(), key=b"k")
    finally:
        await producer.stop()


# The broker takes messages up to about 1 MB; bigger ones never reach a consumer.
SENDABLE = [case for case in KAFKA_CASES if len(case.raw()) < 900_000]


def test_bad_messages_become_dead_letters_and_consuming_goes_on(
    sandbox: Sandbox, files: dict[str, str]
) -> None:
    assert sandbox.kafka is not None
    good = bias(dataset_id="after-the-corpus", target_column_name="income", uri=files["tiny"])
    asyncio.run(_produce(sandbox.kafka, SENDABLE, good))
    analysis = eventually(
        lambda: [n for n in by_name(sandbox) if n.startswith("after-the-corpus-bias")], 60
    )
    assert analysis, "the bridge stopped consuming"
    letters = read_until(sandbox.kafka, [DEAD], lambda rs: len(rs) >= len(SENDABLE), timeout=60)
    assert letters and len(letters) == len(SENDABLE)
    by_offset = {}
    for letter in letters:
        headers = [(key, value.decode()) for key, value in letter.headers]
        named = dict(headers)
        by_offset[(named["fairpilot.dlq.topic"], int(named["fairpilot.dlq.offset"]))] = (
            letter.value,
            headers,
        )
    offsets: dict[str, int] = {}
    problems = []
    for case in SENDABLE:
        offset = offsets.get(case.topic, 0)
        offsets[case.topic] = offset + 1
        value, headers = by_offset[(case.topic, offset)]
        reasons = [v for k, v in headers if k == "fairpilot.dlq.reason"]
        message = dict(headers)["fairpilot.dlq.message"]
        if value != case.raw():
            problems.append(f"{case.description}: the original bytes were not kept")
        if reasons != [case.reason] or case.words not in message:
            problems.append(f"{case.description}: {reasons} {message[:300]!r}")
    assert not problems, "\n".join(problems)
    # Nothing was made from the corpus; the good message made its Dataset and analysis.
    made = {n for n, i in by_name(sandbox).items() if i["kind"] in ("Dataset", "BiasAnalysis")}
    assert {n for n in made if n.startswith("after-the-corpus")} == {
        n for n in made if "after-the-corpus" in n
    }
    wait_for(sandbox, analysis[0], lambda s: s.get("phase") == "Succeeded", 90)


def test_a_good_pipeline_still_succeeds_after_the_corpus(
    sandbox: Sandbox, files: dict[str, str]
) -> None:
    # Runs last in the module (pytest keeps file order): the same operator, runner and broker
    # that took every bad input above.
    sandbox.apply(
        [
            resource(
                "Dataset",
                "good-pipeline",
                {
                    "uri": files["tiny"],
                    "target": "income",
                    "sensitiveFeatures": ["sex"],
                    "pipeline": {"bias": {"positiveLabel": "yes"}},
                },
            )
        ]
    )
    done = wait_for(sandbox, "good-pipeline", lambda s: s.get("pipeline") == "Succeeded", 90)
    assert done["status"]["phase"] == "Succeeded"
    assert by_name(sandbox)["good-pipeline-bias"]["status"]["phase"] == "Succeeded"


# -- stage jobs: spec files and dataset files ------------------------------------------------
@dataclass(frozen=True)
class JobCase:
    description: str
    stage: str
    spec: dict[str, Any] | str  # a mapping, or the spec file's text as it is
    reason: str
    words: str
    env: dict[str, str] = field(default_factory=dict)


def job_cases(d: Path) -> list[JobCase]:
    tiny = f"file://{d / 'tiny.csv'}"

    def at(name: str) -> str:
        return f"file://{d / name}"

    bias = {"target": "income", "sensitiveFeatures": ["sex"]}
    return [
        JobCase(
            "column limit set to 2",
            "profile",
            {"uri": tiny},
            "TooManyColumns",
            "3 columns, more than the limit of 2",
            {"FAIRPILOT_MAX_COLUMNS": "2"},
        ),
        JobCase(
            "20 MB without a line break",
            "profile",
            {"uri": at("one-line.csv")},
            "HeaderTooLarge",
            "longer than 10240000 bytes",
        ),
        JobCase(
            "a program as CSV",
            "profile",
            {"uri": at("program.csv")},
            "UnreadableData",
            "program.csv",
        ),
        JobCase(
            "NUL bytes in CSV",
            "bias",
            {"dataset": {"uri": at("nul.csv")}, **bias},
            "UnreadableData",
            "NUL bytes",
        ),
        JobCase(
            "Latin-1 CSV",
            "profile",
            {"uri": at("latin1.csv")},
            "UnreadableData",
            "not UTF-8 text (byte 3",
        ),
        JobCase(
            "garbage gzip",
            "profile",
            {"uri": at("garbage.csv.gz")},
            "UnreadableData",
            "not readable as csv",
        ),
        JobCase(
            "Parquet magic, garbage inside",
            "profile",
            {"uri": at("fake.parquet")},
            "UnreadableData",
            "not readable as parquet",
        ),
        JobCase(
            "garbage JSON lines",
            "profile",
            {"uri": at("garbage.jsonl")},
            "UnreadableData",
            "not readable as jsonl",
        ),
        JobCase("YAML bomb spec", "profile", BOMB, "InvalidSpec", "YAML bomb"),
        JobCase(
            "spec nested 10,000 deep",
            "profile",
            "[" * 10_000 + "]" * 10_000,
            "InvalidSpec",
            "levels deep",
        ),
        JobCase(
            "python tag in the spec",
            "profile",
            f"uri: !!python/object/apply:os.system ['touch {d}/pwned']\n",
            "InvalidSpec",
            "could not determine a constructor",
        ),
        JobCase(
            "spec of 2 MB",
            "profile",
            f"uri: {tiny}\n# {'x' * 2 * 2**20}\n",
            "InvalidSpec",
            "more than the limit of 1048576",
        ),
        JobCase(
            "two documents",
            "profile",
            f"uri: {tiny}\n---\nuri: {tiny}\n",
            "InvalidSpec",
            "holds 2 documents",
        ),
        JobCase("spec a list", "profile", f"- {tiny}\n", "InvalidSpec", "mapping of fields"),
        JobCase(
            "tab-indented spec",
            "profile",
            f"dataset:\n\turi: {tiny}\n",
            "InvalidSpec",
            "not valid YAML",
        ),
        JobCase(
            "lone surrogate in the target",
            "profile",
            f'uri: {tiny}\ntarget: "\\ud800"\n',
            "InvalidSpec",
            "target",
        ),
        JobCase(
            "uri with '..'",
            "profile",
            {"uri": f"file://{d}/../{d.name}/tiny.csv"},
            "InvalidSpec",
            "'..' is not allowed in a URI",
        ),
        JobCase(
            "uri with '%2E%2E'",
            "bias",
            {"dataset": {"uri": f"file://{d}/%2E%2E/x.csv"}, **bias},
            "InvalidSpec",
            "'..' is not allowed",
        ),
        JobCase(
            "uri outside the file root",
            "profile",
            # A file that exists, outside the root that holds the data and the outputs.
            {"uri": f"file://{Path(json.__file__).resolve()}", "format": "csv"},
            "InvalidURI",
            "outside the allowed root",
            {"FAIRPILOT_FILE_ROOT": str(d.parent)},
        ),
        JobCase(
            "sampleSize 10**12",
            "explain",
            {"model": {"uri": tiny}, "dataset": {"uri": tiny}, "sampleSize": 10**12},
            "InvalidSpec",
            "sampleSize",
        ),
        JobCase(
            "time budget of a year",
            "train",
            {"dataset": {"uri": tiny}, "target": "income", "timeLimitSeconds": 365 * 86400},
            "InvalidSpec",
            "604800",
        ),
        JobCase(
            "target of 500 KB",
            "profile",
            {"uri": tiny, "target": "t" * 500_000},
            "InvalidSpec",
            "at most 256 characters",
        ),
        JobCase(
            "gzip bomb over a 1 MiB limit",
            "bias",
            {"dataset": {"uri": at("bomb.csv.gz")}, **bias},
            "DecompressedTooLarge",
            "more than 1,048,576 bytes (1 MiB), the limit set by FAIRPILOT_MAX_DECOMPRESSED_BYTES",
            {"FAIRPILOT_MAX_DECOMPRESSED_BYTES": "1Mi"},
        ),
        JobCase(
            "Parquet of 1,500 row groups",
            "profile",
            {"uri": at("row-groups.parquet")},
            "TooManyRowGroups",
            "1,500 row groups, more than the limit of 1,000",
            {"FAIRPILOT_MAX_PARQUET_ROW_GROUPS": "1000"},
        ),
    ]


@pytest.fixture(scope="module")
def job_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("job-files")
    (d / "tiny.csv").write_text(TINY_CSV)
    (d / "one-line.csv").write_bytes(b"a" * 20_000_000)
    (d / "program.csv").write_bytes(Path(sys.executable).resolve().read_bytes()[:200_000])
    (d / "nul.csv").write_bytes(b"age,sex\x00,income\n1,F,no\n")
    (d / "latin1.csv").write_bytes("café,income\n1,no\n".encode("latin-1"))
    (d / "garbage.csv.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00garbage" * 100)
    (d / "fake.parquet").write_bytes(b"PAR1" + b"\x07not a parquet body" * 50 + b"PAR1")
    (d / "garbage.jsonl").write_text('{"a": 1}\n{not json at all\n')
    (d / "bomb.csv.gz").write_bytes(gzip.compress(TINY_CSV.encode() * 200_000))
    pq.write_table(pa.table({"age": list(range(3000))}), d / "row-groups.parquet", row_group_size=2)
    return d


def test_every_bad_spec_and_file_fails_the_job_cleanly(job_files: Path, tmp_path: Path) -> None:
    problems = []
    for number, case in enumerate(job_cases(job_files)):
        output = tmp_path / f"case-{number}"
        run = run_job(case.stage, case.spec, output, env=case.env, timeout=60)
        lines = run.stderr.strip().splitlines()
        error = run.error if (output / "error.json").exists() else {}
        checks = {
            "exit code 2": run.returncode == 2,
            "one line on stderr": len(lines) == 1,
            f"reason {case.reason}": error.get("reason") == case.reason,
            f"message says {case.words!r}": case.words in error.get("message", ""),
            "no result.json": not (output / "result.json").exists(),
        }
        failed = [check for check, ok in checks.items() if not ok]
        if failed:
            problems.append(f"{case.description}: {failed}; stderr={run.stderr[-300:]!r}")
    assert not problems, "\n".join(problems)
    assert not (job_files / "pwned").exists(), "a spec file ran a command"


def test_unicode_that_is_merely_unusual_is_read_as_it_is(tmp_path: Path) -> None:
    data = tmp_path / "unicode.csv"
    data.write_text("âge 📈,sex\u202e,收入\n25,F,no\n38,M,yes\n52,M,yes\n41,F,no\n")
    run = run_job("profile", {"uri": f"file://{data}", "target": "收入"}, tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert run.result["columns"] == 3


def test_the_corpus_has_at_least_fifty_distinct_bad_inputs(tmp_path: Path) -> None:
    dummy: dict[str, str] = defaultdict(lambda: "file:///x.csv")
    ways = {
        "kafka": [d for d, _, _ in DEAD_LETTERS] + [c.description for c in KAFKA_CASES],
        "resources": [c.description for c in resource_cases(dummy)]
        + [d for d, *_ in API_REFUSED]
        + [d for d, *_ in MANIFEST_CASES],
        "jobs": [c[0] for c in existing_job_cases(dummy)]
        + [c.description for c in job_cases(tmp_path)],
    }
    for way, names in ways.items():
        assert len(names) == len(set(names)), f"{way}: a case is listed twice"
        assert len(names) >= 15, way
    assert sum(len(names) for names in ways.values()) >= 50
