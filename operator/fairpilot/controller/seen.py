"""Which version of each object the operator has already acted on.

Kopf lists every watched object again each time a watch reconnects (every
`settings.watching.server_timeout`, 60 s here, or when the API server ends the stream) and
passes each to the event handlers as if it were new. For a finished Job that is nothing new;
without this record, every reconnect reconciled the owner of every Job there is (20,000 GETs
and reconciliations a minute with 20,000 finished Jobs).

A version is recorded after it was handled without error, so a listing after a failure is
the retry. The record lives in memory: a restarted operator handles each object once more,
as its resume handlers reconcile every resource anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any


class SeenVersions:
    def __init__(self) -> None:
        self._versions: dict[str, str] = {}
        self._lock = threading.Lock()  # handlers run in Kopf's thread pool

    @staticmethod
    def _key(body: Mapping[str, Any]) -> tuple[str, str]:
        meta = body.get("metadata") or {}
        return meta.get("uid") or "", meta.get("resourceVersion") or ""

    def is_new(self, body: Mapping[str, Any]) -> bool:
        """Whether this version of the object has not been handled yet."""
        uid, version = self._key(body)
        with self._lock:
            return not uid or not version or self._versions.get(uid) != version

    def handled(self, body: Mapping[str, Any]) -> None:
        uid, version = self._key(body)
        if uid and version:
            with self._lock:
                self._versions[uid] = version

    def forget(self, body: Mapping[str, Any]) -> None:
        uid, _ = self._key(body)
        with self._lock:
            self._versions.pop(uid, None)

    def __len__(self) -> int:
        return len(self._versions)
