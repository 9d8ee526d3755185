"""The sandbox's API server against the Kubernetes API conventions ("API Concepts": efficient
detection of changes, resource versions, watch bookmarks, 410 Gone, optimistic concurrency).

Plain HTTP on core ConfigMaps in a namespace of their own, as any client sees an API server: a
real one passes these too, given the same retention and bookmark interval (set here through the
emulator's environment: a real server keeps minutes of history and bookmarks every minute).
Watches are read as the JSON lines they are, with `timeoutSeconds` to end them. (Against a real
server, create the namespaces first: kmock 0.8 cannot parse `POST /api/v1/namespaces`, and the
emulator needs none.)
"""

from __future__ import annotations

import contextlib
import inspect
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import attrs
import kmock
import pytest
import requests
from kmock._internal import dsl, rendering
from requests.adapters import HTTPAdapter

from fairpilot.sandbox.apiserver import VersionedEmulator
from fairpilot.sandbox.emulator import ApiServerEmulator, running_emulator

BOOKMARK_SECONDS = 0.4
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class ConfigMaps:
    """The ConfigMaps of one namespace, over HTTP."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.namespace = url, namespace
        self.base = f"{url}/api/v1/namespaces/{namespace}/configmaps"
        self.http = requests.Session()

    def create(self, name: str, labels: dict[str, str] | None = None, **body: Any) -> dict:
        """Create a ConfigMap; `metadata` among `body` replaces the name and labels given."""
        meta: dict[str, Any] = {"name": name, **({"labels": labels} if labels else {})}
        response = self.http.post(self.base, json={"metadata": meta, **body}, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()

    def patch(
        self, name: str, body: Any, content_type: str = "application/merge-patch+json"
    ) -> requests.Response:
        data = json.dumps(body)
        headers = {"Content-Type": content_type}
        return self.http.patch(f"{self.base}/{name}", data=data, headers=headers, timeout=10)

    def patched(self, name: str, body: Any) -> dict:
        response = self.patch(name, body)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, name: str) -> requests.Response:
        return self.http.get(f"{self.base}/{name}", timeout=10)

    def delete(self, name: str, body: Any = None) -> requests.Response:
        return self.http.delete(f"{self.base}/{name}", json=body, timeout=10)

    def list(self, **params: str) -> dict:
        response = self.http.get(self.base, params=params, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    @contextmanager
    def watch(self, **params: str) -> Iterator[Iterator[dict[str, Any]]]:
        """The events of a watch, each as it arrives (chunk_size=None: no read-ahead)."""
        params = {"watch": "true", **params}
        with self.http.get(self.base, params=params, stream=True, timeout=(5, 20)) as response:
            assert response.status_code == 200, response.text
            yield (json.loads(line) for line in response.iter_lines(chunk_size=None) if line)

    def events(self, **params: str) -> list[dict[str, Any]]:
        """All events of a watch until the server ends it (give timeoutSeconds)."""
        with self.watch(**params) as stream:
            return list(stream)


def rv(obj: dict[str, Any]) -> int:
    version = obj["metadata"]["resourceVersion"]
    assert isinstance(version, str) and version.isdigit(), version
    return int(version)


def seen(events: list[dict[str, Any]], bookmarks: bool = False) -> list[tuple[str, str]]:
    """(type, name) of each event; bookmarks (no name) only when asked for."""
    return [
        (e["type"], e["object"]["metadata"].get("name", ""))
        for e in events
        if bookmarks or e["type"] != "BOOKMARK"
    ]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FAIRPILOT_EMULATOR_BOOKMARK_SECONDS", str(BOOKMARK_SECONDS))
        with running_emulator() as served:
            yield served


@pytest.fixture
def api(url: str) -> ConfigMaps:
    return ConfigMaps(url, f"t-{uuid.uuid4().hex[:8]}")


# --- resource versions ----------------------------------------------------------------------


def test_every_write_gets_a_new_numeric_version(api: ConfigMaps) -> None:
    start = rv(api.list())
    a = api.create("a", data={"k": "1"})
    assert rv(a) > start
    assert rv(api.get("a").json()) == rv(a)
    patched = api.patched("a", {"data": {"k": "2"}})
    assert rv(patched) > rv(a), "a patch is a new version"
    assert rv(api.get("a").json()) == rv(patched), "a read after a write shows it"
    same = api.patched("a", {"data": {"k": "2"}})
    assert rv(same) == rv(patched), "a patch that changes nothing writes nothing"
    listing = api.list()
    assert rv(listing) >= rv(patched)
    assert [rv(item) for item in listing["items"]] == [rv(patched)]
    b = api.create("b")
    assert rv(b) > rv(listing), "one revision for the cluster: later writes, larger versions"
    assert api.delete("a").status_code == 200
    after = api.list()
    assert rv(after) > rv(b), "a deletion is a write too"
    assert [item["metadata"]["name"] for item in after["items"]] == ["b"]
    assert api.get("a").status_code == 404


def test_a_list_says_what_it_lists(api: ConfigMaps) -> None:
    api.create("a")
    listing = api.list()
    assert (listing["kind"], listing["apiVersion"]) == ("ConfigMapList", "v1")
    assert listing["metadata"]["resourceVersion"].isdigit()


# --- watches --------------------------------------------------------------------------------


def test_a_watch_from_a_lists_version_sends_only_what_came_after(api: ConfigMaps) -> None:
    api.create("a")
    api.create("b")
    listed = rv(api.list())
    api.patched("a", {"data": {"k": "v"}})
    api.create("c")
    api.delete("b")
    events = api.events(resourceVersion=str(listed), timeoutSeconds="1")
    assert seen(events) == [("MODIFIED", "a"), ("ADDED", "c"), ("DELETED", "b")]
    versions = [rv(e["object"]) for e in events]
    assert listed < versions[0] < versions[1] < versions[2], "in order, each newer"
    assert versions[2] == rv(api.list()), "the deletion's own version, the latest write"


def test_a_watch_without_a_version_starts_with_the_current_state(api: ConfigMaps) -> None:
    a, b = api.create("a"), api.create("b")
    with api.watch(timeoutSeconds="5") as stream:
        first = [next(stream), next(stream)]
        assert sorted(seen(first)) == [("ADDED", "a"), ("ADDED", "b")]
        assert {e["object"]["metadata"]["name"]: rv(e["object"]) for e in first} == {
            "a": rv(a),
            "b": rv(b),
        }, "each object with its own version"
        patched = api.patched("a", {"data": {"k": "v"}})
        event = next(stream)
        assert seen([event]) == [("MODIFIED", "a")] and rv(event["object"]) == rv(patched)


def test_resuming_from_the_last_version_seen_loses_and_repeats_nothing(api: ConfigMaps) -> None:
    listed = rv(api.list())
    for name in ("c1", "c2", "c3"):
        api.create(name)
    with api.watch(resourceVersion=str(listed), timeoutSeconds="5") as stream:
        first = [next(stream), next(stream)]  # then the connection drops, c3 unread
    assert seen(first) == [("ADDED", "c1"), ("ADDED", "c2")]
    api.create("c4")
    api.patched("c1", {"data": {"k": "v"}})
    api.delete("c2")
    rest = api.events(resourceVersion=str(rv(first[-1]["object"])), timeoutSeconds="1")
    assert seen(rest) == [("ADDED", "c3"), ("ADDED", "c4"), ("MODIFIED", "c1"), ("DELETED", "c2")]


def test_a_deletion_with_finalizers_is_a_change_then_a_deletion(api: ConfigMaps) -> None:
    kept = api.create("kept", metadata={"name": "kept", "finalizers": ["fairpilot.io/test"]})
    listed = rv(api.list())
    assert api.delete("kept").status_code == 200
    marked = api.get("kept").json()
    assert marked["metadata"]["deletionTimestamp"] and rv(marked) > rv(kept)
    assert api.patch("kept", {"metadata": {"finalizers": None}}).status_code == 200
    assert api.get("kept").status_code == 404, "gone with its last finalizer"
    events = api.events(resourceVersion=str(listed), timeoutSeconds="1")
    assert seen(events)[0] == ("MODIFIED", "kept") and seen(events)[-1] == ("DELETED", "kept")
    assert rv(events[0]["object"]) == rv(marked)
    assert rv(events[-1]["object"]) > rv(marked) and rv(events[-1]["object"]) == rv(api.list())


def test_garbage_collection_deletions_are_events_with_versions(api: ConfigMaps) -> None:
    owner = api.create("owner")
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                 "uid": owner["metadata"]["uid"]}  # fmt: skip
    api.create("owned", metadata={"name": "owned", "ownerReferences": [reference]})
    listed = rv(api.list())
    assert api.delete("owner").status_code == 200
    with api.watch(resourceVersion=str(listed), timeoutSeconds="5") as stream:
        events = [next(stream), next(stream)]
    assert seen(events) == [("DELETED", "owner"), ("DELETED", "owned")]
    assert listed < rv(events[0]["object"]) < rv(events[1]["object"])


def test_timeout_seconds_ends_the_stream(api: ConfigMaps) -> None:
    started = time.monotonic()
    assert api.events(timeoutSeconds="1") == []
    assert 0.8 < time.monotonic() - started < 5


def test_bookmarks_when_asked_and_only_then(api: ConfigMaps) -> None:
    api.create("a")
    listed = rv(api.list())
    quiet = api.events(resourceVersion=str(listed), timeoutSeconds="1")
    assert quiet == [], "no bookmarks unless allowWatchBookmarks"
    events = api.events(
        resourceVersion=str(listed), allowWatchBookmarks="true", timeoutSeconds="2"
    )
    assert len(events) >= 2 and {e["type"] for e in events} == {"BOOKMARK"}
    for event in events:
        assert event["object"]["kind"] == "ConfigMap" and event["object"]["apiVersion"] == "v1"
        assert set(event["object"]["metadata"]) == {"resourceVersion"}
    marks = [rv(e["object"]) for e in events]
    assert marks == sorted(marks) and marks[0] >= listed
    # A bookmark's version is where to resume from: nothing after it is lost.
    api.create("b")
    resumed = api.events(resourceVersion=str(marks[-1]), timeoutSeconds="1")
    assert seen(resumed) == [("ADDED", "b")]


def test_the_last_event_before_a_timeout_is_a_bookmark(api: ConfigMaps) -> None:
    listed = rv(api.list())
    with api.watch(
        resourceVersion=str(listed), allowWatchBookmarks="true", timeoutSeconds="1"
    ) as stream:
        created = api.create("a")
        events = list(stream)
    assert seen(events) == [("ADDED", "a")]
    assert events[-1]["type"] == "BOOKMARK" and rv(events[-1]["object"]) >= rv(created)


def test_initial_events_end_with_an_annotated_bookmark(api: ConfigMaps) -> None:
    a, b = api.create("a"), api.create("b")
    params = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
    refused = api.http.get(
        api.base, params={"watch": "true", "sendInitialEvents": "true"}, timeout=10
    )
    assert refused.status_code == 422, "sendInitialEvents requires resourceVersionMatch"
    with api.watch(**params, allowWatchBookmarks="true", timeoutSeconds="5") as stream:
        initial = [next(stream), next(stream)]
        assert sorted(seen(initial)) == [("ADDED", "a"), ("ADDED", "b")]
        end = next(stream)
        assert end["type"] == "BOOKMARK"
        assert end["object"]["metadata"]["annotations"] == {INITIAL_EVENTS_END: "true"}
        assert rv(end["object"]) >= max(rv(a), rv(b))
        api.patched("b", {"data": {"k": "v"}})
        after = next(e for e in stream if e["type"] != "BOOKMARK")
        assert seen([after]) == [("MODIFIED", "b")]


def test_selectors_apply_to_watch_events(api: ConfigMaps) -> None:
    api.create("a", labels={"app": "x"})
    api.create("b", labels={"app": "y"})
    with api.watch(labelSelector="app=x", timeoutSeconds="5") as stream:
        assert seen([next(stream)]) == [("ADDED", "a")]
        api.create("c", labels={"app": "y"})  # never seen
        api.patched("b", {"metadata": {"labels": {"app": "x"}}})  # enters: ADDED
        left = api.patched("a", {"metadata": {"labels": {"app": "z"}}})  # leaves: DELETED
        api.patched("a", {"data": {"k": "v"}})  # outside: nothing
        api.patched("b", {"data": {"k": "v"}})
        api.delete("b")
        events = [next(stream) for _ in range(4)]
    assert seen(events) == [("ADDED", "b"), ("DELETED", "a"), ("MODIFIED", "b"), ("DELETED", "b")]
    gone = events[1]["object"]
    assert rv(gone) == rv(left), "the change that took it out of the selector"
    assert gone["metadata"]["labels"] == {"app": "x"}, "in the last state it matched"
    named = api.events(fieldSelector="metadata.name=a", timeoutSeconds="1")
    assert seen(named) == [("ADDED", "a")]


class SmallWindow(HTTPAdapter):
    """A client that takes the stream in small steps: a server sending much has to wait."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["socket_options"] = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)]
        super().init_poolmanager(*args, **kwargs)


