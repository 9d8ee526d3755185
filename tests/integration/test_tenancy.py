"""Tenants stay apart (issue 13, classes 2, 5, 6, 7): each namespace and user reads only its own
data, writes under its own prefix with its own credentials; Kafka producers act only for the
users and namespaces they may; only a Dataset's own resources move its pipeline; one set of
input rules; the sandbox confines file:// URIs by default."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from support import seed
from support.bridge import Store
from support.jobs import run_job

from fairpilot import access
from fairpilot.api import DatasetSpec, TrainingRunSpec
from fairpilot.api.kinds import BY_KIND, DATASET, TRAINING_RUN
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.inbound import Rejected, Source, decode, plan
from fairpilot.cli import build_parser, sandbox_file_root
from fairpilot.config import OperatorConfig
from fairpilot.events.payloads import AutomlTrigger
from fairpilot.jobs import build_job
from fairpilot.references import UnresolvedReference, resolve
from fairpilot.sandbox.app import Sandbox, sandbox_config
from fairpilot.sandbox.runner import LocalJobRunner, job_container
from fairpilot.sandbox.testing import (
    DEAD,
    TINY_CSV,
    by_name,
    eventually,
    produce,
    read_until,
    resource,
    wait_for,
)

TEMPLATE = "s3://datasets/{namespace}/{user_id}/"
ALLOWED = access.ALLOWED_LOCATIONS_ENV
TENANTS = OperatorConfig(
    artifact_root="s3://artifacts",
    data_locations=[TEMPLATE],
    s3_credentials_secret="fairpilot-s3",
    namespaces={
        "team-b": {
            "data_locations": ["s3://team-b-data/"],
            "artifact_root": "s3://fairpilot-{namespace}",
            "s3_credentials_secret": "team-b-s3",
        }
    },
)


def dataset(uri: str, namespace: str, user: str | None = "alice") -> dict[str, Any]:
    spec: dict[str, Any] = {"uri": uri}
    if user is not None:
        spec["userId"] = user
    return {
        "apiVersion": DATASET.api_version,
        "kind": "Dataset",
        "metadata": {"name": "d", "namespace": namespace, "uid": "uid-1", "generation": 1},
        "spec": spec,
    }


def refusal(uri: str, namespace: str, user: str | None = "alice") -> str | None:
    item = dataset(uri, namespace, user)
    try:
        resolve(DATASET, item["spec"], lambda k, n: None, "d", TENANTS, namespace=namespace)
    except UnresolvedReference as exc:
        assert not exc.waiting
        return exc.reason
    return None


# -- the rules ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "namespace", "user", "reason"),
    [
        ("s3://datasets/team-a/alice/x.csv", "team-a", "alice", None),
        ("s3://datasets/team-a/alice/sub/x.csv", "team-a", "alice", None),
        ("s3://datasets/team-a/bob/x.csv", "team-a", "alice", "LocationNotAllowed"),
        ("s3://datasets/team-a/alice2/x.csv", "team-a", "alice", "LocationNotAllowed"),
        ("s3://datasets/team-b/alice/x.csv", "team-a", "alice", "LocationNotAllowed"),
        ("s3://datasets/team-a/alice/x.csv", "team-a", None, "LocationNotAllowed"),
        ("s3://datasets-2/team-a/alice/x.csv", "team-a", "alice", "LocationNotAllowed"),
        ("s3://artifacts/team-a/alice/x.csv", "team-a", "alice", "LocationNotAllowed"),
        ("file:///data/team-a/alice/x.csv", "team-a", "alice", "LocationNotAllowed"),
        # team-b's own rule replaces the operator-wide one
        ("s3://team-b-data/any/x.csv", "team-b", "bob", None),
        ("s3://datasets/team-b/bob/x.csv", "team-b", "bob", "LocationNotAllowed"),
        # a user id that cannot stand in a path as itself is given no folder
        ("s3://datasets/team-a/a/b/x.csv", "team-a", "a/b", "LocationNotAllowed"),
    ],
)
def test_a_dataset_reads_only_where_its_namespace_and_user_may(
    uri: str, namespace: str, user: str | None, reason: str | None
) -> None:
    assert refusal(uri, namespace, user) == reason


def test_locations_are_folders_not_string_prefixes() -> None:
    assert access.within("s3://b/alice/x", "s3://b/alice")
    assert access.within("s3://b/alice/x", "s3://b/alice/")
    assert not access.within("s3://b/alice2/x", "s3://b/alice")
    assert not access.within("s3://b2/alice/x", "s3://b/")
    assert access.within("file:///data/a/x.csv", "file:///data/a")
    assert not access.within("file:///data/a/../b/x.csv", "file:///data/a")
    assert not access.within("file:///data/a/%2E%2E/b/x.csv", "file:///data/a")
    assert not access.within("file:///data/ab/x.csv", "file:///data/a")
    assert not access.within("s3://b/alice/x", "file:///b/alice")


@pytest.mark.parametrize(
    "template",
    ["http://x/{namespace}", "s3://b/{user}", "s3://b/{namespace}/../x", "s3:///{namespace}"],
)
def test_a_bad_location_template_is_refused_with_the_configuration(template: str) -> None:
    with pytest.raises(ValueError, match=r"template|names|location|bucket|'\.\.'"):
        OperatorConfig(data_locations=[template])


def test_each_namespace_writes_under_its_own_prefix_with_its_own_secret() -> None:
    made = {}
    for namespace in ("team-a", "team-b"):
        item = dataset("s3://x/y.csv", namespace) | {"kind": "TrainingRun"}
        item["spec"] = {"datasetRef": "d", "target": "y", "userId": "alice"}
        job = build_job(TRAINING_RUN, item, TENANTS, "g1")
        made[namespace] = job_container(job)
    args = {ns: c["args"][c["args"].index("--output") + 1] for ns, c in made.items()}
    assert args["team-a"] == "s3://artifacts/team-a/alice/trainingruns/d/uid-1/g1"
    assert args["team-b"] == "s3://fairpilot-team-b/alice/trainingruns/d/uid-1/g1"
    assert made["team-a"]["envFrom"] == [{"secretRef": {"name": "fairpilot-s3"}}]
    assert made["team-b"]["envFrom"] == [{"secretRef": {"name": "team-b-s3"}}]
    allowed = {
        ns: json.loads(next(e["value"] for e in c["env"] if e["name"] == ALLOWED))
        for ns, c in made.items()
    }
    assert allowed["team-a"] == ["s3://datasets/team-a/alice/", "s3://artifacts/team-a"]
    assert allowed["team-b"] == ["s3://team-b-data/", "s3://fairpilot-team-b"]


def test_a_model_of_another_namespace_is_not_read() -> None:
    """Every location a job spec reads is checked, not only a Dataset's: a TrainingRun whose
    status was made to point at another namespace's model is refused."""
    run = {
        "metadata": {"name": "m", "namespace": "team-a", "uid": "u", "generation": 1},
        "spec": {"datasetRef": "d", "target": "y"},
        "status": {
            "phase": "Succeeded",
            "observedGeneration": 1,
            "modelUri": "s3://fairpilot-team-b/alice/models/m/v1",
            "modelVersion": "v1",
            "modelDigest": "sha256:" + "0" * 64,
        },
    }
    data = dataset("s3://datasets/team-a/alice/x.csv", "team-a")
    data["status"] = {"phase": "Succeeded", "observedGeneration": 1}
    found = {("TrainingRun", "m"): run, ("Dataset", "d"): data}
    spec = {"trainingRunRef": "m", "userId": "alice"}
    with pytest.raises(UnresolvedReference) as refused:
        resolve(
            BY_KIND["Explanation"], spec, lambda k, n: found.get((k, n)), "e", TENANTS,
            namespace="team-a",
        )  # fmt: skip
    assert refused.value.reason == "LocationNotAllowed" and "model" in refused.value.message


