"""Which resources use which: so that an input's new run reaches the resources built on it.

An Explanation that has finished is reconciled again only when something tells the operator
to: its own events say nothing when its TrainingRun trains a new model. This index, fed by the
watch events of every resource (their references and recorded inputs), names the resources to
look at when one changes phase or is deleted; each then checks its inputs (`freshness.py`).

In memory only, like `waiters.py`: a restarted operator rebuilds it from the initial listing,
and reconciles every resource anyway (Kopf's resume handlers).
"""

from __future__ import annotations

import threading
from typing import Any

from fairpilot.references import references_of

Key = tuple[str, str, str]  # kind, namespace, name


class Dependents:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uses: dict[Key, set[Key]] = {}  # dependent -> its inputs
        self._used_by: dict[Key, set[Key]] = {}  # input -> its dependents

    def update(self, body: dict[str, Any]) -> None:
        """A resource as a watch event shows it: record what it uses."""
        meta = body.get("metadata") or {}
        key = (str(body.get("kind", "")), meta.get("namespace", ""), meta.get("name", ""))
        inputs = {
            (kind, key[1], name)
            for kind, name in references_of(key[0], body.get("spec") or {})
        }
        for record in (body.get("status") or {}).get("inputs") or []:
            if record.get("kind") and record.get("name"):
                inputs.add((record["kind"], key[1], record["name"]))
        with self._lock:
            if self._uses.get(key) == inputs:
                return
            self._drop(key)
            if inputs:
                self._uses[key] = inputs
                for upstream in inputs:
                    self._used_by.setdefault(upstream, set()).add(key)

    def forget(self, key: Key) -> None:
        """A resource was deleted: it uses nothing any more (its dependents stay recorded)."""
        with self._lock:
            self._drop(key)

    def of(self, key: Key) -> set[Key]:
        """The resources that use `key`."""
        with self._lock:
            return set(self._used_by.get(key, ()))

    def _drop(self, key: Key) -> None:
        for upstream in self._uses.pop(key, set()):
            users = self._used_by.get(upstream)
            if users is not None:
                users.discard(key)
                if not users:
                    del self._used_by[upstream]

    def __len__(self) -> int:
        with self._lock:
            return len(self._uses)
