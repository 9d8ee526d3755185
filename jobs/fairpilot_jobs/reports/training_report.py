"""The train stage's HTML report: leaderboard, metrics, validation and fairness verdicts,
the model's fairness on held-out data, model card.

Fairness (issue 14): per sensitive feature and per intersection of them, the four measures the
gates bound, the groups' rates, and the groups too small to compare flagged. A feature of many
groups shows the largest `TOP_GROUPS` (as the bias report does, `shown_groups`), plus the
reference group and the groups of the lowest and highest selection rate, and sums up the rest
in one sentence; every group stays in result.json.

With per-group decision thresholds (fairness.method: thresholds), "Before and after the
per-group thresholds" compares the model's own decisions with the thresholded ones on the
held-out split (accuracy and every feature's measures), lists the thresholds, and draws the
accuracy-fairness frontier they were chosen from, on the validation rows.
"""

from __future__ import annotations

from typing import Any

from fairpilot.api import TrainJobSpec
from fairpilot.api.fairness import FairnessMetric
from fairpilot_jobs.classifier_curves import MAX_POINTS as MAX_CURVE_POINTS
from fairpilot_jobs.fairness import JOINT
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.bias_report import METRIC_NAMES, TOP_GROUPS, shown_groups
from fairpilot_jobs.reports.html import (
    Links,
    Report,
    Section,
    approx,
    format_exact,
    format_rounded,
)

# The four measures the gates bound: name, definition, and what parity is.
MEASURES: dict[str, tuple[str, str, str]] = {
    FairnessMetric.DISPARATE_IMPACT.value: (
        "Disparate impact",
        "the lowest selection rate over the highest",
        "1 is parity; the four-fifths rule asks for at least 0.8.",
    ),
    FairnessMetric.STATISTICAL_PARITY_DIFFERENCE.value: (
        "Statistical parity difference",
        "the highest selection rate minus the lowest",
        "0 is parity.",
    ),
    FairnessMetric.EQUAL_OPPORTUNITY_DIFFERENCE.value: (
        "Equal opportunity difference",
        "the highest true positive rate minus the lowest",
        "whether the rows that deserve the favourable outcome get it as often in every group; "
        "0 is parity.",
    ),
    FairnessMetric.EQUALIZED_ODDS_DIFFERENCE.value: (
        "Equalized odds difference",
        "the larger of two spreads (highest minus lowest): the true positive rates' and the "
        "false positive rates'",
        "0 is parity.",
    ),
}
# Clarify's post-training metrics, each group against the reference group.
POST_TRAINING = ("DPPL", "DI", "DCAcc", "DCR", "RD", "DAR", "DRR", "AD", "TE")
MAX_GATE_LINES = 12  # gate verdicts spelled out in the verdict area; all are in the table
TOO_SMALL = "too few rows to compare"
OVERVIEW_COLUMNS = 6  # features (and intersections) side by side in one overview table
BEFORE_AND_AFTER = "Before and after the per-group thresholds"
DEFAULT_THRESHOLD = 0.5  # the model's own decisions: the class of the higher probability


# result.json's leaderboard keys as column headers that fit the page (headers do not wrap).
LEADERBOARD_COLUMNS = {
    "scoreTest": "test score",
    "scoreValidation": "validation score",
    "fitSeconds": "fit s",
    "predictSecondsValidation": "predict s",
    "stackLevel": "stack",
}


def build_training_report(result: dict[str, Any], spec: TrainJobSpec, links: Links = ()) -> str:
    best = result["bestModel"]
    metadata = result["model"].get("metadata") or {}
    named = f" · model {metadata['model_id']} {metadata.get('version', '')}" if metadata else ""
    report = Report(
        "Training run",
        subtitle=f"{result['problemType']} model for {spec.target}{named}".rstrip(),
        meta={"model": result["model"]["uri"]},
        links=links,
    )
    overview = report.section("Result")
    test = result["metrics"].get("test", {})
    validation = result["metrics"].get("validation", {})
    metric = result["evalMetric"]
    overview.metrics(
        {
            "Best model": best["name"],
            f"Test {metric}": test.get(metric),
            f"Validation {metric}": validation.get(metric),
            "Fit time (s)": result["fitSeconds"],
            "Model size (MB)": result["model"]["sizeMb"],
        },
        rounded=True,
    )
    verdict = result["validation"]
    overview.callout(
        verdict["message"],
        kind="info" if not verdict["checked"] else ("success" if verdict["passed"] else "danger"),
        title="Validation" if verdict["checked"] else "Validation: not checked",
        rounded=_gate_numbers(verdict),
    )
    rounding = _fairness_verdict(overview, result.get("fairness"))
    ready = result.get("productionReady") or {}
    if ready:
        overview.callout(
            ready["message"],
            kind="success" if ready["ready"] else "warning",
            title="Production-ready" if ready["ready"] else "Not production-ready",
            rounded=[
                n for gate in (ready.get("gates") or {}).values() for n in _gate_numbers(gate)
            ],
        )
    if rounding:
        overview.note(rounding)
    if best["members"]:
        overview.figure(
            charts.bar_chart(
                list(best["members"]), list(best["members"].values()), title="Ensemble weights"
            ),
            caption=f"{best['name']} averages these models with these weights.",
        )
    board = report.section("Leaderboard", intro="Every model AutoGluon trained, best first.")
    board.table(
        [{LEADERBOARD_COLUMNS.get(k, k): v for k, v in r.items()} for r in result["leaderboard"]],
        rounded=True,
    )
    scores = [r for r in result["leaderboard"] if r.get("scoreValidation") is not None]
    if scores:
        board.figure(
            charts.dot_plot(
                [r["model"] for r in scores],
                [r["scoreValidation"] for r in scores],
                title=f"Validation score ({metric}, higher is better)",
                xlabel=metric,
                highlight=[best["name"]],
            ),
            caption=f"{best['name']} (vermillion) is the model kept. Values to the digits that "
            "tell them apart, marked ≈ where rounded; every digit in the leaderboard above.",
        )
    _models_section(report, result)
    thresholded = isinstance((result.get("fairness") or {}).get("mitigation"), dict)
    _diagnostics_section(report, result.get("diagnostics"), thresholded)
    figures = report.section("Metrics")
    figures.table(
        [
            {"metric": name, "validation": validation.get(name), "test": test.get(name)}
            for name in sorted(set(validation) | set(test))
        ],
        rounded=True,
    )
    _fairness_sections(report, result, spec)
    card = report.section("Model card")
    meta = result["model"]["metadata"]
    card.key_values(
        {
            "Model id": meta["model_id"],
            "Version": meta["version"],
            "Framework": meta["framework"],
            "Algorithm": meta["algorithm"],
            "Training data": meta["training_dataset"],
            "Sample weights": result["sampleWeights"] or "none",
            "GPU": f"{result['gpu']['used']} used of {result['gpu']['requested']} requested",
            "Stored at": result["model"]["uri"],
        }
    )
    return report.render()


