"""Bias metrics and reweighing, checked on real Adult data against two references.

Per-group rates against fairlearn's `MetricFrame`; every Clarify metric, value and sign,
against AWS's reference implementation `smclarify`; and the figures published for Adult.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairpilot.datasets import adult
from fairpilot_jobs.bias import metrics as bias_metrics
from fairpilot_jobs.bias.metrics import (
    CONDITIONAL,
    FLIP,
    MISSING_GROUP,
    POPULATION,
    POSTTRAINING,
    PRETRAINING,
    FeatureBias,
    bias_detected,
    feature_bias,
    flip_columns,
    group_codes,
    population_metrics,
)
from fairpilot_jobs.bias.reweighing import apply_reweighing, mitigation_effect, reweighing_table

TOLERANCE = 1e-9
POSITIVE = ">50K"
# The group variable of the CDD checks: every stratum of it has both outcomes, label and
# prediction, for every pair of sex and race groups, so smclarify's 0/0 = 0 never applies.
STRATA = "relationship"
PER_GROUP = {*PRETRAINING, *POSTTRAINING} - set(POPULATION)


def rule(frame: pd.DataFrame) -> np.ndarray:
    """A fixed "model": deterministic, right 77% of the time, and unfair in its own ways."""
    return ((frame["education_num"] >= 13) | (frame["capital_gain"] > 5000)).to_numpy()


@pytest.fixture(scope="session")
def adult_train() -> pd.DataFrame:
    return adult()[0]


@pytest.fixture(scope="session")
def adult_test() -> pd.DataFrame:
    return adult()[1]


@pytest.fixture(scope="session")
def label(adult_train: pd.DataFrame) -> np.ndarray:
    return (adult_train["income"] == POSITIVE).to_numpy()


@pytest.fixture(scope="session")
def predicted(adult_train: pd.DataFrame) -> np.ndarray:
    return rule(adult_train)


def numeric(frame: pd.DataFrame, feature: str) -> pd.DataFrame:
    """FlipTest's columns, as the stage picks them: numeric, but the label and the feature."""
    return frame[flip_columns(frame, exclude=("income", feature))]


def test_adult_loads_as_published(adult_train: pd.DataFrame, adult_test: pd.DataFrame) -> None:
    assert len(adult_train) == 32_561
    assert len(adult_test) == 16_281
    assert set(adult_train["income"]) == set(adult_test["income"]) == {"<=50K", ">50K"}
    rates = adult_train.assign(y=adult_train["income"] == POSITIVE).groupby("sex")["y"].mean()
    assert rates["Male"] == pytest.approx(0.3057, abs=1e-4)
    assert rates["Female"] == pytest.approx(0.1095, abs=1e-4)


# --- per-group rates: fairlearn ---------------------------------------------------------------


