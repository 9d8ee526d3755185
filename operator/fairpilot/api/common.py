"""Building blocks shared by every spec: the base model, data locations, task types."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from urllib.parse import unquote

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from fairpilot.api.validation import DOT_SEGMENT, check_printable, dot_segment

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


def _printable_uri(uri: str) -> str:
    # Decoded too: file:///data/a%E2%80%8Bb names a file whose name holds a zero-width space.
    check_printable(uri)
    check_printable(unquote(uri) if uri.startswith("file://") else uri)
    return uri


Uri = Annotated[
    str,
    Field(pattern=URI_PATTERN, max_length=2048, json_schema_extra=_NO_DOT_SEGMENTS),
    AfterValidator(_no_dot_segments),
    AfterValidator(_printable_uri),
]

# One set of input rules for ids and column names, whether they come in a custom resource or
# a Kafka message (bridge.payloads uses these same types).


# A string that lands in a spec, an annotation or a report: bounded, and without characters
# that print as something else (NUL, newlines, right-to-left overrides, zero-width spaces, lone
# surrogates), which would let one id pass for another. Each such type is written out as
# `Annotated[str, Field(min_length=..., max_length=...), PRINTABLE]`, not made by a function, so
# that type checkers see a type alias of `str`.
PRINTABLE = AfterValidator(check_printable)

# A column name as users write it: anything printable, bounded so it cannot be abused.
ColumnName = Annotated[str, Field(min_length=1, max_length=256), PRINTABLE]
# A user id is kept verbatim (an e-mail address is fine, so is an emoji) in specs and
# annotations; artifact folders get it one to one (`access.folder_name`).
UserId = Annotated[str, Field(min_length=1, max_length=128), PRINTABLE]
# Ids that become label values (`kubectl get -l fairpilot.io/model-id=...`) and parts of
# resource names follow Kubernetes' label-value syntax; the seed's ids ("dataset123",
# "test-dataset-1", "model_v2") all do.
ID_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=63)]
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

    user_id: UserId | None = Field(
        default=None,
        description=(
            "Owner (the seed's user_id): artifacts are stored under this user's prefix, and "
            "Kafka events carry it. A Dataset's pipeline gives it to every stage it creates."
        ),
    )


class InPipeline(SpecModel):
    """Base of the stage job specs a Dataset's pipeline runs: where its index page is."""

    pipeline_index: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "URI of the pipeline's index page, which the operator writes and keeps current "
            "(every stage, its phase and its reports): the report links to it. Set by the "
            "operator for a stage of a Dataset's pipeline; not a field of any resource."
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


# `sha256:` and 64 lower-case hex digits: how a model's digest is written (ModelLocation).
MODEL_DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"


class ModelLocation(SpecModel):
    """Where a model stored by the `train` stage lives (its `model/` directory), and its digest.

    A model directory is code (AutoGluon's predictor is a tree of pickles), so the explain and
    bias stages load one only after checking every file of it against `digest`: the operator
    gives the digest the TrainingRun's status reports (status.modelDigest, or the pinned
    version's in status.models); a spec without one is refused (ModelDigestMissing).
    """

    uri: Uri = Field(description="URI of the model directory written by the train stage.")
    digest: str | None = Field(
        default=None,
        pattern=MODEL_DIGEST_PATTERN,
        description=(
            "The model's digest as the train stage reported it (result.json modelDigest): "
            "sha256 of the manifest (fairpilot-manifest.json) that lists the sha256 and size of "
            "every file of the model. The explain and bias stages refuse a model without it or "
            "whose files do not match it, before unpickling anything. Not used for modelOutput."
        ),
    )


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
