"""The training report's classifier diagnostics and score axes (issue 17, section 1).

`classifier_curves.binary_curves` is checked against scikit-learn on random predictions: the
confusion matrix, the areas, every kept curve point one of scikit-learn's, the reliability
table; the report draws them, shows the validation scores on an axis fitted to them (a dot
plot, not bars from zero) and writes the numbers of a gate's message rounded, every digit in
the tooltip.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from support.training_results import SPEC, section_html, text_of, training_result

from fairpilot_jobs.classifier_curves import MAX_POINTS, binary_curves, thin
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import Report
from fairpilot_jobs.reports.training_report import _diagnostics_section, build_training_report


def predictions(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.where(rng.uniform(size=rows) < 0.3, ">50K", "<=50K")
    score = np.clip(rng.normal(0.3 + 0.35 * (truth == ">50K"), 0.2), 0, 1)
    return truth, score


@pytest.mark.parametrize(("rows", "seed", "threshold"), [(50, 0, 0.5), (5000, 1, 0.37)])
def test_curves_match_scikit_learn(rows: int, seed: int, threshold: float) -> None:
    truth, score = predictions(rows, seed)
    actual = (truth == ">50K").astype(int)
    out = binary_curves(truth, score, ">50K", threshold=threshold, split="test")
    (tn, fp), (fn, tp) = confusion_matrix(actual, (score >= threshold).astype(int))
    assert out["confusionMatrix"] == {
        "truePositive": tp,
        "falsePositive": fp,
        "trueNegative": tn,
        "falseNegative": fn,
    }
    assert out["rows"] == rows and out["split"] == "test" and out["threshold"] == threshold
    assert out["roc"]["auc"] == roc_auc_score(actual, score)
    fpr, tpr, _ = roc_curve(actual, score)
    points = set(zip(fpr.tolist(), tpr.tolist(), strict=True))
    kept = list(zip(out["roc"]["falsePositiveRate"], out["roc"]["truePositiveRate"], strict=True))
    assert set(kept) <= points and kept[0] == (fpr[0], tpr[0]) and kept[-1] == (fpr[-1], tpr[-1])
    assert len(kept) <= MAX_POINTS
    pr = out["precisionRecall"]
    assert pr["averagePrecision"] == average_precision_score(actual, score)
    assert pr["baseRate"] == actual.mean()
    precision, recall, _ = precision_recall_curve(actual, score)
    assert set(zip(pr["recall"], pr["precision"], strict=True)) <= set(
        zip(recall.tolist(), precision.tolist(), strict=True)
    )
    assert len(pr["recall"]) <= MAX_POINTS
    observed, predicted = calibration_curve(actual, score, n_bins=10)
    calibration = out["calibration"]
    assert calibration["observedRate"] == observed.tolist()
    assert calibration["meanPredicted"] == predicted.tolist()
    assert sum(calibration["rows"]) == rows and len(calibration["rows"]) == len(observed)
    assert calibration["brierScore"] == pytest.approx(np.mean((score - actual) ** 2))


def test_one_class_has_a_matrix_but_no_curves() -> None:
    out = binary_curves(np.array(["no"] * 5), np.linspace(0, 1, 5), "yes")
    assert out["confusionMatrix"]["trueNegative"] + out["confusionMatrix"]["falsePositive"] == 5
    assert "roc" not in out and "calibration" not in out


def test_thin_keeps_ends_and_bound() -> None:
    assert thin(5) == [0, 1, 2, 3, 4]
    kept = thin(10_000)
    assert kept[0] == 0 and kept[-1] == 9_999 and len(kept) <= MAX_POINTS
    assert kept == sorted(set(kept))


def test_close_scores_are_told_apart() -> None:
    assert charts.distinct_labels([0.934, 0.928]) == ["0.934", "0.928"]
    assert charts.distinct_labels([0.92811, 0.92789]) == ["≈0.9281", "≈0.9279"]
    assert charts.distinct_labels([0.9281001, 0.9281002]) == ["0.9281001", "0.9281002"]
    svg = charts.dot_plot(["a", "b"], [0.934, 0.928], title="scores")
    assert svg.startswith("<svg ") and 'aria-label="scores"' in svg


def test_callout_rounds_the_numbers_it_is_told() -> None:
    body = (
        Report("t")
        .section("s")
        .callout(
            "roc_auc is 0.9278990532359533, bound >= 0.85; 10.92789905323595331 stays",
            rounded=[0.9278990532359533, 0.85],
        )
        ._body()
    )
    assert '<span class="rounded-value" title="0.9278990532359533">≈0.9279</span>' in body
    assert "bound &gt;= 0.85;" in body  # exact already: left as it is
    assert "10.92789905323595331" in body  # not a match inside a longer number


def diagnosed() -> dict[str, Any]:
    truth, score = predictions(900, 3)
    result = training_result(None)
    result["validation"]["value"] = 0.9278990532359533
    result["validation"]["message"] = "roc_auc on the test split is 0.9278990532359533, ..."
    result["diagnostics"] = binary_curves(truth, score, ">50K", split="test")
    return result


def test_report_draws_the_diagnostics() -> None:
    result = diagnosed()
    html = build_training_report(result, SPEC)
    section = section_html(html, "Classifier diagnostics")
    titles = re.findall(r'aria-label="([^"]+)"', section)
    assert titles == [
        "Confusion matrix (test split)",
        "ROC curve (test split)",
        "Precision-recall curve (test split)",
        "Calibration (test split)",
    ]
    cm = result["diagnostics"]["confusionMatrix"]
    text = text_of(section)
    assert f"{cm['truePositive']:,} true and {cm['falsePositive']:,} false positives" in text
    assert "Reliability table" in text
    # The verdict's number rounded in view, every digit in the tooltip only.
    verdict = text_of(section_html(html, "Result"))
    assert "0.9278990532359533" not in verdict and "≈0.9279" in verdict
    assert 'title="0.9278990532359533"' in section_html(html, "Result")
    # The validation scores as dots on a fitted axis, not bars from zero.
    board = section_html(html, "Leaderboard")
    assert 'aria-label="Validation score (roc_auc, higher is better)"' in board
    assert "not 0" in board or "tell them apart" in board


def test_the_confusion_matrix_says_when_the_model_ships_with_other_decisions() -> None:
    """Per-group thresholds change the decisions after the model's own threshold: the matrix
    (the model's own decisions) must not pass for the decisions it ships with."""
    plain = text_of(
        section_html(build_training_report(diagnosed(), SPEC), "Classifier diagnostics")
    )
    assert "before the per-group thresholds" not in plain
    report = Report(title="t")
    _diagnostics_section(report, diagnosed()["diagnostics"], thresholded=True)
    said = text_of(report.render())
    assert "the model's own decisions, before the per-group thresholds it ships with" in said


def test_no_diagnostics_no_section() -> None:
    html = build_training_report(training_result(None), SPEC)
    assert "Classifier diagnostics" not in html
