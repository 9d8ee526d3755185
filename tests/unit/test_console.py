"""The console's data access, its path safety and its routes, in process (no cluster, no server).

The cluster is a stand-in that answers the few list and get calls the console makes from
canned objects, as the API server would (raw responses with `.data`); the integration test
(tests/integration/test_console_browser.py) runs it against the sandbox's real API server.
"""

from __future__ import annotations

import json
import os
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from support.bridge import Store, finished

from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET, KINDS, TRAINING_RUN
from fairpilot.api.monitor import WindowSummary
from fairpilot.api.status import ModelMonitorStatus
from fairpilot.config import OperatorConfig
from fairpilot.console import artifacts
from fairpilot.console.data import Console, NamespaceNotServed, NotFound, Resource, kind_named
from fairpilot.console.outbound import kafka_events, topics_from_env
from fairpilot.console.trends import line_chart
from fairpilot.console.web import build_app
from fairpilot.events.topics import Topics
from fairpilot.kinds import events_for


class _Raw:
    def __init__(self, payload: Any) -> None:
        self.data = json.dumps(payload).encode()

    def release_conn(self) -> None:
        pass


class _Custom:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def list_namespaced_custom_object(self, group, version, namespace, plural, **_):  # type: ignore[no-untyped-def]
        kinds = {k.plural: k.kind for k in KINDS}
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


# -- Kafka events ------------------------------------------------------------------------------
def _in_ml(obj: dict[str, Any], uid: str, owner: str | None = None) -> dict[str, Any]:
    obj["metadata"].update(namespace="ml", uid=uid)
    if owner:
        obj["metadata"]["ownerReferences"] = [{"kind": "Dataset", "name": "ds", "uid": owner}]
    return obj


def _kafka_rows(html: str) -> list[dict[str, Any]]:
    """The Kafka events table of a page: each row's cells and its payload, parsed back."""
    rows = []
    for row in re.findall(r'<tr class="kafka-event".*?</tr>', html, re.S):
        cell = {
            name: unescape(re.sub(r"<[^>]+>", "", found).strip())
            for name, found in re.findall(r'<td class="([\w-]+)">(.*?)</td>', row, re.S)
            if name in ("topic", "event-type", "key", "delivered")
        }
        payload = re.search(r'<pre class="json">(.*?)</pre>', row, re.S)
        assert payload is not None
        rows.append({**cell, "payload": json.loads(unescape(payload.group(1)))})
    return rows


def test_a_pipelines_kafka_events_are_the_ones_the_kafka_sink_sends() -> None:
    dataset = _in_ml(finished("Dataset", {"uri": "s3://b/k.csv", "taskType": "binary"}, {},
                              name="ds"), "d1")  # fmt: skip
    bias = _in_ml(
        finished(
            "BiasAnalysis",
            {"datasetRef": "ds", "target": "income", "sensitiveFeatures": ["sex"], "userId": "u1"},
            {"biasDetected": True, "minDisparateImpact": 0.36, "reports": {"bias": "s3://b/r"},
             "findings": ["sex: DI 0.36 < 0.8"]},
            name="ds-bias",
        ),
        "b1",
        owner="d1",
    )  # fmt: skip
    topics = Topics(bias="team-bias-events")  # the operator's names, not the defaults
    store = Store(dataset, bias)
    expected = [
        (resource, event)
        for resource in (dataset, bias)
        for event in events_for(resource["kind"], resource, topics, store.get)
    ]
    # The outbox recorded the Dataset's first event, and one of an earlier run.
    dataset["status"]["delivered"] = {"kafka": [expected[0][1].id, "status/g0/Succeeded"]}
    config = OperatorConfig(artifact_root="file:///nowhere", jobs_image="local")
    console = Console(_Cluster([dataset, bias], []), config, ["ml"], topics)  # type: ignore[arg-type]

    shown = kafka_events(console, [Resource(dataset), Resource(bias)])
    assert [(e.resource.name, e.event) for e in shown.events] == [
        (r["metadata"]["name"], e) for r, e in expected
    ]
    assert [e.delivered for e in shown.events] == [True] + [False] * (len(expected) - 1)
    assert [(d.resource.name, d.id) for d in shown.earlier] == [("ds", "status/g0/Succeeded")]
    assert "bias.reported" in [e.event_type for e in shown.events]

    page = TestClient(build_app(console)).get("/ns/ml/datasets/ds")
    assert page.status_code == 200
    rows = _kafka_rows(page.text)
    assert rows == [
        {
            "topic": event.topic,
            "event-type": event.payload["event_type"],
            "key": event.key,
            "delivered": "delivered" if index == 0 else "pending",
            "payload": event.payload,
        }
        for index, (_, event) in enumerate(expected)
    ]
    assert any(row["topic"] == "team-bias-events" for row in rows)
    assert "status/g0/Succeeded" in page.text
    # The stage's own page lists its events only.
    own = _kafka_rows(TestClient(build_app(console)).get("/ns/ml/biasanalyses/ds-bias").text)
    assert [row["payload"] for row in own] == [e.payload for r, e in expected if r is bias]


