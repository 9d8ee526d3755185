"""Kubernetes Jobs (and their spec ConfigMaps) for the stages, as plain dicts.

Pure functions of (resource, job spec, operator config): no API calls, so the shape of every
pod FairPilot starts can be tested, and reviewed, without a cluster. Nothing the user writes
reaches a shell: the container's command is a fixed argv and the spec travels as a file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from fairpilot import __version__, access
from fairpilot.api import labels as label
from fairpilot.api.kinds import Kind
from fairpilot.config import OperatorConfig
from fairpilot.runs import output_uri

SPEC_MOUNT = "/etc/fairpilot"
SPEC_FILE = "spec.yaml"
MAX_NAME = 63  # Job names become pod labels, which are limited to 63 characters
INPUT_ERROR_EXIT_CODE = 2  # `fairpilot-job`'s exit code for input it refuses


class GpuNotAllowed(Exception):
    """The resource asks for GPUs and the operator's configuration forbids them."""


def object_name(kind: Kind, name: str, run: str) -> str:
    """Deterministic, unique per resource run (`runs.run_id`), and a valid label value."""
    base = f"fp-{kind.stage}-{name}-{run}"
    if len(base) <= MAX_NAME:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    head = f"fp-{kind.stage}-{name}"[: MAX_NAME - len(f"-{run}") - 9].rstrip("-.")
    return f"{head}-{digest}-{run}"


def _label_value(name: str) -> str:
    """A resource name as a label value: at most 63 characters, ending alphanumeric (a name
    may be 253 long, and cutting one can leave a '-' or '.' the API server refuses)."""
    return name[:63].rstrip("-.")


def labels(kind: Kind, resource: dict[str, Any], run: str) -> dict[str, str]:
    meta = resource["metadata"]
    return {
        label.NAME: "fairpilot",
        label.COMPONENT: f"{kind.stage}-job",
        label.INSTANCE: _label_value(meta["name"]),
        label.MANAGED_BY: label.OPERATOR,
        label.VERSION: __version__,
        label.KIND: kind.kind,
        label.RESOURCE_NAME: _label_value(meta["name"]),
        label.GENERATION: str(meta["generation"]),
        label.RUN: run,
        label.STAGE: kind.stage,
    }


