"""The operator under load in the sandbox: 500 Datasets with a no-op job command.

Measures, per resource, the latency from its creation (when the create call returned) to
its Job's creation, and from the Job's completion (when the runner marked it complete) to
the resource's status showing Succeeded; and the process's memory when all are done. The
sandbox runs the API emulator, the real Kopf operator and the runner in this one process, so
the memory figure is an upper bound on the operator's.

    python bench/bench_operator.py [--count 500] [--out bench/results/operator.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from harness import describe

from fairpilot.sandbox.app import Sandbox


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, default=Path("bench/results/operator.json"))
    args = parser.parse_args()
    process = psutil.Process()
    rss_before = process.memory_info().rss

    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp,
        Sandbox(Path(tmp), noop_jobs=True, parallelism=4) as sandbox,
    ):
        created: dict[str, float] = {}
        for i in range(args.count):
            name = f"ds-{i:04d}"
            sandbox.apply(
                [
                    {
                        "apiVersion": "fairpilot.io/v1alpha1",
                        "kind": "Dataset",
                        "metadata": {"name": name},
                        "spec": {"uri": f"file://{tmp}/{name}.csv"},
                    }
                ]
            )
            created[name] = time.monotonic()
        job_seen: dict[str, float] = {}
        status_seen: dict[str, float] = {}
        deadline = time.monotonic() + args.timeout
        while len(status_seen) < args.count and time.monotonic() < deadline:
            now = time.monotonic()
            for job in sandbox.cluster.batch.list_namespaced_job("default").items:
                owner = job.metadata.labels.get("fairpilot.io/name")
                job_seen.setdefault(owner, now)
            for item in sandbox.resources():
                if (item.get("status") or {}).get("phase") == "Succeeded":
                    status_seen.setdefault(item["metadata"]["name"], now)
            time.sleep(0.25)
        finished = {
            name.removeprefix("fp-profile-").removesuffix("-g1"): t
            for name, t in sandbox.runner.finished_at.items()
        }
        rss_after = process.memory_info().rss

    to_job = np.array([job_seen[n] - created[n] for n in created if n in job_seen])
    to_status = np.array(
        [status_seen[n] - finished[n] for n in created if n in status_seen and n in finished]
    )
    figures = {
        "machine": describe("kopf", "kmock", "kubernetes"),
        "resources": args.count,
        "completed": len(status_seen),
        "creationToJobSeconds": {
            "p50": float(np.percentile(to_job, 50)),
            "p99": float(np.percentile(to_job, 99)),
            "max": float(to_job.max()),
        },
        "jobDoneToStatusSeconds": {
            "p50": float(np.percentile(to_status, 50)),
            "p99": float(np.percentile(to_status, 99)),
            "max": float(to_status.max()),
        },
        "processRssMiB": {
            "before": round(rss_before / 2**20, 1),
            "after": round(rss_after / 2**20, 1),
        },
        "targets": {"p99": "< 1 s for both", "memory": "< 200 MB"},
        "note": (
            "latencies include the 250 ms polling of this script; RSS is the whole sandbox "
            "process (emulator, operator, runner)"
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: figures[k]
                for k in (
                    "completed",
                    "creationToJobSeconds",
                    "jobDoneToStatusSeconds",
                    "processRssMiB",
                )
            },
            indent=2,
        )
    )
    return 0 if len(status_seen) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
