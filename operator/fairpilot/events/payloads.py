"""The seed's Kafka payloads (seed 001), as pydantic models: the compatibility contract.

Inbound models are what existing producers send (the data warehouse's `dataset-events`, the
agentic core's trigger events); fields the seed shows are kept with the seed's names and types,
unknown fields are ignored (producers add their own, e.g. `metadata`), and a field of the wrong
type is refused, which sends the message to the dead-letter topic with pydantic's explanation.

Outbound models are what FairPilot produces where the seed's data warehouse did. Every field
of the seed's example payload is there with the seed's name; FairPilot adds a few (`event_id`
everywhere, `report_uri`, `namespace`, ...) after them, which JSON consumers ignore.

FairPilot's own additions to inbound payloads are optional fields: `uri` and `format` (where
the data is), `sensitive_features`, `namespace`, `event_id`, `levels` and `model_id`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from fairpilot.api.common import (
    PRINTABLE,
    ColumnName,
    DataFormat,
    Id,
    TaskType,
    Uri,
    UserId,
    unique_columns,
)
from fairpilot.api.explanation import ExpertiseLevel
from fairpilot.api.validation import check_printable

# The same rules as the custom resources' fields (api.common): an id, a user id or a column name
# a message may carry is one a resource may carry, and the other way round.
EventType = Annotated[str, Field(min_length=0, max_length=128), PRINTABLE]
EventId = Annotated[str, Field(min_length=1, max_length=256), PRINTABLE]
Timestamp = Annotated[str, Field(min_length=0, max_length=64), PRINTABLE]
DisplayName = Annotated[str, Field(min_length=0, max_length=256), PRINTABLE]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _seconds(value: Any) -> Any:
    # The seed sends "time_budget": "10" (a string): accept digits in a string, not "ten".
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


class Inbound(BaseModel):
    """Base of the messages FairPilot consumes."""

    # Strings are taken as written, as a custom resource's are: stripped, " " would be refused
    # here and accepted there, and "x" * 128 + " " accepted here and refused there (one set of
    # input rules, api.common). Enum values and the seed's "10" seconds are read leniently.
    model_config = ConfigDict(extra="ignore")

    event_type: EventType | None = None
    event_id: EventId | None = Field(default=None, description="Names the resource when given.")
    user_id: UserId
    timestamp: Timestamp | None = None
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Where to create the resource; must be an allowed namespace.",
    )


class Target(BaseModel):
    """The learning problem, as the seed's triggers state it."""

    target_column_name: ColumnName | None = None
    task_type: Annotated[TaskType | None, BeforeValidator(_lower)] = None
    sensitive_features: list[ColumnName] | None = Field(default=None, max_length=64)

    @field_validator("sensitive_features")
    @classmethod
    def _unique_sensitive(cls, value: list[str] | None) -> list[str] | None:
        # As the resources' sensitiveFeatures: a message naming one twice is InvalidPayload,
        # not a Dataset the bridge makes and the API refuses.
        return None if value is None else unique_columns(value)


class DatasetEvent(Inbound, Target):
    """`dataset-events`: a dataset was uploaded (the seed shows no example; these are the
    fields its data warehouse knows: ids, name, and where the file is)."""

    dataset_id: Id
    name: DisplayName | None = None
    uri: Uri | None = None
    format: Annotated[DataFormat | None, BeforeValidator(_lower)] = None
    time_budget: Annotated[int | None, BeforeValidator(_seconds)] = Field(
        default=None, ge=10, le=7 * 24 * 3600, description="Seconds, for the pipeline's training."
    )


class BiasTrigger(Inbound, Target):
    """`bias-trigger-events`."""

    event_type: EventType | None = "bias-trigger.reported"
    dataset_id: Id
    record_count: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    uri: Uri | None = None


class AutomlTrigger(Inbound, Target):
    """`automl-trigger-events`."""

    event_type: EventType | None = "automl-trigger.reported"
    dataset_id: Id
    # The seed's AutoML consumer reads the budget in seconds, sent as a string.
    time_budget: Annotated[int | None, BeforeValidator(_seconds)] = Field(
        default=None, ge=10, le=7 * 24 * 3600
    )
    model_id: Id | None = None
    version: Id | None = None
    uri: Uri | None = None


class XaiTrigger(Inbound):
    """`xai-trigger-events`."""

    event_type: EventType | None = "xai-trigger.reported"
    dataset_id: Id | None = None
    model_id: Id
    # None: the TrainingRun's current model; a version it has replaced since is explained too.
    version: Id | None = None
    level: Annotated[ExpertiseLevel | None, BeforeValidator(_lower)] = None
    levels: list[Annotated[ExpertiseLevel, BeforeValidator(_lower)]] | None = Field(
        default=None, min_length=1
    )

    @field_validator("levels")
    @classmethod
    def _no_repeats(cls, value: list[ExpertiseLevel] | None) -> list[ExpertiseLevel] | None:
        return list(dict.fromkeys(value)) if value else value