def test_topics_are_the_operators_from_its_environment() -> None:
    env = {"FAIRPILOT_KAFKA_TOPIC_BIAS_TRIGGER": "in", "FAIRPILOT_KAFKA_TOPIC_DRIFT": "alerts"}
    topics = topics_from_env(env)
    assert (topics.bias_trigger, topics.drift, topics.status) == (
        "in",
        "alerts",
        Topics().status,
    )


# -- a ModelMonitor's trends ---------------------------------------------------------------------
SEX = "<b>sex</b>"  # a feature name as a resource may carry it: shown, never markup


def _monitor(windows: list[WindowSummary]) -> dict[str, Any]:
    status = ModelMonitorStatus(phase="Succeeded", window=windows[-1].window, windows=windows)
    return {
        "kind": "ModelMonitor",
        "metadata": {"name": "watch", "namespace": "ml", "uid": "m1"},
        "spec": {"trainingRunRef": "income", "thresholds": {"psi": 0.25}},
        "status": status.model_dump(by_alias=True, mode="json", exclude_none=True),
    }


WINDOWS = [
    WindowSummary(window=1, rows=3000, max_psi=0.0149246501285, max_psi_feature="native",
                  drifted_features=0, prediction_psi=0.008814667,
                  disparate_impact={SEX: 0.267468116364551, "race": 0.3463},
                  statistical_parity_difference={SEX: 0.19008035, "race": 0.1577},
                  score=0.9173303434627169),
    WindowSummary(window=2, rows=3014, max_psi=3.6827294800616284, max_psi_feature="age",
                  drifted_features=2, prediction_psi=0.7553632187406017,
                  disparate_impact={SEX: 0.0812096774, "race": None},
                  statistical_parity_difference={SEX: 0.2262760675, "race": 0.2098},
                  alerts=["DriftDetected", "BiasDrift"]),
    WindowSummary(window=3, rows=2000, max_psi=1.739166001878771, max_psi_feature="age",
                  drifted_features=1, prediction_psi=0.19900954150674702,
                  disparate_impact={SEX: 0.34263829787234, "race": 0.1872},
                  statistical_parity_difference={SEX: 0.18368900022, "race": 0.2375},
                  score=0.9214085265384881),
]  # fmt: skip


def _points(svg: str) -> dict[str, dict[int, str]]:
    """series name -> window -> the exact value a chart carries for it."""
    found: dict[str, dict[int, str]] = {}
    for name, body in re.findall(
        r'<g class="series" data-series="([^"]*)">(.*?)\n  </g>', svg, re.S
    ):
        for window, value in re.findall(r'data-window="(\d+)" data-value="([^"]+)"', body):
            found.setdefault(unescape(name), {})[int(window)] = value
    return found


