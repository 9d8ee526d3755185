"""Turning one Kafka message into the custom resources it asks for, or a reason it cannot be.

Plain functions of the message, the configuration and a read-only view of the cluster: the
consumer (consumer.py) creates what `plan` returns, in order, and dead-letters what raises
`Rejected`. Names are derived from the payload, so a message delivered twice (at-least-once)
names the same resources and the second create is a no-op (409).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from fairpilot import API_GROUP
from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET, EXPLANATION, TRAINING_RUN, Kind
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.payloads import (
    ID_PATTERN,
    INBOUND_BY_ROLE,
    AutomlTrigger,
    BiasTrigger,
    DatasetEvent,
    Inbound,
    XaiTrigger,
)

# Annotations and labels every resource made from a message carries.
USER_ID = f"{API_GROUP}/user-id"
DATASET_ID = f"{API_GROUP}/dataset-id"
MODEL_ID = f"{API_GROUP}/model-id"
EVENT_ID = f"{API_GROUP}/event-id"
SOURCE = f"{API_GROUP}/source"  # topic/partition/offset of the message that made it

# (kind, namespace, name) -> resource or None; (kind, namespace) -> every resource of the kind.
Get = Callable[[Kind, str, str], dict[str, Any] | None]
ListAll = Callable[[Kind, str], list[dict[str, Any]]]


class Rejected(Exception):
    """The message cannot become a resource; `reason` is a CamelCase word for the dead letter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class Source:
    """Where a message came from."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def decode(value: bytes | None, limit: int) -> dict[str, Any]:
    """The message's JSON object, or Rejected (empty, too large, not JSON, not an object)."""
    if value is None or not value.strip():
        raise Rejected("EmptyMessage", "the message has no value")
    if len(value) > limit:
        raise Rejected(
            "PayloadTooLarge", f"{len(value)} bytes, more than the limit of {limit} bytes"
        )
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected("NotJson", f"the value is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected("NotAnObject", f"the value is JSON {type(data).__name__}, not an object")
    return data


def explain(error: ValidationError) -> str:
    """pydantic's errors as one line: `field: problem (got value)`."""
    parts = []
    for item in error.errors(include_url=False)[:8]:
        where = ".".join(str(part) for part in item["loc"]) or "payload"
        got = item.get("input")
        shown = "" if item["type"] == "missing" else f" (got {json.dumps(got, default=str)[:80]})"
        parts.append(f"{where}: {item['msg']}{shown}")
    return "; ".join(parts)


def parse(role: str, data: dict[str, Any]) -> Inbound:
    try:
        return INBOUND_BY_ROLE[role].model_validate(data)
    except ValidationError as exc:
        names = ("dataset_id", "model_id", "version")
        reason = (
            "InvalidName"
            if all(e["loc"] and e["loc"][0] in names and e["type"] != "missing"
                   for e in exc.errors())
            else "InvalidPayload"
        )  # fmt: skip
        raise Rejected(reason, explain(exc)) from None


def slug(text: str, limit: int = 40) -> str:
    """A DNS-1123 fragment of an id: lower case, `.` and `_` as `-`."""
    return re.sub(r"[^a-z0-9-]", "-", text.lower())[:limit].strip("-") or "x"


def digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:10]


def label_value(text: str) -> str:
    """The text itself when Kubernetes takes it as a label value, else a stable hash of it."""
    return text if re.match(ID_PATTERN, text) else f"h-{digest(text)}"


def dataset_name(user_id: str, dataset_id: str) -> str:
    """One Dataset per user and dataset id: every message about it names the same resource."""
    return f"{slug(dataset_id)}-{digest(user_id, dataset_id)}"


def _identity(message: Inbound, data: dict[str, Any]) -> str:
    # The producer's event id when it sends one; else the whole payload, so the same trigger
    # delivered twice is one resource and a new trigger (new timestamp) is a new one.
    return message.event_id or json.dumps(data, sort_keys=True, separators=(",", ":"))


def _metadata(
    name: str,
    namespace: str,
    message: Inbound,
    source: Source,
    ids: dict[str, str],
) -> dict[str, Any]:
    labels = {USER_ID: label_value(message.user_id)}
    annotations = {USER_ID: message.user_id, SOURCE: str(source)}
    for key, value in ids.items():
        labels[key] = value
        annotations[key] = value
    if message.event_id:
        labels[EVENT_ID] = label_value(message.event_id)
        annotations[EVENT_ID] = message.event_id
    return {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations}


def _resource(kind: Kind, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    try:
        model: BaseModel = kind.spec.model_validate(spec)
    except ValidationError as exc:
        raise Rejected("InvalidSpec", f"{kind.kind}: {explain(exc)}") from None
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": metadata,
        "spec": model.model_dump(by_alias=True, mode="json", exclude_unset=True),
    }


def _namespace(message: Inbound, config: BridgeConfig) -> str:
    namespace = message.namespace or config.namespace
    if namespace not in config.namespaces():
        allowed = ", ".join(sorted(config.namespaces()))
        raise Rejected(
            "NamespaceNotAllowed", f"namespace {namespace!r} is not one of the allowed: {allowed}"
        )
    return namespace


