"""Statuses of the four resources, in Kubernetes API conventions (phase plus conditions).

The operator projects a stage's `result.json` into these; the CRDs' status schemas and
printer columns come from them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from fairpilot.api.common import SpecModel
from fairpilot.api.monitor import MonitorAlert, RejectedBatch, WindowSummary

MAX_COLUMN_NAMES = 2000
# What a TrainingRun's status keeps of its fairness (api.fairness: at most 16 features).
MAX_FAIRNESS_FEATURES = 16
MAX_FAIRNESS_GATES = 64


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


class Input(SpecModel):
    """One resource a run used, as it was then: a later run of it is a changed input."""

    field: str = Field(description="The reference it came through, e.g. trainingRunRef.")
    kind: str = Field(description="Dataset, BiasAnalysis or TrainingRun.")
    name: str = Field(description="Its name (same namespace).")
    uid: str | None = Field(default=None, description="Its uid: another uid is another resource.")
    run_id: str | None = Field(default=None, description="Its run that produced what was used.")
    output_uri: str | None = Field(default=None, description="Where that run wrote.")
    model_uri: str | None = Field(default=None, description="The model used (a TrainingRun).")
    model_version: str | None = Field(default=None, description="That model's version.")
    model_digest: str | None = Field(
        default=None, description="That model's digest, which the stage checked it against."
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
    run_id: str | None = Field(
        default=None,
        description=(
            "The current run: g<generation> for a generation's first, g<generation>r<n> for a "
            "re-run after an input changed. It names the Job and the output location."
        ),
    )
    inputs: list[Input] = Field(
        default_factory=list,
        max_length=16,
        description="The resources the current run used; UpToDate compares them with now.",
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
    column_names: list[str] = Field(
        default_factory=list,
        max_length=MAX_COLUMN_NAMES,
        description=(
            "The profile's column names (when there are at most 2,000): resources that name "
            "columns of this Dataset are checked against them before a Job starts."
        ),
    )
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


class ModelVersionRecord(SpecModel):
    """A model a TrainingRun trained: one (model id, version) is always one model."""

    version: str = Field(description="The model's version.")
    model_uri: str | None = Field(default=None, description="Where it is stored.")
    model_digest: str | None = Field(
        default=None,
        description=(
            "Its digest (sha256:<hex> of its manifest of file hashes): what the explain and bias "
            "stages check it against before loading it."
        ),
    )
    run_id: str | None = Field(default=None, description="The run that trained it.")
    finished_at: str | None = Field(default=None, description="When that run finished.")


class SplitScores(SpecModel):
    """One score per data split, as the seed's model.uploaded event reports them."""

    training: float | None = Field(default=None, description="On the rows trained on.")
    validation: float | None = Field(default=None, description="On held-out validation rows.")
    test: float | None = Field(default=None, description="On the test dataset, if any.")


class FairnessMeasures(SpecModel):
    """The fairness measures of one sensitive feature (or intersection) of a trained model,
    over its groups of at least minGroupSize held-out rows (the per-group tables are in the
    training result and report, not here: a feature can have thousands of groups)."""

    name: str = Field(description="The sensitive feature, or an intersection ('sex × race').")
    groups_compared: int | None = Field(
        default=None, description="Groups of at least minGroupSize rows, which are compared."
    )
    groups_too_small: int | None = Field(
        default=None, description="Groups with fewer rows: reported, not compared."
    )
    disparate_impact: float | None = Field(
        default=None, description="Lowest selection rate over the highest (1 is parity)."
    )
    disparate_impact_interval: list[float] | None = Field(
        default=None, max_length=2, description="Its 95% confidence interval (Katz's log method)."
    )
    statistical_parity_difference: float | None = Field(
        default=None, description="Highest selection rate minus the lowest (0 is parity)."
    )
    statistical_parity_difference_interval: list[float] | None = Field(
        default=None, max_length=2, description="Its 95% confidence interval (Wald)."
    )
    equal_opportunity_difference: float | None = Field(
        default=None, description="Highest true positive rate minus the lowest."
    )
    equalized_odds_difference: float | None = Field(
        default=None, description="The larger of the true and false positive rates' spreads."
    )
    lowest_selection_group: str | None = Field(
        default=None, description="The group predicted positive least often."
    )
    highest_selection_group: str | None = Field(
        default=None, description="The group predicted positive most often."
    )


