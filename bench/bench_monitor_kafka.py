"""Prediction records from Kafka into a ModelMonitor's windows: how fast, and how soon an alert.

Two measurements, each on a fresh sandbox and broker (Tansu):

- **throughput**: `fairpilot sandbox up --noop-jobs --kafka-port P` in a process of its own (the
  bridge on the operator's event loop, as deployed) and one ModelMonitor with a Kafka source
  (`windowRecords` 1,000, a model that is never measured: only the bridge works). After a
  warm-up window, `--count` records (Adult rows, as a served model would send them) are
  produced as fast as aiokafka sends them; the rate is records over the time from the first send
  to the last window file written (its modification time). Then the same with the records on
  the topic before the monitor exists (a backlog, as after an outage): records over the time
  from the first window file to the last.
- **anchor** (the ceiling): a plain aiokafka consumer in a process of its own reads the same
  records from the same broker and writes the same JSON-lines files (same names, same atomic
  write, offsets committed per file), with no validation, routing or dead letters; the same two
  arrival patterns.
- **latency**: the sandbox in this process with real stage Jobs: a model trained on Adult (15 s),
  a monitor on it (`windowRecords` 1,000), and `--windows` windows of rows 20 years older than
  they are, one at a time; from the moment a window's file is written (its modification time)
  to the moment the monitor's status shows that window measured with its DriftDetected alert
  (polled every 0.1 s). The wake-up after a file has settled (5 s, monitoring.SETTLE_SECONDS,
  plus a 2 s margin) and the window's Job are what it is made of; both are split out.

    python bench/bench_monitor_kafka.py [--count 100000] [--windows 20]
                                        [--out bench/results/monitor-kafka.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes
import pandas as pd
import psutil
from bench_operator import cpu_seconds, percentiles, sandbox_up
from harness import describe

from fairpilot.bridge.windows import window_name
from fairpilot.sandbox.kafka import create_topics, free_port

TOPIC = "prediction-events"
USER, MODEL = "bench-user", "bench-model"
WINDOW = 1000


@cache
def adult_test() -> pd.DataFrame:
    from fairpilot.datasets import adult

    return adult()[1]


def rows(count: int, shift: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """`count` rows of Adult's test set (repeated as needed) as JSON objects, ages + `shift`."""
    frame = adult_test().sample(count, replace=count > len(adult_test()), random_state=seed)
    frame = frame.assign(age=frame["age"] + shift)
    return json.loads(frame.to_json(orient="records"))