def _gate_numbers(gate: dict[str, Any]) -> list[object]:
    """The numbers a gate's message spells out: its value and bounds."""
    return [gate[key] for key in ("value", "min", "max") if isinstance(gate.get(key), float)]


SPLIT_NAMES = {
    "test": "test split",
    "holdout": "validation rows",
    "out-of-fold": "out-of-fold rows",
}


def _diagnostics_section(
    report: Report, diagnostics: dict[str, Any] | None, thresholded: bool = False
) -> None:
    """A binary model's confusion matrix, ROC, precision-recall and reliability curves on
    held-out rows (`classifier_curves.binary_curves`). `thresholded`: the model ships with
    per-group decision thresholds, which the confusion matrix (one threshold) does not apply."""
    if not diagnostics:
        return
    split = SPLIT_NAMES.get(diagnostics["split"], diagnostics["split"])
    positive = format_exact(diagnostics["positiveLabel"])
    threshold = diagnostics["threshold"]
    section = report.section(
        "Classifier diagnostics",
        intro=f"The kept model on the {split} ({diagnostics['rows']:,} rows), {positive} being "
        "the positive class. Curves are drawn through at most "
        f"{MAX_CURVE_POINTS} of their points; the areas are computed on all of them.",
    )
    cm = diagnostics["confusionMatrix"]
    tp, fp, tn, fn = (
        cm["truePositive"],
        cm["falsePositive"],
        cm["trueNegative"],
        cm["falseNegative"],
    )
    section.figure(
        charts.confusion_matrix_chart(
            [[tn, fp], [fn, tp]],
            [f"not {positive}", positive],
            title=f"Confusion matrix ({split})",
        ),
        caption=f"Predicted {positive} where P({positive}) ≥ {format_exact(threshold)}. "
        f"{tp:,} true and {fp:,} false positives, {tn:,} true and {fn:,} false negatives."
        + (
            f" These are the model's own decisions, before the per-group thresholds it ships "
            f"with: the decisions it ships with are in '{BEFORE_AND_AFTER}'."
            if thresholded
            else ""
        ),
    )
    roc = diagnostics.get("roc")
    if roc:
        auc = approx(roc["auc"], format_rounded(roc["auc"], 4))
        section.figure(
            charts.curve_chart(
                {f"model (AUC {auc})": (roc["falsePositiveRate"], roc["truePositiveRate"])},
                title=f"ROC curve ({split})",
                xlabel="false positive rate",
                ylabel="true positive rate",
                diagonal="chance (AUC 0.5)",
            ),
            caption="Each point is one threshold on P(positive): the nearer the curve to the "
            "top left corner, the better the model ranks positives above negatives.",
        )
    pr = diagnostics.get("precisionRecall")
    if pr:
        ap = approx(pr["averagePrecision"], format_rounded(pr["averagePrecision"], 4))
        base = approx(pr["baseRate"], format_rounded(pr["baseRate"]))
        section.figure(
            charts.curve_chart(
                {f"model (average precision {ap})": (pr["recall"], pr["precision"])},
                title=f"Precision-recall curve ({split})",
                xlabel=f"recall (share of {positive} found)",
                ylabel=f"precision (share of predicted {positive} right)",
                baseline=(pr["baseRate"], f"chance: the positive rate {base}"),
            ),
            caption="A model that guesses has precision equal to the positive rate at every "
            "recall (dotted line).",
        )
    calibration = diagnostics.get("calibration")
    if calibration:
        brier = approx(calibration["brierScore"], format_rounded(calibration["brierScore"]))
        section.figure(
            charts.curve_chart(
                {"model": (calibration["meanPredicted"], calibration["observedRate"])},
                title=f"Calibration ({split})",
                xlabel=f"mean predicted P({positive}) in the bin",
                ylabel=f"observed rate of {positive}",
                diagonal="perfectly calibrated",
                markers=True,
            ),
            caption=f"Rows in {calibration['bins']} equal-width bins of the predicted "
            "probability; a point below the diagonal means the model over-estimates. "
            f"Brier score {brier} (0 is perfect).",
        )
        section.table(
            [
                {"mean predicted": p, "observed rate": o, "rows": n}
                for p, o, n in zip(
                    calibration["meanPredicted"],
                    calibration["observedRate"],
                    calibration["rows"],
                    strict=True,
                )
            ],
            caption="Reliability table: one row per non-empty bin.",
            rounded=["mean predicted", "observed rate"],
            sortable=False,
        )


