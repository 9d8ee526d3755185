"""Which resources wait for which: so that a stage ending wakes the stages waiting for it.

A BiasAnalysis applied beside its Dataset (as every trigger message does) waits until the
Dataset's profile succeeds. Kopf retries the waiting handler with a growing delay; this record
lets the Dataset's own reconciliation start the waiting ones the moment it ends, instead of
whenever their next retry comes round, and without polling the API every few seconds.

It lives in the operator's memory only: a restarted operator reconciles every resource anyway
(Kopf's resume handlers), and a wake-up lost between two replicas is made up by the retry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

Key = tuple[str, str, str]  # kind, namespace, name
# Ends remembered, so that a resource that read its reference just before the reference ended
# does not wait for its retry; only the last few matter (they close a race of milliseconds).
REMEMBERED_ENDS = 10_000


class Waiters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[Key, set[Key]] = {}
        self._waits_for: dict[Key, Key] = {}  # dependent -> upstream, to forget a deleted one
        self._ends = 0
        self._ended: OrderedDict[Key, int] = OrderedDict()

    def mark(self) -> int:
        """Taken before reading a reference; pass it to `add`."""
        with self._lock:
            return self._ends

    def add(self, upstream: Key, dependent: Key, since: int) -> bool:
        """`dependent` cannot go on until `upstream` ends. False when `upstream` has ended
        since `mark()` returned `since` (what the dependent read is stale: go on now)."""
        with self._lock:
            if self._ended.get(upstream, -1) > since:
                return False
            self._forget(dependent)  # a resource waits for one thing at a time
            self._waiting.setdefault(upstream, set()).add(dependent)
            self._waits_for[dependent] = upstream
            return True

    def release(self, upstream: Key) -> set[Key]:
        """`upstream` ended: the resources that waited for it (each told once)."""
        with self._lock:
            self._ends += 1
            self._ended[upstream] = self._ends
            self._ended.move_to_end(upstream)
            while len(self._ended) > REMEMBERED_ENDS:
                self._ended.popitem(last=False)
            released = self._waiting.pop(upstream, set())
            for dependent in released:
                self._waits_for.pop(dependent, None)
            return released

    def forget(self, dependent: Key) -> None:
        """`dependent` was deleted: it waits for nothing any more."""
        with self._lock:
            self._forget(dependent)

    def _forget(self, dependent: Key) -> None:
        upstream = self._waits_for.pop(dependent, None)
        if upstream is not None:
            waiting = self._waiting.get(upstream, set())
            waiting.discard(dependent)
            if not waiting:
                self._waiting.pop(upstream, None)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(dependents) for dependents in self._waiting.values())
