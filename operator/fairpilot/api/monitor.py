"""ModelMonitor: watching a trained model's data, fairness and performance, window by window.

A monitor names a TrainingRun (its model is watched; its training data is the reference) and
where new data arrives: batches (files or objects) under an `s3://` or `file://` prefix,
checked on a schedule. Each check that finds new batches starts one *window*: a `monitor`
stage Job that compares those rows with the reference (data drift per feature, prediction
drift, a streaming change detector on the model's score and error), measures the model's
fairness on them against its post-training values (bias drift) and, where the rows carry the
label, its performance against the held-out score (degradation). The age of the newest batch
is checked at every tick (staleness). What crosses a threshold becomes a condition
(`DriftDetected`, `BiasDrift`, `PerformanceDegraded`, `DataStale`), an Event, a Prometheus
gauge, a Kafka `drift.detected` event and a warehouse document, and each window writes an HTML
report with the trend over the windows before it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator, model_validator

from fairpilot.api.common import (
    ColumnName,
    DataFormat,
    DataLocation,
    Id,
    LabelValue,
    ModelLocation,
    OwnedSpec,
    SpecModel,
    Uri,
    unique_columns,
)

MAX_BATCHES_PER_WINDOW = 1000
MAX_HISTORY = 100


class BatchSource(SpecModel):
    """Batches of new data under a prefix: every object (file) that appears there is new data."""

    uri: Uri = Field(
        description=(
            "The prefix (folder) batches arrive under: s3://bucket/prefix/ or "
            "file:///dir/. Objects (files) directly under it and in its subfolders count."
        )
    )
    format: DataFormat | None = Field(
        default=None, description="csv, parquet or jsonl; by default from each name's extension."
    )
    interval_seconds: int = Field(
        default=300,
        ge=10,
        le=30 * 24 * 3600,
        description="How often to look for new batches, in seconds (unless `schedule` is set).",
    )
    schedule: str | None = Field(
        default=None,
        max_length=128,
        description=(
            "A cron expression (five fields, UTC, e.g. '0 * * * *' for every hour) for when to "
            "look; replaces intervalSeconds."
        ),
    )
    max_batches_per_window: int = Field(
        default=100,
        ge=1,
        le=MAX_BATCHES_PER_WINDOW,
        description="At most this many new batches make one window; the rest make the next.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return _cron_expression(value)


def _cron_expression(value: str | None) -> str | None:
    if value is None:
        return value
    from croniter import croniter

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a cron expression of five fields")
    return value


class KafkaSource(SpecModel):
    """Prediction records from a Kafka topic, gathered into windows by the operator's bridge.

    A record is a JSON object: `model_id` and `user_id` (the seed's ids), `features` (column ->
    value), optional `prediction` (as served), optional `label` (the truth, when known) and
    optional `record_id` and `timestamp`. The bridge writes each window of records as a JSON
    lines batch under the monitor's own artifact folder (`status.recordsUri`) and measures it
    like any batch; a record it cannot use goes to the dead-letter topic with the reason.
    """

    topic: str = Field(
        default="prediction-events",
        pattern=r"^[a-zA-Z0-9._-]{1,249}$",
        description="The topic of prediction records.",
    )
    model_id: Id | None = Field(
        default=None,
        description=(
            "Take the records whose model_id is this; default: the watched TrainingRun's "
            "model id. Records must also carry the monitor's userId as user_id."
        ),
    )
    window_records: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="A window closes when it holds this many records...",
    )
    window_seconds: int = Field(
        default=300,
        ge=1,
        le=7 * 24 * 3600,
        description="...or this many seconds after its first record, whichever comes first.",
    )


class MonitorThresholds(SpecModel):
    """When a window raises an alert. The defaults are the seed's and the field's usual ones."""

    psi: float = Field(
        default=0.2,
        gt=0,
        description=(
            "Population stability index at or above which a feature (or the model's "
            "prediction) has drifted: 0.1-0.2 is a moderate shift, 0.2 and above significant."
        ),
    )
    p_value: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description=(
            "Also call a feature drifted when its KS (numeric) or chi-squared (categorical) test "
            "gives a p-value below this. Unset by default: on thousands of rows these tests "
            "find shifts too small to matter."
        ),
    )
    disparate_impact_drop: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description=(
            "BiasDrift when a feature's disparate impact falls this much below training (at "
            "`confidence`: the window's interval lies below the training value and reaches "
            "this far)."
        ),
    )
    parity_difference_rise: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description=(
            "BiasDrift when a feature's statistical parity difference, or (with labels) its "
            "equal opportunity difference, rises this much above training."
        ),
    )
    confidence: float = Field(
        default=0.999,
        gt=0.5,
        lt=1,
        description=(
            "A fairness measure's change raises BiasDrift only when it is established at this "
            "confidence: the window's interval for the measure (between the extreme groups, "
            "corrected for the number of group pairs) lies wholly on the harmful side of the "
            "training value, and reaches the threshold's line. A window's rates carry sampling "
            "noise: without this, small groups raise alerts on stationary data."
        ),
    )
    performance_drop: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description=(
            "PerformanceDegraded when the eval metric on labelled rows is this share worse than "
            "on the model's held-out data (0.05: 5%, the seed's threshold)."
        ),
    )
    stale_after_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="DataStale when the newest batch is older than this (the seed's 7 days).",
    )
    adwin_delta: float = Field(
        default=0.0002,
        gt=0,
        lt=1,
        description=(
            "ADWIN's confidence: a smaller delta needs stronger evidence of a change in the "
            "model's score (and error) stream. A tenth of river's default: a monitor runs it "
            "over every window, and at 0.002 about one stationary window in a hundred raised "
            "an alert (bench/bench_monitor.py)."
        ),
    )
    min_rows: int = Field(
        default=100,
        ge=1,
        description=(
            "A window with fewer rows is measured but raises no drift, bias or performance "
            "alert (its rates are noise); the condition says so."
        ),
    )
    min_group_size: int = Field(
        default=30, ge=1, description="Groups with fewer rows in a window are not compared."
    )


class RetrainTrigger(StrEnum):
    """What makes a monitor train a new model: one of its alerts, or its schedule."""

    DRIFT_DETECTED = "DriftDetected"
    BIAS_DRIFT = "BiasDrift"
    PERFORMANCE_DEGRADED = "PerformanceDegraded"
    DATA_STALE = "DataStale"
    SCHEDULE = "Schedule"


class RetrainingPolicy(SpecModel):
    """Gated retraining: when to train a candidate, and when it replaces the watched model.

    A trigger makes the monitor create a candidate TrainingRun (`<monitor>-r<n>`, owned by the
    monitor): the watched TrainingRun's spec (the same target, mitigation, validation threshold
    and fairness gates, the same model id, so the next free version) on `datasetRef`. Once it
    has trained, both models are scored on the same rows, the labelled rows of the most recent
    window that had labels, and the candidate is promoted (the monitor watches it from then on)
    only if it is production-ready (every gate it has was checked and passed) and its score
    there is at least the current model's minus `tolerance`. Promotions and refusals are
    recorded in the status (`Promoted` condition, `status.retraining`), Events, the warehouse
    (`model_promotions`) and `automl-events`.
    """

    triggers: list[RetrainTrigger] = Field(
        min_length=1,
        max_length=5,
        description="DriftDetected, BiasDrift, PerformanceDegraded, DataStale, Schedule.",
    )
    schedule: str | None = Field(
        default=None,
        max_length=128,
        description="A cron expression (five fields, UTC) for the Schedule trigger.",
    )
    dataset_ref: str | None = Field(
        default=None,
        description=(
            "The Dataset holding the newest data to train on; default: the watched "
            "TrainingRun's own datasetRef (keep it current, e.g. from your warehouse)."
        ),
    )
    tolerance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description=(
            "How much lower (in the eval metric, on the comparison rows) the candidate may "
            "score than the current model and still be promoted."
        ),
    )
    cooldown_seconds: int = Field(
        default=3600,
        ge=0,
        description="At most one candidate per this many seconds.",
    )
    keep_versions: int = Field(
        default=3,
        ge=1,
        le=50,
        description=(
            "Candidates kept; older ones (never the watched one) are archived: labelled "
            "fairpilot.io/archived=true and listed in status.retraining.archived, their "
            "models left in place."
        ),
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return _cron_expression(value)

    @model_validator(mode="after")
    def _schedule_for_the_schedule_trigger(self) -> RetrainingPolicy:
        if (RetrainTrigger.SCHEDULE in self.triggers) != (self.schedule is not None):
            raise ValueError("the Schedule trigger and schedule go together: give both or neither")
        return self


class MonitorFields(SpecModel):
    """What a window looks at, shared by the resource and the job spec."""

    thresholds: MonitorThresholds = Field(
        default_factory=MonitorThresholds, description="When to raise an alert."
    )
    prediction_column: ColumnName | None = Field(
        default=None,
        description=(
            "A column of the batches that holds the model's prediction as served; by default "
            "the monitor predicts with the model itself."
        ),
    )
    sensitive_features: list[ColumnName] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Features whose groups' fairness is watched; default: those the TrainingRun "
            "measured its model on."
        ),
    )

    @field_validator("sensitive_features")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return unique_columns(value)


class ModelMonitorSpec(MonitorFields, OwnedSpec):
    """Spec of the ModelMonitor custom resource."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.batches) || has(self.kafka)",
                    "message": "give batches (a prefix to watch) or kafka (a topic), or both",
                }
            ]
        }
    )

    training_run_ref: str = Field(
        description="TrainingRun whose model is watched; its training data is the reference."
    )
    model_version: Id | None = Field(
        default=None,
        description="A version of its models to watch; by default its current one.",
    )
    batches: BatchSource | None = Field(
        default=None,
        description="Batches of new data under a prefix, and when to look for them.",
    )
    kafka: KafkaSource | None = Field(
        default=None,
        description="Prediction records from Kafka, in windows by count and time.",
    )
    retraining: RetrainingPolicy | None = Field(
        default=None, description="Gated retraining; none by default."
    )
    history: int = Field(
        default=30,
        ge=1,
        le=MAX_HISTORY,
        description="Windows kept in the status (and drawn in the report's trends).",
    )

    @model_validator(mode="after")
    def _a_source(self) -> ModelMonitorSpec:
        if self.batches is None and self.kafka is None:
            raise ValueError("give batches (a prefix to watch) or kafka (a topic), or both")
        return self


