"""The operator's own log reads like a log: what happened to which resource, each once.

- each phase change: one INFO line `<Kind> <namespace>/<name>: Pending → Running: <message>`,
  a failure one WARNING with its reason (`... → Failed (<reason>): <message>`), written by
  handlers.reconcile_resource through `ResourceLines.phase`;
- a wait for a reference: one INFO line `<Kind> <namespace>/<name> waits: <message>`, when its
  message is news (the Dataset waited for went from Pending to Running), not at every retry.

Kopf logs a handler's retries on its `kopf.objects` logger and offers no setting for how
(kopf 1.45; its issue #981 asks for one): every retry of a handler that raised
kopf.TemporaryError is an ERROR line `Handler 'reconcile' failed temporarily: <message>`. For
FairPilot a TemporaryError is no error: it is how a resource waits (handlers.py), retried every
15 s for as long as what it waits for runs. `KopfRecords`, a filter on that logger, turns those
lines into the wait's line above, or drops them when the resource's last line said the same
(the phase change to Pending that began the wait says it first). It also takes Kopf's routine
lines (`Handler 'deliver' succeeded.` at every event of every resource, `Creation is
processed: 1 succeeded; 0 failed.`) down to DEBUG. Real failures (a handler's exception, a
permanent error) keep Kopf's ERROR.

A logger's filters run before its handlers, Kopf's K8sPoster among them: a line dropped or
taken to DEBUG is no Kubernetes Event either, and the wait's line is not posted (the resource's
own Event for its phase change says it). The filter touches only the records of the operator
whose settings it was given (two operators in one process, a test's, each keep their own).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import kopf

from fairpilot.conditions import condition_of

KOPF_OBJECTS = "kopf.objects"
# kopf/_core/actions/execution.py: f"{handler} failed temporarily: {str(e) or repr(e)}", for
# the handlers registered with id "reconcile" (the update handler's id is "reconcile/spec").
WAITING = re.compile(r"Handler 'reconcile(?:/[^']*)?' failed temporarily: (?P<message>.*)\Z", re.S)
ROUTINE = re.compile(r"(Handler '[^']*' succeeded\.|\w+ is processed: \d+ succeeded; 0 failed\.)\Z")

log = logging.getLogger(__name__)
Key = tuple[str, str, str, str]  # kind, namespace, name, uid


class ResourceLines:
    """The last line logged for each resource (its phase, or None for a wait, and its message),
    so that none is logged twice in a row: two reconciliations of one resource at once (a
    wake-up and Kopf's retry, a Job's event and a recheck) may both make the same change, and
    a wait is retried for as long as it lasts. Running, Failed, Running, Failed are four lines.
    """

    def __init__(self, remember: int = 10_000) -> None:
        self.remember = remember  # resources remembered; the least recently logged forgotten
        self._last: OrderedDict[Key, tuple[str | None, str]] = OrderedDict()
        self._lock = threading.Lock()  # Kopf's handlers run in its thread pool

    def phase(self, key: Key, change: tuple[str | None, str], status: dict[str, Any]) -> None:
        """Log a phase change (from, to) of the resource `key`; `status`: the status written."""
        was, phase = change
        message = str(status.get("message") or "")
        if not self._news(key, phase, message, same=lambda last: last == (phase, message)):
            return
        kind, namespace, name, _ = key
        line = f"{kind} {namespace}/{name}: {was or 'new'} → {phase}"
        failed = phase == "Failed"
        if failed and (reason := (condition_of(status, "Ready") or {}).get("reason")):
            line += f" ({reason})"
        line += f": {message}" if message else ""
        log.log(logging.WARNING if failed else logging.INFO, "%s", line)

    def wait(self, key: Key, message: str) -> bool:
        """Whether a wait with `message` is news: the resource's last line did not say it."""
        return self._news(key, None, message, same=lambda last: last[1] == message)

    def _news(
        self,
        key: Key,
        phase: str | None,
        message: str,
        same: Callable[[tuple[str | None, str]], bool],
    ) -> bool:
        with self._lock:
            last = self._last.get(key)
            if last is not None and same(last):
                self._last.move_to_end(key)
                return False
            self._last[key] = (phase, message)
            self._last.move_to_end(key)
            while len(self._last) > self.remember:
                self._last.popitem(last=False)
            return True


class KopfRecords(logging.Filter):
    """On `kopf.objects`, for one operator's records: a wait's retries become one INFO line
    (`ResourceLines.wait`), Kopf's routine lines DEBUG."""

    def __init__(self, settings: kopf.OperatorSettings, lines: ResourceLines) -> None:
        super().__init__()
        self.settings, self.lines = settings, lines

    def filter(self, record: logging.LogRecord) -> bool:
        ref = getattr(record, "k8s_ref", None)
        if getattr(record, "settings", None) is not self.settings or not isinstance(ref, dict):
            return True  # another operator's, or about no resource
        text = record.getMessage()
        if ROUTINE.match(text):
            return _demote(record, logging.DEBUG)
        waiting = WAITING.match(text)
        if waiting is None:
            return True
        key = key_of(ref)
        if not self.lines.wait(key, waiting["message"]):
            return False
        kind, namespace, name, _ = key
        record.msg, record.args = f"{kind} {namespace}/{name} waits: {waiting['message']}", ()
        record.k8s_skip = True  # a log line, not an Event
        return _demote(record, logging.INFO)


def install(settings: kopf.OperatorSettings, lines: ResourceLines) -> KopfRecords:
    """Put a KopfRecords for this operator on Kopf's `kopf.objects` logger."""
    records = KopfRecords(settings, lines)
    logging.getLogger(KOPF_OBJECTS).addFilter(records)
    return records


def uninstall(records: KopfRecords | None) -> None:
    if records is not None:
        logging.getLogger(KOPF_OBJECTS).removeFilter(records)


def key_of(ref: dict[str, Any]) -> Key:
    """A resource's key from a Kopf record's k8s_ref (or a mapping with the same fields)."""

    def field(name: str) -> str:
        return str(ref.get(name) or "")

    return field("kind"), field("namespace"), field("name"), field("uid")


def _demote(record: logging.LogRecord, level: int) -> bool:
    record.levelno, record.levelname = level, logging.getLevelName(level)
    # The logger let the record through at its old level; at the new one it may not.
    return logging.getLogger(record.name).isEnabledFor(level)
