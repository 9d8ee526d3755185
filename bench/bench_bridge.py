"""The Kafka bridge under load: trigger messages -> custom resources -> Jobs, in the sandbox.

`fairpilot sandbox up --noop-jobs --kafka-port P` runs in its own process (the bridge and the
operator share its event loop, as in a real deployment; the API emulator and the Tansu broker
are its children). This script produces `dataset-events` messages in the seed's format (one new
dataset each, no target: each makes one Dataset, whose profile Job is its first Job) and watches
Datasets and Jobs through the API:

- message -> CR: from just before the message is handed to the producer to the Dataset's ADDED
  event; the rate is messages over the time from the first send to the last Dataset seen;
- message -> Job: from the same moment to the Job's ADDED event.

Arrival patterns, each on a fresh sandbox: a burst (all messages at once, as fast as the
producer sends them) and steady rates. First, as the anchor, the bridge's consumer alone against
the same emulator and broker (no operator reacting to the new Datasets), in a burst and at a
steady 500/s.

    python bench/bench_bridge.py [--count 5000] [--rates 20 40] [--bridge-rates 500]
                                 [--out bench/results/bridge.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes
import psutil
from bench_operator import Observer, cpu_seconds, percentiles, sandbox_up
from harness import describe

from fairpilot.bridge.inbound import dataset_name
from fairpilot.sandbox.kafka import free_port

USER = "bench-user"


async def produce(bootstrap: str, count: int, rate: float | None) -> dict[str, float]:
    """Send `count` dataset-events messages; the moment each was handed over, by Dataset name."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    sent: dict[str, float] = {}
    pending = []
    began = time.monotonic()
    try:
        for i in range(count):
            if rate:
                await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            dataset_id = f"bench-{i:05d}"
            payload = {
                "event_type": "dataset.uploaded",
                "dataset_id": dataset_id,
                "user_id": USER,
                "timestamp": "2026-11-23T12:00:00.000000",
                # Inside the sandbox's default file root (the folder that holds --artifacts);
                # the file need not exist: no-op Jobs do not read it.
                "uri": f"file://{tempfile.gettempdir()}/{dataset_id}.csv",
            }
            sent[dataset_name(USER, dataset_id)] = time.monotonic()
            pending.append(await producer.send("dataset-events", json.dumps(payload).encode()))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def scenario(count: int, rate: float | None, timeout: float) -> dict[str, Any]:
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp,
        sandbox_up(Path(tmp), "--kafka-port", str(port)) as (url, operator),
    ):
        config = kubernetes.client.Configuration()
        config.host = url
        observer = Observer(kubernetes.client.ApiClient(config))
        time.sleep(3)  # the watches and the bridge's consumer group are up
        children = operator.children(recursive=True)
        cpu_before = cpu_seconds([operator]), cpu_seconds(children)
        began = time.monotonic()
        sent = asyncio.run(produce(f"127.0.0.1:{port}", count, rate))
        producing = time.monotonic() - began
        deadline = time.monotonic() + timeout
        while len(observer.job_created) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        cpu_process = cpu_seconds([operator]) - cpu_before[0]
        cpu_children = cpu_seconds(children) - cpu_before[1]
        rss = operator.memory_info().rss
        observer.stop()
    first = min(sent.values())
    seen = [observer.resource_seen[n] for n in sent if n in observer.resource_seen]
    to_cr = [observer.resource_seen[n] - t for n, t in sent.items() if n in observer.resource_seen]
    to_job = [observer.job_created[n] - t for n, t in sent.items() if n in observer.job_created]
    return {
        "arrivals": f"steady {rate:g}/s" if rate else "burst",
        "messages": count,
        "producing_seconds": round(producing, 2),
        "resourcesCreated": len(seen),
        "jobsCreated": len(to_job),
        "messagesToResourcesPerSecond": round(len(seen) / (max(seen) - first), 1) if seen else 0,
        "messageToResourceSeconds": percentiles(to_cr) if to_cr else None,
        "messageToJobSeconds": percentiles(to_job) if to_job else None,
        "sandboxProcessRssMiB": round(rss / 2**20, 1),
        "cpuMsPerMessage": {
            "operatorAndBridge": round(1000 * cpu_process / count, 1),
            "emulatorAndBroker": round(1000 * cpu_children / count, 1),
        },
    }


