"""BiasAnalysis: pre- and post-training bias metrics per sensitive feature and group."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator
from pydantic.json_schema import JsonDict

from fairpilot.api.common import (
    ColumnName,
    DataLocation,
    InPipeline,
    LabelValue,
    ModelLocation,
    OwnedSpec,
    SpecModel,
    _UniqueColumnsMixin,
)


class BiasThresholds(SpecModel):
    """When to set the `BiasDetected` condition."""

    disparate_impact: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description=(
            "Smallest acceptable disparate impact (DI, or the label's ratio LDI before training): "
            "0.8 is the four-fifths rule."
        ),
    )
    max_parity_difference: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Largest acceptable |DPPL| (or |DPL| before training); unchecked if unset.",
    )


PRIVILEGED_RULE: JsonDict = {
    "rule": "self.privilegedGroups.all(k, k in self.sensitiveFeatures)",
    "message": "privilegedGroups may only name features listed in sensitiveFeatures",
}
# Checked by the model (the operator validates every spec with it), not by a CEL rule: a
# comparison with a nullable field is not one this API's rules make.
GROUP_VARIABLE_IS_TARGET = "groupVariable must not be the target: each stratum has one outcome"


class BiasOptions(SpecModel):
    """How to analyse: the fields a Dataset's pipeline may set for its bias stage."""

    positive_label: LabelValue | None = Field(
        default=None,
        description=(
            "The favourable label value. When omitted: 1/true if the label is 0/1 or boolean, "
            "else the less frequent of two values."
        ),
    )
    privileged_groups: dict[ColumnName, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        description=(
            "Privileged (advantaged) group per sensitive feature. Features not listed use the "
            "group with the highest positive rate (among groups of 30 rows or more, when any)."
        ),
    )
    prediction_column: ColumnName | None = Field(
        default=None,
        description="Column holding a model's predictions, for post-training metrics.",
    )
    group_variable: ColumnName | None = Field(
        default=None,
        description=(
            "The column the disparity is conditioned on, e.g. a department; CDDL (and CDDPL, "
            "with predictions) are computed when given."
        ),
    )
    thresholds: BiasThresholds = Field(
        default_factory=BiasThresholds, description="When bias counts as detected."
    )
    min_group_size: int = Field(
        default=1,
        ge=1,
        description="Groups with fewer rows are reported but get no metrics.",
    )


class BiasFields(BiasOptions, OwnedSpec, _UniqueColumnsMixin):
    """Fields shared by the BiasAnalysis resource and the bias job spec."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [PRIVILEGED_RULE]})

    target: ColumnName = Field(description="Label column.")
    sensitive_features: list[ColumnName] = Field(
        min_length=1,
        max_length=64,
        description="Columns describing protected groups, e.g. [sex, race].",
    )

    @model_validator(mode="after")
    def _privileged_features_are_sensitive(self) -> BiasFields:
        unknown = sorted(set(self.privileged_groups) - set(self.sensitive_features))
        if unknown:
            raise ValueError(
                f"privilegedGroups names {unknown}, which are not in sensitiveFeatures"
            )
        if self.group_variable is not None and self.group_variable == self.target:
            raise ValueError(GROUP_VARIABLE_IS_TARGET)
        return self


class BiasJobSpec(BiasFields, InPipeline):
    """Spec file of `fairpilot-job bias`: references resolved to locations."""

    dataset: DataLocation = Field(description="The data to analyse.")
    model: ModelLocation | None = Field(
        default=None,
        description="A model from the train stage; its predictions give post-training metrics.",
    )

    @model_validator(mode="after")
    def _one_prediction_source(self) -> BiasJobSpec:
        if self.model is not None and self.prediction_column is not None:
            raise ValueError("give either model or predictionColumn, not both")
        return self


class BiasAnalysisSpec(BiasFields):
    """Spec of the BiasAnalysis custom resource."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                PRIVILEGED_RULE,
                {
                    "rule": "!(has(self.trainingRunRef) && has(self.predictionColumn))",
                    "message": "give either trainingRunRef or predictionColumn, not both",
                },
            ]
        }
    )

    dataset_ref: str = Field(description="Name of the Dataset in the same namespace.")
    training_run_ref: str | None = Field(
        default=None,
        description="Name of a TrainingRun whose model gives post-training metrics.",
    )