class FairnessGateResult(SpecModel):
    """One fairness gate on one feature, as the train stage judged it."""

    metric: str = Field(description="The measure bounded, e.g. disparateImpact.")
    feature: str | None = Field(default=None, description="The sensitive feature judged.")
    passed: bool | None = Field(default=None, description="Whether the bound was met.")
    value: float | None = Field(
        default=None, description="The measure; unset when it could not be computed."
    )
    min: float | None = Field(default=None, description="The gate's lower bound.")
    max: float | None = Field(default=None, description="The gate's upper bound.")
    message: str | None = Field(
        default=None, description="The verdict in words: the groups and the numbers."
    )


class ThresholdsStatus(SpecModel):
    """Per-group decision thresholds (spec.fairness.method thresholds), and what they did on
    held-out rows: accuracy and each feature's measures before and after."""

    feature: str | None = Field(default=None, description="The feature whose groups they are.")
    thresholds: dict[str, float] | None = Field(
        default=None,
        description=f"Group -> threshold on P(positive) (at most {MAX_FAIRNESS_GATES} shown).",
    )
    accuracy_before: float | None = Field(
        default=None, description="Held-out accuracy of the model's own decisions."
    )
    accuracy_after: float | None = Field(
        default=None, description="Held-out accuracy with the thresholds (what ships)."
    )
    before: list[FairnessMeasures] | None = Field(
        default=None,
        max_length=MAX_FAIRNESS_FEATURES,
        description="Each feature's measures before the thresholds (`features` are after).",
    )


class ReweighingStatus(SpecModel):
    """Reweighing's effect: the reweighed model against an unweighted baseline trained on the
    same data with the same share of the budget, on held-out rows."""

    accuracy_baseline: float | None = Field(default=None, description="Without the weights.")
    accuracy_reweighed: float | None = Field(default=None, description="With them.")
    roc_auc_baseline: float | None = Field(default=None, description="Without the weights.")
    roc_auc_reweighed: float | None = Field(default=None, description="With them.")
    baseline: list[FairnessMeasures] | None = Field(
        default=None,
        max_length=MAX_FAIRNESS_FEATURES,
        description="Each feature's measures without the weights.",
    )
    reweighed: list[FairnessMeasures] | None = Field(
        default=None,
        max_length=MAX_FAIRNESS_FEATURES,
        description="Each feature's measures with them (before any thresholds).",
    )


class FairnessStatus(SpecModel):
    """The trained model's fairness on held-out data, in brief (spec.fairness)."""

    measured: bool | None = Field(
        default=None, description="False when it could not be measured (see message)."
    )
    message: str | None = Field(default=None, description="Why it was not measured.")
    split: str | None = Field(default=None, description="test or validation: the rows judged.")
    rows: int | None = Field(default=None, description="Held-out rows the model was judged on.")
    positive_label: str | None = Field(
        default=None, description="The favourable prediction the rates count."
    )
    min_group_size: int | None = Field(
        default=None, description="Smaller groups were reported but not compared."
    )
    features: list[FairnessMeasures] | None = Field(
        default=None, max_length=MAX_FAIRNESS_FEATURES, description="Per sensitive feature."
    )
    intersections: list[FairnessMeasures] | None = Field(
        default=None,
        max_length=MAX_FAIRNESS_FEATURES,
        description="Per intersection of the sensitive features (e.g. 'sex × race').",
    )
    thresholds: ThresholdsStatus | None = Field(
        default=None, description="Per-group thresholds, when the model was trained with them."
    )
    reweighing: ReweighingStatus | None = Field(
        default=None, description="What reweighing did, against an unweighted baseline."
    )
    gates: list[FairnessGateResult] | None = Field(
        default=None,
        max_length=MAX_FAIRNESS_GATES,
        description=f"Each gate's verdict, failed ones first (at most {MAX_FAIRNESS_GATES}).",
    )
    gates_checked: int | None = Field(default=None, description="Gates judged in all.")
    gates_failed: int | None = Field(default=None, description="Gates missed.")
    gates_passed: bool | None = Field(
        default=None, description="Every gate met; unset when no gate was configured."
    )


