"""A ModelMonitor fed from Kafka: prediction records on a real broker (Tansu), gathered into
windows by the real operator's bridge, measured by the real monitor stage on a model trained on
Adult in the sandbox.

One sandbox and one trained model for the module: its training starts as the module does, and
the tests that need no model (routing, time, restart) run meanwhile, on monitors of a
TrainingRun that does not exist (their windows are written, never measured). Every test has
monitors and ids of its own, and deletes its monitors at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client import REGISTRY

from fairpilot.api.monitor import KafkaSource
from fairpilot.runs import records_uri
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.testing import (
    DEAD,
    by_name,
    eventually,
    produce,
    read_until,
    resource,
    wait_for,
)

pytestmark = pytest.mark.timeout(600)
TOPIC = KafkaSource().topic  # prediction-events
TRAINED = 300  # seconds: profile, then 15 s of training and its stage's start and end
NO_RUN = "no-such-run"  # monitors that only collect: no model, so no window is measured


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, adult: dict[str, str]) -> Iterator[Sandbox]:
    with Sandbox(tmp_path_factory.mktemp("monitor-kafka") / "artifacts") as running:
        running.apply(
            [
                resource("Dataset", "adult", {"uri": adult["train"], "userId": "ana",
                                              "target": "income", "sensitiveFeatures": ["sex"]}),
                resource("Dataset", "adult-test", {"uri": adult["test"], "userId": "ana"}),
                resource("TrainingRun", "income", {
                    "datasetRef": "adult", "testDatasetRef": "adult-test", "target": "income",
                    "userId": "ana", "evalMetric": "roc_auc", "timeLimitSeconds": 15,
                    "fairness": {"sensitiveFeatures": ["sex"], "positiveLabel": ">50K"},
                }),
            ]
        )  # fmt: skip
        yield running


@pytest.fixture(scope="module")
def trained(sandbox: Sandbox) -> dict[str, Any]:
    """The TrainingRun `income` (model id `income`, user ana), once its model is trained."""
    return wait_for(sandbox, "income", lambda s: s.get("phase") == "Succeeded", TRAINED)


@pytest.fixture(scope="module")
def rows(adult: dict[str, str]) -> list[dict[str, Any]]:
    """Adult's test rows as JSON objects (the label `income` among them)."""
    frame = pd.read_csv(adult["test"].removeprefix("file://"))
    return json.loads(frame.sample(2000, random_state=3).to_json(orient="records"))


# -- helpers ------------------------------------------------------------------------------------
def kafka_monitor(name: str, user: str, run: str = NO_RUN, **kafka: Any) -> dict[str, Any]:
    return resource("ModelMonitor", name, {"trainingRunRef": run, "userId": user, "kafka": kafka})


def folder(sandbox: Sandbox, name: str) -> Path:
    """The monitor's records folder (status.recordsUri), where its windows are written."""
    item = by_name(sandbox)[name]
    return Path(records_uri(sandbox.config, item).removeprefix("file://"))


def windows(sandbox: Sandbox, name: str) -> list[Path]:
    place = folder(sandbox, name)
    return (
        sorted(p for p in place.iterdir() if not p.name.startswith(".")) if place.is_dir() else []
    )


def lines(files: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for file in files for line in file.read_text().splitlines()]


def ids(files: list[Path]) -> list[str]:
    return [row["record_id"] for row in lines(files)]


def prediction(record_id: str, user: str, model: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_type": "prediction.made",
        "record_id": record_id,
        "user_id": user,
        "model_id": model,
        "features": {"age": 40, "sex": " Male", "hours-per-week": 40},
        "prediction": " <=50K",
        **fields,
    }


def send(sandbox: Sandbox, messages: list[Any]) -> None:
    assert sandbox.kafka is not None
    produce(sandbox.kafka, [(TOPIC, m) for m in messages], pipelined=True)


def delete(sandbox: Sandbox, *names: str) -> None:
    for name in names:
        sandbox.cluster.custom.delete_namespaced_custom_object(
            "fairpilot.io", "v1alpha1", sandbox.namespace, "modelmonitors", name
        )


