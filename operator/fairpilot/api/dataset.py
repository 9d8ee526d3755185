"""Dataset: where the data is, who owns it, and what the profile stage should look at."""

from __future__ import annotations

from pydantic import ConfigDict, Field, ValidationError, model_validator

from fairpilot.api.common import (
    ColumnName,
    DataLocation,
    InPipeline,
    OwnedSpec,
    TaskType,
    _UniqueColumnsMixin,
)
from fairpilot.api.fairness import FairnessOptions
from fairpilot.api.pipeline import MAX_FAIRNESS_FEATURES, PipelineSpec
from fairpilot.api.validation import describe


class DatasetFields(DataLocation, OwnedSpec, _UniqueColumnsMixin):
    """Fields shared by the Dataset resource and the profile job spec: a location and more."""

    target: ColumnName | None = Field(
        default=None,
        description="Column to predict. When omitted the profile suggests one.",
    )
    task_type: TaskType | None = Field(
        default=None,
        description="classification, binary, multiclass or regression; suggested when omitted.",
    )
    sensitive_features: list[ColumnName] = Field(
        default_factory=list,
        max_length=64,
        description="Columns describing protected groups (e.g. sex, race), for bias analysis.",
    )


class ProfileJobSpec(DatasetFields, InPipeline):
    """Spec file of `fairpilot-job profile`: the Dataset's spec."""


class DatasetSpec(DatasetFields):
    """Spec of the Dataset custom resource."""

    # The same rules as the validator below, for the API server to apply at `kubectl apply`.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.pipeline) || !(has(self.pipeline.bias) || "
                    "has(self.pipeline.training)) || has(self.target)",
                    "message": "a pipeline with bias or training needs target",
                },
                {
                    "rule": "!has(self.pipeline) || !has(self.pipeline.bias) || "
                    "size(self.sensitiveFeatures) > 0",
                    "message": "a pipeline with bias needs sensitiveFeatures",
                },
                {
                    "rule": "!has(self.pipeline) || !has(self.pipeline.explanation) || "
                    "has(self.pipeline.training)",
                    "message": "pipeline.explanation needs pipeline.training",
                },
                {
                    "rule": "!has(self.pipeline) || !has(self.pipeline.training) || "
                    "has(self.pipeline.bias) || !("
                    "(has(self.pipeline.training.mitigate) && self.pipeline.training.mitigate) || "
                    "(has(self.pipeline.training.mitigateIfBiasDetected) && "
                    "self.pipeline.training.mitigateIfBiasDetected))",
                    "message": "pipeline.training.mitigate and mitigateIfBiasDetected need "
                    "pipeline.bias",
                },
            ]
        }
    )

    pipeline: PipelineSpec | None = Field(
        default=None,
        description="Stages to chain after profiling: bias, training, explanation.",
    )

    @model_validator(mode="after")
    def _pipeline_has_what_it_needs(self) -> DatasetSpec:
        pipeline = self.pipeline
        if pipeline is None:
            return self
        if (pipeline.bias or pipeline.training) and not self.target:
            raise ValueError("a pipeline with bias or training needs target")
        if pipeline.bias and not self.sensitive_features:
            raise ValueError("a pipeline with bias needs sensitiveFeatures")
        if pipeline.explanation and not pipeline.training:
            raise ValueError("pipeline.explanation needs pipeline.training")
        if pipeline.training and pipeline.training.mitigate and not pipeline.bias:
            raise ValueError("pipeline.training.mitigate needs pipeline.bias")
        if pipeline.training and pipeline.training.mitigate_if_bias_detected and not pipeline.bias:
            raise ValueError("pipeline.training.mitigateIfBiasDetected needs pipeline.bias")
        fairness = pipeline.training.fairness if pipeline.training else None
        if fairness is not None and not fairness.sensitive_features and self.sensitive_features:
            # The pipeline measures its model on the Dataset's sensitive features (pipeline.py
            # fills them in): the block must hold with them, e.g. thresholds on one feature.
            filled = fairness.model_dump(by_alias=True, mode="json", exclude_unset=True) | {
                "sensitiveFeatures": self.sensitive_features[:MAX_FAIRNESS_FEATURES]
            }
            try:
                FairnessOptions.model_validate(filled)
            except ValidationError as exc:
                raise ValueError(
                    "pipeline.training.fairness, with the Dataset's sensitiveFeatures it is "
                    f"measured on: {describe(exc)}"
                ) from None
        return self
