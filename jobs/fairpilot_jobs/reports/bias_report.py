"""The bias stage's HTML report: per-group rates and metrics, with the four-fifths line.

A sensitive feature may have thousands of groups (a zip code, a free-text country): the report
then shows the `TOP_GROUPS` largest groups by row count, plus the privileged group, and sums up
the rest in one sentence; every group, with its metrics, stays in result.json. Findings are
capped the same way (`MAX_FINDINGS`). A page of 10,000 bars would take minutes to draw and be
unreadable anyway.
"""

from __future__ import annotations

import decimal
import heapq
import math
from typing import Any

from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import Report, format_exact

METRIC_NAMES = {
    "CI": "Class imbalance",
    "DPL": "Difference in positive proportions in labels",
    "KL": "Kullback-Leibler divergence",
    "JS": "Jensen-Shannon divergence",
    "LP": "Lp-norm",
    "TVD": "Total variation distance",
    "KS": "Kolmogorov-Smirnov",
    "CDDL": "Conditional demographic disparity in labels: the group's share of the negative "
    "labels minus its share of the positive ones, within each stratum of the group variable, "
    "averaged by stratum size (strata without both outcomes left out)",
    "LDI": "Disparate impact of the labels",
    "DPPL": "Difference in positive proportions in predicted labels",
    "DI": "Disparate impact",
    "DCAcc": "Difference in conditional acceptance",
    "DCR": "Difference in conditional rejection",
    "RD": "Recall difference",
    "SD": "Specificity difference: the group's true negative rate minus the privileged group's",
    "DAR": "Difference in acceptance rates",
    "DRR": "Difference in rejection rates",
    "AD": "Accuracy difference",
    "TE": "Treatment equality",
    "CDDPL": "Conditional demographic disparity in predicted labels: CDDL of the predictions",
    "FT": "FlipTest: (members the model rejects whose nearest privileged neighbours it accepts "
    "- members it accepts whose neighbours it rejects) / group size; k-NN on the numeric "
    "columns, as SageMaker Clarify computes it, with the sign of its documentation",
    "GE": "Generalized entropy index (alpha = 2) of the benefit prediction - label + 1, over "
    "all rows: 0 when every row gets the benefit it deserves",
}

TOP_GROUPS = 20  # groups of a feature drawn and tabled, the largest by row count
MAX_FINDINGS = 25  # findings listed in the verdict; all of them are in result.json


def build_bias_report(result: dict[str, Any]) -> str:
    report = Report(
        "Bias analysis", subtitle=f"label {result['target']} = {result['positiveLabel']}"
    )
    overview = report.section("Verdict")
    threshold = result["thresholds"]["disparateImpact"]
    if result["biasDetected"]:
        overview.callout("Bias detected.", kind="danger", title="BiasDetected")
        listed, more = _findings_to_list(result)
        overview.bullet_list(listed)
        if more:
            overview.note(
                f"And {more:,} more findings; all {len(result['findings']):,} are in "
                "result.json (findings)."
            )
        overview.note("Ratios and differences in the findings are rounded to 3 decimals.")
    else:
        overview.callout(
            f"No group falls below disparate impact {threshold} (the four-fifths rule).",
            kind="success",
            title="No bias detected",
        )
    overview.key_values(
        {
            "Rows": result["rows"],
            "Positive label": f"{result['positiveLabel']} ({result['positiveLabelReason']})",
            "Predictions": result["predictionSource"] or "none (pre-training metrics only)",
            **_population(result),
            "Mitigation": f"reweighing weights at {result['mitigation']['uri']}",
        },
        rounded=("GE: generalized entropy index (all rows)",),
    )
    for feature, data in result["features"].items():
        section = report.section(
            f"Sensitive feature: {feature}",
            intro=f"Privileged group: {data['privilegedGroup']} ({data['privilegedChosenBy']}). "
            "Metrics compare each group with the privileged group, signed as SageMaker Clarify "
            "signs them: mostly advantaged minus disadvantaged, so that a positive difference "
            "means the group is worse off (see the glossary).",
        )
        groups = data["groups"]
        names, hidden = shown_groups(data)
        if hidden:
            section.note(_hidden_summary(feature, data, names, hidden, threshold))
        of = f" ({len(names):,} of {len(groups):,} groups)" if hidden else ""
        series = {"positive rate (label)": [groups[g].get("positiveRate") for g in names]}
        if any("predictedPositiveRate" in groups[g] for g in names):
            series["predicted positive rate"] = [
                groups[g].get("predictedPositiveRate") for g in names
            ]
            series["true positive rate"] = [groups[g].get("truePositiveRate") for g in names]
        section.figure(
            charts.grouped_bar_chart(names, series, title=f"Rates by {feature}{of}", ylabel="rate")
        )
        ratios = {
            g: ratio
            for g in names
            if g in data["metrics"] and (ratio := _ratio(data["metrics"][g])) is not None
        }
        if ratios:
            section.figure(
                charts.bar_chart(
                    list(ratios),
                    list(ratios.values()),
                    title=f"Disparate impact vs {data['privilegedGroup']}{of}",
                    reference=threshold,
                    reference_label=f"four-fifths rule ({threshold})",
                    highlight=[g for g, v in ratios.items() if v < threshold],
                ),
                caption="Groups left of the line receive the favourable outcome at under "
                f"{_percent(threshold)} of the privileged group's rate.",
            )
        section.table(
            [{"group": g, **groups[g]} for g in names],
            caption="Per-group counts and rates" + of,
            rounded=True,
        )
        rows = [{"group": g, **data["metrics"][g]} for g in names if g in data["metrics"]]
        section.table(rows, caption="Metrics per group (Clarify names)" + of, rounded=True)
        if "flipTest" in data:
            section.note(_flip_test_note(data["flipTest"]))
    glossary = report.section("Glossary")
    glossary.table([{"metric": k, "meaning": v} for k, v in METRIC_NAMES.items()], sortable=False)
    return report.render()


