"""The sandbox's API server: kmock's Kubernetes emulator with what a real one does.

The operator must not need sandbox special cases, so the emulator does what a real API server
does for it (apiserver.py, generic): `uid`, `creationTimestamp`, `generation` bumped on spec
changes only, resource versions, watches that resume from one (so Kopf does not list everything
again at each reconnect), bookmarks, 410 Gone, 409 Conflict, and garbage collection of objects
whose owner was deleted; and what kubectl asks of one (Tables, `get -w`, pod logs, OpenAPI v3).
This module adds FairPilot's resources and their CRDs (installed, as the chart installs them,
for `kubectl get crd`, printer columns and `kubectl explain`), the audit log, and what keeps
kmock fast over a long run.

The watch history and bookmarks are set by environment variables, read when it starts:
FAIRPILOT_EMULATOR_HISTORY_EVENTS (the latest changes kept per resource; default: no limit),
FAIRPILOT_EMULATOR_HISTORY_SECONDS (default 300, as etcd compacts) and
FAIRPILOT_EMULATOR_BOOKMARK_SECONDS (default 60, as the API server sends them).
FAIRPILOT_EMULATOR_POD_LOGS names the directory the local Job runner writes its pods' logs to,
which it serves as `pods/NAME/log` (`kubectl logs`).

On request (FAIRPILOT_EMULATOR_AUDIT_LOG=path) it also writes an audit log as an API server
does (audit.k8s.io/v1 events at the Metadata level, one JSON line per request): who (the
User-Agent) did what (the RBAC verb) to which object, and the response code. Tests read it to
check what the operator's RBAC must allow.

SIGHUP restarts it as an API server restarts (VersionedEmulator.restart: the objects stay, every
watch ends, every older resourceVersion is 410 Expired); `EmulatorUrl.restart` sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

import aiohttp.web
import attrs
import kmock
from kmock._internal import dsl, rendering
from typing_extensions import override

from fairpilot import API_GROUP, API_VERSION
from fairpilot.api.kinds import KINDS
from fairpilot.crds import crd
from fairpilot.sandbox.apiserver import CRDS, VersionedEmulator, matches_fields, matches_labels
from fairpilot.sandbox.children import ChildProcess

__all__ = [
    "ApiServerEmulator",
    "EmulatorUrl",
    "audit_event",
    "matches_fields",
    "matches_labels",
    "request_info",
    "running_emulator",
    "serve",
]

# With the singular and short names kubectl resolves (`kubectl logs job/NAME`, `get po`).
CORE_RESOURCES = {
    "v1/namespaces": kmock.ResourceInfo(
        kind="Namespace", singular="namespace", shortnames={"ns"}, namespaced=False
    ),
    "v1/pods": kmock.ResourceInfo(
        kind="Pod",
        singular="pod",
        shortnames={"po"},
        categories={"all"},
        namespaced=True,
        subresources={"status", "log"},
    ),
    "v1/events": kmock.ResourceInfo(
        kind="Event", singular="event", shortnames={"ev"}, namespaced=True
    ),
    "v1/configmaps": kmock.ResourceInfo(
        kind="ConfigMap", singular="configmap", shortnames={"cm"}, namespaced=True
    ),
    "batch/v1/jobs": kmock.ResourceInfo(
        kind="Job", singular="job", categories={"all"}, namespaced=True, subresources={"status"}
    ),
    "events.k8s.io/v1/events": kmock.ResourceInfo(
        kind="Event", singular="event", shortnames={"ev"}, namespaced=True
    ),
    "apiextensions.k8s.io/v1/customresourcedefinitions": kmock.ResourceInfo(
        kind="CustomResourceDefinition",
        singular="customresourcedefinition",
        shortnames={"crd", "crds"},
        namespaced=False,
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
# The directory the local Job runner writes its pods' logs to (VersionedEmulator.pod_logs).
POD_LOGS_ENV = "FAIRPILOT_EMULATOR_POD_LOGS"
# VersionedEmulator's settings, each from an environment variable (serve() reads them).
SETTINGS_ENV = {
    "history_events": ("FAIRPILOT_EMULATOR_HISTORY_EVENTS", int),
    "history_seconds": ("FAIRPILOT_EMULATOR_HISTORY_SECONDS", float),
    "bookmark_seconds": ("FAIRPILOT_EMULATOR_BOOKMARK_SECONDS", float),
}


@attrs.define(kw_only=True)
class ApiServerEmulator(VersionedEmulator):
    """The API server semantics (VersionedEmulator) with FairPilot's resources and an audit."""

    # Where audit events go (a line-buffered text file), or None: no audit, no cost.
    audit: TextIO | None = attrs.field(default=None)
    _audited: set[int] = attrs.field(factory=set, init=False)  # watches logged as started

    @override
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
        # FairPilot's CRDs, installed as the chart installs them: `kubectl get crd`, and the
        # printer columns and schemas that the API server serves from them.
        for kind in KINDS:
            self.install(CRDS, crd(kind))

    @override  # kmock's private __get_objs, which mypy does not see (hence the ignore)
    def _KubernetesEmulator__get_objs(  # type: ignore[misc]
        self, request: Any, strict: bool
    ) -> list[Any]:
        """kmock's object lookup, with a keyed fast path for one named object.

        kmock scans every stored object for every get, patch and create (its stated aim is
        simplicity, not scale), so each request cost grew with the number of objects and 500
        resources (with their Jobs, ConfigMaps, Pods and Events) slowed every call tenfold.
        The store is a dict keyed exactly as a named request addresses an object, which is how
        kmock itself checks for existence on create, update and delete.
        """
        if strict and request.name is not None and request.resource is not None:
            found = self._lookup((request.resource, request.namespace, request.name))
            return [] if found is None else [found]
        scan = kmock.KubernetesEmulator._KubernetesEmulator__get_objs  # type: ignore[attr-defined]
        return scan(self, request, strict)

    @override
    async def _serve_version(self, request: Any) -> Any:
        listing = cast(dict[str, Any], await super()._serve_version(request))
        for entry in listing["resources"]:
            if "/" in entry["name"]:
                # Subresources carry no short names or categories on a real API server;
                # kubectl would expand `get fairpilot` into `explanations/status` otherwise.
                entry.update(shortNames=[], categories=[], singularName="")
                if entry["name"].endswith("/log"):
                    entry["verbs"] = ["get"]
        return listing

    @override
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

    @override
    def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        # A watch's response never completes while the operator runs, so it is logged when it
        # starts streaming (with 200, as the API server's ResponseStarted stage); one refused
        # (the super call raises) is logged with its code when answered. The stream is passed
        # on as it is: no wrapper on every event when there is no audit.
        stream = super()._serve_watch(request)
        if self.audit is not None and request._raw_request is not None:
            self._audited.add(id(request._raw_request))
            self._audit_line(audit_event(request._raw_request, 200, "ResponseStarted"))
        return stream

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
        """Keep kmock's per-reaction request records (made for test assertions) to a window,
        and its record of the errors it answered (each 404 and 409, with its traceback)."""
        for payload in self._payloads:
            if len(payload._requests) > REQUEST_LOG_WINDOW + REQUEST_LOG_WINDOW // 2:
                del payload._requests[:-REQUEST_LOG_WINDOW]
        for errors in self._errors:
            if len(errors) > REQUEST_LOG_WINDOW + REQUEST_LOG_WINDOW // 2:
                del errors[:-REQUEST_LOG_WINDOW]

    @override
    async def _handle(self, request: Any) -> Any:
        self._trim_request_log()
        try:
            return await super()._handle(request)
        finally:
            # kmock records every request and matches each new one by scanning that record,
            # which is quadratic over a long run. Only requests still being served need to be
            # visible to the matching, so a finished one leaves the record.
            with contextlib.suppress(ValueError):
                self._requests.remove(request)


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
        logs = os.environ.get(POD_LOGS_ENV)
        emulator = ApiServerEmulator(audit=audit, pod_logs=Path(logs) if logs else None, **settings)

        def restart() -> None:
            emulator.restart()
            print(f"restarted at {emulator.revision}", flush=True)  # EmulatorUrl.restart waits

        # Before the URL is printed: until then SIGHUP would still end the process.
        loop.add_signal_handler(signal.SIGHUP, restart)
        async with emulator, kmock.Server(emulator) as server:
            print(str(server.url).rstrip("/"), flush=True)
            await closed.wait()

    _speed_up_reaction_matching()
    settings = emulator_settings(os.environ)
    path = os.environ.get(AUDIT_LOG_ENV)
    if not path:
        asyncio.run(main(None))
        return
    # Line-buffered: a reader sees every request as soon as it is answered, and a killed
    # emulator loses none.
    with open(path, "a", buffering=1, encoding="utf-8") as audit:
        asyncio.run(main(audit))


