"""A ModelMonitor end to end: the real operator (Kopf) against the sandbox's API server, the
real train and monitor stages as local Jobs, Kafka: a model trained on Adult, then batches of
new rows dropped under its monitor's prefix, window by window."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.testing import by_name, payloads, read_until, resource, wait_for

TRAINED = 300  # seconds: profile, then up to 30 s of training and its stage's start and end


def write_batch(folder: Path, name: str, frame: pd.DataFrame) -> None:
    """As a producer should: under a hidden name, then renamed, so no look sees half a file."""
    hidden = folder / f".{name}"
    frame.to_csv(hidden, index=False)
    os.replace(hidden, folder / name)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def window_done(number: int) -> Any:
    def check(status: dict[str, Any]) -> bool:
        return status.get("window") == number and status.get("phase") in ("Succeeded", "Failed")

    return check


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "artifacts") as running:
        yield running


def test_a_monitor_measures_each_window_raises_drift_and_bias_drift_and_retrains(
    sandbox: Sandbox, adult: dict[str, str], tmp_path: Path
) -> None:
    batches = tmp_path / "batches"
    batches.mkdir()
    test = pd.read_csv(adult["test"].removeprefix("file://"))
    # The newest data a retrained model learns from: the held-out rows, twenty years older.
    recent = tmp_path / "recent.csv"
    test.assign(age=test["age"] + 20).to_csv(recent, index=False)
    sandbox.apply(
        [
            resource("Dataset", "adult", {"uri": adult["train"], "userId": "ana",
                                          "target": "income", "sensitiveFeatures": ["sex"]}),
            resource("Dataset", "adult-test", {"uri": adult["test"], "userId": "ana"}),
            resource("Dataset", "adult-recent", {"uri": f"file://{recent}", "userId": "ana"}),
            resource("TrainingRun", "income", {
                "datasetRef": "adult", "testDatasetRef": "adult-test", "target": "income",
                "userId": "ana", "evalMetric": "roc_auc", "timeLimitSeconds": 30,
                # LightGBM alone, with the whole budget: on a busy machine, three families in
                # a short budget left one cut-short tree model that chose nobody (no
                # disparate impact to watch). AutoGluon stops when it is done, not at 30 s.
                "algorithms": ["lightgbm"],
                "validationThreshold": {"metric": "roc_auc", "min": 0.8},
                "fairness": {"sensitiveFeatures": ["sex"], "positiveLabel": ">50K"},
            }),
            resource("ModelMonitor", "income-watch", {
                "trainingRunRef": "income", "userId": "ana",
                "batches": {"uri": f"file://{batches}/", "intervalSeconds": 10},
                "retraining": {"triggers": ["DriftDetected"], "datasetRef": "adult-recent",
                               "tolerance": 0.02, "cooldownSeconds": 0},
            }),
        ]
    )  # fmt: skip
    trained = wait_for(sandbox, "income", lambda s: s.get("phase") == "Succeeded", TRAINED)
    # The scenario needs a model that chooses people of both sexes after training.
    (sex,) = trained["status"]["fairness"]["features"]
    assert sex["disparateImpact"] is not None, trained["status"]["fairness"]
    waiting = wait_for(sandbox, "income-watch", lambda s: s.get("lastCheckedAt"), 60)
    assert waiting["status"]["phase"] == "Pending"
    assert f"waiting for new batches under file://{batches}/" in waiting["status"]["message"]

    # Window 1: rows like the training data's, and a batch that lacks a feature column.
    write_batch(batches, "01-stationary.csv", test.sample(3000, random_state=1))
    write_batch(batches, "02-no-age.csv", test.head(200).drop(columns=["age"]))
    first = wait_for(sandbox, "income-watch", window_done(1), 180)["status"]
    assert first["phase"] == "Succeeded", first
    assert condition(first, "DriftDetected")["status"] == "False", first["conditions"]
    assert condition(first, "BiasDrift")["status"] == "False", first["conditions"]
    assert condition(first, "PerformanceDegraded")["status"] == "False", first["conditions"]
    rejected = condition(first, "BatchesRejected")
    assert rejected["status"] == "True" and "02-no-age.csv" in rejected["message"]
    assert [r["uri"].rsplit("/", 1)[-1] for r in first["rejected"]] == ["02-no-age.csv"]
    assert first["modelVersion"] == trained["status"]["modelVersion"]

    # Window 2: everyone 20 years older (data drift), and women only from the rows with the
    # lower income (the model picks them less often: disparate impact by sex falls).
    shifted = test.sample(3000, random_state=2)
    women = test[(test["sex"].str.strip() == "Female") & (test["income"].str.contains("<=50K"))]
    shifted = pd.concat([shifted[shifted["sex"].str.strip() != "Female"], women.head(1000)])
    shifted["age"] = shifted["age"] + 20
    write_batch(batches, "03-shifted.csv", shifted.drop(columns=["income"]))
    second = wait_for(sandbox, "income-watch", window_done(2), 180)["status"]
    assert second["phase"] == "Succeeded", second
    drift = condition(second, "DriftDetected")
    assert drift["status"] == "True" and "age" in drift["message"], second["conditions"]
    assert condition(second, "BiasDrift")["status"] == "True", second["conditions"]
    assert condition(second, "PerformanceDegraded")["reason"] == "NoLabels"
    assert second["featurePsi"]["age"] >= 0.2
    assert [w["window"] for w in second["windows"]] == [1, 2]
    report = Path(second["reports"]["window"].removeprefix("file://"))
    assert report.is_file() and "<svg" in report.read_text()

    # Every alert reached Kafka, with the seed's ids.
    alerts = second["alerts"]
    assert sandbox.kafka is not None
    records = read_until(
        sandbox.kafka,
        ["drift-events"],
        lambda got: len(payloads(got, "drift-events")) >= len(alerts),
        60,
    )
    events = payloads(records, "drift-events")
    assert len(events) == len(alerts)
    assert {e["alert_type"] for e in events} >= {"DriftDetected", "BiasDrift"}
    assert all(e["user_id"] == "ana" and e["model_id"] == "income" for e in events)
    assert all(e["window"] == 2 for e in events)
    # And each is an Event on the monitor, as `kubectl describe` shows.
    reasons = {
        e.reason
        for e in sandbox.cluster.core.list_namespaced_event(sandbox.namespace).items
        if e.involved_object.name == "income-watch"
    }
    assert {"DriftDetected", "BiasDrift"} <= reasons
    assert by_name(sandbox)["income-watch"]["status"]["window"] == 2

    # The drift started a candidate: the watched spec (threshold, fairness) on adult-recent.
    retraining = second["retraining"]["candidate"]
    assert retraining["name"] == "income-watch-r1" and "DriftDetected" in retraining["reason"]
    candidate = by_name(sandbox)["income-watch-r1"]
    assert candidate["spec"]["datasetRef"] == "adult-recent"
    assert candidate["spec"]["validationThreshold"] == {"metric": "roc_auc", "min": 0.8}
    assert candidate["metadata"]["ownerReferences"][0]["kind"] == "ModelMonitor"
    wait_for(sandbox, "income-watch-r1", lambda s: s.get("phase") == "Succeeded", TRAINED)
    comparing = wait_for(
        sandbox,
        "income-watch",
        lambda s: ((s.get("retraining") or {}).get("candidate") or {}).get("state") == "Comparing",
        60,
    )["status"]["retraining"]["candidate"]
    assert comparing["modelVersion"] == "v2"
    # Window 3, labelled: both models scored on its rows, and the gates decide.
    labelled = test.sample(2000, random_state=3).assign(age=lambda f: f["age"] + 20)
    write_batch(batches, "04-labelled.csv", labelled)
    third = wait_for(sandbox, "income-watch", window_done(3), 180)["status"]
    assert third["phase"] == "Succeeded", third
    (decided,) = third["retraining"]["candidates"]
    assert decided["state"] in ("Promoted", "Refused"), decided
    assert decided["rows"] == 2000 and decided["metric"] == "roc_auc"
    assert decided["score"] is not None and decided["currentScore"] is not None
    promoted = condition(third, "Promoted")
    assert promoted["status"] == ("True" if decided["state"] == "Promoted" else "False")
    ready = by_name(sandbox)["income-watch-r1"]["status"]["productionReady"]
    as_good = decided["score"] >= decided["currentScore"] - 0.02
    assert (decided["state"] == "Promoted") == (ready is True and as_good), decided
    if decided["state"] == "Promoted":
        assert third["watched"]["trainingRun"] == "income-watch-r1"
    verdicts = read_until(
        sandbox.kafka,
        ["automl-events"],
        lambda got: any(p.get("training_run") for p in payloads(got, "automl-events")),
        60,
    )
    (verdict,) = [p for p in payloads(verdicts, "automl-events") if p.get("training_run")]
    assert verdict["event_type"] == f"model.{decided['state'].lower()}"
    assert (verdict["version"], verdict["previous_version"]) == ("v2", "v1")