@pytest.mark.parametrize("feature", ["sex", "race", "workclass"])
def test_group_rates_agree_with_fairlearn(
    adult_train: pd.DataFrame, label: np.ndarray, predicted: np.ndarray, feature: str
) -> None:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    # fairlearn sees the raw string labels, so its notion of "positive" comes from pos_label
    # alone, independently of our boolean masks.
    y_true = adult_train["income"].to_numpy()
    y_pred = np.where(predicted, POSITIVE, "<=50K")

    def label_selection_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return selection_rate(y_true, y_true, pos_label=POSITIVE)

    reference = MetricFrame(
        metrics={
            "count": count,
            "positiveRate": label_selection_rate,
            "predictedPositiveRate": partial(selection_rate, pos_label=POSITIVE),
            "truePositiveRate": partial(true_positive_rate, pos_label=POSITIVE),
            "falsePositiveRate": partial(false_positive_rate, pos_label=POSITIVE),
            "falseNegativeRate": partial(false_negative_rate, pos_label=POSITIVE),
            "accuracy": accuracy_score,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=adult_train[feature].fillna(MISSING_GROUP),
    ).by_group

    ours = feature_bias(adult_train[feature], label, predicted).to_dict()["groups"]
    assert sorted(ours) == sorted(reference.index)
    assert len(ours) >= 2
    groups = adult_train[feature].fillna(MISSING_GROUP).to_numpy()
    for group, row in reference.iterrows():
        assert ours[group]["count"] == row["count"]
        for metric in reference.columns.drop("count"):
            if ours[group][metric] is None:
                # Undefined: scikit-learn says 0 (zero_division), we say None. Only where the
                # denominator really is zero: TPR and FNR of a group without positive labels.
                assert metric in ("truePositiveRate", "falseNegativeRate"), (group, metric)
                assert not label[groups == group].any(), group
                assert row[metric] == 0.0
                continue
            assert ours[group][metric] == pytest.approx(row[metric], abs=TOLERANCE), (
                group,
                metric,
            )


# --- metrics: smclarify -----------------------------------------------------------------------


def clarify(
    facet_values: pd.Series,
    disadvantaged: pd.Series,
    label: np.ndarray,
    predicted: np.ndarray,
    strata: pd.Series,
    columns: pd.DataFrame,
) -> dict[str, float]:
    """Every per-group metric we report, computed by smclarify (its "rest" = our privileged
    group). FT is negated: smclarify's code counts the flips the other way round from AWS's
    documentation, whose sign we keep (see the module docstring of metrics.py)."""
    from smclarify.bias import metrics as sm

    feature = facet_values.reset_index(drop=True)
    facet = pd.Series(np.asarray(disadvantaged, dtype=bool))
    y = pd.Series(np.asarray(label, dtype=bool))
    y_hat = pd.Series(np.asarray(predicted, dtype=bool))
    group_variable = strata.reset_index(drop=True)
    return {
        "CDDL": sm.CDDL(feature, facet, y, group_variable),
        "CDDPL": sm.CDDPL(feature, facet, y_hat, group_variable),
        "SD": sm.SD(feature, facet, y, y_hat),
        "FT": -sm.FT(columns.reset_index(drop=True), facet, y_hat),
        "CI": sm.CI(feature, facet),
        "DPL": sm.DPL(feature, facet, y),
        "KL": sm.KL(y, facet),
        "JS": sm.JS(y, facet),
        "LP": sm.LP(y, facet),
        "TVD": sm.TVD(y, facet),
        "KS": sm.KS(y, facet),
        "DPPL": sm.DPPL(feature, facet, y_hat),
        "DI": sm.DI(feature, facet, y_hat),
        "DCAcc": sm.DCA(feature, facet, y, y_hat),
        "DCR": sm.DCR(feature, facet, y, y_hat),
        "RD": sm.RD(feature, facet, y, y_hat),
        "DAR": sm.DAR(feature, facet, y, y_hat),
        "DRR": sm.DRR(feature, facet, y, y_hat),
        "AD": sm.AD(feature, facet, y, y_hat),
        "TE": sm.TE(feature, facet, y, y_hat),
    }


def assert_same_as_clarify(ours: dict[str, float | None], reference: dict[str, float]) -> None:
    assert set(reference) == PER_GROUP
    for name, expected in reference.items():
        value = ours[name]
        assert value is not None, name
        assert math.isfinite(expected), name  # Adult has no degenerate group
        assert value == pytest.approx(expected, abs=TOLERANCE), name
        assert np.sign(value) == np.sign(expected), name


def test_female_vs_male_agrees_with_clarify(
    adult_train: pd.DataFrame, label: np.ndarray, predicted: np.ndarray
) -> None:
    columns = numeric(adult_train, "sex")
    assert list(columns) == [
        "age",
        "fnlwgt",
        "education_num",
        "capital_gain",
        "capital_loss",
        "hours_per_week",
    ]
    result = feature_bias(
        adult_train["sex"], label, predicted, strata=adult_train[STRATA], flip_features=columns
    )
    assert result.privileged_group == "Male"
    assert list(result.metrics) == ["Female"]
    reference = clarify(
        adult_train["sex"],
        adult_train["sex"] == "Female",
        label,
        predicted,
        adult_train[STRATA],
        columns,
    )
    assert_same_as_clarify(result.metrics["Female"], reference)
    # The rule is not a trivial predictor: signs differ across metrics, so a flipped sign
    # convention anywhere would show.
    signs = {name: np.sign(value) for name, value in result.metrics["Female"].items()}
    assert signs["RD"] == signs["AD"] == signs["TE"] == signs["SD"] == -1
    assert signs["CDDPL"] == signs["FT"] == -1
    assert signs["DPPL"] == signs["DCAcc"] == signs["DCR"] == signs["DRR"] == 1
    assert signs["CDDL"] == 1
    # Within relationships (husbands, wives), the labels' disparity shrinks: 0.196 -> 0.080.
    assert result.metrics["Female"]["CDDL"] == pytest.approx(0.0803, abs=1e-4)
    assert result.flip_test == {
        "columns": list(columns),
        "neighbors": 5,
        "privilegedRows": 21_790,
        "referenceRows": 21_790,
        "rows": {"Female": 10_771},
        "sampled": False,
    }


def test_published_adult_figures(adult_train: pd.DataFrame, label: np.ndarray) -> None:
    female = feature_bias(adult_train["sex"], label, label).metrics["Female"]
    assert female["CI"] == pytest.approx(0.3384, abs=1e-4)
    assert female["DPL"] == pytest.approx(0.1963, abs=1e-4)
    assert female["KL"] == pytest.approx(0.1412, abs=1e-4)
    assert female["JS"] == pytest.approx(0.0302, abs=1e-4)
    assert female["DI"] == pytest.approx(0.358, abs=1e-3)
    # With the label as the prediction, DPPL and DI are the label's DPL and LDI.
    assert female["LDI"] == pytest.approx(female["DI"], abs=TOLERANCE)
    assert female["DPPL"] == pytest.approx(female["DPL"], abs=TOLERANCE)
    for name in ("DCAcc", "DCR", "RD", "DAR", "DRR", "AD"):
        assert female[name] == 0.0, name
    # No errors at all: FN/FP is 0/0, undefined (smclarify would say 0).
    assert female["TE"] is None


def test_race_groups_agree_with_clarify_one_at_a_time(
    adult_train: pd.DataFrame,
    label: np.ndarray,
    predicted: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    race = adult_train["race"]
    columns = numeric(adult_train, "race")
    strata = adult_train[STRATA]
    # More tested rows than FlipTest is allowed to ask about: a deterministic sample.
    monkeypatch.setattr(bias_metrics, "FT_MAX_TESTED_ROWS", 1000)
    sampled = feature_bias(race, label, predicted, flip_features=columns).flip_test
    assert sampled is not None and sampled["sampled"]
    assert sum(sampled["rows"].values()) <= bias_metrics.FT_MAX_TESTED_ROWS
    monkeypatch.setattr(bias_metrics, "FT_MAX_TESTED_ROWS", len(race))
    result = feature_bias(race, label, predicted, strata=strata, flip_features=columns)
    assert result.flip_test is not None and not result.flip_test["sampled"]
    rates = pd.Series(label).groupby(race.to_numpy()).mean()
    # Asian-Pac-Islander has the highest rate but 3% of the rows: the reference is the best
    # off of the groups of at least 10% of the rows.
    assert rates.idxmax() == "Asian-Pac-Islander"
    assert result.privileged_group == "White"
    assert result.privileged_chosen_by.endswith("at least 10% of the rows")
    assert sorted(result.metrics) == ["Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other"]
    for group in result.metrics:
        # smclarify compares a facet with everything else, so keep only the two groups.
        keep = race.isin([group, result.privileged_group]).to_numpy()
        reference = clarify(
            race[keep],
            race[keep] == group,
            label[keep],
            predicted[keep],
            strata[keep],
            columns[keep],
        )
        assert_same_as_clarify(result.metrics[group], reference)


# --- privileged group, missing values, group codes ------------------------------------------


def test_privileged_group_given_explicitly(adult_train: pd.DataFrame, label: np.ndarray) -> None:
    automatic = feature_bias(adult_train["sex"], label)
    assert automatic.privileged_chosen_by == "highest positive rate"
    given = feature_bias(adult_train["sex"], label, privileged_group="Female")
    assert (given.privileged_group, given.privileged_chosen_by) == ("Female", "spec")
    assert list(given.metrics) == ["Male"]
    # Same pair, roles swapped: the differences change sign, the ratio inverts.
    assert given.metrics["Male"]["DPL"] == pytest.approx(-automatic.metrics["Female"]["DPL"])
    assert given.metrics["Male"]["CI"] == pytest.approx(-automatic.metrics["Female"]["CI"])
    assert given.metrics["Male"]["LDI"] == pytest.approx(1 / automatic.metrics["Female"]["LDI"])
    white = feature_bias(adult_train["race"], label, privileged_group="White")
    assert white.privileged_group == "White"
    assert "Asian-Pac-Islander" in white.metrics and "White" not in white.metrics


def test_unknown_privileged_group_lists_the_groups(
    adult_train: pd.DataFrame, label: np.ndarray
) -> None:
    with pytest.raises(ValueError, match=r"'Other'.*'sex'.*Female, Male") as error:
        feature_bias(adult_train["sex"], label, privileged_group="Other")
    assert "privileged group" in str(error.value)


def test_privileged_group_spelled_as_a_spec_would() -> None:
    # A CSV with a gap reads a 0/1 column as floats; a YAML spec says 1.
    flag = pd.Series([1.0, 1.0, 0.0, 0.0, np.nan, 1.0], name="flag")
    label = np.array([True, False, False, False, True, True])
    result = feature_bias(flag, label, privileged_group=1)  # type: ignore[arg-type]
    assert result.privileged_group == "1.0"
    assert list(result.groups) == ["0.0", "1.0", MISSING_GROUP]
    assert feature_bias(flag, label, privileged_group="1.0").privileged_group == "1.0"
    with pytest.raises(ValueError, match=r"0\.0, 1\.0, \(missing\)"):
        feature_bias(flag, label, privileged_group="2")


def test_missing_values_are_a_group(adult_train: pd.DataFrame, label: np.ndarray) -> None:
    workclass = adult_train["workclass"]
    result = feature_bias(workclass, label)
    assert result.groups[MISSING_GROUP].count == workclass.isna().sum() == 1836
    assert list(result.groups)[-1] == MISSING_GROUP
    assert sum(g.count for g in result.groups.values()) == len(workclass)
    expected = label[workclass.isna().to_numpy()].mean()
    assert result.groups[MISSING_GROUP].positive_rate == pytest.approx(expected, abs=TOLERANCE)
    assert result.privileged_group != MISSING_GROUP
    assert MISSING_GROUP in result.metrics


def test_group_codes() -> None:
    codes, names = group_codes(pd.Series(["b", None, "a", "b", 1, "1"], dtype=object))
    assert names == ["1", "a", "b", MISSING_GROUP]  # sorted, missing last, 1 and "1" merged
    assert codes.tolist() == [2, 3, 1, 2, 0, 0]
    categorical = pd.Series(pd.Categorical(["x", None, "x"], categories=["z", "x", "y"]))
    codes, names = group_codes(categorical)
    assert names == ["x", MISSING_GROUP]  # unused categories dropped
    assert codes.tolist() == [0, 1, 0]
    codes, names = group_codes(pd.Series([True, False, True]))
    assert (names, codes.tolist()) == (["False", "True"], [1, 0, 1])


# --- shape of the result, small groups, undefined values ------------------------------------


def test_without_predictions_only_pre_training(
    adult_train: pd.DataFrame, label: np.ndarray
) -> None:
    result = feature_bias(adult_train["sex"], label).to_dict()
    assert set(result) == {"privilegedGroup", "privilegedChosenBy", "groups", "metrics"}
    assert set(result["metrics"]["Female"]) == {*PRETRAINING, "LDI"} - set(CONDITIONAL)
    assert set(result["groups"]["Female"]) == {"count", "positiveRate"}
    # With a group variable, CDDL joins them (CDDPL needs predictions).
    conditional = feature_bias(adult_train["sex"], label, strata=adult_train[STRATA]).metrics
    assert set(conditional["Female"]) == {*PRETRAINING, "LDI"}
    with pytest.raises(ValueError, match="needs predictions"):
        feature_bias(adult_train["sex"], label, flip_features=numeric(adult_train, "sex"))


def test_with_predictions_every_key(
    adult_train: pd.DataFrame, label: np.ndarray, predicted: np.ndarray
) -> None:
    plain = feature_bias(adult_train["sex"], label, predicted).to_dict()
    assert set(plain["metrics"]["Female"]) == PER_GROUP - {*CONDITIONAL, *FLIP} | {"LDI"}
    assert "flipTest" not in plain
    result = feature_bias(
        adult_train["sex"],
        label,
        predicted,
        strata=adult_train[STRATA],
        flip_features=numeric(adult_train, "sex"),
    )
    assert isinstance(result, FeatureBias)
    as_dict = result.to_dict()
    assert set(as_dict["metrics"]["Female"]) == PER_GROUP | {"LDI"}
    assert list(as_dict["metrics"]["Female"])[:9] == [*PRETRAINING, "LDI"]  # Clarify's order
    assert as_dict["flipTest"]["referenceRows"] == 21_790
    assert set(as_dict["groups"]["Male"]) == {
        "count",
        "positiveRate",
        "predictedPositiveRate",
        "truePositiveRate",
        "falsePositiveRate",
        "falseNegativeRate",
        "accuracy",
    }
    male = result.groups["Male"]
    assert male.true_positives + male.false_negatives == male.positives
    assert male.true_positives + male.false_positives == male.predicted_positives
    assert male.count == (
        male.true_positives + male.false_positives + male.true_negatives + male.false_negatives
    )


def test_min_group_size(adult_train: pd.DataFrame, label: np.ndarray) -> None:
    race = adult_train["race"]
    result = feature_bias(race, label, min_group_size=300)
    assert race.value_counts()["Other"] == 271
    assert "Other" in result.groups and "Other" not in result.metrics
    assert "Amer-Indian-Eskimo" in result.metrics  # 311 rows
    # A tiny group with a perfect record does not become everyone's reference.
    tiny = pd.Series(["a"] * 50 + ["b"] * 50 + ["c"], name="g")
    y = np.array([True] * 20 + [False] * 30 + [True] * 10 + [False] * 40 + [True])
    # Groups of 30+ rows exist: the best of them is the reference, whatever min_group_size.
    assert feature_bias(tiny, y).privileged_group == "a"
    assert feature_bias(tiny, y, min_group_size=10).privileged_group == "a"


def test_undefined_values_are_none_not_nan() -> None:
    # Group d: no positive label and no positive prediction.
    group = pd.Series(["a"] * 6 + ["d"] * 4, name="g")
    label = np.array([True, True, True, False, False, False, False, False, False, False])
    predicted = np.array([True, True, False, True, False, False, False, False, False, False])
    result = feature_bias(group, label, predicted)
    d = result.to_dict()["groups"]["d"]
    assert d["truePositiveRate"] is None and d["falseNegativeRate"] is None
    assert d["predictedPositiveRate"] == 0.0 and d["falsePositiveRate"] == 0.0
    m = result.to_dict()["metrics"]["d"]
    assert m["DI"] == 0.0 and m["LDI"] == 0.0
    # d's conditional acceptance (0/0), recall, precision and FN/FP are undefined.
    for name in ("DCAcc", "RD", "DAR", "TE"):
        assert m[name] is None, name
    # Label distributions (1/2, 1/2) vs (0, 1): KL is infinite; the rest are textbook values.
    assert m["KL"] is None
    assert m["TVD"] == pytest.approx(0.5) and m["KS"] == pytest.approx(0.5)
    assert m["LP"] == pytest.approx(math.sqrt(0.5))
    mean = (0.25, 0.75)
    kl_a = 0.5 * math.log(0.5 / mean[0]) + 0.5 * math.log(0.5 / mean[1])
    kl_d = 1.0 * math.log(1.0 / mean[1])  # 0 log 0 = 0
    assert m["JS"] == pytest.approx(0.5 * (kl_a + kl_d), abs=TOLERANCE)
    assert all(v is None or math.isfinite(v) for v in m.values())


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        feature_bias(pd.Series(["a", "b"], name="g"), np.array([True]))
    with pytest.raises(ValueError, match="lengths differ"):
        feature_bias(
            pd.Series(["a", "b"], name="g"), np.array([True, False]), strata=pd.Series(["x"])
        )


# --- findings ---------------------------------------------------------------------------------


def test_bias_detected_on_adult(
    adult_train: pd.DataFrame, label: np.ndarray, predicted: np.ndarray
) -> None:
    before = feature_bias(adult_train["sex"], label).metrics
    assert bias_detected(before) == ["Female: LDI 0.358 is below 0.8 (four-fifths rule)"]
    after = feature_bias(adult_train["sex"], label, predicted).metrics
    assert after["Female"]["DI"] == pytest.approx(0.792, abs=1e-3)
    assert bias_detected(after) == ["Female: DI 0.792 is below 0.8 (four-fifths rule)"]
    assert bias_detected(after, min_disparate_impact=0.75) == []
    assert bias_detected(before, 0.3, max_abs_parity_difference=0.1) == [
        "Female: |DPL| 0.196 exceeds 0.1"
    ]
    assert bias_detected(after, 0.5, max_abs_parity_difference=0.05) == [
        "Female: |DPPL| 0.060 exceeds 0.05"
    ]
    race = feature_bias(adult_train["race"], label).metrics
    assert {f.split(":")[0] for f in bias_detected(race)} == {
        "Amer-Indian-Eskimo",
        "Black",
        "Other",
    }
    assert bias_detected({"x": {"DI": None, "LDI": 0.1}}) == []  # DI undefined: no finding


# --- reweighing -------------------------------------------------------------------------------


def test_reweighing_makes_label_independent_of_the_joint_group(
    adult_train: pd.DataFrame, label: np.ndarray
) -> None:
    features = ["sex", "race", "workclass"]
    table = reweighing_table(adult_train, features, label)
    weights = apply_reweighing(adult_train, table, features, label)
    assert weights.shape == (len(adult_train),)
    assert weights.sum() == pytest.approx(len(adult_train), rel=1e-12)
    assert sum(e["count"] for e in table) == len(adult_train)
    assert sum(e["count"] * e["weight"] for e in table) == pytest.approx(len(adult_train))

    joint = adult_train[features].fillna(MISSING_GROUP).astype(str).agg("/".join, axis=1)
    frame = pd.DataFrame({"g": joint, "y": label, "w": weights, "wy": weights * label})
    totals = frame.groupby("g").agg(n=("y", "size"), positives=("y", "sum"), w=("w", "sum"))
    totals["wy"] = frame.groupby("g")["wy"].sum()
    assert len(totals) == len({tuple(e["groups"].values()) for e in table}) > 40
    # Without weights the label clearly depends on the group; with them it does not.
    mixed = (totals["positives"] > 0) & (totals["positives"] < totals["n"])
    assert np.ptp(totals["positives"][mixed] / totals["n"][mixed]) > 0.3
    np.testing.assert_allclose(
        totals["wy"][mixed] / totals["w"][mixed], label.mean(), rtol=0, atol=1e-12
    )
    # Weighted group sizes are unchanged: only the label mix within each group moves.
    np.testing.assert_allclose(totals["w"], totals["n"], rtol=1e-12)
    # Groups with one label value only (Never-worked: 7 rows, no one above 50K) cannot be
    # balanced; they keep weight 1, which is what keeps the total at N.
    single = totals.index[~mixed]
    assert "Male/White/Never-worked" in single
    assert np.all(weights[joint.isin(single).to_numpy()] == 1.0)


def test_reweighing_table_follows_the_textbook(
    adult_train: pd.DataFrame, label: np.ndarray
) -> None:
    table = reweighing_table(adult_train, ["sex", "race"], label)
    assert len(table) == 2 * 2 * 5  # every (sex, race, label) cell occurs in Adult
    in_group = ((adult_train["sex"] == "Female") & (adult_train["race"] == "Black")).to_numpy()
    cell = in_group & label
    expected = in_group.mean() * label.mean() / cell.mean()  # P(g) P(y) / P(g, y)
    entry = next(
        e for e in table if e["groups"] == {"sex": "Female", "race": "Black"} and e["labelPositive"]
    )
    assert entry == {
        "groups": {"sex": "Female", "race": "Black"},
        "labelPositive": True,
        "count": int(cell.sum()),
        "weight": pytest.approx(expected, rel=1e-12),
    }
    assert entry["weight"] > 1  # under-represented positives are up-weighted
    keys = [(tuple(e["groups"].values()), e["labelPositive"]) for e in table]
    assert keys == sorted(keys)


def test_apply_reweighing_maps_rows(
    adult_train: pd.DataFrame, adult_test: pd.DataFrame, label: np.ndarray
) -> None:
    features = ["sex", "race"]
    table = reweighing_table(adult_train, features, label)
    by_key = {
        (e["groups"]["sex"], e["groups"]["race"], e["labelPositive"]): e["weight"] for e in table
    }
    test_label = (adult_test["income"] == POSITIVE).to_numpy()
    weights = apply_reweighing(adult_test, table, features, test_label)
    expected = [
        by_key[(s, r, bool(y))]
        for s, r, y in zip(adult_test["sex"], adult_test["race"], test_label, strict=True)
    ]
    np.testing.assert_array_equal(weights, expected)


def test_apply_reweighing_unknown_combinations_get_one() -> None:
    frame = pd.DataFrame(
        {"sex": ["F", "M", "X", "F", None], "flag": [1.0, 0.0, 1.0, 1.0, 0.0]},
    )
    label = np.array([True, False, True, False, True])
    table = [
        {"groups": {"sex": "F", "flag": "1"}, "labelPositive": True, "count": 1, "weight": 2.5},
        {"groups": {"sex": "M", "flag": 0}, "labelPositive": False, "count": 1, "weight": 0.5},
        {
            "groups": {"sex": MISSING_GROUP, "flag": "0.0"},
            "labelPositive": True,
            "count": 1,
            "weight": 3.0,
        },
    ]
    weights = apply_reweighing(frame, table, ["sex", "flag"], label)
    # F/1.0 matches "1" (same value, spelled by a JSON round trip); X is unknown; F/1.0 with a
    # negative label is not in the table; a missing sex matches "(missing)".
    assert weights.tolist() == [2.5, 0.5, 1.0, 1.0, 3.0]


def test_reweighing_round_trip_on_a_missing_value_feature(
    adult_train: pd.DataFrame, label: np.ndarray
) -> None:
    table = reweighing_table(adult_train, ["workclass"], label)
    assert any(e["groups"]["workclass"] == MISSING_GROUP for e in table)
    weights = apply_reweighing(adult_train, table, ["workclass"], label)
    by_key = {(e["groups"]["workclass"], e["labelPositive"]): e["weight"] for e in table}
    workclass = adult_train["workclass"].fillna(MISSING_GROUP)
    expected = [by_key[(w, bool(y))] for w, y in zip(workclass, label, strict=True)]
    np.testing.assert_array_equal(weights, expected)
    missing = adult_train["workclass"].isna().to_numpy()
    weighted_rate = np.sum(weights[missing] * label[missing]) / np.sum(weights[missing])
    assert weighted_rate == pytest.approx(label.mean(), abs=1e-12)


def test_a_tiny_group_is_not_chosen_as_the_reference() -> None:
    """Two rows both positive are a rate of 1.0 by chance: with groups of 30+ rows about, the
    automatic privileged group is the best of those, and the page says how it was chosen."""
    sensitive = pd.Series(["tiny"] * 2 + ["a"] * 100 + ["b"] * 100, name="zip")
    label = np.array([1, 1] + [1] * 60 + [0] * 40 + [1] * 30 + [0] * 70, dtype=bool)
    chosen = feature_bias(sensitive, label)
    assert chosen.privileged_group == "a"
    assert chosen.privileged_chosen_by.endswith("among groups of at least 10% of the rows")
    assert "tiny" in chosen.groups  # still reported, with its counts
    few = feature_bias(pd.Series(["x", "x", "y"], name="f"), np.array([1, 1, 0], dtype=bool))
    assert few.privileged_group == "x" and few.privileged_chosen_by == "highest positive rate"


# --- SD, CDDL/CDDPL, GE, FT: the rest of Clarify's metrics -------------------------------------


def test_specificity_difference_by_hand() -> None:
    # a: 4 negatives, 1 predicted positive (specificity 3/4); d: 2 negatives, none predicted
    # positive (1); d's negatives are never accepted by mistake: SD = 1 - 3/4 > 0, d worse off.
    group = pd.Series(["a"] * 6 + ["d"] * 3, name="g")
    label = np.array([0, 0, 0, 0, 1, 1, 0, 0, 1], dtype=bool)
    predicted = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1], dtype=bool)
    m = feature_bias(group, label, predicted, privileged_group="a").metrics["d"]
    assert m["SD"] == pytest.approx(0.25, abs=TOLERANCE)
    # A group without a negative label has no specificity: None (smclarify says 0 - sp_a).
    only_positive = feature_bias(
        pd.Series(["a"] * 4 + ["d"] * 2), np.array([0, 0, 1, 1, 1, 1], dtype=bool),
        np.array([0, 1, 1, 0, 1, 1], dtype=bool), privileged_group="a",
    )  # fmt: skip
    assert only_positive.metrics["d"]["SD"] is None


