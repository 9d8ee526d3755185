"""The explanation report's SHAP plots: the numbers they draw checked against their definitions
and shap's own functions, and the three levels' pages (no section twice, readable names)."""

from __future__ import annotations

import itertools
import re
from html import escape, unescape

import numpy as np
import pandas as pd
import pytest

from fairpilot.api import ExpertiseLevel
from fairpilot_jobs.reports import shap_charts
from fairpilot_jobs.reports.explanation_report import average_sentence, build_explanation_report


def product_game(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, float, np.ndarray]:
    """f(x) = x0 * x1 + 2 * ([colour == 'red'] + [colour == 'blue'] / 10) + x3 + sex's effect,
    with exact interventional SHAP values against the rows themselves as background
    (independent features): for the product,
    phi0 = (x0 - m0)(x1 + m1) / 2 and phi1 = (x1 - m1)(x0 + m0) / 2."""
    rng = np.random.default_rng(seed)
    x0, x1, x3 = rng.normal(1, 1, n), rng.normal(2, 1, n), rng.normal(0, 1, n)
    colour = rng.choice(["red", "green", "blue"], n, p=[0.3, 0.5, 0.2])
    sex = rng.choice(["Female", "Male"], n)
    rows = pd.DataFrame(
        {"x_zero": x0, "x_one": x1, "colour": colour, "x_three": x3, "sex": sex},
        index=pd.RangeIndex(1000, 1000 + n),
    )
    red = (colour == "red").astype(float) + 0.1 * (colour == "blue")
    m0, m1 = x0.mean(), x1.mean()
    values = np.column_stack(
        [
            (x0 - m0) * (x1 + m1) / 2,
            (x1 - m1) * (x0 + m0) / 2,
            2 * (red - red.mean()),
            x3 - x3.mean(),
            np.where(sex == "Male", 0.05, -0.05),
        ]
    )
    output = x0 * x1 + 2 * red + x3 + values[:, 4]
    base = float((output - values.sum(axis=1)).mean())
    return rows, values, base, output


def test_waterfall_bars_sum_to_the_prediction() -> None:
    rows, values, base, output = product_game()
    for index in (0, 17, 399):
        for most in (3, 5, 10):
            steps = shap_charts.waterfall_steps(rows.iloc[index], values[index], base, most)
            assert steps[0].start == base  # starts at the average prediction
            for before, after in itertools.pairwise(steps):
                assert after.start == pytest.approx(before.start + before.shap)
            end = steps[-1].start + steps[-1].shap
            assert end == pytest.approx(base + values[index].sum())
            assert end == pytest.approx(output[index])
            assert len(steps) == min(most, rows.shape[1])
            # The largest effect on top (last), the others folded into one bar at the bottom.
            assert abs(steps[-1].shap) == pytest.approx(np.abs(values[index]).max())
            if most < rows.shape[1]:
                assert steps[0].label == f"{rows.shape[1] - most + 1} other features"
    assert steps[-1].label.startswith(("x zero = ", "x one = ", "colour = ", "x three = "))


def test_decision_paths_climb_from_the_average_to_each_prediction() -> None:
    rows, values, base, output = product_game()
    bases = np.full(len(rows), base)
    for top in (2, 5, 9):
        named, paths = shap_charts.decision_paths(values, bases, top=top)
        importance = np.abs(values).mean(axis=0)
        assert named == sorted(range(values.shape[1]), key=lambda i: -importance[i])[:top]
        assert paths.shape == (len(rows), min(top, values.shape[1]) + 2)
        np.testing.assert_allclose(paths[:, 0], base)  # every line starts at E[f(X)]
        np.testing.assert_allclose(paths[:, -1], output, atol=1e-9)  # and ends at f(x)
        # The last step is the most important feature's SHAP value, row by row.
        np.testing.assert_allclose(paths[:, -1] - paths[:, -2], values[:, named[0]])
    svg = shap_charts.decision_chart(rows, values, bases, top=3, title="t")
    assert svg.count("<path") > 40 and "other features" in svg


