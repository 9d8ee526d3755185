"""What each stage writes for the operator: `result.json` on success, `error.json` on failure.

The contract between `fairpilot-job` and the operator, as models: the jobs validate what they
write against them (fairpilot_jobs.cli), the operator parses what it reads through them
(fairpilot.conditions), so a stage cannot ship a result its operator cannot read, and the
operator names the field when it meets one anyway.

Only what the operator reads is modelled. A result carries much more (per-group tables, the
leaderboard, timings, column profiles) that only the HTML reports and people use: that is
kept as extra fields (`extra="allow"`), so a stage may add to its result without breaking an
older operator. Keys are the files' own: camelCase, except the model metadata, which is seed
004's schema (snake_case).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from fairpilot.api.common import MODEL_DIGEST_PATTERN, LabelValue
from fairpilot.api.monitor import MonitorAlert, RejectedBatch, WindowSummary

# Unlike the specs (extra="forbid": a typo in a resource must not pass silently), results
# allow what they do not model: they are written by a program, read by many.
_RESULT_CONFIG = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class ResultPart(BaseModel):
    """Base of every part of a result: camelCase keys, unmodelled keys kept."""

    model_config = _RESULT_CONFIG


class StageResult(ResultPart):
    """What every stage's result.json holds for the operator.

    `fairpilot-job` also writes an envelope (apiVersion, kind StageResult, stage,
    fairpilotVersion, startedAt, finishedAt, durationSeconds), which the operator does not read.
    """

    reports: dict[str, str] = Field(
        default_factory=dict, description="The stage's HTML reports: name -> URI."
    )


# -- profile (Dataset) ----------------------------------------------------------------------------
class Suggestion(ResultPart):
    """The profile's suggested target and task type (or the spec's, when it gave them)."""

    target: str | None = Field(default=None, description="The target column.")
    task_type: str | None = Field(default=None, description="binary, multiclass or regression.")


class ColumnProfile(ResultPart):
    """One column's profile; the operator keeps only the name (status.columnNames)."""

    name: str = Field(description="The column's name.")


class ProfileResult(StageResult):
    """The profile stage's result (a Dataset's status)."""

    rows: int = Field(ge=0, description="Rows in the data.")
    columns: int = Field(ge=0, description="Columns in the data.")
    column_profiles: list[ColumnProfile] = Field(
        default_factory=list, description="Per column, in the data's order."
    )
    suggestion: Suggestion | None = Field(
        default=None, description="The suggested target and task type."
    )
    warnings: list[dict[str, Any]] = Field(
        default_factory=list, description="Data-quality warnings (type, column, message)."
    )


# -- bias (BiasAnalysis) --------------------------------------------------------------------------
class BiasSummary(ResultPart):
    """The one figure a BiasAnalysis' status column shows, and where it was found."""

    min_disparate_impact: float | None = Field(
        default=None, description="Lowest DI (LDI without predictions) over all groups."
    )
    feature: str | None = Field(default=None, description="The feature it was found on.")
    group: str | None = Field(default=None, description="The group it was found for.")


class BiasMitigation(ResultPart):
    """The reweighing table the bias stage stored, which the train stage can apply."""

    method: str | None = Field(default=None, description="reweighing.")
    uri: str | None = Field(default=None, description="Where the table is (reweighing.json).")
    effect: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Per sensitive feature: each group's positive rate of the label before and after "
            "the weights, and LDI and DPL against the privileged group before and after."
        ),
    )


class BiasResult(StageResult):
    """The bias stage's result (a BiasAnalysis' status)."""

    bias_detected: bool = Field(description="A threshold was crossed.")
    findings: list[str] = Field(description="Each threshold crossed, in words.")
    summary: BiasSummary = Field(description="The lowest disparate impact, and where.")
    mitigation: BiasMitigation | None = Field(
        default=None, description="The reweighing weights written for the train stage."
    )


# -- train (TrainingRun) --------------------------------------------------------------------------
class BestModel(ResultPart):
    """AutoGluon's best model (members and weights are extra)."""

    name: str = Field(description="e.g. WeightedEnsemble_L2.")