def bridge_alone(count: int, rate: float | None) -> dict[str, Any]:
    """The bridge's consumer with no operator: the API emulator and the broker only.

    What turning messages into CRs costs by itself, against the same emulator and broker;
    in the full sandbox the operator's reactions to the new CRs share the two cores.
    """
    from fairpilot.bridge.config import BridgeConfig
    from fairpilot.bridge.consumer import Consumer
    from fairpilot.cluster import Cluster
    from fairpilot.sandbox.emulator import running_emulator
    from fairpilot.sandbox.kafka import create_topics, running_broker

    async def run(url: str, bootstrap: str, observer: Observer) -> dict[str, float]:
        from aiokafka import AIOKafkaProducer

        config = BridgeConfig(
            bootstrap_servers=bootstrap,
            session_timeout_ms=2000,
            heartbeat_interval_ms=300,
            max_poll_interval_ms=5000,
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    enable_idempotence=False)  # fmt: skip
        await producer.start()
        consumer = Consumer(config, Cluster.for_host(url), producer)
        task = asyncio.create_task(consumer.run())
        await asyncio.sleep(3)  # joined the group
        sent = await produce(bootstrap, count, rate)
        deadline = time.monotonic() + 300
        while len(observer.resource_seen) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
        return sent

    with running_emulator() as url, running_broker() as bootstrap:
        create_topics(bootstrap, ["dataset-events", "fairpilot-dead-letter"])
        config = kubernetes.client.Configuration()
        config.host = url
        observer = Observer(kubernetes.client.ApiClient(config))
        process = psutil.Process()
        cpu_before = cpu_seconds([process]), cpu_seconds(process.children(recursive=True))
        sent = asyncio.run(run(url, bootstrap, observer))
        cpu_bridge = cpu_seconds([process]) - cpu_before[0]
        cpu_children = cpu_seconds(process.children(recursive=True)) - cpu_before[1]
        observer.stop()
    first = min(sent.values())
    seen = [observer.resource_seen[n] for n in sent if n in observer.resource_seen]
    to_cr = [observer.resource_seen[n] - t for n, t in sent.items() if n in observer.resource_seen]
    return {
        "arrivals": f"{f'steady {rate:g}/s' if rate else 'burst'}, bridge alone (no operator)",
        "messages": count,
        "resourcesCreated": len(seen),
        "messagesToResourcesPerSecond": round(len(seen) / (max(seen) - first), 1) if seen else 0,
        "messageToResourceSeconds": percentiles(to_cr) if to_cr else None,
        "cpuMsPerMessage": {
            "bridgeProducerAndWatch": round(1000 * cpu_bridge / count, 1),
            "emulatorAndBroker": round(1000 * cpu_children / count, 1),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument(
        "--rates", type=float, nargs="*", default=[20, 40],
        help="steady rates per second for the whole sandbox, after its burst (default: 20 40)",
    )  # fmt: skip
    parser.add_argument(
        "--bridge-rates", type=float, nargs="*", default=[500],
        help="steady rates per second for the bridge alone, after its burst (default: 500)",
    )  # fmt: skip
    parser.add_argument(
        "--rate-count", type=int, default=2000, help="messages per steady-rate run (default 2000)"
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", type=Path, default=Path("bench/results/bridge.json"))
    args = parser.parse_args()
    runs = [bridge_alone(args.count, None)]
    runs += [bridge_alone(args.count, rate) for rate in args.bridge_rates]
    runs += [scenario(args.count, None, args.timeout)]
    runs += [scenario(args.rate_count, rate, args.timeout) for rate in args.rates]
    figures = {
        "machine": describe("kopf", "kmock", "aiokafka", "kubernetes"),
        "runs": runs,
        "targets": {"throughput": ">= 500 messages/s into CRs", "p99": "< 2 s message -> Job"},
        "note": (
            "sandboxProcessRssMiB and cpuMsPerMessage.operatorAndBridge: the `fairpilot sandbox "
            "up` process (Kopf operator, Kafka bridge and outbox, local Job runner in no-op "
            "mode); the API emulator and the Tansu broker are its children; this client, its "
            "producer and its two watches share the same cores"
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(runs, indent=2))
    complete = [run.get("jobsCreated", run["resourcesCreated"]) == run["messages"] for run in runs]
    return 0 if all(complete) else 1


if __name__ == "__main__":
    sys.exit(main())
