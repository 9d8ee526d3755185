"""`fairpilot operator`: the operator process for a real cluster."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kopf
import kubernetes
import yaml
from prometheus_client import start_http_server

from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.service import Bridge
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.controller import handlers
from fairpilot.warehouse.store import Warehouse

CONFIG_FILE_ENV = "FAIRPILOT_CONFIG_FILE"


def config_from_env(env: Mapping[str, str] | None = None) -> OperatorConfig:
    """OperatorConfig from the file FAIRPILOT_CONFIG_FILE names, then FAIRPILOT_* variables.

    The Helm chart mounts its ConfigMap as that file (the whole OperatorConfig, in its own field
    names); a variable overrides the file's value, which keeps `docker run -e` and local runs
    simple. A file or value the model refuses stops the operator with pydantic's message.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if path := env.get(CONFIG_FILE_ENV):
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: the operator configuration must be a mapping")
    for field in (
        "jobs_image",
        "jobs_cuda_image",
        "artifact_root",
        "s3_endpoint_url",
        "s3_credentials_secret",
    ):
        value = env.get(f"FAIRPILOT_{field.upper()}")
        if value:
            values[field] = value
    if env.get("FAIRPILOT_ALLOW_GPU", "").lower() in ("0", "false", "no"):
        values["gpu"] = {**(values.get("gpu") or {}), "allowed": False}
    return OperatorConfig.model_validate(values)


def bridge_from_env(operator: OperatorConfig | None = None) -> Bridge | None:
    """The Kafka bridge (FAIRPILOT_KAFKA_*) and the warehouse (MONGO_URI), when configured;
    `operator`'s data locations bound what a message may point at."""
    kafka, warehouse = BridgeConfig.from_env(), Warehouse.from_env()
    if kafka is None and warehouse is None:
        return None
    return Bridge(Cluster.connect(), kafka, warehouse, operator=operator)


def run_operator(
    namespaces: list[str],
    metrics_port: int,
    health_port: int,
    peering: str | None = None,
    log_level: str = "INFO",
    *,
    peering_lifetime: int = 60,
) -> int:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Their DEBUG lines trace every request, headers included (the S3 access key id), and
    # would drown the operator's own; DEBUG is for the operator's decisions.
    for chatty in ("botocore", "boto3", "urllib3", "aiokafka", "s3transfer"):
        logging.getLogger(chatty).setLevel(
            max(logging.INFO, logging.getLevelName(log_level.upper()))
        )
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    handlers.RUNTIME.cluster = Cluster.connect()
    handlers.RUNTIME.config = config_from_env()
    handlers.RUNTIME.bridge = bridge_from_env(handlers.RUNTIME.config)
    handlers.RUNTIME.scanning_disabled = True
    handlers.RUNTIME.peering_lifetime = peering_lifetime
    start_http_server(metrics_port)
    asyncio.run(operate(namespaces, health_port, peering=peering))
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
    peering: str | None = None,
) -> None:
    """The Kopf operator exactly as `fairpilot operator` runs it, so tests can run the same.

    peering: the name of a KopfPeering (ClusterKopfPeering when watching every namespace) for
    running more than one replica. Kopf pauses every operator that sees a peer of higher
    priority, and freezes all of them when two share one; each replica draws its priority at
    random, so exactly one works and the others stand by until its peering record expires.
    """
    await kopf.operator(
        standalone=not peering,
        peering_name=peering,
        priority=random.randint(1, 2**31 - 1) if peering else None,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness_endpoint(health_port),
        stop_flag=stop_flag,
    )
