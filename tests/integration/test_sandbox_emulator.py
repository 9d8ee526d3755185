"""The sandbox's API server: kmock's emulator plus what a real API server does for operators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from fairpilot.sandbox.emulator import matches_fields, matches_labels, running_emulator

GROUP, VERSION = "fairpilot.io", "v1alpha1"


@pytest.fixture
def api() -> Iterator[kubernetes.client.ApiClient]:
    with running_emulator() as url:
        config = kubernetes.client.Configuration()
        config.host = url
        with kubernetes.client.ApiClient(config) as client:
            yield client


def dataset(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Dataset",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"uri": "file:///d.csv", **spec},
    }


def test_bookkeeping_fields_and_generation(api) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, "ml", "datasets", dataset("d1")
    )
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    version = int(meta["resourceVersion"])
    same = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "ml", "datasets", "d1", {"spec": {"uri": "file:///d.csv"}}
    )
    assert same["metadata"]["generation"] == 1, "an unchanged spec keeps the generation"
    changed = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "ml", "datasets", "d1", {"spec": {"target": "y"}}
    )
    assert changed["metadata"]["generation"] == 2
    status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "ml", "datasets", "d1", {"status": {"phase": "Running"}}
    )
    assert status["metadata"]["generation"] == 2, "status writes never bump the generation"
    assert int(status["metadata"]["resourceVersion"]) > version
    assert status["metadata"]["uid"] == meta["uid"]


def test_duplicate_create_is_a_conflict(api) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, "ml", "datasets", dataset("d1"))
    with pytest.raises(kubernetes.client.ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, VERSION, "ml", "datasets", dataset("d1"))
    assert caught.value.status == 409


def test_deleting_an_owner_collects_what_it_owns(api) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    batch, core = kubernetes.client.BatchV1Api(api), kubernetes.client.CoreV1Api(api)
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, "ml", "datasets", dataset("d1"))
    reference = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Dataset",
        "name": "d1",
        "uid": owner["metadata"]["uid"],
    }
    job = batch.create_namespaced_job(
        "ml",
        {
            "metadata": {"name": "j1", "ownerReferences": [reference]},
            "spec": {"template": {"spec": {"containers": []}}},
        },
    )
    pod_owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "j1", "uid": job.metadata.uid}
    core.create_namespaced_pod(
        "ml",
        {"metadata": {"name": "p1", "ownerReferences": [pod_owner]}, "spec": {"containers": []}},
    )
    core.create_namespaced_config_map("ml", {"metadata": {"name": "unrelated"}})
    custom.delete_namespaced_custom_object(GROUP, VERSION, "ml", "datasets", "d1")
    assert batch.list_namespaced_job("ml").items == []
    assert core.list_namespaced_pod("ml").items == [], "ownership is followed transitively"
    assert [c.metadata.name for c in core.list_namespaced_config_map("ml").items] == ["unrelated"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=a", True),
        ("app==a", True),
        ("app=b", False),
        ("app!=b", True),
        ("app!=a", False),
        ("tier", True),
        ("!tier", False),
        ("!absent", True),
        ("absent", False),
        ("app in (a, b),tier notin (db)", True),
        ("app notin (a,b)", False),
        ("app=a,tier=web", True),
        ("app=a,tier=db", False),
    ],
)
def test_label_selectors(selector: str, expected: bool) -> None:
    obj = {"metadata": {"labels": {"app": "a", "tier": "web"}}}
    assert matches_labels(obj, selector) is expected


def test_field_selectors() -> None:
    event = {"involvedObject": {"name": "d1", "kind": "Dataset"}, "type": "Normal"}
    assert matches_fields(event, "involvedObject.name=d1,involvedObject.kind==Dataset")
    assert not matches_fields(event, "involvedObject.name=d2")
    assert matches_fields(event, "type!=Warning")
    assert not matches_fields(event, "involvedObject.uid=x")


def test_lists_are_filtered_and_typed_as_an_api_server_does(api) -> None:
    core = kubernetes.client.CoreV1Api(api)
    for name, job in (("p1", "j1"), ("p2", "j2")):
        core.create_namespaced_pod(
            "ml",
            {"metadata": {"name": name, "labels": {"job-name": job}}, "spec": {"containers": []}},
        )
    for name, about in (("e1", "d1"), ("e2", "d2")):
        core.create_namespaced_event(
            "ml", {"metadata": {"name": name}, "involvedObject": {"name": about}}
        )
    pods = core.list_namespaced_pod("ml", label_selector="job-name=j2")
    assert [p.metadata.name for p in pods.items] == ["p2"]
    events = core.list_namespaced_event("ml", field_selector="involvedObject.name=d1")
    assert [e.metadata.name for e in events.items] == ["e1"]
    custom = kubernetes.client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, "ml", "datasets", dataset("d1"))
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, "ml", "datasets")
    assert (listing["kind"], listing["apiVersion"]) == ("DatasetList", f"{GROUP}/{VERSION}")


def test_discovery_lists_subresources_without_categories(api) -> None:
    discovery = api.call_api(*api.param_serialize("GET", f"/apis/{GROUP}/{VERSION}"))
    discovery.read()
    resources = {r["name"]: r for r in json.loads(discovery.data)["resources"]}
    assert resources["datasets"]["categories"] == ["fairpilot"]
    assert resources["datasets"]["shortNames"] == ["fpds"]
    assert resources["datasets/status"]["categories"] == []
    assert resources["datasets/status"]["shortNames"] == []


def test_namespaces_are_listed_and_read_as_an_api_server_does(api) -> None:
    core = kubernetes.client.CoreV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    before = core.list_namespace()
    assert [n.metadata.name for n in before.items] == ["default"], "every cluster has default"
    custom.create_namespaced_custom_object(GROUP, VERSION, "ml", "datasets", dataset("d1"))
    core.create_namespaced_config_map("team-b", {"metadata": {"name": "c1"}})
    listing = core.list_namespace()
    assert listing.kind == "NamespaceList"
    assert [n.metadata.name for n in listing.items] == ["default", "ml", "team-b"]
    assert {n.status.phase for n in listing.items} == {"Active"}
    ml = core.read_namespace("ml")
    created = custom.get_namespaced_custom_object(GROUP, VERSION, "ml", "datasets", "d1")
    assert ml.kind == "Namespace" and ml.metadata.name == "ml"
    assert ml.metadata.creation_timestamp.isoformat().startswith(
        created["metadata"]["creationTimestamp"].removesuffix("Z")
    ), "a namespace is as old as its oldest object"
    assert ml.metadata.uid == core.read_namespace("ml").metadata.uid, "a stable uid"
    selected = core.list_namespace(label_selector="kubernetes.io/metadata.name=team-b")
    assert [n.metadata.name for n in selected.items] == ["team-b"]
    with pytest.raises(kubernetes.client.ApiException) as missing:
        core.read_namespace("nowhere")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["reason"] == "NotFound"
    # A namespace whose last object is gone is gone too (nothing here records it otherwise).
    core.delete_namespaced_config_map("c1", "team-b")
    assert [n.metadata.name for n in core.list_namespace().items] == ["default", "ml"]


def test_the_console_lists_the_namespaces_it_serves_and_only_those(api) -> None:
    from fairpilot.cluster import Cluster
    from fairpilot.config import OperatorConfig
    from fairpilot.console.data import Console

    custom = kubernetes.client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, "ml", "datasets", dataset("d1"))
    kubernetes.client.CoreV1Api(api).create_namespaced_config_map(
        "team-b", {"metadata": {"name": "c1"}}
    )
    config = OperatorConfig(artifact_root="file:///tmp/fairpilot-none", jobs_image="local")
    cluster = Cluster(api)
    assert Console(cluster, config).namespaces() == ["default", "ml", "team-b"]
    # --namespace: only those, whatever else the cluster has.
    assert Console(cluster, config, ["ml", "elsewhere"]).namespaces() == ["elsewhere", "ml"]
