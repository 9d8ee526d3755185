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

from fairpilot import access
from fairpilot.api import labels as label
from fairpilot.api.common import ID_PATTERN
from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET, EXPLANATION, TRAINING_RUN, Kind
from fairpilot.api.validation import describe, metadata_problems
from fairpilot.bridge.config import BridgeConfig
from fairpilot.config import OperatorConfig
from fairpilot.events.payloads import (
    INBOUND_BY_ROLE,
    AutomlTrigger,
    BiasTrigger,
    DatasetEvent,
    Inbound,
    XaiTrigger,
)
from fairpilot.pipeline import fairness_for
from fairpilot.references import UnresolvedReference, check_uri
from fairpilot.runs import model_id_of

# Annotations and labels every resource made from a message carries.

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


# The seed's payloads are two levels deep; a free-form `metadata` may add a few. Deeper is a
# JSON bomb: it costs the parser stack, and MongoDB (the audit log) refuses 100 levels.
MAX_DEPTH = 32


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # {"user_id": "a", "user_id": "b"} means "a" to some parsers and "b" to others: a producer's
    # check and FairPilot's would see different users. Refused rather than guessed.
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return data


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _depth(data: Any, limit: int) -> int:
    """How deep `data` nests, walking no further than `limit` (iterative: no stack to exhaust)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def decode(value: bytes | None, limit: int, *, walk: bool = True) -> dict[str, Any]:
    """The message's JSON object, or Rejected: empty, too large, not UTF-8 JSON (strictly: no
    NaN, no repeated keys), nested too deeply, or not an object.

    walk=False leaves out the walk that bounds the nesting at MAX_DEPTH (the parser's own limit
    still holds), for a caller whose model keeps nothing nested (a prediction record: its
    extra fields are dropped, its values are scalars); the walk is a third of the time."""
    if value is None or not value.strip():
        raise Rejected("EmptyMessage", "the message has no value")
    if len(value) > limit:
        raise Rejected(
            "PayloadTooLarge", f"{len(value)} bytes, more than the limit of {limit} bytes"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            "NotJson", f"the value is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_not_a_number)
    except RecursionError:
        raise Rejected("TooDeeplyNested", f"JSON nested more than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise Rejected("NotJson", f"the value is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected("NotAnObject", f"the value is JSON {type(data).__name__}, not an object")
    if walk and _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise Rejected("TooDeeplyNested", f"JSON nested more than {MAX_DEPTH} levels")
    return data


def explain(error: ValidationError) -> str:
    """pydantic's errors as one line: `field: problem (got value)`."""
    return describe(error)


def parse(role: str, data: dict[str, Any]) -> Inbound:
    try:
        return INBOUND_BY_ROLE[role].model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, ("dataset_id", "model_id", "version")) from None


def invalid(exc: ValidationError, names: tuple[str, ...]) -> Rejected:
    """A payload the model refused: InvalidName when every error is an id of `names` that is
    there but malformed (it could not name a resource), else InvalidPayload."""
    reason = (
        "InvalidName"
        if all(e["loc"] and e["loc"][0] in names and e["type"] != "missing"
               for e in exc.errors())
        else "InvalidPayload"
    )  # fmt: skip
    return Rejected(reason, explain(exc))


def slug(text: str, limit: int = 40) -> str:
    """A DNS-1123 fragment of an id: lower case, `.` and `_` as `-`."""
    return re.sub(r"[^a-z0-9-]", "-", text.lower())[:limit].strip("-") or "x"


def digest(*parts: str) -> str:
    # surrogatepass: a hash of any str, even one a validator let through by mistake.
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:10]


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
    labels = {label.USER_ID: label_value(message.user_id)}
    annotations = {label.USER_ID: message.user_id, label.SOURCE: str(source)}
    for key, value in ids.items():
        labels[key] = value
        annotations[key] = value
    if message.event_id:
        labels[label.EVENT_ID] = label_value(message.event_id)
        annotations[label.EVENT_ID] = message.event_id
    return {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations}