def _models_section(report: Report, result: dict[str, Any]) -> None:
    """Every model family the spec asked for: trained, skipped (why) or failed (the error);
    and where the time budget went."""
    families = result.get("modelFamilies") or []
    timing = result.get("timing")
    if not families and not timing:
        return
    section = report.section(
        "Model families",
        intro=(
            "Every family the spec asked for and what became of it: trained, skipped (and why) "
            "or failed (with AutoGluon's error)."
        ),
    )
    for family in families:
        if family["state"] == "trained":
            continue
        section.callout(
            family["reason"] or "no reason recorded",
            kind="danger" if family["state"] == "failed" else "warning",
            title=f"{family['family']}: {family['state']}",
        )
    if families:
        section.table(
            [
                {
                    "family": f["family"],
                    "state": f["state"],
                    "models trained": _trained_models(f),
                    "best validation score": f.get("bestScoreValidation"),
                }
                for f in families
            ],
            rounded=["best validation score"],
            sortable=False,
        )
        partial = [f"{f['family']}: {f['note']}" for f in families if f.get("note")]
        if partial:
            section.bullet_list(partial)
        tried = [
            {
                "model": m["model"],
                "family": f["family"],
                "state": m["state"],
                "validation score": m.get("scoreValidation"),
                "test score": m.get("scoreTest"),
                "why not trained": _why(m),
            }
            for f in families
            for m in f["models"]
        ]
        if tried:
            section.details(
                f"Every model AutoGluon tried ({len(tried)})",
                lambda inner: inner.table(
                    tried, rounded=["validation score", "test score"], sortable=False
                ),
            )
    if timing:
        section.paragraph(
            "Where the time went: the budget (timeLimitSeconds) covers the whole stage from its "
            "process starting; AutoGluon gets what is left once the data is loaded, less what "
            "is kept for the work after the fit."
        )
        section.key_values(
            {
                "Budget (s)": timing["budgetSeconds"],
                "Process start-up and spec (s)": timing["startupSeconds"],
                "AutoGluon import, data load and checks (s)": timing["prepareSeconds"],
                "Kept for after the fit (s)": timing["reserveSeconds"],
                "Given to AutoGluon (s)": timing["autogluonTimeLimitSeconds"],
                "AutoGluon took (s)": timing["fitSeconds"],
                "After the fit: metrics, model, upload (s)": timing["postFitSeconds"],
                "Total, before this report (s)": timing["totalSeconds"],
            }
        )
        if timing.get("plannedOverrunSeconds"):
            section.callout(
                f"The budget is smaller than the stage's fixed costs: AutoGluon got "
                f"{timing['autogluonTimeLimitSeconds']} s, half the budget, and the stage "
                f"planned to overrun by {timing['plannedOverrunSeconds']} s.",
                kind="warning",
                title="Time budget",
            )
        rows = timing.get("trainingMetricRows")
        train_rows = (result.get("rows") or {}).get("train")
        if rows is not None and train_rows and rows < train_rows:
            section.note(
                f"Training-set metrics were computed on a sample of {rows:,} of the "
                f"{train_rows:,} training rows: predicting them all would not fit the budget."
            )


def _trained_models(family: dict[str, Any]) -> str:
    trained = [m["model"] for m in family["models"] if m["state"] == "trained"]
    if not trained:
        return "none"
    total = len(family["models"])
    names = ", ".join(trained)
    return names if len(trained) == total else f"{len(trained)} of {total}: {names}"


def _why(model: dict[str, Any]) -> str:
    why = model.get("reason") or ""
    error = model.get("error")
    if error:
        detail = f"{error['type']}: {error['message']}" if error["message"] else error["type"]
        why = f"{why} ({detail})" if why else detail
    return why


# -- fairness of the model --------------------------------------------------------------------


def _fairness_verdict(section: Section, fairness: dict[str, Any] | None) -> str | None:
    """The fairness gates' verdicts in the verdict area, next to validation's; and the note on
    how their messages round, for under the verdicts that quote them."""
    if not fairness:
        section.callout(
            "No sensitive features were given, so the model's fairness was not measured; "
            "see Fairness of the model for how to ask for it.",
            kind="info",
            title="Fairness: not measured",
        )
        return None
    if not fairness.get("measured"):
        section.callout(
            fairness.get("message") or "no reason recorded",
            kind="warning",
            title="Fairness: not measured",
        )
        return None
    where = f"{fairness['rows']:,} rows of the {fairness['split']} split"
    gates = fairness.get("gates") or []
    if not gates:
        section.callout(
            f"Measured on {where}; no fairness gate is configured (fairness.gates), so the "
            "measures in Fairness of the model are reported, not enforced.",
            kind="info",
            title="Fairness: no gate",
        )
        return None
    failed = [g for g in gates if not g["passed"]]
    passed = [g for g in gates if g["passed"]]
    if failed:
        title = f"Fairness gates: {len(failed):,} of {len(gates):,} failed"
    else:
        title = f"Fairness gates: all {len(gates):,} passed"
    lines = [f"Failed: {g['message']}" for g in failed]
    lines += [f"Passed: {g['message']}" for g in passed]
    text = "\n".join(lines[:MAX_GATE_LINES])
    if len(lines) > MAX_GATE_LINES:
        more = len(lines) - MAX_GATE_LINES
        text += f"\nAnd {more:,} more: every gate is in Fairness of the model."
    section.callout(text, kind="danger" if failed else "success", title=title)
    return (
        f"Fairness measured on {where}. Numbers in the fairness gates' messages are rounded to "
        "3 decimals; Fairness of the model gives them to 4 significant digits (hover a value "
        "for every digit)."
    )


