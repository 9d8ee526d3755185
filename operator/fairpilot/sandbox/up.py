"""`fairpilot sandbox up`: the sandbox as a long-running service, until interrupted.

It prints the addresses of its API server and of its Kafka broker so that other programs can
drive it: kubectl (through the kubeconfig it writes beside the artifacts), the Kubernetes
client, Kafka producers (the bridge consumes the seed's trigger topics and produces its
events), a benchmark.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from fairpilot.cluster import Cluster
from fairpilot.console.data import Console
from fairpilot.console.server import Options, running_console
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.containers import ContainersUnavailable
from fairpilot.sandbox.process import write_kubeconfig
from fairpilot.warehouse.store import Warehouse


def masked(uri: str) -> str:
    """The URI with its password replaced by ***, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def up(
    artifacts: Path,
    *,
    noop_jobs: bool = False,
    parallelism: int = 2,
    file_root: Path | None = None,
    kafka_port: int | None = None,
    mongo_uri: str | None = None,
    console_port: int | None = 0,
    runtime: str = "process",
) -> int:
    """Run the sandbox until SIGINT or SIGTERM; `console_port` None serves no web console,
    0 serves it on a free port."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Kopf warns that it cannot take OS signals from a thread; this process takes them itself.
    logging.getLogger("kopf._core.reactor.running").setLevel(logging.ERROR)
    stop = threading.Event()

    def interrupted(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    warehouse = Warehouse.from_uri(mongo_uri) if mongo_uri else None
    try:
        sandbox = Sandbox(
            artifacts,
            noop_jobs=noop_jobs,
            parallelism=parallelism,
            file_root=file_root,
            kafka_port=kafka_port,
            warehouse=warehouse,
            runtime=runtime,
        )
    except ContainersUnavailable as exc:
        print(f"fairpilot sandbox up: {exc}", file=sys.stderr)
        return 2
    with sandbox:
        print(f"API server: {sandbox.url}", flush=True)
        kubeconfig = write_kubeconfig(sandbox.artifacts.parent / "kubeconfig", sandbox.url)
        print(f"kubeconfig: {kubeconfig}", flush=True)
        print(
            f"kubectl:    export KUBECONFIG={kubeconfig}; kubectl get fairpilot,jobs,pods; "
            "kubectl logs job/NAME (docs/operations.md)",
            flush=True,
        )
        print(f"pod logs:   {sandbox.pod_logs}", flush=True)
        if runtime == "docker":
            images = f"{sandbox.config.jobs_image}, {sandbox.config.jobs_cuda_image}"
            print(f"pods:       containers of {images} (docker)", flush=True)
        print(f"Kafka:      {sandbox.kafka}", flush=True)
        print(f"artifacts:  {sandbox.artifacts}", flush=True)
        where = file_root or "anywhere on this machine (--any-file)"
        print(f"file://:    {where}", flush=True)
        print(f"data:       {sandbox.data_uri_template} (when a message has no uri)", flush=True)
        if mongo_uri:
            print(f"warehouse:  {masked(mongo_uri)}", flush=True)
        with contextlib.ExitStack() as console:
            if console_port is not None:
                url = console.enter_context(
                    running_console(
                        Console(
                            Cluster.for_host(sandbox.url, connections=16),
                            sandbox.config,
                            topics=sandbox.bridge_config.topics if sandbox.bridge_config else None,
                        ),
                        Options(port=console_port),
                    )
                )
                print(f"console:    {url} (read-only)", flush=True)
            print("ready; Ctrl-C stops the sandbox", flush=True)
            stop.wait()
    return 0
