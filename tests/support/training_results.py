"""A train stage's result.json built by hand (no AutoGluon), and reading its report's
sections back: shared by the training report's tests."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from fairpilot.api import TrainJobSpec
from fairpilot_jobs.fairness import gate_verdict
from fairpilot_jobs.train import production_readiness

SPEC = TrainJobSpec.model_validate(
    {"dataset": {"uri": "file:///data/adult.csv"}, "target": "income", "modelId": "adult-income"}
)


def training_result(fairness: dict[str, Any] | None) -> dict[str, Any]:
    """A train stage result.json as `run_train` writes it, around `fairness`."""
    validation = {
        "checked": True,
        "passed": True,
        "metric": "roc_auc",
        "split": "test",
        "value": 0.9012345,
        "min": 0.85,
        "max": None,
        "message": "roc_auc on the test split is 0.9012345, which meets the bound >= 0.85",
    }
    ready = production_readiness(
        {"validationThreshold": validation, "fairness": gate_verdict(fairness)}
    )
    best = {
        "name": "WeightedEnsemble_L2",
        "type": "WeightedEnsembleModel",
        "members": {"LightGBM": 0.6, "CatBoost": 0.4},
    }
    metrics = {
        "training": {"roc_auc": 0.95, "accuracy": 0.88},
        "validation": {"roc_auc": 0.91, "accuracy": 0.86},
        "test": {"roc_auc": 0.9012345, "accuracy": 0.857},
    }
    return {
        "problemType": "binary",
        "evalMetric": "roc_auc",
        "rows": {"train": 30_162, "test": 900, "droppedMissingLabel": 0},
        "sampleWeights": None,
        "timeLimitSeconds": 120,
        "fitSeconds": 61.25,
        "timing": None,
        "modelFamilies": [],
        "gpu": {"requested": 0, "used": 0},
        "bestModel": best,
        "leaderboard": [
            {"model": "WeightedEnsemble_L2", "scoreTest": 0.9012345, "scoreValidation": 0.91},
            {"model": "LightGBM", "scoreTest": 0.899, "scoreValidation": 0.905},
            {"model": "CatBoost", "scoreTest": 0.897, "scoreValidation": 0.903},
        ],
        "metrics": metrics,
        "validationSource": "holdout",
        "validation": validation,
        "fairness": fairness,
        "productionReady": ready,
        "model": {
            "uri": "file:///out/model",
            "sizeMb": 12.5,
            "metadata": {
                "model_id": "adult-income",
                "version": "v1",
                "framework": "other",
                "algorithm": "WeightedEnsemble_L2 (LightGBM 0.60, CatBoost 0.40)",
                "training_dataset": "file:///data/adult.csv",
            },
        },
        "modelDigest": "sha256:" + "0" * 64,
    }


def section_html(html: str, title: str) -> str:
    """The HTML of the section whose heading is `title`."""
    match = re.search(
        rf"<section id=\"[^\"]+\"><h2>{re.escape(title)}</h2>(.*?)</section>", html, re.DOTALL
    )
    assert match, f"no section {title!r}"
    return match.group(1)


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))