def _fairness_sections(report: Report, result: dict[str, Any], spec: TrainJobSpec) -> None:
    """Fairness of the model: where it was measured, the measures of every sensitive feature
    and intersection, the gates; then a section per feature and per intersection."""
    fairness = result.get("fairness")
    section = report.section(
        "Fairness of the model",
        intro="How the trained model's predictions fall on the groups of each sensitive "
        "feature, measured on rows it was not trained on.",
    )
    if not fairness:
        section.paragraph(
            "Fairness was not measured: no sensitive features were given. To measure it, name "
            "the columns in the TrainingRun's spec.fairness.sensitiveFeatures (and bound the "
            "measures with spec.fairness.gates, e.g. {metric: disparateImpact, min: 0.8}); in a "
            "pipeline, the Dataset's sensitiveFeatures are used."
        )
        return
    if not fairness.get("measured"):
        section.callout(
            fairness.get("message") or "no reason recorded", kind="warning", title="Not measured"
        )
        return
    features = fairness.get("features") or {}
    intersections = fairness.get("intersections") or {}
    positive = format_exact(fairness["positiveLabel"])
    section.key_values(
        {
            "Measured on": _split_text(fairness, result.get("validationSource")),
            "Favourable prediction": f"{positive} (positive label)",
            "Groups compared": f"those of at least {fairness['minGroupSize']:,} rows "
            "(minGroupSize); smaller groups are listed, flagged, and not compared",
            "Sensitive features": ", ".join(features) or "none",
            "Intersections": ", ".join(intersections) or "none",
        }
    )
    mitigation = fairness.get("mitigation")
    if isinstance(mitigation, dict):
        section.note(
            "These are the measures of the decisions with the per-group decision thresholds "
            f"fitted for {mitigation.get('feature', 'a sensitive feature')} (fairness.method: "
            f"thresholds), the decisions the model ships with. {BEFORE_AND_AFTER}, below, "
            "compares them with the model's own decisions."
        )
    section.paragraph(
        f"A group's selection rate is the share of its rows the model predicts {positive}. "
        "The four measures compare the groups large enough to compare:"
    )
    section.bullet_list(
        [f"{title}: {definition}; {parity}" for title, definition, parity in MEASURES.values()]
    )
    measured = {**features, **intersections}
    names = list(measured)
    for start in range(0, len(names), OVERVIEW_COLUMNS):
        chunk = names[start : start + OVERVIEW_COLUMNS]
        first = "measure" if "measure" not in chunk else ""  # a feature may be named so
        rows: list[dict[str, Any]] = [
            {first: title, **{n: measured[n]["summary"].get(key) for n in chunk}}
            for key, (title, _, _) in MEASURES.items()
        ]
        rows += [
            {first: label, **{n: measured[n]["summary"][key] for n in chunk}}
            for label, key in (
                ("Groups compared", "groupsCompared"),
                ("Groups too small to compare", "groupsTooSmall"),
            )
        ]
        section.table(
            rows,
            caption="The measures of each sensitive feature and intersection"
            + (
                f" ({start + 1}–{start + len(chunk)} of {len(names)})"
                if len(names) > len(chunk)
                else ""
            ),
            rounded=chunk,
            sortable=False,
        )
    gates = fairness.get("gates") or []
    if gates:
        section.table(
            [
                {
                    "verdict": "passed" if g["passed"] else "failed",
                    "feature": g["feature"],
                    "measure": MEASURES[g["metric"]][0] if g["metric"] in MEASURES else g["metric"],
                    "bound": _bound(g),
                    "value": g.get("value"),
                    "message": g["message"],
                }
                for g in gates
            ],
            caption=f"Fairness gates, on the {fairness['split']} split",
            rounded=["value"],
            sortable=False,
        )
    if isinstance(fairness.get("reweighing"), dict):
        _reweighing_section(report, fairness["reweighing"])
    if isinstance(mitigation, dict):
        _mitigation_section(report, result, spec, mitigation)
    for name, data in measured.items():
        _fairness_feature(report, fairness, name, data, gates)


REWEIGHING = "Reweighing against an unweighted baseline"


def _reweighing_section(report: Report, compared: dict[str, Any]) -> None:
    """What reweighing (sample weights before training) changed, against a model trained on
    the same data without them, each fitted in half the budget: both on the held-out rows."""
    baseline, reweighed = compared.get("baseline") or {}, compared.get("reweighed") or {}
    if not baseline or not reweighed:
        return
    split = baseline.get("split", "held-out")
    section = report.section(
        REWEIGHING,
        intro="The model was trained with the bias analysis' reweighing weights (Kamiran & "
        "Calders: each group and label weighted so that the label does not depend on the "
        "group in the training rows). Beside it, a baseline trained on the same rows without "
        "the weights; the fit time was split in two equal halves, so that the two compare like "
        f"for like. Both on the held-out {split} split, with their own decisions (before any "
        "per-group thresholds).",
    )
    rows = [
        _change_row("Accuracy", "all rows", baseline, reweighed, "accuracy"),
        _change_row("ROC AUC", "all rows", baseline, reweighed, "rocAuc"),
    ]
    for name, measures in (baseline.get("features") or {}).items():
        then = (reweighed.get("features") or {}).get(name) or {}
        for key, (title, _, _) in MEASURES.items():
            rows.append(_change_row(title, name, measures, then, key))
    section.table(
        [
            {"measure": r["measure"], "feature": r["feature"], "baseline": r["before"],
             "reweighed": r["after"], "change": r["change"]}
            for r in rows
        ],
        caption=f"The unweighted baseline and the reweighed model, on the held-out {split} split",
        rounded=["baseline", "reweighed", "change"],
        sortable=False,
    )  # fmt: skip


def _mitigation_section(
    report: Report, result: dict[str, Any], spec: TrainJobSpec, mitigation: dict[str, Any]
) -> None:
    """What the per-group thresholds (fairness.method: thresholds) changed: accuracy and the
    measures before and after on the held-out split, the thresholds, and the accuracy-fairness
    frontier on the validation rows they were fitted on."""
    fairness = result["fairness"]
    feature = mitigation.get("feature", "the sensitive feature")
    positive = format_exact(fairness["positiveLabel"])
    heldout = mitigation.get("heldout") or {}
    split = heldout.get("split", fairness["split"])
    constraints = _constraints(spec, feature)
    section = report.section(
        BEFORE_AND_AFTER,
        intro=f"The model's decisions were made fairer for {feature} with one decision "
        f"threshold per group on P({positive}), fitted on the validation rows (fairness.method: "
        f"thresholds); the model ships with them. What they changed, on the held-out {split} "
        "split, and how they were chosen, on the validation rows.",
    )
    if heldout:
        _before_and_after(section, result, heldout, constraints, feature)
    _thresholds_table(section, fairness, mitigation, feature, positive, split)
    _frontier(section, mitigation, constraints, feature)


