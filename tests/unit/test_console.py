"""The console's data access, its path safety and its routes, in process (no cluster, no server).

The cluster is a stand-in that answers the few list and get calls the console makes from
canned objects, as the API server would (raw responses with `.data`); the integration test
(tests/integration/test_console_browser.py) runs it against the sandbox's real API server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET, TRAINING_RUN
from fairpilot.config import OperatorConfig
from fairpilot.console import artifacts
from fairpilot.console.data import Console, NamespaceNotServed, NotFound, kind_named
from fairpilot.console.web import build_app


class _Raw:
    def __init__(self, payload: Any) -> None:
        self.data = json.dumps(payload).encode()

    def release_conn(self) -> None:
        pass


class _Custom:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def list_namespaced_custom_object(self, group, version, namespace, plural, **_):  # type: ignore[no-untyped-def]
        kinds = {k.plural: k.kind for k in (DATASET, BIAS_ANALYSIS, TRAINING_RUN)}
        items = [
            o
            for o in self.objects
            if o["metadata"]["namespace"] == namespace and o["kind"] == kinds.get(plural)
        ]
        return _Raw({"items": items})


class _Core:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def list_namespace(self, **_: Any) -> _Raw:
        return _Raw({"items": [{"metadata": {"name": "ml"}}, {"metadata": {"name": "other"}}]})

    def list_namespaced_event(self, namespace: str, **_: Any) -> _Raw:
        return _Raw({"items": self.events})

    def list_namespaced_pod(self, namespace: str, **_: Any) -> _Raw:
        return _Raw({"items": []})


class _Cluster:
    """The parts of `fairpilot.cluster.Cluster` the console uses."""

    def __init__(self, objects: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        self.custom = _Custom(objects)
        self.core = _Core(events)
        self.objects = objects

    def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        for obj in self.objects:
            meta = obj["metadata"]
            if (obj["kind"], meta["namespace"], meta["name"]) == (kind.kind, namespace, name):
                return json.loads(json.dumps(obj))
        return None


def _obj(kind: str, name: str, uid: str, owner: str | None = None, **status: Any) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": "ml", "uid": uid}
    if owner:
        meta["ownerReferences"] = [{"kind": "Dataset", "name": "adult", "uid": owner}]
    return {"kind": kind, "metadata": meta, "spec": {"target": "income"}, "status": status}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An artifact root with namespace `ml`'s report, and a secret beside the root."""
    report = tmp_path / "artifacts" / "ml" / "~none" / "datasets" / "adult" / "g1"
    report.mkdir(parents=True)
    (report / "report.html").write_text("<title>Profile of adult</title><h1>Profile</h1>")
    (report / "model.pkl").write_bytes(b"pickle")
    (tmp_path / "secret.txt").write_text("the operator's secret")
    return tmp_path


@pytest.fixture
def console(root: Path) -> Console:
    report = f"file://{root}/artifacts/ml/~none/datasets/adult/g1/report.html"
    objects = [
        _obj("Dataset", "adult", "d1", phase="Succeeded", reports={"profile": report}),
        _obj("BiasAnalysis", "adult-bias", "b1", owner="d1", phase="Running"),
        _obj("TrainingRun", "loose", "t1", phase="Pending"),
    ]
    events = [
        {"involvedObject": {"kind": "Dataset", "name": "adult"}, "reason": "Succeeded",
         "message": "32561 rows", "lastTimestamp": "2026-12-02T10:00:01Z"},
        {"involvedObject": {"kind": "TrainingRun", "name": "adult"}, "reason": "Other"},
    ]  # fmt: skip
    config = OperatorConfig(artifact_root=f"file://{root}/artifacts", jobs_image="local")
    return Console(_Cluster(objects, events), config, ["ml"])  # type: ignore[arg-type]


# -- data access ------------------------------------------------------------------------------
def test_kinds_are_found_by_any_of_their_names() -> None:
    assert kind_named("datasets") is DATASET
    assert kind_named("fpbias") is BIAS_ANALYSIS
    assert kind_named("fpds") is DATASET
    assert kind_named("TrainingRun") is TRAINING_RUN
    with pytest.raises(NotFound):
        kind_named("pods")


def test_the_overview_groups_the_stages_under_the_dataset_that_owns_them(console: Console) -> None:
    overview = console.overview("ml")
    assert [p.dataset.name for p in overview.pipelines] == ["adult"]
    assert [s.name for s in overview.pipelines[0].stages] == ["adult-bias"]
    assert [o.name for o in overview.others] == ["loose"]  # no owner: not a pipeline's


def test_events_are_the_resources_own(console: Console) -> None:
    adult = console.resource("ml", DATASET, "adult")
    assert [e["reason"] for e in console.events(adult)] == ["Succeeded"]  # not the TrainingRun's


def test_a_namespace_it_does_not_serve_is_refused_before_any_call(console: Console) -> None:
    assert console.namespaces() == ["ml"]
    with pytest.raises(NamespaceNotServed):
        console.overview("other")
    with pytest.raises(NamespaceNotServed):
        console.resource("other", DATASET, "adult")


