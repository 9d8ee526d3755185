"""`fairpilot operator`'s liveness endpoint: Kopf serves /healthz while the operator runs.

The operator runs as `fairpilot operator` runs it (`controller.main.operate`), logged in to the
sandbox's API server instead of a kubeconfig's cluster, and the probe is an HTTP GET.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.controller.runtime import build_runtime, liveness_endpoint, operate
from fairpilot.sandbox.emulator import running_emulator
from fairpilot.sandbox.testing import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe(url: str) -> tuple[int, Any] | None:
    """(status, JSON body) of a GET, or None when nothing answers (as a kubelet would see it)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:  # refused, reset, timed out
        return None


def test_liveness_endpoint_listens_on_every_interface() -> None:
    assert liveness_endpoint(8081) == "http://0.0.0.0:8081/healthz"


def test_operator_answers_healthz_while_it_runs(tmp_path: Path) -> None:
    with running_emulator() as url:
        cluster = Cluster.for_host(url)
        runtime = build_runtime(OperatorConfig(artifact_root=f"file://{tmp_path}"), host=url)
        port = free_port()
        healthz = f"http://127.0.0.1:{port}/healthz"
        assert probe(healthz) is None, "the port must be free before the operator starts"
        stop = threading.Event()
        operator = threading.Thread(
            target=lambda: asyncio.run(operate(runtime, [], port, stop_flag=stop)), daemon=True
        )
        operator.start()
        try:
            # Kopf serves the probe once its startup handlers have run: no probe handlers are
            # registered, so the answer is an empty JSON object.
            assert eventually(lambda: probe(healthz)) == (200, {})
            assert probe(f"http://127.0.0.1:{port}/metrics") == (404, None), "only /healthz"
            # What answers is the operator itself: it reconciles a resource meanwhile (no Job
            # runner here, so the Dataset stays Running with its Job created).
            cluster.create_resource(
                {
                    "apiVersion": "fairpilot.io/v1alpha1",
                    "kind": "Dataset",
                    "metadata": {"name": "probed", "namespace": "default"},
                    "spec": {"uri": "file:///nowhere/probed.csv"},
                }
            )
            running = eventually(
                lambda: (
                    ((cluster.get("Dataset", "default", "probed") or {}).get("status") or {}).get(
                        "phase"
                    )
                    == "Running"
                )
            )
            assert running, cluster.get("Dataset", "default", "probed")
            assert cluster.get_job("default", "fp-profile-probed-g1") is not None
            assert probe(healthz) == (200, {})
        finally:
            stop.set()
            operator.join(20)
        assert not operator.is_alive(), "the operator did not stop"
        assert probe(healthz) is None, "a stopped operator must fail its liveness probe"
