"""The explain stage's HTML reports, one per expertise level (seed 001).

Beginner: plain words, the few things that matter, one example. Intermediate: the standard SHAP
plots (importance, beeswarm, waterfalls, dependence with interaction colouring) and the SHAP of
the sensitive features per group, with how to read them. Expert: the same plots, then method,
checks and every number (its "Method and checks" replaces the intermediate's short note on how
the values were computed: no section is said twice).

The sensitive features are those the model's TrainingRun measured its fairness on (the
`sensitiveFeatures` of the result, from the model's metadata).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairpilot.api import ExpertiseLevel
from fairpilot_jobs.reports import charts, shap_charts
from fairpilot_jobs.reports.html import Links, Report, approx
from fairpilot_jobs.reports.shap_charts import readable

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
    links: Links = (),
) -> str:
    """One level's report. `links` are the pipeline's other reports (html.Report)."""
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
        links=links,
    )
    report.section("The average prediction").paragraph(average_sentence(result))
    if level is ExpertiseLevel.BEGINNER:
        _beginner(report, result, rows, values, base, output)
    else:
        _intermediate(report, result, rows, values, base, output)
        if level is ExpertiseLevel.EXPERT:
            _expert(report, result, rows, values)
        else:
            _computed(report, result)
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
    names = [readable(item["feature"]) for item in top]
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
    row = rows.iloc[index]
    said = {n: f"{readable(n)} = {shap_charts.value_text(row[n])}" for n, _ in contributions}
    ups = [said[n] for n, v in contributions[:6] if v > 0][:3]
    downs = [said[n] for n, v in contributions[:6] if v < 0][:3]
    example.paragraph(
        f"For the example below (the row with the highest prediction) the model predicts "
        f"{_fmt(output[index], result)}, against {_fmt(base[index], result)} on average."
    )
    example.figure(
        shap_charts.waterfall_chart(row, values[index], float(base[index]), most=7),
        caption="Start at the dashed line, the average prediction; each red bar pushes this "
        "example's prediction up, each blue bar down; the solid line is where it ends.",
    )
    if ups:
        example.callout("Pushed the prediction up: " + "; ".join(ups), kind="info")
    if downs:
        example.callout("Pushed the prediction down: " + "; ".join(downs), kind="warning")
    _groups(report, result, rows, values, output, beginner=True)
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
            [readable(t["feature"]) for t in top],
            [t["meanAbsShap"] for t in top],
            title="mean |SHAP value|",
        )
    )
    section.figure(
        shap_charts.beeswarm_chart(rows, values, top=TOP, title="SHAP value of every row"),
        caption="Each dot is one row: its position is the feature's effect on that row's "
        "prediction, its colour the feature's value, blue low to red high. A categorical "
        "feature's categories are coloured by their mean SHAP value, from the one that lowers "
        "the prediction most (blue) to the one that raises it most (red), both named on the "
        "right. Grey: missing value.",
    )
    examples = report.section(
        "Examples",
        intro="Why the model predicted what it did for a few rows: the lowest, the median and "
        "the highest prediction. Each starts at the average prediction and adds the SHAP value "
        "of every feature; the bars end at the row's prediction.",
    )
    examples.figure(
        shap_charts.decision_chart(rows, values, base, top=TOP, title="How predictions build up"),
        caption="shap's decision plot: each line is one row (up to 40, spread over the range "
        "of predictions). It starts at the average prediction at the bottom, moves by each "
        "feature's SHAP value from the least important up, and ends at the row's prediction "
        "at the top; blue lines end low, red ones high. Where lines fan out, that feature "
        "separates the predictions.",
    )
    picks = sorted(
        {int(np.argmax(output)), int(np.argmin(output)), int(np.argsort(output)[len(output) // 2])}
    )
    for index in picks[:EXAMPLES]:
        examples.figure(
            shap_charts.waterfall_chart(
                rows.iloc[index],
                values[index],
                float(base[index]),
                title=f"Row {rows.index[index]}",
            ),
            caption=f"Row {rows.index[index]}: prediction {_fmt(output[index], result)}, "
            f"from the average prediction {_fmt(base[index], result)}.",
        )
    dependence = report.section(
        "Dependence",
        intro="SHAP value against the feature's value for the most important features: the "
        "shape of its effect. Each dot is coloured by the feature that interacts with it most "
        "(shap's approximate_interactions): where colours separate vertically, the effect "
        "depends on that feature too.",
    )
    for item in result["globalImportance"][:3]:
        feature = item["feature"]
        partner = shap_charts.strongest_interaction(rows, values, feature)
        coloured = f", coloured by {readable(partner)}" if partner else ""
        dependence.figure(
            shap_charts.dependence_chart(
                rows, values, feature, partner, title=f"{readable(feature)}{coloured}"
            )
        )
    _groups(report, result, rows, values, output, beginner=False)


def _groups(
    report: Report,
    result: dict[str, Any],
    rows: pd.DataFrame,
    values: np.ndarray,
    output: np.ndarray,
    *,
    beginner: bool,
) -> None:
    features = [f for f in result.get("sensitiveFeatures") or [] if f in rows.columns]
    if not features:
        return
    section = report.section(
        "Sensitive features by group" if not beginner else "Groups of people",
        intro=(
            "How much belonging to each group moves the prediction, on average over the "
            "explained rows: the mean SHAP value of the sensitive feature in the group. Far from "
            "0 means the model uses the feature itself to tell the groups apart."
            if not beginner
            else "Does the model's prediction change with the group a person belongs to? Red "
            "bars: being in this group raises the prediction on average; blue: lowers it."
        ),
    )
    for feature in features:
        table = shap_charts.shap_by_group(rows, values, output, feature)
        section.figure(
            shap_charts.group_chart(table, feature, title=f"{readable(feature)}: by group")
        )
        if not beginner:
            section.table(
                table.rename(
                    columns={
                        "group": readable(feature),
                        "mean_shap": f"mean SHAP of {readable(feature)}",
                        "mean_abs": "mean |SHAP|",
                        "mean_output": "mean prediction",
                    }
                ),
                rounded=True,
                sortable=False,
            )


def _computed(report: Report, result: dict[str, Any]) -> None:
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
            "Base value (the average prediction)": result["baseValue"],
            "Local accuracy max |error|": result["localAccuracy"]["maxAbsError"],
            "Checked against": result["localAccuracy"]["checkedAgainst"],
            "Sensitive features": ", ".join(result.get("sensitiveFeatures") or []) or "none",
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
    table.table(
        [
            {
                "feature": readable(item["feature"]),
                "column": item["feature"],
                "mean |SHAP|": item["meanAbsShap"],
                "mean SHAP": item["meanShap"],
            }
            for item in result["globalImportance"]
        ],
        rounded=True,
    )
    shown = min(SAMPLE_ROWS, len(rows))
    sample = report.section(
        "SHAP values of the first rows",
        intro=f"One column per explained row (the first {shown:,} of {len(rows):,}, by their "
        "row number in the data), one line per feature; every row's values are in "
        "shap_values.parquet.",
    )
    frame = pd.DataFrame(
        values[:shown].T,
        index=pd.Index([readable(c) for c in rows.columns], name="feature"),
        columns=[f"row {index}" for index in rows.index[:shown]],
    )
    sample.table(frame, max_rows=len(rows.columns), rounded=True, sortable=False)
