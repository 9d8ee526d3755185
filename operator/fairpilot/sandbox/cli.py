"""`fairpilot sandbox run DIR`: apply manifests in the sandbox and follow them to the end."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from fairpilot.sandbox.app import Sandbox, documents, summary

SYMBOLS = {"Pending": "…", "Running": "▶", "Succeeded": "✔", "Failed": "✘"}


def run(directory: Path, artifacts: Path, timeout: float, output_json: Path | None) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    items = documents(directory)
    if not items:
        print(f"no manifests in {directory}", file=sys.stderr)
        return 2
    started = time.monotonic()
    tty = sys.stdout.isatty()

    def show(key: tuple[str, str], status: dict[str, Any]) -> None:
        phase = status.get("phase") or "Pending"
        elapsed = time.monotonic() - started
        symbol, message = SYMBOLS.get(phase, "?"), status.get("message") or ""
        line = f"[{elapsed:6.1f}s] {symbol} {key[0]:<13} {key[1]:<28} {phase:<10} {message}"
        print(line if not tty else f"\033[1m{line[:10]}\033[0m{line[10:]}", flush=True)

    with Sandbox(artifacts) as sandbox:
        for kind, name in sandbox.apply(items):
            print(f"applied {kind}/{name}", flush=True)
        done = sandbox.wait(timeout, on_change=show)
        final = summary(sandbox.resources())
    if output_json:
        output_json.write_text(json.dumps(final, indent=2) + "\n")
    failed = [f"{r['kind']}/{r['name']}" for r in final if r["status"].get("phase") != "Succeeded"]
    stopped = [
        f"{r['kind']}/{r['name']}: {r['status'].get('pipelineMessage')}"
        for r in final
        if r["status"].get("pipeline") in ("Stopped", "Failed")
    ]
    reports = sorted({uri for r in final for uri in (r["status"].get("reports") or {}).values()})
    print(f"\n{len(final)} resources in {time.monotonic() - started:.0f} s", flush=True)
    for uri in reports:
        print(f"  report: {uri}")
    if not done:
        print(
            f"timed out after {timeout:.0f} s; not finished: {', '.join(failed)}", file=sys.stderr
        )
        return 1
    if failed or stopped:
        print(f"not succeeded: {', '.join(failed + stopped)}", file=sys.stderr)
        return 1
    return 0
