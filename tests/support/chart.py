"""The Helm chart rendered by the real helm binary: value sets, rendering and picking objects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fairpilot"

KUBERNETES = "1.35.0"


# Objects whose kinds come from CRDs: validated against those CRDs below, not the core schemas.
CUSTOM_KINDS = {"ServiceMonitor", "KopfPeering", "ClusterKopfPeering"}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # A GPU cluster watched whole, with Prometheus, two replicas and every integration on.
    "gpu-all-namespaces": {
        "image": {"operator": {"repository": "registry.example.com/fp/operator", "tag": "1.2.3"}},
        "watch": {"allNamespaces": True},
        "replicaCount": 2,
        "podDisruptionBudget": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "artifactRoot": "s3://ml-artifacts/fairpilot",
        "s3": {"endpointUrl": "https://minio.storage:9000", "credentialsSecret": "fairpilot-s3"},
        "access": {
            "dataLocations": ["s3://datasets/{namespace}/{user_id}/"],
            "namespaces": {
                "team-a": {"dataLocations": ["s3://team-a-data/"], "s3CredentialsSecret": "a-s3"},
                "team-b": {"artifactRoot": "s3://fairpilot-{namespace}"},
            },
        },
        "gpu": {
            "runtimeClassName": "nvidia",
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "resourceName": "nvidia.com/gpu",
        },
        "jobs": {
            "activeDeadlineSeconds": 7200,
            "ttlSecondsAfterFinished": 3600,
            "inputLimits": {"maxDecompressedBytes": 8 * 2**30, "maxColumns": 2000},
        },
        "kafka": {
            "bootstrapServers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
            "securityProtocol": "SASL_SSL",
            "sasl": {
                "mechanism": "SCRAM-SHA-512",
                "username": "fairpilot",
                "passwordSecret": {"name": "kafka-user", "key": "password"},
            },
            "tls": {"caSecret": {"name": "kafka-ca", "key": "ca.crt"}},
            "allowedNamespaces": ["team-a"],
            "principals": {"billing": {"userIds": ["alice"], "namespaces": ["team-a"]}},
            "topics": {"deadLetter": "fairpilot.dlq"},
        },
        "mongo": {"uriSecret": {"name": "warehouse", "key": "uri"}},
    },
    # Two namespaces, two replicas: a Role and a KopfPeering in each.
    "two-namespaces": {
        "watch": {"namespaces": ["ml", "fairpilot"]},
        "replicaCount": 2,
        "kafka": {"bootstrapServers": "kafka:9092", "namespace": "ml"},
    },
}


def run_helm(helm: Path, *args: str, values: dict[str, Any] | None = None) -> str:
    command = [str(helm), *args]
    if values:
        command += ["--values", "-"]
    done = subprocess.run(
        command, input=yaml.safe_dump(values or {}), capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def render(helm: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    text = run_helm(helm, "template", "fairpilot", str(CHART), "-n", "fairpilot", values=values)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def crd_schema(kind: str) -> dict[str, Any]:
    for path in (CHART / "crds").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["spec"]["names"]["kind"] == kind:
                return doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise KeyError(kind)


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(objects, "Deployment")
    (operator,) = deployment["spec"]["template"]["spec"]["containers"]
    return operator


def plain_env(operator: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the process sees it (Secret values stand in as 'secret')."""
    return {e["name"]: e.get("value", "secret") for e in operator.get("env", [])}
