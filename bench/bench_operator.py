"""The operator under load in the sandbox: 500 Datasets with a no-op job command.

`fairpilot sandbox up --noop-jobs` runs in its own process (the operator and the local Job
runner; the API emulator is its child), so that this script's own work does not slow the
operator down and the operator's memory can be read apart from the emulator's. This script
creates the Datasets through the API and watches Jobs and Datasets with two watch streams:

- creation -> Job: from the create call's return to the Job's ADDED event;
- Job done -> status: from the Job's MODIFIED event that marks it Complete to the Dataset's
  MODIFIED event with phase Succeeded (both seen by the same kind of watch, so the watch's
  own delay cancels out).

Arrival patterns, each on a fresh sandbox: a burst (every create as fast as one client sends
them, so latency is mostly queueing behind the burst) and steady rates.

    python bench/bench_operator.py [--count 500] [--rates 25 50] [--out bench/results/operator.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes.watch
import numpy as np
import psutil
from harness import describe

from fairpilot.cluster import release

GROUP, VERSION, NAMESPACE = "fairpilot.io", "v1alpha1", "default"


@contextlib.contextmanager
def sandbox_up(artifacts: Path, *options: str) -> Iterator[tuple[str, psutil.Process]]:
    """`fairpilot sandbox up --noop-jobs` in a process of its own: its API URL and process."""
    command = [
        str(Path(sys.executable).parent / "fairpilot"), "sandbox", "up", "--noop-jobs",
        "--parallelism", "4", "--artifacts", str(artifacts), *options,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if line.startswith("API server:"):
                url = line.split(":", 1)[1].strip()
            if line.startswith("ready"):
                break
        if not url:
            raise RuntimeError("fairpilot sandbox up did not start")
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(30)


class Observer:
    """Two watch streams; records when each resource's events were first seen."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.resource_seen: dict[str, float] = {}  # the Dataset's first event (ADDED)
        self.job_created: dict[str, float] = {}
        self.job_done: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self._batch = kubernetes.client.BatchV1Api(client)
        self._custom = kubernetes.client.CustomObjectsApi(client)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch_jobs, daemon=True),
            threading.Thread(target=self._watch_datasets, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _stream(self, func: Any, *args: Any) -> Iterator[dict[str, Any]]:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # idle timeouts: watch again
                yield from kubernetes.watch.Watch().stream(
                    func, *args, deserialize=False, _request_timeout=(5, 2)
                )

    def _watch_jobs(self) -> None:
        for event in self._stream(self._batch.list_namespaced_job, NAMESPACE):
            job, seen = event["object"], time.monotonic()
            owner = job["metadata"]["labels"]["fairpilot.io/name"]
            self.job_created.setdefault(owner, seen)
            if (job.get("status") or {}).get("succeeded"):
                self.job_done.setdefault(owner, seen)

    def _watch_datasets(self) -> None:
        for event in self._stream(
            self._custom.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, "datasets"
        ):
            item, seen = event["object"], time.monotonic()
            self.resource_seen.setdefault(item["metadata"]["name"], seen)
            if (item.get("status") or {}).get("phase") == "Succeeded":
                self.succeeded.setdefault(item["metadata"]["name"], seen)

    def stop(self) -> None:
        self._stop.set()


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def percentiles(values: list[float]) -> dict[str, float]:
    array = np.array(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 4),
        "p99": round(float(np.percentile(array, 99)), 4),
        "max": round(float(array.max()), 4),
    }


def scenario(count: int, rate: float | None, timeout: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp,
        sandbox_up(Path(tmp)) as (url, operator),
    ):
        config = kubernetes.client.Configuration()
        config.host = url
        client = kubernetes.client.ApiClient(config)
        custom = kubernetes.client.CustomObjectsApi(client)
        observer = Observer(client)
        time.sleep(1)  # both watches established
        rss_idle = operator.memory_info().rss
        emulator = operator.children()  # the API emulator (and the broker): not the operator
        cpu_before = cpu_seconds([operator]), cpu_seconds(emulator)
        created: dict[str, float] = {}
        began = time.monotonic()
        for i in range(count):
            if rate:
                # steady arrivals: the i-th create is due at i / rate
                time.sleep(max(0.0, began + i / rate - time.monotonic()))
            name = f"ds-{i:04d}"
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Dataset",
                "metadata": {"name": name},
                "spec": {"uri": f"file://{tmp}/{name}.csv"},
            }
            release(
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "datasets", body, _preload_content=False
                )
            )
            created[name] = time.monotonic()
        creating = time.monotonic() - began
        deadline = time.monotonic() + timeout
        while len(observer.succeeded) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        total = time.monotonic() - began
        rss_done = operator.memory_info().rss
        cpu_operator = cpu_seconds([operator]) - cpu_before[0]
        cpu_emulator = cpu_seconds(emulator) - cpu_before[1]
        emulator_rss = sum(child.memory_info().rss for child in operator.children(recursive=True))
        observer.stop()
    to_job = [observer.job_created[n] - created[n] for n in created if n in observer.job_created]
    to_status = [
        observer.succeeded[n] - observer.job_done[n]
        for n in created
        if n in observer.succeeded and n in observer.job_done
    ]
    return {
        "arrivals": f"steady {rate:g}/s" if rate else "burst",
        "creating_seconds": round(creating, 2),
        "all_succeeded_seconds": round(total, 2),
        "completed": len(observer.succeeded),
        "creationToJobSeconds": percentiles(to_job),
        "jobDoneToStatusSeconds": percentiles(to_status),
        "operatorRssMiB": {
            "idle": round(rss_idle / 2**20, 1),
            "afterAll": round(rss_done / 2**20, 1),
        },
        "emulatorAndBrokerRssMiB": round(emulator_rss / 2**20, 1),
        # CPU per resource: what one resource costs, whatever else shares the machine
        "cpuMsPerResource": {
            "operator": round(1000 * cpu_operator / count, 1),
            "emulatorAndBroker": round(1000 * cpu_emulator / count, 1),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument(
        "--rates",
        type=float,
        nargs="*",
        default=[25, 50],
        help="steady arrival rates to run, per second (default: 25 50), after the burst",
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, default=Path("bench/results/operator.json"))
    args = parser.parse_args()
    runs = [scenario(args.count, rate, args.timeout) for rate in [None, *args.rates]]
    figures = {
        "machine": describe("kopf", "kmock", "kubernetes"),
        "resources": args.count,
        "runs": runs,
        "targets": {"p99": "< 1 s for both latencies", "memory": "< 200 MB (operator)"},
        "note": (
            "operatorRssMiB and cpuMsPerResource.operator: the `fairpilot sandbox up` process "
            "(Kopf operator and the local Job runner in no-op mode); the API emulator and the "
            "Kafka broker are its child processes; everything, this client included, shares "
            "the machine's cores"
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(runs, indent=2))
    return 0 if all(run["completed"] == args.count for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