def test_writes_while_a_watch_starts_lose_and_repeat_nothing(api: ConfigMaps) -> None:
    """A watch started in the middle of writes ends up with the state a list shows, having seen
    each object added once and every change after that once.

    The state it starts with is more than the sockets buffer (8 MB), and the client is slow to
    read it, so the writes come while the server is still sending the state: kmock 0.8, which
    subscribes to the changes only once the state is sent, lost every one of them.
    """
    for n in range(400):
        api.create(f"old{n}", data={"pad": "x" * 20_000})

    def write() -> None:
        writer = ConfigMaps(api.url, api.namespace)
        for n in range(50):
            writer.create(f"new{n}")
            writer.patched(f"old{n}", {"data": {"pad": None, "v": "2"}})

    slow = requests.Session()
    slow.mount("http://", SmallWindow())
    params = {"watch": "true", "timeoutSeconds": "60"}
    state: dict[str, int] = {}
    with slow.get(api.base, params=params, stream=True, timeout=(5, 5)) as response:
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.5)  # not reading yet
        writer.join()
        expected = {item["metadata"]["name"]: rv(item) for item in api.list()["items"]}
        with contextlib.suppress(requests.ConnectionError):  # 5 s without an event: done
            for line in response.iter_lines(chunk_size=None):
                event = json.loads(line)
                name, version = event["object"]["metadata"]["name"], rv(event["object"])
                if event["type"] == "ADDED":
                    assert name not in state, f"{name} added twice"
                else:
                    assert event["type"] == "MODIFIED" and state[name] < version, event["type"]
                state[name] = version
                if state == expected:
                    break
    assert len(expected) == 450
    missed = sorted(name for name, version in expected.items() if state.get(name) != version)
    assert not missed, f"{len(missed)} changes never seen, e.g. {missed[:3]}"


