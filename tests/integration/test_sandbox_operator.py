"""What the operator owes a cluster beyond running stages: owners' folders, cascading deletion,
Kubernetes Events and refusing GPUs. The real Kopf operator against the sandbox's API server;
every Job is a profile or bias stage on a six-row CSV, so each test takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fairpilot.config import GpuConfig
from fairpilot.sandbox.app import Sandbox, sandbox_config
from fairpilot.sandbox.testing import by_name, eventually, resource, wait_for

GROUP, VERSION, NAMESPACE = "fairpilot.io", "v1alpha1", "default"
OWNER = "alice@example.org"
OWNER_FOLDER = "alice~40example.org"  # the owner as one folder, one to one (access.folder_name)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "artifacts", namespace=NAMESPACE) as running:
        yield running


def with_bias_pipeline(name: str, uri: str) -> dict[str, Any]:
    """A Dataset whose pipeline adds a BiasAnalysis: two fast stages, one child resource."""
    return resource(
        "Dataset",
        name,
        {
            "uri": uri,
            "userId": OWNER,
            "target": "income",
            "sensitiveFeatures": ["sex"],
            "pipeline": {"bias": {"positiveLabel": "yes"}},
        },
    )


def cluster_objects(sandbox: Sandbox) -> dict[str, list[str]]:
    """Names of everything in the namespace that a Dataset can own, directly or not."""
    core, batch = sandbox.cluster.core, sandbox.cluster.batch
    return {
        "resources": sorted(f"{i['kind']}/{i['metadata']['name']}" for i in sandbox.resources()),
        "jobs": sorted(j.metadata.name for j in batch.list_namespaced_job(NAMESPACE).items),
        "configmaps": sorted(
            c.metadata.name for c in core.list_namespaced_config_map(NAMESPACE).items
        ),
        "pods": sorted(p.metadata.name for p in core.list_namespaced_pod(NAMESPACE).items),
    }


def events_about(sandbox: Sandbox, name: str) -> list[Any]:
    """Core v1 Events whose involvedObject is `name`, as `kubectl describe` would list them."""
    events = sandbox.cluster.core.list_namespaced_event(NAMESPACE).items
    return [e for e in events if e.involved_object and e.involved_object.name == name]


def test_pipeline_stages_write_under_the_owners_folder(sandbox: Sandbox, tiny_csv: str) -> None:
    sandbox.apply([with_bias_pipeline("owned", tiny_csv)])
    wait_for(sandbox, "owned", lambda s: s.get("pipeline") == "Succeeded")
    items = by_name(sandbox)
    assert set(items) == {"owned", "owned-bias"}
    assert items["owned-bias"]["spec"]["userId"] == OWNER, "the pipeline passes the owner on"
    folder = sandbox.artifacts / NAMESPACE / OWNER_FOLDER  # the namespace's prefix, then the user
    for name, plural in (("owned", "datasets"), ("owned-bias", "biasanalyses")):
        status = items[name]["status"]
        assert status["phase"] == "Succeeded", (name, status)
        uid = items[name]["metadata"]["uid"]
        expected = f"file://{folder}/{plural}/{name}/{uid}/g1"
        assert status["outputUri"] == expected
        assert (folder / plural / name / uid / "g1" / "result.json").is_file()
    assert items["owned-bias"]["status"]["reweighingUri"].startswith(f"file://{folder}/")
    assert not (sandbox.artifacts / NAMESPACE / "~none").exists(), "nothing lands unowned"


def test_deleting_a_dataset_removes_what_it_spawned(sandbox: Sandbox, tiny_csv: str) -> None:
    sandbox.apply([with_bias_pipeline("doomed", tiny_csv)])
    # Delete while the pipeline is still busy: the bias stage's Job exists and may be running.
    wait_for(sandbox, "doomed-bias", lambda s: s.get("phase") == "Running")
    before = cluster_objects(sandbox)
    assert before["resources"] == ["BiasAnalysis/doomed-bias", "Dataset/doomed"]
    assert before["jobs"] == ["fp-bias-doomed-bias-g1", "fp-profile-doomed-g1"]
    assert before["configmaps"] == before["jobs"]
    assert before["pods"], "the runner made a Pod for each Job it started"

    sandbox.cluster.custom.delete_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "datasets", "doomed"
    )
    empty = {"resources": [], "jobs": [], "configmaps": [], "pods": []}
    assert eventually(lambda: cluster_objects(sandbox) == empty), cluster_objects(sandbox)
    time.sleep(3)  # long enough for the operator to react to every deletion it was told of
    assert cluster_objects(sandbox) == empty, "the operator recreated something it had made"

    # The operator is still alive and has no stale state: the same name starts afresh.
    sandbox.apply([resource("Dataset", "doomed", {"uri": tiny_csv})])
    again = wait_for(sandbox, "doomed", lambda s: s.get("phase") == "Succeeded")
    assert again["status"]["rows"] == 6
    assert cluster_objects(sandbox)["jobs"] == ["fp-profile-doomed-g1"]


def test_phase_transitions_are_posted_as_kubernetes_events(sandbox: Sandbox, tiny_csv: str) -> None:
    sandbox.apply([resource("Dataset", "evented", {"uri": tiny_csv})])
    done = wait_for(sandbox, "evented", lambda s: s.get("phase") == "Succeeded")
    wanted = {"Running", "Succeeded"}

    def reasons() -> set[str]:
        return {e.reason for e in events_about(sandbox, "evented")}

    # Kopf posts events from a background queue, so they may trail the status a little.
    eventually(lambda: wanted <= reasons())
    assert wanted <= reasons(), reasons()
    events = {e.reason: e for e in events_about(sandbox, "evented") if e.reason in wanted}
    for event in events.values():
        involved = event.involved_object
        assert (involved.api_version, involved.kind) == (f"{GROUP}/{VERSION}", "Dataset")
        assert involved.uid == done["metadata"]["uid"]
        assert involved.namespace == NAMESPACE
        assert event.type == "Normal"
    assert "fp-profile-evented-g1" in events["Running"].message  # names the Job
    assert events["Succeeded"].message == done["status"]["message"]


def test_gpu_request_fails_when_the_operator_forbids_gpus(tmp_path: Path, tiny_csv: str) -> None:
    artifacts = tmp_path / "artifacts"
    config = sandbox_config(artifacts, gpu=GpuConfig(allowed=False))
    with Sandbox(artifacts, namespace=NAMESPACE, config=config, kafka=False) as sandbox:
        _gpu_request_is_refused(sandbox, tiny_csv)


def _gpu_request_is_refused(sandbox: Sandbox, tiny_csv: str) -> None:
    sandbox.apply(
        [
            resource("Dataset", "gpu-data", {"uri": tiny_csv}),
            resource(
                "TrainingRun",
                "gpu-run",
                {
                    "datasetRef": "gpu-data",
                    "target": "income",
                    "timeLimitSeconds": 10,
                    "resources": {"gpu": 1},
                },
            ),
        ]
    )
    failed = wait_for(sandbox, "gpu-run", lambda s: s.get("phase") == "Failed")
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "GpuNotAllowed")
    assert "resources.gpu is 1" in ready["message"] and "does not allow GPUs" in ready["message"]
    assert "does not allow GPUs" in failed["status"]["message"]
    # The Dataset's stage still runs: only the GPU request is refused.
    wait_for(sandbox, "gpu-data", lambda s: s.get("phase") == "Succeeded")
    warnings = eventually(
        lambda: [e for e in events_about(sandbox, "gpu-run") if e.reason == "Failed"]
    )
    assert warnings and warnings[0].type == "Warning"
    time.sleep(2)  # no retry creates a Job later
    objects = cluster_objects(sandbox)
    assert objects["jobs"] == ["fp-profile-gpu-data-g1"], "no Job for the refused TrainingRun"
    assert objects["configmaps"] == ["fp-profile-gpu-data-g1"]


def test_a_job_left_by_an_earlier_resource_of_the_same_name_is_not_adopted(
    sandbox: Sandbox, tiny_csv: str
) -> None:
    # As on a real cluster between deleting a Dataset and the garbage collector removing its
    # Job: a finished Job with the deterministic name, owned by another uid.
    stale_owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Dataset",
        "name": "reborn",
        "uid": "uid-of-the-deleted-dataset",
        "controller": True,
    }
    sandbox.cluster.batch.create_namespaced_job(
        NAMESPACE,
        {
            "metadata": {"name": "fp-profile-reborn-g1", "ownerReferences": [stale_owner]},
            "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "none"}]}}},
            "status": {
                "succeeded": 1,
                "completionTime": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Complete", "status": "True"}],
            },
        },
    )
    sandbox.apply([resource("Dataset", "reborn", {"uri": tiny_csv})])
    waiting = wait_for(
        sandbox, "reborn", lambda s: s.get("phase") == "Pending" and s.get("conditions")
    )
    ready = next(c for c in waiting["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "PreviousJobPresent" and "earlier Dataset" in ready["message"]
    sandbox.cluster.batch.delete_namespaced_job("fp-profile-reborn-g1", NAMESPACE)
    done = wait_for(sandbox, "reborn", lambda s: s.get("phase") == "Succeeded", timeout=30)
    assert done["status"]["rows"] == 6
    job = sandbox.cluster.get_job(NAMESPACE, "fp-profile-reborn-g1")
    assert job is not None
    assert job["metadata"]["ownerReferences"][0]["uid"] == done["metadata"]["uid"]


def test_file_uris_outside_the_sandbox_file_root_fail_with_the_reason(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    inside = root / "data" / "tiny.csv"
    inside.write_text("age,sex,income\n25,F,no\n38,M,yes\n52,M,yes\n")
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(inside.read_text())
    with Sandbox(root / "artifacts", file_root=root, kafka=False) as sandbox:
        sandbox.apply(
            [
                resource("Dataset", "inside", {"uri": f"file://{inside}"}),
                resource("Dataset", "outside", {"uri": f"file://{outside}"}),
            ]
        )
        wait_for(sandbox, "inside", lambda s: s.get("phase") == "Succeeded")
        failed = wait_for(sandbox, "outside", lambda s: s.get("phase") == "Failed")
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert str(outside) in ready["message"] and str(root) in ready["message"]