class TrainingRunStatus(ResourceStatus):
    best_model: str | None = Field(default=None, description="AutoGluon's best model.")
    eval_metric: str | None = Field(default=None, description="Metric the model was chosen by.")
    best_score: float | None = Field(
        default=None,
        description="The eval metric on validation data: the score the best model won by.",
    )
    validation_score: float | None = Field(
        default=None, description="The eval metric on the validation data (holdout or OOF)."
    )
    test_score: float | None = Field(
        default=None, description="The eval metric on the test dataset, if one was given."
    )
    model_uri: str | None = Field(default=None, description="The stored model directory.")
    model_digest: str | None = Field(
        default=None,
        description=(
            "The model's digest, as the train stage reported it: sha256:<hex> of the manifest "
            "(fairpilot-manifest.json) listing every file of the model with its sha256 and size. "
            "Explanations and bias analyses load the model only if its files match it; a model "
            "without one (trained by an older FairPilot) is not used (ModelNotVerifiable)."
        ),
    )
    model_size_mb: float | None = Field(default=None, description="Size of the stored model.")
    validation_passed: bool | None = Field(
        default=None,
        description="Whether the model met its validation threshold; unset when none was set.",
    )
    production_ready: bool | None = Field(
        default=None,
        description=(
            "True only when every configured gate (the validation threshold, the fairness "
            "gates) was checked and passed on held-out data; False when one failed or none "
            "was configured."
        ),
    )
    fairness: FairnessStatus | None = Field(
        default=None,
        description=(
            "The model's fairness on held-out data per sensitive feature and intersection, and "
            "its fairness gates; unset when spec.fairness named no sensitive features."
        ),
    )
    mitigation: str | None = Field(
        default=None,
        description=(
            "How the model was made fairer, if it was: reweighing (sample weights before "
            "training), thresholds (per group, after), or both."
        ),
    )
    model_id: str | None = Field(default=None, description="The model's id (seed 004).")
    model_version: str | None = Field(default=None, description="The model's version, e.g. v1.")
    model_type: str | None = Field(default=None, description="classification or regression.")
    framework: str | None = Field(
        default=None, description="Seed 004's framework value: other (AutoGluon is none listed)."
    )
    framework_detail: str | None = Field(
        default=None, description="The library and version, e.g. autogluon.tabular 1.6.3."
    )
    models: list[ModelVersionRecord] = Field(
        default_factory=list,
        max_length=100,
        description="Every model this TrainingRun trained, oldest first (the last 100).",
    )
    algorithm: str | None = Field(default=None, description="The best model and its members.")
    accuracy: SplitScores | None = Field(
        default=None,
        description="Accuracy (R² for regression) on the training, validation and test data.",
    )


class ExplanationStatus(ResourceStatus):
    model_id: str | None = Field(default=None, description="The model explained.")
    model_version: str | None = Field(default=None, description="Its version.")
    model_uri: str | None = Field(default=None, description="Where it is stored.")
    method: str | None = Field(default=None, description="tree, permutation or kernel.")
    top_feature: str | None = Field(
        default=None, description="Feature with the largest mean |SHAP|."
    )
    additivity_error: float | None = Field(
        default=None, description="Max |base + sum of SHAP - model output| over explained rows."
    )


class BatchMark(SpecModel):
    """The newest batch a window took: batches listed after it (by time, then name) are new."""

    modified_at: str = Field(description="Its time, as the store listed it (RFC 3339).")
    uri: str = Field(description="Its location.")


