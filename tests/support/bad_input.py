"""The stage jobs' bad inputs: each with the reason it must fail with."""

from __future__ import annotations

# Well-formed and never anyone's: a stage must refuse before it looks for the model.
ANY_DIGEST = "sha256:" + "0" * 64


def cases(f: dict[str, str]) -> list[tuple[str, str, dict, str, str]]:
    bias = {"target": "y", "sensitiveFeatures": ["sex"]}
    train = {"target": "y", "timeLimitSeconds": 10}
    return [
        ("missing file", "profile", {"uri": f["missing"]}, "DatasetNotFound", "does not exist"),
        (
            "unreadable parquet",
            "profile",
            {"uri": f["garbage.parquet"]},
            "UnreadableData",
            "not readable as parquet",
        ),
        (
            "Parquet footer over the limit",
            "profile",
            {"uri": f["huge_footer.parquet"]},
            "ParquetMetadataTooLarge",
            "FAIRPILOT_MAX_PARQUET_METADATA_BYTES",
        ),
        (
            "zip of two files",
            "profile",
            {"uri": f["two.csv.zip"]},
            "UnreadableData",
            "holds 2 files ('a.csv', 'b.csv')",
        ),
        ("empty file", "profile", {"uri": f["empty.csv"]}, "EmptyTable", "0 rows"),
        (
            "header only",
            "bias",
            {"dataset": {"uri": f["header_only.csv"]}, **bias},
            "EmptyTable",
            "0 rows",
        ),
        (
            "unknown target (bias)",
            "bias",
            {"dataset": {"uri": f["small.csv"]}, **bias, "target": "income"},
            "TargetNotFound",
            "columns are: age, sex, job, y",
        ),
        (
            "unknown target (train)",
            "train",
            {"dataset": {"uri": f["small.csv"]}, **train, "target": "income"},
            "TargetNotFound",
            "columns are: age, sex, job, y",
        ),
        (
            "unknown target (profile)",
            "profile",
            {"uri": f["small.csv"], "target": "income"},
            "TargetNotFound",
            "columns are",
        ),
        (
            "missing sensitive feature",
            "bias",
            {"dataset": {"uri": f["small.csv"]}, **bias, "sensitiveFeatures": ["race"]},
            "SensitiveFeatureNotFound",
            "'race'",
        ),
        (
            "single-class label (bias)",
            "bias",
            {"dataset": {"uri": f["one_class.csv"]}, **bias},
            "SingleClassLabel",
            "1 distinct",
        ),
        (
            "single-class label (train)",
            "train",
            {"dataset": {"uri": f["one_class.csv"]}, **train},
            "SingleClassLabel",
            "at least two",
        ),
        (
            "text label for regression",
            "train",
            {"dataset": {"uri": f["small.csv"]}, **train, "taskType": "regression"},
            "NonNumericLabel",
            "not numeric",
        ),
        (
            "unknown privileged group",
            "bias",
            {"dataset": {"uri": f["small.csv"]}, **bias, "privilegedGroups": {"sex": "X"}},
            "UnknownGroup",
            "X",
        ),
        (
            "unknown positive label",
            "bias",
            {"dataset": {"uri": f["small.csv"]}, **bias, "positiveLabel": "maybe"},
            "UnknownPositiveLabel",
            "'maybe'",
        ),
        (
            "directory without a model",
            "explain",
            {
                "model": {"uri": f["no_model"], "digest": ANY_DIGEST},
                "dataset": {"uri": f["small.csv"]},
            },
            "ModelNotFound",
            "no predictor.pkl",
        ),
        (
            "model URI that does not exist",
            "explain",
            {
                "model": {"uri": f["missing"], "digest": ANY_DIGEST},
                "dataset": {"uri": f["small.csv"]},
            },
            "ModelNotFound",
            "no model at",
        ),
        (
            "model without a digest",
            "explain",
            {"model": {"uri": f["no_model"]}, "dataset": {"uri": f["small.csv"]}},
            "ModelDigestMissing",
            "no digest",
        ),
        (
            "spec with a wrong type",
            "train",
            {"dataset": {"uri": f["small.csv"]}, **train, "timeLimitSeconds": "soon"},
            "InvalidSpec",
            "timeLimitSeconds",
        ),
        (
            "spec with an unknown field",
            "profile",
            {"uri": f["small.csv"], "targt": "y"},
            "InvalidSpec",
            "targt: unknown field",
        ),
        ("s3 bucket name invalid", "profile", {"uri": "s3://A/b.csv"}, "InvalidSpec", "uri"),
        (
            "percent-encoded NUL in a data URI",
            "profile",
            {"uri": f["small.csv"].replace("small.csv", "small%00.csv")},
            "InvalidSpec",  # the spec's own model refuses it, naming the field
            "uri: holds invisible or control characters (U+0000)",
        ),
        (
            "zero-width space in a data URI",
            "bias",
            {"dataset": {"uri": f"{f['small.csv']}\u200b"}, **bias},
            "InvalidSpec",
            "dataset.uri: holds invisible or control characters (U+200B)",
        ),
    ]
