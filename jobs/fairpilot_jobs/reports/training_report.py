"""The train stage's HTML report: leaderboard, metrics, validation verdict, model card."""

from __future__ import annotations

from typing import Any

from fairpilot.api import TrainJobSpec
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import Report


def build_training_report(result: dict[str, Any], spec: TrainJobSpec) -> str:
    best = result["bestModel"]
    report = Report("Training run", subtitle=f"{result['problemType']} model for {spec.target}")
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
        }
    )
    verdict = result["validation"]
    overview.callout(
        verdict["message"],
        kind="info" if not verdict["checked"] else ("success" if verdict["passed"] else "danger"),
        title="Validation",
    )
    if best["members"]:
        overview.figure(
            charts.bar_chart(
                list(best["members"]), list(best["members"].values()), title="Ensemble weights"
            ),
            caption=f"{best['name']} averages these models with these weights.",
        )
    board = report.section("Leaderboard", intro="Every model AutoGluon trained, best first.")
    board.table(result["leaderboard"])
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
    figures = report.section("Metrics")
    figures.table(
        [
            {"metric": name, "validation": validation.get(name), "test": test.get(name)}
            for name in sorted(set(validation) | set(test))
        ]
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
