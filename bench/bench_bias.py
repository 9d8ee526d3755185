"""Bias metrics on 1,000,000 rows x 3 sensitive features: FairPilot against fairlearn.

Rows are sampled with replacement from Adult (sex, race, relationship as sensitive features;
income as label; a fixed rule as the prediction). Both sides compute the same per-group
figures (count, label positive rate, predicted positive rate, TPR, FPR, FNR, accuracy) for all
three features in the same run; best of --repeat. Ours includes turning the string columns
into group codes and every Clarify metric besides. The numbers must be identical (1e-9).

    python bench/bench_bias.py [--rows 1000000] [--repeat 3] [--out bench/results/bias.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import describe

from fairpilot.datasets import adult
from fairpilot_jobs.bias.metrics import feature_bias

FEATURES = ["sex", "race", "relationship"]
RATES = [
    "count",
    "positiveRate",
    "predictedPositiveRate",
    "truePositiveRate",
    "falsePositiveRate",
    "falseNegativeRate",
    "accuracy",
]


def ours(frame, label, predicted) -> dict:
    return {f: feature_bias(frame[f], label, predicted).to_dict()["groups"] for f in FEATURES}


def fairlearn(frame, label, predicted) -> dict:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    out = {}
    for feature in FEATURES:
        by_group = MetricFrame(
            metrics={
                "count": count,
                "predictedPositiveRate": selection_rate,
                "truePositiveRate": true_positive_rate,
                "falsePositiveRate": false_positive_rate,
                "falseNegativeRate": false_negative_rate,
                "accuracy": accuracy_score,
            },
            y_true=label,
            y_pred=predicted,
            sensitive_features=frame[feature],
        ).by_group
        label_rate = MetricFrame(
            metrics=selection_rate, y_true=label, y_pred=label, sensitive_features=frame[feature]
        ).by_group
        out[feature] = {
            str(group): {**row.to_dict(), "positiveRate": label_rate[group]}
            for group, row in by_group.iterrows()
        }
    return out


def best_of(repeat: int, function, *args):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - started)
    return min(times), times, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/bias.json"))
    args = parser.parse_args()

    train = adult()[0]
    frame = train.sample(n=args.rows, replace=True, random_state=0).reset_index(drop=True)
    label = (frame["income"] == ">50K").to_numpy()
    predicted = ((frame["education_num"] >= 13) | (frame["capital_gain"] > 5000)).to_numpy()

    ours_best, ours_all, ours_result = best_of(args.repeat, ours, frame, label, predicted)
    ref_best, ref_all, ref_result = best_of(args.repeat, fairlearn, frame, label, predicted)

    diff = 0.0
    for feature in FEATURES:
        assert set(ours_result[feature]) == set(ref_result[feature]), feature
        for group, stats in ref_result[feature].items():
            for rate in RATES:
                diff = max(diff, abs(float(ours_result[feature][group][rate]) - float(stats[rate])))
    if diff > 1e-9:
        raise SystemExit(f"numbers differ from fairlearn by {diff}")

    figures = {
        "machine": describe("fairlearn", "scikit-learn"),
        "rows": args.rows,
        "sensitiveFeatures": FEATURES,
        "groups": {f: len(ours_result[f]) for f in FEATURES},
        "oursSeconds": round(ours_best, 4),
        "oursAllRuns": [round(t, 4) for t in ours_all],
        "fairlearnSeconds": round(ref_best, 4),
        "fairlearnAllRuns": [round(t, 4) for t in ref_all],
        "speedup": round(ref_best / ours_best, 1),
        "maxAbsDifference": diff,
        "targets": {"speedup": ">= 50", "maxAbsDifference": "<= 1e-9"},
        "met": {"speedup": ref_best / ours_best >= 50, "maxAbsDifference": diff <= 1e-9},
        "note": (
            "ours also computes every Clarify metric (CI..TE) in the timed call; "
            "fairlearn only the rates"
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
