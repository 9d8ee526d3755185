"""What a stage waiting for another costs the API server, and how soon it starts after.

Every trigger message applies a Dataset and a BiasAnalysis together, so the analysis waits
while the Dataset's profile Job runs (seconds to minutes on a cluster; a TrainingRun's wait for
a Dataset, or an Explanation's for a TrainingRun, can last as long as training). The operator
records the wait once, retries with a growing delay (2, 4, 8, then every 15 s) and is woken
when the Dataset ends. The anchor, in the same run, is polling: a retry every 2 s and no
wake-up (the operator before this change, but for its skipping of unchanged status writes).

For each wait length, on a fresh sandbox (operator in this process, no-op jobs, the API
emulator's audit log): the Dataset's Job is held for that long, then let go; the figures are
the API requests about the two resources during the whole run, the status writes and Kopf's
retry lines among them, and the time from the Job's end to the analysis's Job starting.

    python bench/bench_waiting.py [--waits 30 120] [--out bench/results/waiting.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import describe

from fairpilot.backoff import Backoff
from fairpilot.controller.runtime import Retry
from fairpilot.controller.waiters import Waiters
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.testing import resource, wait_for

ANALYSIS = {"datasetRef": "census", "target": "income", "sensitiveFeatures": ["sex"]}


class NoWakeUps(Waiters):
    """The anchor: nobody is woken; every wait ends at a retry."""

    def add(self, upstream: Any, dependent: Any, since: int) -> bool:
        return True

    def release(self, upstream: Any) -> set[Any]:
        return set()


def operator_options(anchor: bool) -> dict[str, Any]:
    """The anchor: no wake-ups, and a waiting resource retried every 2 s (a poll)."""
    if not anchor:
        return {}
    return {"waiters": NoWakeUps(), "retry": Retry(waiting=Backoff(first=2.0, limit=2.0))}


class Retries(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "failed temporarily" in record.getMessage()


def run(wait: float, anchor: bool) -> dict[str, Any]:
    retries = Retries()
    logging.getLogger("kopf.objects").addHandler(retries)
    options = operator_options(anchor)
    with tempfile.TemporaryDirectory() as tmp:
        audit, artifacts = Path(tmp) / "audit.jsonl", Path(tmp) / "artifacts"
        with Sandbox(artifacts, noop_jobs=True, kafka=False, audit_log=audit, **options) as sb:
            with sb.runner.held():
                sb.apply(
                    [
                        resource("Dataset", "census", {"uri": "file:///unused.csv"}),
                        resource("BiasAnalysis", "fair", ANALYSIS),
                    ]
                )
                time.sleep(wait)
                released = time.monotonic()
            wait_for(sb, "fair", lambda s: s.get("jobName") is not None, wait + 60)
            started = time.monotonic() - released
            wait_for(sb, "fair", lambda s: s.get("phase") == "Succeeded", 60)
            time.sleep(1)
        lines = audit.read_text().splitlines()
    logging.getLogger("kopf.objects").removeHandler(retries)
    requests: Counter[str] = Counter()
    for line in lines:
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if event["verb"] != "watch" and ref.get("name") in ("census", "fair"):
            requests[f"{event['verb']} {ref['resource']}/{ref.get('subresource') or ''}"] += 1
    return {
        "mode": "polling every 2 s (anchor)" if anchor else "backoff + wake-up",
        "waitSeconds": wait,
        "apiRequests": sum(requests.values()),
        "statusWrites": requests["patch biasanalyses/status"],
        "kopfRetries": retries.count,
        "startedAfterUpstreamSeconds": round(started, 2),
        "requests": dict(requests.most_common()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=float, nargs="+", default=[30.0, 120.0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/waiting.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = []
    for wait in args.waits:
        anchor, current = run(wait, anchor=True), run(wait, anchor=False)
        ratio = round(anchor["apiRequests"] / max(1, current["apiRequests"]), 1)
        runs.append({"waitSeconds": wait, "requestsRatio": ratio, "runs": [anchor, current]})
        print(f"{wait:.0f} s wait: {anchor['apiRequests']} requests polling, "
              f"{current['apiRequests']} now ({ratio}x fewer); started "
              f"{anchor['startedAfterUpstreamSeconds']} s vs "
              f"{current['startedAfterUpstreamSeconds']} s after the Dataset ended")  # fmt: skip
    result = {"machine": describe("kopf"), "results": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
