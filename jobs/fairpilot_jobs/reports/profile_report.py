"""The profile stage's HTML report."""

from __future__ import annotations

from functools import partial
from typing import Any

from fairpilot.api import ProfileJobSpec
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import ROUNDED_MARK, CalloutKind, Report

MAX_COLUMN_CHARTS = 40
# Derived statistics, shown rounded (and marked so); min, max and every count stay exact.
ROUNDED_STATISTICS = frozenset({"mean", "std", "p25", "median", "p75"})
ROUNDED_COLUMNS = frozenset({"missing %", "mean"})


def build_profile_report(result: dict[str, Any], spec: ProfileJobSpec) -> str:
    report = Report("Dataset profile", subtitle=spec.uri)
    overview = report.section("Overview")
    overview.metrics(
        {
            "Rows": result["rows"],
            "Columns": result["columns"],
            "Duplicate rows": result["duplicateRows"],
            "Warnings": len(result["warnings"]),
        }
    )
    suggestion = result["suggestion"]
    overview.callout(
        f"Predict '{suggestion['target']}' as a {suggestion['taskType']} task. "
        f"Target: {'; '.join(suggestion['targetReasons']) or 'best score'}. "
        f"Task type: {suggestion['taskTypeReason']}.",
        kind="info",
        title="Suggested target",
    )
    if suggestion["candidates"]:
        overview.details(
            "Other target candidates",
            lambda s: s.table(
                [
                    {"column": c["column"], "score": c["score"], "reasons": "; ".join(c["reasons"])}
                    for c in suggestion["candidates"]
                ]
            ),
        )

    warnings = report.section("Warnings", intro="Things to fix or decide before training.")
    if result["warnings"]:
        for warning in result["warnings"]:
            kind: CalloutKind = (
                "danger" if warning["type"] == "LabelLeakageCandidate" else "warning"
            )
            warnings.callout(warning["message"], kind=kind, title=warning["type"])
        warnings.note("Percentages and correlations in these warnings are rounded.")
    else:
        warnings.callout(
            "No constant, ID-like, mostly-missing or leaking columns found.", kind="success"
        )

    columns = report.section("Columns")
    columns.table(
        [
            {
                "column": c["name"],
                "type": c["type"],
                "missing": c["missing"],
                "missing %": 100 * c["missingFraction"],
                "distinct": c["distinct"],
                "mean": c.get("numeric", {}).get("mean"),
                "min": c.get("numeric", {}).get("min"),
                "max": c.get("numeric", {}).get("max"),
                "top value": (c.get("topCategories") or [{}])[0].get("value"),
            }
            for c in result["columnProfiles"]
        ],
        rounded=ROUNDED_COLUMNS,
    )
    missing = {
        c["name"]: 100 * c["missingFraction"] for c in result["columnProfiles"] if c["missing"]
    }
    if missing:
        columns.figure(
            charts.bar_chart(
                list(missing), list(missing.values()), title="Missing values", xlabel="% of rows"
            ),
            caption="Columns with missing values.",
        )

    detail = report.section(
        "Column details",
        intro="Minimum, maximum and counts are exact; the mean, standard deviation (std) and "
        f"interpolated quartiles (p25, median, p75) are rounded, marked {ROUNDED_MARK}.",
    )
    for profile in result["columnProfiles"][:MAX_COLUMN_CHARTS]:
        detail.details(
            f"{profile['name']} ({profile['type']}, {profile['dtype']})",
            partial(_column, profile=profile),
        )
    if len(result["columnProfiles"]) > MAX_COLUMN_CHARTS:
        detail.paragraph(f"Charts are shown for the first {MAX_COLUMN_CHARTS} columns.")
    if result["sensitiveFeatures"]:
        groups = report.section(
            "Sensitive features", intro="Group sizes of the protected attributes."
        )
        for feature, top in result["sensitiveFeatures"].items():
            groups.figure(
                charts.category_bars({t["value"]: t["count"] for t in top}, title=feature),
                caption=f"Rows per group of {feature}.",
            )
    return report.render()


def _column(section: Any, profile: dict[str, Any]) -> None:
    if "numeric" in profile:
        section.key_values(profile["numeric"], rounded=ROUNDED_STATISTICS)
    if profile.get("topCategories"):
        section.figure(
            charts.category_bars(
                {t["value"]: t["count"] for t in profile["topCategories"]}, title=profile["name"]
            )
        )