# -- the stage checks again in the pod ------------------------------------------------------
def test_the_stage_refuses_a_location_outside_what_its_pod_may_read(tmp_path: Path) -> None:
    """A job spec changed on its way (the ConfigMap) still reads nothing of another tenant:
    the pod checks every URI against FAIRPILOT_ALLOWED_LOCATIONS."""
    mine, theirs = tmp_path / "team-a", tmp_path / "team-b"
    for folder in (mine, theirs):
        folder.mkdir()
        (folder / "tiny.csv").write_text(TINY_CSV)
    env = {access.ALLOWED_LOCATIONS_ENV: json.dumps([f"file://{mine}", f"file://{tmp_path}/out"])}
    refused = run_job(
        "profile", {"uri": f"file://{theirs}/tiny.csv"}, tmp_path / "out" / "x", env
    )
    assert refused.returncode == 2, refused.stderr
    assert refused.error["reason"] == "LocationNotAllowed", refused.error
    assert str(theirs) in refused.error["message"]
    allowed = run_job(
        "profile", {"uri": f"file://{mine}/tiny.csv"}, tmp_path / "out" / "y", env
    )
    assert allowed.returncode == 0, allowed.stderr
    (mine / "planted.csv").symlink_to(theirs / "tiny.csv")  # inside as written, not as read
    linked = run_job(
        "profile", {"uri": f"file://{mine}/planted.csv"}, tmp_path / "out" / "z", env
    )
    assert linked.returncode == 2 and linked.error["reason"] == "LocationNotAllowed"


