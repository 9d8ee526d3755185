"""The warehouse in MongoDB (pymongo): what the seed's data warehouse kept, FairPilot-made.

Collections (the seed's names where it had them):

- ``datasets``: one document per Dataset (its spec and profile), ``_id`` the resource's uid;
- ``bias_reports``: one per BiasAnalysis run, ``_id`` = the event's ``bias_report_id``;
- ``ai_models``: seed 004's model metadata schema, one per TrainingRun run (one model id and
  version: one model), with the model's fairness (as its ``model.uploaded`` event has it:
  ``fairness``, ``fairness_gates_passed``) and its ``mitigation``;
- ``xai_reports``: one per Explanation run and expertise level (``xai_report_id``);
- ``drift_alerts``: one per alert of a ModelMonitor's window (``alert_id``);
- ``monitor_windows``: one per ModelMonitor window (``window_id``), its figures and result;
- ``model_promotions``: one per retrained candidate a ModelMonitor promoted or refused;
- ``audit``: every Kafka event sent, received or dead-lettered, ``_id`` the event's identity.

Every write is an upsert by ``_id``, so a replay after a restart rewrites the same documents.
The indexes serve the seed's API queries: by user, by dataset, by model and version.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from fairpilot import settings
from fairpilot.api.kinds import Kind
from fairpilot.kinds import behaviour
from fairpilot.kinds.base import (
    AUDIT,
    BIAS_REPORTS,
    DATASETS,
    DRIFT_ALERTS,
    MODEL_PROMOTIONS,
    MODELS,
    MONITOR_WINDOWS,
    XAI_REPORTS,
    ReadJson,
    Succeeded,
    Write,
)
from fairpilot.runs import current_run

INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    DATASETS: [[("user_id", 1), ("dataset_id", 1)], [("namespace", 1), ("name", 1)]],
    BIAS_REPORTS: [[("user_id", 1), ("dataset_id", 1), ("created_at", -1)]],
    MODELS: [
        [("user_id", 1), ("model_id", 1), ("version", 1)],
        [("user_id", 1), ("framework", 1), ("model_type", 1)],
        [("user_id", 1), ("dataset_id", 1)],
        [("tags", 1)],
    ],
    XAI_REPORTS: [
        [("user_id", 1), ("dataset_id", 1), ("model_id", 1), ("report_type", 1), ("level", 1)],
        [("user_id", 1), ("model_id", 1), ("version", 1)],
    ],
    DRIFT_ALERTS: [
        [("user_id", 1), ("model_id", 1), ("model_version", 1), ("created_at", -1)],
        [("namespace", 1), ("name", 1), ("window", -1)],
        [("type", 1), ("created_at", -1)],
    ],
    MONITOR_WINDOWS: [[("namespace", 1), ("name", 1), ("window", -1)]],
    MODEL_PROMOTIONS: [[("user_id", 1), ("model_id", 1), ("created_at", -1)]],
    AUDIT: [[("event_id", 1)], [("user_id", 1), ("at", -1)], [("topic", 1), ("direction", 1)]],
}


def utcnow() -> str:
    return datetime.now(UTC).isoformat()


class WarehouseSettings(BaseModel):
    """Where the warehouse is: the seed's MONGO_URI, and the database when the URI names none."""

    uri: str | None = None
    database: str = "fairpilot"


class Warehouse:
    """Upserts into one MongoDB database; plain pymongo, so any MongoDB (or mongomock) works."""

    def __init__(self, database: Any) -> None:
        self.db = database

    @classmethod
    def from_uri(cls, uri: str, database: str = "fairpilot", timeout_ms: int = 3000) -> Warehouse:
        import pymongo

        # Short timeouts: a MongoDB outage must make a write fail (and be retried later), not
        # hold the outbox's worker for pymongo's default 30 s.
        client: Any = pymongo.MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms, 10_000),
            retryWrites=True,
            appname="fairpilot-operator",
        )
        return cls(client.get_default_database(default=database))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Warehouse | None:
        """From MONGO_URI (and FAIRPILOT_MONGO_DATABASE); None when MONGO_URI is not set."""
        found = settings.from_env(
            WarehouseSettings, "FAIRPILOT_MONGO_", env, fields={"database"},
            renamed={"MONGO_URI": "uri"},
        )  # fmt: skip
        config = WarehouseSettings.model_validate(found)
        return None if config.uri is None else cls.from_uri(config.uri, config.database)

    def close(self) -> None:
        """Close the client's connections (and its monitor threads)."""
        self.db.client.close()

    def ensure_indexes(self) -> None:
        for collection, indexes in INDEXES.items():
            for keys in indexes:
                self.db[collection].create_index(keys)

    def upsert(self, collection: str, key: str, document: dict[str, Any]) -> None:
        self.db[collection].replace_one({"_id": key}, {**document, "_id": key}, upsert=True)

    def audit(self, key: str, document: dict[str, Any]) -> None:
        # Merged, not replaced: a received message is recorded by the consumer (with its
        # payload) and again from the resource it made (with the resource), under one id.
        self.db[AUDIT].update_one(
            {"_id": key}, {"$set": {**document, "recorded_at": utcnow()}}, upsert=True
        )


def records_for(
    kind: Kind,
    resource: dict[str, Any],
    read_json: ReadJson,
    ids: dict[str, str],
) -> list[Write]:
    """The (collection, _id, document) writes a succeeded resource calls for: the fields every
    document has, and the kind's own (its behaviour's `records`).

    `ids`: the seed's ids of the resource (user_id, dataset_id, and model_id/version for models
    and explanations), the same values its Kafka event carries.
    """
    meta, status = resource["metadata"], resource["status"]
    generation = int(meta.get("generation") or 1)
    run = current_run(status, generation)
    common = {
        **ids,
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "generation": generation,
        "run_id": run,
        "finished_at": status.get("finishedAt"),
        "updated_at": utcnow(),
    }
    return behaviour(kind).records(Succeeded(resource, run, get=_no_lookups), common, read_json)


def _no_lookups(kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
    raise AssertionError("a warehouse record is made from the resource and ids alone")