def shown_groups(data: dict[str, Any], top: int = TOP_GROUPS) -> tuple[list[str], list[str]]:
    """The groups of one feature the report draws, and those it only counts.

    Up to `top` + 1 groups: all of them, in result order. More: the `top` largest by row count
    (ties by name), the privileged group first, added when it is not among them; the rest are
    left out of the charts and tables.
    """
    groups = data["groups"]
    if len(groups) <= top + 1:
        return list(groups), []
    privileged = data["privilegedGroup"]
    largest = heapq.nsmallest(top, groups, key=lambda g: (-groups[g]["count"], g))
    shown = ([privileged] if privileged in groups else []) + [g for g in largest if g != privileged]
    chosen = set(shown)
    return shown, [g for g in groups if g not in chosen]


def _population(result: dict[str, Any]) -> dict[str, Any]:
    """The overview's lines for the group variable and the whole-population metrics."""
    out: dict[str, Any] = {}
    if result.get("groupVariable"):
        out["Group variable (CDDL, CDDPL)"] = result["groupVariable"]
    population = result.get("populationMetrics") or {}
    if "GE" in population:
        value = population["GE"]
        out["GE: generalized entropy index (all rows)"] = (
            value if value is not None else "undefined (every row a false negative)"
        )
    return out


def _flip_test_note(info: dict[str, Any]) -> str:
    """One sentence on what FlipTest used, or why it was not computed."""
    if "skipped" in info:
        return f"FlipTest (FT) not computed: {info['skipped']}."
    columns = info["columns"]
    shown = ", ".join(map(str, columns[:10])) + (
        f" and {len(columns) - 10:,} more" if len(columns) > 10 else ""
    )
    among = (
        f"{info['referenceRows']:,} of the privileged group's {info['privilegedRows']:,} rows"
        if info["referenceRows"] < info["privilegedRows"]
        else f"the privileged group's {info['privilegedRows']:,} rows"
    )
    text = (
        f"FlipTest (FT): {info['neighbors']} nearest neighbours (unscaled Euclidean distance) "
        f"among {among}, in the columns {shown}."
    )
    if info.get("sampled"):
        tested = sum(info["rows"].values())
        text += (
            f" Estimated on a fixed-seed sample: {info['referenceRows']:,} privileged rows and "
            f"{tested:,} rows of the groups compared (per group in result.json, "
            "flipTest.rows)."
        )
    if info.get("imputed"):
        text += f" Missing values replaced by the column mean in {', '.join(info['imputed'])}."
    return text


def _ratio(metrics: dict[str, Any]) -> float | None:
    """The disparate impact a group is judged by: DI with predictions, LDI without."""
    value = metrics.get("DI", metrics.get("LDI"))
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _hidden_summary(
    feature: str, data: dict[str, Any], shown: list[str], hidden: list[str], threshold: float
) -> str:
    """One sentence on the groups not drawn: how many, their rows, how many cross the line."""
    groups, metrics = data["groups"], data["metrics"]
    rows = sum(int(groups[g].get("count") or 0) for g in hidden)
    below = sum(
        1
        for g in hidden
        if g in metrics and (v := _ratio(metrics[g])) is not None and v < threshold
    )
    extra = " and the privileged group" if len(shown) > TOP_GROUPS else ""
    text = (
        f"{len(groups):,} groups: shown are the {min(len(shown), TOP_GROUPS):,} largest by row "
        f"count{extra}, and {len(hidden):,} more groups ({rows:,} rows) are not; all "
        f"{len(groups):,} groups and their metrics are in result.json "
        f"(features.{feature}.groups and .metrics)."
    )
    if below:
        text += f" {below:,} of the groups not shown fall below disparate impact {threshold}."
    ratios = [(v, g) for g, m in metrics.items() if (v := _ratio(m)) is not None]
    if ratios:
        value, group = min(ratios)
        text += f" Lowest disparate impact of all groups: {value:.3g} (group {group})."
    return text


def _findings_to_list(result: dict[str, Any]) -> tuple[list[str], int]:
    """At most `MAX_FINDINGS` findings, those of the groups the report shows first; and how
    many were left out."""
    findings: list[str] = list(result["findings"])
    if len(findings) <= MAX_FINDINGS:
        return findings, 0
    prefixes = tuple(
        f"{feature}={group}: "
        for feature, data in result["features"].items()
        for group in shown_groups(data)[0]
    )
    first = [f for f in findings if f.startswith(prefixes)]
    rest = [f for f in findings if not f.startswith(prefixes)]
    listed = (first + rest)[:MAX_FINDINGS]
    return listed, len(findings) - len(listed)


def _percent(fraction: float) -> str:
    """0.8 as "80%", 0.855 as "85.5%": every digit of the threshold the user set."""
    return f"{format_exact(decimal.Decimal(repr(float(fraction))).scaleb(2).normalize())}%"