def _constraints(spec: TrainJobSpec, feature: str) -> list[dict[str, Any]]:
    """The spec's constraints (fairness.constraints) as dicts: metric, min, max, feature."""
    options = spec.fairness
    if options is None:
        return []
    return [
        {"metric": c.metric.value, "min": c.min, "max": c.max, "feature": c.feature or feature}
        for c in options.constraints
    ]


def _before_and_after(
    section: Section,
    result: dict[str, Any],
    heldout: dict[str, Any],
    constraints: list[dict[str, Any]],
    feature: str,
) -> None:
    """The held-out accuracy and every feature's four measures, before, after, and the change;
    what the thresholds cost and bought, in a sentence."""
    split = heldout["split"]
    before, after = heldout["before"], heldout["after"]
    rows = [_change_row("Accuracy", "all rows", before, after, "accuracy") | {"constraint": ""}]
    for name, measures in (before.get("features") or {}).items():
        then = (after.get("features") or {}).get(name) or {}
        for key, (title, _, _) in MEASURES.items():
            bound = [_bound(c) for c in constraints if c["metric"] == key and c["feature"] == name]
            rows.append(
                _change_row(title, name, measures, then, key) | {"constraint": " and ".join(bound)}
            )
    if not any(r["constraint"] for r in rows):  # an empty column
        rows = [{k: v for k, v in r.items() if k != "constraint"} for r in rows]
    section.table(
        rows,
        caption=f"Before and after the thresholds, on the held-out {split} split "
        f"({result['fairness']['rows']:,} rows)",
        rounded=["before", "after", "change"],
        sortable=False,
    )
    section.paragraph(_cost_and_gain(result, heldout, constraints, feature))


def _change_row(
    title: str, feature: str, before: dict[str, Any], after: dict[str, Any], key: str
) -> dict[str, Any]:
    then, now = before.get(key), after.get(key)
    change = now - then if then is not None and now is not None else None
    return {"measure": title, "feature": feature, "before": then, "after": now, "change": change}


def _cost_and_gain(
    result: dict[str, Any],
    heldout: dict[str, Any],
    constraints: list[dict[str, Any]],
    feature: str,
) -> str:
    """What fairness cost (accuracy points) and bought (the constrained measures' moves), and
    why the score metrics did not move."""
    split = heldout["split"]
    before, after = heldout["before"], heldout["after"]
    points = (before["accuracy"] - after["accuracy"]) * 100
    if points > 0:
        cost = f"{_rate(points)} accuracy points"
    elif points < 0:
        cost = f"no accuracy: it rose by {_rate(-points)} points"
    else:
        cost = "no accuracy"
    text = (
        f"On the {split} split, fairness cost {cost} (accuracy {_rate(before['accuracy'])} "
        f"before, {_rate(after['accuracy'])} after)"
    )
    moves = []
    for c in constraints or [{"metric": None, "feature": feature}]:
        metric, name = c["metric"], c["feature"]
        then = ((before.get("features") or {}).get(name) or {}).get(metric)
        now = ((after.get("features") or {}).get(name) or {}).get(metric)
        if metric in MEASURES and then is not None and now is not None:
            moves.append(
                f"{MEASURES[metric][0].lower()} for {name} moved from {_rate(then)} to "
                f"{_rate(now)} (the constraint: {_bound(c)})"
            )
    if moves:
        text += " and bought this: " + "; ".join(moves)
    text += (
        ". ROC AUC and the other metrics of the scores are unchanged: the thresholds move where "
        "the scores are cut, not the scores"
    )
    auc = (result["metrics"].get(split) or {}).get("roc_auc")
    if auc is not None:
        text += f" (ROC AUC on the {split} split: {_rate(auc)}, before and after)"
    return text + (
        ". Accuracy and the other metrics of decisions under Metrics are the model's own "
        "decisions', before the thresholds."
    )


def _thresholds_table(
    section: Section,
    fairness: dict[str, Any],
    mitigation: dict[str, Any],
    feature: str,
    positive: str,
    split: str,
) -> None:
    """Each group's threshold against the default, with its selection rate before and after
    on the held-out split."""
    thresholds: dict[str, float] = mitigation.get("thresholds") or {}
    now = ((fairness.get("features") or {}).get(feature) or {}).get("groups") or {}
    then = (((fairness.get("before") or {}).get("features") or {}).get(feature) or {}).get(
        "groups"
    ) or {}
    names = list(thresholds) + [g for g in now if g not in thresholds]
    rate = "predictedPositiveRate"
    default = f"vs {DEFAULT_THRESHOLD}"
    rows = [
        {
            "group": g,
            "threshold": thresholds.get(g, DEFAULT_THRESHOLD),
            default: thresholds.get(g, DEFAULT_THRESHOLD) - DEFAULT_THRESHOLD,
            "selected before": (then.get(g) or {}).get(rate),
            "selected after": (now.get(g) or {}).get(rate),
        }
        for g in names
    ]
    section.table(
        rows,
        caption=f"The thresholds on P({positive}) for {feature}, fitted on the validation rows, "
        f"against the default {DEFAULT_THRESHOLD}; "
        f"the share of each group predicted {positive} (its selection rate) before and after "
        f"them, on the held-out {split} split",
        rounded=["threshold", default, "selected before", "selected after"],
        sortable=False,
    )
    unfitted = [g for g in names if g not in thresholds]
    section.note(
        f"A row is predicted {positive} when its P({positive}) is above its group's threshold; "
        f"the model's own decisions cut every group at {DEFAULT_THRESHOLD}. A lower threshold "
        f"predicts the group {positive} more often."
        + (
            f" {', '.join(unfitted)}: not in the validation rows, so no threshold was fitted; "
            f"{'it keeps' if len(unfitted) == 1 else 'they keep'} {DEFAULT_THRESHOLD}."
            if unfitted
            else ""
        )
        + " The thresholds are stored with the model (decision_thresholds in its metadata) "
        "and applied by its predict helper."
    )