# --- retention: 410 Gone --------------------------------------------------------------------


@pytest.fixture
def small_history(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FAIRPILOT_EMULATOR_HISTORY_EVENTS", "5")
    with running_emulator() as served:
        yield served


def test_a_compacted_version_is_410_expired(small_history: str) -> None:
    api = ConfigMaps(small_history, "expiring")
    listed = rv(api.list())
    for n in range(10):
        api.create(f"cm{n}")
    started = time.monotonic()
    events = api.events(resourceVersion=str(listed), timeoutSeconds="10")
    assert time.monotonic() - started < 5, "the stream ends after the error"
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert (status["status"], status["reason"], status["code"]) == ("Failure", "Expired", 410)
    assert status["message"].startswith(f"too old resource version: {listed} (")
    # What a client does then: list again, and watch from there.
    relisted = rv(api.list())
    api.create("late")
    assert seen(api.events(resourceVersion=str(relisted), timeoutSeconds="1")) == [
        ("ADDED", "late")
    ]


def test_a_watch_that_falls_behind_the_history_gets_410(small_history: str) -> None:
    """A client that does not read while many changes happen: the server cannot hold back its
    writes, and the changes it had not sent yet are gone from the history."""
    api, reader = ConfigMaps(small_history, "behind"), ConfigMaps(small_history, "behind")
    reader.http.mount("http://", SmallWindow())
    listed = rv(api.list())
    bulk = "x" * 400_000  # 32 MB in all: far more than the socket buffers on both ends
    with reader.watch(resourceVersion=str(listed), timeoutSeconds="30") as stream:
        for n in range(80):
            api.create(f"cm{n}", data={"bulk": bulk})
        events = list(stream)
    assert events[-1]["type"] == "ERROR" and events[-1]["object"]["code"] == 410
    added = seen(events[:-1])
    assert added == [("ADDED", f"cm{n}") for n in range(len(added))], "in order, then the end"
    assert len(added) < 80


# --- a restart ------------------------------------------------------------------------------


def test_a_restart_ends_every_watch_and_expires_older_versions_keeping_the_objects() -> None:
    """As a restarted kube-apiserver: its watch cache starts at the current revision of etcd,
    which kept the objects, so every client lists again (Kopf after its watch's 410)."""
    with running_emulator() as url:
        api = ConfigMaps(url, "restarting")
        api.create("a", data={"k": "1"})
        listed = rv(api.list())
        latest = api.patched("a", {"data": {"k": "2"}})
        with api.watch(resourceVersion=str(listed), timeoutSeconds="30") as stream:
            assert seen([next(stream)]) == [("MODIFIED", "a")]
            started = time.monotonic()
            url.restart()
            assert list(stream) == [], "an open watch ends with the restart"
            assert time.monotonic() - started < 5, "at once, not at its timeout"
        for old in (listed, rv(latest)):  # the latest version a client could hold, too
            events = api.events(resourceVersion=str(old), timeoutSeconds="10")
            assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]
            assert events[0]["object"]["reason"] == "Expired"
        # What a client does then: list again (everything is still there), and watch from it.
        listing = api.list()
        assert [(item["metadata"]["name"], item["data"]) for item in listing["items"]] == [
            ("a", {"k": "2"})
        ]
        assert rv(listing["items"][0]) == rv(latest), "the objects keep their versions"
        assert rv(listing) > rv(latest)
        with api.watch(resourceVersion=str(rv(listing)), timeoutSeconds="5") as stream:
            api.patched("a", {"data": {"k": "3"}})
            api.create("b")
            assert seen([next(stream), next(stream)]) == [("MODIFIED", "a"), ("ADDED", "b")]
        assert sorted(seen(api.events(timeoutSeconds="1"))) == [("ADDED", "a"), ("ADDED", "b")]


