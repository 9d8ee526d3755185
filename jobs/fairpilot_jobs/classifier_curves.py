"""A binary classifier's diagnostics on held-out rows: confusion matrix, ROC and
precision-recall curves, and a reliability (calibration) table, for the training report.

Computed with scikit-learn from the predicted probabilities the train stage already makes; the
curves are thinned to at most `MAX_POINTS` points (the first and last always kept, every kept
point one of scikit-learn's), so that `result.json` and the report stay small on any data.
The areas (ROC AUC, average precision) are computed on the full curves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_POINTS = 101  # per curve
CALIBRATION_BINS = 10


def thin(count: int, limit: int = MAX_POINTS) -> list[int]:
    """Indices of at most `limit` points spread evenly over `count`, the first and last kept."""
    if count <= limit:
        return list(range(count))
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def _floats(values: Any, keep: list[int]) -> list[float]:
    array = np.asarray(values, dtype="float64")
    return [float(array[i]) for i in keep]


def binary_curves(
    truth: Any,
    positive_probability: Any,
    positive_label: Any,
    *,
    threshold: float = 0.5,
    split: str = "test",
) -> dict[str, Any]:
    """The diagnostics of P(positive) against the true labels (`positive_label` is positive).

    The confusion matrix counts a row as predicted positive when its probability is at least
    `threshold` (AutoGluon's decision threshold), rows: actual, columns: predicted.
    """
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import (
        average_precision_score,
        confusion_matrix,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    actual = (np.asarray(truth, dtype=object) == positive_label).astype(int)
    scores = np.asarray(positive_probability, dtype="float64")
    keep = np.isfinite(scores)
    actual, scores = actual[keep], scores[keep]
    predicted = (scores >= threshold).astype(int)
    (tn, fp), (fn, tp) = confusion_matrix(actual, predicted, labels=[0, 1]).tolist()
    out: dict[str, Any] = {
        "split": split,
        "rows": int(actual.size),
        "positiveLabel": positive_label.item()
        if isinstance(positive_label, np.generic)
        else positive_label,
        "threshold": float(threshold),
        "confusionMatrix": {
            "truePositive": tp,
            "falsePositive": fp,
            "trueNegative": tn,
            "falseNegative": fn,
        },
    }
    if actual.min(initial=1) == actual.max(initial=0):  # one class only: no curves
        return out
    fpr, tpr, _ = roc_curve(actual, scores)
    roc_keep = thin(len(fpr))
    out["roc"] = {
        "falsePositiveRate": _floats(fpr, roc_keep),
        "truePositiveRate": _floats(tpr, roc_keep),
        "auc": float(roc_auc_score(actual, scores)),
    }
    precision, recall, _ = precision_recall_curve(actual, scores)
    pr_keep = thin(len(precision))
    out["precisionRecall"] = {
        "recall": _floats(recall, pr_keep),
        "precision": _floats(precision, pr_keep),
        "averagePrecision": float(average_precision_score(actual, scores)),
        "baseRate": float(actual.mean()),
    }
    observed, mean_predicted = calibration_curve(
        actual, scores, n_bins=CALIBRATION_BINS, strategy="uniform"
    )
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], scores), minlength=CALIBRATION_BINS)
    out["calibration"] = {
        "bins": CALIBRATION_BINS,
        "meanPredicted": [float(v) for v in mean_predicted],
        "observedRate": [float(v) for v in observed],
        "rows": [int(c) for c in counts if c > 0],
        "brierScore": float(np.mean((scores - actual) ** 2)),
    }
    return out
