"""`fairpilot operator`: the operator process for a real cluster."""

from __future__ import annotations

import asyncio
import logging
import os

import kopf
import kubernetes
from prometheus_client import start_http_server

from fairpilot.config import OperatorConfig
from fairpilot.controller import handlers
from fairpilot.controller.cluster import Cluster


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


def run_operator(namespaces: list[str], metrics_port: int, health_port: int) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    handlers.RUNTIME.cluster = Cluster(kubernetes.client.ApiClient())
    handlers.RUNTIME.config = config_from_env()
    start_http_server(metrics_port)
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
        )
    )
    return 0
