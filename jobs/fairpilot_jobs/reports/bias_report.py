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

from fairpilot_jobs.fairness import JOINT, exact_interval
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import Links, Report, format_exact

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

# Per metric: (range, ideal value, how to read its sign), from each metric's definition in
# bias/metrics.py ("the group" is the one compared, d; "the privileged group" is a).
_NO_SIGN = "no sign: 0 when both groups have the same label distribution, larger is more different"
GLOSSARY: dict[str, tuple[str, str, str]] = {
    "CI": (
        "−1 to 1",
        "0",
        "(n_a − n_d) / (n_a + n_d): positive when the group has fewer rows "
        "than the privileged group, negative when it has more",
    ),
    "DPL": (
        "−1 to 1",
        "0",
        "positive rate of the privileged group minus the group's: positive "
        "when the group is labelled positive less often",
    ),
    "KL": ("0 to ∞", "0", _NO_SIGN),
    "JS": ("0 to ln 2 ≈ 0.693", "0", _NO_SIGN),
    "LP": ("0 to √2 ≈ 1.414", "0", _NO_SIGN),
    "TVD": ("0 to 1", "0", _NO_SIGN),
    "KS": ("0 to 1", "0", _NO_SIGN),
    "CDDL": (
        "−1 to 1",
        "0",
        "positive when the group's share of the negative labels exceeds its "
        "share of the positive ones",
    ),
    "LDI": (
        "0 to ∞",
        "1",
        "the group's positive label rate over the privileged group's: below 1 "
        "the group is labelled positive less often; below the four-fifths line (0.8 by "
        "default) bias is reported",
    ),
    "DPPL": (
        "−1 to 1",
        "0",
        "positive when the model predicts the favourable outcome for the "
        "group less often than for the privileged group",
    ),
    "DI": (
        "0 to ∞",
        "1",
        "the group's predicted positive rate over the privileged group's: "
        "below 1 the group gets the favourable prediction less often; below the four-fifths "
        "line (0.8 by default) bias is reported",
    ),
    "DCAcc": (
        "−∞ to ∞",
        "0",
        "c_a − c_d with c = labelled positives / predicted positives: "
        "negative when the model accepts the group less than its labels warrant, "
        "compared with the privileged group; positive when more",
    ),
    "DCR": (
        "−∞ to ∞",
        "0",
        "r_d − r_a with r = labelled negatives / predicted negatives: "
        "negative when the model rejects the group more than its labels warrant, compared "
        "with the privileged group; positive when less",
    ),
    "RD": (
        "−1 to 1",
        "0",
        "true positive rate of the privileged group minus the group's: "
        "positive when the model misses more of the group's true positives",
    ),
    "SD": (
        "−1 to 1",
        "0",
        "the group's true negative rate minus the privileged group's: "
        "positive when fewer of the group's negatives are wrongly accepted",
    ),
    "DAR": (
        "−1 to 1",
        "0",
        "precision of the privileged group minus the group's: positive "
        "when fewer of the group's positive predictions are right",
    ),
    "DRR": (
        "−1 to 1",
        "0",
        "the group's negative predictive value minus the privileged group's: "
        "positive when more of the group's rejections are right",
    ),
    "AD": (
        "−1 to 1",
        "0",
        "accuracy of the privileged group minus the group's: positive when "
        "the model is less accurate on the group",
    ),
    "TE": (
        "−∞ to ∞",
        "0",
        "the group's false negatives per false positive minus the privileged "
        "group's: positive when the group's errors lean more to missed positives",
    ),
    "CDDPL": (
        "−1 to 1",
        "0",
        "as CDDL, of the predictions: positive when the group's share of "
        "the predicted rejections exceeds its share of the predicted acceptances",
    ),
    "FT": (
        "−1 to 1",
        "0",
        "positive when more of the group are rejected where their privileged "
        "neighbours are accepted than the other way round: the group is worse off",
    ),
    "GE": ("0 to ∞", "0", "no sign: one figure for all rows, larger is more unequal benefit"),
}
# What each metric measures, where METRIC_NAMES gives only its name.
MEANINGS = {
    "CI": "How unequal the group sizes are: is the group under-represented in the data?",
    "DPL": "The gap in the rate of positive labels: does the data favour one group?",
    "KL": "How different the two groups' label distributions are: KL(P_a ‖ P_d), the relative "
    "entropy of the privileged group's with respect to the group's.",
    "JS": "How different the two groups' label distributions are: KL made symmetric and bounded.",
    "LP": "How different the two groups' label distributions are: their Euclidean distance.",
    "TVD": "How different the two groups' label distributions are: half their L1 distance, "
    "here the gap in positive label rates.",
    "KS": "How different the two groups' label distributions are: the largest gap between them.",
    "LDI": "The ratio of positive label rates: the four-fifths rule applied to the data.",
    "DPPL": "The gap in the rate of favourable predictions (statistical parity difference).",
    "DI": "The ratio of favourable prediction rates: the four-fifths rule applied to the model.",
    "DCAcc": "Does the model accept the group as often as its labels say it should, compared "
    "with the privileged group?",
    "DCR": "Does the model reject the group as often as its labels say it should, compared with "
    "the privileged group?",
    "RD": "The gap in recall (true positive rate, equal opportunity): are deserving members "
    "of the group found as often?",
    "DAR": "The gap in precision: are the group's acceptances as often right?",
    "DRR": "The gap in negative predictive value: are the group's rejections as often right?",
    "AD": "The gap in accuracy.",
    "TE": "The gap in the mix of errors: false negatives per false positive.",
}
SMALL_GROUP_ROWS = 100  # fewer rows: the group's rates and metrics get a warning
TOP_GROUPS = 20  # groups of a feature drawn and tabled, the largest by row count
MAX_FINDINGS = 25  # findings listed in the verdict; all of them are in result.json


