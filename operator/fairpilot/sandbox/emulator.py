"""kmock's Kubernetes emulator with the API server's bookkeeping added.

kmock stores objects as plain dicts (its docs invite subclassing for "special" fields). The
operator must not need sandbox special cases, so this subclass does what a real API server
does for it: `uid`, `resourceVersion`, `creationTimestamp`, `generation` bumped on spec
changes only, and garbage collection of objects whose owner was deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import attrs
import kmock
from kmock._internal import enums
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
}
REQUEST_LOG_WINDOW = 64
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(kw_only=True)
class ApiServerEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator plus uid, resourceVersion, timestamps, generation and GC."""

    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)

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


@contextmanager
def running_emulator() -> Iterator[tuple[str, ApiServerEmulator, asyncio.AbstractEventLoop]]:
    """The emulator on a loopback port, served from a thread; yields (url, emulator, loop)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        async with ApiServerEmulator() as emulator, kmock.Server(emulator) as server:
            state["url"], state["emulator"] = str(server.url).rstrip("/"), emulator
            ready.set()
            await stop.wait()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # surface start-up failures to the caller
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=main, name="kube-api-emulator", daemon=True)
    thread.start()
    ready.wait(30)
    if "error" in state or "url" not in state:
        raise RuntimeError(f"the API emulator did not start: {state.get('error')}")
    try:
        yield state["url"], state["emulator"], loop
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
