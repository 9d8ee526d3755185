"""The explain stage's HTML reports, one per expertise level (seed 001).

Beginner: plain words, the few things that matter, one example. Intermediate: the standard SHAP
plots with how to read them. Expert: method, checks and every number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairpilot.api import ExpertiseLevel
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import Report, approx

TOP = 15
EXAMPLES = 3
SAMPLE_ROWS = 6  # explained rows tabled (as columns) in the expert report


def build_explanation_report(
    result: dict[str, Any],
    rows: pd.DataFrame,
    values: np.ndarray,
    base: np.ndarray,
    output: np.ndarray,
    level: ExpertiseLevel,
) -> str:
    if values.ndim == 3:  # multiclass: explain the class each row is predicted as
        chosen = output.argmax(axis=1)
        values = values[np.arange(len(rows)), :, chosen]
        base = base[np.arange(len(rows)), chosen]
        output = output[np.arange(len(rows)), chosen]
    base = np.asarray(base).reshape(len(rows), -1)[:, 0]
    title = {
        ExpertiseLevel.BEGINNER: "How the model decides",
        ExpertiseLevel.INTERMEDIATE: "Model explanation",
        ExpertiseLevel.EXPERT: "Model explanation: full detail",
    }[level]
    model = result.get("model") or {}
    named = f"model {model['modelId']} {model.get('version') or ''}".strip()
    report = Report(
        title,
        subtitle=f"{result['target']}: {result['explainedOutput']}"
        + (f" · {named}" if model.get("modelId") else ""),
        meta={"level": str(level), "model": model.get("uri") or ""},
    )
    report.section("The average prediction").paragraph(average_sentence(result))
    if level is ExpertiseLevel.BEGINNER:
        _beginner(report, result, rows, values, base, output)
    else:
        _intermediate(report, result, rows, values, base, output)
        if level is ExpertiseLevel.EXPERT:
            _expert(report, result, rows, values)
    return report.render()


def average_sentence(result: dict[str, Any]) -> str:
    """The one statement of the model's average prediction, the same on every level: it is
    the base value every explanation starts from (E[f(X)] over the background rows)."""
    average = result["averagePrediction"]
    if average.get("perClass"):
        shown = ", ".join(f"{k} {_fmt(v, result)}" for k, v in average["perClass"].items())
    else:
        shown = _fmt(average["value"], result)
    return (
        f"On average the model predicts {shown} "
        f"({result['explainedOutput']}, the mean over {average['rows']:,} background rows). "
        "Every explanation below starts from this average: a feature's SHAP value is how far "
        "it moves one row's prediction away from it."
    )


def _fmt(value: float, result: dict[str, Any]) -> str:
    if result["problemType"] == "regression":
        return approx(value, f"{value:,.4g}")
    return approx(value, f"{value:.0%}")


def _beginner(
    report: Report,
    result: dict[str, Any],
    rows: pd.DataFrame,
    values: np.ndarray,
    base: np.ndarray,
    output: np.ndarray,
) -> None:
    top = result["globalImportance"][:5]
    summary = report.section("What matters most")
    names = [item["feature"] for item in top]
    summary.paragraph(
        f"The model predicts the {result['explainedOutput']}. "
        f"Looking at {result['rows']:,} examples, "
        f"the information it relies on most is {', '.join(names[:-1])} and {names[-1]}."
        if len(names) > 1
        else f"The model relies almost only on {names[0]}."
    )
    total = sum(item["meanAbsShap"] for item in result["globalImportance"]) or 1.0
    summary.figure(
        charts.bar_chart(
            names,
            [100 * item["meanAbsShap"] / total for item in top],
            title="Share of influence",
            xlabel="% of the model's total influence",
            value_format="{:.0f}%",
        ),
        caption="Longer bars: this information changes the prediction more.",
    )
    example = report.section("One example, in words")
    index = int(np.argmax(output))
    contributions = sorted(
        zip(rows.columns, values[index], strict=True), key=lambda item: -abs(item[1])
    )
    ups = [f"{name} = {rows.iloc[index][name]}" for name, v in contributions[:6] if v > 0][:3]
    downs = [f"{name} = {rows.iloc[index][name]}" for name, v in contributions[:6] if v < 0][:3]
    example.paragraph(
        f"For the example below the model predicts {_fmt(output[index], result)}, against "
        f"{_fmt(base[index], result)} on average."
    )
    example.key_values({str(name): rows.iloc[index][name] for name, _ in contributions[:6]})
    if ups:
        example.callout("Pushed the prediction up: " + "; ".join(ups), kind="info")
    if downs:
        example.callout("Pushed the prediction down: " + "; ".join(downs), kind="warning")
    caveat = report.section("Keep in mind")
    caveat.bullet_list(
        [
            "This shows what the model learnt from past data, not what causes the outcome.",
            "If the data was unfair to some groups, the model can repeat that unfairness: "
            "see the bias report.",
        ]
    )


def _intermediate(
    report: Report,
    result: dict[str, Any],
    rows: pd.DataFrame,
    values: np.ndarray,
    base: np.ndarray,
    output: np.ndarray,
) -> None:
    top = result["globalImportance"][:TOP]
    section = report.section(
        "Global feature importance",
        intro="Mean absolute SHAP value: how much each feature moves the prediction on average.",
    )
    section.figure(
        charts.bar_chart(
            [t["feature"] for t in top], [t["meanAbsShap"] for t in top], title="mean |SHAP value|"
        )
    )
    section.figure(
        _beeswarm(rows, values, base),
        caption="Each dot is one row: its position is the feature's effect on the prediction, "
        "its colour the feature's value (red high, blue low; categories by code).",
    )
    examples = report.section(
        "Examples", intro="Why the model predicted what it did for a few rows."
    )
    picks = sorted(
        {int(np.argmax(output)), int(np.argmin(output)), int(np.argsort(output)[len(output) // 2])}
    )
    for index in picks[:EXAMPLES]:
        examples.figure(
            _waterfall(rows, values, base, index),
            caption=f"Row {rows.index[index]}: prediction {_fmt(output[index], result)} "
            f"from a base of {_fmt(base[index], result)}.",
        )
    notes = report.section("How these were computed")
    notes.paragraph(f"Method: {result['method']} ({result['algorithm']}).")
    error = result["localAccuracy"]["maxAbsError"]
    notes.paragraph(
        f"Check: base value + sum of SHAP values equals the model's output for every row, "
        f"up to {approx(error, f'{error:.2e}')}."
    )


def _expert(report: Report, result: dict[str, Any], rows: pd.DataFrame, values: np.ndarray) -> None:
    method = report.section("Method and checks")
    method.key_values(
        {
            "Method": result["method"],
            "Requested": result["methodRequested"],
            "Algorithm": result["algorithm"],
            "Fallback reason": result["fallbackReason"] or "none",
            "Explained output": result["explainedOutput"],
            "Rows explained": result["rows"],
            "Background rows": result["backgroundRows"],
            "Base value": result["baseValue"],
            "Local accuracy max |error|": result["localAccuracy"]["maxAbsError"],
            "Checked against": result["localAccuracy"]["checkedAgainst"],
            "SHAP time (s)": result["shapSeconds"],
            "Model": result["model"]["uri"],
        }
    )
    if result.get("members"):
        method.table(
            [{"member": k, "weight": v} for k, v in result["members"].items()],
            caption="Ensemble members",
        )
    table = report.section("All features")
    table.table(result["globalImportance"], rounded=True)
    dependence = report.section(
        "Dependence", intro="SHAP value against feature value, top features."
    )
    for item in result["globalImportance"][:3]:
        dependence.figure(_scatter(rows, values, item["feature"]))
    shown = min(SAMPLE_ROWS, len(rows))
    sample = report.section(
        "SHAP values of the first rows",
        intro=f"One column per explained row (the first {shown:,} of {len(rows):,}, by their "
        "row number in the data), one line per feature; every row's values are in "
        "shap_values.parquet.",
    )
    frame = pd.DataFrame(
        values[:shown].T,
        index=pd.Index(rows.columns, name="feature"),
        columns=[f"row {index}" for index in rows.index[:shown]],
    )
    sample.table(frame, max_rows=len(rows.columns), rounded=True, sortable=False)


def _explanation(rows: pd.DataFrame, values: np.ndarray, base: np.ndarray) -> Any:
    import shap

    numeric = pd.DataFrame(
        {
            c: (
                rows[c]
                if pd.api.types.is_numeric_dtype(rows[c])
                and not pd.api.types.is_bool_dtype(rows[c])
                else pd.factorize(rows[c])[0]
            )
            for c in rows.columns
        }
    ).astype("float64")
    return shap.Explanation(
        values=values,
        base_values=base,
        data=numeric.to_numpy(),
        display_data=rows.astype(str).to_numpy(),
        feature_names=[str(c) for c in rows.columns],
    )


def _beeswarm(rows: pd.DataFrame, values: np.ndarray, base: np.ndarray) -> str:
    import matplotlib.pyplot as plt
    import shap

    shap.plots.beeswarm(_explanation(rows, values, base), max_display=TOP, show=False)
    return charts.figure_to_svg(plt.gcf())


def _waterfall(rows: pd.DataFrame, values: np.ndarray, base: np.ndarray, index: int) -> str:
    import matplotlib.pyplot as plt
    import shap

    shap.plots.waterfall(_explanation(rows, values, base)[index], max_display=10, show=False)
    return charts.figure_to_svg(plt.gcf())


def _scatter(rows: pd.DataFrame, values: np.ndarray, feature: str) -> str:
    import matplotlib.pyplot as plt

    column = list(rows.columns).index(feature)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = rows[feature]
    if not pd.api.types.is_numeric_dtype(x):
        codes, uniques = pd.factorize(x)
        ax.scatter(
            codes + np.random.default_rng(0).uniform(-0.2, 0.2, len(codes)),
            values[:, column],
            s=6,
            alpha=0.5,
        )
        ax.set_xticks(
            range(len(uniques)), [str(u)[:14] for u in uniques], rotation=45, ha="right", fontsize=7
        )
    else:
        ax.scatter(x, values[:, column], s=6, alpha=0.5)
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_xlabel(feature)
    ax.set_ylabel(f"SHAP value of {feature}")
    fig.tight_layout()
    return charts.figure_to_svg(fig)