def emulator_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The emulator's settings that these environment variables set (SETTINGS_ENV)."""
    return {
        field: parse(environ[name])
        for field, (name, parse) in SETTINGS_ENV.items()
        if environ.get(name)
    }


class EmulatorUrl(str):
    """The URL of an emulator that `running_emulator` serves (a str: all most callers need),
    with a hold on the child process that serves it, to restart it."""

    child: ChildProcess

    def __new__(cls, url: str, child: ChildProcess) -> EmulatorUrl:
        made = super().__new__(cls, url)
        made.child = child
        return made

    def restart(self) -> None:
        """Restart the API server, its objects kept (VersionedEmulator.restart); returns once
        it has restarted. One caller at a time: each restart answers with one line."""
        self.child.send_signal(signal.SIGHUP)
        answer = self.child.stdout.readline()
        if not answer.startswith("restarted"):
            code = self.child.returncode
            raise RuntimeError(f"the API emulator did not restart (exit code {code})")


@contextmanager
def running_emulator(
    audit_log: Path | None = None, pod_logs: Path | None = None
) -> Iterator[EmulatorUrl]:
    """The emulator on a loopback port, served by a child process; yields its URL (whose
    `restart()` restarts the API server, objects kept).

    audit_log: the file its audit log is appended to (`request_info` and `audit_event` say
    what a line holds); None: as FAIRPILOT_EMULATOR_AUDIT_LOG says in this environment.
    pod_logs: the directory pods' logs are in (the local Job runner's), which it serves as
    `pods/NAME/log`; None: as FAIRPILOT_EMULATOR_POD_LOGS says.

    A process of its own rather than a thread: under load the emulator and the operator would
    otherwise share one interpreter lock, and each would slow the other down (the operator's
    latency figures would measure the emulator). Real API servers are separate processes too.
    It talks over a control pipe: its URL, then a line per restart, on its stdout; the end
    of its stdin is its signal to stop (so it also stops when this process dies).
    """
    env = dict(os.environ)
    if audit_log is not None:
        env[AUDIT_LOG_ENV] = str(audit_log)
    if pod_logs is not None:
        env[POD_LOGS_ENV] = str(pod_logs)
    child = ChildProcess(
        "the API emulator",
        [sys.executable, "-m", "fairpilot.sandbox.emulator"],
        env=env,
        control_pipe=True,
    )
    with child.start():
        url = child.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the API emulator did not start (exit code {child.stop()})")
        yield EmulatorUrl(url, child)


if __name__ == "__main__":
    serve()
