"""kmock's Kubernetes emulator with the API server's bookkeeping added.

kmock stores objects as plain dicts (its docs invite subclassing for "special" fields). The
operator must not need sandbox special cases, so this subclass does what a real API server
does for it: `uid`, `resourceVersion`, `creationTimestamp`, `generation` bumped on spec
changes only, and garbage collection of objects whose owner was deleted.

On request (FAIRPILOT_EMULATOR_AUDIT_LOG=path) it also writes an audit log as an API server
does (audit.k8s.io/v1 events at the Metadata level, one JSON line per request): who (the
User-Agent) did what (the RBAC verb) to which object, and the response code. Tests read it to
check what the operator's RBAC must allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiohttp.web
import attrs
import kmock
from kmock._internal import dsl, enums, rendering
from kmock._internal.dicts import merge_patch_dict

from fairpilot import API_GROUP, API_VERSION
from fairpilot.api.kinds import KINDS

CORE_RESOURCES = {
    "v1/namespaces": kmock.ResourceInfo(kind="Namespace", namespaced=False),
    "v1/pods": kmock.ResourceInfo(kind="Pod", namespaced=True, subresources={"status", "log"}),
    "v1/events": kmock.ResourceInfo(kind="Event", namespaced=True),
    "v1/configmaps": kmock.ResourceInfo(kind="ConfigMap", namespaced=True),
    "batch/v1/jobs": kmock.ResourceInfo(kind="Job", namespaced=True, subresources={"status"}),
    "events.k8s.io/v1/events": kmock.ResourceInfo(kind="Event", namespaced=True),
    "apiextensions.k8s.io/v1/customresourcedefinitions": kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False
    ),
    # Kopf's peering objects (the chart installs their CRDs), for operators with replicas.
    "kopf.dev/v1/clusterkopfpeerings": kmock.ResourceInfo(
        kind="ClusterKopfPeering", namespaced=False
    ),
    "kopf.dev/v1/kopfpeerings": kmock.ResourceInfo(kind="KopfPeering", namespaced=True),
}
REQUEST_LOG_WINDOW = 64
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
AUDIT_LOG_ENV = "FAIRPILOT_EMULATOR_AUDIT_LOG"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(kw_only=True)
class ApiServerEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator plus uid, resourceVersion, timestamps, generation and GC."""

    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    # Where audit events go (a line-buffered text file), or None: no audit, no cost.
    audit: TextIO | None = attrs.field(default=None)
    _audited: set[int] = attrs.field(factory=set, init=False)  # watches logged as started

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, info in CORE_RESOURCES.items():
            info.verbs.update(VERBS)
            self.resources[key] = info
        for kind in KINDS:
            self.resources[f"{API_GROUP}/{API_VERSION}/{kind.plural}"] = kmock.ResourceInfo(
                kind=kind.kind,
                singular=kind.singular,
                namespaced=True,
                shortnames=set(kind.short_names),
                categories={"fairpilot"},
                subresources={"status"},
                verbs=set(VERBS),
            )

    def _find(self, request: Any) -> Any | None:
        key = (request.resource, request.namespace, request.name)
        return self.objects[key] if key in self.objects else None  # noqa: SIM401 (no .get)

    def _KubernetesEmulator__get_objs(self, request: Any, strict: bool) -> list[Any]:
        """kmock's object lookup, with a keyed fast path for one named object.

        kmock scans every stored object for every get, patch and create (its stated aim is
        simplicity, not scale), so each request cost grew with the number of objects and 500
        resources (with their Jobs, ConfigMaps, Pods and Events) slowed every call tenfold.
        The store is a dict keyed exactly as a named request addresses an object, which is how
        kmock itself checks for existence on create, update and delete.
        """
        if strict and request.name is not None and request.resource is not None:
            found = self._find(request)
            return [] if found is None else [found]
        scan = kmock.KubernetesEmulator._KubernetesEmulator__get_objs  # type: ignore[attr-defined]
        return scan(self, request, strict)

    async def _serve_version(self, request: Any) -> Any:
        listing = await super()._serve_version(request)
        for entry in listing["resources"]:
            if "/" in entry["name"]:
                # Subresources carry no short names or categories on a real API server;
                # kubectl would expand `get fairpilot` into `explanations/status` otherwise.
                entry.update(shortNames=[], categories=[], singularName="")
        return listing

    async def _serve_list(self, request: Any) -> Any:
        listing = await super()._serve_list(request)
        labels, fields = request.params.get("labelSelector"), request.params.get("fieldSelector")
        if labels or fields:
            listing["items"] = [
                item
                for item in listing["items"]
                if matches_labels(item, labels or "") and matches_fields(item, fields or "")
            ]
        # A list's own kind and apiVersion, which kubectl requires (`DatasetList`).
        resource = request.resource
        info = next((i for r, i in self._resources.items() if r == resource), None)
        if info is not None and info.kind:
            listing["kind"] = f"{info.kind}List"
        group = f"{resource.group}/" if resource.group else ""
        listing["apiVersion"] = f"{group}{resource.version}"
        return listing

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if self.audit is None:
            return await super().__call__(raw_request)
        response: aiohttp.web.StreamResponse | None = None
        try:
            response = await super().__call__(raw_request)
            return response
        finally:
            if id(raw_request) in self._audited:
                self._audited.discard(id(raw_request))  # a watch, logged when it started
            else:
                # No response: the request was cancelled or failed past kmock's error pages.
                stage = "ResponseComplete" if response is not None else "Panic"
                code = response.status if response is not None else 500
                await self._audit(raw_request, code, stage)

    def _serve_watch(self, request: Any) -> Any:
        # A watch's response never completes while the operator runs, so it is logged when it
        # starts streaming (with 200, as the API server's ResponseStarted stage). kmock's
        # stream is passed on as it is: no wrapper on every event when there is no audit.
        if self.audit is not None and request._raw_request is not None:
            self._audited.add(id(request._raw_request))
            self._audit_line(audit_event(request._raw_request, 200, "ResponseStarted"))
        return super()._serve_watch(request)

    async def _audit(self, raw_request: aiohttp.web.BaseRequest, code: int, stage: str) -> None:
        event = audit_event(raw_request, code, stage)
        ref = event.get("objectRef")
        if event["verb"] == "create" and ref is not None and "name" not in ref:
            # The name of a created object is in its body, as the API server reads it there
            # (none with generateName). A body it would refuse has no name to record, and
            # the audit must never turn a request into an error.
            with contextlib.suppress(Exception):
                name = json.loads(await raw_request.read())["metadata"].get("name")
                if isinstance(name, str) and name:
                    ref["name"] = name
        self._audit_line(event)

    def _audit_line(self, event: dict[str, Any]) -> None:
        assert self.audit is not None
        self.audit.write(json.dumps(event, separators=(",", ":")) + "\n")

    def _trim_request_log(self) -> None:
        """Keep kmock's per-reaction request records (made for test assertions) to a window."""
        for payload in self._payloads:
            if len(payload._requests) > REQUEST_LOG_WINDOW + REQUEST_LOG_WINDOW // 2:
                del payload._requests[:-REQUEST_LOG_WINDOW]

    async def _handle(self, request: Any) -> Any:
        self._trim_request_log()
        data = request.data if isinstance(request.data, dict) else None
        if request.resource is not None and data is not None:
            if request.action == enums.action.CREATE:
                meta = data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:10]}"
                if request.namespace and not meta.get("namespace"):
                    meta["namespace"] = request.namespace  # as the API server fills it in
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                meta["generation"] = 1
                meta["resourceVersion"] = str(next(self._versions))
            elif request.action == enums.action.UPDATE and request.name is not None:
                meta = data.setdefault("metadata", {})
                if isinstance(meta, dict):
                    for protected in ("uid", "creationTimestamp", "generation"):
                        meta.pop(protected, None)
                    meta["resourceVersion"] = str(next(self._versions))
                    if "spec" in data and request.subresource != "status":
                        current = self._find(request)
                        if current is not None and not current.deleted:
                            generation = int(current.get("metadata", {}).get("generation", 1))
                            before = current.get("spec") or {}
                            after = merge_patch_dict(before, data["spec"] or {})
                            if after != before:
                                meta["generation"] = generation + 1
        deleted_uid = None
        if request.action == enums.action.DELETE and request.name is not None:
            current = self._find(request)
            if current is not None and not current.deleted:
                deleted_uid = current.get("metadata", {}).get("uid")
        try:
            response = await super()._handle(request)
        finally:
            # kmock records every request and matches each new one by scanning that record,
            # which is quadratic over a long run. Only requests still being served need to be
            # visible to the matching, so a finished one leaves the record.
            with contextlib.suppress(ValueError):
                self._requests.remove(request)
        if request.action == enums.action.CREATE and getattr(response, "status", None) == 200:
            response.set_status(201)  # as the API server answers a create; clients rely on it
        if deleted_uid is not None:
            await self._collect_garbage({deleted_uid})
        return response

    async def _collect_garbage(self, gone: set[str]) -> None:
        """Delete, transitively, everything owned by the deleted uids (foreground-free GC)."""
        while gone:
            orphans = []
            async with self._lock:
                for key, obj in list(self.objects.items()):
                    if obj.deleted:
                        continue
                    owners = obj.get("metadata", {}).get("ownerReferences") or []
                    if any(owner.get("uid") in gone for owner in owners):
                        orphans.append((key, obj))
                next_gone = set()
                for key, obj in orphans:
                    raw = obj.raw
                    obj.delete()
                    next_gone.add(raw.get("metadata", {}).get("uid"))
                    await self._buses[key[0]].put({"type": "DELETED", "object": raw})
            gone = {uid for uid in next_gone if uid}


