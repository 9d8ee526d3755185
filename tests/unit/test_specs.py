"""Spec files: the pydantic models accept what users write and name the field when not."""

from __future__ import annotations

import pytest

from fairpilot.api import BiasJobSpec, ExplainJobSpec, TrainJobSpec
from fairpilot.errors import JobError
from fairpilot_jobs.cli import load_spec


def test_camel_case_fields_and_defaults() -> None:
    spec = TrainJobSpec.model_validate(
        {"dataset": {"uri": "s3://data/adult.csv"}, "target": "income", "timeLimitSeconds": 60}
    )
    assert spec.time_limit_seconds == 60
    assert [str(a) for a in spec.algorithms] == ["lightgbm", "catboost", "xgboost"]
    assert spec.resources.gpu == 0
    assert ExplainJobSpec.model_validate(
        {"model": {"uri": "file:///m"}, "dataset": {"uri": "file:///d.csv"}}
    ).levels == ["beginner", "intermediate", "expert"]


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        ({"target": "y", "sensitiveFeatures": ["sex"]}, "dataset", "Field required"),
        (
            {"dataset": {"uri": "http://x/y.csv"}, "target": "y", "sensitiveFeatures": ["s"]},
            "dataset.uri",
            "pattern",
        ),
        (
            {"dataset": {"uri": "file:///d.csv"}, "target": "y", "sensitiveFeatures": []},
            "sensitiveFeatures",
            "at least 1",
        ),
        (
            {"dataset": {"uri": "file:///d.csv"}, "target": "y", "sensitiveFeatures": ["s", "s"]},
            "sensitiveFeatures",
            "listed twice",
        ),
        (
            {
                "dataset": {"uri": "file:///d.csv"},
                "target": "y",
                "sensitiveFeatures": ["s"],
                "colour": 1,
            },
            "colour",
            "unknown field",
        ),
        (
            {
                "dataset": {"uri": "file:///d.csv"},
                "target": "y",
                "sensitiveFeatures": ["s"],
                "privilegedGroups": {"race": "White"},
            },
            "spec",
            "not in sensitiveFeatures",
        ),
        (
            {
                "dataset": {"uri": "file:///d.csv"},
                "target": "y",
                "sensitiveFeatures": ["s"],
                "thresholds": {"disparateImpact": 2},
            },
            "thresholds.disparateImpact",
            "less than or equal",
        ),
    ],
)
def test_bias_spec_errors_name_the_field(tmp_path, document, field, words) -> None:
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(JobError) as caught:
        load_spec("bias", str(path))
    assert caught.value.reason == "InvalidSpec"
    assert field in caught.value.message
    assert words in caught.value.message


def test_train_spec_rejects_bad_budget_and_threshold() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="timeLimitSeconds"):
        TrainJobSpec.model_validate(
            {"dataset": {"uri": "file:///d"}, "target": "y", "timeLimitSeconds": 1}
        )
    with pytest.raises(ValidationError, match="give min or max"):
        TrainJobSpec.model_validate(
            {
                "dataset": {"uri": "file:///d"},
                "target": "y",
                "validationThreshold": {"metric": "f1"},
            }
        )


def test_whole_custom_resource_is_accepted(tmp_path) -> None:
    path = tmp_path / "cr.yaml"
    path.write_text(
        "apiVersion: fairpilot.io/v1alpha1\nkind: BiasAnalysis\nmetadata: {name: x}\n"
        "spec:\n  dataset: {uri: 'file:///d.csv'}\n  target: income\n  sensitiveFeatures: [sex]\n"
    )
    spec = load_spec("bias", str(path))
    assert isinstance(spec, BiasJobSpec)
    assert spec.sensitive_features == ["sex"]


BIAS = {"dataset": {"uri": "file:///d.csv"}, "target": "y", "sensitiveFeatures": ["s"]}


@pytest.mark.parametrize(
    ("document", "said"),
    [
        (  # a near miss at the top: the required field it was meant for is missing too
            {**{k: v for k, v in BIAS.items() if k != "target"}, "targt": "y"},
            "targt: unknown field; did you mean `target`?",
        ),
        (  # in a nested block, by the block's own fields
            {**BIAS, "thresholds": {"disparateImpct": 0.8}},
            "thresholds.disparateImpct: unknown field; did you mean `disparateImpact`?",
        ),
        (  # snake_case where the resource's name is camelCase; a wrong case
            {**BIAS, "min_group_sise": 5, "PredictionColumn": "p"},
            "min_group_sise: unknown field; did you mean `minGroupSize`?",
        ),
        (  # inside a reference block
            {**BIAS, "model": {"uri": "file:///m", "digset": "sha256:x"}},
            "model.digset: unknown field; did you mean `digest`?",
        ),
    ],
)
def test_a_near_miss_field_name_gets_a_did_you_mean(tmp_path, document, said) -> None:
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(JobError) as caught:
        load_spec("bias", str(path))
    assert said in caught.value.message
    assert "Extra inputs" not in caught.value.message


def test_a_field_like_none_is_only_unknown(tmp_path) -> None:
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**BIAS, "zzzz": 1}))
    with pytest.raises(JobError) as caught:
        load_spec("bias", str(path))
    assert "zzzz: unknown field" in caught.value.message
    assert "did you mean" not in caught.value.message


def test_a_custom_resource_with_a_near_miss_fails_with_a_did_you_mean() -> None:
    from fairpilot.api.kinds import BY_KIND
    from fairpilot.references import UnresolvedReference, resolve

    spec = {"datasetRef": "d", "target": "y", "sensitiveFeatures": ["sex"], "treshold": {}}
    with pytest.raises(UnresolvedReference) as caught:
        resolve(BY_KIND["BiasAnalysis"], spec, lambda kind, name: None, "fair")
    assert caught.value.reason == "InvalidSpec" and not caught.value.waiting
    assert "treshold: unknown field; did you mean `thresholds`?" in caught.value.message
    dataset = {"uri": "file:///d.csv", "sensitveFeatures": ["sex"]}
    with pytest.raises(UnresolvedReference) as caught:
        resolve(BY_KIND["Dataset"], dataset, lambda kind, name: None, "d")
    assert "sensitveFeatures: unknown field; did you mean `sensitiveFeatures`?" in (
        caught.value.message
    )