def cdd_by_hand(
    groups: list[str], strata: list[str], outcome: list[int], d: str, a: str
) -> float | None:
    """CDD of d against a, the textbook way: a loop over the strata of the pair's rows, with
    strata lacking an outcome left out."""
    by_stratum: dict[str, list[tuple[int, bool]]] = {}
    for g, s, o in zip(groups, strata, outcome, strict=True):
        if g in (d, a):
            by_stratum.setdefault(s, []).append((o, g == d))
    total = weighted = 0.0
    for inside in by_stratum.values():
        negatives = [is_d for o, is_d in inside if not o]
        positives = [is_d for o, is_d in inside if o]
        if not negatives or not positives:
            continue
        disparity = sum(negatives) / len(negatives) - sum(positives) / len(positives)
        weighted += len(inside) * disparity
        total += len(inside)
    return weighted / total if total else None


def test_conditional_demographic_disparity_by_hand_and_clarify() -> None:
    from smclarify.bias import metrics as sm

    # Two departments: d applies mostly to the selective one, so the overall gap (DPL) is
    # larger than the gap within departments (CDD).
    groups = ["a"] * 10 + ["d"] * 10
    strata = ["easy"] * 8 + ["hard"] * 2 + ["easy"] * 2 + ["hard"] * 8
    label = [1] * 6 + [0] * 2 + [1, 0] + [1, 0] + [1] * 2 + [0] * 6
    result = feature_bias(
        pd.Series(groups, name="g"), np.array(label, dtype=bool), strata=pd.Series(strata),
        privileged_group="a",
    )  # fmt: skip
    m = result.metrics["d"]
    # easy: d is 1 of 3 rejected, 1 of 7 accepted; hard: 6 of 7 rejected, 2 of 3 accepted.
    expected = (10 * (1 / 3 - 1 / 7) + 10 * (6 / 7 - 2 / 3)) / 20
    assert m["CDDL"] == pytest.approx(expected, abs=TOLERANCE)
    assert m["CDDL"] == pytest.approx(cdd_by_hand(groups, strata, label, "d", "a"))
    assert 0 < m["CDDL"] < m["DPL"]
    facet = pd.Series([g == "d" for g in groups])
    reference = sm.CDDL(pd.Series(groups), facet, pd.Series(label, dtype=bool), pd.Series(strata))
    assert m["CDDL"] == pytest.approx(reference, abs=TOLERANCE)