def request_info(method: str, path: str, watch: bool) -> dict[str, Any]:
    """The verb and object of a request, as the API server's RequestInfo resolves them.

    `/api/v1/...` is the core group (apiGroup ""), `/apis/GROUP/VERSION/...` the others;
    `namespaces/NS/` scopes what follows; then resource, name, subresource. Anything else
    (`/api`, `/apis/GROUP/VERSION`, `/version`) is a non-resource URL: no objectRef.
    """
    parts = [part for part in path.split("/") if part]
    verb = method.lower()
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return {"verb": verb}
    if rest[0] == "watch":  # the deprecated /watch/ path prefix
        watch, rest = True, rest[1:]
    ref: dict[str, Any] = {"apiGroup": group, "apiVersion": version}
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2:] not in (["status"], ["finalize"]):
        ref["namespace"], rest = rest[1], rest[2:]
    if not rest:
        return {"verb": verb}
    ref["resource"] = rest[0]
    if len(rest) > 1:
        ref["name"] = rest[1]
        if rest[0] == "namespaces":
            ref["namespace"] = rest[1]  # a namespace is in itself, as RBAC sees it
    if len(rest) > 2:
        ref["subresource"] = "/".join(rest[2:])
    named = "name" in ref
    if method in ("GET", "HEAD"):
        verb = "watch" if watch else "get" if named else "list"
    else:
        verb = {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection",
        }.get(method, verb)
    return {"verb": verb, "objectRef": ref}


