"""The outbox: deliveries derived from resources' state, recorded on the resources once made.

A `Sink` says which deliveries a resource's current state calls for (Kafka events, warehouse
documents) and makes one. The `Outbox` is told of every change of every resource (a Kopf event
handler calls `notify`), asks the sink what is still to deliver, delivers it, and records the
ids under `status.delivered.<sink>`. So:

- a restart delivers nothing twice: the new process reads what the old one recorded;
- an outage (broker, MongoDB) delays deliveries but loses none: the resource stays pending and
  is retried with backoff; what it calls for is recomputed from its state, not kept in memory;
- one sink's outage does not hold up the other: each has its own outbox and status key.

A crash between a delivery and its record would send it again; sinks that can read back
what was delivered (Kafka's log) hand it to `recovered` before the outbox delivers anything,
and those ids are recorded on the resources like fresh ones. A delivery that failed may have
been made all the same (Kafka's acknowledgement lost with the connection); the Kafka sink reads
its log back before it makes such a delivery again. Consumers can tell a duplicate anyway by
the event's `event_id`, which is derived from the resource and stays the same.

One resource is in one worker's hands at a time, from the moment a worker takes it (including
the wait while a sink's outage pauses deliveries) until its round is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from fairpilot import metrics
from fairpilot.api.kinds import BY_KIND, Kind
from fairpilot.backoff import Backoff
from fairpilot.cluster import Cluster
from fairpilot.runs import current_run

T = TypeVar("T")
log = logging.getLogger(__name__)
Key = tuple[str, str, str]  # kind, namespace, name
# A sink's outage pauses every delivery (one failure count for all): a retry at most every
# 10 s finds a returning broker soon, and its first success releases everything at once.
MAX_BACKOFF = 10.0
# Changes of one resource within this many seconds are delivered in one round, with one status
# patch to record them (a short Job's Running and Succeeded, the status's own follow-ups).
DEBOUNCE = 0.5
# A sink's outage pauses every delivery: its first retries come soon, later ones every 10 s.
OUTAGE = Backoff(first=1.0, limit=MAX_BACKOFF)


async def blocking(pool: Executor | None, function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in one of `pool`'s threads (None: the loop's default executor).

    The bridge passes threads of its own: in the operator's process the loop's default executor
    is the one Kopf runs its sync handlers in, and queueing behind a burst of reconciliations
    would hold up every message and event.
    """
    return await asyncio.get_running_loop().run_in_executor(pool, partial(function, *args))


@dataclass(frozen=True)
class Delivery:
    """One thing to deliver; `id` is recorded on the resource once it is delivered."""

    id: str
    item: Any


class Sink(Protocol):
    name: str  # the key under status.delivered

    def pending(self, kind: Kind, resource: dict[str, Any], done: set[str]) -> list[Delivery]:
        """What the resource's state calls for that is not in `done`, in order (may block)."""
        ...

    async def deliver(self, delivery: Delivery) -> None:
        """Make one delivery; raise to have it retried later."""
        ...


def _run_of(delivery_id: str) -> str | None:
    """The run a delivery belongs to (`model.uploaded/g2r1` -> g2r1), if it names one."""
    found = re.search(r"/(g\d+(?:r\d+)?)(/|$)", delivery_id)
    return found.group(1) if found else None


