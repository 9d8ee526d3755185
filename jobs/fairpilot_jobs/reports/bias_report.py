"""The bias stage's HTML report: per-group rates and metrics, with the four-fifths line."""

from __future__ import annotations

import decimal
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
    "LDI": "Disparate impact of the labels",
    "DPPL": "Difference in positive proportions in predicted labels",
    "DI": "Disparate impact",
    "DCAcc": "Difference in conditional acceptance",
    "DCR": "Difference in conditional rejection",
    "RD": "Recall difference",
    "DAR": "Difference in acceptance rates",
    "DRR": "Difference in rejection rates",
    "AD": "Accuracy difference",
    "TE": "Treatment equality",
}


def build_bias_report(result: dict[str, Any]) -> str:
    report = Report(
        "Bias analysis", subtitle=f"label {result['target']} = {result['positiveLabel']}"
    )
    overview = report.section("Verdict")
    threshold = result["thresholds"]["disparateImpact"]
    if result["biasDetected"]:
        overview.callout("Bias detected.", kind="danger", title="BiasDetected")
        overview.bullet_list(result["findings"])
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
            "Mitigation": f"reweighing weights at {result['mitigation']['uri']}",
        }
    )
    for feature, data in result["features"].items():
        section = report.section(
            f"Sensitive feature: {feature}",
            intro=f"Privileged group: {data['privilegedGroup']} ({data['privilegedChosenBy']}). "
            "Metrics compare each group with the privileged group, advantaged minus disadvantaged.",
        )
        groups = data["groups"]
        names = list(groups)
        series = {"positive rate (label)": [groups[g].get("positiveRate") for g in names]}
        if any("predictedPositiveRate" in groups[g] for g in names):
            series["predicted positive rate"] = [
                groups[g].get("predictedPositiveRate") for g in names
            ]
            series["true positive rate"] = [groups[g].get("truePositiveRate") for g in names]
        section.figure(
            charts.grouped_bar_chart(names, series, title=f"Rates by {feature}", ylabel="rate")
        )
        ratios = {g: m.get("DI", m.get("LDI")) for g, m in data["metrics"].items()}
        ratios = {g: v for g, v in ratios.items() if v is not None}
        if ratios:
            section.figure(
                charts.bar_chart(
                    list(ratios),
                    list(ratios.values()),
                    title=f"Disparate impact vs {data['privilegedGroup']}",
                    reference=threshold,
                    reference_label=f"four-fifths rule ({threshold})",
                    highlight=[g for g, v in ratios.items() if v < threshold],
                ),
                caption="Groups left of the line receive the favourable outcome at under "
                f"{_percent(threshold)} of the privileged group's rate.",
            )
        section.table(
            [{"group": g, **stats} for g, stats in groups.items()],
            caption="Per-group counts and rates",
            rounded=True,
        )
        rows = [{"group": g, **metrics} for g, metrics in data["metrics"].items()]
        section.table(rows, caption="Metrics per group (Clarify names)", rounded=True)
    glossary = report.section("Glossary")
    glossary.table([{"metric": k, "meaning": v} for k, v in METRIC_NAMES.items()], sortable=False)
    return report.render()


def _percent(fraction: float) -> str:
    """0.8 as "80%", 0.855 as "85.5%": every digit of the threshold the user set."""
    return f"{format_exact(decimal.Decimal(repr(float(fraction))).scaleb(2).normalize())}%"
