"""What an API server shows kubectl beyond the objects: Tables, OpenAPI v3, events, pod logs.

Plain functions for `VersionedEmulator` (apiserver.py), generic like it: nothing here knows of
FairPilot. What they follow:

* server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): a
  `meta.k8s.io/v1` Table whose columns are a CRD version's `additionalPrinterColumns` (JSONPath,
  `date` cells shown as ages, as the apiextensions server converts them), or for the built-in
  kinds the columns kubectl users know (pods, jobs, events, namespaces, CRDs), else Name/Age;
* the OpenAPI v3 discovery (`/openapi/v3`) and one document per group version, built from the
  stored CRDs' schemas with `x-kubernetes-group-version-kind`, which `kubectl explain` reads;
* one event store, two APIs: `events.k8s.io/v1` Events are core `v1` Events with other field
  names (`regarding` for `involvedObject`, `note` for `message`...), converted both ways;
* pod logs as the kubelet keeps them: `{namespace}/{pod}/{container}.log` under a directory,
  rotated once (`.log.1`, copytruncate) at a size limit; read with `tailLines` and `limitBytes`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TABLE_MEDIA = re.compile(r"as=Table", re.IGNORECASE)
TERMINAL_PHASES = ("Succeeded", "Failed")


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for server-side printing (a meta.k8s.io Table)."""
    return any(TABLE_MEDIA.search(part) and "g=meta.k8s.io" in part for part in accept.split(","))


# --- ages and JSONPath -----------------------------------------------------------------------


def human_age(timestamp: str | None, now: datetime | None = None) -> str:
    """An RFC 3339 time as kubectl shows an age (k8s.io/apimachinery's HumanDuration)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 0:
        return "<invalid>"
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    return f"{hours // 24}d"


_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\*)\]|\[\?\(@\.([\w.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]")


def json_path(obj: Any, path: str) -> list[Any]:
    """The values at a printer column's JSONPath: `.a.b`, `[0]`, `[*]`, `[?(@.f=="v")]`."""
    found = [obj]
    position, path = 0, path.strip().removeprefix("{").removesuffix("}").removeprefix("$")
    while position < len(path):
        step = _STEP.match(path, position)
        if step is None:
            return []  # a path this subset does not read: an empty cell, not an error
        position = step.end()
        key, index, field, value = step.groups()
        after: list[Any] = []
        for current in found:
            if key is not None:
                if isinstance(current, Mapping) and key in current:
                    after.append(current[key])
            elif not isinstance(current, list):
                continue
            elif index == "*":
                after.extend(current)
            elif index is not None:
                if int(index) < len(current):
                    after.append(current[int(index)])
            else:
                after.extend(item for item in current if str(_dotted(item, field)) == value)
        found = after
    return found