def _frontier(
    section: Section,
    mitigation: dict[str, Any],
    constraints: list[dict[str, Any]],
    feature: str,
) -> None:
    """The accuracy-fairness frontier on the validation rows: every set of thresholds tried,
    the Pareto front, the chosen and the unconstrained points, the constraint's bound."""
    frontier = mitigation.get("frontier") or []
    validation = mitigation.get("validation") or {}
    chosen, unconstrained = validation.get("after"), validation.get("before")
    if not frontier:
        return
    primary = constraints[0] if constraints else None
    metric = primary["metric"] if primary else FairnessMetric.DISPARATE_IMPACT.value
    title = MEASURES[metric][0]
    same = [c for c in constraints if c["metric"] == metric]
    mins = [c["min"] for c in same if c["min"] is not None]
    maxes = [c["max"] for c in same if c["max"] is not None]
    bound_min, bound_max = (max(mins) if mins else None), (min(maxes) if maxes else None)
    bound = " and ".join(
        f"{op} {format_exact(v)}" for op, v in (("≥", bound_min), ("≤", bound_max)) if v is not None
    )

    def where(point: dict[str, Any] | None) -> tuple[float | None, float | None]:
        if not point:
            return None, None
        return (point.get("measures") or {}).get(metric), point.get("accuracy")

    def short(value: float | None) -> str:
        return "n/a" if value is None else approx(value, f"{value:.3g}")

    marked: dict[str, tuple[float | None, float | None]] = {}
    if chosen:
        x, y = where(chosen)
        marked[f"chosen: {short(x)}, accuracy {short(y)}"] = (x, y)
    if unconstrained:
        x, y = where(unconstrained)
        marked[f"unconstrained (0.5 for every group): {short(x)}, accuracy {short(y)}"] = (x, y)
    cautious = (chosen or {}).get("cautious") or {}
    margins = {next(iter(marked)): cautious.get(metric)} if chosen and marked else {}
    higher = metric == FairnessMetric.DISPARATE_IMPACT.value
    drawn = sum(1 for p in frontier if p.get(metric) is not None and p.get("accuracy") is not None)
    section.figure(
        charts.frontier_chart(
            [p.get(metric) for p in frontier],
            [p.get("accuracy") for p in frontier],
            optimal=[bool(p.get("paretoOptimal")) for p in frontier],
            marked=marked,
            margins=margins,
            margin_label="chosen: cautious end of its sampling error",
            bound_min=bound_min,
            bound_max=bound_max,
            bound_label=f"constraint {bound}" if bound else None,
            points_label="a set of thresholds",
            front_label="Pareto front",
            title=f"Accuracy and {title.lower()} for {feature}: {drawn:,} sets of thresholds",
            xlabel=f"{title.lower()} for {feature} ({'higher' if higher else 'lower'} is fairer)",
            ylabel="accuracy (validation rows)",
        ),
        caption=_frontier_caption(
            frontier, chosen, unconstrained, constraints, metric, feature, bound, drawn
        ),
    )


def _frontier_caption(
    frontier: list[dict[str, Any]],
    chosen: dict[str, Any] | None,
    unconstrained: dict[str, Any] | None,
    constraints: list[dict[str, Any]],
    metric: str,
    feature: str,
    bound: str,
    drawn: int,
) -> str:
    title = MEASURES[metric][0].lower()
    text = (
        f"Each point is one set of per-group thresholds for {feature}, measured on the "
        "validation rows they were fitted on, not on the held-out split above. The line joins "
        f"the Pareto-optimal ones: no other point is both more accurate and fairer by {title}."
    )
    if len(frontier) > drawn:
        text += f" {len(frontier) - drawn:,} without a {title} are not drawn."
    if unconstrained:
        value = (unconstrained.get("measures") or {}).get(metric)
        text += (
            f" Unconstrained, the model's own decisions: {title} {_rate(value)}, accuracy "
            f"{_rate(unconstrained.get('accuracy'))}."
        )
    if chosen:
        value = (chosen.get("measures") or {}).get(metric)
        worst = (chosen.get("cautious") or {}).get(metric)
        text += (
            f" Chosen: {title} {_rate(value)}, accuracy {_rate(chosen.get('accuracy'))}; at the "
            f"cautious end of its sampling error (one-sided 95%, the whisker) {_rate(worst)}."
        )
        if constraints and _met(chosen, constraints, "cautious"):
            text += (
                f" It is the most accurate point that meets {bound or 'the constraints'} with "
                "that margin of sampling error, so that the constraint still holds on rows the "
                "thresholds were not fitted on."
            )
            closer = [
                p
                for p in frontier
                if (p.get("accuracy") or 0) > (chosen.get("accuracy") or 0)
                and _met({"measures": p}, constraints, "measures")
            ]
            if closer:
                one = len(closer) == 1
                text += (
                    f" The {len(closer):,} more accurate {'point' if one else 'points'} that "
                    f"{'meets' if one else 'meet'} it as measured {'does' if one else 'do'} not "
                    "with that margin."
                )
        elif constraints:
            text += (
                " No point met the constraints with a margin of sampling error: the chosen one "
                "is the most accurate that meets them as measured, and may miss them on new rows."
            )
    if bound:
        text += f" The dashed line is the constraint, {title} {bound}; the shaded side fails it."
    return text


def _met(point: dict[str, Any], constraints: list[dict[str, Any]], key: str) -> bool:
    """Whether the point's measures (`key`: "measures" or "cautious") meet every constraint."""
    values = point.get(key) or {}
    for c in constraints:
        value = values.get(c["metric"])
        if value is None:
            return False
        if (c["min"] is not None and value < c["min"]) or (
            c["max"] is not None and value > c["max"]
        ):
            return False
    return True


def _split_text(fairness: dict[str, Any], validation_source: str | None) -> str:
    rows = f"{fairness['rows']:,} rows"
    if fairness["split"] == "test":
        return f"the test split: {rows} of the test dataset"
    if validation_source == "out-of-fold":
        return (
            f"the validation split: {rows}, the training rows' out-of-fold predictions (the "
            "models are bagged); no test dataset was given"
        )
    return (
        f"the validation split: {rows} AutoGluon held out from training; no test dataset was given"
    )