# -- credentials: the pod's own namespace's Secret --------------------------------------------
def test_a_stage_pod_gets_its_own_namespaces_secret_and_no_other(tmp_path: Path) -> None:
    """The runner resolves envFrom as the kubelet does, from the emulated API server: the same
    Secret name in two namespaces gives each namespace's pods its own credentials."""
    config = sandbox_config(tmp_path / "artifacts", s3_credentials_secret="fairpilot-s3")
    with Sandbox(tmp_path / "artifacts", kafka=False, config=config, noop_jobs=True) as sandbox:
        core = sandbox.cluster.core
        for namespace in ("team-a", "team-b"):
            core.create_namespaced_secret(
                namespace,
                {
                    "metadata": {"name": "fairpilot-s3"},
                    "data": {"AWS_ACCESS_KEY_ID": base64.b64encode(namespace.encode()).decode()},
                },
            )
        runner = LocalJobRunner(sandbox.cluster.client)
        for namespace in ("team-a", "team-b", "team-c"):
            item = dataset("file:///x.csv", namespace)
            container = job_container(build_job(DATASET, item, config, "g1"))
            if namespace == "team-c":  # no Secret of that name there: the pod cannot start
                with pytest.raises(Exception, match="not found in namespace 'team-c'"):
                    runner._secret_env(namespace, container)
                continue
            assert runner._secret_env(namespace, container) == {"AWS_ACCESS_KEY_ID": namespace}


# -- the sandbox, end to end ----------------------------------------------------------------
def test_tenants_in_the_sandbox_read_only_their_own_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for namespace in ("team-a", "team-b"):
        (data / namespace / "alice").mkdir(parents=True)
        (data / namespace / "alice" / "tiny.csv").write_text(TINY_CSV)
    config = sandbox_config(
        tmp_path / "artifacts",
        tmp_path,
        data_locations=[f"file://{data}/{{namespace}}/{{user_id}}/"],
    )
    with Sandbox(
        tmp_path / "artifacts", namespace="team-a", kafka=False, config=config, file_root=tmp_path
    ) as sandbox:
        own = resource(
            "Dataset", "own", {"uri": f"file://{data}/team-a/alice/tiny.csv", "userId": "alice"}
        )
        other = resource(  # the same user, in another namespace's folder
            "Dataset", "other", {"uri": f"file://{data}/team-b/alice/tiny.csv", "userId": "alice"}
        )
        sandbox.apply([own, other])
        done = ("Succeeded", "Failed")
        failed = wait_for(sandbox, "other", lambda s: s.get("phase") in done)["status"]
        assert failed["phase"] == "Failed"
        ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "LocationNotAllowed" and "team-b" in ready["message"]
        succeeded = wait_for(sandbox, "own", lambda s: s.get("phase") in done)["status"]
        assert succeeded["phase"] == "Succeeded", succeeded
        assert succeeded["outputUri"].startswith(f"file://{tmp_path}/artifacts/team-a/alice/")
        jobs = sandbox.cluster.batch.list_namespaced_job("team-a").items
        assert [job.metadata.name for job in jobs] == ["fp-profile-own-g1"]


# -- Kafka ------------------------------------------------------------------------------------
BRIDGE = BridgeConfig(
    bootstrap_servers="unused:9092",
    allowed_namespaces=["team-a", "team-b"],
    data_uri_template="s3://datasets/team-a/{user_id}/{dataset_id}.csv",
)


def kafka_plan(
    payload: dict[str, Any], topic: str = "automl-trigger-events", bridge: BridgeConfig = BRIDGE
) -> list[dict[str, Any]]:
    store = Store()
    data = decode(json.dumps(payload).encode(), bridge.max_message_bytes)
    role = bridge.routes()[topic]
    return plan(role, data, Source(topic, 0, 1), bridge, store.get, store.list_all, TENANTS)


def trigger(**extra: Any) -> dict[str, Any]:
    return {**seed.AUTOML_TRIGGER, "user_id": "alice", "namespace": "team-a", **extra}


