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
from fairpilot.errors import JobError
from fairpilot_jobs.fairness import measure, plain_label
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


@dataclass
class Decisions:
    """One model's decisions on the held-out rows, and their fairness."""

    scores: Scores
    positive: Any
    probability: np.ndarray  # P(positive) per row
    decided: np.ndarray  # the class decided per row
    measured: dict[str, Any]  # `measure`'s block

    @property
    def truth(self) -> np.ndarray:
        return self.scores.truth.astype(str).to_numpy()


def own_decisions(
    predictor: Any, options: FairnessOptions, scores: Scores, positive: Any
) -> Decisions:
    """The model's own decisions (its decision threshold), measured."""
    probability = np.asarray(scores.probability[positive], dtype="float64")
    decided = np.asarray(predictor.predict_from_proba(scores.probability))
    return _measured(scores, positive, probability, decided, options)


def _measured(
    scores: Scores,
    positive: Any,
    probability: np.ndarray,
    decided: np.ndarray,
    options: FairnessOptions,
) -> Decisions:
    rows = scores.rows.reset_index(drop=True)
    measured = measure(rows, scores.truth, pd.Series(decided), pd.Series(probability), positive,
                       options, scores.split)  # fmt: skip
    return Decisions(scores, positive, probability, decided, measured)


def fairness_step(
    predictor: Any,
    options: FairnessOptions,
    raw: pd.DataFrame,
    raw_test: pd.DataFrame | None,
    test: pd.DataFrame | None,
    baseline: Any | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the fairness block of the result, the decision thresholds to store with the model).

    `baseline`: a model trained on the same rows without reweighing's weights, measured on the
    same held-out rows beside the reweighed `predictor` (`reweighing` in the block).
    """
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
    own = own_decisions(predictor, options, scores, positive)
    block: dict[str, Any] = {"measured": True, **own.measured}
    # The baseline is fitted like `predictor`, so it has held-out rows when `predictor` has;
    # were it without, there would be nothing to set beside the reweighed model's measures.
    baseline_scores = (
        heldout_scores(baseline, raw, raw_test, test)
        if baseline is not None and baseline.model_names()
        else None
    )
    if baseline_scores is not None:
        unweighted = own_decisions(baseline, options, baseline_scores, positive)
        block["reweighing"] = {
            "baseline": _side(unweighted),
            "reweighed": _side(own),
            "budget": "two equal fits: the reweighed model and an unweighted baseline",
        }
    if fitted is None:
        return block, None
    feature = fitted["feature"]
    negative = next(c for c in predictor.class_labels if c != positive)
    chosen = decide(own.probability, group_labels(own.scores.rows[feature]), fitted["thresholds"])
    after = _measured(scores, positive, own.probability, np.where(chosen, positive, negative),
                      options)  # fmt: skip
    mitigation = {
        **fitted,
        "heldout": {"split": scores.split, "before": _outcome(own), "after": _outcome(after)},
    }
    thresholds = {
        "feature": feature,
        "positiveLabel": plain_label(positive),
        "thresholds": fitted["thresholds"],
        "default": 0.5,
    }
    # What ships is measured at the top; the model's own decisions are `before`.
    block = {**block, **after.measured, "before": own.measured, "mitigation": mitigation}
    return block, thresholds


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


def _outcome(decisions: Decisions) -> dict[str, Any]:
    """Accuracy and each feature's measures, for the before/after comparison."""
    return {
        "accuracy": float((decisions.truth == decisions.decided.astype(str)).mean()),
        "features": {name: f["summary"] for name, f in decisions.measured["features"].items()},
    }


def _side(decisions: Decisions) -> dict[str, Any]:
    """One side of the reweighing comparison: the split, accuracy, ROC AUC and the measures."""
    from sklearn.metrics import roc_auc_score

    found = {"split": decisions.scores.split, **_outcome(decisions)}
    is_positive = decisions.truth == str(decisions.positive)
    if 0 < is_positive.sum() < len(is_positive):
        found["rocAuc"] = float(roc_auc_score(is_positive, decisions.probability))
    return found
