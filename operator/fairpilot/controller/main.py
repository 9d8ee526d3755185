"""`fairpilot operator`: the operator process for a real cluster."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import kopf
import kubernetes
from prometheus_client import start_http_server

from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.service import Bridge
from fairpilot.config import OperatorConfig
from fairpilot.controller import handlers
from fairpilot.controller.cluster import Cluster
from fairpilot.warehouse.store import Warehouse


def config_from_env() -> OperatorConfig:
    """OperatorConfig from FAIRPILOT_* variables (the Helm chart sets them)."""
    values: dict[str, object] = {}
    for field in (
        "jobs_image",
        "jobs_cuda_image",
        "artifact_root",
        "s3_endpoint_url",
        "s3_credentials_secret",
    ):
        value = os.environ.get(f"FAIRPILOT_{field.upper()}")
        if value:
            values[field] = value
    if os.environ.get("FAIRPILOT_ALLOW_GPU", "").lower() in ("0", "false", "no"):
        values["gpu"] = {"allowed": False}
    return OperatorConfig.model_validate(values)


def bridge_from_env() -> Bridge | None:
    """The Kafka bridge (FAIRPILOT_KAFKA_*) and the warehouse (MONGO_URI), when configured."""
    kafka, warehouse = BridgeConfig.from_env(), Warehouse.from_env()
    if kafka is None and warehouse is None:
        return None
    return Bridge(Cluster.connect(), kafka, warehouse)


def run_operator(namespaces: list[str], metrics_port: int, health_port: int) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    handlers.RUNTIME.cluster = Cluster.connect()
    handlers.RUNTIME.config = config_from_env()
    handlers.RUNTIME.bridge = bridge_from_env()
    start_http_server(metrics_port)
    asyncio.run(operate(namespaces, health_port))
    return 0


def liveness_endpoint(port: int) -> str:
    """Where Kopf serves /healthz: on all interfaces, as the kubelet probes the pod's IP.

    Kopf (1.45) answers GET on exactly this path with 200 and a JSON object of the `@kopf.on.probe`
    results (`{}`: FairPilot registers none, so the probe says the event loop is alive without
    depending on the API server, whose outage must not restart every operator pod). It starts
    serving once the startup handlers have run, so the probe needs an initial delay.
    """
    return f"http://0.0.0.0:{port}/healthz"


async def operate(
    namespaces: list[str],
    health_port: int,
    *,
    stop_flag: threading.Event | None = None,
) -> None:
    """The Kopf operator exactly as `fairpilot operator` runs it, so tests can run the same."""
    await kopf.operator(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness_endpoint(health_port),
        stop_flag=stop_flag,
    )
