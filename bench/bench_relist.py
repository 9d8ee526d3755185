"""What a re-listing of finished work costs the operator, with and without what makes it cheap.

Kopf lists every watched object once, then watches; it lists everything again only after a
watch is answered 410 Expired, which on a cluster happens when the API server restarts (its
watch cache starts at the current revision, so every client's version is too old) or after a
disconnect longer than the API server's history. Each listed object is passed to the event
handlers as if it were new. Two mechanisms skip what such a listing brings that is not new:
`controller/seen.py` (a Job version the operator has acted on does not reconcile its owner
again) and the outbox's settled versions (`outbox.py`: a resource version whose round had
nothing to deliver gets no new round). The anchor, in the same run, is the operator without
them: a SeenVersions that remembers nothing and outboxes with `remember_settled=False`.

For each mode, on a fresh sandbox (the operator in this process, no-op Jobs, a Kafka broker so
that the outbox runs, the API emulator's audit log): N Datasets are applied, all ended
(Succeeded, or Failed: see `finished`) with their status events delivered, and the operator
quiet; then the API server restarts (`Sandbox.restart_api_server`: objects kept, every watch
ends, every older version 410) and for the next `--window` seconds (longer while the operator
is still busy) the figures are the API requests by client and by verb and resource (watches
left out), the operator's reconciliations (`fairpilot_reconciliations_total`), the outbox's
rounds (calls of its sink's `pending`, one per round), and the CPU seconds of this process (the
operator, and the runner's constant background) and of the API server's. The Kafka topics are
read before and after: no event may be sent again.

    python bench/bench_relist.py [--resources 300] [--window 30] [--out bench/results/relist.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from harness import describe
from prometheus_client import REGISTRY

from fairpilot.api.kinds import KINDS, Kind
from fairpilot.controller.seen import SeenVersions
from fairpilot.outbox import Delivery, Sink
from fairpilot.sandbox.app import TERMINAL, Sandbox
from fairpilot.sandbox.kafka import SEED_TOPICS
from fairpilot.sandbox.testing import STATUS, eventually, read, resource

SANDBOX_AGENT, RUNNER_AGENT = "fairpilot-sandbox/", "fairpilot-sandbox-runner/"
QUIET_SECONDS = 5.0  # no operator request for this long: it is done with the re-listing


class Forgetful(SeenVersions):
    """The anchor: no Job version is remembered, so every listed Job is news."""

    def handled(self, body: Any) -> None:
        pass


class CountedSink:
    """A sink as it is, its rounds counted: the outbox asks `pending` once per round."""

    def __init__(self, sink: Sink) -> None:
        self.sink, self.name = sink, sink.name
        self.rounds = 0
        self._lock = threading.Lock()  # the outbox calls `pending` in its pool's threads

    def pending(self, kind: Kind, resource: dict[str, Any], done: set[str]) -> list[Delivery]:
        with self._lock:
            self.rounds += 1
        return self.sink.pending(kind, resource, done)

    async def deliver(self, delivery: Delivery) -> None:
        await self.sink.deliver(delivery)


def reconciliations() -> dict[str, float]:
    """fairpilot_reconciliations_total by kind (process-wide: the runs take differences)."""
    found: dict[str, float] = {}
    for kind in KINDS:
        for outcome in ("ok", "error"):
            labels = {"kind": kind.kind, "outcome": outcome}
            value = REGISTRY.get_sample_value("fairpilot_reconciliations_total", labels) or 0.0
            found[kind.kind] = found.get(kind.kind, 0.0) + value
    return found


class Audit:
    """The emulator's audit log, read on from where the last read ended."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def since_mark(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line]


def client(event: dict[str, Any]) -> str:
    agent = event.get("userAgent") or ""
    if agent.startswith(RUNNER_AGENT):
        return "runner"
    return "benchmark" if agent.startswith(SANDBOX_AGENT) else "operator"


def when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["stageTimestamp"]).timestamp()


