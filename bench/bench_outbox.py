"""How fast the Kafka outbox catches up with events that piled up.

After a broker outage, or behind a burst of trigger messages, thousands of finished resources
wait for their events (a status event per phase, the seed's result event). This measures the
operator's `Bridge` alone sending them: N finished BiasAnalyses in the sandbox's API emulator,
none delivered, are handed to the outbox at once (as the operator's watch does when it
starts), and the clock runs until every event is acknowledged by the broker (Tansu) and
recorded on its resource (`status.delivered.kafka`). Each configuration (workers in flight)
gets a fresh emulator and broker; the first is the anchor (8 workers: the operator's setting
before this benchmark; it now runs `bridge.service.KAFKA_WORKERS`). Every event is read back
from the broker: each exactly once, and every resource records all three.

    python bench/bench_outbox.py [--resources 2000] [--workers 8 32 64]
        [--out bench/results/outbox.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
from harness import describe

from fairpilot.api.kinds import BY_KIND
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.publisher import DELIVERY_HEADER
from fairpilot.bridge.service import Bridge
from fairpilot.cluster import Cluster
from fairpilot.events.topics import Topics
from fairpilot.sandbox.emulator import running_emulator
from fairpilot.sandbox.kafka import SEED_TOPICS, create_topics, running_broker
from fairpilot.sandbox.testing import read_async, resource

NAMESPACE = "default"
EVENTS_PER_ANALYSIS = 3  # status Running, status Succeeded, bias.reported
FINISHED = {
    "phase": "Succeeded",
    "observedGeneration": 1,
    "jobName": "job",
    "startedAt": "2026-11-23T10:00:00Z",
    "finishedAt": "2026-11-23T10:00:05Z",
    "biasDetected": False,
    "minDisparateImpact": 0.93,
}


def populate(cluster: Cluster, count: int) -> list[dict[str, Any]]:
    """A finished Dataset and `count` finished BiasAnalyses of it, with nothing delivered."""
    cluster.create_resource(resource("Dataset", "census", {"uri": "file:///census.csv"}, NAMESPACE))
    cluster.patch_status(BY_KIND["Dataset"], NAMESPACE, "census", {"delivered": {"kafka": []}})
    spec = {"datasetRef": "census", "target": "income", "sensitiveFeatures": ["sex"]}
    bodies = []
    for n in range(count):
        name = f"fair-{n:05d}"
        cluster.create_resource(resource("BiasAnalysis", name, spec, NAMESPACE))
        cluster.patch_status(BY_KIND["BiasAnalysis"], NAMESPACE, name, FINISHED)
        body = cluster.get("BiasAnalysis", NAMESPACE, name)
        assert body is not None
        bodies.append(body)
    return bodies


def cpu_seconds(process: psutil.Process) -> float:
    return sum(process.cpu_times()[:2])


async def catch_up(bootstrap: str, cluster: Cluster, bodies: list[dict[str, Any]], workers: int):
    bridge = Bridge(
        cluster, BridgeConfig(bootstrap_servers=bootstrap), consume=False, kafka_workers=workers
    )
    await bridge.start()
    try:
        await asyncio.wait_for(bridge.connected(), 60)
        me = psutil.Process()
        others = me.children(recursive=True)  # the emulator and the broker
        cpu_before = [cpu_seconds(p) for p in [me, *others]]
        started = time.monotonic()
        for body in bodies:
            bridge.notify(body, None)
        assert await bridge.idle(1800), "the outbox did not catch up in 30 minutes"
        elapsed = time.monotonic() - started
        cpu = [cpu_seconds(p) - b for p, b in zip([me, *others], cpu_before, strict=True)]
        records = await read_async(bootstrap, [Topics().bias, Topics().status])
    finally:
        await bridge.stop()
    return elapsed, cpu, records


def run(count: int, workers: int) -> dict[str, Any]:
    with running_emulator() as url, running_broker() as bootstrap:
        create_topics(bootstrap, [*SEED_TOPICS, Topics().status], partitions=4)
        cluster = Cluster.for_host(url)
        bodies = populate(cluster, count)
        elapsed, cpu, records = asyncio.run(catch_up(bootstrap, cluster, bodies, workers))
        recorded = [
            len(((b.get("status") or {}).get("delivered") or {}).get("kafka") or [])
            for b in (cluster.get("BiasAnalysis", NAMESPACE, x["metadata"]["name"]) for x in bodies)
            if b is not None
        ]
    deliveries = Counter(
        value for record in records for name, value in record.headers if name == DELIVERY_HEADER
    )
    events = count * EVENTS_PER_ANALYSIS
    return {
        "workers": workers,
        "resources": count,
        "events": events,
        "seconds": round(elapsed, 2),
        "eventsPerSecond": round(events / elapsed, 1),
        "cpuSeconds": {
            "bench (the outbox)": round(cpu[0], 1),
            "emulator and broker": round(sum(cpu[1:]), 1),
        },
        "check": {
            "eventsOnTheTopics": len(records),
            "sentTwice": sum(1 for n in deliveries.values() if n > 1),
            "resourcesFullyRecorded": sum(1 for r in recorded if r == EVENTS_PER_ANALYSIS),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--out", type=Path, default=Path("bench/results/outbox.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = []
    for workers in args.workers:
        result = run(args.resources, workers)
        runs.append(result)
        check = result["check"]
        print(f"{workers} workers: {result['events']} events in {result['seconds']} s "
              f"({result['eventsPerSecond']}/s), CPU {result['cpuSeconds']}, {check}")  # fmt: skip
    anchor = runs[0]["seconds"]
    for result in runs:
        result["speedupOverFirst"] = round(anchor / result["seconds"], 2)
    problems = [
        r
        for r in runs
        if r["check"]["sentTwice"]
        or r["check"]["eventsOnTheTopics"] != r["events"]
        or r["check"]["resourcesFullyRecorded"] != r["resources"]
    ]
    output = {"machine": describe("aiokafka", "kopf"), "results": runs, "problems": len(problems)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=1) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