class WatchedModel(SpecModel):
    """The model a monitor watches: its TrainingRun's current one, or a promoted candidate."""

    training_run: str = Field(description="The TrainingRun whose model it is.")
    model_version: str | None = Field(default=None, description="Its version.")
    promoted_at: str | None = Field(default=None, description="When it was promoted.")


class Candidate(SpecModel):
    """A model trained by the monitor's retraining policy, and what became of it."""

    name: str = Field(description="Its TrainingRun.")
    reason: str = Field(description="What triggered it.")
    state: str = Field(
        description=(
            "Training, Comparing (trained; waiting for a window with labelled rows), "
            "Promoted, Refused or Archived."
        )
    )
    started_at: str | None = Field(default=None, description="When it was created.")
    decided_at: str | None = Field(default=None, description="When it was promoted or refused.")
    decided_by: str | None = Field(default=None, description="The monitor's run that decided.")
    model_version: str | None = Field(default=None, description="Its model's version.")
    production_ready: bool | None = Field(
        default=None, description="Whether it passed every gate it has (its TrainingRun's)."
    )
    metric: str | None = Field(default=None, description="The eval metric compared.")
    score: float | None = Field(default=None, description="Its score on the comparison rows.")
    current_score: float | None = Field(
        default=None, description="The watched model's score on the same rows."
    )
    rows: int | None = Field(default=None, description="The labelled rows compared on.")
    window: int | None = Field(default=None, description="The window they came from.")
    message: str | None = Field(default=None, description="The verdict in words.")


class Retraining(SpecModel):
    """The state of a monitor's retraining policy."""

    candidate: Candidate | None = Field(
        default=None, description="The candidate in progress (Training or Comparing)."
    )
    candidates: list[Candidate] = Field(
        default_factory=list, max_length=50, description="Decided candidates, oldest first."
    )
    started: int = Field(default=0, ge=0, description="Candidates started so far.")
    last_started_at: str | None = Field(
        default=None, description="When the last one started (cooldownSeconds counts from it)."
    )


class ModelMonitorStatus(ResourceStatus):
    model_id: str | None = Field(default=None, description="The model watched.")
    model_version: str | None = Field(default=None, description="Its version.")
    watched: WatchedModel | None = Field(
        default=None,
        description="The promoted model it watches, once retraining promoted one.",
    )
    retraining: Retraining | None = Field(
        default=None, description="Candidates trained by spec.retraining, and their verdicts."
    )
    window: int | None = Field(default=None, description="Windows measured so far.")
    last_checked_at: str | None = Field(
        default=None, description="When the batches were last looked for."
    )
    wake_requested_at: str | None = Field(
        default=None,
        description=(
            "A look asked for out of schedule (the bridge wrote a window of prediction "
            "records; a retraining candidate ended): the first tick after it looks."
        ),
    )
    newest_data_at: str | None = Field(default=None, description="The newest batch's time.")
    taken: BatchMark | None = Field(
        default=None, description="The newest batch taken into a window."
    )
    pending: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="The batches of the window that is running (or about to), oldest first.",
    )
    records_uri: str | None = Field(
        default=None,
        description="Where the bridge writes windows of Kafka prediction records (spec.kafka).",
    )
    window_attempts: int | None = Field(
        default=None, description="Tries of the pending window so far (failed ones are retried)."
    )
    max_psi: float | None = Field(default=None, description="The last window's largest PSI.")
    feature_psi: dict[str, float] = Field(
        default_factory=dict,
        description="The last window's PSI per feature (the 50 largest).",
    )
    alerts: list[MonitorAlert] = Field(
        default_factory=list, max_length=200, description="The last window's alerts."
    )
    rejected: list[RejectedBatch] = Field(
        default_factory=list,
        max_length=200,
        description="Batches the monitor could not use (the last 200), with the reason.",
    )
    windows: list[WindowSummary] = Field(
        default_factory=list,
        max_length=100,
        description="The last windows in a few numbers each (spec.history of them).",
    )
