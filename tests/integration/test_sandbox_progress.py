"""`fairpilot sandbox run`'s progress: the live table on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fairpilot.sandbox import cli
from fairpilot.sandbox.cli import Row, plain_line, render

pytestmark = pytest.mark.timeout(60)

# A stand-in for Sandbox: the display is what is under test, not the operator.
FAKE_SANDBOX = """
import time

CHANGES = [
    (("Dataset", "adult"), {"phase": "Running", "message": "profiling"}),
    (("BiasAnalysis", "adult-bias"), {"phase": "Pending"}),
    (("Dataset", "adult"), {"phase": "Succeeded", "message": "32561 rows, 15 columns"}),
    (("BiasAnalysis", "adult-bias"), {"phase": "Running", "message": "x" * 300}),
    (("BiasAnalysis", "adult-bias"), {"phase": "Failed", "message": "DI 0.36 < 0.8"}),
]


class FakeSandbox:
    def __init__(self, artifacts, **_):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def apply(self, items):
        return [(i["kind"], i["metadata"]["name"]) for i in items]

    def wait(self, timeout, on_change=None):
        for key, status in CHANGES:
            time.sleep(0.15)
            on_change(key, status)
        return True

    def resources(self):
        last = dict(CHANGES)
        return [
            {"kind": k, "metadata": {"name": n}, "status": s} for (k, n), s in last.items()
        ]
"""

MANIFEST = """\
apiVersion: fairpilot.io/v1alpha1
kind: Dataset
metadata: {name: adult}
---
apiVersion: fairpilot.io/v1alpha1
kind: BiasAnalysis
metadata: {name: adult-bias}
"""


def test_render_orders_by_appearance_and_counts_phases() -> None:
    rows = [
        Row("TrainingRun", "adult-train", "Running", "training", first_seen=20.0),
        Row("Dataset", "adult", "Succeeded", "ok", first_seen=10.0, finished=15.0),
        Row("BiasAnalysis", "adult-bias", "Succeeded", "", first_seen=12.0, finished=19.0),
        Row("Explanation", "adult-xai", "Pending", "", first_seen=21.0),
    ]
    lines = render(rows, width=200, now=30.0, started=5.0)
    assert lines[0] == "[  25.0s] 4 resources: 1 Pending, 1 Running, 2 Succeeded"
    assert [line.split()[1] for line in lines[1:]] == [
        "Dataset",
        "BiasAnalysis",
        "TrainingRun",
        "Explanation",
    ]
    # columns as wide as the longest kind (TrainingRun, Explanation) and name (adult-train)
    assert lines[1] == "✔ Dataset      adult       Succeeded     5.0s  ok"
    assert "  10.0s  training" in lines[3]  # still running: elapsed runs to now
    assert lines[4].endswith("Pending       9.0s")  # no message, no trailing blanks


def test_render_fits_every_line_in_the_width() -> None:
    rows = [Row("Dataset", "adult", "Failed", "bad\ninput " + "y" * 200, first_seen=0.0)]
    lines = render(rows, width=60, now=1.0, started=0.0)
    assert all(len(line) <= 59 for line in lines)
    assert lines[1].endswith("…") and "\n" not in lines[1]
    assert lines[0] == "[   1.0s] 1 resource: 1 Failed"
    assert render(rows, width=1, now=1.0, started=0.0) == ["", ""]


def test_render_sums_up_rows_that_do_not_fit_the_height() -> None:
    rows = [Row("Dataset", f"d{i}", "Pending", "", first_seen=float(i)) for i in range(10)]
    lines = render(rows, width=80, now=10.0, started=0.0, height=5)
    assert len(lines) == 5
    assert [line.split()[2] for line in lines[1:4]] == ["d0", "d1", "d2"]
    assert lines[4] == "… and 7 more"
    assert lines[0].endswith("10 resources: 10 Pending")


def test_not_a_terminal_gets_plain_lines_in_the_old_format() -> None:
    out = io.StringIO()
    progress = cli.progress_for(out, time.monotonic() - 3)
    assert isinstance(progress, cli.PlainProgress)
    progress.update(("Dataset", "adult"), {"phase": "Running", "message": "profiling"})
    progress.update(("Dataset", "adult"), {})
    progress.close()
    first, second = out.getvalue().splitlines()
    assert re.fullmatch(r"\[   3\.\ds\] ▶ Dataset {7}adult {24}Running {4}profiling", first)
    assert re.fullmatch(r"\[   3\.\ds\] … Dataset {7}adult {24}Pending {4}", second)
    assert "\033" not in out.getvalue()
    assert plain_line(("Dataset", "adult"), {"phase": "Succeeded"}, 12.25) == (
        f"[  12.2s] ✔ {'Dataset':<13} {'adult':<28} {'Succeeded':<10} "
    )


def _run_cli(tmp_path: Path, tty: bool, changes: str = "") -> bytes:
    """`sandbox.cli.run` with the fake sandbox in a child, stdout a pipe or a pseudo-terminal;
    `changes`: Python that replaces the fake's CHANGES. On a pipe, stderr follows stdout."""
    (tmp_path / "m.yaml").write_text(MANIFEST)
    script = (
        FAKE_SANDBOX
        + changes
        + textwrap.dedent(f"""
        from pathlib import Path
        from fairpilot.sandbox import cli
        cli.Sandbox = FakeSandbox
        raise SystemExit(cli.run(Path({str(tmp_path)!r}), Path("/nonexistent"), 10, None))
    """)
    )
    env = {**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm"}
    if not tty:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env)
        assert done.returncode == 1, done.stderr  # one resource failed
        return done.stdout + done.stderr
    controller, terminal = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=terminal, stdout=terminal, stderr=terminal, env=env
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert child.wait(10) == 1, output.decode(errors="replace")
    return output


