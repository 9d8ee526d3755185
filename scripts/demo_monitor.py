"""`make demo-monitor`: a ModelMonitor on the Adult model in the sandbox, fed shifted data.

What it does, and what it prints at each step (the status as `kubectl get` would show it, the
monitor's Events, the Kafka events, the warehouse's documents and the reports' paths):

1. trains a model on Adult (`TrainingRun income`, 20 s budget, a validation threshold and a
   fairness gate on sex) and starts a monitor on it (`ModelMonitor income-watch`, a batch
   folder looked at every 10 s, retraining on DriftDetected or BiasDrift);
2. window 1: rows like the training data's, and a batch without the `age` column (rejected,
   named in the status, left in place);
3. window 2: everyone 20 years older and women drawn from the lower incomes: DriftDetected on
   age, BiasDrift on sex; the monitor starts a candidate TrainingRun on the newest data;
4. window 3, labelled: the candidate and the watched model are scored on the same rows, and
   the candidate is promoted or refused by its gates.

    python scripts/demo_monitor.py [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from fairpilot.datasets import export_adult
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.testing import by_name, payloads, read, resource

MONITOR = "income-watch"
SHOWN = ("event_type", "alert_type", "feature", "metric", "value", "baseline", "version", "message")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def wait(sandbox: Sandbox, name: str, check: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = by_name(sandbox).get(name)
        if item is not None and check(item.get("status") or {}):
            return item["status"]
        time.sleep(1)
    raise SystemExit(f"timed out waiting for {name}: {what}")


def write_batch(folder: Path, name: str, frame: pd.DataFrame) -> None:
    hidden = folder / f".{name}"
    frame.to_csv(hidden, index=False)
    os.replace(hidden, folder / name)
    print(f"   wrote {folder / name} ({len(frame):,} rows)")


def show(status: dict[str, Any]) -> None:
    """The monitor as `kubectl get modelmonitors -o wide` and `describe` show it."""
    print(f"   phase {status.get('phase')}: {status.get('message')}")
    for condition in status.get("conditions") or []:
        if condition["type"] in ("Ready", "ReferencesResolved", "BatchesListed"):
            continue
        print(f"   {condition['type']:<20} {condition['status']:<8} {condition['reason']}")
        if condition["status"] == "True":
            print(f"      {condition['message'][:300]}")
    for report in (status.get("reports") or {}).values():
        print(f"   report: {report.removeprefix('file://')}")


def events(sandbox: Sandbox, seen: set[str]) -> None:
    for event in sandbox.cluster.core.list_namespaced_event(sandbox.namespace).items:
        if event.involved_object.name != MONITOR or event.metadata.name in seen:
            continue
        seen.add(event.metadata.name)
        print(f"   event {event.type:<8} {event.reason:<20} {event.message[:200]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("TMPDIR", "/tmp")) / f"fairpilot-{os.getuid()}-monitor"
    parser.add_argument("--root", type=Path, default=default, help="the demo's own folder")
    args = parser.parse_args()
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    run = root / time.strftime("%Y%m%dT%H%M%S")
    data, batches = run / "data", run / "batches"
    batches.mkdir(parents=True)
    paths = export_adult(data)
    test = pd.read_csv(paths["test"])
    recent = data / "adult-recent.csv"
    test.assign(age=test["age"] + 20).to_csv(recent, index=False)
    warehouse = None
    try:
        import mongomock

        from fairpilot.warehouse.store import Warehouse

        warehouse = Warehouse(mongomock.MongoClient()["fairpilot"])
    except ImportError:
        pass
    print(f"demo folder: {run}")
    seen: set[str] = set()
    with Sandbox(run / "artifacts", warehouse=warehouse, file_root=run) as sandbox:
        say("1. a model on Adult, and a monitor on it")
        sandbox.apply(
            [
                resource("Dataset", "adult", {"uri": f"file://{paths['train']}", "userId": "demo",
                                              "target": "income", "sensitiveFeatures": ["sex"]}),
                resource("Dataset", "adult-test", {"uri": f"file://{paths['test']}",
                                                   "userId": "demo"}),
                resource("Dataset", "adult-recent", {"uri": f"file://{recent}", "userId": "demo"}),
                resource("TrainingRun", "income", {
                    "datasetRef": "adult", "testDatasetRef": "adult-test", "target": "income",
                    "userId": "demo", "evalMetric": "roc_auc", "timeLimitSeconds": 20,
                    "validationThreshold": {"metric": "roc_auc", "min": 0.8},
                    "fairness": {"sensitiveFeatures": ["sex"], "positiveLabel": ">50K"},
                }),
                resource("ModelMonitor", MONITOR, {
                    "trainingRunRef": "income", "userId": "demo",
                    "batches": {"uri": f"file://{batches}/", "intervalSeconds": 10},
                    "retraining": {"triggers": ["DriftDetected", "BiasDrift"],
                                   "datasetRef": "adult-recent", "tolerance": 0.02,
                                   "cooldownSeconds": 0},
                }),
            ]
        )  # fmt: skip
        trained = wait(sandbox, "income", lambda s: s.get("phase") in ("Succeeded", "Failed"),
                       600, "training")  # fmt: skip
        print(f"   TrainingRun income: {trained.get('message')}")
        show(wait(sandbox, MONITOR, lambda s: s.get("lastCheckedAt"), 60, "its first look"))

        say("2. window 1: rows like the training data's, and a batch without `age`")
        write_batch(batches, "01-stationary.csv", test.sample(3000, random_state=1))
        write_batch(batches, "02-no-age.csv", test.head(200).drop(columns=["age"]))
        status = wait(sandbox, MONITOR, lambda s: s.get("window") == 1
                      and s.get("phase") in ("Succeeded", "Failed"), 300, "window 1")  # fmt: skip
        show(status)
        for rejected in status.get("rejected") or []:
            print(f"   rejected {rejected['uri']}: {rejected['reason']}: {rejected['message']}")
        events(sandbox, seen)

        say("3. window 2: everyone 20 years older, women from the lower incomes")
        shifted = test.sample(3000, random_state=2)
        women = test[(test["sex"] == "Female") & (test["income"].str.contains("<=50K"))]
        shifted = pd.concat([shifted[shifted["sex"] != "Female"], women.head(1000)])
        write_batch(batches, "03-shifted.csv", shifted.assign(age=shifted["age"] + 20)
                    .drop(columns=["income"]))  # fmt: skip
        status = wait(sandbox, MONITOR, lambda s: s.get("window") == 2
                      and s.get("phase") in ("Succeeded", "Failed"), 300, "window 2")  # fmt: skip
        show(status)
        events(sandbox, seen)
        candidate = ((status.get("retraining") or {}).get("candidate")) or {}
        if not candidate:
            raise SystemExit("no candidate was started")
        print(f"   retraining: TrainingRun {candidate['name']} ({candidate['reason'][:200]})")
        wait(sandbox, MONITOR, lambda s: ((s.get("retraining") or {}).get("candidate") or {})
             .get("state") != "Training", 900, "the candidate's training")  # fmt: skip
        trained = by_name(sandbox)[candidate["name"]]["status"]
        print(f"   TrainingRun {candidate['name']}: {trained.get('message')}; "
              f"production-ready: {trained.get('productionReady')}")  # fmt: skip

        say("4. window 3, labelled: the candidate against the watched model, then the gates")
        write_batch(batches, "04-labelled.csv", test.sample(2000, random_state=3)
                    .assign(age=lambda f: f["age"] + 20))  # fmt: skip
        status = wait(sandbox, MONITOR, lambda s: s.get("window") == 3
                      and s.get("phase") in ("Succeeded", "Failed"), 300, "window 3")  # fmt: skip
        show(status)
        events(sandbox, seen)
        for decided in (status.get("retraining") or {}).get("candidates") or []:
            print(f"   {decided['name']}: {decided['state']}: {decided.get('message')}")
        if status.get("watched"):
            print(f"   the monitor now watches TrainingRun {status['watched']['trainingRun']}")

        say("Kafka (drift-events, automl-events)")
        assert sandbox.kafka is not None
        time.sleep(3)  # the outbox sends a moment after the status changed
        records = read(sandbox.kafka, ["drift-events", "automl-events"])
        for topic in ("drift-events", "automl-events"):
            for payload in payloads(records, topic):
                shown = {k: payload.get(k) for k in SHOWN if k in payload}
                print(f"   {topic}: {json.dumps(shown)[:300]}")
        if warehouse is not None:
            say("warehouse (in memory, mongomock)")
            for collection in ("drift_alerts", "monitor_windows", "model_promotions"):
                print(f"   {collection}: {warehouse.db[collection].count_documents({})} documents")
        (run / "monitor-status.json").write_text(json.dumps(status, indent=2))
        print(f"\nthe monitor's status: {run / 'monitor-status.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