# -- the job spec -------------------------------------------------------------------------------
# A batch's location as the store listed it. Whoever writes the data may give an object any
# name, and one that is no URI FairPilot reads (a control or invisible character in a file
# name, `?` or `#` in an S3 key) must reject that one batch, with its reason, not make the whole
# window's job spec invalid (which would fail the monitor at every look, its mark never passing
# the batch): the stage checks each batch's URI as a `Uri` before it reads anything
# (`fairpilot_jobs.monitor.window.read_batch`: InvalidURI), and the operator checks its location
# as every other (`references.check_uri`).
BatchUri = Annotated[str, Field(min_length=1, max_length=4096)]


class Batch(SpecModel):
    """One object of new data."""

    uri: BatchUri = Field(description="Its location (checked as a URI by the stage).")
    format: DataFormat | None = Field(default=None, description="Its format, if not its name's.")
    modified_at: str | None = Field(
        default=None, description="When it was written (RFC 3339), as the store lists it."
    )


class FairnessBaseline(SpecModel):
    """A sensitive feature's fairness on the model's held-out data, after training."""

    name: ColumnName = Field(description="The feature.")
    disparate_impact: float | None = Field(default=None, description="Held-out DI.")
    statistical_parity_difference: float | None = Field(default=None, description="Held-out SPD.")
    equal_opportunity_difference: float | None = Field(
        default=None, description="Held-out equal opportunity difference."
    )


