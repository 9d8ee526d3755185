"""Statuses of the four resources, in Kubernetes API conventions (phase plus conditions).

The operator projects a stage's `result.json` into these; the CRDs' status schemas and
printer columns come from them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from fairpilot.api.common import SpecModel


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(SpecModel):
    """One aspect of the resource's state (Kubernetes API conventions)."""

    type: str = Field(description="Ready, JobCreated, BiasDetected, ...", max_length=64)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", max_length=128, description="CamelCase reason.")
    message: str = Field(default="", max_length=4096, description="What a person should know.")
    last_transition_time: str | None = Field(
        default=None, description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation the condition is about."
    )


class Delivered(SpecModel):
    """Ids of the deliveries made for the current generation, per destination."""

    kafka: list[str] = Field(
        default_factory=list, max_length=1000, description="Kafka events produced."
    )
    warehouse: list[str] = Field(
        default_factory=list, max_length=1000, description="Warehouse (MongoDB) writes made."
    )


class ResourceStatus(SpecModel):
    """What every FairPilot resource reports."""

    phase: Phase = Field(
        default=Phase.PENDING, description="Pending, Running, Succeeded or Failed."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")
    observed_generation: int | None = Field(
        default=None, description="The spec generation this status describes."
    )
    job_name: str | None = Field(default=None, description="The stage's Kubernetes Job.")
    message: str | None = Field(default=None, description="One line on the current state.")
    output_uri: str | None = Field(default=None, description="Where the stage wrote its artifacts.")
    reports: dict[str, str] = Field(default_factory=dict, description="HTML reports by name.")
    started_at: str | None = Field(default=None, description="When the stage's Job started.")
    finished_at: str | None = Field(default=None, description="When the stage's Job finished.")
    delivered: Delivered | None = Field(
        default=None,
        description="What the outbox has delivered about this resource, so none is sent twice.",
    )


class DatasetStatus(ResourceStatus):
    rows: int | None = Field(default=None, description="Rows in the data.")
    columns: int | None = Field(default=None, description="Columns in the data.")
    suggested_target: str | None = Field(default=None, description="The profile's suggestion.")
    suggested_task_type: str | None = Field(default=None, description="The profile's suggestion.")
    warnings: int | None = Field(default=None, description="Number of profile warnings.")
    pipeline: str | None = Field(
        default=None, description="The pipeline's state: Running, Succeeded, Stopped or Failed."
    )
    pipeline_message: str | None = Field(
        default=None, description="Why the pipeline is where it is."
    )


class BiasAnalysisStatus(ResourceStatus):
    bias_detected: bool | None = Field(default=None, description="A threshold was crossed.")
    min_disparate_impact: float | None = Field(
        default=None, description="Lowest DI (or LDI) over all groups."
    )
    findings: list[str] = Field(default_factory=list, description="Thresholds crossed, in words.")
    reweighing_uri: str | None = Field(default=None, description="Reweighing weights (mitigation).")


class SplitScores(SpecModel):
    """One score per data split, as the seed's model.uploaded event reports them."""

    training: float | None = Field(default=None, description="On the rows trained on.")
    validation: float | None = Field(default=None, description="On held-out validation rows.")
    test: float | None = Field(default=None, description="On the test dataset, if any.")


class TrainingRunStatus(ResourceStatus):
    best_model: str | None = Field(default=None, description="AutoGluon's best model.")
    eval_metric: str | None = Field(default=None, description="Metric the model was chosen by.")
    best_score: float | None = Field(
        default=None, description="Eval metric on the test data, else on validation."
    )
    model_uri: str | None = Field(default=None, description="The stored model directory.")
    model_size_mb: float | None = Field(default=None, description="Size of the stored model.")
    validation_passed: bool | None = Field(
        default=None, description="Whether the model met the validation threshold."
    )
    model_id: str | None = Field(default=None, description="The model's id (seed 004).")
    model_version: str | None = Field(default=None, description="The model's version, e.g. v1.")
    model_type: str | None = Field(default=None, description="classification or regression.")
    framework: str | None = Field(default=None, description="autogluon.")
    algorithm: str | None = Field(default=None, description="The best model and its members.")
    accuracy: SplitScores | None = Field(
        default=None,
        description="Accuracy (R² for regression) on the training, validation and test data.",
    )


class ExplanationStatus(ResourceStatus):
    method: str | None = Field(default=None, description="tree, permutation or kernel.")
    top_feature: str | None = Field(
        default=None, description="Feature with the largest mean |SHAP|."
    )
    additivity_error: float | None = Field(
        default=None, description="Max |base + sum of SHAP - model output| over explained rows."
    )