def finished(item: dict[str, Any]) -> bool:
    """Ended, and the status event of its end recorded as sent (`status/<run>/<phase>`).

    Succeeded or Failed alike: a re-listing costs the same for both (reconcile() returns at
    once for a finished resource with no inputs), and a no-op Job's result is only as valid as
    the sandbox's runner makes it (`phasesBefore` in the figures says how they ended).
    """
    status = item.get("status") or {}
    phase = status.get("phase")
    sent = (status.get("delivered") or {}).get("kafka") or []
    return phase in TERMINAL and any(each.endswith(f"/{phase}") for each in sent)


def phases(sandbox: Sandbox) -> Counter[str]:
    return Counter((item.get("status") or {}).get("phase") for item in sandbox.resources())


def all_done(sandbox: Sandbox, count: int) -> bool:
    items = [item for item in sandbox.resources() if item["kind"] == "Dataset"]
    return len(items) == count and all(finished(item) for item in items)


def quiet(audit: Audit, seconds: float, timeout: float) -> list[dict[str, Any]]:
    """Wait until no operator request came for `seconds`; what came meanwhile (from anyone
    but the benchmark). Not the runner's: its idle watch ends and re-lists every few seconds."""
    seen: list[dict[str, Any]] = []
    deadline, last = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() - last < seconds:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the operator was not quiet within {timeout} s")
        time.sleep(0.5)
        new = [e for e in audit.since_mark() if e["verb"] != "watch" and client(e) != "benchmark"]
        seen += new
        if any(client(e) == "operator" for e in new):
            last = time.monotonic()
    return seen


def topics_read(sandbox: Sandbox) -> Counter[str]:
    assert sandbox.kafka is not None
    records = read(sandbox.kafka, [*SEED_TOPICS, STATUS], settle=1.5)
    return Counter(record.value.decode() for record in records)