class Baseline(SpecModel):
    """What the model did on held-out data when it was trained (its TrainingRun's status)."""

    eval_metric: str | None = Field(default=None, description="The metric it was chosen by.")
    score: float | None = Field(
        default=None, description="That metric on held-out data (test, else validation)."
    )
    split: str | None = Field(default=None, description="test or validation.")
    accuracy: float | None = Field(default=None, description="Accuracy on that split.")
    positive_label: LabelValue | None = Field(
        default=None, description="The favourable prediction its fairness counts."
    )
    fairness: list[FairnessBaseline] = Field(
        default_factory=list, max_length=16, description="Per sensitive feature."
    )


class WindowSummary(SpecModel):
    """One window in a few numbers: what the status keeps and the report's trends draw."""

    window: int = Field(ge=1, description="Its number, from 1.")
    run_id: str | None = Field(default=None, description="The run that measured it.")
    finished_at: str | None = Field(default=None, description="When it was measured.")
    rows: int = Field(default=0, ge=0, description="Rows in it.")
    newest_data_at: str | None = Field(default=None, description="Its newest batch's time.")
    max_psi: float | None = Field(default=None, description="The largest feature PSI.")
    max_psi_feature: str | None = Field(default=None, description="Where it was found.")
    drifted_features: int = Field(default=0, ge=0, description="Features over the threshold.")
    prediction_psi: float | None = Field(default=None, description="PSI of the predictions.")
    disparate_impact: dict[str, float | None] = Field(
        default_factory=dict, description="Per sensitive feature."
    )
    statistical_parity_difference: dict[str, float | None] = Field(
        default_factory=dict, description="Per sensitive feature."
    )
    score: float | None = Field(
        default=None, description="The eval metric, when the rows carried labels."
    )
    alerts: list[str] = Field(default_factory=list, description="The condition types it raised.")


