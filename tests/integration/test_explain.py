"""The SHAP engines: exact ensemble TreeSHAP, its agreement with model-agnostic SHAP, fallbacks."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.jobs import JobRun, run_job

from fairpilot.datasets import adult
from fairpilot_jobs.explain.agnostic import explained_output, permutation_shap
from fairpilot_jobs.explain.tree import tree_shap
from fairpilot_jobs.models import load_predictor


@pytest.fixture(scope="module")
def adult_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return adult()


def test_tree_shap_is_additive_and_agrees_with_permutation(trained: JobRun, adult_frames) -> None:
    train, test = adult_frames
    with ExitStack() as stack:
        predictor, _ = load_predictor(
            trained.result["model"]["uri"], trained.result["modelDigest"], stack
        )
        features = list(predictor.original_features)
        rows = test[features].iloc[:25]
        background = train[features].sample(60, random_state=0)
        tree = tree_shap(predictor, rows, background)
        output = explained_output(predictor, rows)
        assert np.abs(tree["base"] + tree["values"].sum(axis=1) - output).max() <= 1e-6
        # The base value is the model's average prediction over the background, not the
        # probability of the average log-odds.
        average = explained_output(predictor, background).mean()
        assert tree["base"][0] == pytest.approx(average, abs=1e-6)
        assert sum(tree["members"].values()) == pytest.approx(1.0)
        permutation = permutation_shap(predictor, rows, background, seed=0)
    assert np.abs(permutation["base"] + permutation["values"].sum(axis=1) - output).max() <= 1e-9
    assert permutation["base"][0] == pytest.approx(average, abs=1e-9)
    # Different estimators of the same quantity: close, not equal.
    correlation = np.corrcoef(tree["values"].ravel(), permutation["values"].ravel())[0, 1]
    assert correlation > 0.9
    tree_rank = np.argsort(-np.abs(tree["values"]).mean(axis=0))[:3]
    permutation_rank = np.argsort(-np.abs(permutation["values"]).mean(axis=0))[:5]
    assert set(tree_rank) <= set(permutation_rank)


def _train_small(tmp_path: Path, frame: pd.DataFrame, target: str, **spec) -> JobRun:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    run = run_job(
        "train",
        {"dataset": {"uri": f"file://{path}"}, "target": target, "timeLimitSeconds": 20, **spec},
        tmp_path / "train",
    )
    assert run.returncode == 0, run.stderr
    return run


def test_regression_tree_shap_is_exact(tmp_path: Path, adult_frames) -> None:
    frame = adult_frames[0].sample(3000, random_state=0).drop(columns=["income"])
    trained = _train_small(
        tmp_path, frame, "hours_per_week", taskType="regression", algorithms=["lightgbm", "xgboost"]
    )
    run = run_job(
        "explain",
        {
            "model": {
                "uri": trained.result["model"]["uri"],
                "digest": trained.result["modelDigest"],
            },
            "dataset": {"uri": f"file://{tmp_path / 'data.csv'}"},
            "sampleSize": 200,
            "levels": ["expert"],
        },
        tmp_path / "explain",
    )
    assert run.returncode == 0, run.stderr
    assert run.result["method"] == "tree"
    assert run.result["problemType"] == "regression"
    assert run.result["localAccuracy"]["maxAbsError"] <= 1e-4  # float32 boosters, outputs ~40
    assert set(run.result["reports"]) == {"expert"}


def test_multiclass_falls_back_to_permutation(tmp_path: Path, adult_frames) -> None:
    frame = adult_frames[0].sample(2000, random_state=0)[
        ["age", "education_num", "hours_per_week", "sex", "race"]
    ]
    trained = _train_small(tmp_path, frame, "race", algorithms=["lightgbm"])
    assert trained.result["problemType"] == "multiclass"
    spec = {
        "model": {"uri": trained.result["model"]["uri"], "digest": trained.result["modelDigest"]},
        "dataset": {"uri": f"file://{tmp_path / 'data.csv'}"},
        "sampleSize": 4,
        "backgroundSize": 20,
        "levels": ["intermediate"],
    }
    run = run_job("explain", spec, tmp_path / "explain")
    assert run.returncode == 0, run.stderr
    assert run.result["method"] == "permutation"
    assert "multiclass" in run.result["fallbackReason"]
    assert run.result["localAccuracy"]["maxAbsError"] <= 1e-9
    refused = run_job("explain", {**spec, "method": "tree"}, tmp_path / "explain-tree")
    assert refused.returncode == 2
    assert refused.error["reason"] == "TreeShapUnsupported"


def test_non_tree_ensemble_falls_back_with_the_reason(tmp_path: Path, adult_frames) -> None:
    frame = adult_frames[0].sample(2000, random_state=1)[
        ["age", "education_num", "hours_per_week", "capital_gain", "income"]
    ]
    trained = _train_small(tmp_path, frame, "income", algorithms=["knn"])
    spec = {
        "model": {"uri": trained.result["model"]["uri"], "digest": trained.result["modelDigest"]},
        "dataset": {"uri": f"file://{tmp_path / 'data.csv'}"},
        "sampleSize": 4,
        "backgroundSize": 20,
        "levels": ["beginner"],
    }
    run = run_job("explain", spec, tmp_path / "explain")
    assert run.returncode == 0, run.stderr
    assert run.result["method"] == "permutation"
    assert "not a supported tree model" in run.result["fallbackReason"]


def _sklearn_frame(name: str) -> tuple[pd.DataFrame, str]:
    from sklearn import datasets

    loaded = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = loaded.frame.rename(columns=str)
    target = str(loaded.target.name)
    if name == "wine":
        frame[target] = frame[target].map({0: "cultivar_a", 1: "cultivar_b", 2: "cultivar_c"})
    return frame, target


@pytest.mark.slow
@pytest.mark.parametrize(
    ("data", "expected_method"),
    [("german", "tree"), ("diabetes", "tree"), ("wine", "permutation")],
)
def test_base_value_is_the_average_prediction_on_every_task(
    tmp_path: Path, data: str, expected_method: str
) -> None:
    """On other data and task types than Adult: the base value every report states is the
    model's mean output over the background rows, and the values add up to the output."""
    from html import escape

    from fairpilot.datasets import german_credit
    from fairpilot_jobs.explain.stage import sample_rows
    from fairpilot_jobs.reports.explanation_report import average_sentence

    if data == "german":
        frame, target = german_credit(), "credit"
    else:
        frame, target = _sklearn_frame(data)
    trained = _train_small(tmp_path, frame, target)
    spec = {
        "model": {"uri": trained.result["model"]["uri"], "digest": trained.result["modelDigest"]},
        "dataset": {"uri": f"file://{tmp_path / 'data.csv'}"},
        "sampleSize": 60,
        "backgroundSize": 40,
        "seed": 3,
    }
    run = run_job("explain", spec, tmp_path / "explain")
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["method"] == expected_method
    assert result["averagePrediction"]["rows"] == result["backgroundRows"] == 40
    with ExitStack() as stack:
        predictor, _ = load_predictor(
            trained.result["model"]["uri"], trained.result["modelDigest"], stack
        )
        stored = pd.read_csv(tmp_path / "data.csv")
        background = sample_rows(stored, predictor, 40, 3 + 1)
        average = explained_output(predictor, background).mean(axis=0)
    if predictor.problem_type == "multiclass":
        assert np.allclose(result["baseValue"], average, atol=1e-9)
        per_class = result["averagePrediction"]["perClass"]
        assert list(per_class.values()) == pytest.approx(list(average), abs=1e-9)
    else:
        assert result["baseValue"] == pytest.approx(float(average), abs=1e-6, rel=1e-6)
        assert result["averagePrediction"]["value"] == result["baseValue"]
    scale = 1.0 if predictor.problem_type != "regression" else max(1.0, float(np.abs(average)))
    # Probabilities to 1e-6; predictions relative to their size (AutoGluon returns float32).
    assert result["localAccuracy"]["maxAbsError"] <= 1e-6 * scale * (
        1 if predictor.problem_type != "regression" else 10
    )
    sentence = escape(average_sentence(result))
    for uri in result["reports"].values():
        page = Path(uri.removeprefix("file://")).read_text()
        assert sentence in page, uri