def _bound(gate: dict[str, Any]) -> str:
    return " and ".join(
        f"{op} {format_exact(bound)}"
        for op, bound in (("≥", gate.get("min")), ("≤", gate.get("max")))
        if bound is not None
    )


def _rate(value: Any) -> str:
    """A rate or measure in prose: 4 significant digits, marked "≈" when that rounds it."""
    return format_exact(None) if value is None else approx(value, format_rounded(value))


def _fairness_feature(
    report: Report,
    fairness: dict[str, Any],
    name: str,
    data: dict[str, Any],
    gates: list[dict[str, Any]],
) -> None:
    """One sensitive feature (or intersection): its measures, its groups, a chart of rates."""
    groups = data["groups"]
    summary = data["summary"]
    minimum = fairness["minGroupSize"]
    positive = format_exact(fairness["positiveLabel"])
    parts = name.split(JOINT)
    kind = (
        f"Intersection of {', '.join(parts[:-1])} and {parts[-1]}: each group is one "
        "combination of their values. "
        if len(parts) > 1
        else ""
    )
    small = summary["groupsTooSmall"]
    section = report.section(
        f"Fairness by {name}",
        intro=f"{kind}{summary['groupsCompared']:,} of {len(groups):,} groups compared"
        + (
            f"; {small:,} {'group has' if small == 1 else 'groups have'} fewer than "
            f"{minimum:,} rows: {TOO_SMALL}."
            if small
            else "."
        ),
    )
    if summary["groupsCompared"] < 2:
        section.callout(
            f"Fewer than two groups have at least {minimum:,} rows: there is nothing to compare.",
            kind="warning",
            title="Not compared",
        )
    own: dict[str, list[str]] = {}
    for gate in gates:
        if gate["feature"] == name:
            verdict = "passed" if gate["passed"] else "failed"
            own.setdefault(gate["metric"], []).append(f"{_bound(gate)}: {verdict}")
    section.table(
        [
            {
                "measure": title,
                "value": summary.get(key),
                "gate": "; ".join(own.get(key, ["none"])),
                "what it means": _meaning(key, summary, groups),
            }
            for key, (title, _, _) in MEASURES.items()
        ],
        rounded=["value"],
        sortable=False,
    )
    names, hidden = _shown(data)
    if hidden:
        section.note(_hidden_summary(name, fairness, data, names, hidden))
    of = f" ({len(names):,} of {len(groups):,} groups)" if hidden else ""
    drawn = [g for g in names if not groups[g].get("small")]
    if drawn:
        section.figure(
            charts.grouped_bar_chart(
                drawn,
                {
                    "selection rate": [groups[g].get("predictedPositiveRate") for g in drawn],
                    "true positive rate": [groups[g].get("truePositiveRate") for g in drawn],
                    "false positive rate": [groups[g].get("falsePositiveRate") for g in drawn],
                },
                title=f"Rates by {name}{of}",
                ylabel="rate",
            ),
            caption="The rates the measures compare, for each group large enough to compare; "
            "what they are is said under the first table of groups."
            + (
                f" Groups with fewer than {minimum:,} rows are not drawn: {TOO_SMALL}."
                if len(drawn) < len(names)
                else ""
            ),
        )
    _groups_table(section, data, names, positive, of)
    reference = data.get("privilegedGroup")
    metrics = {g: data["metrics"][g] for g in names if g in (data.get("metrics") or {})}
    rows = [{"group": g, **{k: m[k] for k in POST_TRAINING if k in m}} for g, m in metrics.items()]
    if rows:
        used = [k for k in POST_TRAINING if any(k in r for r in rows)]

        def clarify(inner: Section) -> None:
            inner.paragraph(
                f"SageMaker Clarify's post-training metrics: each compared group against the "
                f"reference group {reference} ({data.get('privilegedChosenBy')}), advantaged "
                "minus disadvantaged. DI here is the group's selection rate over the reference "
                "group's, not the lowest over the highest as above."
            )
            inner.table(rows, rounded=True, sortable=False)
            inner.bullet_list([f"{k}: {METRIC_NAMES[k]}" for k in used if k in METRIC_NAMES])

        section.details(f"Metrics against the reference group {reference}{of}", clarify)


def _meaning(key: str, summary: dict[str, Any], groups: dict[str, dict[str, Any]]) -> str:
    """One line on what the measure is, with this feature's groups and their rates."""
    _, definition, parity = MEASURES[key]
    definition = definition[0].upper() + definition[1:]
    if summary.get(key) is None:
        return f"{definition}; not computed: fewer than two groups to compare."
    low, high = summary.get("lowestSelectionGroup"), summary.get("highestSelectionGroup")
    selection = _spread(groups, "predictedPositiveRate")
    if low is not None and high is not None:  # the groups the measure was taken between
        rate = "predictedPositiveRate"
        selection = (low, groups[low][rate], high, groups[high][rate])
    tpr = _spread(groups, "truePositiveRate")
    fpr = _spread(groups, "falsePositiveRate")

    detail = ""
    if key == FairnessMetric.DISPARATE_IMPACT.value and selection:
        detail = f": {_pair(selection, 'over')}"
    elif key == FairnessMetric.STATISTICAL_PARITY_DIFFERENCE.value and selection:
        detail = f": {_pair(selection, 'minus')}"
    elif key == FairnessMetric.EQUAL_OPPORTUNITY_DIFFERENCE.value and tpr:
        detail = f": {_pair(tpr, 'minus')}"
    elif key == FairnessMetric.EQUALIZED_ODDS_DIFFERENCE.value and tpr and fpr:
        detail = (
            f", here {_rate(tpr[3] - tpr[1])} ({_pair(tpr, 'minus')}) and "
            f"{_rate(fpr[3] - fpr[1])} ({_pair(fpr, 'minus')})"
        )
    return f"{definition}{detail}. {parity[0].upper()}{parity[1:]}"


