"""`fairpilot sandbox run DIR`: apply manifests in the sandbox and follow them to the end.

Progress: on a terminal, a table redrawn in place (one row per resource, a header with the
elapsed time and the count per phase); otherwise one plain line per status change, so that logs
and CI output stay greppable. At the end, on stderr, each resource that did not succeed and
each pipeline that stopped, with its whole reason (the table cuts it to the terminal's width).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from fairpilot.api.kinds import BY_KIND
from fairpilot.conditions import condition_of
from fairpilot.sandbox.app import Sandbox, documents, summary
from fairpilot.sandbox.containers import ContainersUnavailable

SYMBOLS = {"Pending": "…", "Running": "▶", "Succeeded": "✔", "Failed": "✘"}
PHASES = tuple(SYMBOLS)  # header order
TERMINAL = ("Succeeded", "Failed")
# Cursor to column 1 of the line N above, and clear to the end of the screen / of the line.
UP, CLEAR_BELOW, CLEAR_LINE = "\033[{}F", "\033[J", "\033[2K"
HIDE_CURSOR, SHOW_CURSOR = "\033[?25l", "\033[?25h"

Key = tuple[str, str]


@dataclass
class Row:
    kind: str
    name: str
    phase: str
    message: str
    first_seen: float  # time.monotonic()
    finished: float | None = None  # when it reached a terminal phase: its elapsed time stops

    def elapsed(self, now: float) -> float:
        return (self.finished or now) - self.first_seen


def plain_line(key: Key, status: dict[str, Any], elapsed: float) -> str:
    """One status change, as printed when stdout is not a terminal."""
    phase = status.get("phase") or "Pending"
    symbol, message = SYMBOLS.get(phase, "?"), status.get("message") or ""
    return f"[{elapsed:6.1f}s] {symbol} {key[0]:<13} {key[1]:<28} {phase:<10} {message}"


def render(
    rows: Sequence[Row], width: int, now: float, started: float, height: int | None = None
) -> list[str]:
    """The live table: a header, then one row per resource in the order they appeared.

    Every line is shorter than `width` (a line that wraps would break the cursor arithmetic of
    the redraw); with `height`, rows that do not fit are summed up in a last line.
    """
    counts = {phase: 0 for phase in PHASES}
    for row in rows:
        counts[row.phase] = counts.get(row.phase, 0) + 1
    tally = ", ".join(f"{n} {phase}" for phase, n in counts.items() if n)
    noun = "resource" if len(rows) == 1 else "resources"
    lines = [f"[{now - started:6.1f}s] {len(rows)} {noun}" + (f": {tally}" if tally else "")]
    ordered = sorted(rows, key=lambda r: r.first_seen)
    if height is not None and len(ordered) + 1 > height:
        shown = max(0, height - 2)
        hidden = ordered[shown:]
        ordered = ordered[:shown]
    else:
        hidden = []
    # Columns as wide as their longest entry: on a narrow terminal the message keeps the room.
    kind_width = max((len(row.kind) for row in ordered), default=0)
    name_width = max((len(row.name) for row in ordered), default=0)
    for row in ordered:
        message = " ".join(row.message.split())  # a newline would break the table too
        lines.append(
            f"{SYMBOLS.get(row.phase, '?')} {row.kind:<{kind_width}} {row.name:<{name_width}} "
            f"{row.phase:<10} {row.elapsed(now):6.1f}s  {message}".rstrip()
        )
    if hidden:
        lines.append(f"… and {len(hidden)} more")
    return [_fit(line, width - 1) for line in lines]


def _fit(line: str, width: int) -> str:
    if width <= 0:
        return ""
    return line if len(line) <= width else line[: width - 1] + "…"


class PlainProgress:
    """One line per status change (stdout is a file or a pipe)."""

    def __init__(self, out: TextIO, started: float) -> None:
        self.out, self.started = out, started

    def update(self, key: Key, status: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.started
        print(plain_line(key, status, elapsed), file=self.out, flush=True)

    def close(self) -> None:
        pass


class LiveProgress:
    """The table of `render`, redrawn in place on each change and every `tick` seconds."""

    def __init__(self, out: TextIO, started: float, tick: float = 0.5) -> None:
        self.out, self.started, self.tick = out, started, tick
        self.rows: dict[Key, Row] = {}
        self.drawn = 0  # lines of the previous frame, to move back over
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # The header's clock moves while no status changes (a training run is minutes).
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
        self.out.write(HIDE_CURSOR)
        self._ticker.start()

    def update(self, key: Key, status: dict[str, Any]) -> None:
        now = time.monotonic()
        phase = status.get("phase") or "Pending"
        with self._lock:
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = Row(key[0], key[1], phase, "", now)
            row.phase, row.message = phase, status.get("message") or ""
            row.finished = (row.finished or now) if phase in TERMINAL else None
            self._draw(now)

    def close(self) -> None:
        self._closed.set()
        self._ticker.join()
        with self._lock:
            self._draw(time.monotonic())
            self.out.write(SHOW_CURSOR)
            self.out.flush()

    def _tick(self) -> None:
        while not self._closed.wait(self.tick):
            with self._lock:
                if self.rows:
                    self._draw(time.monotonic())

    def _draw(self, now: float) -> None:
        size = shutil.get_terminal_size()
        lines = render(list(self.rows.values()), size.columns, now, self.started, size.lines - 1)
        frame = UP.format(self.drawn) if self.drawn else ""
        frame += "".join(f"{CLEAR_LINE}{line}\n" for line in lines) + CLEAR_BELOW
        self.out.write(frame)
        self.out.flush()
        self.drawn = len(lines)


def progress_for(out: TextIO, started: float) -> PlainProgress | LiveProgress:
    live = out.isatty() and os.environ.get("TERM") != "dumb"
    return LiveProgress(out, started) if live else PlainProgress(out, started)


def run(
    directory: Path,
    artifacts: Path,
    timeout: float,
    output_json: Path | None,
    file_root: Path | None = None,
    *,
    runtime: str = "process",
) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        items = documents(directory)
    except (OSError, ValueError) as exc:  # unreadable, not YAML, a YAML bomb
        print(f"fairpilot sandbox run: {exc}", file=sys.stderr)
        return 2
    if not items:
        print(f"no manifests in {directory}", file=sys.stderr)
        return 2
    started = time.monotonic()

    unknown = sorted({str(i.get("kind")) for i in items if i.get("kind") not in BY_KIND})
    if unknown:
        print(
            f"fairpilot sandbox run: not FairPilot resources: {', '.join(unknown)}", file=sys.stderr
        )
        return 2
    try:
        sandbox = Sandbox(artifacts, file_root=file_root, runtime=runtime)
    except ContainersUnavailable as exc:
        print(f"fairpilot sandbox run: {exc}", file=sys.stderr)
        return 2
    with sandbox:
        for kind, name in sandbox.apply(items):
            print(f"applied {kind}/{name}", flush=True)
        progress = progress_for(sys.stdout, started)
        try:
            done = sandbox.wait(timeout, on_change=progress.update)
        finally:
            progress.close()  # the last frame stays on screen, and the cursor comes back
        final = summary(sandbox.resources())
    if output_json:
        output_json.write_text(json.dumps(final, indent=2) + "\n")
    reports = sorted({uri for r in final for uri in (r["status"].get("reports") or {}).values()})
    print(f"\n{len(final)} resources in {time.monotonic() - started:.0f} s", flush=True)
    for uri in reports:
        print(f"  report: {uri}")
    problems = not_succeeded(final)
    if not done:
        print(f"timed out after {timeout:.0f} s; not finished:", file=sys.stderr)
    elif problems:
        print("not succeeded:", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    return 0 if done and not problems else 1


def not_succeeded(final: Sequence[dict[str, Any]]) -> list[str]:
    """One line per resource that did not succeed and per pipeline that stopped, each with its
    whole reason: the live table cuts messages to the terminal's width, and this is where a
    user reads why (the status message, the Ready condition's reason)."""
    lines = []
    for item in final:
        status, key = item["status"], f"{item['kind']}/{item['name']}"
        phase = status.get("phase") or "Pending"
        if phase != "Succeeded":
            ready = condition_of(status, "Ready") or {} if phase == "Failed" else {}
            reason = ready.get("reason") or ""
            line = f"{SYMBOLS.get(phase, '?')} {key}: {phase}" + (f" ({reason})" if reason else "")
            message = " ".join(str(status.get("message") or "").split())
            # A stage's error message starts with its reason already: say it once.
            message = message.removeprefix(f"{reason}: ") if reason else message
            lines.append(line + (f": {message}" if message else ""))
        if status.get("pipeline") in ("Stopped", "Failed"):
            message = " ".join(str(status.get("pipelineMessage") or "").split())
            lines.append(f"■ {key}: pipeline {status['pipeline']}: {message}")
    return lines