class ValidationVerdict(ResultPart):
    """Seed 003's validation against spec.validationThreshold."""

    checked: bool = Field(description="Whether a threshold was set and checked.")
    passed: bool | None = Field(default=None, description="Whether it was met; None unchecked.")
    message: str | None = Field(default=None, description="The metric, split, value and bound.")


class ProductionReadiness(ResultPart):
    """Whether every configured gate was checked on held-out data and passed."""

    ready: bool = Field(description="Every configured gate passed (none configured: False).")
    reason: str | None = Field(
        default=None, description="AllGatesPassed, GateFailed or NoGates (a condition reason)."
    )
    message: str | None = Field(default=None, description="Each gate's verdict.")


class CustomMetadata(BaseModel):
    """Seed 004's custom_metadata, as far as the operator reads it."""

    model_config = ConfigDict(extra="allow")

    framework: str | None = Field(
        default=None, description="The library and version, e.g. autogluon.tabular 1.6.3."
    )


class ModelMetadata(BaseModel):
    """Seed 004's model metadata schema (its keys are snake_case), as far as the operator
    reads it."""

    model_config = ConfigDict(extra="allow")

    model_id: str | None = Field(default=None, description="The model's id.")
    version: str | None = Field(default=None, description="The model's version, e.g. v1.")
    model_type: str | None = Field(default=None, description="classification or regression.")
    framework: str | None = Field(default=None, description="Seed 004's framework: other.")
    algorithm: str | None = Field(default=None, description="The best model and its members.")
    custom_metadata: CustomMetadata | None = Field(
        default=None, description="What seed 004 leaves to the producer."
    )
    training_accuracy: float | None = Field(
        default=None, description="Accuracy (R² for regression) on the rows trained on."
    )
    validation_accuracy: float | None = Field(default=None, description="On validation rows.")
    test_accuracy: float | None = Field(default=None, description="On the test dataset.")


class TrainedModel(ResultPart):
    """The stored model."""

    uri: str = Field(description="Its directory (the registry folder of its id and version).")
    size_mb: float | None = Field(default=None, description="Its size in MiB.")
    digest: str | None = Field(
        default=None, pattern=MODEL_DIGEST_PATTERN, description="sha256 of its manifest."
    )
    metadata: ModelMetadata | None = Field(default=None, description="Seed 004's metadata.")


class FairnessSummary(ResultPart):
    """A feature's (or intersection's) gate measures over its groups large enough to compare;
    the keys are kinds.fairness.FAIRNESS_MEASURES, which the status keeps."""

    groups_compared: int | None = Field(default=None, description="Groups compared.")
    groups_too_small: int | None = Field(default=None, description="Groups too small to compare.")
    disparate_impact: float | None = Field(default=None, description="Lowest/highest rate.")
    disparate_impact_interval: list[float] | None = Field(
        default=None, description="Its 95% interval."
    )
    statistical_parity_difference: float | None = Field(
        default=None, description="Highest rate minus lowest."
    )
    statistical_parity_difference_interval: list[float] | None = Field(
        default=None, description="Its 95% interval."
    )
    equal_opportunity_difference: float | None = Field(
        default=None, description="Spread of true positive rates."
    )
    equalized_odds_difference: float | None = Field(
        default=None, description="The larger spread of true and false positive rates."
    )
    lowest_selection_group: str | None = Field(default=None, description="Selected least.")
    highest_selection_group: str | None = Field(default=None, description="Selected most.")


class FeatureFairness(ResultPart):
    """One sensitive feature's measures; its per-group tables (groups, metrics) are extra."""

    summary: FairnessSummary | None = Field(default=None, description="The gate measures.")


class GateVerdict(ResultPart):
    """One fairness gate on one feature."""

    metric: str = Field(description="The measure bounded, e.g. disparateImpact.")
    feature: str | None = Field(default=None, description="The feature judged.")
    passed: bool | None = Field(default=None, description="Whether the bound was met.")
    value: float | None = Field(default=None, description="The measure; None if not computed.")
    min: float | None = Field(default=None, description="The lower bound.")
    max: float | None = Field(default=None, description="The upper bound.")
    message: str | None = Field(default=None, description="The verdict, groups and numbers.")


