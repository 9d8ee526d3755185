"""Exponential backoff, the one way FairPilot waits before trying something again.

Every retry in the operator (a waiting resource, a recheck, an outbox whose sink is down, a
consumer whose create failed, a broker or MongoDB not reachable yet, a sandbox Job's pod) waits
a delay that doubles from `first` up to `limit`. Jitter spreads the retries of many callers
that failed together (a broker outage fails every delivery at once).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    first: float
    limit: float
    jitter: float = 0.0  # up to this fraction is added at random to each delay

    def delay(self, attempt: int) -> float:
        """The delay before retry number `attempt` (0: the first retry)."""
        base = min(self.first * 2 ** min(attempt, 64), self.limit)
        return base * (1 + random.random() * self.jitter) if self.jitter else base

    def delays(self) -> Iterator[float]:
        attempt = 0
        while True:
            yield self.delay(attempt)
            attempt += 1

    async def retry(
        self,
        call: Callable[[], Awaitable[T]],
        on_error: Callable[[Exception, float], object] | None = None,
    ) -> T:
        """`await call()` until it returns; after each error, `on_error(error, delay)` (to log
        it) and a sleep. Cancellation is never retried."""
        for delay in self.delays():  # pragma: no branch (endless)
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if on_error is not None:
                    on_error(exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")