def test_a_monitors_page_draws_the_windows_of_its_status() -> None:
    monitor = _monitor(WINDOWS)
    run = _obj("TrainingRun", "income", "t1")
    run["spec"]["evalMetric"] = "roc_auc"
    config = OperatorConfig(artifact_root="file:///nowhere", jobs_image="local")
    console = Console(_Cluster([monitor, run], []), config, ["ml"])  # type: ignore[arg-type]
    page = TestClient(build_app(console)).get("/ns/ml/modelmonitors/watch")
    assert page.status_code == 200
    charts = re.findall(r'<figure class="chart">(.*?)</figure>', page.text, re.S)
    titles = [unescape(re.search(r"<title>(.*?)</title>", c).group(1)) for c in charts]  # type: ignore[union-attr]
    assert titles == [
        "Drift: largest feature PSI and prediction PSI",
        "Features that drifted",
        "Disparate impact per sensitive feature",
        "Statistical parity difference per sensitive feature",
        "roc_auc on labelled rows",  # named after the watched model's eval metric
    ]
    drift, drifted, impact, parity, score = (_points(c) for c in charts)
    assert drift["largest feature PSI"] == {w.window: repr(w.max_psi) for w in WINDOWS}
    assert drift["prediction PSI"] == {w.window: repr(w.prediction_psi) for w in WINDOWS}
    assert drifted["features over the PSI threshold"] == {
        w.window: str(w.drifted_features) for w in WINDOWS
    }
    for measure, chart in (("disparate_impact", impact), ("statistical_parity_difference", parity)):
        for feature in (SEX, "race"):
            assert chart[feature] == {
                w.window: repr(getattr(w, measure)[feature])
                for w in WINDOWS
                if getattr(w, measure)[feature] is not None  # no value: no point, a gap
            }
    assert score["roc_auc"] == {1: repr(WINDOWS[0].score), 3: repr(WINDOWS[2].score)}
    # The threshold is the spec's, and each point's tooltip says its exact value.
    assert "PSI threshold 0.25" in charts[0]
    assert f"<title>window 2 · largest feature PSI: {WINDOWS[1].max_psi!r}</title>" in charts[0]
    # Names from the resource are text, never markup.
    assert SEX not in page.text and "&lt;b&gt;sex&lt;/b&gt;" in page.text
    # The windows table, newest first, with the figures as the status has them.
    table = page.text.split('<table class="windows">')[1].split("</table>")[0]
    first_cells = re.findall(r"<tr><td>(\d+)</td>", table)
    assert first_cells == ["3", "2", "1"]
    assert repr(WINDOWS[1].max_psi) in table and "DriftDetected, BiasDrift" in table
    assert "<script" not in page.text.split("<main>")[1].split("</main>")[0]


def test_a_line_chart_leaves_gaps_and_keeps_close_labels_apart() -> None:
    chart = line_chart("t", "y", [1, 2, 3, 4], {"a": [1.0, None, 2.0, 3.0], "b": [1.01, 5, 6, 7]})
    a, b = chart.series
    assert len(a.segments) == 2, "a window without a value breaks the line"
    assert [p.window for p in a.points] == [1, 3, 4]
    assert a.points[2].y < a.points[1].y < a.points[0].y, "a larger value is drawn higher"
    assert all(chart.top <= p.y <= chart.bottom for s in chart.series for p in s.points)
    assert all(chart.top <= t.at <= chart.bottom for t in chart.y_ticks)
    # Window 1: 1.0 and 1.01 are drawn at almost the same height; one label goes below.
    first = sorted((a.points[0], b.points[0]), key=lambda p: p.y)
    assert first[0].label_y < first[0].y and first[1].label_y > first[1].y
    assert [t.label for t in chart.x_ticks] == ["1", "2", "3", "4"]
    assert line_chart("t", "y", [1], {"a": [None]}).empty