def _resource(kind: Kind, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    # Every name, label and annotation here is derived from the payload: checked against the
    # API server's rules before anything is sent, so that a refusal names the field and the
    # message (rather than an HTTP 422 about an object the producer never saw).
    problems = metadata_problems(metadata)
    if problems:
        raise Rejected("InvalidName", f"{kind.kind}: {'; '.join(problems)}")
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


# An id becomes one segment of the data URI template as it is (`access.is_path_segment`, the
# rule the operator's data locations use for {user_id}), or not at all. Refused, not
# percent-encoded: the jobs decode %-escapes in file:// URIs (so `%2F` and `%2E%2E` would turn
# back into `/` and `..` there), S3 keys are taken literally (so an encoded id would name
# another object than the one the data warehouse stored), and `?` and `#` would cut the URI
# short. E-mail addresses, the seed's ids, accents and emoji pass; `/`, `\`, `%`, `?`, `#`, a
# leading `.` and invisible characters do not.
def path_segment(field: str, value: str) -> str:
    """`value` when it is safe as one path segment of the data URI template, else Rejected."""
    if not access.is_path_segment(value):
        raise Rejected(
            "UnsafePathSegment",
            f"{field} {value[:80]!r} cannot be put into the data URI template: it must be one "
            "path segment (no '/', '\\', '%', '?' or '#', not starting with '.'); "
            "send the data's location in the message's `uri` instead",
        )
    return value


def _data_uri(
    message: DatasetEvent | BiasTrigger | AutomlTrigger, config: BridgeConfig, namespace: str
) -> str:
    if message.uri:
        return message.uri
    ids = {
        "user_id": path_segment("user_id", message.user_id),
        "dataset_id": path_segment("dataset_id", message.dataset_id),
        "namespace": namespace,  # a DNS label: one safe segment as it is
    }
    try:
        return config.data_uri_template.format(**ids)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise Rejected("BadUriTemplate", f"data_uri_template: {exc}") from None


def _readable(uri: str, namespace: str, user_id: str, operator: OperatorConfig | None) -> str:
    """`uri` when this user and namespace may read it, by the rules the operator applies to
    the Dataset (`references.check_uri`); else Rejected, before any resource exists."""
    if operator is None:
        return uri
    try:
        check_uri(uri, operator, "uri", access.data_locations(operator, namespace, user_id))
    except UnresolvedReference as exc:
        raise Rejected(exc.reason, exc.message) from None
    return uri


def _dataset(
    message: DatasetEvent | BiasTrigger | AutomlTrigger,
    namespace: str,
    source: Source,
    config: BridgeConfig,
    operator: OperatorConfig | None,
    pipeline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    uri = _readable(_data_uri(message, config, namespace), namespace, message.user_id, operator)
    spec: dict[str, Any] = {"uri": uri, "userId": message.user_id}
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
    meta = _metadata(name, namespace, message, source, {label.DATASET_ID: message.dataset_id})
    return _resource(DATASET, meta, spec)


def _from_dataset(message: BiasTrigger | AutomlTrigger, namespace: str, get: Get) -> dict[str, Any]:
    """The existing Dataset's spec: a trigger may leave out what the Dataset already says."""
    found = get(DATASET, namespace, dataset_name(message.user_id, message.dataset_id))
    return (found or {}).get("spec") or {}


def granted(config: BridgeConfig, principal: str | None, topic: str, user_id: str) -> set[str]:
    """The namespaces the principal that wrote on `topic` may act in for `user_id`; Rejected
    when the topic is a shared one (no principal) or the principal may not act for the user.
    Triggers and prediction records follow the same grant (bridge/index.py)."""
    if principal is None:
        raise Rejected(
            "PrincipalUnknown",
            f"{topic} is a shared topic and this bridge maps Kafka principals to users: "
            f"send on {topic}.<principal>, the topic only that principal may write to",
        )
    grant = config.principals[principal]
    if "*" not in grant.user_ids and user_id not in grant.user_ids:
        raise Rejected(
            "UserNotAllowed", f"principal {principal!r} may not act for user_id {user_id[:80]!r}"
        )
    return set(grant.namespaces or [config.namespace])


def _authorise(message: Inbound, namespace: str, source: Source, config: BridgeConfig) -> None:
    """With principals configured, the topic's principal must be allowed this user id and
    namespace (`BridgeConfig.principals`); without, the producer's user_id is taken as said."""
    if not config.principals:
        return
    principal = config.principal_of(source.topic)
    if namespace not in granted(config, principal, source.topic, message.user_id):
        raise Rejected(
            "NamespaceNotAllowed",
            f"principal {principal!r} may not create resources in namespace {namespace!r}",
        )


def plan(
    role: str,
    data: dict[str, Any],
    source: Source,
    config: BridgeConfig,
    get: Get,
    list_all: ListAll,
    operator: OperatorConfig | None = None,
) -> list[dict[str, Any]]:
    """The resources one message asks for, in the order to create them.

    `operator`: the operator's configuration, whose data locations a message's data must lie
    in (None: not checked here; the operator still refuses the Dataset).
    """
    message = parse(role, data)
    namespace = _namespace(message, config)
    _authorise(message, namespace, source, config)
    if isinstance(message, DatasetEvent):
        pipeline: dict[str, dict[str, Any]] | None = None
        if config.start_pipeline and message.target_column_name and message.task_type:
            budget = message.time_budget or config.time_budget_seconds
            pipeline = {
                "training": {"timeLimitSeconds": budget},
                "explanation": {"levels": [str(level) for level in config.levels]},
            }
            if message.sensitive_features:
                pipeline["bias"] = {}
                # Bias-aware by default: reweighing when, and only when, bias is detected.
                # The pipeline measures the model's fairness on the sensitive features anyway.
                if config.mitigate_if_biased:
                    pipeline["training"]["mitigateIfBiasDetected"] = True
        return [_dataset(message, namespace, source, config, operator, pipeline)]
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
        dataset = _dataset(message, namespace, source, config, operator)
        name = f"{slug(message.dataset_id, 30)}-bias-{digest(message.user_id, identity)}"
        meta = _metadata(name, namespace, message, source, {label.DATASET_ID: message.dataset_id})
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
        dataset = _dataset(message, namespace, source, config, operator)
        name = f"{slug(message.dataset_id, 30)}-train-{digest(message.user_id, identity)}"
        # The model's id is the TrainingRun's name unless the message gives one, so that the
        # model.uploaded event's model_id leads an xai trigger straight back to it.
        model_id = message.model_id or name
        ids = {label.DATASET_ID: message.dataset_id, label.MODEL_ID: model_id}
        spec = {
            "datasetRef": dataset["metadata"]["name"],
            "target": target,
            "timeLimitSeconds": message.time_budget or config.time_budget_seconds,
            "modelId": model_id,
            "userId": message.user_id,
        }
        if message.version:
            spec["version"] = message.version  # else v1, then the next free one per retrain
        task_type = message.task_type or known.get("taskType")
        if task_type:
            spec["taskType"] = str(task_type)
        # The model is measured on the groups the message or the Dataset names, as in a pipeline.
        fairness = fairness_for(None, message.sensitive_features or known.get("sensitiveFeatures"))
        if fairness is not None:
            spec["fairness"] = fairness
        return [dataset, _resource(TRAINING_RUN, _metadata(name, namespace, message, source, ids),
                                   spec)]  # fmt: skip
    assert isinstance(message, XaiTrigger)
    run = find_training_run(message, namespace, get, list_all)
    levels = message.levels or ([message.level] if message.level else config.levels)
    name = f"{slug(message.model_id, 30)}-xai-{digest(message.user_id, identity)}"
    ids = {label.MODEL_ID: message.model_id}
    annotations = run["metadata"].get("annotations") or {}
    dataset_id = message.dataset_id or annotations.get(label.DATASET_ID)
    if dataset_id:
        ids[label.DATASET_ID] = dataset_id
    spec = {
        "trainingRunRef": run["metadata"]["name"],
        "levels": [str(level) for level in levels],
        "userId": message.user_id,
    }
    current = (run.get("status") or {}).get("modelVersion")
    if message.version and current and message.version != current:
        # The message asks for a model the TrainingRun has since replaced: explain that one.
        spec["modelVersion"] = message.version
    return [_resource(EXPLANATION, _metadata(name, namespace, message, source, ids), spec)]


def find_training_run(
    message: XaiTrigger, namespace: str, get: Get, list_all: ListAll
) -> dict[str, Any]:
    """The user's TrainingRun that made `model_id` at `version` (the newest, if several)."""

    def matches(run: dict[str, Any]) -> bool:
        spec, status = run.get("spec") or {}, run.get("status") or {}
        # The versions it trained (status), or, before it trained any, the one it will.
        versions = {r.get("version") for r in status.get("models") or []}
        versions.add(status.get("modelVersion") or spec.get("version") or "v1")
        return (
            model_id_of(run) == message.model_id
            and (not message.version or message.version in versions)
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
