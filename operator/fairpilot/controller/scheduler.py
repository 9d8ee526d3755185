"""Work the operator does outside Kopf's handlers: wake-ups now, rechecks later.

Kopf retries a handler that raised `TemporaryError`, and that is how a waiting resource's own
handlers look again. Two things happen outside them, and both come here:

- a wake-up: a stage ended, so the resources waiting for it (Waiters) or using it (Dependents)
  are reconciled at once instead of at their next retry;
- a recheck: a Job's end was reconciled from the Job's event (an event handler, which Kopf
  never retries) and the resource still waits, so it is looked at again after a delay.

One small pool of threads runs both, so that neither runs in the thread of the reconciliation
that caused it (which would hold up Kopf's handler pool), and one timer thread holds what is due
later. Each call runs in the context it was scheduled from: `kopf.info()` needs Kopf's settings,
which live in context variables.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fairpilot-wake")
        self._due: list[tuple[float, int, contextvars.Context, Callable[[], object]]] = []
        self._order = itertools.count()  # ties in time run in the order they were scheduled
        self._changed = threading.Condition()
        self._stopped = False
        self._timer = threading.Thread(target=self._release_due, name="fairpilot-timer")
        self._timer.daemon = True
        self._timer.start()

    def soon(self, function: Callable[..., object], *args: Any) -> None:
        """Run `function(*args)` in a pool thread, as soon as one is free."""
        if not self._stopped:
            self._pool.submit(contextvars.copy_context().run, function, *args)

    def later(self, delay: float, function: Callable[..., object], *args: Any) -> None:
        """Run `function(*args)` in a pool thread after `delay` seconds."""
        entry = (
            time.monotonic() + delay,
            next(self._order),
            contextvars.copy_context(),
            lambda: function(*args),
        )
        with self._changed:
            heapq.heappush(self._due, entry)
            self._changed.notify()

    def pending(self) -> int:
        """Calls scheduled for later that have not started yet."""
        with self._changed:
            return len(self._due)

    def stop(self) -> None:
        """Drop what is scheduled; what runs finishes. A restarted operator loses nothing by it:
        its resume handlers reconcile every resource anyway."""
        with self._changed:
            self._stopped = True
            self._due.clear()
            self._changed.notify()
        self._timer.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _release_due(self) -> None:
        with self._changed:
            while not self._stopped:
                if not self._due:
                    self._changed.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                _, _, context, call = heapq.heappop(self._due)
                try:
                    self._pool.submit(context.run, call)
                except RuntimeError:  # shut down meanwhile
                    return