def test_a_messages_uri_must_lie_where_its_user_and_namespace_may_read() -> None:
    inside = kafka_plan(trigger(uri="s3://datasets/team-a/alice/x.csv"))
    assert inside[0]["spec"]["uri"] == "s3://datasets/team-a/alice/x.csv"
    from_template = kafka_plan(trigger())
    assert from_template[0]["spec"]["uri"].startswith("s3://datasets/team-a/alice/")
    for uri in (
        "s3://datasets/team-a/bob/x.csv",  # another user's
        "s3://datasets/team-b/alice/x.csv",  # another namespace's
        "s3://artifacts/team-a/alice/models/m/v1/predictor.pkl",
        "file:///etc/passwd",
    ):
        with pytest.raises(Rejected) as refused:
            kafka_plan(trigger(uri=uri))
        assert refused.value.reason == "LocationNotAllowed", uri
    with pytest.raises(Rejected) as refused:  # team-b: its own data bucket only
        kafka_plan(trigger(namespace="team-b", uri="s3://datasets/team-a/alice/x.csv"))
    assert refused.value.reason == "LocationNotAllowed"


PRINCIPALS = BRIDGE.model_copy(
    update={
        "principals": BridgeConfig.model_validate(
            {
                "bootstrap_servers": "x:1",
                "principals": {
                    "billing": {"userIds": ["alice"], "namespaces": ["team-a"]},
                    "ops": {"userIds": ["*"], "namespaces": ["team-a", "team-b"]},
                },
            }
        ).principals
    }
)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("automl-trigger-events.billing", trigger(), None),
        ("automl-trigger-events.billing", trigger(user_id="bob"), "UserNotAllowed"),
        ("automl-trigger-events.billing", trigger(namespace="team-b"), "NamespaceNotAllowed"),
        ("automl-trigger-events.ops", trigger(user_id="bob"), None),
        ("automl-trigger-events", trigger(), "PrincipalUnknown"),
    ],
)
def test_a_principal_acts_only_for_its_users_and_namespaces(
    topic: str, payload: dict[str, Any], reason: str | None
) -> None:
    uri = f"s3://datasets/team-a/{payload['user_id']}/x.csv"
    try:
        made = kafka_plan({**payload, "uri": uri}, topic, PRINCIPALS)
    except Rejected as refused:
        assert refused.reason == reason
        return
    assert reason is None
    assert made[-1]["spec"]["userId"] == payload["user_id"]


def test_principals_come_from_the_environment_and_name_topics() -> None:
    env = BRIDGE.to_env() | {
        "FAIRPILOT_KAFKA_PRINCIPALS": '{"billing": {"userIds": ["alice"]}}'
    }
    config = BridgeConfig.from_env(env)
    assert config is not None and config.principals["billing"].user_ids == ["alice"]
    assert config.routes()["xai-trigger-events.billing"] == "xai_trigger"
    assert BridgeConfig.from_env(config.to_env()) == config
    with pytest.raises(ValueError, match="topic suffix"):
        BridgeConfig(bootstrap_servers="x:1", principals={"a b": {"user_ids": ["x"]}})


# -- one set of input rules ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_id", "model 1"),
        ("model_id", "m" * 64),
        ("model_id", "-m"),
        ("version", "v 1"),
        ("user_id", "ali\u200bce"),
        ("user_id", "a\x00b"),
        ("user_id", "x" * 129),
        ("target_column_name", "in\u202ecome"),
    ],
)
def test_resources_and_messages_refuse_the_same_ids(field: str, value: str) -> None:
    crd_field = {"model_id": "modelId", "version": "version", "user_id": "userId",
                 "target_column_name": "target"}[field]  # fmt: skip
    spec = {"datasetRef": "d", "target": "y", crd_field: value}
    with pytest.raises(ValueError):
        TrainingRunSpec.model_validate(spec)
    with pytest.raises(ValueError):
        AutomlTrigger.model_validate({**seed.AUTOML_TRIGGER, field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("model_id", "model_v2"), ("user_id", "ada@example.org"), ("user_id", "Zoë 🦊"),
     ("target_column_name", "income >50K")],
)  # fmt: skip
def test_resources_and_messages_accept_the_same_ids(field: str, value: str) -> None:
    crd_field = {"model_id": "modelId", "user_id": "userId", "target_column_name": "target"}
    TrainingRunSpec.model_validate({"datasetRef": "d", "target": "y", crd_field[field]: value})
    AutomlTrigger.model_validate({**seed.AUTOML_TRIGGER, field: value})
    if field == "user_id":
        DatasetSpec.model_validate({"uri": "s3://bucket/k.csv", "userId": value})