# -- path safety ------------------------------------------------------------------------------
def test_a_report_is_read_below_the_namespaces_artifact_root(console: Console, root: Path) -> None:
    found = artifacts.read(console.config, "ml", "~none/datasets/adult/g1/report.html")
    assert b"Profile of adult" in found.data
    assert found.content_type.startswith("text/html")
    uri = f"file://{root}/artifacts/ml/~none/datasets/adult/g1/report.html"
    assert (
        artifacts.console_path(console.config, "ml", uri) == "~none/datasets/adult/g1/report.html"
    )
    # another namespace's root, or outside every root: no console path
    assert artifacts.console_path(console.config, "other", uri) is None
    assert artifacts.console_path(console.config, "ml", f"file://{root}/secret.txt") is None


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "../../secret.txt",
        "~none/../../secret.txt",
        "./~none/datasets/adult/g1/report.html",
        "~none//datasets/adult/g1/report.html",
        "~none\\..\\..\\secret.txt",
        "~none/datasets/adult/g1/report.html\x00.html",
        "~none/datasets/adult/g1/model.pkl",  # no report: models and data are not served
    ],
)
def test_a_path_that_leaves_the_root_or_is_no_report_is_refused(
    console: Console, path: str
) -> None:
    with pytest.raises(artifacts.Refused):
        artifacts.read(console.config, "ml", path)


def test_a_missing_report_is_missing(console: Console) -> None:
    with pytest.raises(artifacts.Missing):
        artifacts.read(console.config, "ml", "~none/datasets/adult/g9/report.html")


def test_a_link_is_never_followed_neither_a_file_nor_a_folder(console: Console, root: Path) -> None:
    folder = root / "artifacts" / "ml" / "~none"
    os.symlink(root / "secret.txt", folder / "planted.txt")
    os.symlink(root, folder / "up")
    with pytest.raises(artifacts.Refused, match="symbolic link"):
        artifacts.read(console.config, "ml", "~none/planted.txt")
    with pytest.raises(artifacts.Refused, match="symbolic link"):
        artifacts.read(console.config, "ml", "~none/up/secret.txt")


# -- routes -----------------------------------------------------------------------------------
def test_pages_link_from_the_pipelines_to_the_resource_and_its_report(console: Console) -> None:
    client = TestClient(build_app(console))
    assert '<a href="/ns/ml">ml</a>' in client.get("/").text
    pipelines = client.get("/ns/ml").text
    assert 'href="/ns/ml/datasets/adult"' in pipelines
    assert 'href="/ns/ml/biasanalyses/adult-bias"' in pipelines
    page = client.get("/ns/ml/datasets/adult")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert 'href="/ns/ml/artifacts/~none/datasets/adult/g1/report.html"' in page.text
    assert "32561 rows" in page.text
    report = client.get("/ns/ml/artifacts/~none/datasets/adult/g1/report.html")
    assert report.status_code == 200
    assert "Profile of adult" in report.text
    assert report.headers["content-security-policy"].startswith("sandbox allow-scripts")


def test_routes_refuse_what_is_outside_the_root_or_the_served_namespaces(
    console: Console, root: Path
) -> None:
    os.symlink(root / "secret.txt", root / "artifacts" / "ml" / "planted.txt")
    client = TestClient(build_app(console))
    assert client.get("/ns/other").status_code == 403
    assert client.get("/ns/other/artifacts/x/report.html").status_code == 403
    assert client.get("/ns/ml/artifacts/%2e%2e/secret.txt").status_code in (403, 404)
    assert client.get("/ns/ml/artifacts/..%2Fsecret.txt").status_code in (403, 404)
    assert client.get("/ns/ml/artifacts/planted.txt").status_code == 403
    assert client.get("/ns/ml/datasets/nothing").status_code == 404
    assert client.get("/ns/ml/pods/x").status_code == 404
    for response in (client.get("/ns/ml/artifacts/planted.txt"), client.get("/ns/other")):
        assert "the operator's secret" not in response.text


def test_it_is_read_only(console: Console) -> None:
    client = TestClient(build_app(console))
    for path in ("/", "/ns/ml", "/ns/ml/datasets/adult"):
        assert client.post(path).status_code == 405
        assert client.delete(path).status_code == 405


def test_a_user_header_is_required_only_when_configured(console: Console) -> None:
    open_console = TestClient(build_app(console))
    assert open_console.get("/ns/ml", headers={"X-Forwarded-User": "ada"}).status_code == 200
    assert "ada" not in open_console.get("/", headers={"X-Forwarded-User": "ada"}).text
    proxied = TestClient(build_app(console, user_header="X-Forwarded-User"))
    assert proxied.get("/ns/ml").status_code == 401
    assert proxied.get("/healthz").status_code == 200
    page = proxied.get("/ns/ml", headers={"X-Forwarded-User": "ada@example.org"})
    assert page.status_code == 200
    assert "ada@example.org" in page.text


def test_a_resource_without_a_pod_says_so_in_its_log_stream(console: Console) -> None:
    client = TestClient(build_app(console))
    stream = client.get("/ns/ml/datasets/adult/log")
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "retry: 1000" in stream.text
    assert "event: status\ndata: Dataset adult has no pod yet" in stream.text
