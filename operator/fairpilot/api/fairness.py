"""A trained model's fairness: which groups to measure it on, and the gates it must pass.

The measures are fairlearn's (between groups, not against one reference group), on held-out
data, over the groups of at least `minGroupSize` rows:

- `disparateImpact`: the lowest selection rate (share predicted positive) over the highest;
  the four-fifths rule asks for >= 0.8. fairlearn's `demographic_parity_ratio`.
- `statisticalParityDifference`: the highest selection rate minus the lowest.
  fairlearn's `demographic_parity_difference`.
- `equalOpportunityDifference`: the highest true positive rate minus the lowest.
- `equalizedOddsDifference`: the larger of the true and the false positive rates' spreads.
  fairlearn's `equalized_odds_difference`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, field_validator, model_validator

from fairpilot.api.common import ColumnName, LabelValue, SpecModel, unique_columns


class FairnessMetric(StrEnum):
    """What a fairness gate bounds (see the module's doc for the definitions)."""

    DISPARATE_IMPACT = "disparateImpact"
    STATISTICAL_PARITY_DIFFERENCE = "statisticalParityDifference"
    EQUAL_OPPORTUNITY_DIFFERENCE = "equalOpportunityDifference"
    EQUALIZED_ODDS_DIFFERENCE = "equalizedOddsDifference"


class FairnessGate(SpecModel):
    """A bound on one fairness measure of the trained model, on held-out data."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.min) || has(self.max)", "message": "give min or max"}
            ]
        }
    )

    metric: FairnessMetric = Field(
        description=(
            "disparateImpact (min/max selection rate), statisticalParityDifference, "
            "equalOpportunityDifference or equalizedOddsDifference."
        )
    )
    min: float | None = Field(default=None, description="Pass when the measure is >= min.")
    max: float | None = Field(default=None, description="Pass when the measure is <= max.")
    feature: ColumnName | None = Field(
        default=None, description="The sensitive feature it applies to; default: every one."
    )

    @model_validator(mode="after")
    def _a_bound(self) -> FairnessGate:
        if self.min is None and self.max is None:
            raise ValueError("give min or max")
        return self


class FairnessMethod(StrEnum):
    """How the model is made fairer after training (reweighing is `mitigation`, before it)."""

    NONE = "none"
    THRESHOLDS = "thresholds"


class FairnessOptions(SpecModel):
    """Measure the trained model's fairness on held-out data, and gate it."""

    sensitive_features: list[ColumnName] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Columns whose groups the model is measured on (each, and their intersections); "
            "default: the Dataset's sensitiveFeatures."
        ),
    )
    positive_label: LabelValue | None = Field(
        default=None,
        description="The favourable prediction; default: the model's positive class.",
    )
    min_group_size: int = Field(
        default=30,
        ge=1,
        description=(
            "Groups with fewer held-out rows are reported (flagged) but not compared: a rate "
            "of a handful of rows is noise."
        ),
    )
    method: FairnessMethod = Field(
        default=FairnessMethod.NONE,
        description=(
            "thresholds: one decision threshold per group of the constrained feature, fitted "
            "on the validation rows to meet `constraints` at the best accuracy, stored with "
            "the model and applied by its predict helper; none: the model's own decisions."
        ),
    )
    constraints: list[FairnessGate] = Field(
        default_factory=list,
        max_length=8,
        description=(
            "What the thresholds must achieve on the validation rows, e.g. "
            "{metric: disparateImpact, min: 0.8, feature: sex}; all on one feature."
        ),
    )
    baseline: bool = Field(
        default=True,
        description=(
            "With reweighing (mitigation), also train an unmitigated model on the same data "
            "with the same share of the budget, to show what reweighing bought and cost: the "
            "budget is split in two equal fits, like for like."
        ),
    )
    gates: list[FairnessGate] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Bounds the model must meet on held-out data to be production-ready, e.g. "
            "{metric: disparateImpact, min: 0.8}."
        ),
    )

    @model_validator(mode="after")
    def _constraints_fit_the_method(self) -> FairnessOptions:
        if self.method is FairnessMethod.THRESHOLDS and not self.constraints:
            raise ValueError("method thresholds needs constraints (e.g. disparateImpact min 0.8)")
        if self.constraints and self.method is not FairnessMethod.THRESHOLDS:
            raise ValueError("constraints are met by method thresholds: set it")
        features = {c.feature for c in self.constraints}
        if len(features) > 1 or (None in features and len(self.sensitive_features) > 1):
            raise ValueError(
                "the thresholds are per group of one feature: give every constraint the same "
                "feature (or name one sensitive feature only)"
            )
        return self

    def constrained_feature(self) -> str | None:
        """The feature whose groups get their own thresholds."""
        if not self.constraints:
            return None
        feature = self.constraints[0].feature
        if feature:
            return feature
        return self.sensitive_features[0] if self.sensitive_features else None

    @field_validator("sensitive_features")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return unique_columns(value)
