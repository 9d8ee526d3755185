"""Bias metrics and reweighing, checked on real Adult data against two references.

Per-group rates against fairlearn's `MetricFrame`; every Clarify metric, value and sign,
against AWS's reference implementation `smclarify`; and the figures published for Adult.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest

from fairpilot.datasets import adult
from fairpilot_jobs.bias.metrics import (
    MISSING_GROUP,
    POSTTRAINING,
    PRETRAINING,
    FeatureBias,
    bias_detected,
    feature_bias,
    group_codes,
)
from fairpilot_jobs.bias.reweighing import apply_reweighing, reweighing_table

TOLERANCE = 1e-9
POSITIVE = ">50K"


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
    facet_values: pd.Series, disadvantaged: pd.Series, label: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """Every metric we report, computed by smclarify (its "rest" = our privileged group)."""
    from smclarify.bias import metrics as sm

    feature = facet_values.reset_index(drop=True)
    facet = pd.Series(np.asarray(disadvantaged, dtype=bool))
    y = pd.Series(np.asarray(label, dtype=bool))
    y_hat = pd.Series(np.asarray(predicted, dtype=bool))
    return {
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
    assert set(reference) == {*PRETRAINING, *POSTTRAINING}
    for name, expected in reference.items():
        value = ours[name]
        assert value is not None, name
        assert math.isfinite(expected), name  # Adult has no degenerate group
        assert value == pytest.approx(expected, abs=TOLERANCE), name
        assert np.sign(value) == np.sign(expected), name


def test_female_vs_male_agrees_with_clarify(
    adult_train: pd.DataFrame, label: np.ndarray, predicted: np.ndarray
) -> None:
    result = feature_bias(adult_train["sex"], label, predicted)
    assert result.privileged_group == "Male"
    assert list(result.metrics) == ["Female"]
    reference = clarify(adult_train["sex"], adult_train["sex"] == "Female", label, predicted)
    assert_same_as_clarify(result.metrics["Female"], reference)
    # The rule is not a trivial predictor: signs differ across metrics, so a flipped sign
    # convention anywhere would show.
    signs = {name: np.sign(value) for name, value in result.metrics["Female"].items()}
    assert signs["RD"] == signs["AD"] == signs["TE"] == -1
    assert signs["DPPL"] == signs["DCAcc"] == signs["DCR"] == signs["DRR"] == 1


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
    adult_train: pd.DataFrame, label: np.ndarray, predicted: np.ndarray
) -> None:
    race = adult_train["race"]
    result = feature_bias(race, label, predicted)
    rates = pd.Series(label).groupby(race.to_numpy()).mean()
    assert result.privileged_group == rates.idxmax() == "Asian-Pac-Islander"
    assert sorted(result.metrics) == ["Amer-Indian-Eskimo", "Black", "Other", "White"]
    for group in result.metrics:
        # smclarify compares a facet with everything else, so keep only the two groups.
        keep = race.isin([group, result.privileged_group]).to_numpy()
        reference = clarify(race[keep], race[keep] == group, label[keep], predicted[keep])
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
    assert set(result["metrics"]["Female"]) == {*PRETRAINING, "LDI"}
    assert set(result["groups"]["Female"]) == {"count", "positiveRate"}


def test_with_predictions_every_key(
    adult_train: pd.DataFrame, label: np.ndarray, predicted: np.ndarray
) -> None:
    result = feature_bias(adult_train["sex"], label, predicted)
    assert isinstance(result, FeatureBias)
    as_dict = result.to_dict()
    assert set(as_dict["metrics"]["Female"]) == {*PRETRAINING, *POSTTRAINING, "LDI"}
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
    assert chosen.privileged_chosen_by == "highest positive rate among groups of at least 30 rows"
    assert "tiny" in chosen.groups  # still reported, with its counts
    few = feature_bias(pd.Series(["x", "x", "y"], name="f"), np.array([1, 1, 0], dtype=bool))
    assert few.privileged_group == "x" and few.privileged_chosen_by == "highest positive rate"
