"""A Dataset's `pipeline` block: the stages to chain after profiling (the seed's agentic core).

Each stage takes its target and sensitive features from the Dataset and its options from
here, so one resource describes the whole run. The training stage measures the model's
fairness on the Dataset's sensitive features unless `training.fairness` names its own.
"""

from __future__ import annotations

from pydantic import Field

from fairpilot.api.bias import BiasOptions
from fairpilot.api.common import SpecModel
from fairpilot.api.explanation import ExplanationFields
from fairpilot.api.fairness import FairnessOptions
from fairpilot.api.training import TrainingOptions

# A Dataset may name up to 64 sensitive features, a model's fairness at most 16: a pipeline
# measures its model on the first 16 rather than have the TrainingRun refused.
MAX_FAIRNESS_FEATURES: int = next(
    rule.max_length
    for rule in FairnessOptions.model_fields["sensitive_features"].metadata
    if getattr(rule, "max_length", None) is not None
)


class PipelineBias(BiasOptions):
    """The bias stage of a pipeline."""

    stop_if_bias_detected: bool = Field(
        default=False,
        description="Stop the pipeline (no training) when the analysis sets BiasDetected.",
    )


class PipelineTraining(TrainingOptions):
    """The training stage of a pipeline."""

    test_dataset_ref: str | None = Field(default=None, description="Dataset for test metrics.")
    mitigate: bool = Field(
        default=False,
        description="Train with the bias stage's reweighing weights (needs the bias stage).",
    )
    mitigate_if_bias_detected: bool = Field(
        default=False,
        description=(
            "Train with the bias stage's reweighing weights only when it set BiasDetected "
            "(needs the bias stage); `mitigate` always does."
        ),
    )


class PipelineExplanation(ExplanationFields):
    """The explanation stage of a pipeline."""


class PipelineSpec(SpecModel):
    """Stages that run one after the other once the Dataset is profiled; omit one to skip it."""

    bias: PipelineBias | None = Field(default=None, description="Bias analysis options.")
    training: PipelineTraining | None = Field(default=None, description="Training options.")
    explanation: PipelineExplanation | None = Field(
        default=None, description="Explanation options (needs the training stage)."
    )