def dead_letters(sandbox: Sandbox, enough: int) -> list[tuple[bytes, dict[str, str]]]:
    """(value, headers) of the prediction records on the dead-letter topic."""
    assert sandbox.kafka is not None

    def ours(records: list[Any]) -> list[tuple[bytes, dict[str, str]]]:
        found = []
        for record in records:
            headers = {key: value.decode() for key, value in record.headers}
            if headers.get("fairpilot.dlq.topic") == TOPIC:
                found.append((record.value, headers))
        return found

    return ours(read_until(sandbox.kafka, [DEAD], lambda rs: len(ours(rs)) >= enough, 60))


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


# -- no model needed ------------------------------------------------------------------------------
def test_records_go_to_their_users_monitor_only_and_the_rest_to_the_dead_letter_topic(
    sandbox: Sandbox,
) -> None:
    sandbox.apply([
        kafka_monitor("route-ana", "ana", modelId="m-route", windowSeconds=3),
        kafka_monitor("route-bob", "bob", modelId="m-route", windowSeconds=3),
    ])  # fmt: skip
    ana = [prediction(f"ana-{i}", "ana", "m-route") for i in range(40)]
    bob = [prediction(f"bob-{i}", "bob", "m-route") for i in range(25)]
    nobody = [prediction(f"x-{i}", "ana", "m-nobody") for i in range(5)]
    nobody += [prediction(f"y-{i}", "carol", "m-route") for i in range(5)]
    bad: list[tuple[bytes, str]] = [
        (b"not json route-1", "NotJson"),
        (json.dumps({"model_id": "m-route", "features": {"a": 1}}).encode(), "InvalidPayload"),
        (json.dumps(prediction("bad-1", "ana", "m-route", features=[1, 2])).encode(),
         "InvalidPayload"),
        (json.dumps(prediction("bad-2", "ana", "m-route", features={})).encode(),
         "InvalidPayload"),
        (json.dumps(prediction("bad-3", "ana", "m route")).encode(), "InvalidName"),
        (json.dumps(prediction("bad-4", "ana", "m-route", namespace="kube-system")).encode(),
         "NamespaceNotAllowed"),
    ]  # fmt: skip
    stream: list[Any] = []
    for i in range(40):  # all mixed in one partition
        stream.append(ana[i])
        if i < 25:
            stream.append(bob[i])
        if i < 10:
            stream.append(nobody[i])
        if i < 6:
            stream.append(bad[i][0])
    send(sandbox, stream)

    assert eventually(
        lambda: (
            len(ids(windows(sandbox, "route-ana"))) >= len(ana)
            and len(ids(windows(sandbox, "route-bob"))) >= len(bob)
        ),
        60,
    )
    time.sleep(1)  # nothing more comes
    assert ids(windows(sandbox, "route-ana")) == [r["record_id"] for r in ana]
    assert ids(windows(sandbox, "route-bob")) == [r["record_id"] for r in bob]
    [row] = lines(windows(sandbox, "route-ana"))[:1]
    # Features at the top level, the prediction in `prediction`, the record's id and no label
    # (none was sent; the monitor's TrainingRun, which names the label column, is missing).
    assert row == {"age": 40, "sex": " Male", "hours-per-week": 40, "record_id": "ana-0",
                   "prediction": " <=50K"}  # fmt: skip

    letters = dead_letters(sandbox, len(nobody) + len(bad))
    reasons = {value: headers["fairpilot.dlq.reason"] for value, headers in letters}
    for message in nobody:
        raw = json.dumps(message).encode()
        assert reasons.get(raw) == "NoMonitor", message
    no_monitor = next(h for v, h in letters if v == json.dumps(nobody[0]).encode())
    assert "'m-nobody'" in no_monitor["fairpilot.dlq.message"]
    assert "'ana'" in no_monitor["fairpilot.dlq.message"]
    for raw, reason in bad:
        assert reasons.get(raw) == reason, (raw, reasons.get(raw))
    # Nothing lost: every record produced is in a window or on the dead-letter topic, once.
    written = ids(windows(sandbox, "route-ana")) + ids(windows(sandbox, "route-bob"))
    assert len(written) == len(set(written)) == len(ana) + len(bob)
    assert len(letters) == len(nobody) + len(bad)
    assert metric("fairpilot_kafka_dead_lettered_total", reason="NoMonitor") >= len(nobody)
    assert metric("fairpilot_prediction_windows_written_total", reason="time") >= 2
    assert metric("fairpilot_prediction_records_consumed_total", topic=TOPIC) >= len(stream)
    delete(sandbox, "route-ana", "route-bob")