def records(rows_: list[dict[str, Any]], prefix: str, user: str = USER) -> list[bytes]:
    return [
        json.dumps(
            {
                "event_type": "prediction.made",
                "record_id": f"{prefix}-{i}",
                "user_id": user,
                "model_id": MODEL,
                "timestamp": "2026-12-02T10:00:00Z",
                "features": {k: v for k, v in row.items() if k != "income"},
                "prediction": row["income"],
            }
        ).encode()
        for i, row in enumerate(rows_)
    ]


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> float:
    """Send as fast as aiokafka batches them; the moment the first was handed over."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5,
        max_batch_size=1 << 20,
    )  # fmt: skip
    await producer.start()
    try:
        first = time.time()
        pending = [await producer.send(topic, value, key=b"k") for value in values]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return first


def files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def wait_files(folder: Path, count: int, timeout: float) -> list[Path]:
    deadline = time.monotonic() + timeout
    while len(files(folder)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return files(folder)


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


# -- the bridge ---------------------------------------------------------------------------------
def monitor(name: str, run: str = "not-measured", **kafka: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fairpilot.io/v1alpha1", "kind": "ModelMonitor",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"trainingRunRef": run, "userId": USER,
                 "kafka": {"modelId": MODEL, "windowRecords": WINDOW, "windowSeconds": 3600,
                           **kafka}},
    }  # fmt: skip


def records_folder(artifacts: Path, custom: Any, name: str) -> Path:
    uid = custom.get_namespaced_custom_object(
        "fairpilot.io", "v1alpha1", "default", "modelmonitors", name
    )["metadata"]["uid"]
    return artifacts / "default" / USER / "modelmonitors" / name / uid / "records"


def bridge(count: int) -> dict[str, Any]:
    port = free_port()
    values = records(rows(count), "r")
    warmup = records(rows(WINDOW, seed=9), "w")
    with (
        tempfile.TemporaryDirectory(prefix="bench-monitor-kafka-") as tmp,
        sandbox_up(Path(tmp), "--kafka-port", str(port)) as (url, process),
    ):
        artifacts, bootstrap = Path(tmp), f"127.0.0.1:{port}"
        config = kubernetes.client.Configuration()
        config.host = url
        custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))
        # Live: the monitor reads; a warm-up window; then the records as fast as they go.
        custom.create_namespaced_custom_object(
            "fairpilot.io", "v1alpha1", "default", "modelmonitors", monitor("live")
        )
        live = records_folder(artifacts, custom, "live")
        asyncio.run(produce(bootstrap, TOPIC, warmup))
        wait_files(live, 1, 60)
        children = process.children(recursive=True)
        cpu = cpu_seconds([process]), cpu_seconds(children)
        first = asyncio.run(produce(bootstrap, TOPIC, values))
        produced = time.time() - first
        done = wait_files(live, 1 + count // WINDOW, 600)
        cpu_bridge = cpu_seconds([process]) - cpu[0]
        cpu_children = cpu_seconds(children) - cpu[1]
        last = max(p.stat().st_mtime for p in done)
        checked = check(done[1:], count, "r")
        # Backlog: the same records on a topic no monitor reads yet, then a monitor for them.
        create_topics(bootstrap, ["backlog-predictions"])
        asyncio.run(produce(bootstrap, "backlog-predictions", values))
        custom.create_namespaced_custom_object(
            "fairpilot.io", "v1alpha1", "default", "modelmonitors",
            monitor("backlog", topic="backlog-predictions"),
        )  # fmt: skip
        backlog_files = wait_files(
            records_folder(artifacts, custom, "backlog"), count // WINDOW, 600
        )
        times = sorted(p.stat().st_mtime for p in backlog_files)
        rss = process.memory_info().rss
    return {
        "records": count,
        "windowRecords": WINDOW,
        "live": {
            "producingSeconds": round(produced, 2),
            "producedPerSecond": rate(count, produced),
            "windows": len(done) - 1,
            "firstSendToLastWindowSeconds": round(last - first, 2),
            "recordsPerSecond": rate(count, last - first),
            "cpuMsPer1000Records": {
                "operatorAndBridge": round(1e6 * cpu_bridge / count, 1),
                "emulatorAndBroker": round(1e6 * cpu_children / count, 1),
            },
            "check": checked,
        },
        "backlog": {
            "windows": len(backlog_files),
            "firstToLastWindowSeconds": round(times[-1] - times[0], 2),
            "recordsPerSecond": rate(WINDOW * (len(times) - 1), times[-1] - times[0]),
        },
        "sandboxProcessRssMiB": round(rss / 2**20, 1),
    }


def check(done: list[Path], count: int, prefix: str) -> str:
    """Every record in a window, once, in order; names as the bridge writes them."""
    seen = [json.loads(line)["record_id"] for p in done for line in p.read_text().splitlines()]
    assert seen == [f"{prefix}-{i}" for i in range(count // WINDOW * WINDOW)], "records differ"
    return f"{len(seen)} records in {len(done)} windows, each once, in offset order"


# -- the anchor: a plain consumer ---------------------------------------------------------------
ANCHOR = """
import asyncio, json, sys, time
from aiokafka import AIOKafkaConsumer
from fairpilot.artifacts import ArtifactStore
from fairpilot.bridge.windows import window_name

async def main(bootstrap, topic, out, count, window):
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="anchor-" + topic,
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=2000,
        session_timeout_ms=2000, heartbeat_interval_ms=300, max_poll_interval_ms=5000,
        fetch_max_wait_ms=100)
    await consumer.start()
    store, got, held = ArtifactStore("file://" + out), 0, []
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        print("ready", flush=True)
        while got < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, items in batches.items():
                for record in items:
                    data = json.loads(record.value)
                    row = dict(data["features"])
                    row["record_id"] = data["record_id"]
                    row["timestamp"] = data["timestamp"]
                    row["prediction"] = data["prediction"]
                    held.append((record.offset, json.dumps(row, ensure_ascii=False,
                                                           separators=(",", ":"))))
                    got += 1
                    if len(held) == window:
                        name = window_name(topic, tp.partition, held[0][0], held[-1][0])
                        store.write_bytes(name, ("\\n".join(l for _, l in held) + "\\n").encode())
                        await consumer.commit({tp: held[-1][0] + 1})
                        held = []
    finally:
        await consumer.stop()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
