"""The profile stage's HTML report."""

from __future__ import annotations

from functools import partial
from typing import Any

from fairpilot.api import ProfileJobSpec
from fairpilot_jobs.profile import HISTOGRAM_BINS
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import ROUNDED_MARK, CalloutKind, Links, Report, Section, approx

MAX_COLUMN_CHARTS = 40
# Derived statistics, shown rounded (and marked so); min, max and every count stay exact.
ROUNDED_STATISTICS = frozenset({"mean", "std", "p25", "median", "p75"})
ROUNDED_COLUMNS = frozenset({"missing %", "mean"})


def build_profile_report(result: dict[str, Any], spec: ProfileJobSpec, links: Links = ()) -> str:
    report = Report("Dataset profile", subtitle=spec.uri, links=links)
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
    _class_balance(overview, result)
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
            "No constant, zero-inflated, ID-like, mostly-missing or leaking columns and no "
            "duplicate rows found.",
            kind="success",
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

    _distributions(report, result)
    _associations(report, result)

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


def _class_balance(section: Section, result: dict[str, Any]) -> None:
    """The target's classes and their shares, in view (not collapsed)."""
    suggestion = result["suggestion"]
    if suggestion["taskType"] == "regression":
        return
    target = suggestion["target"]
    profile = next((c for c in result["columnProfiles"] if c["name"] == target), None)
    top = (profile or {}).get("topCategories") or []
    if not top:
        return
    shares = ", ".join(f"{t['value']} {_percent(t['fraction'])}" for t in top[:6])
    section.figure(
        charts.category_bars(
            {t["value"]: t["count"] for t in top}, title=f"Class balance of {target}"
        ),
        caption=f"Rows per class of the target: {shares}"
        + (" (top classes only)." if profile and profile["distinct"] > len(top) else "."),
    )


def _distributions(report: Report, result: dict[str, Any]) -> None:
    """Small multiples: a histogram per numeric column, top categories per categorical one."""
    profiles = result["columnProfiles"]
    numeric = {
        c["name"]: (c["histogram"]["edges"], c["histogram"]["counts"])
        for c in profiles
        if c.get("histogram") and c["type"] == "numeric"
    }
    categorical = {
        c["name"]: {t["value"]: t["count"] for t in c["topCategories"]}
        for c in profiles
        if c.get("topCategories") and c["type"] != "numeric"
    }
    if not numeric and not categorical:
        return
    section = report.section(
        "Distributions",
        intro="Every numeric column's histogram and every categorical column's most frequent "
        "values, each panel on its own scale.",
    )
    if numeric:
        shown = dict(list(numeric.items())[:MAX_COLUMN_CHARTS])
        section.figure(
            charts.histogram_panels(shown, title="Numeric columns"),
            caption=f"Rows per bin (at most {HISTOGRAM_BINS} equal-width bins; whole numbers "
            "over a short range one bin per value). Exact statistics under Column details.",
        )
    if categorical:
        shown_categories = dict(list(categorical.items())[:MAX_COLUMN_CHARTS])
        section.figure(
            charts.category_panels(shown_categories, title="Categorical columns: top 5 values"),
            caption="Rows of each column's five most frequent values; all counts exact.",
        )


def _associations(report: Report, result: dict[str, Any]) -> None:
    found = result.get("targetAssociation") or []
    if not found:
        return
    target = result["suggestion"]["target"]
    section = report.section(
        f"Association with {target}",
        intro="How strongly each column goes with the target, strongest first: Cramér's V "
        "between two categorical columns, the correlation ratio η between a numeric and a "
        "categorical one (both 0 = none to 1 = one determines the other), Pearson's r between "
        "two numeric ones (−1 to 1). Association is not causation, and a very strong one may "
        "be label leakage.",
    )
    shown = found[:MAX_COLUMN_CHARTS]
    section.figure(
        charts.bar_chart(
            [f"{a['column']} ({_SHORT.get(a['measure'], a['measure'])})" for a in shown],
            [a["value"] for a in shown],
            title=f"Association with {target}",
            xlabel="V, η or r (0 = no association)",
        )
    )
    section.table(
        [{"column": a["column"], "measure": a["measure"], "value": a["value"]} for a in found],
        rounded=["value"],
    )


def _percent(fraction: float) -> str:
    return approx(fraction, f"{fraction:.1%}")


_SHORT = {"Cramér's V": "V", "correlation ratio η": "η", "pearson r": "r"}


def _column(section: Any, profile: dict[str, Any]) -> None:
    if "numeric" in profile:
        section.key_values(profile["numeric"], rounded=ROUNDED_STATISTICS)
    if profile.get("topCategories"):
        section.figure(
            charts.category_bars(
                {t["value"]: t["count"] for t in profile["topCategories"]}, title=profile["name"]
            )
        )
