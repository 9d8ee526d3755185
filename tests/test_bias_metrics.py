"""Bias metrics against the references: fairlearn's MetricFrame and AWS's smclarify."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fairpilot.datasets import adult
from fairpilot_jobs.bias.metrics import (
    MISSING_GROUP,
    POSTTRAINING,
    PRETRAINING,
    bias_detected,
    feature_bias,
)
from fairpilot_jobs.bias.reweighing import apply_reweighing, reweighing_table

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def data() -> dict[str, object]:
    train = adult()[0]
    label = (train["income"] == ">50K").to_numpy()
    # A fixed rule stands in for a model: deterministic, and unfair in interesting ways.
    predicted = ((train["education_num"] >= 13) | (train["capital_gain"] > 5000)).to_numpy()
    return {"frame": train, "label": label, "predicted": predicted}


@pytest.mark.parametrize("feature", ["sex", "race", "workclass"])
def test_group_rates_agree_with_fairlearn(data, feature: str) -> None:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    frame, label, predicted = data["frame"], data["label"], data["predicted"]
    groups = frame[feature].fillna(MISSING_GROUP)
    reference = MetricFrame(
        metrics={
            "count": count,
            "predictedPositiveRate": selection_rate,
            "truePositiveRate": true_positive_rate,
            "falsePositiveRate": false_positive_rate,
            "falseNegativeRate": false_negative_rate,
            "accuracy": accuracy_score,
        },
        y_true=label,
        y_pred=predicted,
        sensitive_features=groups,
    ).by_group
    label_rate = MetricFrame(
        metrics=selection_rate, y_true=label, y_pred=label, sensitive_features=groups
    ).by_group
    ours = feature_bias(frame[feature], label, predicted).to_dict()["groups"]
    assert set(ours) == set(reference.index)
    for group, row in reference.iterrows():
        assert ours[group]["count"] == row["count"]
        assert ours[group]["positiveRate"] == pytest.approx(label_rate[group], abs=TOLERANCE)
        for metric in (
            "predictedPositiveRate",
            "truePositiveRate",
            "falsePositiveRate",
            "falseNegativeRate",
            "accuracy",
        ):
            assert ours[group][metric] == pytest.approx(row[metric], abs=TOLERANCE), (group, metric)


def _smclarify(
    frame: pd.Series, facet: pd.Series, label: pd.Series, predicted: pd.Series
) -> dict[str, float]:
    from smclarify.bias.metrics import posttraining as post
    from smclarify.bias.metrics import pretraining as pre

    return {
        "CI": pre.CI(frame, facet),
        "DPL": pre.DPL(frame, facet, label),
        "KL": pre.KL(label, facet),
        "JS": pre.JS(label, facet),
        "LP": pre.LP(label, facet),
        "TVD": pre.TVD(label, facet),
        "KS": pre.KS(label, facet),
        "DPPL": post.DPPL(frame, facet, predicted),
        "DI": post.DI(frame, facet, predicted),
        "DCAcc": post.DCA(frame, facet, label, predicted),
        "DCR": post.DCR(frame, facet, label, predicted),
        "RD": post.RD(frame, facet, label, predicted),
        "DAR": post.DAR(frame, facet, label, predicted),
        "DRR": post.DRR(frame, facet, label, predicted),
        "AD": post.AD(frame, facet, label, predicted),
        "TE": post.TE(frame, facet, label, predicted),
    }


def _assert_matches_smclarify(ours: dict[str, float | None], reference: dict[str, float]) -> None:
    for name in (*PRETRAINING, *POSTTRAINING):
        expected = reference[name]
        if math.isfinite(expected):
            assert ours[name] == pytest.approx(expected, abs=TOLERANCE), name
        else:
            assert ours[name] is None, name


def test_two_groups_agree_with_smclarify(data) -> None:
    frame, label, predicted = data["frame"], data["label"], data["predicted"]
    result = feature_bias(frame["sex"], label, predicted)
    assert result.privileged_group == "Male"
    facet = frame["sex"] == "Female"
    reference = _smclarify(frame["sex"], facet, pd.Series(label), pd.Series(predicted))
    _assert_matches_smclarify(result.metrics["Female"], reference)


def test_published_adult_figures(data) -> None:
    frame, label = data["frame"], data["label"]
    female = feature_bias(frame["sex"], label, label).metrics["Female"]
    assert female["CI"] == pytest.approx(0.3384, abs=1e-4)
    assert female["DPL"] == pytest.approx(0.1963, abs=1e-4)
    assert female["KL"] == pytest.approx(0.1412, abs=1e-4)
    assert female["JS"] == pytest.approx(0.0302, abs=1e-4)
    assert female["DI"] == pytest.approx(0.358, abs=1e-3)
    assert female["LDI"] == pytest.approx(female["DI"], abs=TOLERANCE)


def test_each_group_of_a_multi_group_feature_against_the_privileged_one(data) -> None:
    frame, label, predicted = data["frame"], data["label"], data["predicted"]
    result = feature_bias(frame["race"], label, predicted)
    rates = frame.assign(y=label).groupby("race")["y"].mean()
    assert result.privileged_group == rates.idxmax() == "Asian-Pac-Islander"
    assert set(result.metrics) == set(rates.index) - {"Asian-Pac-Islander"}
    for group in result.metrics:
        keep = frame["race"].isin([group, result.privileged_group]).to_numpy()
        facet = (frame["race"][keep] == group).reset_index(drop=True)
        reference = _smclarify(
            frame["race"][keep].reset_index(drop=True),
            facet,
            pd.Series(label[keep]),
            pd.Series(predicted[keep]),
        )
        _assert_matches_smclarify(result.metrics[group], reference)


def test_privileged_group_given_and_unknown(data) -> None:
    frame, label = data["frame"], data["label"]
    given = feature_bias(frame["sex"], label, privileged_group="Female")
    assert given.privileged_group == "Female"
    assert given.privileged_chosen_by == "spec"
    assert given.metrics["Male"]["DPL"] < 0
    with pytest.raises(ValueError, match="groups: Female, Male"):
        feature_bias(frame["sex"], label, privileged_group="Other")


def test_missing_values_form_their_own_group(data) -> None:
    frame, label = data["frame"], data["label"]
    groups = feature_bias(frame["workclass"], label).groups
    assert groups[MISSING_GROUP].count == frame["workclass"].isna().sum() == 1836


def test_no_predictions_means_no_post_training_metrics(data) -> None:
    frame, label = data["frame"], data["label"]
    female = feature_bias(frame["sex"], label).to_dict()["metrics"]["Female"]
    assert set(female) == {*PRETRAINING, "LDI"}


def test_bias_detected_findings(data) -> None:
    frame, label, predicted = data["frame"], data["label"], data["predicted"]
    metrics = feature_bias(frame["sex"], label, predicted).metrics
    ratio = metrics["Female"]["DI"]
    assert bias_detected(metrics) == [f"Female: DI {ratio:.3f} is below 0.8 (four-fifths rule)"]
    assert bias_detected(feature_bias(frame["sex"], label).metrics, min_disparate_impact=0.3) == []
    gaps = bias_detected(
        feature_bias(frame["sex"], label).metrics, 0.3, max_abs_parity_difference=0.1
    )
    assert gaps == ["Female: |DPL| 0.196 exceeds 0.1"]


def test_reweighing_makes_label_independent_of_group(data) -> None:
    frame, label = data["frame"], data["label"]
    features = ["sex", "race"]
    table = reweighing_table(frame, features, label)
    weights = apply_reweighing(frame, table, features, label)
    assert weights.sum() == pytest.approx(len(frame))
    overall = label.mean()
    weighted = pd.DataFrame(
        {"g": frame["sex"] + "/" + frame["race"], "w": weights, "yw": weights * label}
    )
    by_group = weighted.groupby("g")[["w", "yw"]].sum()
    np.testing.assert_allclose(by_group["yw"] / by_group["w"], overall, atol=1e-12)
    # The textbook formula, for one cell.
    cell = (frame["sex"] == "Female") & (frame["race"] == "Black") & label
    expected = (
        ((frame["sex"] == "Female") & (frame["race"] == "Black")).mean()
        * label.mean()
        / cell.mean()
    )
    entry = next(
        e for e in table if e["groups"] == {"sex": "Female", "race": "Black"} and e["labelPositive"]
    )
    assert entry["weight"] == pytest.approx(expected, rel=1e-12)
    assert entry["count"] == int(cell.sum())


def test_apply_reweighing_gives_unknown_combinations_weight_one() -> None:
    frame = pd.DataFrame({"sex": ["F", "M", "X"], "y": [1, 0, 1]})
    table = [{"groups": {"sex": "F"}, "labelPositive": True, "count": 1, "weight": 2.5}]
    weights = apply_reweighing(frame, table, ["sex"], frame["y"].to_numpy() == 1)
    assert weights.tolist() == [2.5, 1.0, 1.0]
