"""The operator's configuration: what a platform team sets once (Helm values, environment)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fairpilot.api.validation import template_problem


def _templates(values: list[str] | None) -> list[str] | None:
    for template in values or []:
        found = template_problem(template)
        if found:
            raise ValueError(found)
    return values


def _root_template(value: str | None) -> str | None:
    if value is None:
        return value
    found = template_problem(value)
    if found is None and "{user_id}" in value:
        found = f"{value!r}: an artifact root is per namespace; {{user_id}} is added below it"
    if found:
        raise ValueError(found)
    return value


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


class InputLimits(BaseModel):
    """Bounds on what a stage reads, so that hostile data fails in seconds with a reason
    (exit code 2) rather than taking the pod's memory; None: the stage's default."""

    model_config = ConfigDict(extra="forbid")

    max_columns: int | None = Field(
        default=None, ge=1, description="Widest table read (default 10,000)."
    )
    max_decompressed_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Most bytes a compressed input or Parquet file may expand to (default 4 GiB).",
    )
    max_parquet_metadata_bytes: int | None = Field(
        default=None, ge=1, description="Largest Parquet footer read (default 64 MiB)."
    )
    max_parquet_row_groups: int | None = Field(
        default=None, ge=1, description="Most row groups a Parquet file may have (default 100,000)."
    )

    def env(self) -> list[dict[str, str]]:
        """The stage's environment variables for the limits that are set."""
        names = {
            "max_columns": "FAIRPILOT_MAX_COLUMNS",
            "max_decompressed_bytes": "FAIRPILOT_MAX_DECOMPRESSED_BYTES",
            "max_parquet_metadata_bytes": "FAIRPILOT_MAX_PARQUET_METADATA_BYTES",
            "max_parquet_row_groups": "FAIRPILOT_MAX_PARQUET_ROW_GROUPS",
        }
        return [
            {"name": variable, "value": str(getattr(self, field))}
            for field, variable in names.items()
            if getattr(self, field) is not None
        ]


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
    input_limits: InputLimits = Field(default_factory=InputLimits)


class NamespaceAccess(BaseModel):
    """What one namespace's resources may read and where they write (`namespaces` entries).

    A field left unset takes the operator-wide value. Templates take `{namespace}` and
    `{user_id}` (the resource's spec.userId), see `fairpilot.access`.
    """

    model_config = ConfigDict(extra="forbid")

    data_locations: list[str] | None = Field(
        default=None,
        description="Folders (file:// or s3:// prefixes, templates) this namespace may read.",
    )
    artifact_root: str | None = Field(
        default=None, description="Where this namespace's stages write (a template)."
    )
    s3_credentials_secret: str | None = Field(
        default=None,
        description="The Secret, in this namespace, that its stage pods take S3 credentials from.",
    )

    _locations = field_validator("data_locations")(_templates)
    _root = field_validator("artifact_root")(_root_template)


UriScheme = Literal["s3", "file"]


def _every_uri_scheme() -> list[UriScheme]:
    return ["s3", "file"]


class OperatorConfig(BaseModel):
    """Everything the operator needs to turn a resource into a Job."""

    model_config = ConfigDict(extra="forbid")

    jobs_image: str = Field(default="ghcr.io/fairpilot/jobs:0.1.0")
    jobs_cuda_image: str = Field(default="ghcr.io/fairpilot/jobs-cuda:0.1.0")
    image_pull_policy: str = Field(default="IfNotPresent")
    artifact_root: str = Field(
        default="s3://fairpilot-artifacts",
        description=(
            "Where stages write: s3:// or file://. Every namespace writes under its own prefix: "
            "<artifact_root>/<namespace>/..., or where the template's {namespace} says "
            "(s3://fairpilot-{namespace}: a bucket per namespace)."
        ),
    )
    s3_endpoint_url: str | None = Field(default=None, description="For MinIO and other S3 APIs.")
    s3_credentials_secret: str | None = Field(
        default=None,
        description=(
            "Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY that stage pods take their "
            "credentials from. A pod can only reference a Secret of its own namespace, so each "
            "namespace has its own (the same name, or a template with {namespace})."
        ),
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
    uri_schemes: list[UriScheme] = Field(
        default_factory=_every_uri_scheme,
        min_length=1,
        description=(
            "URI schemes a Dataset may name. A Dataset whose URI has another scheme, or a "
            "file:// URI outside file_root, fails before any Job is started."
        ),
    )
    data_locations: list[str] = Field(
        default_factory=list,
        description=(
            "The folders a resource may read data from: file:// or s3:// prefixes, templates "
            "with {namespace} and {user_id} (e.g. s3://datasets/{namespace}/{user_id}/). The "
            "operator refuses a Dataset outside them before any Job, and the stage pod checks "
            "again (FAIRPILOT_ALLOWED_LOCATIONS). Empty: any location uri_schemes and "
            "file_root allow, which suits a cluster with one team only."
        ),
    )
    namespaces: dict[str, NamespaceAccess] = Field(
        default_factory=dict,
        description="Per-namespace data locations, artifact root and credentials Secret.",
    )
    follow_inputs: bool = Field(
        default=True,
        description=(
            "Re-run a finished resource when an input it used changed (a TrainingRun retrained "
            "under its Explanation, a Dataset profiled again under its BiasAnalysis); False "
            "only marks it UpToDate=False."
        ),
    )

    _locations = field_validator("data_locations")(_templates)
    _root = field_validator("artifact_root")(_root_template)
