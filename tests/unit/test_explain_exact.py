"""Interventional TreeSHAP checked against definitions and libraries, not against itself.

- the numpy core (`explain/interventional.py`) against brute-force Shapley values of the
  interventional game on random trees, for the identity and the logistic link;
- the LightGBM adapter against LightGBM's own predictions on hybrid rows (categorical splits,
  missing values), and against shap where shap reads LightGBM right (numeric features only);
- the CatBoost and XGBoost adapters against the definition (base value = mean output over the
  background, values add up to the booster's own output).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from fairpilot.datasets import german_credit
from fairpilot_jobs.explain import boosters
from fairpilot_jobs.explain.boosters import catboost_values, lightgbm_values, xgboost_values
from fairpilot_jobs.explain.interventional import (
    TreeArrays,
    identity,
    interventional_shap,
    logistic,
    raw_output,
)


def shapley_by_enumeration(
    margin: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    background: np.ndarray,
    link: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, float]:
    """Interventional SHAP of one row by definition: every coalition, every background row.

    Per background row b the Shapley values of v(S) = F(x_S, b_rest) are enumerated over all
    coalitions, then mapped to the output space with the rescale rule (what shap's
    `model_output="probability"` means), then averaged over the background.
    """
    d = len(x)
    total = np.zeros(d)
    outputs_b = []
    for b in background:
        coalitions = list(itertools.product([False, True], repeat=d))
        hybrids = np.array([np.where(mask, x, b) for mask in coalitions])
        values = dict(zip(coalitions, margin(hybrids), strict=True))
        phi = np.zeros(d)
        for i in range(d):
            for mask in coalitions:
                if mask[i]:
                    continue
                size = sum(mask)
                weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                with_i = tuple(True if j == i else mask[j] for j in range(d))
                phi[i] += weight * (values[with_i] - values[mask])
        f_x, f_b = values[(True,) * d], values[(False,) * d]
        if link is identity:
            scale = 1.0
        elif abs(f_x - f_b) < 1e-12:
            p = float(logistic(np.array([f_x]))[0])
            scale = p * (1 - p)
        else:
            scale = float((link(np.array([f_x])) - link(np.array([f_b])))[0] / (f_x - f_b))
        total += phi * scale
        outputs_b.append(float(link(np.array([f_b]))[0]))
    return total / len(background), float(np.mean(outputs_b))


def random_tree(rng: np.random.Generator, features: int, depth: int) -> tuple[TreeArrays, list]:
    """A random tree with numeric splits `x[f] <= t`; features may repeat along a path."""
    left, right, feature, value, threshold = [], [], [], [], []

    def grow(level: int) -> int:
        index = len(left)
        left.append(-1), right.append(-1), feature.append(-1)
        value.append(float(rng.normal())), threshold.append(0.0)
        if level < depth and rng.random() < 0.85:
            feature[index] = int(rng.integers(features))
            threshold[index] = float(rng.normal())
            left[index] = grow(level + 1)
            right[index] = grow(level + 1)
        return index

    grow(0)
    arrays = TreeArrays(
        np.array(left), np.array(right), np.array(feature), np.array(value, dtype=float)
    )
    return arrays, threshold


def goes_left(tree: TreeArrays, thresholds: list, data: np.ndarray) -> np.ndarray:
    out = np.zeros((len(data), len(tree.left)), dtype=bool)
    for node in np.nonzero(tree.left >= 0)[0]:
        out[:, node] = data[:, tree.feature[node]] <= thresholds[node]
    return out


@pytest.mark.parametrize("link", [identity, logistic], ids=["identity", "logistic"])
@pytest.mark.parametrize("seed", range(6))
def test_core_equals_shapley_values_by_enumeration(seed: int, link) -> None:
    rng = np.random.default_rng(seed)
    features = int(rng.integers(2, 6))
    forest = [random_tree(rng, features, depth=int(rng.integers(1, 6))) for _ in range(4)]
    trees = [tree for tree, _ in forest]
    rows = rng.normal(size=(5, features))
    background = rng.normal(size=(7, features))

    def margin(data: np.ndarray) -> np.ndarray:
        return raw_output(trees, [goes_left(t, th, data) for t, th in forest])

    values, base, output = interventional_shap(
        trees,
        [goes_left(t, th, rows) for t, th in forest],
        [goes_left(t, th, background) for t, th in forest],
        features,
        link,
    )
    assert base == pytest.approx(float(link(margin(background)).mean()), abs=1e-12)
    np.testing.assert_allclose(output, link(margin(rows)), atol=1e-12)
    np.testing.assert_allclose(base + values.sum(axis=1), output, atol=1e-12)
    for i, row in enumerate(rows):
        expected, expected_base = shapley_by_enumeration(margin, row, background, link)
        np.testing.assert_allclose(values[i], expected, atol=1e-10)
        assert base == pytest.approx(expected_base, abs=1e-12)


# -- boosters on real data ---------------------------------------------------------------------
CATEGORICAL = ["checking_status", "purpose", "savings", "housing", "sex"]
NUMERIC = ["duration", "credit_amount", "age"]


@pytest.fixture(scope="module")
def credit() -> tuple[pd.DataFrame, np.ndarray]:
    """German credit with categories (as pandas categories) and missing values planted in
    both kinds of column, so that every split rule of LightGBM is exercised."""
    frame = german_credit()
    data = frame[CATEGORICAL + NUMERIC].copy()
    rng = np.random.default_rng(0)
    for column in ["purpose", "savings", "credit_amount"]:
        data.loc[rng.random(len(data)) < 0.08, column] = np.nan
    for column in CATEGORICAL:
        data[column] = data[column].astype("category")
    return data, (frame["credit"] == "bad").to_numpy(dtype=int)


def _lightgbm(data: pd.DataFrame, label: np.ndarray, objective: str) -> object:
    import lightgbm

    return lightgbm.train(
        {"objective": objective, "num_leaves": 15, "min_data_in_leaf": 5, "verbosity": -1,
         "cat_smooth": 1, "min_data_per_group": 5, "max_cat_to_onehot": 2},
        lightgbm.Dataset(data, label=label),
        num_boost_round=30,
    )  # fmt: skip


@pytest.mark.parametrize("objective", ["binary", "regression"])
def test_lightgbm_values_are_the_shapley_values_of_lightgbms_own_predictions(
    credit, objective: str
) -> None:
    """Brute force over 6 columns: hybrid rows go through LightGBM's own predict, so its
    categorical sets, NaN and default directions decide, not our reading of its trees."""
    data, label = credit
    columns = ["checking_status", "purpose", "savings", "duration", "credit_amount", "age"]
    data = data[columns]
    target = label if objective == "binary" else data["duration"].to_numpy() * 1.0 + label
    booster = _lightgbm(data, target, objective)
    probability = objective == "binary"
    rows, background = data.iloc[:4], data.iloc[100:106]
    found = lightgbm_values(booster, rows, background, probability)

    codes = {
        c: data[c].cat.categories for c in columns if isinstance(data[c].dtype, pd.CategoricalDtype)
    }

    def margin(matrix: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(matrix, columns=columns)
        for column, categories in codes.items():
            frame[column] = pd.Categorical.from_codes(
                np.nan_to_num(frame[column].astype(float), nan=-1).astype(int), categories
            )
        for column in columns:
            if column not in codes:
                frame[column] = frame[column].astype(float)
        return booster.predict(frame, raw_score=True)

    def as_codes(frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack(
            [
                frame[c].cat.codes.to_numpy() if c in codes else frame[c].to_numpy(dtype=float)
                for c in columns
            ]
        ).astype(object)

    link = logistic if probability else identity
    for i, row in enumerate(as_codes(rows)):
        expected, expected_base = shapley_by_enumeration(margin, row, as_codes(background), link)
        np.testing.assert_allclose(found.values[i], expected, atol=1e-9)
        assert found.base == pytest.approx(expected_base, abs=1e-12)
    native = booster.predict(rows, raw_score=True)
    np.testing.assert_allclose(found.output, link(native), atol=1e-12)


def test_lightgbm_values_match_shap_where_shap_reads_lightgbm(credit, monkeypatch) -> None:
    import shap

    data, label = credit
    numeric = data[NUMERIC]
    booster = _lightgbm(numeric, label, "binary")
    rows, background = numeric.iloc[:200], numeric.iloc[300:380]
    found = lightgbm_values(booster, rows, background, probability=True)
    explainer = shap.TreeExplainer(
        booster,
        data=background.to_numpy(dtype=float),
        feature_perturbation="interventional",
        model_output="probability",
    )
    reference = explainer(rows.to_numpy(dtype=float), check_additivity=False)
    # Explained in chunks of rows (a large model's decisions do not fit at once): the same.
    monkeypatch.setattr(
        boosters,
        "MAX_DECISIONS",
        7 * sum(t["num_leaves"] * 2 - 1 for t in booster.dump_model()["tree_info"]),
    )
    chunked = lightgbm_values(booster, rows, background, probability=True)
    np.testing.assert_allclose(chunked.values, found.values, atol=1e-12)
    # shap's C++ side works in float32 in places (~1e-8 apart); LightGBM and we in float64.
    np.testing.assert_allclose(found.values, reference.values, atol=1e-7)
    assert found.base == pytest.approx(float(np.ravel(reference.base_values)[0]), abs=1e-7)


@pytest.mark.parametrize("probability", [True, False], ids=["probability", "raw"])
def test_catboost_and_xgboost_values_start_from_the_mean_output(credit, probability) -> None:
    import catboost
    import xgboost

    data, label = credit
    target = label if probability else data["age"].to_numpy(dtype=float)
    features = [c for c in data.columns if c != "age"] if not probability else list(data.columns)
    frame = data[features].copy()
    for column in CATEGORICAL:
        frame[column] = frame[column].astype(str)
    rows, background = frame.iloc[:150], frame.iloc[500:560]
    kind = catboost.CatBoostClassifier if probability else catboost.CatBoostRegressor
    model = kind(
        iterations=60,
        depth=4,
        verbose=0,
        cat_features=CATEGORICAL,
        random_seed=0,
        allow_writing_files=False,
    )
    model.fit(frame, target)
    found = catboost_values(model, rows, background, probability)
    predict = (lambda f: model.predict_proba(f)[:, 1]) if probability else model.predict
    assert found.base == pytest.approx(float(np.mean(predict(background))), abs=1e-7)
    np.testing.assert_allclose(found.output, predict(rows), atol=1e-7)

    numeric = pd.get_dummies(frame, columns=CATEGORICAL, dtype=float)
    numeric.columns = [f"f{i}" for i in range(numeric.shape[1])]  # XGBoost refuses "<" in names
    xgb_kind = xgboost.XGBClassifier if probability else xgboost.XGBRegressor
    booster = xgb_kind(n_estimators=40, max_depth=4).fit(numeric, target)
    rows_x, background_x = numeric.iloc[:150], numeric.iloc[500:560]
    found = xgboost_values(booster, rows_x, background_x, probability, list(numeric.columns))
    predict_x = (lambda f: booster.predict_proba(f)[:, 1]) if probability else booster.predict
    assert found.base == pytest.approx(float(np.mean(predict_x(background_x))), rel=1e-6)
    np.testing.assert_allclose(found.output, predict_x(rows_x), rtol=1e-5, atol=1e-6)