"""


def anchor(count: int) -> dict[str, Any]:
    from fairpilot.sandbox.kafka import running_broker

    values = records(rows(count), "r")
    with tempfile.TemporaryDirectory(prefix="bench-anchor-") as tmp, running_broker() as bootstrap:
        create_topics(bootstrap, ["anchor-live", "anchor-backlog"])

        def start(topic: str, out: Path) -> subprocess.Popen[str]:
            out.mkdir()
            return subprocess.Popen(
                [sys.executable, "-c", ANCHOR, bootstrap, topic, str(out), str(count),
                 str(WINDOW)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip

        live = Path(tmp, "live")
        worker = start("anchor-live", live)
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        ps = psutil.Process(worker.pid)
        cpu = cpu_seconds([ps])
        first = asyncio.run(produce(bootstrap, "anchor-live", values))
        produced = time.time() - first
        done = wait_files(live, count // WINDOW, 600)
        cpu_anchor = cpu_seconds([ps]) - cpu
        worker.wait(60)
        last = max(p.stat().st_mtime for p in done)
        checked = check(done, count, "r")
        assert done[0].name == window_name("anchor-live", 0, 0, WINDOW - 1)
        asyncio.run(produce(bootstrap, "anchor-backlog", values))
        backlog = Path(tmp, "backlog")
        worker = start("anchor-backlog", backlog)
        backlog_files = wait_files(backlog, count // WINDOW, 600)
        worker.wait(60)
        times = sorted(p.stat().st_mtime for p in backlog_files)
    return {
        "records": count,
        "live": {
            "producingSeconds": round(produced, 2),
            "firstSendToLastWindowSeconds": round(last - first, 2),
            "recordsPerSecond": rate(count, last - first),
            "cpuMsPer1000Records": round(1e6 * cpu_anchor / count, 1),
            "check": checked,
        },
        "backlog": {
            "windows": len(backlog_files),
            "firstToLastWindowSeconds": round(times[-1] - times[0], 2),
            "recordsPerSecond": rate(WINDOW * (len(times) - 1), times[-1] - times[0]),
        },
    }


# -- window -> alert ----------------------------------------------------------------------------
def latency(windows: int) -> dict[str, Any]:
    from fairpilot.datasets import export_adult
    from fairpilot.runs import records_uri
    from fairpilot.sandbox.app import Sandbox
    from fairpilot.sandbox.testing import by_name, resource, wait_for
    from fairpilot.sandbox.testing import produce as send

    with tempfile.TemporaryDirectory(prefix="bench-monitor-alert-") as tmp:
        data = export_adult(Path(tmp) / "data")
        with Sandbox(Path(tmp) / "artifacts") as sandbox:
            assert sandbox.kafka is not None
            sandbox.apply([
                resource("Dataset", "adult", {"uri": f"file://{data['train']}", "userId": USER,
                                              "target": "income", "sensitiveFeatures": ["sex"]}),
                resource("TrainingRun", "income", {
                    "datasetRef": "adult", "target": "income", "userId": USER,
                    "timeLimitSeconds": 15, "modelId": MODEL,
                }),
            ])  # fmt: skip
            wait_for(sandbox, "income", lambda s: s.get("phase") == "Succeeded", 600)
            sandbox.apply([monitor("alerts", run="income")])
            wait_for(sandbox, "alerts", lambda s: s.get("lastCheckedAt"), 60)
            folder = Path(records_uri(sandbox.config, by_name(sandbox)["alerts"])[7:])
            measured = []
            for number in range(1, windows + 1):
                batch = records(rows(WINDOW, shift=20, seed=100 + number), f"w{number}")
                send(sandbox.kafka, [("prediction-events", json.loads(v)) for v in batch],
                     pipelined=True)  # fmt: skip
                [written] = wait_files(folder, number, 120)[number - 1 :]
                at = written.stat().st_mtime
                started = ended = None
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    status = by_name(sandbox)["alerts"].get("status") or {}
                    if status.get("window") == number and started is None:
                        started = time.time()
                    last = (status.get("windows") or [{}])[-1]
                    if (
                        status.get("window") == number
                        and status.get("phase") == "Succeeded"
                        and last.get("window") == number
                        and "DriftDetected" in (last.get("alerts") or [])
                    ):
                        ended = time.time()
                        break
                    time.sleep(0.1)
                assert started is not None and ended is not None, f"window {number}: {status}"
                measured.append((started - at, ended - at))
                print(f"window {number}: started {started - at:.1f} s, alert "
                      f"{ended - at:.1f} s after its file", flush=True)  # fmt: skip
    return {
        "windows": windows,
        "windowRecords": WINDOW,
        "fileToJobStartSeconds": percentiles([s for s, _ in measured]),
        "fileToAlertSeconds": percentiles([e for _, e in measured]),
        "jobSeconds": percentiles([e - s for s, e in measured]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/monitor-kafka.json"))
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": describe("aiokafka", "kopf", "autogluon.tabular")}
    # The machine may be shared: how busy it was as the run began (and, below, as it ended).
    result["machine"]["loadAverageAtStart"] = [round(x, 2) for x in os.getloadavg()]
    print("anchor: a plain consumer", flush=True)
    result["anchor"] = anchor(args.count)
    print(json.dumps(result["anchor"], indent=2), flush=True)
    print("the bridge", flush=True)
    result["bridge"] = bridge(args.count)
    print(json.dumps(result["bridge"], indent=2), flush=True)
    print("window -> alert", flush=True)
    result["latency"] = latency(args.windows)
    print(json.dumps(result["latency"], indent=2), flush=True)
    result["machine"]["loadAverageAtEnd"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
