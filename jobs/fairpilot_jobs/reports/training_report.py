"""The train stage's HTML report: leaderboard, metrics, validation verdict, model card."""

from __future__ import annotations

from typing import Any

from fairpilot.api import TrainJobSpec
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import Report


def build_training_report(result: dict[str, Any], spec: TrainJobSpec) -> str:
    best = result["bestModel"]
    metadata = result["model"].get("metadata") or {}
    named = f" · model {metadata['model_id']} {metadata.get('version', '')}" if metadata else ""
    report = Report(
        "Training run",
        subtitle=f"{result['problemType']} model for {spec.target}{named}".rstrip(),
        meta={"model": result["model"]["uri"]},
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
    )
    ready = result.get("productionReady") or {}
    if ready:
        overview.callout(
            ready["message"],
            kind="success" if ready["ready"] else "warning",
            title="Production-ready" if ready["ready"] else "Not production-ready",
        )
    if best["members"]:
        overview.figure(
            charts.bar_chart(
                list(best["members"]), list(best["members"].values()), title="Ensemble weights"
            ),
            caption=f"{best['name']} averages these models with these weights.",
        )
    board = report.section("Leaderboard", intro="Every model AutoGluon trained, best first.")
    board.table(result["leaderboard"], rounded=True)
    scores = [r for r in result["leaderboard"] if r.get("scoreValidation") is not None]
    if scores:
        board.figure(
            charts.bar_chart(
                [r["model"] for r in scores],
                [r["scoreValidation"] for r in scores],
                title=f"Validation score ({metric}, higher is better)",
                highlight=[best["name"]],
            )
        )
    _models_section(report, result)
    figures = report.section("Metrics")
    figures.table(
        [
            {"metric": name, "validation": validation.get(name), "test": test.get(name)}
            for name in sorted(set(validation) | set(test))
        ],
        rounded=True,
    )
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
