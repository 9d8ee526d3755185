"""Dataset: where the data is, who owns it, and what the profile stage should look at."""

from __future__ import annotations

from pydantic import Field

from fairpilot.api.common import ColumnName, DataLocation, TaskType, _UniqueColumnsMixin


class DatasetFields(DataLocation, _UniqueColumnsMixin):
    """Fields shared by the Dataset resource and the profile job spec: a location and more."""

    user_id: str | None = Field(
        default=None,
        max_length=128,
        description="Owner of the dataset (the seed's user_id); used to lay out artifacts.",
    )
    target: ColumnName | None = Field(
        default=None,
        description="Column to predict. When omitted the profile suggests one.",
    )
    task_type: TaskType | None = Field(
        default=None,
        description="classification, binary, multiclass or regression; suggested when omitted.",
    )
    sensitive_features: list[ColumnName] = Field(
        default_factory=list,
        max_length=64,
        description="Columns describing protected groups (e.g. sex, race), for bias analysis.",
    )


class ProfileJobSpec(DatasetFields):
    """Spec file of `fairpilot-job profile`: the Dataset's spec."""


class DatasetSpec(DatasetFields):
    """Spec of the Dataset custom resource."""