def audit_event(raw_request: aiohttp.web.BaseRequest, code: int, stage: str) -> dict[str, Any]:
    """One audit.k8s.io/v1 Event at the Metadata level (no bodies)."""
    watch = raw_request.query.get("watch") in ("true", "1")
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "stage": stage,
        "requestURI": raw_request.path_qs,
        **request_info(raw_request.method, raw_request.path, watch),
        "userAgent": raw_request.headers.get("User-Agent", ""),
        "responseStatus": {"code": code},
        "stageTimestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
    }


_SET_RULE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    """Split on the commas that separate requirements, not those inside `in (a, b)`."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [part.strip() for part in [*parts, current] if part.strip()]


def matches_labels(obj: dict[str, Any], selector: str) -> bool:
    """Kubernetes label selector semantics: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (b,c)`,
    `a notin (b,c)`, all of them required."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for rule in _split_selector(selector):
        if found := _SET_RULE.match(rule):
            key, operator, values = found.groups()
            allowed = {value.strip() for value in values.split(",")}
            if (operator == "in") != (labels.get(key) in allowed):
                return False
        elif "!=" in rule:
            key, value = (part.strip() for part in rule.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in rule:
            key, value = (part.strip() for part in rule.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif rule.startswith("!"):
            if rule[1:].strip() in labels:
                return False
        elif rule not in labels:
            return False
    return True


def matches_fields(obj: dict[str, Any], selector: str) -> bool:
    """Field selectors as the API server applies them: dotted paths, `=`, `==` and `!=`."""
    for rule in _split_selector(selector):
        negate = "!=" in rule
        path, value = (
            part.strip() for part in rule.replace("==", "=").replace("!=", "=").split("=", 1)
        )
        current: Any = obj
        for key in path.split("."):
            current = current.get(key) if isinstance(current, dict) else None
        actual = "" if current is None else str(current)
        if (actual == value) == negate:
            return False
    return True


def _sees(view: dsl.View, request: rendering.Request) -> bool | None:
    """Whether `view` sees `request`, decided from the request alone; None: cannot tell."""
    match view:
        case dsl.Root():
            return any(seen is request for seen in view._requests)
        case dsl.Filter() if type(view) is dsl.Filter:
            return bool(view.criteria(request)) and _sees(view._source, request)
        case dsl.Priority() | dsl.Reaction():
            return _sees(view._source, request)
        case dsl.OrGroup():
            answers = [_sees(source, request) for source in view._sources]
            return None if None in answers else any(answers)
        case dsl.AndGroup():
            answers = [_sees(source, request) for source in view._sources]
            return None if None in answers else all(answers)
    return None  # slices, exclusions, streams: their answer depends on other requests


def _speed_up_reaction_matching() -> None:
    """Decide "does this reaction see this request" from the request, not by a walk.

    kmock answers it by iterating every request in flight through the reaction's filters until
    it meets this one, for each reaction in turn; the long-lived watch streams are always in
    flight, so every call paid for all of them, for every reaction: half of the emulator's time
    under load. For plain filter chains the answer is the filters applied to this one request,
    which is what the walk computes; anything else keeps kmock's own answer. Patched in the
    emulator's own process only.
    """
    original = dsl.View.__contains__

    def contains(view: dsl.View, item: Any) -> bool:
        if isinstance(item, rendering.Request):
            answer = _sees(view, item)
            if answer is not None:
                return answer
        return original(view, item)

    dsl.View.__contains__ = contains  # type: ignore[method-assign]


def serve() -> None:
    """Serve the emulator on a free loopback port until standard input closes.

    Prints the URL as the first line of standard output. Standard input is the leash: the
    parent holds the other end, so the server also stops when its parent dies, however it dies.
    """

    async def main(audit: TextIO | None) -> None:
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()
        threading.Thread(
            target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(closed.set)), daemon=True
        ).start()
        async with ApiServerEmulator(audit=audit) as emulator, kmock.Server(emulator) as server:
            print(str(server.url).rstrip("/"), flush=True)
            await closed.wait()

    _speed_up_reaction_matching()
    path = os.environ.get(AUDIT_LOG_ENV)
    if not path:
        asyncio.run(main(None))
        return
    # Line-buffered: a reader sees every request as soon as it is answered, and a killed
    # emulator loses none.
    with open(path, "a", buffering=1, encoding="utf-8") as audit:
        asyncio.run(main(audit))


@contextmanager
def running_emulator(audit_log: Path | None = None) -> Iterator[str]:
    """The emulator on a loopback port, served by a child process; yields its URL.

    audit_log: the file its audit log is appended to (`request_info` and `audit_event` say
    what a line holds); None: as FAIRPILOT_EMULATOR_AUDIT_LOG says in this environment.

    A process of its own rather than a thread: under load the emulator and the operator would
    otherwise share one interpreter lock, and each would slow the other down (the operator's
    latency figures would measure the emulator). Real API servers are separate processes too.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "fairpilot.sandbox.emulator"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=None if audit_log is None else {**os.environ, AUDIT_LOG_ENV: str(audit_log)},
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            process.wait(10)
            raise RuntimeError(f"the API emulator did not start (exit code {process.returncode})")
        yield url
    finally:
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


if __name__ == "__main__":
    serve()
