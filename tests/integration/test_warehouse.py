"""The warehouse: MongoDB records of what FairPilot made, written through the outbox.

No MongoDB server runs here: mongomock stands in for it (the code is plain pymongo), and a
pymongo client pointed at a closed port plays MongoDB being down.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mongomock
import pytest
from support import seed
from support.bridge import Store, finished

from fairpilot.api.kinds import BY_KIND
from fairpilot.events.topics import Topics
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.kafka import free_port
from fairpilot.sandbox.testing import bias_trigger as trigger
from fairpilot.sandbox.testing import by_name, eventually, payloads, produce, read, resource
from fairpilot.warehouse import Warehouse
from fairpilot.warehouse.sink import WarehouseSink


def mongo() -> Warehouse:
    return Warehouse(mongomock.MongoClient().fairpilot)


def delivered(sandbox: Sandbox, name: str) -> list[str]:
    status = (by_name(sandbox).get(name) or {}).get("status") or {}
    return (status.get("delivered") or {}).get("warehouse") or []


def write_all(sink: WarehouseSink, item: dict[str, Any]) -> list[str]:
    import asyncio

    todo = sink.pending(BY_KIND[item["kind"]], item, set())
    for delivery in todo:
        asyncio.run(sink.deliver(delivery))
    return [d.id for d in todo]


def test_records_follow_the_seeds_schemas_and_replays_do_not_duplicate(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    metadata = {"model_id": "m1", "user_id": "u1", "version": "v2", "framework": "autogluon",
                "algorithm": "LightGBM", "files": [{"filename": "predictor.pkl"}],
                "model_size_mb": 1.2, "training_accuracy": 0.9, "validation_accuracy": 0.8,
                "test_accuracy": None, "model_type": "classification"}  # fmt: skip
    (out / "model_metadata.json").write_text(json.dumps(metadata))
    (out / "result.json").write_text(json.dumps({"rows": 10}))
    dataset = finished("Dataset", {"uri": "s3://b/d.csv", "userId": "u1"}, {"rows": 10},
                       name="ds", annotations={"fairpilot.io/dataset-id": "d1"})  # fmt: skip
    dataset["status"]["outputUri"] = f"file://{out}"
    run = finished("TrainingRun", {"datasetRef": "ds", "target": "y", "userId": "u1"},
                   {"modelId": "m1", "modelVersion": "v2", "outputUri": f"file://{out}"},
                   name="run")  # fmt: skip
    run["metadata"]["uid"] = "uid-run"
    explanation = finished(
        "Explanation", {"trainingRunRef": "run", "userId": "u1"},
        {"reports": {"beginner": "file:///b.html", "expert": "file:///e.html"},
         "outputUri": f"file://{out}", "method": "tree"},
        name="why", annotations={"fairpilot.io/dataset-id": "d1"},
    )  # fmt: skip
    explanation["metadata"]["uid"] = "uid-why"
    warehouse = mongo()
    warehouse.ensure_indexes()
    sink = WarehouseSink(warehouse, Store(dataset, run).get)
    for item in (dataset, run, explanation, explanation, run):  # replays included
        assert write_all(sink, item) == ["record/g1"]
    db = warehouse.db
    assert db.datasets.count_documents({}) == 1
    (stored,) = db.datasets.find({"user_id": "u1", "dataset_id": "d1"})
    assert stored["_id"] == "uid-1" and stored["profile"] == {"rows": 10}
    (model,) = db.ai_models.find({"user_id": "u1", "model_id": "m1", "version": "v2"})
    for field in ("framework", "algorithm", "files", "model_size_mb", "training_accuracy"):
        assert model[field] == metadata[field]  # seed 004's metadata, as written by the job
    assert model["dataset_id"] == "d1" and model["_id"] == "uid-run-g1"  # via datasetRef
    reports = list(db.xai_reports.find({"user_id": "u1", "model_id": "m1"}).sort("level"))
    assert [r["level"] for r in reports] == ["beginner", "expert"]
    assert reports[0]["_id"] == "uid-why-g1-beginner" and reports[0]["version"] == "v2"
    indexed = {
        collection: [list(i["key"]) for i in db[collection].index_information().values()]
        for collection in ("datasets", "ai_models", "xai_reports", "bias_reports", "audit")
    }
    assert [("user_id", 1), ("model_id", 1), ("version", 1)] in [
        [tuple(k) for k in keys] for keys in indexed["ai_models"]
    ]
    assert any(keys[0][0] == "user_id" for keys in indexed["bias_reports"])


def test_the_sandbox_records_datasets_reports_and_every_event_in_the_audit(
    tmp_path: Path,
) -> None:
    warehouse = mongo()
    with Sandbox(tmp_path / "artifacts", noop_jobs=True, warehouse=warehouse) as sandbox:
        assert sandbox.kafka is not None
        produce(sandbox.kafka, [("bias-trigger-events", trigger("audited")),
                                ("bias-trigger-events", b"junk")])  # fmt: skip
        name = eventually(lambda: next((n for n in by_name(sandbox) if "-bias-" in n), None), 30)
        assert eventually(lambda: "audit/bias.reported/g1" in delivered(sandbox, name), 30), (
            by_name(sandbox)[name]["status"].get("delivered")
        )
        records = read(sandbox.kafka, ["bias-events"])
    db = warehouse.db
    (event,) = payloads(records, "bias-events")
    (report,) = db.bias_reports.find({"user_id": "user123", "dataset_id": "audited"})
    assert report["_id"] == event["bias_report_id"]
    assert db.datasets.count_documents({"dataset_id": "audited"}) == 1
    received = {doc["topic"]: doc for doc in db.audit.find({"direction": "received"})}
    assert received["bias-trigger-events"]["payload"]["dataset_id"] == "audited"
    (dead,) = db.audit.find({"direction": "dead-lettered"})
    assert dead["reason"] == "NotJson" and dead["value"] == "junk"
    sent = {doc["event_id"]: doc for doc in db.audit.find({"direction": "sent"})}
    assert sent[event["event_id"]]["payload"] == event
    seed.check_against_seed(sent[event["event_id"]]["payload"], "bias-events")
    assert sum(doc["topic"] == Topics().status for doc in sent.values()) >= 4


@pytest.mark.timeout(120)
def test_mongodb_down_delays_the_records_but_not_the_pipeline(tmp_path: Path) -> None:
    # pymongo against a port nobody listens on: every write fails as with MongoDB down.
    down = Warehouse.from_uri(f"mongodb://127.0.0.1:{free_port()}/fairpilot", timeout_ms=300)
    with Sandbox(tmp_path / "artifacts", noop_jobs=True, kafka=False, warehouse=down) as sandbox:
        sandbox.apply([resource("Dataset", "kept", {"uri": "file:///unused.csv"})])
        assert eventually(
            lambda: (by_name(sandbox)["kept"].get("status") or {}).get("phase") == "Succeeded", 30
        )
        eventually(lambda: False, 2)  # a few failed attempts
        assert delivered(sandbox, "kept") == []
        unreachable = down.db
        down.db = mongomock.MongoClient().fairpilot  # MongoDB is back
        unreachable.client.close()
        assert eventually(lambda: delivered(sandbox, "kept") == ["record/g1"], 60)
        assert down.db.datasets.count_documents({"name": "kept"}) == 1
