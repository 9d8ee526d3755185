"""The five resource kinds: names, models and how `kubectl get` shows them."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from fairpilot import API_GROUP, API_VERSION
from fairpilot.api.bias import BiasAnalysisSpec
from fairpilot.api.dataset import DatasetSpec
from fairpilot.api.explanation import ExplanationSpec
from fairpilot.api.monitor import ModelMonitorSpec
from fairpilot.api.results import (
    BiasResult,
    ExplanationResult,
    MonitorResult,
    ProfileResult,
    StageResult,
    TrainingResult,
)
from fairpilot.api.status import (
    BiasAnalysisStatus,
    DatasetStatus,
    ExplanationStatus,
    ModelMonitorStatus,
    TrainingRunStatus,
)
from fairpilot.api.training import TrainingRunSpec


@dataclass(frozen=True)
class Column:
    """A printer column: `kubectl get` shows it."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    stage: str  # the `fairpilot-job` stage that does its work
    spec: type[BaseModel]
    status: type[BaseModel]
    # What its stage writes to result.json: the jobs validate it before writing, the
    # operator parses it before projecting it into `status`.
    result: type[StageResult]
    columns: tuple[Column, ...]
    description: str

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{API_GROUP}/{API_VERSION}"


PHASE = Column("Phase", ".status.phase", description="Pending, Running, Succeeded or Failed")
UP_TO_DATE = Column(
    "Up to date",
    '.status.conditions[?(@.type=="UpToDate")].status',
    description="Whether the inputs are still what the last run used",
    priority=1,
)
AGE = Column("Age", ".metadata.creationTimestamp", "date")
MESSAGE = Column("Message", ".status.message", description="Current state", priority=1)

DATASET = Kind(
    "Dataset",
    "datasets",
    ("fpds",),
    "profile",
    DatasetSpec,
    DatasetStatus,
    ProfileResult,
    (
        PHASE,
        Column("Rows", ".status.rows", "integer", "Rows in the data"),
        Column("Target", ".status.suggestedTarget", description="Target (given or suggested)"),
        AGE,
        MESSAGE,
    ),
    "A table to learn from: where it is, its target and sensitive features, and an optional "
    "pipeline of stages to run on it. Its Job profiles the data.",
)
BIAS_ANALYSIS = Kind(
    "BiasAnalysis",
    "biasanalyses",
    ("fpbias",),
    "bias",
    BiasAnalysisSpec,
    BiasAnalysisStatus,
    BiasResult,
    (
        PHASE,
        Column("DI", ".status.minDisparateImpact", "number", "Lowest disparate impact"),
        Column("Biased", ".status.biasDetected", "boolean", "A threshold was crossed"),
        UP_TO_DATE,
        AGE,
        MESSAGE,
    ),
    "Fairness metrics of a Dataset (and optionally a model) per sensitive feature and group.",
)
TRAINING_RUN = Kind(
    "TrainingRun",
    "trainingruns",
    ("fptrain",),
    "train",
    TrainingRunSpec,
    TrainingRunStatus,
    TrainingResult,
    (
        PHASE,
        Column("Version", ".status.modelVersion", description="The model's version"),
        Column("Metric", ".status.evalMetric"),
        Column("Validation", ".status.validationScore", "number", "Eval metric, validation"),
        Column("Test", ".status.testScore", "number", "Eval metric, test dataset"),
        Column("Ready", ".status.productionReady", "boolean", "Every gate checked and passed"),
        Column("Model", ".status.bestModel", priority=1),
        UP_TO_DATE,
        AGE,
        MESSAGE,
    ),
    "An AutoGluon training run on a Dataset within a time budget, on CPU or GPU.",
)
EXPLANATION = Kind(
    "Explanation",
    "explanations",
    ("fpexplain",),
    "explain",
    ExplanationSpec,
    ExplanationStatus,
    ExplanationResult,
    (
        PHASE,
        Column("Model", ".status.modelId", description="The model explained"),
        Column("Version", ".status.modelVersion", description="Its version"),
        Column("Method", ".status.method"),
        Column("Top feature", ".status.topFeature"),
        UP_TO_DATE,
        AGE,
        MESSAGE,
    ),
    "SHAP explanations of a TrainingRun's model, with reports per expertise level.",
)

MODEL_MONITOR = Kind(
    "ModelMonitor",
    "modelmonitors",
    ("fpmon",),
    "monitor",
    ModelMonitorSpec,
    ModelMonitorStatus,
    MonitorResult,
    (
        PHASE,
        Column("Model", ".status.modelId", description="The model watched"),
        Column("Version", ".status.modelVersion", description="Its version"),
        Column("Windows", ".status.window", "integer", "Windows measured"),
        Column(
            "Drift",
            '.status.conditions[?(@.type=="DriftDetected")].status',
            description="A feature or the prediction drifted in the last window",
        ),
        Column(
            "Bias drift",
            '.status.conditions[?(@.type=="BiasDrift")].status',
            description="Fairness fell from its post-training value in the last window",
        ),
        Column(
            "Degraded",
            '.status.conditions[?(@.type=="PerformanceDegraded")].status',
            description="The model scored worse than on its held-out data",
            priority=1,
        ),
        Column(
            "Stale",
            '.status.conditions[?(@.type=="DataStale")].status',
            description="No new data for longer than thresholds.staleAfterSeconds",
            priority=1,
        ),
        Column("Max PSI", ".status.maxPsi", "number", "The last window's largest PSI", 1),
        AGE,
        MESSAGE,
    ),
    "Watches a TrainingRun's model after training: data drift, prediction drift, bias drift, "
    "performance and data freshness, one window of new batches at a time.",
)

KINDS: tuple[Kind, ...] = (DATASET, BIAS_ANALYSIS, TRAINING_RUN, EXPLANATION, MODEL_MONITOR)
BY_KIND = {kind.kind: kind for kind in KINDS}