def test_a_window_closes_window_seconds_after_its_first_record(sandbox: Sandbox) -> None:
    sandbox.apply([kafka_monitor("timed", "ana", modelId="m-time", windowSeconds=4)])
    time.sleep(1)
    began = time.time()
    send(sandbox, [prediction(f"t-{i}", "ana", "m-time") for i in range(20)])
    time.sleep(max(0.0, began + 2.5 - time.time()))
    assert windows(sandbox, "timed") == []  # 20 records of 1000, and 4 s have not passed
    assert eventually(lambda: windows(sandbox, "timed"), 30)
    [first] = windows(sandbox, "timed")
    assert first.stat().st_mtime >= began + 4 - 0.05
    assert first.stat().st_mtime < began + 15
    assert ids([first]) == [f"t-{i}" for i in range(20)]
    # The next record opens the next window.
    send(sandbox, [prediction(f"t-{i}", "ana", "m-time") for i in range(20, 30)])
    assert eventually(lambda: len(windows(sandbox, "timed")) == 2, 30)
    assert ids(windows(sandbox, "timed")) == [f"t-{i}" for i in range(30)]
    delete(sandbox, "timed")


def test_an_operator_restart_with_a_window_open_loses_no_record_and_repeats_none(
    sandbox: Sandbox,
) -> None:
    # Two monitors on one partition: a's open window holds the commit back while b's windows
    # after it are written, so the restarted bridge reads records of both again.
    sandbox.apply([
        kafka_monitor("restart-a", "ana", modelId="m-ra", windowRecords=300),
        kafka_monitor("restart-b", "ana", modelId="m-rb", windowRecords=100),
    ])  # fmt: skip
    a = [prediction(f"a-{i}", "ana", "m-ra") for i in range(600)]
    b = [prediction(f"b-{i}", "ana", "m-rb") for i in range(300)]
    # Before: 450 of a (one window written, 150 open), 250 of b (two written, 50 open).
    # b's records spread among a's: five of b to every nine of a.
    mixed = []
    for i in range(450):
        mixed.append(a[i])
        if i % 9 in (1, 3, 5, 7, 8):
            mixed.append(b[i // 9 * 5 + (1, 3, 5, 7, 8).index(i % 9)])
    send(sandbox, mixed)
    assert eventually(
        lambda: len(windows(sandbox, "restart-a")) == 1 and len(windows(sandbox, "restart-b")) == 2,
        60,
    ), (windows(sandbox, "restart-a"), windows(sandbox, "restart-b"))
    time.sleep(1)  # and the commit after them
    sandbox.restart_operator()
    # After: the rest; a's second window is 300-599, b's third 200-299.
    send(sandbox, a[450:] + b[250:])
    assert eventually(
        lambda: len(windows(sandbox, "restart-a")) == 2 and len(windows(sandbox, "restart-b")) == 3,
        90,
    ), (windows(sandbox, "restart-a"), windows(sandbox, "restart-b"))
    time.sleep(2)  # no further file comes
    assert ids(windows(sandbox, "restart-a")) == [r["record_id"] for r in a]
    assert ids(windows(sandbox, "restart-b")) == [r["record_id"] for r in b]
    assert [len(lines([f])) for f in windows(sandbox, "restart-b")] == [100, 100, 100]
    delete(sandbox, "restart-a", "restart-b")


# -- with the trained model ----------------------------------------------------------------------
def test_windows_by_count_are_written_in_offset_order_and_measured_at_once(
    sandbox: Sandbox,
    trained: dict[str, Any],
    rows: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No kafka.modelId: the TrainingRun's model id (its name, `income`). An empty batch folder
    # looked at hourly: after its first look the monitor looks again only when woken.
    counted = kafka_monitor("counted", "ana", run="income", windowRecords=500)
    empty = sandbox.artifacts / "no-batches"
    empty.mkdir(exist_ok=True)
    counted["spec"]["batches"] = {"uri": f"file://{empty}/", "intervalSeconds": 3600}
    sandbox.apply([counted])
    wait_for(sandbox, "counted", lambda s: s.get("lastCheckedAt"), 60)
    sent = [
        prediction(f"c-{i}", "ana", "income",
                   features={k: v for k, v in row.items() if k != "income"})
        for i, row in enumerate(rows[:1100])
    ]  # fmt: skip
    send(sandbox, sent)
    assert eventually(lambda: len(windows(sandbox, "counted")) == 2, 60)
    files = windows(sandbox, "counted")
    assert [len(lines([f])) for f in files] == [500, 500]
    assert ids(files) == [f"c-{i}" for i in range(1000)]  # in offset order; 100 still open
    assert "income" not in lines(files)[0]  # no label sent
    # The bridge woke the monitor: its window started although its next look is an hour away.
    started = wait_for(sandbox, "counted", lambda s: (s.get("window") or 0) >= 1, 180)
    assert started["status"]["recordsUri"] == f"file://{folder(sandbox, 'counted')}"
    done = wait_for(
        sandbox,
        "counted",
        lambda s: (
            s.get("phase") in ("Succeeded", "Failed")
            and len(s.get("windows") or []) >= 1
            and sum(w["rows"] for w in s["windows"]) == 1000
        ),
        240,
    )["status"]
    assert done["phase"] == "Succeeded", done
    assert condition(done, "PerformanceDegraded")["reason"] == "NoLabels"
    # The wake-up's reconciliation posted its Events as Kopf's handlers do (it needs their
    # context), and failed nowhere.
    reasons = {
        e.reason
        for e in sandbox.cluster.core.list_namespaced_event(sandbox.namespace).items
        if e.involved_object.name == "counted"
    }
    assert "Running" in reasons, reasons
    assert not [r for r in caplog.records if "reconciling ModelMonitor" in r.getMessage()]
    time.sleep(1)
    assert len(windows(sandbox, "counted")) == 2
    delete(sandbox, "counted")


def test_records_with_labels_make_labelled_windows(
    sandbox: Sandbox, trained: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    sandbox.apply([kafka_monitor("labelled", "lab", run="income", windowRecords=300)])
    sent = [
        prediction(f"l-{i}", "lab", "income", label=row["income"],
                   features={k: v for k, v in row.items() if k != "income"})
        for i, row in enumerate(rows[1100:1400])
    ]  # fmt: skip
    send(sandbox, sent)
    assert eventually(lambda: len(windows(sandbox, "labelled")) == 1, 60)
    [file] = windows(sandbox, "labelled")
    assert all(row["income"] for row in lines([file]))  # the label under the target's name
    done = wait_for(
        sandbox,
        "labelled",
        lambda s: s.get("window") == 1 and s.get("phase") in ("Succeeded", "Failed"),
        240,
    )["status"]
    assert done["phase"] == "Succeeded", done
    performance = condition(done, "PerformanceDegraded")
    assert performance["status"] in ("True", "False"), performance
    assert performance["reason"] != "NoLabels"
    assert done["windows"][-1]["score"] is not None
    result = json.loads(Path(done["outputUri"].removeprefix("file://"), "result.json").read_text())
    assert result["labelledRows"] == 300
    delete(sandbox, "labelled")