class MeasuredFairness(ResultPart):
    """A model's decisions measured on held-out rows (fairpilot_jobs.fairness.measure)."""

    split: str | None = Field(default=None, description="test or validation.")
    rows: int | None = Field(default=None, ge=0, description="Held-out rows judged.")
    positive_label: LabelValue | None = Field(default=None, description="The favourable label.")
    min_group_size: int | None = Field(default=None, description="Smaller groups not compared.")
    features: dict[str, FeatureFairness] = Field(
        default_factory=dict, description="Per sensitive feature."
    )
    intersections: dict[str, FeatureFairness] = Field(
        default_factory=dict, description="Per intersection ('sex × race')."
    )
    gates: list[GateVerdict] = Field(default_factory=list, description="Each gate's verdict.")


class DecisionsOutcome(ResultPart):
    """Accuracy and each feature's measures of one set of decisions on held-out rows."""

    accuracy: float | None = Field(default=None, description="Held-out accuracy.")
    features: dict[str, FairnessSummary] = Field(
        default_factory=dict, description="Per feature: its measures."
    )


class ReweighingSide(DecisionsOutcome):
    """One side of the reweighing comparison."""

    roc_auc: float | None = Field(default=None, description="Held-out ROC AUC.")


class ReweighingComparison(ResultPart):
    """The reweighed model against an unweighted baseline, on the same held-out rows."""

    baseline: ReweighingSide | None = Field(default=None, description="Without the weights.")
    reweighed: ReweighingSide | None = Field(default=None, description="With them.")


class HeldoutComparison(ResultPart):
    """The model's own decisions against the thresholded ones, on held-out rows."""

    before: DecisionsOutcome | None = Field(default=None, description="The model's own.")
    after: DecisionsOutcome | None = Field(default=None, description="With the thresholds.")


class ThresholdMitigation(ResultPart):
    """Per-group decision thresholds (spec.fairness.method thresholds)."""

    feature: str | None = Field(default=None, description="The feature whose groups they are.")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Group -> threshold on P(positive)."
    )
    heldout: HeldoutComparison | None = Field(default=None, description="What they did.")


class FairnessResult(MeasuredFairness):
    """A train result's `fairness`: what ships is measured at the top level."""

    # Absent reads as measured, as the operator always read it.
    measured: bool = Field(default=True, description="False when it could not be measured.")
    message: str | None = Field(default=None, description="Why it was not measured.")
    reweighing: ReweighingComparison | None = Field(
        default=None, description="What reweighing did, against an unweighted baseline."
    )
    before: MeasuredFairness | None = Field(
        default=None, description="The model's own decisions, before the thresholds."
    )
    mitigation: ThresholdMitigation | None = Field(
        default=None, description="The per-group thresholds, when trained with them."
    )


class TrainingResult(StageResult):
    """The train stage's result (a TrainingRun's status)."""

    eval_metric: str = Field(description="The metric the best model was chosen by.")
    metrics: dict[str, dict[str, float | None]] = Field(
        description="Per split (training, validation, test): metric -> value."
    )
    best_model: BestModel = Field(description="AutoGluon's best model.")
    validation: ValidationVerdict = Field(description="The validation threshold's verdict.")
    production_ready: ProductionReadiness | None = Field(
        default=None, description="Whether every configured gate passed."
    )
    fairness: FairnessResult | None = Field(
        default=None, description="Fairness on held-out rows; None without sensitive features."
    )
    sample_weights: str | None = Field(
        default=None, description="reweighing when trained with a BiasAnalysis' weights."
    )
    model: TrainedModel = Field(description="The stored model.")
    model_digest: str | None = Field(
        default=None,
        pattern=MODEL_DIGEST_PATTERN,
        description="The model's digest, which the explain and bias stages check it against.",
    )


# -- explain (Explanation) ------------------------------------------------------------------------
class ExplainedModel(ResultPart):
    """The model explained, as its metadata names it."""

    uri: str = Field(description="Its directory.")
    model_id: str | None = Field(default=None, description="Its id.")
    version: str | None = Field(default=None, description="Its version.")


