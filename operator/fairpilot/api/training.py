"""TrainingRun: AutoGluon training with an optional bias mitigation and validation threshold."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from fairpilot.api.common import (
    ColumnName,
    DataLocation,
    Id,
    InPipeline,
    ModelLocation,
    OwnedSpec,
    SpecModel,
    TaskType,
)
from fairpilot.api.fairness import FairnessOptions


class Algorithm(StrEnum):
    """Model families AutoGluon may try; names map to AutoGluon's hyperparameter keys."""

    LIGHTGBM = "lightgbm"
    CATBOOST = "catboost"
    XGBOOST = "xgboost"
    RANDOM_FOREST = "random_forest"
    EXTRA_TREES = "extra_trees"
    NEURAL_NETWORK = "neural_network"
    KNN = "knn"
    LINEAR = "linear"


class Preset(StrEnum):
    MEDIUM_QUALITY = "medium_quality"
    GOOD_QUALITY = "good_quality"
    HIGH_QUALITY = "high_quality"
    BEST_QUALITY = "best_quality"
    OPTIMIZE_FOR_DEPLOYMENT = "optimize_for_deployment"


class Resources(SpecModel):
    """What the stage's pod gets; `gpu > 0` makes AutoGluon train on the GPU."""

    cpu: str | None = Field(default=None, description="CPU request, e.g. '2' or '500m'.")
    memory: str | None = Field(default=None, description="Memory request, e.g. '8Gi'.")
    gpu: int = Field(default=0, ge=0, le=16, description="Number of GPUs.")


class ValidationThreshold(SpecModel):
    """The seed's model validation: the model passes when the metric reaches the bound."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.min) || has(self.max)", "message": "give min or max"}
            ]
        }
    )

    metric: str | None = Field(
        default=None, description="AutoGluon metric name; defaults to the eval metric."
    )
    min: float | None = Field(default=None, description="Pass when the metric is >= min.")
    max: float | None = Field(default=None, description="Pass when the metric is <= max.")
    on: str = Field(
        default="test",
        pattern="^(test|validation)$",
        description="Which metrics to judge: test (falls back to validation) or validation.",
    )

    @model_validator(mode="after")
    def _a_bound(self) -> ValidationThreshold:
        if self.min is None and self.max is None:
            raise ValueError("give min or max")
        return self


class TrainingOptions(SpecModel):
    """How to train: the fields a Dataset's pipeline may set for its training stage."""

    eval_metric: str | None = Field(
        default=None,
        max_length=64,
        description="AutoGluon metric (roc_auc, accuracy, f1, rmse, ...); AutoGluon's default.",
    )
    time_limit_seconds: int = Field(
        default=300, ge=10, le=7 * 24 * 3600, description="Training time budget in seconds."
    )
    presets: Preset = Field(default=Preset.MEDIUM_QUALITY, description="AutoGluon presets.")
    algorithms: list[Algorithm] = Field(
        default_factory=lambda: [Algorithm.LIGHTGBM, Algorithm.CATBOOST, Algorithm.XGBOOST],
        min_length=1,
        description=(
            "Model families to try. The default, gradient-boosted trees, lets the explanation "
            "use exact TreeSHAP."
        ),
    )
    excluded_columns: list[ColumnName] = Field(
        default_factory=list, description="Columns not used as features (IDs, leaks)."
    )
    resources: Resources = Field(default_factory=Resources, description="Pod resources.")
    validation_threshold: ValidationThreshold | None = Field(
        default=None, description="Bound the model must meet to be marked production-ready."
    )
    fairness: FairnessOptions | None = Field(
        default=None,
        description=(
            "Measure the model's fairness on held-out data (per group of each sensitive "
            "feature) and gate it; a pipeline sets it from its Dataset's sensitiveFeatures."
        ),
    )
    model_id: Id | None = Field(
        default=None,
        description="Model id for the registry (seed 004), the same rule as a message's model_id.",
    )
    version: Id | None = Field(
        default=None,
        description=(
            "The model's version, e.g. v1; by default v1 for the first model, then the next free "
            "one. One (modelId, version) is always one model: a retrain (a new spec generation, "
            "or a re-run after an input changed) takes the next free version (v1 -> v2)."
        ),
    )
    seed: int = Field(default=0, ge=0, description="Random seed, for reproducible runs.")


# The owner is not a training option: a pipeline's stages all belong to the Dataset's owner.
class TrainingFields(TrainingOptions, OwnedSpec):
    """Fields shared by the TrainingRun resource and the train job spec."""

    target: ColumnName = Field(description="Column to predict.")
    task_type: TaskType | None = Field(
        default=None, description="classification, binary, multiclass or regression."
    )


class JobMitigation(SpecModel):
    """Resolved mitigation: the reweighing table written by a bias job."""

    reweighing: DataLocation = Field(description="reweighing.json from a bias job.")


class TrainJobSpec(TrainingFields, InPipeline):
    """Spec file of `fairpilot-job train`: references resolved to locations."""

    model_output: ModelLocation | None = Field(
        default=None,
        description=(
            "Where the model goes: the operator gives the registry's <user>/models/<modelId>/"
            "<version>/ folder, claimed for this run alone; by default <output>/model."
        ),
    )

    dataset: DataLocation = Field(description="Training data.")
    test_dataset: DataLocation | None = Field(
        default=None, description="Held-out data for test metrics."
    )
    mitigation: JobMitigation | None = Field(
        default=None, description="Sample weights from a bias analysis."
    )


class Mitigation(SpecModel):
    """Bias mitigation for a TrainingRun."""

    bias_analysis_ref: str = Field(
        description="BiasAnalysis whose reweighing weights become sample weights."
    )


class TrainingRunSpec(TrainingFields):
    """Spec of the TrainingRun custom resource."""

    dataset_ref: str = Field(description="Dataset to train on.")
    test_dataset_ref: str | None = Field(default=None, description="Dataset for test metrics.")
    mitigation: Mitigation | None = Field(default=None, description="Bias mitigation.")
