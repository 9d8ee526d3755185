"""From resource to Job: reference resolution and the Job manifests, without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fairpilot.api import JOB_SPECS
from fairpilot.api.kinds import BY_KIND, DATASET, EXPLANATION, TRAINING_RUN
from fairpilot.config import GpuConfig, OperatorConfig
from fairpilot.jobs import GpuNotAllowed, build_job, object_name, output_uri, spec_config_map
from fairpilot.references import UnresolvedReference, job_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "manifests" / "examples" / "adult" / "stages"


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
    for key in objects:
        if key[0] == "Dataset":
            objects[key]["status"] = {"phase": "Succeeded"}
    objects[("BiasAnalysis", "adult-bias")]["status"] = {
        "phase": "Succeeded",
        "reweighingUri": "s3://artifacts/demo/bias/reweighing.json",
    }
    objects[("TrainingRun", "adult-income")]["status"] = {
        "phase": "Succeeded",
        "modelUri": "s3://artifacts/demo/train/model",
    }
    return objects


def lookup_in(objects):
    return lambda kind, name: objects.get((kind, name))


def test_every_example_resolves_to_a_valid_job_spec(cluster) -> None:
    for (kind, _), obj in cluster.items():
        spec = job_spec(BY_KIND[kind], obj["spec"], lookup_in(cluster))
        JOB_SPECS[BY_KIND[kind].stage].model_validate(spec)


def test_the_owner_travels_into_every_job_spec(cluster) -> None:
    for obj in cluster.values():
        obj["spec"]["userId"] = "alice@example.org"
    for (kind, _), obj in cluster.items():
        spec = job_spec(BY_KIND[kind], obj["spec"], lookup_in(cluster))
        assert spec["userId"] == "alice@example.org", kind


@pytest.mark.parametrize(
    ("user", "segment"),
    [
        (None, "default"),
        ("alice", "alice"),
        ("alice@example.org", "alice_example.org"),
        ("..", "_."),
        (".", "_"),
        ("../../etc", "_._.._etc"),
    ],
)
def test_artifacts_go_under_one_path_segment_per_user(
    cluster, user: str | None, segment: str
) -> None:
    obj = cluster[("BiasAnalysis", "adult-bias")]
    obj["spec"].pop("userId")  # the example's owner
    if user is not None:
        obj["spec"]["userId"] = user
    uri = output_uri(OperatorConfig(artifact_root="s3://artifacts/"), BY_KIND["BiasAnalysis"], obj)
    assert uri == f"s3://artifacts/{segment}/biasanalyses/ml/adult-bias/g1"


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
    assert resolved["model"] == {"uri": "s3://artifacts/demo/train/model"}
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
    job = build_job(TRAINING_RUN, obj, OperatorConfig(s3_credentials_secret="s3-creds"))
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["restartPolicy"] == "Never"
    assert container["command"] == ["fairpilot-job", "train"]
    assert container["args"][:2] == ["--spec", "/etc/fairpilot/spec.yaml"]
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
    job = build_job(TRAINING_RUN, obj, config)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["containers"][0]["image"] == config.jobs_cuda_image
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["runtimeClassName"] == "nvidia"
    with pytest.raises(GpuNotAllowed, match="does not allow GPUs"):
        build_job(TRAINING_RUN, obj, OperatorConfig(gpu=GpuConfig(allowed=False)))


def test_names_are_deterministic_short_and_per_generation() -> None:
    assert object_name(TRAINING_RUN, "adult", 3) == "fp-train-adult-g3"
    long = "x" * 250
    first, second = object_name(TRAINING_RUN, long, 1), object_name(TRAINING_RUN, long, 2)
    assert len(first) <= 63 and len(second) <= 63 and first != second
    assert object_name(TRAINING_RUN, long, 1) == first


def test_spec_travels_in_a_config_map_not_a_shell(cluster) -> None:
    obj = cluster[("Dataset", "adult-train")]
    obj["spec"]["target"] = "income; rm -rf / $(reboot)"
    spec = job_spec(DATASET, obj["spec"], lookup_in(cluster))
    config_map = spec_config_map(DATASET, obj, spec)
    assert yaml.safe_load(config_map["data"]["spec.yaml"])["target"] == "income; rm -rf / $(reboot)"
    job = build_job(DATASET, obj, OperatorConfig())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "rm -rf" not in " ".join(container["command"] + container["args"])
    assert (
        job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        == config_map["metadata"]["name"]
    )


def test_file_uris_in_stage_pods_are_confined_to_the_file_root(
    cluster: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    from conftest import run_job

    dataset = cluster[("Dataset", "adult-train")]
    env = build_job(DATASET, dataset, OperatorConfig(file_root="/data"))["spec"]["template"]["spec"]
    assert {"name": "FAIRPILOT_FILE_ROOT", "value": "/data"} in env["containers"][0]["env"]
    unset = build_job(DATASET, dataset, OperatorConfig())["spec"]["template"]["spec"]
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