class LocalAccuracy(ResultPart):
    """SHAP's additivity, checked on every explained row."""

    max_abs_error: float = Field(ge=0, description="Max |base + sum of SHAP - model output|.")


class ExplanationResult(StageResult):
    """The explain stage's result (an Explanation's status)."""

    method: str = Field(description="tree, permutation or kernel: the method used.")
    top_feature: str = Field(description="The feature with the largest mean |SHAP|.")
    model: ExplainedModel = Field(description="The model explained.")
    local_accuracy: LocalAccuracy = Field(description="The additivity check.")


# -- monitor (ModelMonitor) -----------------------------------------------------------------------
class CandidateScore(ResultPart):
    """A retrained model scored on the same labelled rows as the watched one."""

    measured: bool = Field(description="Whether both could be scored (labelled rows, minRows).")
    metric: str | None = Field(default=None, description="The eval metric.")
    greater_is_better: bool | None = Field(default=None, description="Its direction.")
    score: float | None = Field(default=None, description="The candidate's score.")
    current_score: float | None = Field(default=None, description="The watched model's score.")
    rows: int = Field(default=0, ge=0, description="Labelled rows scored.")
    version: str | None = Field(default=None, description="The candidate's model version.")
    message: str | None = Field(default=None, description="Why it was not measured, if not.")


class FairnessComparison(ResultPart):
    """One fairness measure of one sensitive feature: the window's value beside training's."""

    measure: str = Field(description="disparateImpact, statisticalParityDifference, ...")
    window: float | None = Field(
        default=None,
        description="The window's value; none when undefined (nobody chosen, no labels).",
    )
    training: float | None = Field(default=None, description="The value after training.")
    crossed: bool = Field(default=False, description="Whether it raised BiasDrift.")


class FeatureFairnessWindow(ResultPart):
    """One sensitive feature in one window."""

    comparison: list[FairnessComparison] = Field(
        default_factory=list, description="Each measure against its training value."
    )


class WindowFairness(ResultPart):
    """Bias drift in one window: whether it was measured, and each feature's comparison."""

    measured: bool = Field(default=False, description="Whether fairness was measured.")
    message: str = Field(default="", description="How it was measured, or why not.")
    features: dict[str, FeatureFairnessWindow] = Field(
        default_factory=dict, description="Per sensitive feature found in the window."
    )


class MonitorResult(StageResult):
    """The monitor stage's result: one window (a ModelMonitor's status)."""

    window: int = Field(ge=1, description="The window's number.")
    rows: int = Field(ge=0, description="Rows measured.")
    judged: bool = Field(
        description="Whether it had enough rows (thresholds.minRows) to raise alerts."
    )
    labelled_rows: int = Field(default=0, ge=0, description="Rows that carried the label.")
    newest_data_at: str | None = Field(default=None, description="Its newest batch's time.")
    alerts: list[MonitorAlert] = Field(default_factory=list, description="Thresholds crossed.")
    rejected: list[RejectedBatch] = Field(
        default_factory=list, description="Batches that could not be used, and why."
    )
    summary: WindowSummary = Field(description="The window in a few numbers.")
    history: list[WindowSummary] = Field(
        default_factory=list, description="The windows before it and this one, oldest first."
    )
    model: ExplainedModel = Field(description="The model watched.")
    candidate: CandidateScore | None = Field(
        default=None, description="The retrained candidate's score beside the watched model's."
    )
    fairness: WindowFairness | None = Field(
        default=None, description="Bias drift: each sensitive feature against training."
    )


# -- error.json -----------------------------------------------------------------------------------
class StageError(ResultPart):
    """A failed stage's error.json; the pod's termination message holds reason and message."""

    # The operator copies it into the Ready condition unchanged: a Kubernetes condition
    # reason (metav1.Condition's pattern; the status' Condition allows 128 characters).
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=128,
        description="CamelCase, e.g. ColumnNotFound.",
    )
    message: str = Field(default="", description="What went wrong and what to change, one line.")
    stage: str | None = Field(default=None, description="The stage that failed.")
    exit_code: int | None = Field(
        default=None, description="2: the input is wrong; 1: FairPilot or a dependency failed."
    )
    detail: str | None = Field(default=None, description="A traceback, for internal errors.")