def _dotted(obj: Any, path: str) -> Any:
    for key in path.split("."):
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def _cell(kind: str, values: list[Any]) -> Any:
    """A column's cell as the apiextensions server renders it: None when there is nothing."""
    if not values:
        return None
    value = values[0]
    if kind == "date" and isinstance(value, str):
        return human_age(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


# --- Tables ----------------------------------------------------------------------------------

Column = dict[str, Any]  # a TableColumnDefinition: name, type, format, description, priority


def _column(name: str, kind: str = "string", priority: int = 0, description: str = "") -> Column:
    return {
        "name": name,
        "type": kind,
        "format": "name" if name == "Name" else "",
        "description": description or name,
        "priority": priority,
    }


def crd_columns(crd: Mapping[str, Any], version: str) -> list[tuple[Column, str]] | None:
    """A CRD version's printer columns with their JSONPaths (None: it does not serve it)."""
    for served in (crd.get("spec") or {}).get("versions") or []:
        if served.get("name") != version:
            continue
        declared = served.get("additionalPrinterColumns")
        if declared is None:  # the default: the age
            declared = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
        return [
            (
                _column(
                    c["name"],
                    c.get("type", "string"),
                    int(c.get("priority") or 0),
                    c.get("description", ""),
                ),
                c["jsonPath"],
            )
            for c in declared
        ]
    return None


def _pod_cells(pod: Mapping[str, Any]) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    shown = status.get("phase") or "Pending"
    for each in statuses:  # the kubelet's reason (Completed, Error, OOMKilled) as kubectl shows
        state = each.get("state") or {}
        reason = (state.get("terminated") or state.get("waiting") or {}).get("reason")
        if reason:
            shown = reason
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        shown = "Terminating"
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    return [f"{ready}/{len(spec.get('containers') or [])}", shown, restarts]


def _job_cells(job: Mapping[str, Any]) -> list[Any]:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    shown = (
        "Complete"
        if conditions.get("Complete") == "True"
        else "Failed"
        if conditions.get("Failed") == "True"
        else "Running"
        if status.get("active")
        else "Pending"
    )
    completions = f"{int(status.get('succeeded') or 0)}/{spec.get('completions') or 1}"
    start, end = status.get("startTime"), status.get("completionTime")
    duration = ""
    if start:
        began = datetime.fromisoformat(start.replace("Z", "+00:00"))
        if end:
            ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
            duration = human_age(start, ended)
        else:
            duration = human_age(began.isoformat())
    return [shown, completions, duration]


def _event_cells(event: Mapping[str, Any]) -> list[Any]:
    core = core_event(event)
    regarding = core.get("involvedObject") or {}
    seen = (
        core.get("lastTimestamp")
        or core.get("eventTime")
        or (core.get("metadata") or {}).get("creationTimestamp")
    )
    subject = f"{str(regarding.get('kind', '')).lower()}/{regarding.get('name', '')}"
    return [
        human_age(seen),
        core.get("type", ""),
        core.get("reason", ""),
        subject,
        core.get("message", ""),
    ]


_EVENTS_TABLE = (
    [
        _column("Last Seen"),
        _column("Type"),
        _column("Reason"),
        _column("Object"),
        _column("Message"),
    ],
    _event_cells,
)

# (group, plural): the columns after Name, and the cells for them, as kubectl's own printers.
BUILT_IN_COLUMNS: dict[tuple[str, str], tuple[list[Column], Any]] = {
    ("", "pods"): (
        [_column("Ready"), _column("Status"), _column("Restarts", "integer")],
        _pod_cells,
    ),
    ("batch", "jobs"): (
        [_column("Status"), _column("Completions"), _column("Duration")],
        _job_cells,
    ),
    # One store behind both event APIs (core v1 and events.k8s.io), one table for both.
    ("", "events"): _EVENTS_TABLE,
    ("events.k8s.io", "events"): _EVENTS_TABLE,
    ("", "namespaces"): (
        [_column("Status")],
        lambda ns: [(ns.get("status") or {}).get("phase") or "Active"],
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [_column("Created At", "date")],
        lambda crd: [(crd.get("metadata") or {}).get("creationTimestamp", "")],
    ),
}
_NO_AGE = {
    ("", "events"),
    ("events.k8s.io", "events"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
}


def table(
    group: str,
    plural: str,
    items: list[Mapping[str, Any]],
    crd: Mapping[str, Any] | None,
    version: str,
    *,
    include_object: str = "Metadata",
    list_meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of `items`, as the API server prints them for kubectl."""
    # Events show their name only in `-o wide`, as kubectl's own printer does: priority 1.
    events = plural == "events" and (group, plural) in _NO_AGE
    columns: list[Column] = [_column("Name", priority=1 if events else 0)]
    crd_cols = crd_columns(crd, version) if crd is not None else None
    rows = []
    if crd_cols is not None:
        columns += [column for column, _ in crd_cols]
        cells = [
            [_cell(column["type"], json_path(item, path)) for column, path in crd_cols]
            for item in items
        ]
    else:
        extra, cells_of = BUILT_IN_COLUMNS.get((group, plural), ([], lambda _: []))
        columns += extra
        if (group, plural) not in _NO_AGE:
            columns.append(_column("Age", "date"))
        cells = [
            [*cells_of(item)]
            + (
                []
                if (group, plural) in _NO_AGE
                else [human_age((item.get("metadata") or {}).get("creationTimestamp"))]
            )
            for item in items
        ]
    for item, row in zip(items, cells, strict=True):
        meta = item.get("metadata") or {}
        entry: dict[str, Any] = {"cells": [meta.get("name", ""), *row]}
        if include_object == "Object":
            entry["object"] = item
        elif include_object != "None":
            entry["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
            }
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta or {}),
        "columnDefinitions": columns,
        "rows": rows,
    }


# --- events: one store, two APIs -------------------------------------------------------------

# core v1 field -> events.k8s.io/v1 field (the rest keep their names)
_EVENT_FIELDS = {
    "involvedObject": "regarding",
    "message": "note",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
    "related": "related",
}


def core_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """An Event as core v1 shows it, whichever API it was written through."""
    if event.get("apiVersion") != "events.k8s.io/v1":
        return dict(event)
    back = {new: old for old, new in _EVENT_FIELDS.items()}
    converted = {back.get(key, key): value for key, value in event.items()}
    converted["apiVersion"] = "v1"
    if "reportingController" in event:
        converted["reportingComponent"] = event["reportingController"]
    if "reportingInstance" in event:
        converted["reportingInstance"] = event["reportingInstance"]
    return converted


def events_v1(event: Mapping[str, Any]) -> dict[str, Any]:
    """An Event as events.k8s.io/v1 shows it, whichever API it was written through."""
    if event.get("apiVersion") == "events.k8s.io/v1":
        return dict(event)
    converted = {_EVENT_FIELDS.get(key, key): value for key, value in event.items()}
    converted["apiVersion"] = "events.k8s.io/v1"
    converted.pop("reportingComponent", None)
    source = event.get("source") or {}
    controller = event.get("reportingComponent") or source.get("component")
    if controller:
        converted["reportingController"] = controller
    if not converted.get("eventTime"):
        # Required in events.k8s.io/v1; the API server fills it from the old timestamps.
        converted["eventTime"] = _micro(
            event.get("lastTimestamp")
            or event.get("firstTimestamp")
            or (event.get("metadata") or {}).get("creationTimestamp")
        )
    return converted


def _micro(timestamp: str | None) -> str | None:
    if not timestamp:
        return None
    return timestamp.replace("Z", ".000000Z") if "." not in timestamp else timestamp


# --- OpenAPI v3 ------------------------------------------------------------------------------


def _reverse_domain(group: str) -> str:
    return ".".join(reversed(group.split(".")))


def openapi_documents(crds: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """One OpenAPI v3 document per served group version (`apis/GROUP/VERSION`), from CRDs."""
    documents: dict[str, dict[str, Any]] = {}
    for crd in crds:
        spec = crd.get("spec") or {}
        group, names = spec.get("group", ""), spec.get("names") or {}
        for served in spec.get("versions") or []:
            if not served.get("served", True):
                continue
            version = served["name"]
            schema = dict((served.get("schema") or {}).get("openAPIV3Schema") or {})
            schema["x-kubernetes-group-version-kind"] = [
                {"group": group, "version": version, "kind": names.get("kind")}
            ]
            document = documents.setdefault(
                f"apis/{group}/{version}",
                {
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes", "version": "v1"},
                    "paths": {},
                    "components": {"schemas": {}},
                },
            )
            name = f"{_reverse_domain(group)}.{version}.{names.get('kind')}"
            document["components"]["schemas"][name] = schema
            base = f"/apis/{group}/{version}"
            scope = "/namespaces/{namespace}" if spec.get("scope") == "Namespaced" else ""
            gvk = {"group": group, "version": version, "kind": names.get("kind")}
            reference = {"$ref": f"#/components/schemas/{name}"}
            for path, action in (("", "list"), ("/{name}", "get")):
                # kubectl explain finds a resource's schema through the operations on its path.
                document["paths"][f"{base}{scope}/{names.get('plural')}{path}"] = {
                    "get": {
                        "x-kubernetes-action": action,
                        "x-kubernetes-group-version-kind": gvk,
                        "responses": {
                            "200": {
                                "description": "OK",
                                "content": {"application/json": {"schema": reference}},
                            }
                        },
                    }
                }
    return documents


def openapi_index(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The `/openapi/v3` discovery: each document's path, with a hash as the API server's."""
    paths = {}
    for path, document in sorted(documents.items()):
        digest = hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


# --- pod logs --------------------------------------------------------------------------------


def pod_log_path(directory: Path, namespace: str, pod: str, container: str) -> Path:
    """Where the kubelet keeps a container's log (as /var/log/pods does, by name here)."""
    return directory / namespace / pod / f"{container}.log"


def rotate(path: Path, limit: int) -> None:
    """Keep a growing log to about twice `limit`: past it, the log is copied to `.log.1` and
    truncated (copytruncate: the writer keeps its file, opened for appending, and goes on at
    the new end; what it writes between the copy and the truncation is lost, as with
    logrotate's copytruncate)."""
    try:
        if path.stat().st_size <= limit:
            return
        with path.open("r+b") as log:
            data = log.read()
            path.with_suffix(".log.1").write_bytes(data)
            log.truncate(0)
    except FileNotFoundError:
        return


def read_log(path: Path, tail_lines: int | None = None, limit_bytes: int | None = None) -> bytes:
    """A container's log as kept (the rotated part first), its last `tail_lines` lines and at
    most its first `limit_bytes` bytes, as the kubelet answers."""
    data = b""
    for part in (path.with_suffix(".log.1"), path):
        try:
            data += part.read_bytes()
        except FileNotFoundError:
            continue
    if tail_lines is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
    if limit_bytes is not None:
        data = data[:limit_bytes]
    return data
