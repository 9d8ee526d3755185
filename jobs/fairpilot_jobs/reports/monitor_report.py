"""The monitor stage's HTML report: one window of a ModelMonitor, and the trend before it.

At the top the verdict (which alerts, in words); then the trend over the windows the status
keeps (largest feature PSI, prediction PSI, disparate impact per sensitive feature, the eval
metric), each with its threshold drawn; the per-feature drift table, largest PSI first; the
prediction drift; ADWIN's change detection; fairness on the window against training;
performance against the held-out score; the batches used and rejected; and what each
statistic means.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import Report, Section, approx, format_rounded

TOP_FEATURES = 30  # features drawn in the PSI chart; the table lists every one
TOP_GROUPS = 20  # groups of a sensitive feature tabled, the largest by rows (as bias reports)
ALERT_WORDS = {
    "DriftDetected": "Data or prediction drift",
    "BiasDrift": "Bias drift",
    "PerformanceDegraded": "Performance degraded",
}
MEASURE_WORDS = {
    "disparateImpact": "Disparate impact",
    "statisticalParityDifference": "Statistical parity difference",
    "equalOpportunityDifference": "Equal opportunity difference",
}
GLOSSARY = {
    "PSI (population stability index)": "Sum over bins of (window share - training share) x "
    "ln(window share / training share); below 0.1 the feature is stable, 0.1 to 0.2 a "
    "moderate shift, 0.2 and above a significant one.",
    "KL divergence": "How much information is lost describing the window with the training "
    "distribution (0: the same; no upper bound).",
    "JS distance": "A symmetric, bounded version of KL (base 2): 0 for the same distribution, 1 "
    "for distributions with nothing in common.",
    "KS statistic and p-value": "For a numeric feature, the largest gap between the two "
    "cumulative distributions, and how likely a gap that large is by chance; on thousands of "
    "rows tiny, harmless shifts give tiny p-values.",
    "Chi-squared statistic and p-value": "For a categorical feature, whether the window's "
    "category counts fit the training shares; read the p-value as for KS.",
    "Prediction drift": "The same statistics on the model's output (the probability of the "
    "positive class, the predicted class, or the predicted value): whether the model now says "
    "different things, whatever the features did.",
    "ADWIN": "An adaptive window over a stream that cuts it where the means of its two parts "
    "differ by more than chance allows at confidence 1 - delta; fed the training rows then the "
    "window's rows, a cut among the window's rows is a change they brought.",
    "Disparate impact": "The lowest group's rate of the favourable decision over the highest "
    "group's (1 is parity); a fall from its value after training is bias drift.",
    "Statistical parity difference": "The highest group's rate of the favourable decision "
    "minus the lowest's (0 is parity); a rise is bias drift.",
    "Equal opportunity difference": "The spread of the true positive rate between groups, on "
    "rows that carry the label (0 is parity); a rise is bias drift.",
    "Eval metric": "The metric the model was chosen by, on the window's labelled rows, by "
    "AutoGluon's own scorer: comparable with the held-out score of its TrainingRun.",
    "minRows": "A window of fewer rows is measured and shown, but raises no alert: its "
    "statistics are too noisy to act on.",
}


def build_monitor_report(result: Mapping[str, Any]) -> str:
    model = result.get("model") or {}
    named = " ".join(str(v) for v in (model.get("modelId"), model.get("version")) if v)
    report = Report(
        f"Model monitor: window {result['window']}",
        subtitle=f"{result['problemType']} model for {result['target']}"
        + (f" · model {named}" if named else ""),
        meta={"model": model.get("uri", ""), "reference": result.get("reference", "")},
    )
    verdict(report.section("Verdict"), result)
    trend(report.section("Trend over windows", intro=TREND_INTRO), result)
    data_drift(report.section("Data drift per feature"), result)
    prediction_drift(report.section("Prediction drift"), result)
    adwin(report.section("Streaming change detection (ADWIN)"), result)
    fairness(report.section("Fairness: this window against training"), result)
    performance(report.section("Performance against held-out data"), result)
    if result.get("candidate"):
        candidate(report.section("A retrained candidate, scored on these rows"), result)
    batches(report.section("Batches"), result)
    glossary = report.section("How to read this report")
    glossary.key_values(GLOSSARY)
    return report.render()


TREND_INTRO = (
    "The windows the monitor keeps, oldest first, and this one (the larger point). Dashed "
    "lines are the thresholds that raise an alert."
)


def verdict(section: Section, result: Mapping[str, Any]) -> None:
    alerts: list[Mapping[str, Any]] = result["alerts"]
    if not result["judged"]:
        section.callout(result["judgement"], kind="warning", title="Not judged: too few rows")
    elif alerts:
        kinds = list(dict.fromkeys(a["type"] for a in alerts))
        section.callout(
            f"{len(alerts):,} threshold(s) crossed: "
            + ", ".join(ALERT_WORDS.get(k, k).lower() for k in kinds)
            + ".",
            kind="danger",
            title=", ".join(kinds),
        )
        section.bullet_list([a["message"] for a in alerts])
    else:
        section.callout(
            "No feature, prediction, fairness measure or score crossed its threshold.",
            kind="success",
            title="No alert",
        )
    if result["rejected"]:
        section.callout(
            f"{len(result['rejected']):,} batch(es) could not be used and were left where they "
            "are; see Batches.",
            kind="warning",
            title="Batches rejected",
        )
    top = result["summary"]
    section.metrics(
        {
            "Rows": result["rows"],
            "Labelled rows": result["labelledRows"],
            "Largest PSI": _short(top.get("maxPsi")),
            "Prediction PSI": _short(top.get("predictionPsi")),
            "Features drifted": top.get("driftedFeatures", 0),
            (result["performance"].get("evalMetric") or "score"): _short(top.get("score")),
        },
    )
    section.key_values(
        {
            "Window": result["window"],
            "Batches used": len(result["batches"]),
            "Batches rejected": len(result["rejected"]),
            "Newest data": result.get("newestDataAt") or "unknown",
            "Largest PSI in": top.get("maxPsiFeature") or "—",
            "Reference rows (training data)": result["referenceRows"],
            "Labels the model does not know (not scored)": result.get("unknownLabels", 0),
            "Judged": result["judgement"],
        }
    )


def trend(section: Section, result: Mapping[str, Any]) -> None:
    windows: Sequence[Mapping[str, Any]] = result["history"]
    xs = [w["window"] for w in windows]
    thresholds = result["thresholds"]
    section.figure(
        charts.line_chart(
            xs,
            {
                "largest feature PSI": [w.get("maxPsi") for w in windows],
                "prediction PSI": [w.get("predictionPsi") for w in windows],
            },
            references=[
                {"label": f"PSI threshold {thresholds['psi']:g}", "value": thresholds["psi"]}
            ],
            title="Drift: largest feature PSI and prediction PSI",
            xlabel="window",
            ylabel="PSI",
        ),
        caption="Above the dashed line a feature (or the model's output) has drifted.",
    )
    names = list(dict.fromkeys(f for w in windows for f in (w.get("disparateImpact") or {})))
    baseline = {b["name"]: b for b in (result.get("baseline") or {}).get("fairness") or []}
    if names:
        drop = thresholds["disparateImpactDrop"]
        lines: list[charts.Reference] = []
        for name in names:
            before = (baseline.get(name) or {}).get("disparateImpact")
            if before is not None:
                lines.append(
                    {
                        "label": f"{name}: BiasDrift below "
                        + approx(before - drop, f"{before - drop:.3g}"),
                        "value": before - drop,
                        "series": name,
                    }
                )
        section.figure(
            charts.line_chart(
                xs,
                {n: [(w.get("disparateImpact") or {}).get(n) for w in windows] for n in names},
                references=lines,
                title="Disparate impact per sensitive feature",
                xlabel="window",
                ylabel="disparate impact",
            ),
            caption="Each dashed line is a feature's value after training minus "
            f"disparateImpactDrop ({drop:g}): below it, BiasDrift.",
        )
    performance = result["performance"]
    metric = performance.get("evalMetric") or "score"
    scores = [w.get("score") for w in windows]
    if any(s is not None for s in scores) or performance.get("baseline") is not None:
        lines = []
        if performance.get("baseline") is not None:
            lines.append(
                {
                    "label": "held-out "
                    + approx(performance["baseline"], f"{performance['baseline']:.4g}"),
                    "value": performance["baseline"],
                }
            )
        if performance.get("bound") is not None:
            lines.append(
                {
                    "label": "PerformanceDegraded "
                    + ("below " if performance.get("greaterIsBetter", True) else "above ")
                    + approx(performance["bound"], f"{performance['bound']:.4g}"),
                    "value": performance["bound"],
                }
            )
        section.figure(
            charts.line_chart(
                xs,
                {metric: scores},
                references=lines,
                title=f"{metric} on labelled rows",
                xlabel="window",
                ylabel=metric,
            ),
            caption="Windows without enough labelled rows leave a gap.",
        )


def data_drift(section: Section, result: Mapping[str, Any]) -> None:
    rows: list[Mapping[str, Any]] = result["features"]
    threshold = result["thresholds"]["psi"]
    p_value = result["thresholds"].get("pValue")
    section.paragraph(
        "Each feature of this window against the model's training data "
        f"({result['referenceRows']:,} rows). A feature drifted at PSI {threshold:g} or more"
        + (f", or a test p-value below {p_value:g}" if p_value is not None else "")
        + "."
    )
    shown = rows[:TOP_FEATURES]
    section.figure(
        charts.bar_chart(
            [r["name"] for r in shown],
            [r["psi"] for r in shown],
            title="PSI per feature"
            + (f" (largest {len(shown)} of {len(rows)})" if len(rows) > len(shown) else ""),
            xlabel="PSI",
            reference=threshold,
            reference_label=f"threshold {threshold:g}",
            highlight=[r["name"] for r in shown if r["drifted"]],
        ),
        caption="Features at or above the line (in vermillion) drifted.",
    )
    section.table(
        [
            {
                "feature": r["name"],
                "PSI": r["psi"],
                "KL": r["kl"],
                "JS distance": r["js"],
                "test": "KS" if r["kind"] == "numeric" else "chi²",
                "statistic": r["ksStatistic"] if r["kind"] == "numeric" else r["chi2Statistic"],
                "p-value": r["ksPValue"] if r["kind"] == "numeric" else r["chi2PValue"],
                "drifted": r["drifted"],
            }
            for r in rows
        ],
        caption=f"Drift per feature, largest PSI first (threshold {threshold:g}); KS for "
        "numeric features, chi² for categorical ones",
        rounded=("PSI", "KL", "JS distance", "statistic", "p-value"),
    )


def prediction_drift(section: Section, result: Mapping[str, Any]) -> None:
    found = result["predictionDrift"]
    threshold = result["thresholds"]["psi"]
    section.paragraph(
        f"The model's output ({found['output']}) on this window against its output on the "
        "training rows."
    )
    if found.get("psi") is None:
        section.note(found.get("message", "not measured"))
        return
    if found["drifted"]:
        section.callout(
            f"PSI {format_rounded(found['psi'])} is at or above {threshold:g}.",
            kind="danger",
            title="The predictions drifted",
        )
    items: dict[str, Any] = {"PSI": found["psi"], "KL": found["kl"], "JS distance": found["js"]}
    if found["kind"] == "numeric":
        items |= {
            "KS statistic": found.get("ksStatistic"),
            "KS p-value": found.get("ksPValue"),
            "Mean on the training rows": found.get("referenceMean"),
            "Mean on this window": found.get("windowMean"),
        }
        section.key_values(items, rounded=True)
    else:
        items |= {"Chi-squared p-value": found.get("chi2PValue")}
        section.key_values(items, rounded=True)
        reference, window = found.get("referenceShares", {}), found.get("windowShares", {})
        classes = list(dict.fromkeys([*reference, *window]))
        section.figure(
            charts.grouped_bar_chart(
                classes,
                {
                    "training rows": [reference.get(c) for c in classes],
                    "this window": [window.get(c) for c in classes],
                },
                title="Share of each predicted class",
                ylabel="share of rows",
            )
        )


def adwin(section: Section, result: Mapping[str, Any]) -> None:
    block = result["adwin"]
    section.paragraph(
        f"ADWIN (delta {block['delta']:g}) is fed the reference values in a random order, then "
        "this window's in row order (batches oldest first). The score stream is the model's "
        "output; the error stream (rows with a label) is 1 for a wrong class, or the absolute "
        "error of a regression. A change in the score is DriftDetected; a rise of the error is "
        "PerformanceDegraded."
    )
    rows = []
    for stream in block["streams"]:
        first = stream["changes"][0] if stream["changes"] else None
        rows.append(
            {
                "stream": stream["stream"],
                "reference mean": stream["referenceMean"],
                "window mean": stream["windowMean"],
                "change at window row": first["row"] if first else "none",
                "changes": stream["changeCount"],
                "mean now": stream["currentMean"] if first else None,
            }
        )
    section.table(
        rows,
        caption="Changes found per stream",
        sortable=False,
        rounded=("reference mean", "window mean", "mean now"),
    )
    for stream in block["streams"]:
        source = stream.get("reference") or "the training rows in a random order"
        section.note(
            f"{stream['stream']}: {stream['referenceRows']:,} reference values ({source}), then "
            f"{stream['windowRows']:,} of this window; {stream['changeCount']:,} change(s) found."
        )


def fairness(section: Section, result: Mapping[str, Any]) -> None:
    block = result["fairness"]
    if not block.get("measured"):
        section.note(block.get("message", "not measured"))
        return
    thresholds = result["thresholds"]
    confidence = f"{thresholds['confidence']:.1%}"
    section.paragraph(
        f"Favourable decision: {block['positiveLabel']!r}. Groups of fewer than "
        f"{block['minGroupSize']:,} rows are not compared. BiasDrift when a change is "
        f"established: the measure's {confidence} interval on this window (its sampling error, "
        "widened for the number of groups compared) lies wholly on the harmful side of its "
        "value after training, and reaches the alert line: disparate impact "
        f"{thresholds['disparateImpactDrop']:g} lower, a difference "
        f"{thresholds['parityDifferenceRise']:g} higher. A window's value alone crosses the line "
        "by chance in small groups."
    )
    if block.get("absent"):
        section.note(f"Not in any batch: {', '.join(block['absent'])}.")
    for name, found in block["features"].items():
        rows = [
            {
                "measure": MEASURE_WORDS.get(row["measure"], row["measure"]),
                "after training": row["training"],
                "this window": row["window"],
                "change": row["change"],
                f"{confidence} interval": _interval(row.get("interval")),
                "alert at": row["bound"],
                "BiasDrift": row["crossed"],
            }
            for row in found["comparison"]
        ]
        section.table(
            rows,
            caption=f"{name}: {found['rows']:,} rows ({found['labelledRows']:,} labelled)",
            sortable=False,
            rounded=("after training", "this window", "change", "alert at"),
        )
        groups = found["groups"]
        shown = shown_groups(groups, found.get("window") or {})
        section.table(
            [
                {
                    "group": group,
                    "rows": groups[group].get("count"),
                    "favourable rate": groups[group].get("predictedPositiveRate"),
                    "labelled rows": groups[group].get("labelledCount"),
                    "true positive rate": groups[group].get("truePositiveRate"),
                    "compared": not groups[group].get("small"),
                }
                for group in shown
            ],
            caption=f"{name}: groups on this window (favourable rate: the share of rows the "
            "model gives the favourable decision)",
            rounded=("favourable rate", "true positive rate"),
        )
        if len(shown) < len(groups):
            hidden = [g for g in groups if g not in set(shown)]
            rows_hidden = sum(int(groups[g].get("count") or 0) for g in hidden)
            section.note(
                f"{len(groups):,} groups: shown are the {TOP_GROUPS:,} largest by row count and "
                f"the groups of the lowest and highest favourable rate; {len(hidden):,} more "
                f"groups ({rows_hidden:,} rows) are not. The measures above are over every group "
                f"large enough to compare; all {len(groups):,} groups are in result.json "
                f"(fairness.features.{name}.groups)."
            )


def shown_groups(groups: Mapping[str, Mapping[str, Any]], window: Mapping[str, Any]) -> list[str]:
    """The groups of a sensitive feature the report tables: all of them up to TOP_GROUPS + 2,
    else the TOP_GROUPS largest by rows (ties by name) and the two the measures name (lowest
    and highest favourable rate). A feature of 10,000 groups stays a table one can read, and
    its report is written in the same time as one of two groups."""
    if len(groups) <= TOP_GROUPS + 2:
        return list(groups)
    largest = heapq.nsmallest(
        TOP_GROUPS, groups, key=lambda g: (-int(groups[g].get("count") or 0), str(g))
    )
    named = [window.get("lowestSelectionGroup"), window.get("highestSelectionGroup")]
    extremes = [str(g) for g in named if g is not None and str(g) in groups]
    return list(dict.fromkeys([*largest, *extremes]))


def performance(section: Section, result: Mapping[str, Any]) -> None:
    found = result["performance"]
    if not found.get("measured"):
        section.note(found.get("message", "not measured"))
        return
    metric = found["evalMetric"]
    split = found.get("baselineSplit") or "held-out"
    section.key_values(
        {
            f"{metric} on this window": found.get("score"),
            f"{metric} on the {split} data": found.get("baseline"),
            "Against the held-out score": _percent(found.get("relativeWorsening")),
            f"Alert at (performanceDrop {result['thresholds']['performanceDrop']:g})": found.get(
                "bound"
            ),
            "Accuracy on this window": found.get("accuracy"),
            f"Accuracy on the {split} data": found.get("baselineAccuracy"),
            "Labelled rows": found["labelledRows"],
            "Higher is better": found.get("greaterIsBetter"),
        },
        rounded=True,
    )
    section.note(found["message"] + ".")


def candidate(section: Section, result: Mapping[str, Any]) -> None:
    """The candidate of the monitor's retraining beside the watched model: the operator
    promotes it from these figures and its own gates (docs/resources.md, Gated retraining)."""
    found = result["candidate"]
    if not found.get("measured"):
        section.note(
            f"The candidate (version {found.get('version')}) could not be scored on this "
            f"window: {found.get('message')}. It waits for a window with labelled rows."
        )
        return
    metric = found.get("metric")
    section.key_values(
        {
            f"{metric}, candidate (version {found.get('version')})": found.get("score"),
            f"{metric}, watched model": found.get("currentScore"),
            "Labelled rows, the same for both": found.get("rows"),
            "Higher is better": found.get("greaterIsBetter"),
        },
        rounded=True,
    )
    section.note(
        "Neither model was trained on these rows. The operator promotes the candidate only if "
        "it is also production-ready (every gate of its TrainingRun passed) and scores at least "
        "the watched model's score minus the policy's tolerance; the monitor's status and "
        "Events say which it did."
    )


def batches(section: Section, result: Mapping[str, Any]) -> None:
    section.table(
        [
            {"batch": b["uri"], "rows": b["rows"], "written at": b.get("modifiedAt") or "—"}
            for b in result["batches"]
        ],
        caption=f"Batches used ({len(result['batches']):,})",
    )
    if result["rejected"]:
        section.table(
            [
                {"batch": r["uri"], "reason": r["reason"], "why": r["message"]}
                for r in result["rejected"]
            ],
            caption=f"Batches rejected ({len(result['rejected']):,}): fix them and write them "
            "again as new batches",
        )
    else:
        section.note("No batch was rejected.")


def _percent(worse: float | None) -> str:
    """0.01774 as "≈1.8% worse", -0.02 as "2% better"."""
    if worse is None:
        return "—"
    shown = approx(abs(worse), f"{abs(worse):.1%}")
    return f"{shown} {'worse' if worse > 0 else 'better'}"


def _short(value: float | None) -> str | None:
    """A card's statistic to 3 significant digits, marked as rounded where it is."""
    return None if value is None else approx(value, f"{value:.3g}")


def _interval(bounds: Sequence[float] | None) -> str:
    if not bounds:
        return "—"
    low, high = bounds
    return f"{approx(low, f'{low:.3g}')} to {approx(high, f'{high:.3g}')}"