class MonitorAlert(SpecModel):
    """One threshold a window crossed: a condition's type, and what crossed what."""

    type: str = Field(description="DriftDetected, BiasDrift or PerformanceDegraded.")
    feature: str | None = Field(
        default=None, description="The feature (or '(prediction)', '(score)', '(error)')."
    )
    metric: str = Field(description="psi, ksPValue, disparateImpact, adwin, roc_auc, ...")
    value: float | None = Field(default=None, description="The window's value.")
    baseline: float | None = Field(default=None, description="What it was compared with.")
    threshold: float | None = Field(default=None, description="The bound it crossed.")
    message: str = Field(description="The alert in words, with the numbers.")


class RejectedBatch(SpecModel):
    """A batch the window could not use, and why; it stays where it is."""

    uri: str = Field(description="Its location.")
    reason: str = Field(description="CamelCase, e.g. ColumnNotFound.")
    message: str = Field(description="What is wrong with it.")


class MonitorJobSpec(MonitorFields, OwnedSpec):
    """Spec file of `fairpilot-job monitor`: one window, references resolved to locations."""

    model: ModelLocation = Field(description="The model watched (checked against its digest).")
    reference: DataLocation = Field(description="The model's training data: the reference.")
    target: ColumnName = Field(description="The label column (in batches that carry labels).")
    excluded_columns: list[ColumnName] = Field(
        default_factory=list, description="Columns the model does not use (not compared)."
    )
    batches: list[Batch] = Field(
        min_length=1,
        max_length=MAX_BATCHES_PER_WINDOW,
        description="This window's new batches, oldest first.",
    )
    window: int = Field(default=1, ge=1, description="This window's number.")
    baseline: Baseline = Field(
        default_factory=Baseline, description="The model's held-out figures after training."
    )
    history: list[WindowSummary] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="The windows before this one, oldest first (for the trends).",
    )
    seed: int = Field(default=0, ge=0, description="Random seed for sampling the reference.")
    candidate: ModelLocation | None = Field(
        default=None,
        description=(
            "A retrained model to score on the window's labelled rows beside the watched one "
            "(checked against its digest like it): whether it is promoted is decided on them."
        ),
    )

    @model_validator(mode="after")
    def _not_the_target(self) -> MonitorJobSpec:
        if self.prediction_column is not None and self.prediction_column == self.target:
            raise ValueError("predictionColumn must not be the target")
        return self


class AlertType(StrEnum):
    """The conditions a window (or a tick, DataStale) sets."""

    DRIFT_DETECTED = "DriftDetected"
    BIAS_DRIFT = "BiasDrift"
    PERFORMANCE_DEGRADED = "PerformanceDegraded"
    DATA_STALE = "DataStale"
