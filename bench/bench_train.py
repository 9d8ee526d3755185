"""Train on Adult with a 60 s budget: `fairpilot-job train` against plain AutoGluon.

Both run in this process's machine, one after the other, on adult.data (train) and
adult.test (test). Reported: test ROC AUC of each, their difference, and each one's wall time
against the budget (ours measured around the whole `fairpilot-job` command: start-up, data
loading, training, metrics, model upload and report included).

    python bench/bench_train.py [--budget 60] [--out bench/results/train.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import describe, run_stage

from fairpilot.datasets import export_adult


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--gpus", type=int, default=0, help="GPUs for both sides (needs CUDA)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/train.json"))
    args = parser.parse_args()

    import pandas as pd
    from autogluon.tabular import TabularPredictor

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp_path = Path(tmp)
        paths = export_adult(tmp_path / "data")
        spec = {
            "dataset": {"uri": f"file://{paths['train']}"},
            "testDataset": {"uri": f"file://{paths['test']}"},
            "target": "income",
            "evalMetric": "roc_auc",
            "timeLimitSeconds": args.budget,
            "resources": {"gpu": args.gpus},
        }
        started = time.perf_counter()
        ours = run_stage("train", spec, tmp_path)
        ours_wall = time.perf_counter() - started

        train, test = pd.read_csv(paths["train"]), pd.read_csv(paths["test"])
        started = time.perf_counter()
        plain = TabularPredictor(
            label="income", eval_metric="roc_auc", path=str(tmp_path / "plain"), verbosity=0
        )
        plain.fit(train, time_limit=args.budget, num_gpus=args.gpus)
        plain_fit_wall = time.perf_counter() - started
        plain_auc = float(plain.evaluate(test, silent=True)["roc_auc"])

    ours_auc = ours["metrics"]["test"]["roc_auc"]
    figures = {
        "machine": describe("autogluon.tabular", "lightgbm", "xgboost", "catboost", "torch"),
        "budgetSeconds": args.budget,
        "ours": {
            "testRocAuc": ours_auc,
            "wallSeconds": round(ours_wall, 2),
            "fitSeconds": ours["fitSeconds"],
            "overBudget": round(ours_wall / args.budget - 1, 4),
            "bestModel": ours["bestModel"],
            "gpu": ours["gpu"],
        },
        "plainAutoGluon": {
            "testRocAuc": plain_auc,
            "fitWallSeconds": round(plain_fit_wall, 2),
            "bestModel": plain.model_best,
        },
        "aucDifference": round(ours_auc - plain_auc, 5),
        "targets": {
            "testRocAuc": ">= 0.925",
            "aucDifference": "|d| <= 0.003",
            "overBudget": "<= 0.10",
        },
        "met": {
            "testRocAuc": ours_auc >= 0.925,
            "aucDifference": abs(ours_auc - plain_auc) <= 0.003,
            "overBudget": ours_wall <= 1.10 * args.budget,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        json.dumps(
            {k: figures[k] for k in ("ours", "plainAutoGluon", "aucDifference", "met")}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
