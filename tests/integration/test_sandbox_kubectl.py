"""The pinned kubectl against the sandbox: what users type (docs/operations.md, issue 17).

One sandbox for the module, one Dataset run to its end in it; each test runs kubectl 1.35
(scripts/k8s_tools.py, not whatever kubectl is on PATH) against its API server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from k8s_tools import ensure

from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.testing import TINY_CSV, eventually, resource, wait_for

ROOT = Path(__file__).resolve().parents[2]
JOB = "fp-profile-tiny-g1"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    folder = tmp_path_factory.mktemp("kubectl")
    (folder / "tiny.csv").write_text(TINY_CSV)
    with Sandbox(folder / "artifacts", kafka=False) as running:
        spec = {"uri": f"file://{folder}/tiny.csv", "target": "income"}
        running.apply([resource("Dataset", "tiny", spec)])
        wait_for(running, "tiny", lambda s: s.get("phase") == "Succeeded")
        yield running


def kubectl(sandbox: Sandbox, *args: str, timeout: float = 30) -> str:
    """kubectl's output; fails the test with what it said on stderr when it fails."""
    done = subprocess.run(
        [str(ensure()["kubectl"]), "--server", sandbox.url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def rows(output: str) -> list[list[str]]:
    """A kubectl table as its cells (columns split on two or more spaces)."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


class Lines:
    """A running command's output lines, read on a thread as they come."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(10)
        self.reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def test_get_pods_lists_the_runners_pods_with_their_state(sandbox: Sandbox) -> None:
    table = rows(kubectl(sandbox, "get", "pods"))
    assert table[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [f"{JOB}-0", "0/1", "Completed", "0"] == table[1][:4]
    # The Job's defaulted selector finds its pod, as kubectl and controllers look it up.
    job = sandbox.cluster.batch.read_namespaced_job(JOB, "default")
    assert job.spec.selector.match_labels == {
        "batch.kubernetes.io/controller-uid": job.metadata.uid
    }
    pods = kubectl(sandbox, "get", "pods", "-l", "job-name=" + JOB, "-o", "name")
    assert pods.split() == [f"pod/{JOB}-0"]


def test_kubectl_logs_of_a_job_and_of_its_pod(sandbox: Sandbox) -> None:
    logs = kubectl(sandbox, "logs", f"job/{JOB}")
    assert "profiling 6 rows x 3 columns" in logs
    assert logs == kubectl(sandbox, "logs", f"{JOB}-0", "-c", "stage")
    last = kubectl(sandbox, "logs", f"{JOB}-0", "--tail=1")
    assert last == logs.splitlines(keepends=True)[-1]
    # Following the log of a pod that has ended prints it all and ends.
    assert kubectl(sandbox, "logs", "-f", f"job/{JOB}") == logs


def test_kubectl_logs_follows_a_running_pod_to_its_end(sandbox: Sandbox, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = (
        "import os, sys, time\n"
        "print('first line', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        "print('second line', file=sys.stderr, flush=True)\n"
    )
    container = {"name": "main", "image": "local", "command": ["python", "-c", script]}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "follow-me"},
        "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}},
    }
    sandbox.cluster.batch.create_namespaced_job("default", job)  # type: ignore[arg-type]
    assert eventually(lambda: _running(sandbox, "follow-me-0"))
    follow = Lines([str(ensure()["kubectl"]), "--server", sandbox.url, "logs", "-f",
                    "job/follow-me"])  # fmt: skip
    try:
        assert eventually(lambda: follow.saw("first line")), follow.lines
        assert not follow.saw("second line")
        go.touch()
        assert follow.process.wait(30) == 0, follow.lines
        assert follow.lines == ["first line", "second line"]
    finally:
        follow.stop()


def _running(sandbox: Sandbox, pod: str) -> bool:
    found = sandbox.cluster.core.list_namespaced_pod(
        "default", field_selector=f"metadata.name={pod}"
    )
    return bool(found.items) and found.items[0].status.phase == "Running"  # Pending first


def test_fairpilot_logs_prints_a_resources_current_stage(sandbox: Sandbox) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT / "jobs")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "fairpilot.cli", "logs", "dataset/tiny", "--server", sandbox.url,
         "--tail", "2"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "".join(kubectl(sandbox, "logs", f"job/{JOB}").splitlines(True)[-2:])
    missing = subprocess.run(
        [sys.executable, "-m", "fairpilot.cli", "logs", "nothere", "--server", sandbox.url],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert missing.returncode != 0 and "nothere not found" in missing.stderr


def test_printer_columns_come_from_the_crds(sandbox: Sandbox) -> None:
    table = rows(kubectl(sandbox, "get", "datasets"))
    assert table[0] == ["NAME", "PHASE", "ROWS", "TARGET", "AGE"]
    assert table[1][:4] == ["tiny", "Succeeded", "6", "income"]
    wide = rows(kubectl(sandbox, "get", "datasets", "-o", "wide"))
    assert wide[0][-1] == "MESSAGE" and "6 rows" in wide[1][-1]
    jobs = rows(kubectl(sandbox, "get", "jobs"))
    assert jobs[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert jobs[1][:3] == [JOB, "Complete", "1/1"]
    # Clients that ask for objects still get them (kubectl -o json, Kopf, the Python client).
    listed = json.loads(kubectl(sandbox, "get", "datasets", "-o", "json"))["items"]
    assert [(item["kind"], item["status"]["phase"]) for item in listed] == [
        ("Dataset", "Succeeded")
    ]


def test_get_watch_streams_changes(sandbox: Sandbox) -> None:
    watch = Lines([str(ensure()["kubectl"]), "--server", sandbox.url, "get", "configmaps",
                   "-w", "--request-timeout=60s"])  # fmt: skip
    try:
        assert eventually(lambda: watch.saw("NAME") or watch.process.poll() is not None)
        sandbox.cluster.core.create_namespaced_config_map(
            "default",
            {"metadata": {"name": "watched"}, "data": {"a": "b"}},  # type: ignore[arg-type]
        )
        assert eventually(lambda: watch.saw("watched")), watch.lines
        assert watch.process.poll() is None, watch.lines  # still watching
        assert not any("error" in line for line in watch.lines), watch.lines
    finally:
        watch.stop()


def test_get_events_through_both_event_apis(sandbox: Sandbox) -> None:
    core = rows(kubectl(sandbox, "get", "events"))
    assert core[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    reasons = {(row[2], row[3]) for row in core[1:]}
    assert ("Succeeded", "dataset/tiny") in reasons, core
    new = rows(kubectl(sandbox, "get", "events.v1.events.k8s.io"))
    assert {(row[2], row[3]) for row in new[1:]} == reasons
    as_json = kubectl(sandbox, "get", "events.v1.events.k8s.io", "-o", "json")
    assert '"regarding"' in as_json and '"note"' in as_json


def test_get_crd_and_explain(sandbox: Sandbox) -> None:
    crds = {row[0] for row in rows(kubectl(sandbox, "get", "crd"))[1:]}
    assert {"datasets.fairpilot.io", "trainingruns.fairpilot.io"} <= crds
    explained = kubectl(sandbox, "explain", "dataset.spec")
    assert "KIND:       Dataset" in explained
    assert "uri\t<string> -required-" in explained
    assert "Column to predict." in explained
    assert "sensitiveFeatures" in kubectl(sandbox, "explain", "trainingruns.spec.fairness")


def test_kubectl_get_namespaces(sandbox: Sandbox) -> None:
    """`kubectl get ns` as on a cluster: default and every namespace that holds something."""
    listed = rows(kubectl(sandbox, "get", "namespaces"))
    assert listed[0][:2] == ["NAME", "STATUS"]
    assert listed[1][:2] == ["default", "Active"]
    one = json.loads(kubectl(sandbox, "get", "ns", "default", "-o", "json"))
    assert (one["kind"], one["metadata"]["name"]) == ("Namespace", "default")