def owner_reference(kind: Kind, resource: dict[str, Any]) -> dict[str, Any]:
    meta = resource["metadata"]
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: dict[str, Any], uid: str | None) -> bool:
    """Whether `obj` has an owner reference with this `uid` (never, without one): ownership by
    uid, which no one else can give a resource, not by a name or a label anyone can copy."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return uid is not None and any(owner.get("uid") == uid for owner in owners)


def spec_config_map(
    kind: Kind, resource: dict[str, Any], job_spec: dict[str, Any], run: str
) -> dict[str, Any]:
    meta = resource["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        # A run's spec never changes: refused as an update by the API server once made.
        "immutable": True,
        "metadata": {
            "name": object_name(kind, meta["name"], run),
            "namespace": meta["namespace"],
            "labels": labels(kind, resource, run),
            "ownerReferences": [owner_reference(kind, resource)],
        },
        "data": {SPEC_FILE: yaml.safe_dump(job_spec, sort_keys=False)},
    }


def _resources(
    kind: Kind, spec: dict[str, Any], config: OperatorConfig
) -> tuple[dict[str, Any], int]:
    wanted = spec.get("resources") or {}
    gpus = int(wanted.get("gpu") or 0)
    if gpus and not config.gpu.allowed:
        raise GpuNotAllowed(f"resources.gpu is {gpus} but this operator does not allow GPUs")
    cpu = wanted.get("cpu") or config.jobs.cpu
    memory = wanted.get("memory") or config.jobs.memory
    requirements: dict[str, Any] = {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"memory": memory},
    }
    if gpus:
        requirements["limits"][config.gpu.resource_name] = str(gpus)
        requirements["requests"][config.gpu.resource_name] = str(gpus)
    return requirements, gpus


def _deadline(kind: Kind, spec: dict[str, Any], config: OperatorConfig) -> int:
    if kind.stage == "train":
        budget = int(spec.get("timeLimitSeconds") or 300)
        return max(
            config.jobs.active_deadline_seconds,
            budget + config.jobs.training_deadline_margin_seconds,
        )
    return config.jobs.active_deadline_seconds


def build_job(
    kind: Kind,
    resource: dict[str, Any],
    config: OperatorConfig,
    run: str,
    model_digest: str | None = None,
    candidate_digest: str | None = None,
) -> dict[str, Any]:
    """The stage's Job for one run: one container running `fairpilot-job STAGE`, locked down.

    `model_digest`: the digest of the model the job spec names; in the Job's own arguments too,
    which (unlike the spec's ConfigMap) nobody can change once the Job exists.
    `candidate_digest`: the same for a ModelMonitor window's retrained candidate (spec
    `candidate`), a second model the stage unpickles.
    """
    meta, spec = resource["metadata"], resource.get("spec") or {}
    name = object_name(kind, meta["name"], run)
    requirements, gpus = _resources(kind, spec, config)
    env = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        {"name": "FAIRPILOT_LOG_LEVEL", "value": "INFO"},
    ]
    if config.s3_endpoint_url:
        env.append({"name": "FAIRPILOT_S3_ENDPOINT_URL", "value": config.s3_endpoint_url})
    if config.file_root:
        env.append({"name": "FAIRPILOT_FILE_ROOT", "value": config.file_root})
    env.extend(config.jobs.input_limits.env())
    readable = access.readable(config, meta["namespace"], spec.get("userId"))
    if readable is not None:
        # The pod checks every location it opens against these, as the operator did: a job
        # spec changed on the way (its ConfigMap) still reads nothing of another tenant.
        env.append({"name": access.ALLOWED_LOCATIONS_ENV, "value": json.dumps(readable)})
    container: dict[str, Any] = {
        "name": "stage",
        "image": config.jobs_cuda_image if gpus else config.jobs_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["fairpilot-job", kind.stage],
        "args": [
            "--spec",
            f"{SPEC_MOUNT}/{SPEC_FILE}",
            "--output",
            output_uri(config, kind, resource, run),
            # The stage writes only into an empty location or one this run claimed (a retry).
            "--run-id",
            f"{meta['uid']}/{run}",
            *(["--model-digest", model_digest] if model_digest else []),
            *(["--candidate-digest", candidate_digest] if candidate_digest else []),
        ],
        "env": env,
        "resources": requirements,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": config.run_as_user,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    secret = access.credentials_secret(config, meta["namespace"])
    if secret:
        # A pod reads only Secrets of its own namespace: the stage runs with this namespace's
        # credentials, which need reach no further than its data and artifact prefixes.
        container["envFrom"] = [{"secretRef": {"name": secret}}]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": config.run_as_user,
            "runAsGroup": config.run_as_user,
            "fsGroup": config.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "spec", "configMap": {"name": name}},
            # AutoGluon, matplotlib and downloads need scratch space; the root stays read-only.
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if gpus:
        pod_spec["tolerations"] = [dict(t) for t in config.gpu.tolerations]
        if config.gpu.node_selector:
            pod_spec["nodeSelector"] = dict(config.gpu.node_selector)
        if config.gpu.runtime_class_name:
            pod_spec["runtimeClassName"] = config.gpu.runtime_class_name
    job_labels = labels(kind, resource, run)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": job_labels,
            "ownerReferences": [owner_reference(kind, resource)],
        },
        "spec": {
            "backoffLimit": config.jobs.backoff_limit,
            # Exit code 2 is the stage saying its input is wrong: retrying cannot help, so the
            # Job fails at once; a crash (1), an OOM kill or an eviction still retries.
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "stage",
                            "operator": "In",
                            "values": [INPUT_ERROR_EXIT_CODE],
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "activeDeadlineSeconds": _deadline(kind, spec, config),
            "ttlSecondsAfterFinished": config.jobs.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
        },
    }
