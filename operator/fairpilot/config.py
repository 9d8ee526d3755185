"""The operator's configuration: what a platform team sets once (Helm values, environment)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GpuConfig(BaseModel):
    """How GPU stages are scheduled."""

    model_config = ConfigDict(extra="forbid")

    allowed: bool = Field(default=True, description="Whether resources may ask for GPUs at all.")
    resource_name: str = Field(default="nvidia.com/gpu", description="Extended resource to limit.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="For GPU pods only.")
    runtime_class_name: str | None = Field(default=None, description="e.g. nvidia.")
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ],
        description="Tolerations added to GPU pods.",
    )


class JobDefaults(BaseModel):
    """Defaults for every stage Job, when the resource does not say."""

    model_config = ConfigDict(extra="forbid")

    backoff_limit: int = Field(default=2, ge=0, le=20)
    active_deadline_seconds: int = Field(default=6 * 3600, ge=1)
    ttl_seconds_after_finished: int = Field(default=24 * 3600, ge=0)
    cpu: str = "1"
    memory: str = "4Gi"
    # Training needs headroom beyond its time budget for loading, metrics and the upload.
    training_deadline_margin_seconds: int = Field(default=1800, ge=0)


class OperatorConfig(BaseModel):
    """Everything the operator needs to turn a resource into a Job."""

    model_config = ConfigDict(extra="forbid")

    jobs_image: str = Field(default="ghcr.io/fairpilot/jobs:0.1.0")
    jobs_cuda_image: str = Field(default="ghcr.io/fairpilot/jobs-cuda:0.1.0")
    image_pull_policy: str = Field(default="IfNotPresent")
    artifact_root: str = Field(
        default="s3://fairpilot-artifacts", description="Where stages write: s3:// or file://."
    )
    s3_endpoint_url: str | None = Field(default=None, description="For MinIO and other S3 APIs.")
    s3_credentials_secret: str | None = Field(
        default=None, description="Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."
    )
    gpu: GpuConfig = Field(default_factory=GpuConfig)
    jobs: JobDefaults = Field(default_factory=JobDefaults)
    run_as_user: int = Field(default=10001, ge=1, description="Non-root UID of stage pods.")
    file_root: str | None = Field(
        default=None,
        pattern=r"^/",
        description=(
            "The only directory file:// URIs may name in stage pods (FAIRPILOT_FILE_ROOT). A "
            "URI from a user or a Kafka message could otherwise make a job read any file of its "
            "container, /proc/self/environ and its credentials included, into a report. The "
            "chart sets /data; None leaves it to the node (the sandbox sets its own)."
        ),
    )
    uri_schemes: list[Literal["s3", "file"]] = Field(
        default_factory=lambda: ["s3", "file"],
        min_length=1,
        description=(
            "URI schemes a Dataset may name. A Dataset whose URI has another scheme, or a "
            "file:// URI outside file_root, fails before any Job is started."
        ),
    )
    follow_inputs: bool = Field(
        default=True,
        description=(
            "Re-run a finished resource when an input it used changed (a TrainingRun retrained "
            "under its Explanation, a Dataset profiled again under its BiasAnalysis); False "
            "only marks it UpToDate=False."
        ),
    )
