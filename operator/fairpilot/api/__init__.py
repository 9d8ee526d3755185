"""The FairPilot API: pydantic models for custom-resource specs, job specs and results.

These models are the single source of truth. The operator builds CRD schemas from them,
the stage jobs validate their spec files with them, and results are written through them.
"""

from fairpilot.api.bias import BiasAnalysisSpec, BiasJobSpec, BiasThresholds
from fairpilot.api.common import DataFormat, DataLocation, ModelLocation, OwnedSpec, TaskType
from fairpilot.api.dataset import DatasetSpec, ProfileJobSpec
from fairpilot.api.explanation import ExpertiseLevel, ExplainJobSpec, ExplanationSpec, ShapMethod
from fairpilot.api.monitor import ModelMonitorSpec, MonitorJobSpec
from fairpilot.api.training import (
    Algorithm,
    Mitigation,
    Resources,
    TrainingRunSpec,
    TrainJobSpec,
    ValidationThreshold,
)

# The job spec each stage's Job validates its spec file with.
JOB_SPECS: dict[str, type[OwnedSpec]] = {
    "profile": ProfileJobSpec,
    "bias": BiasJobSpec,
    "train": TrainJobSpec,
    "explain": ExplainJobSpec,
    "monitor": MonitorJobSpec,
}

__all__ = [
    "JOB_SPECS",
    "Algorithm",
    "BiasAnalysisSpec",
    "BiasJobSpec",
    "BiasThresholds",
    "DataFormat",
    "DataLocation",
    "DatasetSpec",
    "ExpertiseLevel",
    "ExplainJobSpec",
    "ExplanationSpec",
    "Mitigation",
    "ModelLocation",
    "ModelMonitorSpec",
    "MonitorJobSpec",
    "ProfileJobSpec",
    "Resources",
    "ShapMethod",
    "TaskType",
    "TrainJobSpec",
    "TrainingRunSpec",
    "ValidationThreshold",
]