def _data_uri(message: DatasetEvent | BiasTrigger | AutomlTrigger, config: BridgeConfig) -> str:
    if message.uri:
        return message.uri
    try:
        return config.data_uri_template.format(
            user_id=message.user_id, dataset_id=message.dataset_id
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise Rejected("BadUriTemplate", f"data_uri_template: {exc}") from None


def _dataset(
    message: DatasetEvent | BiasTrigger | AutomlTrigger,
    namespace: str,
    source: Source,
    config: BridgeConfig,
    pipeline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"uri": _data_uri(message, config), "userId": message.user_id}
    if isinstance(message, DatasetEvent) and message.format:
        spec["format"] = str(message.format)
    if message.target_column_name:
        spec["target"] = message.target_column_name
    if message.task_type:
        spec["taskType"] = str(message.task_type)
    if message.sensitive_features:
        spec["sensitiveFeatures"] = message.sensitive_features
    if pipeline:
        spec["pipeline"] = pipeline
    name = dataset_name(message.user_id, message.dataset_id)
    meta = _metadata(name, namespace, message, source, {DATASET_ID: message.dataset_id})
    return _resource(DATASET, meta, spec)


def _from_dataset(message: BiasTrigger | AutomlTrigger, namespace: str, get: Get) -> dict[str, Any]:
    """The existing Dataset's spec: a trigger may leave out what the Dataset already says."""
    found = get(DATASET, namespace, dataset_name(message.user_id, message.dataset_id))
    return (found or {}).get("spec") or {}


def plan(
    role: str,
    data: dict[str, Any],
    source: Source,
    config: BridgeConfig,
    get: Get,
    list_all: ListAll,
) -> list[dict[str, Any]]:
    """The resources one message asks for, in the order to create them."""
    message = parse(role, data)
    namespace = _namespace(message, config)
    if isinstance(message, DatasetEvent):
        pipeline = None
        if config.start_pipeline and message.target_column_name and message.task_type:
            budget = message.time_budget or config.time_budget_seconds
            pipeline = {
                "training": {"timeLimitSeconds": budget},
                "explanation": {"levels": [str(level) for level in config.levels]},
            }
            if message.sensitive_features:
                pipeline["bias"] = {}
        return [_dataset(message, namespace, source, config, pipeline)]
    identity = _identity(message, data)
    if isinstance(message, BiasTrigger):
        known = _from_dataset(message, namespace, get)
        target = message.target_column_name or known.get("target")
        sensitive = message.sensitive_features or known.get("sensitiveFeatures")
        if not target:
            raise Rejected("MissingField", "target_column_name: required for a bias analysis")
        if not sensitive:
            raise Rejected(
                "MissingField",
                "sensitive_features: the message names none and the Dataset declares none "
                "(send them in this message or in the dataset-events message)",
            )
        dataset = _dataset(message, namespace, source, config)
        name = f"{slug(message.dataset_id, 30)}-bias-{digest(message.user_id, identity)}"
        meta = _metadata(name, namespace, message, source, {DATASET_ID: message.dataset_id})
        spec = {
            "datasetRef": dataset["metadata"]["name"],
            "target": target,
            "sensitiveFeatures": sensitive,
            "userId": message.user_id,
        }
        return [dataset, _resource(BIAS_ANALYSIS, meta, spec)]
    if isinstance(message, AutomlTrigger):
        known = _from_dataset(message, namespace, get)
        target = message.target_column_name or known.get("target")
        if not target:
            raise Rejected("MissingField", "target_column_name: required for training")
        dataset = _dataset(message, namespace, source, config)
        name = f"{slug(message.dataset_id, 30)}-train-{digest(message.user_id, identity)}"
        # The model's id is the TrainingRun's name unless the message gives one, so that the
        # model.uploaded event's model_id leads an xai trigger straight back to it.
        model_id = message.model_id or name
        ids = {DATASET_ID: message.dataset_id, MODEL_ID: model_id}
        spec = {
            "datasetRef": dataset["metadata"]["name"],
            "target": target,
            "timeLimitSeconds": message.time_budget or config.time_budget_seconds,
            "modelId": model_id,
            "version": message.version or "v1",
            "userId": message.user_id,
        }
        task_type = message.task_type or known.get("taskType")
        if task_type:
            spec["taskType"] = str(task_type)
        return [dataset, _resource(TRAINING_RUN, _metadata(name, namespace, message, source, ids),
                                   spec)]  # fmt: skip
    assert isinstance(message, XaiTrigger)
    run = find_training_run(message, namespace, get, list_all)
    levels = message.levels or ([message.level] if message.level else config.levels)
    name = f"{slug(message.model_id, 30)}-xai-{digest(message.user_id, identity)}"
    ids = {MODEL_ID: message.model_id}
    dataset_id = message.dataset_id or (run["metadata"].get("annotations") or {}).get(DATASET_ID)
    if dataset_id:
        ids[DATASET_ID] = dataset_id
    spec = {
        "trainingRunRef": run["metadata"]["name"],
        "levels": [str(level) for level in levels],
        "userId": message.user_id,
    }
    return [_resource(EXPLANATION, _metadata(name, namespace, message, source, ids), spec)]


def model_id_of(run: dict[str, Any]) -> str:
    """A TrainingRun's model id: its spec's, else its name (what the train stage records)."""
    return (run.get("spec") or {}).get("modelId") or run["metadata"]["name"]


def find_training_run(
    message: XaiTrigger, namespace: str, get: Get, list_all: ListAll
) -> dict[str, Any]:
    """The user's TrainingRun that made `model_id` at `version` (the newest, if several)."""

    def matches(run: dict[str, Any]) -> bool:
        spec = run.get("spec") or {}
        return (
            model_id_of(run) == message.model_id
            and spec.get("version", "v1") == message.version
            and spec.get("userId") == message.user_id
        )

    direct = get(TRAINING_RUN, namespace, message.model_id)
    if direct is not None and matches(direct):
        return direct
    runs = sorted(
        (run for run in list_all(TRAINING_RUN, namespace) if matches(run)),
        key=lambda run: run["metadata"].get("creationTimestamp") or "",
    )
    if not runs:
        raise Rejected(
            "ModelNotFound",
            f"no TrainingRun in namespace {namespace!r} made model {message.model_id!r} "
            f"version {message.version!r} for user {message.user_id!r}",
        )
    return runs[-1]
