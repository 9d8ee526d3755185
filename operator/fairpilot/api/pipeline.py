"""A Dataset's `pipeline` block: the stages to chain after profiling (the seed's agentic core).

Each stage takes its target and sensitive features from the Dataset and its options from
here, so one resource describes the whole run.
"""

from __future__ import annotations

from pydantic import Field

from fairpilot.api.bias import BiasOptions
from fairpilot.api.common import SpecModel
from fairpilot.api.explanation import ExplanationFields
from fairpilot.api.training import TrainingOptions


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


class PipelineExplanation(ExplanationFields):
    """The explanation stage of a pipeline."""


class PipelineSpec(SpecModel):
    """Stages that run one after the other once the Dataset is profiled; omit one to skip it."""

    bias: PipelineBias | None = Field(default=None, description="Bias analysis options.")
    training: PipelineTraining | None = Field(default=None, description="Training options.")
    explanation: PipelineExplanation | None = Field(
        default=None, description="Explanation options (needs the training stage)."
    )