def test_cdd_leaves_out_strata_without_both_outcomes(
    adult_train: pd.DataFrame, label: np.ndarray, predicted: np.ndarray
) -> None:
    """Where smclarify's 0/0 = 0 applies, ours is smclarify's on the strata that have both
    outcomes (for the pair): a stratum where everyone is rejected says nothing about d."""
    from smclarify.bias import metrics as sm

    sex, education = adult_train["sex"], adult_train["education"]
    female = pd.Series((sex == "Female").to_numpy())
    m = feature_bias(sex, label, predicted, strata=education).metrics["Female"]
    for name, outcome in (("CDDL", label), ("CDDPL", predicted)):
        both = pd.Series(outcome).groupby(education.to_numpy()).agg(["min", "max"])
        mixed = both.index[both["min"] != both["max"]]
        assert len(mixed) < education.nunique()  # Preschool: no one above 50K; Bachelors...
        keep = education.isin(mixed).to_numpy()
        on_mixed = sm.CDDL(
            sex[keep].reset_index(drop=True),
            female[keep].reset_index(drop=True),
            pd.Series(outcome[keep]),
            education[keep].reset_index(drop=True),
        )
        everywhere = sm.CDDL(sex, female, pd.Series(outcome), education)
        assert m[name] == pytest.approx(on_mixed, abs=TOLERANCE), name
        assert abs(m[name] - everywhere) > 1e-5, name  # Preschool's 51 rows: 1e-4 for CDDL

    # By hand: stratum "x" rejects everyone; smclarify adds d's share there (3/4) as disparity.
    groups = ["a", "a", "a", "a", "d", "d", "a", "d", "d", "d"]
    strata = ["y", "y", "y", "y", "y", "y", "x", "x", "x", "x"]
    outcome = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    ours = feature_bias(
        pd.Series(groups), np.array(outcome, dtype=bool), strata=pd.Series(strata),
        privileged_group="a",
    ).metrics["d"]["CDDL"]  # fmt: skip
    assert ours == pytest.approx(cdd_by_hand(groups, strata, outcome, "d", "a"))
    assert ours == pytest.approx(1 / 3 - 1 / 3)  # y: d is 1 of 3 rejected, 1 of 3 accepted
    facet = pd.Series([g == "d" for g in groups])
    clarify = sm.CDDL(pd.Series(groups), facet, pd.Series(outcome, dtype=bool), pd.Series(strata))
    assert clarify == pytest.approx(4 * 3 / 4 / 10)  # x's 4 rows weigh in with DD = 3/4
    # No stratum with both outcomes: undefined (smclarify raises).
    none = feature_bias(
        pd.Series(["a", "d"]), np.array([True, False]), strata=pd.Series(["s", "t"]),
        privileged_group="a",
    )  # fmt: skip
    assert none.metrics["d"]["CDDL"] is None