SIGNS = (
    "Metrics compare each group with the privileged group, signed as SageMaker Clarify signs "
    "them: mostly so that a positive difference means the group is worse off, but not all "
    "(DCAcc, DCR, SD and DRR read otherwise); the glossary at the end says for each metric its "
    "range, ideal value and what its sign means."
)


def build_bias_report(result: dict[str, Any], links: Links = ()) -> str:
    report = Report(
        "Bias analysis",
        subtitle=f"label {result['target']} = {result['positiveLabel']}",
        links=links,
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
    crossing = result.get("intersectionFindings") or []
    if crossing:
        overview.callout(
            f"{len(crossing):,} threshold(s) crossed where sensitive features intersect; not "
            "counted in BiasDetected (each feature is tested by itself), listed here so that "
            "no group at a crossing goes unseen.",
            kind="warning",
            title="At the intersections",
        )
        overview.bullet_list(crossing[:MAX_FINDINGS])
        if len(crossing) > MAX_FINDINGS:
            overview.note(
                f"And {len(crossing) - MAX_FINDINGS:,} more: result.json (intersectionFindings)."
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
        _feature_section(
            report,
            f"Sensitive feature: {feature}",
            f"Privileged group: {data['privilegedGroup']} ({data['privilegedChosenBy']}). " + SIGNS,
            feature,
            data,
            threshold,
        )
    for name, data in (result.get("intersections") or {}).items():
        _feature_section(
            report,
            f"Intersection: {name}",
            f"Each group is one combination of {name.replace(JOINT, ' and ')}: people at the "
            "crossing of two groups can fare worse than either group shows alone. Reference: "
            f"{data['privilegedGroup']} ({data['privilegedChosenBy']}). Shown for reading, not "
            "counted in BiasDetected, which tests each feature by itself as the thresholds say. "
            + SIGNS,
            name,
            data,
            threshold,
        )
    if result["mitigation"].get("effect"):
        _mitigation_section(report, result, threshold)
    glossary = report.section(
        "Glossary",
        intro="Each metric compares one group (d) with the privileged group (a), as SageMaker "
        "Clarify defines it; the range, the value that means no difference, and what its sign "
        "says.",
    )
    glossary.definitions(
        [
            (
                f"{key}: {METRIC_NAMES[key].split(':')[0]}",
                MEANINGS.get(key)
                or (METRIC_NAMES[key].split(": ", 1)[1] if ": " in METRIC_NAMES[key] else ""),
                {"Range": span, "Ideal": ideal, "Sign": sign},
            )
            for key, (span, ideal, sign) in GLOSSARY.items()
        ]
    )
    return report.render()


def _feature_section(
    report: Report, title: str, intro: str, feature: str, data: dict[str, Any], threshold: float
) -> None:
    """One sensitive feature (or intersection): its groups' rates, disparate impact, counts
    with intervals, and Clarify's metrics per group."""
    section = report.section(title, intro=intro)
    groups = data["groups"]
    names, hidden = shown_groups(data)
    small = _small_groups(data)
    if small:
        section.callout(
            _small_groups_text(feature, data, small),
            kind="warning",
            title=f"Small groups of {feature}",
        )
    if hidden:
        section.note(_hidden_summary(feature, data, names, hidden, threshold))
    of = f" ({len(names):,} of {len(groups):,} groups)" if hidden else ""
    series = {"positive rate (label)": [groups[g].get("positiveRate") for g in names]}
    if any("predictedPositiveRate" in groups[g] for g in names):
        series["predicted positive rate"] = [groups[g].get("predictedPositiveRate") for g in names]
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
        [{"group": g, **groups[g], **_rate_interval(groups[g])} for g in names],
        caption="Per-group counts and rates, with the 95% interval of the positive rate "
        "(Clopper-Pearson, exact from the counts: the wider, the less certain)" + of,
        rounded=True,
    )
    rows = [{"group": g, **data["metrics"][g]} for g in names if g in data["metrics"]]
    section.table(rows, caption="Metrics per group (Clarify names)" + of, rounded=True)
    if "flipTest" in data:
        section.note(_flip_test_note(data["flipTest"]))


# The mitigation table's columns: result key by heading.
_BEFORE_AFTER = {
    "LDI": "LDI",
    "LDI after": "reweighedLDI",
    "DPL": "DPL",
    "DPL after": "reweighedDPL",
}


def _mitigation_section(report: Report, result: dict[str, Any], threshold: float) -> None:
    """Before and after mitigation: the label's bias in the data, and in the data as a learner
    trained with the reweighing weights sees it (the TrainingRun's fairness section then
    measures what the trained model does)."""
    section = report.section(
        "Before and after mitigation",
        intro="Reweighing (Kamiran & Calders) gives each combination of groups and label a "
        "weight, so that in the weighted data every group has the overall positive rate. A "
        "TrainingRun with mitigation trains on these weights; its report measures the model "
        "that results. Below: each group's positive rate of the label as the data has it and "
        "as the weighted data has it, and the label's disparate impact (LDI) and difference in "
        "positive proportions (DPL) against the privileged group, before and after.",
    )
    for feature, data in result["mitigation"]["effect"].items():
        names, hidden = shown_groups(data)
        of = f" ({len(names):,} of {len(data['groups']):,} groups)" if hidden else ""
        groups, metrics = data["groups"], data["metrics"]
        before = {g: metrics[g]["LDI"] for g in names if g in metrics}
        after = {g: metrics[g]["reweighedLDI"] for g in names if g in metrics}
        if before:
            section.figure(
                charts.grouped_bar_chart(
                    list(before),
                    {
                        "before (data)": list(before.values()),
                        "after reweighing": list(after.values()),
                    },
                    title=f"{feature}: label disparate impact vs {data['privilegedGroup']}{of}",
                    ylabel="LDI",
                ),
                caption=f"1 means the same positive rate as {data['privilegedGroup']}; the "
                f"four-fifths rule asks for at least {threshold}.",
            )
        # Off by less than the table's rounding (3 decimals) is balanced as far as anyone reads.
        unbalanced = [g for g in after if after[g] is not None and abs(after[g] - 1) >= 5e-4]
        if unbalanced:
            section.note(
                f"{feature}: {len(unbalanced):,} group(s) keep a different rate after "
                "reweighing: they hold a combination of groups whose rows all have the same "
                "label, which no weight can balance (those rows keep weight 1)."
            )
        section.table(
            [
                {
                    "group": g,
                    "positive rate": groups[g]["positiveRate"],
                    "rate after": groups[g]["reweighedPositiveRate"],
                    **{
                        label: metrics[g][key]
                        for label, key in _BEFORE_AFTER.items()
                        if g in metrics
                    },
                }
                for g in names
            ],
            caption=f"{feature} (privileged: {data['privilegedGroup']}): the label's positive "
            f"rate, LDI and DPL in the data, and after reweighing{of} (group sizes: above)",
            rounded=True,
        )


def _small_groups(data: dict[str, Any]) -> list[str]:
    """Groups with fewer than SMALL_GROUP_ROWS rows, or with no metrics (under minGroupSize)."""
    privileged = data["privilegedGroup"]
    return [
        g
        for g, info in data["groups"].items()
        if int(info.get("count") or 0) < SMALL_GROUP_ROWS
        or (g != privileged and g not in data["metrics"])
    ]


def _small_groups_text(feature: str, data: dict[str, Any], small: list[str]) -> str:
    groups, metrics = data["groups"], data["metrics"]
    listed = ", ".join(f"{g} ({int(groups[g].get('count') or 0):,} rows)" for g in small[:10])
    more = f" and {len(small) - 10:,} more" if len(small) > 10 else ""
    unmeasured = [g for g in small if g != data["privilegedGroup"] and g not in metrics]
    text = (
        f"{len(small):,} group{'s' if len(small) != 1 else ''} of {feature} "
        f"{'have' if len(small) != 1 else 'has'} fewer than {SMALL_GROUP_ROWS} rows or no "
        f"metrics: {listed}{more}. Their rates and metrics can move a lot with a few rows; "
        "read them with the intervals in the table below."
    )
    if unmeasured:
        verb = "is" if len(unmeasured) == 1 else "are"
        text += f" {len(unmeasured):,} of them {verb} under minGroupSize and not compared at all."
    return text


def _rate_interval(group: dict[str, Any]) -> dict[str, Any]:
    """The 95% Clopper-Pearson interval of a group's positive rate, from its exact counts."""
    count, rate = int(group.get("count") or 0), group.get("positiveRate")
    if not count or not isinstance(rate, (int, float)) or not math.isfinite(rate):
        return {"rate 95% low": None, "rate 95% high": None}
    positives = round(rate * count)
    if abs(positives - rate * count) > 1e-6 * count:
        return {"rate 95% low": None, "rate 95% high": None}
    low, high = exact_interval(positives, count) or (None, None)
    return {"rate 95% low": low, "rate 95% high": high}


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