# --- optimistic concurrency -----------------------------------------------------------------


def test_a_stale_resource_version_is_a_conflict(api: ConfigMaps) -> None:
    first = api.create("a", data={"k": "1"})
    stated = {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}}
    second = api.patched("a", {**stated, "data": {"k": "2"}})
    assert rv(second) > rv(first), "the version it was read at: applied"
    stale = api.patch("a", {**stated, "data": {"k": "3"}})
    assert stale.status_code == 409
    body = stale.json()
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status",
        "Failure",
        "Conflict",
        409,
    )
    current = api.get("a").json()
    assert current["data"] == {"k": "2"} and rv(current) == rv(second)
    # A JSON patch's test of the version (Kopf's finalizers): 422 when it changed meanwhile.
    test = [{"op": "test", "path": "/metadata/resourceVersion", "value": str(rv(first))}]
    add = [{"op": "add", "path": "/data/j", "value": "1"}]
    assert api.patch("a", test + add, "application/json-patch+json").status_code == 422
    test[0]["value"] = str(rv(second))
    assert api.patch("a", test + add, "application/json-patch+json").status_code == 200
    # Preconditions of a delete.
    precondition = {"preconditions": {"resourceVersion": str(rv(second))}}
    assert api.delete("a", precondition).status_code == 409
    assert api.get("a").status_code == 200


