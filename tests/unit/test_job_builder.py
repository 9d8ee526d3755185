"""From resource to Job: reference resolution and the Job manifests, without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fairpilot.api import JOB_SPECS
from fairpilot.api.kinds import BY_KIND, DATASET, EXPLANATION, TRAINING_RUN
from fairpilot.config import GpuConfig, OperatorConfig
from fairpilot.jobs import GpuNotAllowed, build_job, object_name, spec_config_map
from fairpilot.references import UnresolvedReference, job_spec, resolve
from fairpilot.runs import next_version, output_uri, parse_run, run_id

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "adult" / "stages"
# Model digests as a train stage reports them (result.json modelDigest).
DIGEST = {"v1": "sha256:" + "1" * 64, "v2": "sha256:" + "2" * 64}


def resource(
    document: dict[str, Any], generation: int = 1, status: dict | None = None
) -> dict[str, Any]:
    meta = {
        "namespace": "ml",
        "uid": f"uid-{document['metadata']['name']}",
        "generation": generation,
    }
    return {**document, "metadata": {**document["metadata"], **meta}, "status": status or {}}


@pytest.fixture
def cluster() -> dict[tuple[str, str], dict[str, Any]]:
    """The four example resources, the earlier stages finished."""
    objects = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            objects[(document["kind"], document["metadata"]["name"])] = resource(document)
    done = {"phase": "Succeeded", "observedGeneration": 1, "runId": "g1"}
    for key in objects:
        if key[0] == "Dataset":
            objects[key]["status"] = {**done, "outputUri": f"s3://artifacts/{key[1]}/g1"}
    objects[("BiasAnalysis", "adult-bias")]["status"] = {
        **done,
        "reweighingUri": "s3://artifacts/demo/bias/reweighing.json",
    }
    objects[("TrainingRun", "adult-income")]["status"] = {
        **done,
        "modelUri": "s3://artifacts/demo/train/model",
        "modelVersion": "v1",
        "modelDigest": DIGEST["v1"],
    }
    return objects


def lookup_in(objects):
    return lambda kind, name: objects.get((kind, name))


# A ModelMonitor's job spec is one window's: these batches.
WINDOW = {"batches": [{"uri": "file:///tmp/fairpilot/data/adult-batches/1.csv"}]}


def window_of(kind: str) -> dict[str, Any] | None:
    return WINDOW if kind == "ModelMonitor" else None


def test_every_example_resolves_to_a_valid_job_spec(cluster) -> None:
    for (kind, _), obj in cluster.items():
        spec = job_spec(BY_KIND[kind], obj["spec"], lookup_in(cluster), window=window_of(kind))
        JOB_SPECS[BY_KIND[kind].stage].model_validate(spec)


def test_the_owner_travels_into_every_job_spec(cluster) -> None:
    for obj in cluster.values():
        obj["spec"]["userId"] = "alice@example.org"
    for (kind, _), obj in cluster.items():
        spec = job_spec(BY_KIND[kind], obj["spec"], lookup_in(cluster), window=window_of(kind))
        assert spec["userId"] == "alice@example.org", kind


@pytest.mark.parametrize(
    ("user", "segment"),
    [
        (None, "~none"),
        ("alice", "alice"),
        ("alice@example.org", "alice~40example.org"),
        ("..", "~2E."),
        (".", "~2E"),
        ("../../etc", "~2E.~2F..~2Fetc"),
    ],
)
def test_artifacts_go_under_one_path_segment_per_user(
    cluster, user: str | None, segment: str
) -> None:
    obj = cluster[("BiasAnalysis", "adult-bias")]
    obj["spec"].pop("userId")  # the example's owner
    if user is not None:
        obj["spec"]["userId"] = user
    config = OperatorConfig(artifact_root="s3://artifacts/")
    uri = output_uri(config, BY_KIND["BiasAnalysis"], obj, "g1")
    # Under the namespace's own prefix (ml), then the user's folder.
    assert uri == f"s3://artifacts/ml/{segment}/biasanalyses/adult-bias/uid-adult-bias/g1"


def test_no_two_runs_write_to_one_place(cluster) -> None:
    """The output location is per resource (its uid: a resource deleted and created again
    under the same name is another) and per run (a new generation, a re-run)."""
    config = OperatorConfig(artifact_root="s3://artifacts")
    obj = cluster[("TrainingRun", "adult-income")]
    again = {**obj, "metadata": {**obj["metadata"], "uid": "uid-the-second-one"}}
    places = {
        output_uri(config, TRAINING_RUN, resource, run)
        for resource in (obj, again)
        for run in ("g1", "g1r1", "g1r2", "g2", "g12", "g1r12")
    }
    assert len(places) == 12
    names = {object_name(TRAINING_RUN, "x" * 250, run) for run in ("g1", "g1r1", "g11", "g2")}
    assert len(names) == 4 and all(len(name) <= 63 for name in names)


@pytest.mark.parametrize(("generation", "rerun"), [(1, 0), (1, 1), (7, 0), (12, 30)])
def test_run_ids_read_back(generation: int, rerun: int) -> None:
    assert parse_run(run_id(generation, rerun)) == (generation, rerun)


@pytest.mark.parametrize(
    ("version", "taken", "expected"),
    [
        ("v1", set(), "v1"),
        ("v1", {"v1"}, "v2"),
        ("v1", {"v1", "v2", "v3"}, "v4"),
        ("v9", {"v9"}, "v10"),
        ("1.4", {"1.4", "1.5"}, "1.6"),
        ("beta", {"beta"}, "beta-2"),
        ("beta", {"beta", "beta-2"}, "beta-3"),
    ],
)
def test_a_taken_version_gives_the_next_free_one(version, taken, expected) -> None:
    chosen = next_version(version, taken)
    assert chosen == expected and chosen not in taken


def test_training_run_references_become_locations(cluster) -> None:
    spec = job_spec(
        TRAINING_RUN, cluster[("TrainingRun", "adult-income")]["spec"], lookup_in(cluster)
    )
    assert spec["dataset"] == {"uri": "file:///tmp/fairpilot/data/adult.csv"}
    assert spec["testDataset"] == {"uri": "file:///tmp/fairpilot/data/adult_test.csv"}
    assert spec["mitigation"] == {"reweighing": {"uri": "s3://artifacts/demo/bias/reweighing.json"}}
    assert "datasetRef" not in spec and "testDatasetRef" not in spec
    assert spec["timeLimitSeconds"] == 60


def test_explanation_gets_the_model_and_the_test_rows(cluster) -> None:
    spec = dict(cluster[("Explanation", "adult-income-explained")]["spec"])
    spec.pop("datasetRef")
    resolved = job_spec(EXPLANATION, spec, lookup_in(cluster))
    assert resolved["model"] == {"uri": "s3://artifacts/demo/train/model", "digest": DIGEST["v1"]}
    assert resolved["dataset"] == {"uri": "file:///tmp/fairpilot/data/adult_test.csv"}


def test_missing_and_unfinished_references(cluster) -> None:
    lookup = lookup_in(cluster)
    spec = {**cluster[("TrainingRun", "adult-income")]["spec"], "datasetRef": "nope"}
    with pytest.raises(UnresolvedReference, match="Dataset 'nope' does not exist") as missing:
        job_spec(TRAINING_RUN, spec, lookup)
    assert missing.value.reason == "ReferenceNotFound" and missing.value.waiting
    cluster[("BiasAnalysis", "adult-bias")]["status"] = {"phase": "Running"}
    with pytest.raises(
        UnresolvedReference, match="waiting for BiasAnalysis 'adult-bias'"
    ) as pending:
        job_spec(TRAINING_RUN, cluster[("TrainingRun", "adult-income")]["spec"], lookup)
    assert pending.value.reason == "ReferenceNotReady" and pending.value.waiting
    # Succeeded, but for an earlier spec: the operator has not looked at the new one yet.
    cluster[("BiasAnalysis", "adult-bias")]["metadata"]["generation"] = 2
    cluster[("BiasAnalysis", "adult-bias")]["status"] = {
        "phase": "Succeeded",
        "observedGeneration": 1,
    }
    with pytest.raises(UnresolvedReference, match="waiting for BiasAnalysis") as stale:
        job_spec(TRAINING_RUN, cluster[("TrainingRun", "adult-income")]["spec"], lookup)
    assert stale.value.waiting
    cluster[("BiasAnalysis", "adult-bias")]["status"] = {"phase": "Failed"}
    with pytest.raises(UnresolvedReference) as failed:
        job_spec(TRAINING_RUN, cluster[("TrainingRun", "adult-income")]["spec"], lookup)
    assert failed.value.reason == "ReferenceFailed" and not failed.value.waiting


def test_a_dataset_reference_waits_for_the_profile(cluster) -> None:
    lookup = lookup_in(cluster)
    spec = cluster[("BiasAnalysis", "adult-bias")]["spec"]
    cluster[("Dataset", "adult-train")]["status"] = {"phase": "Running"}
    with pytest.raises(UnresolvedReference, match="waiting for Dataset 'adult-train'") as pending:
        job_spec(BY_KIND["BiasAnalysis"], spec, lookup)
    assert pending.value.reason == "ReferenceNotReady" and pending.value.waiting
    cluster[("Dataset", "adult-train")]["status"] = {"phase": "Failed"}
    with pytest.raises(UnresolvedReference, match="Dataset 'adult-train' failed") as failed:
        job_spec(BY_KIND["BiasAnalysis"], spec, lookup)
    assert failed.value.reason == "ReferenceFailed" and not failed.value.waiting


def test_dataset_pipeline_is_not_passed_to_the_profile_job() -> None:
    document = yaml.safe_load_all((EXAMPLES.parent / "pipeline.yaml").read_text())
    adult = next(iter(document))
    spec = job_spec(DATASET, adult["spec"], lambda kind, name: None)
    assert "pipeline" not in spec
    assert spec["uri"].endswith("adult.csv")


def test_training_job_runs_its_stage_under_its_owner_and_deadline(cluster) -> None:
    # How every stage's pod is locked down (non-root, read-only, no token...): test_security.py.
    obj = cluster[("TrainingRun", "adult-income")]
    job = build_job(TRAINING_RUN, obj, OperatorConfig(s3_credentials_secret="s3-creds"), "g1")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["restartPolicy"] == "Never"
    assert container["command"] == ["fairpilot-job", "train"]
    assert container["args"][:2] == ["--spec", "/etc/fairpilot/spec.yaml"]
    assert container["args"][-2:] == ["--run-id", "uid-adult-income/g1"]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-adult-income"
    assert job["spec"]["activeDeadlineSeconds"] >= 60 + 1800
    assert job["metadata"]["labels"]["fairpilot.io/kind"] == "TrainingRun"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert container["image"].endswith("jobs:0.1.0")


def test_gpu_job_and_forbidden_gpu(cluster) -> None:
    obj = cluster[("TrainingRun", "adult-income")]
    obj["spec"]["resources"]["gpu"] = 1
    config = OperatorConfig(
        gpu=GpuConfig(node_selector={"gpu": "h100"}, runtime_class_name="nvidia")
    )
    job = build_job(TRAINING_RUN, obj, config, "g1")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["containers"][0]["image"] == config.jobs_cuda_image
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["runtimeClassName"] == "nvidia"
    with pytest.raises(GpuNotAllowed, match="does not allow GPUs"):
        build_job(TRAINING_RUN, obj, OperatorConfig(gpu=GpuConfig(allowed=False)), "g1")


def test_names_are_deterministic_short_and_per_run() -> None:
    assert object_name(TRAINING_RUN, "adult", "g3") == "fp-train-adult-g3"
    assert object_name(TRAINING_RUN, "adult", "g3r1") == "fp-train-adult-g3r1"
    long = "x" * 250
    first, second = object_name(TRAINING_RUN, long, "g1"), object_name(TRAINING_RUN, long, "g2")
    assert len(first) <= 63 and len(second) <= 63 and first != second
    assert object_name(TRAINING_RUN, long, "g1") == first


def test_spec_travels_in_a_config_map_not_a_shell(cluster) -> None:
    obj = cluster[("Dataset", "adult-train")]
    obj["spec"]["target"] = "income; rm -rf / $(reboot)"
    spec = job_spec(DATASET, obj["spec"], lookup_in(cluster))
    config_map = spec_config_map(DATASET, obj, spec, "g1")
    assert yaml.safe_load(config_map["data"]["spec.yaml"])["target"] == "income; rm -rf / $(reboot)"
    job = build_job(DATASET, obj, OperatorConfig(), "g1")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "rm -rf" not in " ".join(container["command"] + container["args"])
    assert (
        job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        == config_map["metadata"]["name"]
    )


def test_file_uris_in_stage_pods_are_confined_to_the_file_root(
    cluster: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    from support.jobs import run_job

    dataset = cluster[("Dataset", "adult-train")]
    config = OperatorConfig(file_root="/data")
    env = build_job(DATASET, dataset, config, "g1")["spec"]["template"]["spec"]
    assert {"name": "FAIRPILOT_FILE_ROOT", "value": "/data"} in env["containers"][0]["env"]
    unset = build_job(DATASET, dataset, OperatorConfig(), "g1")["spec"]["template"]["spec"]
    assert all(e["name"] != "FAIRPILOT_FILE_ROOT" for e in unset["containers"][0]["env"])
    # What the variable stops: a URI naming the job's own environment, credentials and all.
    run = run_job(
        "profile",
        {"uri": "file:///proc/self/environ"},
        tmp_path / "out",
        env={"FAIRPILOT_FILE_ROOT": str(tmp_path), "AWS_SECRET_ACCESS_KEY": "do-not-show"},
    )
    assert run.returncode == 2 and run.error["reason"] == "InvalidURI", run.stderr
    assert "do-not-show" not in run.stderr + (tmp_path / "out" / "error.json").read_text()


def test_an_input_error_fails_the_job_at_once_a_crash_retries(cluster) -> None:
    from fairpilot.sandbox.runner import failing_rule

    job = build_job(TRAINING_RUN, cluster[("TrainingRun", "adult-income")], OperatorConfig(), "g1")
    spec = job["spec"]
    assert spec["backoffLimit"] >= 1
    # The rule as the Job controller reads it, and as the sandbox's runner applies it.
    assert failing_rule(spec, "stage", 2) == 0
    assert failing_rule(spec, "stage", 1) is None
    assert failing_rule(spec, "stage", 137) is None
    assert failing_rule(spec, "other", 2) is None


PROFILED = ["age", "workclass", "education", "sex", "race", "income", "hours_per_week"]


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("TrainingRun", {"target": "incme"}, "target"),
        ("TrainingRun", {"excludedColumns": ["fnlwgt2"]}, "excludedColumns"),
        ("BiasAnalysis", {"sensitiveFeatures": ["sex", "gender"]}, "sensitiveFeatures"),
        ("BiasAnalysis", {"target": "label"}, "target"),
        ("BiasAnalysis", {"predictionColumn": "score"}, "predictionColumn"),
    ],
)
def test_columns_the_dataset_lacks_are_refused_before_a_job(cluster, kind, change, field) -> None:
    """Checked against the Dataset's profile (status.columnNames), for good: no Job."""
    dataset = cluster[("Dataset", "adult-train")]
    dataset["status"] |= {"columnNames": PROFILED, "columns": len(PROFILED)}
    name = {"TrainingRun": "adult-income", "BiasAnalysis": "adult-bias"}[kind]
    spec = {**cluster[(kind, name)]["spec"], **change}
    spec.pop("mitigation", None)
    with pytest.raises(UnresolvedReference) as refused:
        job_spec(BY_KIND[kind], spec, lookup_in(cluster))
    assert refused.value.reason == "ColumnNotFound" and not refused.value.waiting
    assert field in refused.value.message and "adult-train" in refused.value.message
    if change.get("target") == "incme":
        assert "did you mean 'income'" in refused.value.message
    # A profile that could not list every name (too many columns) leaves it to the stage.
    dataset["status"] |= {"columnNames": PROFILED[:3]}
    job_spec(BY_KIND[kind], spec, lookup_in(cluster))


