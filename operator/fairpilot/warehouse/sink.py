"""The outbox's warehouse sink: records of succeeded resources, and the audit of sent events.

The audit of an event is written once the Kafka sink has recorded the event as delivered, from
the same payload (kinds.events_for is deterministic); the audit of the message a resource
was made from is written from the resource's `fairpilot.io/source` annotation.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from fairpilot.api import labels as label
from fairpilot.api.kinds import Kind
from fairpilot.api.status import Phase
from fairpilot.events.outbound import Get, dataset_id_of, model_of, user_of
from fairpilot.events.topics import Topics
from fairpilot.kinds import behaviour, events_for
from fairpilot.outbox import Delivery, blocking
from fairpilot.runs import current_run
from fairpilot.warehouse.store import ReadJson, Warehouse, records_for


def read_artifact(uri: str) -> dict[str, Any] | None:
    from fairpilot import artifacts
    from fairpilot.errors import JobError

    try:
        return artifacts.read_json(uri)
    except JobError:
        return None


class WarehouseSink:
    name = "warehouse"

    def __init__(
        self,
        warehouse: Warehouse,
        get: Get,
        topics: Topics | None = None,
        read_json: ReadJson = read_artifact,
        *,
        pool: Executor | None = None,
    ) -> None:
        self.pool = pool  # where its blocking writes run (outbox.blocking)
        self.warehouse = warehouse
        self.get = get
        self.topics = topics
        self.read_json = read_json

    def pending(self, kind: Kind, resource: dict[str, Any], done: set[str]) -> list[Delivery]:
        meta, status = resource["metadata"], resource.get("status") or {}
        generation = int(meta.get("generation") or 1)
        todo: list[Delivery] = []
        annotations = meta.get("annotations") or {}
        if annotations.get(label.SOURCE) and "audit/received" not in done:
            topic, partition, offset = annotations[label.SOURCE].rsplit("/", 2)
            document = {
                "direction": "received",
                "topic": topic,
                "partition": int(partition),
                "offset": int(offset),
                "event_id": annotations.get(label.EVENT_ID),
                "user_id": user_of(resource),
                "resource": {"kind": kind.kind, "namespace": meta["namespace"],
                             "name": meta["name"], "uid": meta.get("uid")},
            }  # fmt: skip
            todo.append(
                Delivery("audit/received", ("audit", f"in:{annotations[label.SOURCE]}", document))
            )
        succeeded = (
            status.get("phase") == Phase.SUCCEEDED
            and status.get("observedGeneration") == generation
        )
        run = current_run(status, generation)
        if succeeded and f"record/{run}" not in done:
            todo.append(Delivery(f"record/{run}", ("record", kind, resource)))
        sent = set((status.get("delivered") or {}).get("kafka") or [])
        unaudited = {i for i in sent if f"audit/{i}" not in done}
        if self.topics is not None and unaudited:
            # Rebuild only the events still to audit: the same payloads that were sent.
            skip = sent - unaudited
            for event in events_for(kind, resource, self.topics, self.get, skip):
                if event.id in unaudited:
                    document = {
                        "direction": "sent",
                        "topic": event.topic,
                        "key": event.key,
                        "event_type": event.payload.get("event_type"),
                        "event_id": event.payload.get("event_id"),
                        "user_id": event.payload.get("user_id"),
                        "payload": event.payload,
                        "at": event.payload.get("timestamp"),
                    }
                    key = f"out:{event.topic}:{event.payload['event_id']}"
                    todo.append(Delivery(f"audit/{event.id}", ("audit", key, document)))
        return todo

    def _write(self, delivery: Delivery) -> None:
        what, *rest = delivery.item
        if what == "audit":
            key, document = rest
            self.warehouse.audit(key, document)
            return
        kind, resource = rest
        ids = {"user_id": user_of(resource), "dataset_id": dataset_id_of(kind, resource, self.get)}
        if behaviour(kind).names_a_model:
            ids["model_id"], ids["version"] = model_of(kind, resource, self.get)
        for collection, key, document in records_for(kind, resource, self.read_json, ids):
            self.warehouse.upsert(collection, key, document)

    async def deliver(self, delivery: Delivery) -> None:
        await blocking(self.pool, self._write, delivery)