# --- the kmock internals this relies on -----------------------------------------------------


def test_the_kmock_hooks_relied_on_are_still_there() -> None:
    """apiserver.py and emulator.py override or patch these (kmock is pinned for them)."""
    assert version("kmock") == "0.8"
    emulator = kmock.KubernetesEmulator
    for method in ("_handle", "_serve_list", "_serve_watch", "_serve_fetch", "_serve_create",
                   "_serve_update", "_serve_delete", "_serve_version", "_get_resources",
                   "_KubernetesEmulator__get_objs"):  # fmt: skip
        assert callable(getattr(emulator, method)), method
    # VersionedEmulator skips kmock's _handle (it applies the writes) for the dispatch above it.
    assert "_handle" not in vars(kmock.KubernetesScaffold)
    assert "_handle" in vars(kmock.RawHandler) and "__call__" in vars(kmock.RawHandler)
    assert inspect.signature(emulator._serve_watch).parameters.keys() == {"self", "request"}
    fields = {field.name for field in attrs.fields(emulator)}
    assert {"_objects", "_lock", "_resources", "_requests", "_payloads", "_errors"} <= fields
    request_fields = {field.name for field in attrs.fields(rendering.Request)}
    assert {"_raw_request", "params", "data", "action", "resource", "namespace", "name",
            "subresource"} <= request_fields  # fmt: skip
    assert {"create", "delete", "deleted", "last", "history"} <= set(dir(kmock.Object))
    # _speed_up_reaction_matching (emulator.py).
    assert "__contains__" in vars(dsl.View)
    for view, attribute in ((dsl.Filter, "_source"), (dsl.Filter, "criteria"),
                            (dsl.OrGroup, "_sources"), (dsl.Reaction, "_requests")):  # fmt: skip
        assert attribute in {field.name for field in attrs.fields(view)}, (view, attribute)
    assert issubclass(ApiServerEmulator, VersionedEmulator)
