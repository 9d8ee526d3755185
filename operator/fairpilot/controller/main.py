"""`fairpilot operator`: the operator process for a real cluster."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import start_http_server

from fairpilot import settings
from fairpilot.bridge.config import BridgeConfig
from fairpilot.config import OperatorConfig
from fairpilot.controller.runtime import (
    KopfOptions,
    Runtime,
    build_runtime,
    load_kubeconfig,
    operate,
)
from fairpilot.warehouse.store import Warehouse

CONFIG_FILE_ENV = "FAIRPILOT_CONFIG_FILE"
# The settings a FAIRPILOT_<NAME> variable overrides (the chart sets them from its values).
ENV_FIELDS = {"jobs_image", "jobs_cuda_image", "artifact_root", "s3_endpoint_url",
              "s3_credentials_secret"}  # fmt: skip


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
    overrides = settings.from_env(
        OperatorConfig,
        "FAIRPILOT_",
        env,
        fields=ENV_FIELDS,
        renamed={"FAIRPILOT_ALLOW_GPU": "gpu.allowed"},
    )
    if "gpu" in overrides:
        values["gpu"] = {**(values.get("gpu") or {}), **overrides.pop("gpu")}
    return OperatorConfig.model_validate({**values, **overrides})


def runtime_from_env(kopf_options: KopfOptions | None = None) -> Runtime:
    """The Runtime `fairpilot operator` runs with: its configuration from the environment, the
    Kafka bridge when FAIRPILOT_KAFKA_* asks for it, the warehouse when MONGO_URI does."""
    return build_runtime(
        config_from_env(),
        kafka=BridgeConfig.from_env(),
        warehouse=Warehouse.from_env(),
        kopf_options=kopf_options,
    )


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
    load_kubeconfig()
    runtime = runtime_from_env(KopfOptions(peering_lifetime=peering_lifetime))
    start_http_server(metrics_port)
    asyncio.run(operate(runtime, namespaces, health_port, peering=peering))
    return 0
