"""The train stage's fairness step: per-group thresholds when asked for, then the model's
fairness on held-out rows, before and after.

Held-out rows are the test set when there is one, else AutoGluon's own validation rows
(holdout, or out-of-fold predictions when bagged), read back by their index from the rows as
they were read (a sensitive column may be one the model was not given). Thresholds are fitted
on the validation rows only, never on the test set, so that the test set still tells what the
constrained model does on data it has not seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairpilot.api.fairness import FairnessMethod, FairnessOptions
from fairpilot_jobs.errors import JobError
from fairpilot_jobs.fairness import measure
from fairpilot_jobs.thresholds import decide, fit_thresholds, group_labels

log = logging.getLogger(__name__)


@dataclass
class Scores:
    """Rows as read, their labels, and the model's class probabilities."""

    rows: pd.DataFrame
    truth: pd.Series
    probability: pd.DataFrame
    split: str


def validation_scores(predictor: Any, raw: pd.DataFrame) -> Scores | None:
    x_val, y_val = predictor.load_data_internal("val")
    if x_val is not None and y_val is not None and len(y_val):
        probability = predictor.predict_proba(x_val, transform_features=False)
        truth = predictor.transform_labels(y_val, inverse=True)
    else:
        try:  # bagged: out-of-fold predictions of the training rows
            probability = predictor.predict_proba_oof()
            _, y_train = predictor.load_data_internal("train", return_X=False)
        except Exception:
            return None
        truth = predictor.transform_labels(y_train.loc[probability.index], inverse=True)
    return Scores(
        raw.loc[probability.index], pd.Series(np.asarray(truth)), probability, "validation"
    )


def heldout_scores(
    predictor: Any, raw: pd.DataFrame, raw_test: pd.DataFrame | None, test: pd.DataFrame | None
) -> Scores | None:
    if test is not None and raw_test is not None:
        probability = predictor.predict_proba(test)
        return Scores(raw_test, pd.Series(np.asarray(test[predictor.label])), probability, "test")
    return validation_scores(predictor, raw)


def positive_label(predictor: Any, options: FairnessOptions) -> Any | None:
    """The favourable class, as the model spells it; None when there is none to take."""
    wanted = options.positive_label
    if wanted is None:
        return predictor.positive_class if predictor.problem_type == "binary" else None
    classes = list(predictor.class_labels)
    if str(wanted) not in map(str, classes):
        raise JobError(
            "UnknownPositiveLabel",
            f"fairness.positiveLabel {wanted!r} is not a class of the model ({classes})",
        )
    return classes[[str(c) for c in classes].index(str(wanted))]


def fairness_step(
    predictor: Any,
    options: FairnessOptions,
    raw: pd.DataFrame,
    raw_test: pd.DataFrame | None,
    test: pd.DataFrame | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the fairness block of the result, the decision thresholds to store with the model)."""
    if predictor.problem_type == "regression":
        return {"measured": False, "message": "fairness is measured for classifiers only"}, None
    positive = positive_label(predictor, options)
    if positive is None:
        return {
            "measured": False,
            "message": "a multiclass model needs fairness.positiveLabel: the favourable class",
        }, None
    fitted = None
    if options.method is FairnessMethod.THRESHOLDS:
        fitted = _fit(predictor, options, raw, positive)
    scores = heldout_scores(predictor, raw, raw_test, test)
    if scores is None:
        return {"measured": False, "message": "no held-out rows to measure on"}, None
    rows = scores.rows.reset_index(drop=True)
    p_positive = np.asarray(scores.probability[positive], dtype="float64")
    default = np.asarray(predictor.predict_from_proba(scores.probability))
    before = measure(rows, scores.truth, pd.Series(default), pd.Series(p_positive), positive,
                     options, scores.split)  # fmt: skip
    if fitted is None:
        return {"measured": True, **before}, None
    feature = fitted["feature"]
    negative = next(c for c in predictor.class_labels if c != positive)
    chosen = decide(p_positive, group_labels(rows[feature]), fitted["thresholds"])
    decided = np.where(chosen, positive, negative)
    after = measure(rows, scores.truth, pd.Series(decided), pd.Series(p_positive), positive,
                    options, scores.split)  # fmt: skip
    truth = scores.truth.astype(str).to_numpy()
    mitigation = {
        **fitted,
        "heldout": {
            "split": scores.split,
            "before": _outcome(before, truth, default),
            "after": _outcome(after, truth, decided),
        },
    }
    thresholds = {
        "feature": feature,
        "positiveLabel": positive if isinstance(positive, int | float | bool) else str(positive),
        "thresholds": fitted["thresholds"],
        "default": 0.5,
    }
    return {"measured": True, **after, "before": before, "mitigation": mitigation}, thresholds


def outcome(
    predictor: Any,
    options: FairnessOptions,
    raw: pd.DataFrame,
    raw_test: pd.DataFrame | None,
    test: pd.DataFrame | None,
) -> dict[str, Any] | None:
    """A model's own decisions on the held-out rows: accuracy, ROC AUC and each feature's
    measures (the reweighing comparison: the unmitigated baseline and the reweighed model)."""
    from sklearn.metrics import roc_auc_score

    positive = positive_label(predictor, options)
    scores = heldout_scores(predictor, raw, raw_test, test)
    if positive is None or scores is None:
        return None
    rows = scores.rows.reset_index(drop=True)
    p_positive = np.asarray(scores.probability[positive], dtype="float64")
    decided = np.asarray(predictor.predict_from_proba(scores.probability))
    measured = measure(rows, scores.truth, pd.Series(decided), pd.Series(p_positive), positive,
                       options.model_copy(update={"gates": []}), scores.split)  # fmt: skip
    truth = scores.truth.astype(str).to_numpy()
    found = _outcome(measured, truth, decided)
    is_positive = truth == str(positive)
    if 0 < is_positive.sum() < len(is_positive):
        found["rocAuc"] = float(roc_auc_score(is_positive, p_positive))
    return {"split": scores.split, **found}


def _fit(predictor: Any, options: FairnessOptions, raw: pd.DataFrame, positive: Any) -> dict:
    validation = validation_scores(predictor, raw)
    if validation is None:
        raise JobError(
            "NoValidationRows",
            "fairness.method thresholds fits on AutoGluon's validation rows and this model has "
            "none (a preset that bags without out-of-fold predictions)",
        )
    feature = options.constrained_feature()
    assert feature is not None  # the spec's validation: thresholds come with constraints
    if feature not in validation.rows.columns:
        raise JobError(
            "SensitiveFeatureNotFound", f"fairness.constraints feature {feature!r} is not a column"
        )
    fitted = fit_thresholds(
        predictor,
        validation.rows,
        np.asarray(validation.probability[positive], dtype="float64"),
        validation.truth.astype(str).to_numpy() == str(positive),
        feature,
        options.constraints,
        options,
    )
    log.info("per-group thresholds for %s: %s", feature, fitted["thresholds"])
    return fitted


def _outcome(measured: dict[str, Any], truth: np.ndarray, decided: np.ndarray) -> dict[str, Any]:
    """Accuracy and each feature's measures, for the before/after comparison."""
    return {
        "accuracy": float((truth == decided.astype(str)).mean()),
        "features": {name: f["summary"] for name, f in measured["features"].items()},
    }
