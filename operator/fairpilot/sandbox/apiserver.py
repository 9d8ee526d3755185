"""What a real Kubernetes API server does with objects that kmock's emulator does not.

kmock (0.8) stores objects as plain dicts and streams every stored object as `ADDED` at the start
of every watch, whatever `resourceVersion` the client gives; its lists say
`resourceVersion: "..."`; and it takes its snapshot before it subscribes to its event bus, so a
write in between is lost to that watch. Against it a client such as Kopf lists every object
again each time its watch reconnects, which a real cluster never makes it do.

`VersionedEmulator` keeps kmock's object store, its requests, reactions and assertions, and
adds the API server's semantics, as the "API Concepts" page of the Kubernetes docs states them:

* one cluster-wide revision, as etcd's: every write that changes an object gets the next one as
  its `resourceVersion` (a decimal string); a write that changes nothing gets none;
* server-set metadata: `uid`, `creationTimestamp`, `generateName`, `generation` (bumped when
  the spec changes), `deletionTimestamp` (a delete of an object with finalizers), and the
  deletion once the last finalizer is gone;
* lists carry the revision they were taken at, and items their own versions;
* watches resume from a `resourceVersion` out of a retained history of changes (per resource,
  as the API server's watch cache keeps it; 5 minutes by default), answer an expired one with
  an in-stream 410 `Expired` error, send bookmarks when asked (every minute, and just before
  `timeoutSeconds` closes the stream), support `sendInitialEvents` (watch-list) and apply label
  and field selectors to events, with objects entering and leaving a selector;
* optimistic concurrency: a patch whose result carries a `resourceVersion` other than the
  stored one, or a delete whose preconditions do not hold, is a 409 Conflict; a JSON patch whose
  `test` fails is a 422, as Kopf expects;
* garbage collection of what a deleted object owns (at once, not in the background);
* a restart (`restart()`), the stored objects kept as etcd keeps them: every open watch ends, and
  the watch cache starts again at the current revision, so that a watch resuming from any older
  version gets 410 and its client lists again.

Nothing here knows of any particular operator, so that it can be offered to kmock itself. It is
written against kmock 0.8's internals (`_handle`, `_serve_*`, `_objects`, `_lock`), pinned for
that reason; tests/integration/test_emulator_api.py checks that those hooks are still there.

For kubectl (kubectl_views.py): watches answer as `application/json` streams (kubectl has no
decoder for kmock's `application/octet-stream`); lists, gets and watch events come as
`meta.k8s.io/v1` Tables when the Accept header asks (printer columns from the stored CRDs); the
core group's discovery says `groupVersion: v1`; Events are one store served by both `v1` and
`events.k8s.io/v1`; `/openapi/v3` is built from the stored CRDs (`kubectl explain`); a Job gets
the selector and labels the API server defaults; `pods/NAME/log` serves the log files under
`pod_logs` (a kubelet's log directory: whoever runs the pods writes there), with `follow`,
`tailLines`, `limitBytes` and `container`. `/api/v1/namespaces` lists the namespaces that hold
objects, and `default` (kmock cannot parse that path: it answered 500), and GETs one.

Not covered: PUT (kmock routes no replace), `deletecollection`, server-side apply, strategic
merge patches (applied as JSON merge patches, as kmock does), list `limit`/`continue` and list
`resourceVersionMatch` (a list is always the current state), creating, deleting or watching
namespaces.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import random
import re
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
from typing_extensions import override

from fairpilot.sandbox import kubectl_views as views

ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
# Metadata only the server sets: a patch cannot change it (kept from the stored object).
SERVER_SET = (
    "uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds",
    "name", "namespace",
)  # fmt: skip
# How often an idle watch looks whether its client has gone: aiohttp does not cancel a handler
# when its client disconnects, and a quiet watch would otherwise never notice.
LIVENESS_SECONDS = 5.0
# What generateName appends, as the API server does (no vowels: no words by chance).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
PODS = kmock.resource("", "v1", "pods")
JOBS = kmock.resource("batch", "v1", "jobs")
# Events are one store that two APIs serve, each in its own fields.
EVENT_APIS = {("", "events"), ("events.k8s.io", "events")}
# How often a followed log (`kubectl logs -f`) looks for more.
LOG_POLL_SECONDS = 0.2
NAMESPACES = kmock.resource("", "v1", "namespaces")
# `/api/v1/namespaces` and `/api/v1/namespaces/NAME`: kmock's path parser reads `namespaces/`
# as the start of a namespaced path and fails on the list (500) and misreads the get (404).
NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")
# The namespace every cluster has, whether or not anything is in it.
DEFAULT_NAMESPACE = "default"

ObjectKey = tuple[kmock.resource, str | None, str]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_error(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    """An error that kmock renders as the API server's `Status` body with this code."""
    # kmock adds a traceback as the details when there are none: always give some.
    return kmock.KubernetesError(
        status=code, reason=reason, message=message, details=details or {"causes": []}
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, `null` removes a key, anything else replaces.

    New dicts only along the patched paths; the rest is shared with `target`, which is never
    changed (stored versions are never modified in place).
    """
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@attrs.frozen
class Change:
    """One write, as the history keeps it for watches to replay."""

    revision: int
    type: str  # ADDED, MODIFIED, DELETED
    key: ObjectKey
    object: Mapping[str, Any]  # the state written (DELETED: the last state, new version)
    previous: Mapping[str, Any] | None  # the state before (for selectors: leaving, entering)
    time: float  # time.monotonic(), for the compaction


@attrs.frozen
class WatchQuery:
    """A watch request's parameters, validated as the API server validates them."""

    start: int | None  # the version to stream the changes after; None: the current one
    newest: int | None  # the version the client has seen: a larger one is an error
    initial: bool  # synthetic ADDED events for the current state first
    initial_end: bool  # then a bookmark annotated as the end of them (watch-list)
    bookmarks: bool
    timeout: float | None
    labels: str
    fields: str

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> WatchQuery:
        version = params.get("resourceVersion") or ""
        if version and not version.isdigit():
            raise status_error(400, "BadRequest", f"invalid resource version: {version!r}")
        since = int(version) if version else None
        bookmarks = _flag(params.get("allowWatchBookmarks")) is True
        send = _flag(params.get("sendInitialEvents"))
        match = params.get("resourceVersionMatch")
        if send is not None and match != "NotOlderThan":
            raise status_error(
                422,
                "Invalid",
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
                "resourceVersionMatch to NotOlderThan",
            )
        if send is None and match:
            raise status_error(
                422,
                "Invalid",
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch "
                "unless sendInitialEvents is provided",
            )
        if send and not bookmarks:
            raise status_error(
                422,
                "Invalid",
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting "
                "allowWatchBookmarks to true",
            )
        timeout = params.get("timeoutSeconds")
        if timeout is not None and not timeout.isdigit():
            raise status_error(400, "BadRequest", f"invalid timeoutSeconds: {timeout!r}")
        if send is True:  # the state not older than `since`, i.e. the current one
            initial, start = True, None
        elif send is False:  # "start at most recent" / "start at any": no synthetic events
            initial, start = False, since or None
        else:  # the legacy table: unset and "0" get the state first, N starts exactly at N
            initial, start = not since, since or None
        return cls(
            start=start,
            newest=since,
            initial=initial,
            initial_end=bool(send),
            bookmarks=bookmarks,
            timeout=float(timeout) if timeout else None,
            labels=params.get("labelSelector") or "",
            fields=params.get("fieldSelector") or "",
        )


def _flag(value: str | None) -> bool | None:
    """A boolean query parameter as Go's strconv.ParseBool reads it; None when absent."""
    if value is None:
        return None
    return value in ("1", "t", "T", "true", "TRUE", "True")


@attrs.define(kw_only=True)
class VersionedEmulator(kmock.KubernetesEmulator):
    """kmock's KubernetesEmulator with resource versions, resumable watches and conflicts."""

    # How much of the history a watch can resume from, per resource (as the watch cache keeps
    # it): changes older than `history_seconds` (5 minutes, as etcd compacts), and beyond the
    # latest `history_events` ones (None: no limit by count). Older versions answer 410.
    history_events: int | None = attrs.field(default=None)
    history_seconds: float = attrs.field(default=300.0)
    # How often a watch that allows bookmarks gets one (the API server: about every minute).
    bookmark_seconds: float = attrs.field(default=60.0)
    # The kubelet's log directory: `{namespace}/{pod}/{container}.log` (kubectl_views.py);
    # None: pods have no logs to serve.
    pod_logs: Path | None = attrs.field(default=None)

    _revision: int = attrs.field(default=1, init=False)  # etcd starts at 1; writes start at 2
    _histories: dict[kmock.resource, collections.deque[Change]] = attrs.field(
        factory=lambda: collections.defaultdict(collections.deque), init=False
    )
    _compacted: dict[kmock.resource, int] = attrs.field(factory=dict, init=False)
    # Restarts so far (a watch opened before the latest one ends), and the revision the latest
    # one started the watch cache at (older versions are 410 for every resource).
    _restarts: int = attrs.field(default=0, init=False)
    _restarted_at: int = attrs.field(default=0, init=False)
    _ticks: dict[kmock.resource, asyncio.Event] = attrs.field(factory=dict, init=False)
    # What each write request wrote, for its response: a later write may come before the
    # response is rendered, and the response must show this one (its resourceVersion).
    _results: weakref.WeakKeyDictionary[kmock.Request, dict[str, Any]] = attrs.field(
        factory=weakref.WeakKeyDictionary, init=False
    )
    # When this server started: the creation time of `default` (and of a namespace whose
    # objects carry none).
    _started_at: str = attrs.field(factory=_now, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.history_events is not None and self.history_events < 1:
            raise ValueError("history_events must be at least 1 (or None: by time only)")
        # Before kmock's own fallbacks (a higher sub-priority): watches as JSON streams, which
        # kubectl decodes (`no stream serializers registered for application/octet-stream`),
        # and the OpenAPI v3 documents.
        first = self.fallback**1
        (
            first[kmock.action.WATCH]
            << kmock.headers({"Content-Type": "application/json"})
            << (self._serve_watch)
        )
        first["get", re.compile(r"/openapi/v3/?")] << self._serve_openapi_index
        first["get", re.compile(r"/openapi/v3/(.+)")] << self._serve_openapi

    @property
    def revision(self) -> int:
        """The cluster-wide revision: the resourceVersion of the latest write."""
        return self._revision

    def restart(self) -> None:
        """What clients see of an API server restart; the stored objects stay (they are etcd's).

        Every open watch ends, as the restarted server's connections drop, and the history of
        changes is gone: a restarted kube-apiserver fills its watch cache from etcd at the
        current revision, so a watch resuming from any older resourceVersion is answered with
        410 Expired, and its client (Kopf, a reflector) lists everything again. Call it on the
        emulator's event loop (`serve()` does it on SIGHUP).
        """
        # A restarted server writes on its way up (its Lease, the `kubernetes` Endpoints), and a
        # cluster writes all the time, so etcd's revision is past every version a client holds:
        # without this step, a client whose last bookmark carried the latest revision resumed.
        self._next_revision()
        self._restarts += 1
        self._restarted_at = self._revision
        self._histories.clear()
        self._compacted.clear()  # every resource's is `_restarted_at` now
        for tick in self._ticks.values():  # idle watches wake, see the restart and end
            tick.set()
        self._ticks.clear()

    # --- namespaces ---------------------------------------------------------------------------

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        found = NAMESPACE_PATH.match(raw_request.path)
        if found is not None and raw_request.method in ("GET", "HEAD"):
            return self._serve_namespaces(raw_request, found.group(1))
        return await super().__call__(raw_request)

    def namespaces(self) -> dict[str, dict[str, Any]]:
        """The cluster's namespaces as Namespace objects: `default`, every namespace that holds
        an object, and the Namespace objects stored as such.

        Namespaces are not created here (kmock stores objects in any namespace it is given), so
        a namespace exists once something is in it, as `kubectl create ns` then `apply` makes
        it on a real cluster; each is Active, created with its oldest object."""
        oldest: dict[str, str] = {DEFAULT_NAMESPACE: self._started_at}
        stored: dict[str, dict[str, Any]] = {}
        for key, obj in self._objects.items():
            if obj.deleted:
                continue
            if key[0] == NAMESPACES:
                stored[key[2]] = obj.last.raw
            elif key[1] is not None:
                created = (obj.last.raw.get("metadata") or {}).get("creationTimestamp") or ""
                # creationTimestamp is RFC 3339 in UTC with Z: as text, the earlier sorts first.
                if key[1] not in oldest or (created and created < oldest[key[1]]):
                    oldest[key[1]] = created or self._started_at
        found = {name: _namespace(name, created) for name, created in oldest.items()}
        return dict(sorted({**found, **stored}.items()))

    def _serve_namespaces(
        self, raw_request: aiohttp.web.BaseRequest, name: str | None
    ) -> aiohttp.web.StreamResponse:
        """GET of the namespace list (label and field selectors; Table when asked) or of one
        namespace (404 as the API server words it). A watch of namespaces is not served."""
        query = raw_request.query
        if _flag(query.get("watch")):
            body = _status(405, "MethodNotAllowed", "this API server does not watch namespaces")
            return aiohttp.web.json_response(body, status=405)
        everything = self.namespaces()
        table = views.wants_table(",".join(raw_request.headers.getall("Accept", [])))
        include = query.get("includeObject") or "Metadata"
        if name is not None:
            if name not in everything:
                message = f'namespaces "{name}" not found'
                body = _status(404, "NotFound", message, name=name, kind="namespaces")
                return aiohttp.web.json_response(body, status=404)
            one = everything[name]
            if table:
                one = views.table("", "namespaces", [one], None, "v1", include_object=include)
            return aiohttp.web.json_response(one)
        labels, fields = query.get("labelSelector") or "", query.get("fieldSelector") or ""
        items: list[Mapping[str, Any]] = [
            item
            for item in everything.values()
            if (not labels or matches_labels(item, labels))
            and (not fields or matches_fields(item, fields))
        ]
        meta = {"resourceVersion": str(self._revision)}
        if table:
            listing = views.table(
                "", "namespaces", items, None, "v1", include_object=include, list_meta=meta
            )
        else:
            listing = {"apiVersion": "v1", "kind": "NamespaceList", "metadata": meta}
            listing["items"] = items
        return aiohttp.web.json_response(listing)

    # --- writes -------------------------------------------------------------------------------

    @override
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # The writes are applied here, as kmock's _handle applies them (also for requests that a
        # reaction answers), but synchronously under one lock: the check of a precondition, the
        # new revision, the store and the history change in one step with no await in between.
        if request.resource is not None and _is_write(request):
            async with self._lock:
                self._results[request] = self._write(request)
        # kmock's own _handle would apply the write a second time: only its request dispatch
        # (reactions, then the fallbacks that serve the stored objects) is wanted from here.
        response = await super(kmock.KubernetesEmulator, self)._handle(request)
        if request.action == kmock.action.CREATE and response.status == 200:
            response.set_status(201)  # as the API server answers a create; clients rely on it
        return response

    def _write(self, request: kmock.Request) -> dict[str, Any]:
        if request.action == kmock.action.CREATE:
            return self._create(request)
        if request.action == kmock.action.UPDATE:
            return self._patch(request)
        return self._delete(request)

    def install(self, resource: kmock.resource, obj: Mapping[str, Any]) -> None:
        """Store an object that the cluster has from the start (a CRD installed before anything
        runs): with its server-set metadata, at the current revision, with no watch event."""
        stored = copy.deepcopy(dict(obj))
        meta = stored["metadata"] = dict(stored.get("metadata") or {})
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1,
                    resourceVersion=str(self._revision))  # fmt: skip
        self._objects[(resource, meta.get("namespace") or None, meta["name"])] = stored

    def _create(self, request: kmock.Request) -> dict[str, Any]:
        if not isinstance(request.data, Mapping) or not isinstance(
            request.data.get("metadata", {}), Mapping
        ):
            raise status_error(400, "BadRequest", "the body of a create must be an object")
        # A copy: kmock keeps each request's body for assertions, as it was sent.
        obj = copy.deepcopy(dict(request.data))
        meta = obj["metadata"] = dict(obj.get("metadata") or {})
        namespace = request.namespace or meta.get("namespace") or None
        if request.namespace and meta.get("namespace") not in (None, "", request.namespace):
            raise status_error(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(_resource(request), namespace, meta["generateName"])
        name = meta.get("name")
        if not name or not isinstance(name, str):
            raise status_error(
                422, "Invalid", "metadata.name: Required value: name or generateName is required"
            )
        key: ObjectKey = (_resource(request), namespace, name)
        current = self._lookup(key)
        if current is not None and not current.deleted:
            raise status_error(
                409,
                "AlreadyExists",
                f'{_plural(key)} "{name}" already exists',
                name=name,
                kind=key[0].plural,
            )
        if namespace:
            meta["namespace"] = namespace  # as the API server fills it in
        kind, api_version = self._type_of(key[0])
        if kind:  # a stored object always says what it is (a client may leave it out)
            obj["apiVersion"], obj["kind"] = api_version, kind
        meta.pop("deletionTimestamp", None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        if key[0] == JOBS:
            _default_job(obj)
        elif key[0] == PODS:  # a new pod waits for its node's kubelet
            obj["status"] = {**(obj.get("status") or {}), "phase": "Pending"}
        revision = self._next_revision()
        meta["resourceVersion"] = str(revision)
        if current is None:
            self._objects[key] = obj
        else:
            current.history.append(obj)  # created again after a deletion: one history
        self._commit(key, ADDED, obj, None, revision)
        return obj

    def _patch(self, request: kmock.Request) -> dict[str, Any]:
        key = _key(request)
        current = self._existing(key)
        old = current.last.raw
        data = request.data
        try:
            if isinstance(data, list):  # application/json-patch+json (Kopf's finalizers)
                new = jsonpatch.apply_patch(old, data)  # a deep copy, never the stored one
            elif isinstance(data, Mapping):  # merge patches (strategic ones approximated)
                new = merge_patch(old, data)
            else:
                raise status_error(400, "BadRequest", "the body of a patch must be JSON")
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            # A failed `test` op among them: Kopf reads 422 as "changed meanwhile, retry".
            raise status_error(422, "Invalid", f"the patch cannot be applied: {exc}") from exc
        if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), Mapping):
            raise status_error(422, "Invalid", "the patched object is not a valid object")
        old_meta = old.get("metadata") or {}
        meta = new["metadata"] = dict(new.get("metadata") or {})
        # Optimistic concurrency: a version in the patch is a precondition, not a value to set.
        stated = meta.get("resourceVersion")
        if stated not in (None, "") and stated != old_meta.get("resourceVersion"):
            raise _conflict(key)
        for field in SERVER_SET:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if request.subresource != "status" and new.get("spec") != old.get("spec"):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        if new == old:
            return old  # nothing changed: no new version, no event (as etcd skips the write)
        revision = self._next_revision()
        meta["resourceVersion"] = str(revision)
        current.history.append(new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # The last finalizer of an object being deleted is gone: the API server deletes it
            # in the same update, with one DELETED event (no MODIFIED before it).
            current.delete()
            self._commit(key, DELETED, new, old, revision)
        else:
            self._commit(key, MODIFIED, new, old, revision)
        return new

    def _delete(self, request: kmock.Request) -> dict[str, Any]:
        key = _key(request)
        current = self._existing(key)
        old = current.last.raw
        old_meta = old.get("metadata") or {}
        options = request.data if isinstance(request.data, Mapping) else {}
        preconditions = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            wanted = preconditions.get(field)
            if wanted and wanted != old_meta.get(field):
                raise _conflict(
                    key,
                    f"Precondition failed: {field} in precondition: {wanted}, "
                    f"{field} in object meta: {old_meta.get(field)}",
                )
        if old_meta.get("deletionTimestamp"):
            return old  # already being deleted: nothing changes
        uid = old_meta.get("uid")
        if old_meta.get("finalizers"):
            revision = self._next_revision()
            new = {
                **old,
                "metadata": {
                    **old_meta,
                    "deletionTimestamp": _now(),
                    "deletionGracePeriodSeconds": 0,
                    "resourceVersion": str(revision),
                },
            }
            current.history.append(new)
            self._commit(key, MODIFIED, new, old, revision)
            result = new
        else:
            result = self._remove(key, current)
        if uid:
            self._collect_garbage({uid})
        return result

    def _remove(self, key: ObjectKey, current: kmock.Object) -> dict[str, Any]:
        """Delete a stored object: its last state, with the deletion's version, is the event."""
        last = current.last.raw
        revision = self._next_revision()
        meta = {**(last.get("metadata") or {}), "resourceVersion": str(revision)}
        gone = {**last, "metadata": meta}
        current.delete()
        self._commit(key, DELETED, gone, last, revision)
        return gone

    def _collect_garbage(self, gone: set[str]) -> None:
        """Delete, transitively, everything owned by the deleted uids (foreground-free GC).

        Dependents go at once, whatever their finalizers, with a DELETED event and a version
        each; the API server's collector deletes them in the background instead.
        """
        while gone:
            orphans = [
                (key, obj)
                for key, obj in self._objects.items()
                if not obj.deleted
                and any(
                    owner.get("uid") in gone
                    for owner in obj.last.get("metadata", {}).get("ownerReferences") or []
                )
            ]
            gone = set()
            for key, obj in orphans:
                uid = self._remove(key, obj)["metadata"].get("uid")
                if uid:
                    gone.add(uid)

    def _next_revision(self) -> int:
        self._revision += 1
        return self._revision

    def _commit(
        self,
        key: ObjectKey,
        kind: str,
        obj: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        revision: int,
    ) -> None:
        """Record a write for the watches, and wake those of its resource."""
        resource = key[0]
        now = time.monotonic()
        self._histories[resource].append(Change(revision, kind, key, obj, previous, now))
        self._compact(resource, now)
        tick = self._ticks.pop(resource, None)
        if tick is not None:
            tick.set()

    def _compact(self, resource: kmock.resource, now: float) -> None:
        """Forget the changes older than the retention: watches from before them get 410."""
        history = self._histories[resource]
        cutoff = now - self.history_seconds
        limit = self.history_events
        while history and (
            (limit is not None and len(history) > limit) or history[0].time < cutoff
        ):
            self._compacted[resource] = history.popleft().revision

    def _lookup(self, key: ObjectKey) -> kmock.Object | None:
        return self._objects[key] if key in self._objects else None  # noqa: SIM401 (no .get)

    def _existing(self, key: ObjectKey) -> kmock.Object:
        current = self._lookup(key)
        if current is None or current.deleted:
            message = f'{_plural(key)} "{key[2]}" not found'
            raise status_error(404, "NotFound", message, name=key[2], kind=key[0].plural)
        return current

    def _generate_name(self, resource: kmock.resource, namespace: str | None, prefix: str) -> str:
        while True:
            name = prefix + "".join(random.choices(NAME_ALPHABET, k=5))
            current = self._lookup((resource, namespace, name))
            if current is None or current.deleted:
                return name

    # What each write wrote, not what the store holds by the time the response is rendered.

    @override
    async def _serve_create(self, request: kmock.Request) -> kmock.Payload:
        result = self._results.pop(request, None)
        return result if result is not None else await super()._serve_create(request)

    @override
    async def _serve_update(self, request: kmock.Request) -> kmock.Payload:
        result = self._results.pop(request, None)
        return result if result is not None else await super()._serve_update(request)

    @override
    async def _serve_delete(self, request: kmock.Request) -> kmock.Payload:
        result = self._results.pop(request, None)
        return result if result is not None else await super()._serve_delete(request)

    # --- reads --------------------------------------------------------------------------------

    def _known(self, request: kmock.Request) -> None:
        """404 for a resource this server does not serve (as kmock's own list answers)."""
        if not any(resource == request.resource for resource in self._get_resources()):
            raise kmock.KubernetesResourceNotFoundError()

    def _selects(
        self, request: kmock.Request, labels: str, fields: str, key: ObjectKey, obj: Any
    ) -> bool:
        """Whether a list or watch request sees this object: its namespace, name, selectors."""
        if request.namespace is not None and key[1] != request.namespace:
            return False
        if request.name is not None and key[2] != request.name:
            return False
        return (not labels or matches_labels(obj, labels)) and (
            not fields or matches_fields(obj, fields)
        )

    def _current(self, request: kmock.Request, labels: str, fields: str) -> list[dict[str, Any]]:
        resource, found = _resource(request), []
        events = (resource.group, resource.plural) in EVENT_APIS
        for key, obj in self._objects.items():
            if obj.deleted:
                continue
            if key[0] == resource:
                raw = obj.last.raw
            elif events and (key[0].group, key[0].plural) in EVENT_APIS:
                # The other API's Events: the same store, in this API's fields.
                convert = views.events_v1 if resource.group else views.core_event
                raw = convert(obj.last.raw)
            else:
                continue
            if self._selects(request, labels, fields, key, raw):
                found.append(raw)
        return found

    def _type_of(self, resource: kmock.resource) -> tuple[str | None, str]:
        """The kind (None: not declared) and the apiVersion of a resource's objects."""
        # Not [] alone: kmock's ResourcesArray adds what it is asked for (as a defaultdict).
        info = self.resources[resource] if resource in self.resources else None  # noqa: SIM401
        group = f"{resource.group}/" if resource.group else ""
        return (info.kind if info is not None else None), f"{group}{resource.version}"

    @override
    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        self._known(request)
        params = request.params
        labels, fields = params.get("labelSelector") or "", params.get("fieldSelector") or ""
        # The items and the revision in one step: the list is the state at that revision.
        items = self._current(request, labels, fields)
        revision = self._revision
        if self._wants_table(request):
            return self._table(request, items, {"resourceVersion": str(revision)})
        kind, api_version = self._type_of(_resource(request))
        listing: dict[str, Any] = {"apiVersion": api_version}
        if kind:
            listing["kind"] = f"{kind}List"  # which kubectl requires (`ConfigMapList`)
        listing["metadata"] = {"resourceVersion": str(revision)}
        listing["items"] = items
        return listing

    # --- what kubectl asks for (kubectl_views.py) ---------------------------------------------

    @override
    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        listing = dict(await super()._serve_version(request))  # type: ignore[arg-type]
        if listing.get("groupVersion", "").startswith("/"):
            listing["groupVersion"] = listing["groupVersion"][1:]  # the core group: `v1`
        return listing

    @override
    async def _serve_fetch(self, request: kmock.Request) -> kmock.Payload:
        if request.subresource == "log" and request.resource == PODS:
            return await self._serve_log(request)
        found = await super()._serve_fetch(request)
        if self._wants_table(request) and isinstance(found, Mapping):
            return self._table(request, [found], {})
        return found

    def _wants_table(self, request: kmock.Request) -> bool:
        accept = [value for name, value in request.headers.items() if name.lower() == "accept"]
        return views.wants_table(",".join(accept))

    def _crd_of(self, resource: kmock.resource) -> Mapping[str, Any] | None:
        """The stored CRD that defines a resource, if any (its printer columns, its schema)."""
        found = self._lookup((CRDS, None, f"{resource.plural}.{resource.group}"))
        return None if found is None or found.deleted else found.last.raw

    def _crds(self) -> list[Mapping[str, Any]]:
        return [obj.last.raw for key, obj in self._objects.items()
                if key[0] == CRDS and not obj.deleted]  # fmt: skip

    def _table(
        self, request: kmock.Request, items: list[Any], list_meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        resource = _resource(request)
        return views.table(
            resource.group or "",
            str(resource.plural),
            items,
            self._crd_of(resource) if resource.group else None,
            str(resource.version),
            include_object=request.params.get("includeObject") or "Metadata",
            list_meta=list_meta,
        )

    async def _serve_openapi_index(self, request: kmock.Request) -> kmock.Payload:
        return views.openapi_index(views.openapi_documents(self._crds()))

    async def _serve_openapi(self, request: kmock.Request) -> kmock.Payload:
        path = request.url.path.removeprefix("/openapi/v3/").strip("/")
        document = views.openapi_documents(self._crds()).get(path)
        if document is None:
            raise status_error(404, "NotFound", f"no OpenAPI document for {path}")
        return document

    async def _serve_log(self, request: kmock.Request) -> kmock.Payload:
        """A container's log, as the kubelet serves it through the API server."""
        key = _key(request)
        pod = self._existing((PODS, key[1], key[2])).last.raw
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        params = request.params
        container = params.get("container") or (containers[0] if len(containers) == 1 else None)
        if container is None:
            raise status_error(
                400,
                "BadRequest",
                f"a container name must be specified for pod {key[2]}, choose one of: {containers}",
            )
        if container not in containers:
            raise status_error(
                400, "BadRequest", f"container {container} is not valid for pod {key[2]}"
            )
        path = (
            None
            if self.pod_logs is None
            else views.pod_log_path(self.pod_logs, key[1] or "", key[2], container)
        )
        phase = (pod.get("status") or {}).get("phase")
        if phase in (None, "Pending"):
            raise status_error(
                400,
                "BadRequest",
                f'container "{container}" in pod "{key[2]}" is waiting to start: ContainerCreating',
            )
        if path is None:
            return b""  # no log directory: nothing was kept
        tail, limit = params.get("tailLines"), params.get("limitBytes")
        tail_lines = int(tail) if tail and tail.isdigit() else None
        limit_bytes = int(limit) if limit and limit.isdigit() else None
        if _flag(params.get("follow")) is not True:
            return views.read_log(path, tail_lines, limit_bytes)
        return self._follow_log(request, (PODS, key[1], key[2]), path, tail_lines)

    async def _follow_log(
        self, request: kmock.Request, key: ObjectKey, path: Path, tail_lines: int | None
    ) -> AsyncIterator[bytes]:
        """The log so far, then what the container writes, until its pod ends or goes."""
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = b""
        yield b""  # the headers go out now
        rotated = path.with_suffix(".log.1")
        earlier = rotated.read_bytes() if rotated.exists() else b""
        so_far = earlier + current
        if tail_lines is not None:
            lines = so_far.splitlines(keepends=True)
            so_far = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
        yield so_far
        position = len(current)
        while True:
            found = self._lookup(key)
            ended = (
                found is None
                or found.deleted
                or (found.last.raw.get("status") or {}).get("phase") in views.TERMINAL_PHASES
            )
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size < position:  # rotated (copied and truncated): the new part from its start
                position = 0
            if size > position:
                with path.open("rb") as log:
                    log.seek(position)
                    chunk = log.read(size - position)
                position += len(chunk)
                yield chunk
            if ended or _disconnected(request):
                return
            await asyncio.sleep(LOG_POLL_SECONDS)

    @override
    def _serve_watch(self, request: kmock.Request) -> AsyncIterator[kmock.Payload]:
        # Not a generator itself: a request it refuses gets an HTTP error, not a stream.
        self._known(request)
        stream = self._watch_stream(request, WatchQuery.parse(request.params))
        return self._as_tables(request, stream) if self._wants_table(request) else stream

    async def _as_tables(
        self, request: kmock.Request, stream: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        """A watch's objects as one-row Tables (kubectl get -w); bookmarks, errors as they are."""
        async for event in stream:
            if isinstance(event, Mapping) and event.get("type") in (ADDED, MODIFIED, DELETED):
                event = {**event, "object": self._table(request, [event["object"]], {})}
            yield event

    async def _watch_stream(self, request: kmock.Request, query: WatchQuery) -> AsyncIterator[Any]:
        yield b""  # the headers go out now, as the API server flushes them at once
        epoch = self._restarts  # a restart ends this watch
        resource = _resource(request)
        loop = asyncio.get_running_loop()
        deadline = None if query.timeout is None else loop.time() + query.timeout
        if query.newest is not None and query.newest > self._revision:
            yield _error(
                504,
                "Timeout",
                f"Too large resource version: {query.newest}, current: {self._revision}",
            )
            return
        # The state and the point to stream from are taken in one step (no await between):
        # a write either is in the state or comes as an event, never both nor neither.
        since = self._revision if query.start is None else query.start
        initial = self._current(request, query.labels, query.fields) if query.initial else []
        for obj in initial:
            yield {"type": ADDED, "object": obj}
        if query.initial_end:
            yield self._bookmark(resource, since, initial_end=True)
        next_bookmark = loop.time() + self.bookmark_seconds if query.bookmarks else None
        while True:
            if self._restarts != epoch:
                return  # the server it was opened on is gone: the stream just ends
            self._compact(resource, time.monotonic())
            oldest = max(self._compacted.get(resource, 0), self._restarted_at)
            if since < oldest:
                # Changes this watch has not seen are gone (an old version, one that fell
                # behind while it streamed, or one from before a restart): list again.
                yield _error(410, "Expired", f"too old resource version: {since} ({oldest})")
                return
            pending = self._changes_since(resource, since)
            if pending:
                for change in pending:
                    if self._restarts != epoch:
                        return  # restarted while this watch was sending
                    since = change.revision
                    event = self._event_for(request, query, change)
                    if event is not None:
                        yield event
                continue  # more may have come while those were sent
            # Nothing of this resource since then: the watch is current up to the revision.
            since = self._revision
            now = loop.time()
            if deadline is not None and now >= deadline:
                if query.bookmarks:  # where to resume from, as the API server sends it
                    yield self._bookmark(resource, since)
                return
            if next_bookmark is not None and now >= next_bookmark:
                yield self._bookmark(resource, since)
                next_bookmark = now + self.bookmark_seconds
                continue
            if _disconnected(request):
                return
            wakes = (deadline, next_bookmark, now + LIVENESS_SECONDS)
            wake = min(t for t in wakes if t is not None)
            tick = self._ticks.get(resource)
            if tick is None:
                tick = self._ticks[resource] = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake - now)):
                    await tick.wait()

    def _changes_since(self, resource: kmock.resource, since: int) -> list[Change]:
        # From the newest back: a watch that keeps up looks at a change or two, not all.
        pending: list[Change] = []
        for change in reversed(self._histories.get(resource) or ()):
            if change.revision <= since:
                break
            pending.append(change)
        pending.reverse()
        return pending

    def _event_for(
        self, request: kmock.Request, query: WatchQuery, change: Change
    ) -> dict[str, Any] | None:
        """The event this watch sees for a change, as the watch cache filters it."""
        before = change.previous is not None and self._selects(
            request, query.labels, query.fields, change.key, change.previous
        )
        if change.type == DELETED:
            return {"type": DELETED, "object": change.object} if before else None
        after = self._selects(request, query.labels, query.fields, change.key, change.object)
        if after:
            return {"type": MODIFIED if before else ADDED, "object": change.object}
        if before:  # left the selector: gone for this watch, in its last state it saw
            assert change.previous is not None
            meta = dict(change.previous.get("metadata") or {})
            meta["resourceVersion"] = str(change.revision)
            return {"type": DELETED, "object": {**change.previous, "metadata": meta}}
        return None

    def _bookmark(
        self, resource: kmock.resource, revision: int, initial_end: bool = False
    ) -> dict[str, Any]:
        kind, api_version = self._type_of(resource)
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return {"type": BOOKMARK, "object": {"kind": kind, "apiVersion": api_version,
                                             "metadata": meta}}  # fmt: skip


def _resource(request: kmock.Request) -> kmock.resource:
    assert request.resource is not None  # only Kubernetes requests come this far
    return request.resource


def _default_job(job: dict[str, Any]) -> None:
    """What the API server defaults in a Job: a selector on its own uid (unless it says
    `manualSelector`), and the labels that match it on its pod template (kubectl finds a
    Job's pods by that selector, `kubectl logs job/NAME`)."""
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") or spec.get("selector"):
        return
    meta = job["metadata"]
    uid, name = meta["uid"], meta.get("name", "")
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec["template"] = dict(spec.get("template") or {})
    template_meta = template["metadata"] = dict(template.get("metadata") or {})
    template_meta["labels"] = {
        **(template_meta.get("labels") or {}),
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }


def _key(request: kmock.Request) -> ObjectKey:
    assert request.name is not None  # only requests for one object come this far
    return _resource(request), request.namespace, request.name


def _is_write(request: kmock.Request) -> bool:
    if request.action == kmock.action.CREATE:
        return True
    return request.action in (kmock.action.UPDATE, kmock.action.DELETE) and bool(request.name)


def _plural(key: ObjectKey) -> str:
    resource = key[0]
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


def _conflict(key: ObjectKey, why: str | None = None) -> kmock.KubernetesError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version and "
        "try again"
    )
    return status_error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_plural(key)} "{key[2]}": {why}',
        name=key[2],
        group=key[0].group,
        kind=key[0].plural,
    )


