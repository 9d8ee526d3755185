"""Building blocks shared by every spec: the base model, data locations, task types."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from fairpilot.api.validation import DOT_SEGMENT, dot_segment

# Kubernetes-facing names are camelCase; Python code uses snake_case.
_MODEL_CONFIG = ConfigDict(
    alias_generator=to_camel,
    populate_by_name=True,
    extra="forbid",
    use_enum_values=False,
    validate_default=True,
)

# `file:///` + an absolute path, or `s3://bucket[/key]`. No `?` or `#`: the jobs parse URIs as
# URLs, which would silently cut the path there and read another object. No control characters.
URI_PATTERN = (
    r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^?#\x00-\x1f\x7f]*)?"
    r"|file:///[^?#\x00-\x1f\x7f]*)$"
)
# What the API server checks (`kubectl apply`), the same rule as `_no_dot_segments` below: a
# `..` segment would climb out of the directory (or S3 prefix) that FAIRPILOT_FILE_ROOT and the
# data URI template mean to confine a dataset to.
_NO_DOT_SEGMENTS = {
    "x-kubernetes-validations": [
        {"rule": f"!self.matches({DOT_SEGMENT!r})", "message": "'..' is not allowed in a URI"}
    ]
}


def _no_dot_segments(uri: str) -> str:
    if dot_segment(uri.split("://", 1)[-1]):
        raise ValueError("'..' is not allowed in a URI")
    return uri


Uri = Annotated[
    str,
    Field(pattern=URI_PATTERN, max_length=2048, json_schema_extra=_NO_DOT_SEGMENTS),
    AfterValidator(_no_dot_segments),
]

# A column name as users write it: anything printable, bounded so it cannot be abused.
ColumnName = Annotated[str, Field(min_length=1, max_length=256)]
# A label value as written in YAML or JSON: `>50K`, `1`, `true` are all plausible.
LabelValue = str | int | float | bool


class SpecModel(BaseModel):
    """Base for every spec: camelCase aliases, unknown fields refused."""

    model_config = _MODEL_CONFIG


# Who owns a resource is a spec field on every resource, not a label such as
# `fairpilot.io/user`: the models stay the one place that defines, documents (`kubectl explain`)
# and validates it; a label value could not hold the seed's user ids (63 characters of
# [A-Za-z0-9._-] at most, where a user_id may be an e-mail address of up to 128); and the Kafka
# bridge maps a trigger's `user_id` to it like every other payload field, then reads it back for
# the events it emits. A pipeline copies its Dataset's owner into every resource it creates.
class OwnedSpec(SpecModel):
    """Base of every resource's spec (and of the job specs made from them): the owner."""

    user_id: str | None = Field(
        default=None,
        max_length=128,
        description=(
            "Owner (the seed's user_id): artifacts are stored under this user's prefix, and "
            "Kafka events carry it. A Dataset's pipeline gives it to every stage it creates."
        ),
    )


class TaskType(StrEnum):
    """What kind of prediction problem the target defines."""

    CLASSIFICATION = "classification"  # binary or multiclass, decided from the label
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


class DataFormat(StrEnum):
    """File formats a dataset may have; `None` in a spec means: from the file extension."""

    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


class DataLocation(SpecModel):
    """Where a table lives: an `s3://` or `file://` URI and, optionally, its format."""

    uri: Uri = Field(
        description="Location of the data: s3://bucket/key or file:///absolute/path.",
    )
    format: DataFormat | None = Field(
        default=None,
        description="csv, parquet or jsonl; inferred from the file extension when omitted.",
    )


class ModelLocation(SpecModel):
    """Where a model stored by the `train` stage lives (its `model/` directory)."""

    uri: Uri = Field(description="URI of the model directory written by the train stage.")


def unique_columns(values: list[str]) -> list[str]:
    """Reject duplicate column names: they make per-column results ambiguous."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"column {value!r} is listed twice")
        seen.add(value)
    return values


class _UniqueColumnsMixin(SpecModel):
    @field_validator("sensitive_features", check_fields=False)
    @classmethod
    def _unique_sensitive(cls, value: list[str]) -> list[str]:
        return unique_columns(value)
