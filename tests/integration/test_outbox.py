"""The outbox against the sandbox's API server, with a sink that can be taken down and up.

The sink here is a real `Sink` (what a resource's state calls for, made in order); only the
thing it delivers to is a list, so that the tests can see every delivery and its order.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from fairpilot.api.kinds import BY_KIND, Kind
from fairpilot.cluster import Cluster
from fairpilot.outbox import Delivery, Outbox
from fairpilot.sandbox.emulator import running_emulator
from fairpilot.sandbox.testing import resource


class PhaseSink:
    """One delivery per phase a resource has reached (`status.phases`), like the status events."""

    name = "test"

    def __init__(self) -> None:
        self.up = False
        self.sent: list[str] = []
        self.failures = 0
        self.rounds = 0

    def pending(self, kind: Kind, resource: dict[str, Any], done: set[str]) -> list[Delivery]:
        self.rounds += 1
        name = resource["metadata"]["name"]
        phases = (resource.get("status") or {}).get("phases") or []
        return [Delivery(f"{name}/{p}", p) for p in phases if f"{name}/{p}" not in done]

    async def deliver(self, delivery: Delivery) -> None:
        await asyncio.sleep(0.01)  # a round trip: other workers run meanwhile
        if not self.up:
            self.failures += 1
            raise ConnectionError("sink down")
        self.sent.append(delivery.id)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_emulator() as url:
        yield Cluster.for_host(url)


def dataset(cluster: Cluster, name: str, phases: list[str]) -> dict[str, Any]:
    cluster.create_resource(resource("Dataset", name, {"uri": "file:///d.csv"}, "default"))
    return changed(cluster, name, phases)


def changed(cluster: Cluster, name: str, phases: list[str]) -> dict[str, Any]:
    cluster.patch_status(BY_KIND["Dataset"], "default", name, {"phases": phases})
    found = cluster.get("Dataset", "default", name)
    assert found is not None
    return found


async def until(condition: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_resource_changing_while_the_sink_is_paused_is_delivered_once(
    cluster: Cluster,
) -> None:
    """A worker holding a resource through the outbox's pause must not let a second worker
    take the same resource when it changes meanwhile: both would send its deliveries."""
    sink = PhaseSink()

    async def scenario() -> None:
        outbox = Outbox(sink, cluster, workers=4, debounce=0.01)
        outbox.start()
        try:
            outbox.notify(dataset(cluster, "a", ["Pending"]))
            await until(lambda: sink.failures >= 1)  # the sink is down: the outbox pauses (1 s)
            outbox.notify(dataset(cluster, "b", ["Pending"]))
            await asyncio.sleep(0.2)  # a worker has taken b and waits out the pause
            outbox.notify(changed(cluster, "b", ["Pending", "Running"]))
            await asyncio.sleep(0.2)
            sink.up = True
            assert await outbox.idle(15)
        finally:
            await outbox.stop()

    asyncio.run(scenario())
    twice = [d for d, n in Counter(sink.sent).items() if n > 1]
    assert not twice, sink.sent
    assert sorted(sink.sent) == ["a/Pending", "b/Pending", "b/Running"]


def test_a_version_already_settled_costs_no_round(cluster: Cluster) -> None:
    """Kopf passes every resource again when it re-lists (after a 410: an API server restart,
    a long disconnect); one whose version was settled (nothing left to deliver) is not looked
    at again, a new version is."""
    sink = PhaseSink()
    sink.up = True

    async def scenario() -> list[int]:
        outbox = Outbox(sink, cluster, workers=4, debounce=0.01)
        outbox.start()
        rounds = []
        try:
            outbox.notify(dataset(cluster, "a", ["Pending"]))
            assert await outbox.idle(10)
            await asyncio.sleep(0.1)  # the delivered patch's version, as the watch brings it
            current = cluster.get("Dataset", "default", "a")
            assert current is not None
            outbox.notify(current)
            assert await outbox.idle(10)
            rounds.append(sink.rounds)
            outbox.notify(current)  # listed again: the same version
            assert await outbox.idle(10)
            rounds.append(sink.rounds)
            outbox.notify(changed(cluster, "a", ["Pending", "Running"]))
            assert await outbox.idle(10)
            rounds.append(sink.rounds)
        finally:
            await outbox.stop()
        return rounds

    after_settling, after_relisting, after_change = asyncio.run(scenario())
    assert after_relisting == after_settling
    assert after_change == after_settling + 1
    assert sink.sent == ["a/Pending", "a/Running"]