def _pair(spread: tuple[str, float, str, float], operation: str) -> str:
    """ "A's ≈0.29 over B's ≈0.66" (a ratio: lowest first) or "B's ≈0.66 minus A's ≈0.29"."""
    low, low_rate, high, high_rate = spread
    first, second = ((low, low_rate), (high, high_rate))
    if operation == "minus":
        first, second = second, first
    return f"{first[0]}'s {_rate(first[1])} {operation} {second[0]}'s {_rate(second[1])}"


def _spread(groups: dict[str, dict[str, Any]], rate: str) -> tuple[str, float, str, float] | None:
    """The compared groups of the lowest and of the highest `rate`, with their rates."""
    rates = {
        n: g[rate] for n, g in groups.items() if not g.get("small") and g.get(rate) is not None
    }
    if len(rates) < 2:
        return None
    low, high = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)
    return low, rates[low], high, rates[high]


def _roles(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The groups the section names, and why: the reference group, and those of the lowest
    and highest selection, true positive and false positive rates among the compared."""
    summary = data["summary"]
    named = [(data.get("privilegedGroup"), "the reference group")]
    named += [
        (summary.get("lowestSelectionGroup"), "the lowest selection rate"),
        (summary.get("highestSelectionGroup"), "the highest selection rate"),
    ]
    for rate, label in (("truePositiveRate", "true"), ("falsePositiveRate", "false")):
        spread = _spread(data["groups"], rate)
        if spread is not None:
            named += [
                (spread[0], f"the lowest {label} positive rate"),
                (spread[2], f"the highest {label} positive rate"),
            ]
    return [(group, role) for group, role in named if group is not None]


def _shown(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The groups drawn and tabled: the bias report's choice (the largest `TOP_GROUPS`, and the
    reference group), and every group the measures name (`_roles`)."""
    names, hidden = shown_groups(data)
    if not hidden:
        return names, hidden
    extremes = list(dict.fromkeys(g for g, _ in _roles(data) if g in hidden))
    return names + extremes, [g for g in hidden if g not in extremes]


def _hidden_summary(
    name: str, fairness: dict[str, Any], data: dict[str, Any], shown: list[str], hidden: list[str]
) -> str:
    """One sentence on the groups not shown: how many, their rows, how many are too small."""
    groups = data["groups"]
    largest = set(sorted(groups, key=lambda g: (-groups[g]["count"], g))[:TOP_GROUPS])
    roles = _roles(data)
    extras = [
        f"{g} ({' and '.join(role for group, role in roles if group == g)})"
        for g in shown
        if g not in largest
    ]
    rows = sum(int(groups[g].get("count") or 0) for g in hidden)
    small = sum(1 for g in hidden if groups[g].get("small"))
    text = f"{len(groups):,} groups: shown are the {TOP_GROUPS:,} largest by row count"
    if extras:
        text += f" and {', '.join(extras)}"
    text += f"; {len(hidden):,} more groups ({rows:,} rows) are not"
    if small:
        text += f", {small:,} of them with fewer than {fairness['minGroupSize']:,} rows"
    where = "intersections" if JOINT in name else "features"
    return (
        f"{text}. The measures above are over every group large enough to compare; all "
        f"{len(groups):,} groups are in result.json (fairness.{where}.{name}.groups)."
    )


def _groups_table(
    section: Section, data: dict[str, Any], names: list[str], positive: str, of: str
) -> None:
    """The groups' rates in two tables narrow enough to read: selection and errors, then
    calibration and accuracy; each row says when the group is too small to compare."""
    groups = data["groups"]
    summary = data["summary"]
    low, high = summary.get("lowestSelectionGroup"), summary.get("highestSelectionGroup")

    def note(group: str, roles: bool) -> str:
        if groups[group].get("small"):
            return f"⚠ {TOO_SMALL}"
        if not roles:
            return ""
        return ", ".join(
            text
            for text, hit in (
                ("lowest selection", group == low),
                ("highest selection", group == high),
                ("reference", group == data.get("privilegedGroup")),
            )
            if hit
        )

    def rows(columns: dict[str, str], roles: bool = False) -> list[dict[str, Any]]:
        return [
            {
                "group": g,
                "rows": groups[g]["count"],
                **{column: groups[g].get(key) for column, key in columns.items()},
                "note": note(g, roles),
            }
            for g in names
        ]

    errors = {
        "selection rate": "predictedPositiveRate",
        "TPR": "truePositiveRate",
        "FPR": "falsePositiveRate",
        "FNR": "falseNegativeRate",
        "precision": "precision",
    }
    section.table(
        rows(errors, roles=True), caption=f"Groups: selection and errors{of}", rounded=list(errors)
    )
    section.note(
        f"Selection rate: the share of the group's rows predicted {positive}. Of its rows "
        f"labelled {positive}: TPR (true positive rate) the share predicted {positive}, FNR "
        f"(false negative rate) the share not. FPR (false positive rate): of its other rows, "
        f"the share predicted {positive}. Precision: of its rows predicted {positive}, the "
        "share labelled so."
    )
    calibration = {
        "mean score": "meanScore",
        "observed rate": "positiveRate",
        "calibration gap": "calibrationGap",
        "accuracy": "accuracy",
    }
    if not any("meanScore" in groups[g] for g in names):  # a model without probabilities
        calibration = {"observed rate": "positiveRate", "accuracy": "accuracy"}
    table = rows(calibration)
    if not any(row["note"] for row in table):  # no group too small: an empty column
        table = [{k: v for k, v in row.items() if k != "note"} for row in table]
    section.table(
        table,
        caption=f"Groups: calibration and accuracy{of}",
        rounded=list(calibration),
        sortable=False,
    )
    section.note(
        f"Mean score: the model's average predicted probability of {positive}; observed rate: "
        f"the share of the group's rows labelled {positive}; calibration gap: the first minus "
        "the second (above 0, the model over-estimates the group). Accuracy: the share of the "
        "group's rows predicted right."
    )