# -- only owners move a pipeline ------------------------------------------------------------
def test_a_label_does_not_make_a_resource_part_of_a_pipeline(tmp_path: Path) -> None:
    """A TrainingRun labelled as another's pipeline step, and one that took the name of the
    pipeline's next step, neither finish nor steer the Dataset's pipeline."""
    with Sandbox(tmp_path / "artifacts", kafka=False, noop_jobs=True) as sandbox:
        pipeline = resource(
            "Dataset", "victim",
            {"uri": "file:///x.csv", "target": "y", "pipeline": {"training": {}}},
        )  # fmt: skip
        # Taken before the pipeline could make it: the name of its training step.
        squatter = resource("TrainingRun", "victim-train", {"datasetRef": "victim", "target": "y"})
        # Claims, by label alone, to be the pipeline's step.
        impostor = resource("Explanation", "impostor", {"trainingRunRef": "victim-train"})
        impostor["metadata"]["labels"] = {"fairpilot.io/pipeline": "victim"}
        sandbox.apply([squatter, impostor])
        sandbox.apply([pipeline])
        status = wait_for(
            sandbox, "victim", lambda s: s.get("pipeline") not in (None, "Running"), 60
        )["status"]
        assert status["pipeline"] == "Failed", status
        assert "not this pipeline's" in status["pipelineMessage"]
        wait_for(sandbox, "impostor", lambda s: s.get("phase") in ("Succeeded", "Failed"))
        assert eventually(
            lambda: by_name(sandbox)["victim"]["status"].get("pipeline") == "Failed", 3
        ), "the impostor's end must not mark the pipeline Succeeded"


# -- the sandbox confines file:// by default ------------------------------------------------
def test_the_sandbox_confines_file_uris_unless_told_otherwise(tmp_path: Path) -> None:
    parse = build_parser().parse_args
    artifacts = tmp_path / "fp" / "artifacts"
    assert sandbox_file_root(parse(["sandbox", "run", "d", "--artifacts", str(artifacts)])) == (
        artifacts.parent.resolve()
    )
    assert sandbox_file_root(parse(["sandbox", "up", "--artifacts", str(artifacts)])) == (
        artifacts.parent.resolve()
    )
    chosen = parse(["sandbox", "up", "--artifacts", str(artifacts), "--file-root", str(tmp_path)])
    assert sandbox_file_root(chosen) == tmp_path.resolve()
    assert sandbox_file_root(parse(["sandbox", "up", "--any-file"])) is None
    with pytest.raises(SystemExit, match="outside --file-root"):
        sandbox_file_root(
            parse(["sandbox", "up", "--artifacts", str(artifacts), "--file-root", "/srv"])
        )
    with pytest.raises(SystemExit):
        parse(["sandbox", "up", "--any-file", "--file-root", "/srv"])


def test_principals_through_the_broker(tmp_path: Path) -> None:
    """The bridge consumes each principal's own topics; what a principal may not do, and a
    message on a shared topic, become dead letters with their reasons."""
    principals = {"billing": {"user_ids": ["alice"], "namespaces": ["default"]}}
    with Sandbox(
        tmp_path / "artifacts", noop_jobs=True, bridge_settings={"principals": principals}
    ) as sandbox:
        assert sandbox.kafka is not None
        message = {**seed.BIAS_TRIGGER, "sensitive_features": ["sex"], "user_id": "alice"}
        produce(
            sandbox.kafka,
            [
                ("bias-trigger-events.billing", {**message, "dataset_id": "granted"}),
                ("bias-trigger-events.billing", {**message, "dataset_id": "bob",
                                                 "user_id": "bob"}),
                ("bias-trigger-events", {**message, "dataset_id": "shared"}),
            ],
        )  # fmt: skip
        letters = read_until(sandbox.kafka, [DEAD], lambda found: len(found) >= 2, timeout=60)
        reasons = sorted(dict(dl.headers)["fairpilot.dlq.reason"].decode() for dl in letters)
        assert reasons == ["PrincipalUnknown", "UserNotAllowed"]
        made = eventually(lambda: [n for n in by_name(sandbox) if n.startswith("granted-bias")])
        assert made, "the granted message became its analysis"
        assert not [n for n in by_name(sandbox) if n.startswith(("bob", "shared"))]


def test_the_data_uri_template_may_name_the_namespace() -> None:
    bridge = BRIDGE.model_copy(
        update={"data_uri_template": "s3://datasets/{namespace}/{user_id}/{dataset_id}.csv"}
    )
    made = kafka_plan({**trigger(), "dataset_id": "d1"}, bridge=bridge)
    assert made[0]["spec"]["uri"] == "s3://datasets/team-a/alice/d1.csv"