def test_cli_prints_plain_lines_to_a_pipe(tmp_path: Path) -> None:
    lines = _run_cli(tmp_path, tty=False).decode().splitlines()
    assert lines[:2] == ["applied Dataset/adult", "applied BiasAnalysis/adult-bias"]
    changes = [line for line in lines if line.startswith("[")]
    assert len(changes) == 5  # one per change: nothing redrawn, nothing dropped
    assert changes[-1].endswith("Failed     DI 0.36 < 0.8")
    ended = next(i for i, line in enumerate(lines) if line.startswith("2 resources in"))
    assert lines[ended + 1 :] == [
        "not succeeded:",
        "  ✘ BiasAnalysis/adult-bias: Failed: DI 0.36 < 0.8",
    ]


def screen(output: bytes, columns: int = 80) -> list[str]:
    """Just enough of a VT100 for the codes the live table writes."""
    rows: list[str] = [""]
    y = x = 0
    for token in re.findall(rb"\x1b\[\??[0-9;]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", output):
        code = token.decode(errors="replace")
        if code == "\r":
            x = 0
        elif code == "\n":
            y += 1
            rows += [""] * (y + 1 - len(rows))
        elif code.startswith("\x1b["):
            final, argument = code[-1], code[2:-1].lstrip("?")
            if final == "F":
                y, x = max(0, y - int(argument or 1)), 0
            elif final == "K":
                rows[y] = ""
            elif final == "J":
                rows[y] = rows[y][:x]
                del rows[y + 1 :]
            elif final not in "hl":
                raise AssertionError(f"unexpected escape code {code!r}")
        else:
            assert x + len(code) <= columns, f"line wraps: {code!r}"
            rows[y] = rows[y][:x].ljust(x) + code + rows[y][x + len(code) :]
            x += len(code)
    return [row.rstrip() for row in rows]


def test_cli_redraws_a_table_in_place_on_a_terminal(tmp_path: Path) -> None:
    output = _run_cli(tmp_path, tty=True)
    text = output.decode()
    assert text.count("\x1b[3F") >= 3  # moved back over the 3-line table to redraw it
    assert text.count("2 resources") >= 4  # several frames were drawn...
    final = [line for line in screen(output) if line]
    assert final[:2] == ["applied Dataset/adult", "applied BiasAnalysis/adult-bias"]
    table = final[2:5]  # ...but only the last one is on the screen, once
    assert re.fullmatch(r"\[ +\d+\.\ds\] 2 resources: 1 Succeeded, 1 Failed", table[0])
    dataset = r"✔ Dataset      adult      Succeeded +\d+\.\ds  32561 rows, 15 columns"
    assert re.fullmatch(dataset, table[1])
    assert table[2].startswith("✘ BiasAnalysis adult-bias Failed ")
    assert table[2].endswith("DI 0.36 < 0.8")
    assert final[5].startswith("2 resources in")
    assert text.index("\x1b[?25l") < text.index("\x1b[?25h")  # the cursor comes back


# A failure whose reason is longer than the terminal is wide, and a pipeline that stopped.
LONG_FAILURE = """
COLUMNS = ", ".join(f"column_{i}" for i in range(40))
REASON = f"spec.sensitiveFeatures: column 'gender' is not in the data; its columns: {COLUMNS}"
CHANGES = [
    (("Dataset", "adult"), {"phase": "Succeeded", "message": "ok", "pipeline": "Stopped",
                            "pipelineMessage": "BiasAnalysis adult-bias failed"}),
    (("BiasAnalysis", "adult-bias"), {
        "phase": "Failed", "message": REASON,
        "conditions": [{"type": "Ready", "status": "False", "reason": "MissingColumn"}],
    }),
]
"""


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "terminal"])
def test_cli_ends_with_each_failure_s_full_reason(tmp_path: Path, tty: bool) -> None:
    output = _run_cli(tmp_path, tty=tty, changes=LONG_FAILURE).decode()
    reason = "spec.sensitiveFeatures: column 'gender' is not in the data; its columns: " + (
        ", ".join(f"column_{i}" for i in range(40))
    )
    assert len(reason) > 80
    tail = output[output.index("2 resources in") :].replace("\r\n", "\n").splitlines()
    assert "not succeeded:" in tail
    assert f"  ✘ BiasAnalysis/adult-bias: Failed (MissingColumn): {reason}" in tail, tail
    assert "  ■ Dataset/adult: pipeline Stopped: BiasAnalysis adult-bias failed" in tail, tail


def test_a_reason_the_message_starts_with_is_said_once() -> None:
    from fairpilot.sandbox.cli import not_succeeded

    status = {
        "phase": "Failed",
        "message": "DatasetNotFound: dataset file:///d.csv does not exist",
        "conditions": [{"type": "Ready", "status": "False", "reason": "DatasetNotFound"}],
    }
    (line,) = not_succeeded([{"kind": "Dataset", "name": "d", "status": status}])
    assert line == "✘ Dataset/d: Failed (DatasetNotFound): dataset file:///d.csv does not exist"