def test_categories_are_ordered_by_their_mean_shap() -> None:
    rows, values, _, _ = product_game()
    order = shap_charts.category_order(rows["colour"], values[:, 2])
    expected = pd.Series(values[:, 2]).groupby(rows["colour"].to_numpy()).mean().sort_values()
    assert order == list(expected.index)
    assert order[-1] == "red"
    codes = shap_charts.encoded(rows, values)["colour"]
    assert (codes[rows["colour"] == "red"] == 2).all()


def test_strongest_interaction_is_shaps_and_finds_the_product() -> None:
    from shap.utils import approximate_interactions

    rows, values, _, _ = product_game()
    data = shap_charts.encoded(rows, values).to_numpy()
    for index, feature in enumerate(rows.columns):
        ranked = approximate_interactions(index, values, data)
        assert shap_charts.strongest_interaction(rows, values, feature) == rows.columns[ranked[0]]
    # The SHAP value of x0 varies with x1 at equal x0, and the other way round.
    assert shap_charts.strongest_interaction(rows, values, "x_zero") == "x_one"
    assert shap_charts.strongest_interaction(rows, values, "x_one") == "x_zero"


def test_shap_by_group_is_the_groups_mean() -> None:
    rows, values, _, output = product_game()
    rows.loc[rows.index[:5], "sex"] = None
    table = shap_charts.shap_by_group(rows, values, output, "sex")
    groups = rows["sex"].fillna("(missing)")
    for record in table.to_dict("records"):
        chosen = (groups == record["group"]).to_numpy()
        assert record["rows"] == chosen.sum()
        assert record["mean_shap"] == pytest.approx(values[chosen, 4].mean())
        assert record["mean_abs"] == pytest.approx(np.abs(values[chosen, 4]).mean())
        assert record["mean_output"] == pytest.approx(output[chosen].mean())
    assert table["rows"].sum() == len(rows)
    assert list(table["rows"]) == sorted(table["rows"], reverse=True)


def synthetic_result(rows: pd.DataFrame, values: np.ndarray, base: float) -> dict:
    magnitude, signed = np.abs(values).mean(axis=0), values.mean(axis=0)
    importance = sorted(
        (
            {"feature": f, "meanAbsShap": float(m), "meanShap": float(s)}
            for f, m, s in zip(rows.columns, magnitude, signed, strict=True)
        ),
        key=lambda item: -item["meanAbsShap"],
    )
    return {
        "method": "tree",
        "methodRequested": "auto",
        "algorithm": "exact",
        "fallbackReason": None,
        "problemType": "regression",
        "target": "y",
        "explainedOutput": "predicted y",
        "rows": len(rows),
        "backgroundRows": len(rows),
        "features": list(rows.columns),
        "baseValue": base,
        "averagePrediction": {"value": base, "perClass": None, "rows": len(rows)},
        "globalImportance": importance,
        "localAccuracy": {"maxAbsError": 1e-12, "checkedAgainst": "predictor.predict"},
        "shapSeconds": 0.1,
        "members": None,
        "model": {"uri": "file:///m/model", "modelId": "m", "version": "v1"},
        "sensitiveFeatures": ["sex"],
    }


def sections(html: str) -> list[str]:
    return [unescape(re.sub(r"<[^>]+>", "", t)) for t in re.findall(r"<h2>(.*?)</h2>", html)]


@pytest.mark.parametrize("level", list(ExpertiseLevel))
def test_each_level_says_each_thing_once(level: ExpertiseLevel) -> None:
    rows, values, base, output = product_game(200)
    result = synthetic_result(rows, values, base)
    html = build_explanation_report(
        result, rows, values, np.full(len(rows), base), output, level, links=[("Index", "i.html")]
    )
    titles = sections(html)
    assert len(titles) == len(set(titles)), titles
    assert escape(average_sentence(result)) in html  # the same sentence on every level
    assert not ("How these were computed" in titles and "Method and checks" in titles)
    assert "by code" not in html
    assert "x_zero" not in html.replace("<td>x_zero</td>", "")  # names readable
    assert (
        "Groups of people" if level is ExpertiseLevel.BEGINNER else "Sensitive features by group"
    ) in titles
    assert 'href="i.html"' in html
    if level is not ExpertiseLevel.BEGINNER:
        assert {"Examples", "Dependence", "Global feature importance"} <= set(titles)
        assert html.count("<figure") >= 1 + 1 + 3 + 3 + 1
