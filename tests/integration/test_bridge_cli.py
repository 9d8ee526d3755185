"""docs/kafka.md's producer snippet, run as written against `fairpilot sandbox up`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from k8s_tools import ensure

from fairpilot.sandbox.kafka import free_port
from fairpilot.sandbox.testing import payloads, read

KAFKA_DOCS = Path(__file__).resolve().parents[2] / "docs" / "kafka.md"


def readme_producer() -> str:
    section = KAFKA_DOCS.read_text().split("## One message, the whole pipeline", 1)[1]
    return re.search(r"```python\n(.*?)\n```", section, re.S).group(1)


@pytest.mark.timeout(180)
def test_the_readme_producer_starts_a_pipeline_through_sandbox_up(tmp_path: Path) -> None:
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "fairpilot.cli", "sandbox", "up", "--noop-jobs",
         "--artifacts", str(tmp_path / "artifacts"), "--kafka-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if line.startswith("ready") or not line:
                break
        assert f"Kafka:      127.0.0.1:{port}\n" in lines, lines
        # The kubeconfig it prints is what kubectl needs (the pinned one, scripts/k8s_tools.py).
        (kubeconfig,) = [line.split(":", 1)[1].strip() for line in lines
                         if line.startswith("kubeconfig:")]  # fmt: skip
        crds = subprocess.run(
            [str(ensure()["kubectl"]), "--kubeconfig", kubeconfig, "get", "crd", "-o", "name"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()  # fmt: skip
        assert "customresourcedefinition.apiextensions.k8s.io/datasets.fairpilot.io" in crds
        # Inside the sandbox's file root (the folder above --artifacts): elsewhere the bridge
        # would dead-letter the message (a file:// URI outside the root).
        data = f"file://{tmp_path}/data/adult.csv"
        env = {**os.environ, "KAFKA": f"127.0.0.1:{port}", "DATA": data}
        subprocess.run([sys.executable, "-c", readme_producer()], env=env, check=True, timeout=60)
        deadline = time.monotonic() + 60
        reported: list[dict] = []
        while not reported and time.monotonic() < deadline:
            reported = payloads(read(f"127.0.0.1:{port}", ["bias-events"], 1), "bias-events")
        assert len(reported) == 1, lines
        event = reported[0]
        assert (event["dataset_id"], event["user_id"]) == ("adult", "user123")
        assert event["target_column_name"] == "income" and event["task_type"] == "classification"
        # The web console it prints shows the pipeline that message started.
        (console,) = [line.split()[1] for line in lines if line.startswith("console:")]
        with urllib.request.urlopen(f"{console}/ns/default", timeout=30) as page:
            assert 'href="/ns/default/datasets/adult-' in page.read().decode()
    finally:
        up.terminate()
        up.wait(30)
        if up.stdout is not None:
            up.stdout.close()
    assert up.returncode == 0