def test_cdd_every_group_at_once_matches_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many groups and strata, missing values in both, the dense and the sparse cell table:
    every group's CDD equals the stratum-by-stratum loop."""
    rng = np.random.default_rng(7)
    n = 3000
    groups = rng.choice([f"g{i}" for i in range(12)], n).astype(object)
    strata = rng.choice([f"s{i}" for i in range(30)], n).astype(object)
    groups[rng.random(n) < 0.02] = None
    strata[rng.random(n) < 0.03] = None
    outcome = rng.random(n) < np.where(pd.Series(strata).fillna("s0").str[1:] < "15", 0.2, 0.6)
    fill_g = [MISSING_GROUP if g is None else g for g in groups]
    fill_s = [MISSING_GROUP if s is None else s for s in strata]
    for dense in (True, False):
        if not dense:  # the np.unique path, as with more (group, stratum) pairs than rows
            monkeypatch.setattr(bias_metrics, "_strata_cells", sparse_cells)
        result = feature_bias(
            pd.Series(groups, name="g"), outcome, outcome, strata=pd.Series(strata),
            privileged_group="g3",
        )  # fmt: skip
        assert len(result.metrics) == 12  # 11 groups and "(missing)"
        for d, values in result.metrics.items():
            expected = cdd_by_hand(fill_g, fill_s, outcome.astype(int).tolist(), d, "g3")
            assert values["CDDL"] == pytest.approx(expected, abs=TOLERANCE), (dense, d)
            assert values["CDDPL"] == values["CDDL"]
    monkeypatch.undo()
    # And that path for real: 300 zip codes times 300 strata are more cells than allowed.
    zips = rng.choice([f"z{i:03d}" for i in range(300)], 20_000)
    zips[:2000] = "z000"
    shops = rng.choice([f"t{i}" for i in range(300)], 20_000)
    y = rng.random(20_000) < 0.4
    assert max(len(zips), 1 << 16) < 300 * 300
    found = feature_bias(
        pd.Series(zips, name="zip"), y, strata=pd.Series(shops), privileged_group="z000"
    ).metrics
    for d in ("z001", "z150", "z299"):
        expected = cdd_by_hand(list(zips), list(shops), y.astype(int).tolist(), d, "z000")
        assert found[d]["CDDL"] == pytest.approx(expected, abs=TOLERANCE), d