# A prediction record's values: JSON scalars (a nested object or list is no column value).
# Strings are bounded; the record as a whole is bounded by the bridge's max_message_bytes.
MAX_FEATURES = 1000
ScalarText = Annotated[str, Field(max_length=4096)]  # MAX_TEXT


def _scalar(value: Any) -> Any:
    if isinstance(value, dict | list):
        kind = "an object" if isinstance(value, dict) else "a list"
        raise ValueError(f"must be a JSON scalar (text, a number, true, false or null), not {kind}")
    return value


Scalar = Annotated[ScalarText | bool | int | float | None, BeforeValidator(_scalar)]
MAX_TEXT = 4096


# Column names found valid (api.common.ColumnName's rule: 1 to 256 printable characters). A
# stream of records repeats the same few names, and checking each character of each again was
# most of a record's validation time (bench/bench_monitor_kafka.py).
_VALID_NAMES: set[str] = set()
_MAX_REMEMBERED = 4096


def _features(features: dict[str, Any]) -> dict[str, Any]:
    """Column names as ColumnName wants them, values JSON scalars (text up to MAX_TEXT): one
    loop over the row rather than a validator per key and a union per value, a third of the
    time for the same rule."""
    for name, value in features.items():
        if name not in _VALID_NAMES:
            if not 1 <= len(name) <= 256:
                raise ValueError(f"column name {name[:80]!r}: 1 to 256 characters")
            try:
                check_printable(name)
            except ValueError as exc:
                raise ValueError(f"column name {name[:80]!r} {exc}") from None
            if len(_VALID_NAMES) >= _MAX_REMEMBERED:
                _VALID_NAMES.clear()
            _VALID_NAMES.add(name)
        if value is None or isinstance(value, bool | int | float):
            continue
        if isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise ValueError(f"{name[:80]!r}: text longer than {MAX_TEXT} characters")
            continue
        kind = (
            "an object"
            if isinstance(value, dict)
            else "a list"
            if isinstance(value, list)
            else type(value).__name__
        )
        raise ValueError(
            f"{name[:80]!r} must be a JSON scalar (text, a number, true, false or null), not {kind}"
        )
    return features


class PredictionRecord(BaseModel):
    """A prediction topic's record (a ModelMonitor's `spec.kafka.topic`, `prediction-events` by
    default): one row the model was asked about, what it answered and, when known, the truth.

    The bridge gathers the records of one user's model into the windows of its ModelMonitors
    (bridge/predictions.py). Values are kept exactly as sent, spaces included: a categorical
    value must be written as in the training data, or it is a category the model never saw.
    """

    # Values are kept as sent (no str_strip_whitespace): it would reach the feature values.
    model_config = ConfigDict(extra="ignore")

    model_id: Id = Field(description="The model that predicted (a TrainingRun's modelId).")
    user_id: UserId = Field(description="Its owner: a ModelMonitor's userId.")
    features: Annotated[dict[str, Any], AfterValidator(_features)] = Field(
        min_length=1,
        max_length=MAX_FEATURES,
        description="The row the model was given: column -> JSON scalar (null: missing).",
    )
    prediction: Scalar = Field(default=None, description="What the model answered, as served.")
    label: Scalar = Field(default=None, description="The truth, when it is known.")
    record_id: EventId | None = Field(default=None, description="The producer's id of the row.")
    timestamp: Timestamp | int | float | None = Field(
        default=None, description="When the prediction was made (as the producer writes it)."
    )
    event_type: EventType | None = Field(default=None, description='e.g. "prediction.made".')
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Only monitors in this namespace (an allowed one) take the record.",
    )


class Outbound(BaseModel):
    """Base of the messages FairPilot produces."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class BiasReported(Outbound):
    """`bias-events`: seed 001's `bias.reported`, when a BiasAnalysis succeeds."""

    event_type: Literal["bias.reported"] = "bias.reported"
    dataset_id: str
    user_id: str
    bias_report_id: str
    has_transformation_report: bool
    target_column_name: str
    task_type: str | None
    timestamp: str
    # FairPilot's additions
    event_id: str
    bias_detected: bool | None
    min_disparate_impact: float | None
    findings: list[str]
    report_uri: str | None
    transformation_uri: str | None
    namespace: str
    resource: str


class FairnessMeasures(Outbound):
    """A model's fairness on one sensitive feature (or intersection), over its groups of at
    least min_group_size held-out rows (api.fairness has the definitions)."""

    groups_compared: int | None = None
    groups_too_small: int | None = None
    disparate_impact: float | None = None
    statistical_parity_difference: float | None = None
    equal_opportunity_difference: float | None = None
    equalized_odds_difference: float | None = None
    lowest_selection_group: str | None = None
    highest_selection_group: str | None = None


