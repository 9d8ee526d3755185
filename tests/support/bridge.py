"""The Kafka bridge's plain functions without a broker: a read-only store of resources, a
message planned into resources, the malformed messages and the reasons they are refused."""

from __future__ import annotations

import json
from typing import Any

from fairpilot.api.kinds import Kind
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.inbound import Source, decode, plan
from fairpilot.events.topics import Topics
from support import seed

CONFIG = BridgeConfig(bootstrap_servers="unused:9092", allowed_namespaces=["team-a"])
SOURCE = Source("bias-trigger-events", 0, 7)

ROLES = Topics().inbound()


class Store:
    """Resources by (kind, namespace, name): the read-only view `plan` is given."""

    def __init__(self, *items: dict[str, Any]) -> None:
        self.items = {
            (i["kind"], i["metadata"]["namespace"], i["metadata"]["name"]): i for i in items
        }

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.items.get((kind.kind, namespace, name))

    def list_all(self, kind: Kind, namespace: str) -> list[dict[str, Any]]:
        return [v for (k, ns, _), v in self.items.items() if k == kind.kind and ns == namespace]


def planned(topic: str, payload: dict[str, Any] | bytes, store: Store | None = None) -> list:
    store = store or Store()
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    data = decode(raw, CONFIG.max_message_bytes)
    return plan(ROLES[topic], data, SOURCE, CONFIG, store.get, store.list_all)


# At least twenty kinds of messages that cannot become a resource, and the reason each gets.
DEAD_LETTERS: list[tuple[str, str, bytes | dict[str, Any] | None]] = [
    ("not JSON", "NotJson", b"not json at all"),
    ("truncated JSON", "NotJson", b'{"dataset_id": "d1", "user_id": '),
    ("binary", "NotJson", b"\xff\xfe\x00\x81garbage"),
    ("empty", "EmptyMessage", b""),
    ("no value", "EmptyMessage", None),
    ("a JSON list", "NotAnObject", b'[{"dataset_id": "d1"}]'),
    ("a JSON string", "NotAnObject", b'"dataset123"'),
    ("JSON null", "NotAnObject", b"null"),
    ("oversized", "PayloadTooLarge", {**seed.BIAS_TRIGGER, "metadata": {"x": "y" * 300_000}}),
    (
        "no user_id",
        "InvalidPayload",
        {k: v for k, v in seed.BIAS_TRIGGER.items() if k != "user_id"},
    ),
    (
        "no dataset_id",
        "InvalidPayload",
        {k: v for k, v in seed.BIAS_TRIGGER.items() if k != "dataset_id"},
    ),
    ("user_id a number", "InvalidPayload", {**seed.BIAS_TRIGGER, "user_id": 123}),
    ("dataset_id a number", "InvalidName", {**seed.BIAS_TRIGGER, "dataset_id": 123}),
    ("dataset_id with spaces", "InvalidName", {**seed.BIAS_TRIGGER, "dataset_id": "my data"}),
    ("dataset_id with a slash", "InvalidName", {**seed.BIAS_TRIGGER, "dataset_id": "a/../b"}),
    ("dataset_id too long", "InvalidName", {**seed.BIAS_TRIGGER, "dataset_id": "d" * 64}),
    ("dataset_id empty", "InvalidName", {**seed.BIAS_TRIGGER, "dataset_id": ""}),
    ("unknown task type", "InvalidPayload", {**seed.BIAS_TRIGGER, "task_type": "clustering"}),
    ("record_count not a number", "InvalidPayload", {**seed.BIAS_TRIGGER, "record_count": "many"}),
    (
        "sensitive_features a string",
        "InvalidPayload",
        {**seed.BIAS_TRIGGER, "sensitive_features": "sex"},
    ),
    (
        "namespace not allowed",
        "NamespaceNotAllowed",
        {**seed.BIAS_TRIGGER, "sensitive_features": ["sex"], "namespace": "kube-system"},
    ),
    ("namespace not a name", "InvalidPayload", {**seed.BIAS_TRIGGER, "namespace": "Team_A!"}),
    (
        "uri not s3 or file",
        "InvalidPayload",
        {**seed.BIAS_TRIGGER, "sensitive_features": ["sex"], "uri": "http://x/y.csv"},
    ),
    ("no sensitive features anywhere", "MissingField", seed.BIAS_TRIGGER),
    ("time_budget in words", "InvalidPayload", {**seed.AUTOML_TRIGGER, "time_budget": "ten"}),
    ("time_budget too small", "InvalidPayload", {**seed.AUTOML_TRIGGER, "time_budget": "1"}),
    ("unknown level", "InvalidPayload", {**seed.XAI_TRIGGER, "level": "guru"}),
    ("model not found", "ModelNotFound", seed.XAI_TRIGGER),
]


def dead_letter_topic(description: str, payload: Any) -> str:
    if isinstance(payload, dict) and "time_budget" in payload:
        return "automl-trigger-events"
    if isinstance(payload, dict) and "model_id" in payload:
        return "xai-trigger-events"
    return "bias-trigger-events"


def finished(kind: str, spec: dict[str, Any], status: dict[str, Any], **meta: Any) -> dict:
    return {
        "kind": kind,
        "metadata": {
            "name": meta.get("name", "r1"),
            "namespace": "default",
            "uid": "uid-1",
            "generation": 1,
            "annotations": meta.get("annotations", {}),
        },
        "spec": spec,
        "status": {
            "phase": "Succeeded",
            "observedGeneration": 1,
            "jobName": "fp-x-g1",
            "startedAt": "2026-01-02T03:04:00Z",
            "finishedAt": "2026-01-02T03:04:05Z",
            **status,
        },
    }