def sparse_cells(
    codes: np.ndarray, size: int, strata: np.ndarray, strata_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_strata_cells` as it is past its dense limit: occurring cells only."""
    key = codes.astype(np.int64) * strata_size + strata
    occurring, row_cell = np.unique(key, return_inverse=True)
    return row_cell.reshape(-1), occurring // strata_size, occurring % strata_size


def test_generalized_entropy_by_hand_and_clarify(label: np.ndarray, predicted: np.ndarray) -> None:
    from smclarify.bias import metrics as sm

    reference = sm.GE(pd.Series(label), pd.Series(predicted))
    assert population_metrics(label, predicted)["GE"] == pytest.approx(reference, abs=TOLERANCE)
    assert population_metrics(label, predicted)["GE"] == pytest.approx(0.1092, abs=1e-4)
    # Benefits 0 (FN), 1, 1 (correct), 2 (FP): mean 1, GE = ((0 + 1 + 1 + 4) / 4 - 1) / 2.
    y = np.array([1, 1, 0, 0], dtype=bool)
    y_hat = np.array([0, 1, 0, 1], dtype=bool)
    assert population_metrics(y, y_hat) == {"GE": pytest.approx(0.25)}
    assert sm.GE(pd.Series(y), pd.Series(y_hat)) == pytest.approx(0.25)
    assert population_metrics(y, y) == {"GE": 0.0}  # everyone gets what they deserve
    assert population_metrics(y[:2], ~y[:2]) == {"GE": None}  # all false negatives
    assert set(POPULATION) == {"GE"} and "GE" in POSTTRAINING


def grid_case(d_accepts_below: int = 10) -> tuple[pd.Series, np.ndarray, pd.DataFrame]:
    """a and d on the same 100 points; the model accepts a from 50 up, d from 70 up (and
    below `d_accepts_below`). With 5 neighbours at distances 0, 1, 1, 2, 2, d's neighbours in a
    vote exactly "accepted from 50 up"."""
    x = np.arange(100.0)
    group = pd.Series(["a"] * 100 + ["d"] * 100, name="g")
    predicted = np.concatenate([x >= 50, (x >= 70) | (x < d_accepts_below)])
    features = pd.DataFrame({"x": np.concatenate([x, x]), "flag": np.zeros(200, dtype=bool)})
    return group, predicted, features


def test_flip_test_known_answer_and_sign() -> None:
    from smclarify.bias import metrics as sm

    group, predicted, features = grid_case()
    label = predicted.copy()
    result = feature_bias(group, label, predicted, privileged_group="a", flip_features=features)
    # F+ = 20 (x in 50..69: rejected, their neighbours in a accepted); F- = 10 (x < 10).
    assert result.metrics["d"]["FT"] == pytest.approx((20 - 10) / 100)
    # smclarify's code returns the opposite sign (its documentation has ours).
    reference = sm.FT(features, pd.Series(group == "d"), pd.Series(predicted))
    assert reference == pytest.approx(-0.1)
    assert result.flip_test == {
        "columns": ["x", "flag"],
        "neighbors": 5,
        "privilegedRows": 100,
        "referenceRows": 100,
        "rows": {"d": 100},
        "sampled": False,
    }
    # Treated like a: no flips, FT = 0.
    fair = np.concatenate([predicted[:100], predicted[:100]])
    assert feature_bias(
        group, label, fair, privileged_group="a", flip_features=features
    ).metrics["d"]["FT"] == 0.0  # fmt: skip


def test_flip_test_few_privileged_rows_use_one_neighbour() -> None:
    from smclarify.bias import metrics as sm

    # 9 rows of a (smclarify's threshold): 1 neighbour, as smclarify does.
    group = pd.Series(["a"] * 9 + ["d"] * 6)
    x = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 0.2, 2.1, 3.9, 5.2, 6.8, 8.1])
    predicted = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1], dtype=bool)
    features = pd.DataFrame({"x": x})
    result = feature_bias(group, predicted, predicted, privileged_group="a", flip_features=features)
    assert result.flip_test is not None and result.flip_test["neighbors"] == 1
    # Nearest a of 3.9 is 4 (accepted), of 5.2 is 5, of 6.8 is 7: 3 flips up, none down.
    assert result.metrics["d"]["FT"] == pytest.approx(3 / 6)
    reference = sm.FT(features, pd.Series(group == "d"), pd.Series(predicted))
    assert result.metrics["d"]["FT"] == pytest.approx(-reference)


def test_flip_test_is_sampled_deterministically_past_its_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    n = 6000
    group = pd.Series(rng.choice(["a", "b", "c"], n, p=[0.6, 0.35, 0.05]), name="g")
    x = rng.normal(size=(n, 2))
    predicted = (x[:, 0] + np.where(group == "a", 0.5, 0.0)) > 0
    features = pd.DataFrame(x, columns=["u", "v"])
    whole = feature_bias(group, predicted, predicted, privileged_group="a", flip_features=features)
    assert whole.flip_test is not None and not whole.flip_test["sampled"]
    monkeypatch.setattr(bias_metrics, "FT_MAX_REFERENCE_ROWS", 1000)
    monkeypatch.setattr(bias_metrics, "FT_MAX_TESTED_ROWS", 800)
    first = feature_bias(group, predicted, predicted, privileged_group="a", flip_features=features)
    again = feature_bias(group, predicted, predicted, privileged_group="a", flip_features=features)
    assert first.metrics == again.metrics  # a fixed seed
    info = first.flip_test
    assert info is not None and info["sampled"]
    assert info["referenceRows"] == 1000 and info["privilegedRows"] == (group == "a").sum()
    small = int((group == "c").sum())
    assert small < 400
    # c is whole; b gets the rest of the budget.
    assert info["rows"] == {"b": 800 - small, "c": small}
    for g in ("b", "c"):
        assert first.metrics[g]["FT"] > 0.1  # d is held to a higher bar: worse off
        assert first.metrics[g]["FT"] == pytest.approx(whole.metrics[g]["FT"], abs=0.08)


def test_water_level() -> None:
    level = bias_metrics._water_level
    assert level(np.array([10, 20]), 100) is None
    assert level(np.array([10, 200, 300]), 110) == 50
    assert level(np.array([5, 5, 5]), 2) == 1  # never 0 rows


def test_flip_test_skips_and_refusals(adult_train: pd.DataFrame) -> None:
    group, predicted, features = grid_case()
    none = feature_bias(group, predicted, predicted, flip_features=features.iloc[:, :0])
    assert none.flip_test == {
        "skipped": "no numeric column besides the label, prediction and feature"
    }
    assert "FT" not in none.metrics["d"]
    many = pd.Series([f"g{i % 60}" for i in range(600)])
    y = np.arange(600) % 7 == 0
    skipped = feature_bias(many, y, y, flip_features=pd.DataFrame({"x": np.arange(600)}))
    assert skipped.flip_test is not None and "59 groups compared" in skipped.flip_test["skipped"]
    assert all("FT" not in m for m in skipped.metrics.values())
    with pytest.raises(ValueError, match="numeric or boolean"):
        feature_bias(group, predicted, predicted, flip_features=features.assign(s="x"))
    # The stage's choice of columns: numeric and boolean ones, but those excluded.
    frame = pd.DataFrame(
        {"n": [1.0], "i": [1], "b": [True], "s": ["x"], "y": [1], "c": pd.Categorical(["u"])}
    )
    assert flip_columns(frame, exclude=("y", None)) == ["n", "i", "b"]


def test_flip_test_imputes_missing_values() -> None:
    group, predicted, features = grid_case()
    gappy = features.assign(
        flag=pd.array([None] * 3 + [True] * 197, dtype="boolean"), x=features["x"]
    )
    gappy.loc[150, "x"] = np.inf
    result = feature_bias(group, predicted, predicted, privileged_group="a", flip_features=gappy)
    assert result.flip_test is not None
    assert result.flip_test["imputed"] == ["x", "flag"]
    assert result.metrics["d"]["FT"] is not None


# --- the stage: groupVariable, populationMetrics, flipTest, the report --------------------------


def test_stage_reports_the_new_metrics(tmp_path: Path, adult_train: pd.DataFrame) -> None:
    from fairpilot.api import BiasJobSpec
    from fairpilot.artifacts import ArtifactStore
    from fairpilot.errors import JobError
    from fairpilot_jobs.bias.stage import run_bias

    data = tmp_path / "adult.csv"
    adult_train.head(4000).assign(
        pred=np.where(rule(adult_train.head(4000)), POSITIVE, "<=50K")
    ).to_csv(data, index=False)
    base = {
        "dataset": {"uri": f"file://{data}"},
        "target": "income",
        "positiveLabel": POSITIVE,
        "sensitiveFeatures": ["sex", "race"],
    }
    spec = BiasJobSpec.model_validate({**base, "predictionColumn": "pred", "groupVariable": STRATA})
    result = run_bias(spec, ArtifactStore(f"file://{tmp_path / 'out'}"))
    assert result["groupVariable"] == STRATA
    assert set(result["populationMetrics"]) == {"GE"}
    sex = result["features"]["sex"]
    assert set(sex["metrics"]["Female"]) == PER_GROUP | {"LDI"}
    assert "fnlwgt" in sex["flipTest"]["columns"]
    assert not {"income", "pred", "sex"} & set(sex["flipTest"]["columns"])
    html = Path(result["reports"]["bias"].removeprefix("file://")).read_text()
    for words in ("CDDPL", "FlipTest (FT): 5 nearest neighbours", "generalized entropy",
                  "Specificity difference", "Group variable"):  # fmt: skip
        assert words in html, words

    before = run_bias(BiasJobSpec.model_validate(base), ArtifactStore(f"file://{tmp_path / 'b'}"))
    assert before["populationMetrics"] == {} and before["groupVariable"] is None
    assert "flipTest" not in before["features"]["sex"]
    assert set(before["features"]["sex"]["metrics"]["Female"]) == {*PRETRAINING, "LDI"} - {"CDDL"}
    wrong = BiasJobSpec.model_validate({**base, "groupVariable": "department"})
    with pytest.raises(JobError, match="groupVariable 'department'") as error:
        run_bias(wrong, ArtifactStore(f"file://{tmp_path / 'c'}"))
    assert error.value.reason == "ColumnNotFound"


def test_group_variable_is_not_the_target() -> None:
    from pydantic import ValidationError

    from fairpilot.api import BiasJobSpec

    spec = {
        "dataset": {"uri": "file:///d.csv"},
        "target": "income",
        "sensitiveFeatures": ["sex"],
    }
    assert BiasJobSpec.model_validate({**spec, "groupVariable": "dept"}).group_variable == "dept"
    with pytest.raises(ValidationError, match="groupVariable must not be the target"):
        BiasJobSpec.model_validate({**spec, "groupVariable": "income"})


def test_mitigation_effect_before_and_after_against_pandas(
    adult_train: pd.DataFrame, label: np.ndarray
) -> None:
    """The bias report's before/after view: each group's rate of the label as the data has it
    and as the weighted data has it (pandas' weighted mean), and LDI/DPL from those rates."""
    features = ["sex", "workclass"]  # workclass has a one-label joint group (Never-worked)
    table = reweighing_table(adult_train, features, label)
    effect = mitigation_effect(adult_train, table, label, {"sex": "Male", "workclass": "Private"})
    weights = apply_reweighing(adult_train, table, features, label)
    for feature, privileged in (("sex", "Male"), ("workclass", "Private")):
        column = adult_train[feature].astype(object).where(adult_train[feature].notna())
        groups = column.fillna(MISSING_GROUP).astype(str)
        frame = pd.DataFrame({"g": groups, "y": label, "w": weights})
        frame["wy"] = frame["w"] * frame["y"]
        sums = frame.groupby("g").agg(
            n=("y", "size"), y=("y", "sum"), w=("w", "sum"), wy=("wy", "sum")
        )
        before, after = sums["y"] / sums["n"], sums["wy"] / sums["w"]
        got = effect[feature]
        assert got["privilegedGroup"] == privileged
        assert set(got["groups"]) == set(sums.index)
        for group, rates in got["groups"].items():
            assert rates["count"] == sums.loc[group, "n"]
            assert rates["positiveRate"] == pytest.approx(before[group], rel=1e-12)
            assert rates["reweighedPositiveRate"] == pytest.approx(after[group], rel=1e-12)
        assert set(got["metrics"]) == set(sums.index) - {privileged}
        for group, metrics in got["metrics"].items():
            assert metrics["LDI"] == pytest.approx(before[group] / before[privileged])
            assert metrics["reweighedLDI"] == pytest.approx(after[group] / after[privileged])
            assert metrics["DPL"] == pytest.approx(before[privileged] - before[group])
            assert metrics["reweighedDPL"] == pytest.approx(after[privileged] - after[group])
    # sex: Female's label rate is well under Male's in Adult; the weights balance it, exactly
    # when every joint group has both labels, nearly when one (Never-worked) cannot be changed.
    assert effect["sex"]["metrics"]["Female"]["LDI"] < 0.4
    assert effect["sex"]["metrics"]["Female"]["reweighedLDI"] == pytest.approx(1, abs=1e-4)
    alone = mitigation_effect(
        adult_train, reweighing_table(adult_train, ["sex"], label), label, {"sex": "Male"}
    )
    assert alone["sex"]["metrics"]["Female"]["reweighedLDI"] == pytest.approx(1, abs=1e-12)
    # Never-worked: every row has the negative label, which no weight can change.
    never = effect["workclass"]["groups"]["Never-worked"]
    assert never["positiveRate"] == never["reweighedPositiveRate"] == 0