class Outbox:
    def __init__(
        self,
        sink: Sink,
        cluster: Cluster,
        *,
        workers: int = 8,
        debounce: float = DEBOUNCE,
        pool: Executor | None = None,
        remember_settled: bool = True,
    ) -> None:
        self.sink = sink
        # False: every notification of a resource gets a round (a benchmark's anchor); read at
        # each notification and round, so it may be switched on a running outbox.
        self.remember_settled = remember_settled
        self.pool = pool
        self.debounce = debounce
        self._scheduled: set[Key] = set()
        self.cluster = cluster
        self.workers = workers
        self._latest: dict[Key, dict[str, Any]] = {}
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._busy: set[Key] = set()
        # What this process delivered, by uid: the bodies it is told of may predate the
        # status patch that recorded a delivery.
        self._delivered: dict[str, set[str]] = {}
        # Delivered but not recorded on the resource: made by an earlier process (read back
        # from the sink), or by this one when recording failed. Recorded with the next round.
        self._unrecorded: dict[str, set[str]] = {}
        # The version of each resource whose round ended with nothing left to deliver, which
        # holds nothing new when it comes again: Kopf lists every resource again after a
        # watch's 410 Expired (an API server restart, a disconnect longer than its history),
        # and without this each re-listing is a round per resource (bench/bench_relist.py).
        # Empty in a new process, whose first listing gives every resource a round.
        self._settled: dict[Key, str] = {}
        self._failures = 0
        self._paused_until = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    def notify(self, body: dict[str, Any], event_type: str | None = None) -> None:
        """A resource changed (or was listed at start-up); must be called on the outbox's loop."""
        meta = body.get("metadata") or {}
        key = (body.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
        if key[0] not in BY_KIND:
            return
        if event_type == "DELETED":
            self._latest.pop(key, None)
            self._settled.pop(key, None)
            self._delivered.pop(meta.get("uid", ""), None)
            return
        version = meta.get("resourceVersion")
        if self.remember_settled and version and self._settled.get(key) == version:
            return
        self._latest[key] = body
        if key not in self._scheduled and key not in self._queued and key not in self._busy:
            self._scheduled.add(key)
            asyncio.get_running_loop().call_later(self.debounce, self._release, key)

    def recovered(self, found: dict[str, set[str]]) -> None:
        """Deliveries an earlier process made (by resource uid): never made again."""
        for uid, ids in found.items():
            self._delivered.setdefault(uid, set()).update(ids)
            self._unrecorded.setdefault(uid, set()).update(ids)
        self._settled.clear()  # to be recorded with their next round, whatever the version

    def _release(self, key: Key) -> None:
        self._scheduled.discard(key)
        self._enqueue(key)

    def _enqueue(self, key: Key) -> None:
        if key not in self._queued and key not in self._busy:
            self._queued.add(key)
            self._queue.put_nowait(key)
        metrics.PENDING.labels(self.sink.name).set(len(self._latest))

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"outbox-{self.sink.name}-{n}")
            for n in range(self.workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def idle(self, timeout: float) -> bool:
        """Wait until nothing is left to deliver (for tests and a graceful stop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._latest and not self._busy and not self._scheduled:
                return True
            await asyncio.sleep(0.05)
        return False

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            if key not in self._latest:
                continue
            # Busy from here, through the pause too: a change meanwhile must not hand the same
            # resource to a second worker, which would send its deliveries a second time.
            self._busy.add(key)
            body: dict[str, Any] | None = None
            try:
                wait = self._paused_until - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                body = self._latest.pop(key, None)  # the newest, changes during the pause too
                if body is None:  # deleted meanwhile
                    continue
                ok = await self._process(body)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop the outbox; the resource is retried
                log.exception("outbox %s: %s/%s", self.sink.name, key[1], key[2])
                ok = False
            finally:
                self._busy.discard(key)
            if ok:
                if self.remember_settled:
                    version = (body or {}).get("metadata", {}).get("resourceVersion", "")
                    self._settled[key] = version
                if self._failures:  # the sink is back: what waited out the backoff goes now
                    self._paused_until = 0.0
                    for waiting in list(self._latest):
                        self._enqueue(waiting)
                self._failures = 0
                if key in self._latest:  # changed again while it was being delivered
                    self._enqueue(key)
            else:
                self._settled.pop(key, None)
                self._failures += 1
                delay = OUTAGE.delay(self._failures - 1)
                self._paused_until = time.monotonic() + delay
                if body is not None:
                    self._latest.setdefault(key, body)
                asyncio.get_running_loop().call_later(delay, self._enqueue, key)
            metrics.PENDING.labels(self.sink.name).set(len(self._latest))

    async def _process(self, body: dict[str, Any]) -> bool:
        kind = BY_KIND[body["kind"]]
        meta = body["metadata"]
        uid = meta.get("uid", "")
        recorded = list(
            ((body.get("status") or {}).get("delivered") or {}).get(self.sink.name) or []
        )
        done = set(recorded) | self._delivered.get(uid, set())
        todo = await blocking(self.pool, self.sink.pending, kind, body, done)
        # Found in the sink but not on the resource: record them with this round's.
        unrecorded = sorted(self._unrecorded.pop(uid, set()) - set(recorded))
        if not todo and not unrecorded:
            return True
        sent: list[str] = []
        ok = True
        for delivery in todo:
            try:
                await self.sink.deliver(delivery)
            except Exception as exc:
                log.warning(
                    "%s for %s %s/%s not delivered yet (%s: %s); retrying",
                    delivery.id, kind.kind, meta["namespace"], meta["name"],
                    type(exc).__name__, exc,
                )  # fmt: skip
                metrics.FAILED.labels(self.sink.name).inc()
                ok = False
                break
            sent.append(delivery.id)
            metrics.DELIVERED.labels(self.sink.name).inc()
        if sent or unrecorded:
            self._delivered.setdefault(uid, set()).update(sent)
            # Only the current run's: an earlier run's deliveries are never asked for again.
            run = current_run(body.get("status") or {}, int(meta.get("generation") or 1))
            kept = [
                i for i in dict.fromkeys([*done, *sent, *unrecorded]) if _run_of(i) in (None, run)
            ]
            try:
                await blocking(
                    self.pool,
                    self.cluster.patch_status,
                    kind,
                    meta["namespace"],
                    meta["name"],
                    {"delivered": {self.sink.name: sorted(kept)}},
                )
            except Exception as exc:  # kept to record with the next round, which is retried
                log.warning("could not record deliveries on %s: %s", meta["name"], exc)
                self._unrecorded.setdefault(uid, set()).update([*sent, *unrecorded])
                return False
        return ok
