"""Explanation: SHAP values for a trained model, with reports per expertise level."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from fairpilot.api.common import DataLocation, Id, InPipeline, ModelLocation, OwnedSpec, SpecModel


class ExpertiseLevel(StrEnum):
    """Who reads the report (seed 001's levels)."""

    BEGINNER = "beginner"
    INTERMEDIATE = "intermediate"
    EXPERT = "expert"


class ShapMethod(StrEnum):
    """How SHAP values are computed."""

    AUTO = "auto"  # exact TreeSHAP where the ensemble allows it, else permutation
    TREE = "tree"  # exact TreeSHAP; fails when the ensemble does not allow it
    PERMUTATION = "permutation"  # model-agnostic, exactly additive
    KERNEL = "kernel"  # model-agnostic KernelSHAP, the classic reference


class ExplanationFields(SpecModel):
    """Fields shared by the Explanation resource and the explain job spec."""

    sample_size: int = Field(
        default=1000, ge=1, le=100_000, description="Rows to explain (sampled without replacement)."
    )
    background_size: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description=(
            "Background rows: the base value is the model's mean output over them (E[f(X)]), "
            "and every method (TreeSHAP too) measures effects against them."
        ),
    )
    levels: list[ExpertiseLevel] = Field(
        default_factory=lambda: list(ExpertiseLevel),
        min_length=1,
        description="Reports to write: beginner, intermediate, expert.",
    )
    method: ShapMethod = Field(
        default=ShapMethod.AUTO, description="auto, tree, permutation or kernel."
    )
    seed: int = Field(default=0, ge=0, description="Random seed for sampling rows.")


class ExplainJobSpec(ExplanationFields, OwnedSpec, InPipeline):
    """Spec file of `fairpilot-job explain`: references resolved to locations."""

    model: ModelLocation = Field(description="Model directory written by the train stage.")
    dataset: DataLocation = Field(description="Rows to explain (the label column may be present).")


# Not on ExplanationFields: a pipeline's explanation block shares those, and its owner is the
# Dataset's.
class ExplanationSpec(ExplanationFields, OwnedSpec):
    """Spec of the Explanation custom resource."""

    training_run_ref: str = Field(description="TrainingRun whose model is explained.")
    model_version: Id | None = Field(
        default=None,
        description=(
            "Which of the TrainingRun's models to explain (status.models); by default its "
            "current one, re-explained whenever it trains a new one."
        ),
    )
    dataset_ref: str | None = Field(
        default=None,
        description=(
            "Dataset whose rows are explained; by default the TrainingRun's test data, "
            "else its training data."
        ),
    )
