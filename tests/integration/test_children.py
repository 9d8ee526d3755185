"""The sandbox's child-process supervisor (`fairpilot.sandbox.children`), with real processes."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from fairpilot.sandbox.children import ChildError, ChildProcess, run_container


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_ready_when_the_probe_says_so_and_its_output_is_kept(tmp_path: Path) -> None:
    flag, log = tmp_path / "ready", tmp_path / "child.log"
    log.write_text("an earlier start\n")
    code = (
        f"import pathlib,time; print('hello', flush=True); pathlib.Path({str(flag)!r}).touch(); "
        "time.sleep(60)"
    )
    with ChildProcess("a child", python(code), log=log).start(flag.exists, timeout=30) as child:
        assert child.running
        for _ in range(100):  # its print and the flag race: the probe saw the flag
            if "hello" in child.output():
                break
            time.sleep(0.05)
        assert child.output() == "hello\n"  # since this start, not the log's earlier lines
    assert not child.running
    assert child.returncode == -signal.SIGTERM
    assert log.read_text() == "an earlier start\nhello\n"  # appended


def test_exit_at_start_up_is_an_error_with_the_tail_of_its_output() -> None:
    code = "import sys; print('\\x1b[31mcannot bind\\x1b[0m', flush=True); sys.exit(3)"
    with pytest.raises(
        ChildError, match=r"a child exited with status 3 at start-up:\ncannot bind$"
    ):
        ChildProcess("a child", python(code)).start(lambda: False, timeout=30)


def test_a_child_never_ready_is_stopped_and_the_error_says_why() -> None:
    child = ChildProcess("a child", python("import time; time.sleep(60)"))

    def refuses() -> bool:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ChildError, match=r"not ready within 0.5 s \(connection refused\)"):
        child.start(refuses, timeout=0.5)
    assert not child.running


def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace() -> None:
    code = (
        "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    child = ChildProcess("stubborn", python(code))
    child.start(lambda: "up" in child.output(), timeout=30)
    began = time.monotonic()
    assert child.stop(grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - began < 30
    assert child.stop() == -signal.SIGKILL  # idempotent


def test_a_child_on_a_control_pipe_stops_at_the_end_of_its_input() -> None:
    code = "import sys; print(sys.stdin.readline().strip().upper(), flush=True); sys.stdin.read()"
    with ChildProcess("piped", python(code), control_pipe=True).start() as child:
        child.stdin.write("ping\n")
        child.stdin.flush()
        assert child.stdout.readline() == "PING\n"
    assert child.returncode == 0  # it ended on its own, not by a signal


def test_kill_tree_kills_the_grandchildren_too() -> None:
    code = (
        "import subprocess,sys,time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    child = ChildProcess("parent", python(code))
    child.start(lambda: child.output().strip().isdigit(), timeout=30)
    grandchild = psutil.Process(int(child.output()))
    child.kill_tree()
    grandchild.wait(10)
    assert not grandchild.is_running()
    assert child.returncode == -signal.SIGKILL
    child.stop()


def test_run_container_reports_as_a_kubelet(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    code, reason, logs = run_container(
        python("import os; print(os.getcwd()); raise SystemExit(4)"), env, tmp_path, None, None
    )
    assert (code, reason, logs) == (4, "Error", f"{tmp_path}\n")
    assert run_container(python("print('ok')"), env, tmp_path, 30, None) == (0, "", "ok\n")
    hog = "x = bytearray(300 * 2**20); import time; time.sleep(60)"
    code, reason, _ = run_container(python(hog), env, tmp_path, 60, 200 * 2**20)
    assert (code, reason) == (137, "OOMKilled")
    sleeper = python("import time; time.sleep(60)")
    assert run_container(sleeper, env, tmp_path, 0.5, None) == (
        137,
        "DeadlineExceeded",
        "the Job exceeded activeDeadlineSeconds",
    )