def _error(code: int, reason: str, message: str) -> dict[str, Any]:
    """An ERROR event: how a watch that has started (a 200 stream) reports a failure."""
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": message, "reason": reason, "code": code}  # fmt: skip
    return {"type": ERROR, "object": status}


def _namespace(name: str, created: str) -> dict[str, Any]:
    """A Namespace object as the API server returns it (its uid stable across requests)."""
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"namespace/{name}"))
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uid,
            "creationTimestamp": created,
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _status(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """The API server's `Status` body of a refused request."""
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": message, "reason": reason, "code": code}  # fmt: skip
    if details:
        status["details"] = details
    return status


def _disconnected(request: kmock.Request) -> bool:
    raw = request._raw_request
    transport = raw.transport if raw is not None else None
    return transport is None or transport.is_closing()


# --- selectors ------------------------------------------------------------------------------

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


def matches_labels(obj: Mapping[str, Any], selector: str) -> bool:
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


def matches_fields(obj: Mapping[str, Any], selector: str) -> bool:
    """Field selectors as the API server applies them: dotted paths, `=`, `==` and `!=`."""
    for rule in _split_selector(selector):
        negate = "!=" in rule
        path, value = (
            part.strip() for part in rule.replace("==", "=").replace("!=", "=").split("=", 1)
        )
        current: Any = obj
        for key in path.split("."):
            current = current.get(key) if isinstance(current, Mapping) else None
        actual = "" if current is None else str(current)
        if (actual == value) == negate:
            return False
    return True