class FairnessGateVerdict(Outbound):
    """One fairness gate on one feature."""

    metric: str
    feature: str | None = None
    passed: bool | None = None
    value: float | None = None
    min: float | None = None
    max: float | None = None
    message: str | None = None


class ModelFairness(Outbound):
    """A trained model's fairness on held-out data (the TrainingRun's status.fairness)."""

    measured: bool
    message: str | None = None  # why it was not measured
    split: str | None = None  # test or validation
    rows: int | None = None
    positive_label: str | None = None
    min_group_size: int | None = None
    features: dict[str, FairnessMeasures] = Field(default_factory=dict)
    intersections: dict[str, FairnessMeasures] = Field(default_factory=dict)
    gates: list[FairnessGateVerdict] = Field(default_factory=list)  # failed ones first
    gates_passed: bool | None = None  # None: no gate configured


class ModelUploaded(Outbound):
    """`automl-events`: seed 001's `model.uploaded`, when a TrainingRun succeeds."""

    event_type: Literal["model.uploaded"] = "model.uploaded"
    event_id: str
    timestamp: str
    user_id: str
    model_id: str
    dataset_id: str
    version: str
    framework: str
    model_type: str | None
    algorithm: str | None
    model_size_mb: float | None
    training_accuracy: float | None
    validation_accuracy: float | None
    test_accuracy: float | None
    # FairPilot's additions
    eval_metric: str | None
    best_score: float | None
    validation_passed: bool | None  # None: no validation threshold, so not checked
    validation_score: float | None = None  # the eval metric on validation data
    test_score: float | None = None  # the eval metric on the test dataset
    production_ready: bool | None = None  # every configured gate checked and passed
    framework_detail: str | None = None  # e.g. autogluon.tabular 1.6.3 (framework is "other")
    model_uri: str | None
    report_uri: str | None
    namespace: str
    resource: str
    fairness: ModelFairness | None = None  # None: not measured (no sensitive features)
    fairness_gates_passed: bool | None = None  # None: no fairness gate, or not measured
    mitigation: str | None = None  # "reweighing" when trained with a bias stage's weights


class XaiReported(Outbound):
    """`xai-events`: seed 001's `xai.reported`, one per expertise level of an Explanation."""

    event_type: Literal["xai.reported"] = "xai.reported"
    event_id: str
    timestamp: str
    user_id: str
    dataset_id: str
    model_id: str
    report_type: str = "model_explanation"
    level: str
    xai_report_id: str
    # FairPilot's additions
    version: str | None
    method: str | None
    top_feature: str | None
    model_uri: str | None = None  # the model explained (one model id and version: one model)
    report_uri: str
    namespace: str
    resource: str


class DriftDetected(Outbound):
    """`drift-events`: one alert of a ModelMonitor's window, in the seed's style (its user and
    model ids, a `<type>_<ids>_<epoch>` event id)."""

    event_type: Literal["drift.detected"] = "drift.detected"
    event_id: str
    timestamp: str
    user_id: str
    dataset_id: str
    model_id: str
    version: str | None
    alert_id: str
    alert_type: str  # DriftDetected, BiasDrift or PerformanceDegraded
    feature: str | None
    metric: str
    value: float | None
    baseline: float | None
    threshold: float | None
    message: str
    window: int
    rows: int
    report_uri: str | None
    namespace: str
    resource: str


class ModelPromotion(Outbound):
    """`automl-events`: a ModelMonitor's verdict on a retrained model, promoted (the monitor
    watches it from now on) or refused, with the gates and the scores it was decided on."""

    event_type: Literal["model.promoted", "model.refused"]
    event_id: str
    timestamp: str
    user_id: str
    dataset_id: str
    model_id: str
    version: str | None  # the candidate's
    previous_version: str | None  # the model it was compared with
    training_run: str  # the candidate's TrainingRun
    reason: str  # what triggered the retraining
    production_ready: bool | None
    metric: str | None
    score: float | None
    current_score: float | None
    rows: int | None
    window: int | None
    message: str
    namespace: str
    resource: str


class StatusChanged(Outbound):
    """The status topic: a resource entered a phase (and why, when it failed)."""

    event_type: Literal["status.changed"] = "status.changed"
    event_id: str
    timestamp: str
    user_id: str
    kind: str
    namespace: str
    resource: str
    uid: str
    generation: int
    run_id: str | None = None  # g<generation>, or g<generation>r<n> for a re-run
    phase: str
    reason: str | None
    message: str | None
    dataset_id: str | None


INBOUND_BY_ROLE: dict[str, type[Inbound]] = {
    "dataset": DatasetEvent,
    "bias_trigger": BiasTrigger,
    "automl_trigger": AutomlTrigger,
    "xai_trigger": XaiTrigger,
}
