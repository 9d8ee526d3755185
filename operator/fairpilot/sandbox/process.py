"""The operator as a process of its own: `fairpilot operator`, exactly as a pod runs it.

The sandbox normally runs the operator as a thread, which is quick to start and easy to debug.
Fault tests need what a thread cannot give: a process that can be killed with SIGKILL in the
middle of anything, and several replicas side by side with Kopf peering. This runs the real
command line against the sandbox's API server through a kubeconfig, with the configuration a
Helm install would give it (the OperatorConfig file and FAIRPILOT_KAFKA_* variables).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import yaml

from fairpilot.config import OperatorConfig
from fairpilot.controller.main import CONFIG_FILE_ENV
from fairpilot.sandbox.children import ChildProcess
from fairpilot.sandbox.kafka import free_port


def write_kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    """A kubeconfig whose current context is the sandbox's API server (no credentials: the
    emulator asks for none): for `KUBECONFIG=path kubectl ...`, `fairpilot logs` and the
    operator run as a process."""
    name = "fairpilot-sandbox"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": str(server)}}],
        "users": [{"name": name, "user": {}}],
        "contexts": [
            {
                "name": name,
                "context": {"cluster": name, "user": name, "namespace": namespace},
            }
        ],
        "current-context": name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class OperatorProcess:
    """One `fairpilot operator` replica: start, wait until healthy, SIGTERM or SIGKILL."""

    def __init__(
        self,
        workdir: Path,
        server: str,
        config: OperatorConfig,
        *,
        env: Mapping[str, str] | None = None,
        peering: str | None = None,
        peering_lifetime: int | None = None,
        name: str = "operator",
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.peering, self.peering_lifetime = peering, peering_lifetime
        workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = write_kubeconfig(workdir / "kubeconfig", server)
        self.config_file = workdir / "operator-config.yaml"
        self.config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
        self.env = dict(env or {})
        if config.s3_endpoint_url:  # as the chart sets it for the operator's own reads
            self.env.setdefault("FAIRPILOT_S3_ENDPOINT_URL", config.s3_endpoint_url)
        self.log = workdir / f"{name}.log"  # every start appends to it
        self.child: ChildProcess | None = None
        self.health_port = 0

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.health_port, metrics_port = free_port(), free_port()
        argv = [
            str(Path(sys.executable).parent / "fairpilot"),
            "operator",
            "--metrics-port",
            str(metrics_port),
            "--health-port",
            str(self.health_port),
            "--log-level",
            "DEBUG",
        ]
        if self.peering:
            argv += ["--peering", self.peering]
        if self.peering_lifetime:
            argv += ["--peering-lifetime", str(self.peering_lifetime)]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FAIRPILOT_")},
            **self.env,
            "KUBECONFIG": str(self.kubeconfig),
            CONFIG_FILE_ENV: str(self.config_file),
            # Kopf's peering identity: stable per replica, as a pod's name would be.
            "POD_ID": self.name,
        }
        # Killed with this process however it dies, so that an interrupted test leaves no
        # operator behind; started from the test's own thread, which outlives it.
        self.child = ChildProcess(
            self.name, argv, env=env, log=self.log, die_with_parent=True
        ).start(self._healthy, timeout, poll=0.2)
        return self

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)

    @property
    def process(self) -> subprocess.Popen[str] | None:
        return None if self.child is None else self.child.process

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    def kill(self) -> None:
        """SIGKILL: no cleanup handler runs, nothing is flushed, as a node failure or OOM."""
        if self.child is not None:
            self.child.kill()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, as Kubernetes stops a pod; SIGKILL after `timeout`."""
        if self.child is not None:
            self.child.stop(grace=timeout)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