def test_the_test_dataset_must_have_the_target(cluster) -> None:
    test = cluster[("Dataset", "adult-holdout")]
    test["status"] |= {"columnNames": ["age", "sex"], "columns": 2}
    with pytest.raises(UnresolvedReference, match="target 'income'") as refused:
        job_spec(TRAINING_RUN, cluster[("TrainingRun", "adult-income")]["spec"], lookup_in(cluster))
    assert refused.value.reason == "ColumnNotFound"


@pytest.mark.parametrize(
    ("uri", "config", "ok"),
    [
        ("file:///data/adult.csv", {"file_root": "/data"}, True),
        ("file:///data/sub/dir/adult.csv", {"file_root": "/data"}, True),
        ("file:///etc/passwd", {"file_root": "/data"}, False),
        ("file:///database/adult.csv", {"file_root": "/data"}, False),
        ("file:///data/%2e%2e/etc/passwd", {"file_root": "/data"}, False),
        ("file:///anywhere/adult.csv", {}, True),
        ("s3://bucket/adult.csv", {"uri_schemes": ["file"]}, False),
        ("file:///data/adult.csv", {"uri_schemes": ["s3"], "file_root": "/data"}, False),
        ("s3://bucket/adult.csv", {"file_root": "/data"}, True),
    ],
)
def test_dataset_uris_the_pods_may_not_read_fail_before_a_job(uri, config, ok) -> None:
    spec = {"uri": uri, "target": "income"}
    try:
        resolve(DATASET, spec, lambda kind, name: None, "d", OperatorConfig(**config))
    except UnresolvedReference as exc:
        assert not ok, exc.message
        assert exc.reason in ("InvalidURI", "InvalidSpec") and not exc.waiting
    else:
        assert ok


