"""The sandbox's child processes, all supervised one way.

The sandbox runs four kinds of child process: the API emulator, the Kafka broker (Tansu),
`fairpilot operator` replicas (fault tests and benchmarks) and each Job's container (the local
runner's "pods"). Each needs the same few things, and each used to do them its own way:

- start with an environment, a working folder and its output in a log (appended, so that a
  restarted child keeps its history) or in a temporary file;
- wait until it is *ready* by a probe of what it serves, failing at once with the tail of its
  output if it exits first, and after a deadline if it never answers;
- stop: its own graceful way (SIGTERM, or end of input for a child that reads a control
  pipe), then SIGKILL after a grace period, so that no stop can hang;
- SIGKILL on demand (a node failure, an OOM kill) and, for containers, a whole process tree;
- the resident memory of the process and its children, as a container's cgroup counts it.

`ChildProcess` is that, once. It is a context manager that stops the child on the way out,
whatever happened inside.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import psutil

from fairpilot.sandbox.kubectl_views import read_log, rotate

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ChildError(RuntimeError):
    """A child process that exited at start-up or never became ready; says why, with the
    tail of its output."""


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL when the thread that started it ends, however it ends,
    so that an interrupted test leaves nothing behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ChildProcess:
    """One child process: `start` (optionally until `ready`), `stop`, `kill`, its output.

    name: what errors call it ("the Kafka broker (Tansu)").
    log: the file its output is appended to; None: a temporary file, gone after `stop`.
    control_pipe: give it a stdin pipe and a stdout pipe to talk over (`stdin`, `stdout`);
        `stop` then closes its stdin (the end of input is its signal to stop) instead of
        sending SIGTERM, and its stderr goes where this process's goes.
    die_with_parent: SIGKILL when the starting thread ends (PR_SET_PDEATHSIG, Linux). Only
        for children started from a thread that outlives them: it runs code between fork and
        exec, which Python warns may deadlock when other threads hold locks.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
        control_pipe: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        self.name, self.argv = name, argv
        self.env = None if env is None else dict(env)
        self.cwd, self.log = cwd, log
        self.control_pipe, self.die_with_parent = control_pipe, die_with_parent
        self.process: subprocess.Popen[str] | None = None
        self._output: IO[str] | None = None
        self._output_start = 0

    # -- starting --------------------------------------------------------------------------

    def start(
        self, ready: Callable[[], bool] | None = None, timeout: float = 30, poll: float = 0.05
    ) -> ChildProcess:
        """Start it; with `ready`, return once `ready()` is true (it may raise OSError while
        the child is not answering yet). Raises ChildError, the child stopped, if it exits
        first or is not ready within `timeout` seconds."""
        if self.control_pipe:
            output: Any = subprocess.PIPE
        else:
            # Held open for the child's life and closed by stop(), not by a with block.
            self._output = (
                self.log.open("a+", encoding="utf-8", errors="replace")
                if self.log is not None
                else tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
            )
            self._output_start = os.fstat(self._output.fileno()).st_size
            output = self._output
        linux = sys.platform == "linux"
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.PIPE if self.control_pipe else subprocess.DEVNULL,
            stdout=output,
            stderr=None if self.control_pipe else subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent if self.die_with_parent and linux else None,
        )
        if ready is not None:
            self._wait_ready(ready, timeout, poll)
        return self

    def _wait_ready(self, ready: Callable[[], bool], timeout: float, poll: float) -> None:
        deadline = time.monotonic() + timeout
        problem = "no answer yet"
        while True:
            if not self.running:
                said = self.tail()
                self.stop()
                raise ChildError(
                    f"{self.name} exited with status {self.returncode} at start-up:\n{said}"
                )
            try:
                if ready() and self.running:  # a probe another process answered is not ready
                    return
            except OSError as error:
                problem = str(error)
            if time.monotonic() > deadline:
                said = self.tail()
                self.stop()
                raise ChildError(
                    f"{self.name} was not ready within {timeout:g} s ({problem}):\n{said}"
                )
            time.sleep(poll)

    # -- state -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    @property
    def stdin(self) -> IO[str]:
        assert self.process is not None and self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> IO[str]:
        assert self.process is not None and self.process.stdout is not None
        return self.process.stdout

    def resident_bytes(self) -> int:
        """The resident memory of the process and all its children, as a cgroup counts it."""
        total = 0
        for process in self._tree():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def output(self) -> str:
        """What it wrote since this start (not with `control_pipe`)."""
        if self._output is None:
            return ""
        # pread, not seek + read: the child shares this file's offset and may still write.
        fd = self._output.fileno()
        data = os.pread(fd, max(0, os.fstat(fd).st_size - self._output_start), self._output_start)
        return data.decode(errors="replace")

    def tail(self, lines: int = 20) -> str:
        text = _ANSI.sub("", self.output())  # colour codes, should a child ignore NO_COLOR
        return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"

    # -- ending ----------------------------------------------------------------------------

    def send_signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, then reap: no handler runs and nothing is flushed (a node failure)."""
        self.stop(signum=signal.SIGKILL)

    def kill_tree(self) -> None:
        """SIGKILL to the process and all its children (as a cgroup OOM kill), then reap."""
        for process in self._tree():
            with contextlib.suppress(psutil.Error):
                process.kill()
        if self.process is not None:
            self.process.wait()

    def stop(self, grace: float = 10, signum: int | None = None) -> int | None:
        """End it: `signum` if given, else its graceful way (closing its control pipe, or
        SIGTERM); SIGKILL after `grace` seconds. Idempotent; returns its exit status."""
        process = self.process
        if process is not None and process.poll() is None:
            if signum is None and self.control_pipe:
                with contextlib.suppress(OSError):
                    self.stdin.close()
            else:
                process.send_signal(signal.SIGTERM if signum is None else signum)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_files()
        return None if process is None else process.returncode

    def _close_files(self) -> None:
        if self.process is not None:
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        if self._output is not None:
            self._output.close()
            self._output = None

    def _tree(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_container(
    argv: list[str],
    env: Mapping[str, str],
    workdir: Path,
    timeout: float | None,
    memory_limit: int | None,
    poll: float = 0.1,
    log: Path | None = None,
    log_limit: int = 10 * 1024 * 1024,
) -> tuple[int, str, str]:
    """Run one container's process to its end as a kubelet would: (exit code, reason, output).

    Above `memory_limit` bytes (the process tree's resident set) the tree is killed and
    reported `OOMKilled` (137); past `timeout` seconds, `DeadlineExceeded` (137).
    log: the file its output goes to (a new one), kept to about twice `log_limit` bytes
    (kubectl_views.rotate); the output returned is then its last part.
    """
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        for old in (log, log.with_suffix(".log.1")):
            old.unlink(missing_ok=True)  # a new pod of the same name: a new log
    child = ChildProcess("container", argv, env=env, cwd=workdir, log=log).start()
    began = time.monotonic()
    reason = ""
    with child:
        while child.running:
            if timeout is not None and time.monotonic() - began > timeout:
                reason = "DeadlineExceeded"
            elif memory_limit is not None and child.resident_bytes() > memory_limit:
                reason = "OOMKilled"
            if reason:
                child.kill_tree()
                break
            if log is not None:
                rotate(log, log_limit)
            time.sleep(poll)
        logs = child.output() if log is None else read_log(log)[-65536:].decode(errors="replace")
        code = child.wait()
    if reason == "DeadlineExceeded":
        return 137, reason, "the Job exceeded activeDeadlineSeconds"
    if reason == "OOMKilled":
        return 137, reason, logs
    return code, ("" if code == 0 else "Error"), logs