def run(count: int, window: float, anchor: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"jobs_seen": Forgetful()} if anchor else {}
    with tempfile.TemporaryDirectory() as tmp:
        log, artifacts = Path(tmp) / "audit.jsonl", Path(tmp) / "artifacts"
        with Sandbox(artifacts, noop_jobs=True, kafka=True, audit_log=log, **options) as sb:
            bridge = sb.bridge
            assert bridge is not None
            # The outboxes exist once Kopf's startup handler has started the bridge.
            if not eventually(lambda: bridge.outboxes, 60):
                raise RuntimeError("the bridge did not start")
            sinks = []
            for outbox in bridge.outboxes:
                sink = CountedSink(outbox.sink)
                outbox.sink = sink
                outbox.remember_settled = not anchor
                sinks.append(sink)
            started = time.monotonic()
            sb.apply(
                resource("Dataset", f"d{n:04d}", {"uri": "file:///unused.csv"})
                for n in range(count)
            )
            deadline = time.monotonic() + 60 + count
            while not all_done(sb, count):  # once a second: each look lists every resource
                if time.monotonic() > deadline:
                    raise RuntimeError("not every Dataset ended and was delivered in time")
                time.sleep(1)
            ended = time.monotonic() - started
            phases_before = phases(sb)
            audit = Audit(log)
            quiet(audit, QUIET_SECONDS, 120)
            sent_before = topics_read(sb)
            audit.since_mark()  # the topics' reading is not part of the re-listing
            before, rounds_before = reconciliations(), sum(s.rounds for s in sinks)
            server = psutil.Process(sb.url.child.pid)
            cpu, server_cpu = time.process_time(), sum(server.cpu_times()[:2])
            restarted = time.time()
            sb.restart_api_server()
            # At least `window` seconds; longer while the operator is still at it, so that the
            # anchor's figures are not cut short on a slow machine.
            time.sleep(window)
            events = audit.since_mark()
            events += quiet(audit, QUIET_SECONDS, 30 * window)
            measured = time.time() - restarted
            cpu, server_cpu = time.process_time() - cpu, sum(server.cpu_times()[:2]) - server_cpu
            after, rounds = reconciliations(), sum(s.rounds for s in sinks) - rounds_before
            sent_after = topics_read(sb)
            phases_after = phases(sb)
    requests: Counter[str] = Counter()
    clients: Counter[str] = Counter()
    watches: Counter[str] = Counter()
    operator_times = []
    for event in events:
        ref = event.get("objectRef") or {}
        what = f"{event['verb']} {ref.get('resource', '')}"
        what += f"/{ref['subresource']}" if ref.get("subresource") else ""
        who = client(event)
        if event["verb"] == "watch":
            # The ended watches' resumptions (their 410 is in the stream), then the new ones.
            watches[f"{who}: {ref.get('resource', '')}"] += 1
            continue
        requests[f"{who}: {what}"] += 1
        clients[who] += 1
        if who == "operator":
            operator_times.append(when(event) - restarted)
    relists = [
        when(e) - restarted
        for e in events
        if client(e) == "operator" and e["verb"] == "list" and
        (e.get("objectRef") or {}).get("resource") == "datasets"
    ]  # fmt: skip
    again = sum((sent_after - sent_before).values())
    return {
        "mode": "anchor: no SeenVersions, no settled versions" if anchor else "as it is",
        "resources": count,
        "allEndedSeconds": round(ended, 1),
        "phasesBefore": dict(phases_before),
        "measuredSeconds": round(measured, 1),
        "operatorRelistedAfterSeconds": round(min(relists), 2) if relists else None,
        "operatorLastRequestAfterSeconds": round(max(operator_times), 2)
        if operator_times
        else None,
        "operatorRequests": clients["operator"],
        "runnerRequests": clients["runner"],
        "reconciliations": int(sum(after.values()) - sum(before.values())),
        "reconciliationsByKind": {
            kind: int(after[kind] - before[kind]) for kind in after if after[kind] != before[kind]
        },
        "outboxRounds": rounds,
        "processCpuSeconds": round(cpu, 2),
        "apiServerCpuSeconds": round(server_cpu, 2),
        "eventsSentAgain": again,
        "phasesAfter": dict(phases_after),
        "requests": dict(requests.most_common()),
        "watches": dict(watches.most_common()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=300)
    parser.add_argument("--window", type=float, default=30.0, help="seconds after the restart")
    parser.add_argument("--out", type=Path, default=Path("bench/results/relist.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    current = run(args.resources, args.window, anchor=False)
    anchor = run(args.resources, args.window, anchor=True)
    ratios = {
        figure: round(anchor[figure] / max(1, current[figure]), 1)
        for figure in ("operatorRequests", "reconciliations", "outboxRounds")
    }
    result = {
        "machine": describe("kopf", "kmock"),
        "resources": args.resources,
        "ratios": ratios,
        "runs": [current, anchor],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for each in (current, anchor):
        print(f"{each['mode']}: {each['operatorRequests']} operator requests, "
              f"{each['reconciliations']} reconciliations, {each['outboxRounds']} outbox rounds "
              f"in {each['measuredSeconds']} s after the restart (re-listed after "
              f"{each['operatorRelistedAfterSeconds']} s); CPU: {each['processCpuSeconds']} s "
              f"here, {each['apiServerCpuSeconds']} s API server; {each['eventsSentAgain']} "
              f"events sent again")  # fmt: skip
    print(f"{args.resources} finished Datasets, re-listed once: without the mechanisms "
          f"{ratios['operatorRequests']}x the operator's requests, "
          f"{ratios['reconciliations']}x the reconciliations, "
          f"{ratios['outboxRounds']}x the outbox rounds")  # fmt: skip
    # Nothing may change: no event sent twice, every resource still where it ended.
    bad = [e for e in (current, anchor) if e["eventsSentAgain"] or e["phasesAfter"] != e[
        "phasesBefore"]]  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