def test_resolving_records_the_inputs_as_they_are(cluster) -> None:
    spec = dict(cluster[("Explanation", "adult-income-explained")]["spec"])
    spec.pop("datasetRef")
    resolved = resolve(EXPLANATION, spec, lookup_in(cluster), "adult-income-explained")
    by_field = {item["field"]: item for item in resolved.inputs}
    assert by_field["trainingRunRef"]["modelUri"] == "s3://artifacts/demo/train/model"
    assert by_field["trainingRunRef"]["modelVersion"] == "v1"
    assert by_field["trainingRunRef"]["uid"] == "uid-adult-income"
    assert by_field["trainingRunRef's dataset"]["name"] == "adult-holdout"


def test_an_explanation_can_pin_an_earlier_model_version(cluster) -> None:
    run = cluster[("TrainingRun", "adult-income")]
    run["status"] |= {
        "modelVersion": "v2",
        "modelUri": "s3://models/v2",
        "modelDigest": DIGEST["v2"],
        "models": [
            {"version": "v1", "modelUri": "s3://models/v1", "modelDigest": DIGEST["v1"]},
            {"version": "v2", "modelUri": "s3://models/v2", "modelDigest": DIGEST["v2"]},
        ],
    }
    spec = {"trainingRunRef": "adult-income"}
    current = job_spec(EXPLANATION, spec, lookup_in(cluster))["model"]
    assert current == {"uri": "s3://models/v2", "digest": DIGEST["v2"]}
    pinned = job_spec(EXPLANATION, {**spec, "modelVersion": "v1"}, lookup_in(cluster))
    assert pinned["model"] == {"uri": "s3://models/v1", "digest": DIGEST["v1"]}
    with pytest.raises(UnresolvedReference, match="no model version 'v7'"):
        job_spec(EXPLANATION, {**spec, "modelVersion": "v7"}, lookup_in(cluster))


def test_input_limits_reach_every_stage_pod(cluster) -> None:
    config = OperatorConfig(jobs={"input_limits": {"max_decompressed_bytes": 1024}})
    for (kind_name, _), obj in cluster.items():
        job = build_job(BY_KIND[kind_name], obj, config, "g1")
        env = {
            e["name"]: e.get("value")
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["FAIRPILOT_MAX_DECOMPRESSED_BYTES"] == "1024"
        assert "FAIRPILOT_MAX_COLUMNS" not in env  # unset: the stage's own default
