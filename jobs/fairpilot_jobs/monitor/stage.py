"""The monitor stage: one window of a ModelMonitor.

The model is loaded (digest-verified) and its training data sampled as the reference. The
window's batches are read one by one (a bad batch is rejected and listed, the others measured;
see `window`). Then:

- data drift per feature (`drift.data_drift`), a feature drifted at PSI >= thresholds.psi or,
  when thresholds.pValue is set, at a KS / chi-squared p-value below it;
- prediction drift: the model's output on the reference rows against its output on the window:
  the probability of the positive class (binary), the predicted class (multiclass), the
  predicted value (regression), through the same statistics as a feature named "(prediction)";
- ADWIN on the model's score stream ("(score)": DriftDetected) and, where rows carry the
  label, on its per-row error ("(error)": PerformanceDegraded when it rose);
- bias drift: each sensitive feature's disparate impact, statistical parity difference and
  (labelled rows) equal opportunity difference, measured by `fairness.measure` as the train
  stage measured them, against their post-training values;
- performance: the eval metric on the labelled rows, by AutoGluon's own scorer, against the
  held-out score.

A window of fewer than thresholds.minRows rows is measured and shown, but raises no alert.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairpilot import artifacts
from fairpilot.api import MonitorJobSpec
from fairpilot.api.fairness import FairnessOptions
from fairpilot.api.monitor import Baseline
from fairpilot.errors import JobError
from fairpilot_jobs.fairness import measure, plain_label
from fairpilot_jobs.models import load_predictor, predict
from fairpilot_jobs.monitor import drift
from fairpilot_jobs.monitor.window import (
    ERROR,
    PREDICTION,
    SCORE,
    adwin_alert,
    adwin_stream,
    drift_alerts,
    drift_verdict,
    empty_window_message,
    fairness_changes,
    finite,
    history,
    newest,
    performance_alert,
    performance_bound,
    plain,
    prediction_alert,
    read_window,
    relative_worsening,
    spread_interval,
    summary,
)
from fairpilot_jobs.tables import read_table, require_columns

log = logging.getLogger(__name__)

MAX_REFERENCE_ROWS = 50_000


@dataclass
class Outputs:
    """What the model says about some rows."""

    values: pd.Series  # compared for prediction drift
    score: np.ndarray  # ADWIN's score stream
    own: pd.Series  # AutoGluon's own predicted class (or value): the performance's
    proba: pd.DataFrame | None  # class probabilities (classifiers)


def model_outputs(predictor: Any, rows: pd.DataFrame, positive: Any) -> Outputs:
    kind = predictor.problem_type
    if kind == "regression":
        predicted = pd.Series(np.asarray(predictor.predict(rows), dtype="float64"))
        return Outputs(predicted, predicted.to_numpy(), predicted, None)
    proba = predictor.predict_proba(rows).reset_index(drop=True)
    own = pd.Series(np.asarray(predictor.predict_from_proba(proba)))
    if kind == "binary":
        chance = pd.Series(proba[positive].to_numpy(dtype="float64"))
        return Outputs(chance, chance.to_numpy(), own, proba)
    # Multiclass: the predicted class is compared; the score is the model's confidence in it.
    return Outputs(own.astype(str), proba.max(axis=1).to_numpy(dtype="float64"), own, proba)


def served_outputs(column: pd.Series, model: Outputs, kind: str) -> Outputs:
    """The window's outputs when the batches carry the prediction as served: a probability (a
    binary model's, numbers in [0, 1]) or a value (regression) replaces the model's own; a
    class is compared as a class. The score stream stays the model's unless it is numeric."""
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    values = column.reset_index(drop=True)
    if kind == "regression":
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        return Outputs(numbers, numbers.to_numpy(), model.own, None)
    if kind == "binary" and numeric and values.dropna().between(0, 1).all():
        numbers = values.astype("float64")
        return Outputs(numbers, numbers.to_numpy(), model.own, model.proba)
    return Outputs(values.astype(str).where(values.notna()), model.score, model.own, model.proba)


def output_words(predictor: Any, positive: Any, served: str | None, values: pd.Series) -> str:
    kind = predictor.problem_type
    if kind == "binary" and not pd.api.types.is_numeric_dtype(values):
        kind = "multiclass"  # a served class: compared as a class
    what = {
        "binary": f"probability of {plain_label(positive)!r}",
        "multiclass": "predicted class",
        "regression": f"predicted {predictor.label}",
    }[kind]
    return what + (f" (served, column {served!r})" if served else "")


def run_monitor(spec: MonitorJobSpec, store: artifacts.ArtifactStore) -> dict[str, Any]:
    from fairpilot_jobs.reports.monitor_report import build_monitor_report

    with ExitStack() as stack:
        predictor, metadata = load_predictor(spec.model.uri, spec.model.digest, stack)
        candidate = (
            load_predictor(spec.candidate.uri, spec.candidate.digest, stack)
            if spec.candidate is not None
            else None
        )
        result = measure_window(spec, predictor, metadata, candidate)
    html = build_monitor_report(result)
    result["reports"] = {"window": store.write_text("report.html", html, "text/html")}
    return result


def with_held_out(spec: MonitorJobSpec, metadata: dict[str, Any]) -> MonitorJobSpec:
    """The spec with the model's own held-out figures as its baseline: what the train stage
    kept in the model's metadata (`custom_metadata.held_out`, covered by its digest) for that
    very version, current or pinned. A model trained before they were kept keeps the
    baseline the operator sent (its TrainingRun's status, for its current model only)."""
    kept = (metadata.get("custom_metadata") or {}).get("held_out")
    if not isinstance(kept, dict):
        return spec
    return spec.model_copy(update={"baseline": Baseline.model_validate(kept)})


def measure_window(
    spec: MonitorJobSpec,
    predictor: Any,
    metadata: dict[str, Any],
    candidate: tuple[Any, dict[str, Any]] | None = None,
) -> dict:
    spec = with_held_out(spec, metadata)
    thresholds = spec.thresholds
    kind = predictor.problem_type
    features = list(predictor.original_features)
    positive = positive_label(predictor, spec)

    reference = read_table(spec.reference, what="reference")
    require_columns(reference, dict.fromkeys(features, "the model's feature"), what="reference")
    if len(reference) > MAX_REFERENCE_ROWS:
        reference = reference.sample(n=MAX_REFERENCE_ROWS, random_state=spec.seed)
    reference = reference.reset_index(drop=True)
    references = drift.reference_of(reference, features)

    sensitive = list(spec.sensitive_features) or [f.name for f in spec.baseline.fairness]
    optional = [c for c in dict.fromkeys([spec.target, *sensitive]) if c not in features]
    required = {spec.prediction_column: "predictionColumn"} if spec.prediction_column else {}
    found = read_window(spec.batches, references, optional=optional, required=required)
    rows = found.rows
    if rows.empty:
        raise JobError(
            "EmptyWindow", empty_window_message(spec.window, found.rejected, found.used, features)
        )
    judged = len(rows) >= thresholds.min_rows
    log.info(
        "window %d: %d rows from %d batch(es), %d rejected",
        spec.window,
        len(rows),
        len(found.used),
        len(found.rejected),
    )

    # Data drift.
    drifts = drift.data_drift(references, rows[features])
    # Prediction drift.
    reference_out = model_outputs(predictor, reference[features], positive)
    model_out = model_outputs(predictor, rows[features], positive)
    window_out = (
        served_outputs(rows[spec.prediction_column], model_out, kind)
        if spec.prediction_column
        else model_out
    )
    if not pd.api.types.is_numeric_dtype(window_out.values) and pd.api.types.is_numeric_dtype(
        reference_out.values
    ):
        # A served class of a binary model: compared with the classes the model predicts.
        reference_out = Outputs(
            reference_out.own.astype(str),
            reference_out.score,
            reference_out.own,
            reference_out.proba,
        )
    prediction_reference = drift.feature_reference(PREDICTION, reference_out.values)
    prediction = (
        drift.feature_drift(prediction_reference, window_out.values)
        if window_out.values.notna().any()
        else None
    )
    what = output_words(predictor, positive, spec.prediction_column, window_out.values)

    # Labels.
    truth, labelled = window_labels(predictor, rows, spec.target, found.carried)
    # ADWIN.
    streams = [
        adwin_stream(
            SCORE, reference_out.score, window_out.score, thresholds.adwin_delta, spec.seed
        )
    ]
    if labelled.any():
        streams.append(
            error_stream(predictor, spec, reference, reference_out, model_out, truth, labelled)
        )
    # Bias drift.
    decisions = decided(predictor, metadata, rows, spec.target) if kind != "regression" else None
    fairness = bias_drift(
        spec, rows, found.carried, sensitive, decisions, truth, labelled, window_out, positive
    )
    # Performance.
    performance = window_performance(predictor, spec, model_out, truth, labelled)
    compared = (
        candidate_score(spec, candidate, rows, positive, performance, truth, labelled)
        if candidate is not None
        else None
    )

    alerts: list[dict[str, Any]] = []
    if judged:
        alerts += drift_alerts(drifts, thresholds)
        if (found_alert := prediction_alert(prediction, what, thresholds)) is not None:
            alerts.append(found_alert)
        alerts += [a for s in streams if (a := adwin_alert(s)) is not None]
        for name in fairness.get("features", {}):
            alerts += fairness["features"][name]["alerts"]
        if performance.get("alert"):
            alerts.append(performance["alert"])

    newest_at = newest(spec.batches)
    window_fairness = {
        name: block["window"] for name, block in fairness.get("features", {}).items()
    }
    this = summary(
        spec.window,
        len(rows),
        newest_at,
        drifts,
        thresholds,
        prediction,
        window_fairness,
        performance.get("score"),
        alerts,
    )
    result: dict[str, Any] = {
        "window": spec.window,
        "rows": len(rows),
        "judged": judged,
        "judgement": (
            f"{len(rows):,} rows, at least thresholds.minRows {thresholds.min_rows:,}: alerts are "
            "raised"
            if judged
            else f"only {len(rows):,} rows, fewer than thresholds.minRows "
            f"{thresholds.min_rows:,}: the statistics are shown, but no drift, bias or "
            "performance alert is raised (on so few rows they are noise)"
        ),
        "labelledRows": int(labelled.sum()),
        # Rows whose label the model does not know (a typo, a new class): not scored.
        "unknownLabels": int(rows[spec.target].notna().sum()) - int(labelled.sum())
        if spec.target in rows.columns
        else 0,
        "newestDataAt": newest_at,
        "alerts": alerts,
        "rejected": found.rejected,
        "summary": this,
        "history": history(spec.history, this),
        "model": {
            "uri": spec.model.uri,
            "modelId": metadata.get("model_id"),
            "version": metadata.get("version"),
        },
        "problemType": kind,
        "target": spec.target,
        "referenceRows": len(reference),
        "reference": spec.reference.uri,
        "thresholds": thresholds.model_dump(by_alias=True),
        "features": [
            feature_row(d, thresholds) for d in sorted(drifts.values(), key=lambda d: -d.psi)
        ],
        "predictionDrift": prediction_block(
            prediction, what, reference_out, window_out, thresholds, spec.prediction_column
        ),
        "adwin": {"delta": thresholds.adwin_delta, "streams": streams},
        "fairness": fairness,
        "performance": {k: v for k, v in performance.items() if k != "alert"},
        "batches": found.used,
        "baseline": spec.baseline.model_dump(by_alias=True),
    }
    if compared is not None:
        result["candidate"] = compared
    return plain(result)


def candidate_score(
    spec: MonitorJobSpec,
    candidate: tuple[Any, dict[str, Any]],
    rows: pd.DataFrame,
    positive: Any,
    current: dict[str, Any],
    truth: pd.Series,
    labelled: np.ndarray,
) -> dict[str, Any]:
    """A retrained model's score on the same labelled rows as the watched model's, by the
    same scorer: what its promotion is decided on."""
    predictor, metadata = candidate
    features = list(predictor.original_features)
    missing = [f for f in features if f not in rows.columns]
    block: dict[str, Any] = {
        "version": metadata.get("version"),
        "metric": current.get("evalMetric"),
        "greaterIsBetter": current.get("greaterIsBetter"),
        "rows": int(labelled.sum()),
        "currentScore": current.get("score"),
        "measured": False,
    }
    if missing:
        return block | {"message": f"the window lacks the candidate's features {missing[:10]}"}
    if not current.get("measured"):
        return block | {"message": current.get("message") or "the watched model was not scored"}
    outputs = model_outputs(predictor, rows[features], positive)
    scored = window_performance(predictor, spec, outputs, truth, labelled)
    if not scored.get("measured"):
        return block | {"message": scored.get("message") or "the candidate could not be scored"}
    return block | {"measured": True, "score": scored.get("score")}


def positive_label(predictor: Any, spec: MonitorJobSpec) -> Any | None:
    """The favourable class as the model spells it: baseline.positiveLabel, else the model's
    positive class (binary); None for regression and a multiclass model without one."""
    if predictor.problem_type == "regression":
        return None
    wanted = spec.baseline.positive_label
    classes = list(predictor.class_labels)
    if wanted is None:
        return predictor.positive_class if predictor.problem_type == "binary" else None
    if str(wanted) not in map(str, classes):
        raise JobError(
            "UnknownPositiveLabel",
            f"baseline.positiveLabel {wanted!r} is not a class of the model ({classes})",
        )
    return classes[[str(c) for c in classes].index(str(wanted))]


def window_labels(
    predictor: Any, rows: pd.DataFrame, target: str, carried: dict[str, np.ndarray]
) -> tuple[pd.Series, np.ndarray]:
    """The window's labels as the model spells them, and which rows carry one it knows.

    A label the model does not know (a typo, a new class) is not a label: the row is measured
    for drift, not for performance.
    """
    if target not in rows.columns:
        return pd.Series([None] * len(rows), dtype=object), np.zeros(len(rows), dtype=bool)
    raw = rows[target].where(carried.get(target, np.ones(len(rows), dtype=bool)))
    if predictor.problem_type == "regression":
        numbers = pd.to_numeric(raw, errors="coerce")
        return numbers, numbers.notna().to_numpy()
    if pd.api.types.is_float_dtype(raw) and (raw.dropna() % 1 == 0).all():
        raw = raw.astype("Int64")  # 1.0 read back from a column with gaps is the class 1
    lookup = {str(c): c for c in predictor.class_labels}
    truth = (
        raw.astype(object)
        .where(raw.notna())
        .map(lambda v: lookup.get(str(v)) if v is not None and not pd.isna(v) else None)
    )
    return truth, truth.notna().to_numpy()


def decided(
    predictor: Any, metadata: dict[str, Any], rows: pd.DataFrame, target: str
) -> np.ndarray:
    """The model's decisions as FairPilot ships them (per-group thresholds honoured)."""
    frame = rows.drop(columns=[target], errors="ignore")
    return np.asarray(predict(predictor, metadata, frame))


def error_stream(
    predictor: Any,
    spec: MonitorJobSpec,
    reference: pd.DataFrame,
    reference_out: Outputs,
    window_out: Outputs,
    truth: pd.Series,
    labelled: np.ndarray,
) -> dict[str, Any]:
    """ADWIN on the per-row error: 0/1 misclassification, or the absolute error (regression).

    The reference part is the model's error on held-out data where the baseline gives it
    (1 - baseline.accuracy, as a stream of that many misclassified rows in a random order): on
    its own training rows a model errs less than on any new data, and a window of the same
    data would look like a change. Without a held-out accuracy (regression) the training
    rows' own errors are the reference, and the result says so.
    """
    rng = np.random.default_rng(spec.seed + 1)
    kind = predictor.problem_type
    if kind == "regression":
        window_error = np.abs(window_out.own.to_numpy()[labelled] - truth.to_numpy()[labelled])
    else:
        window_error = (
            window_out.own.astype(str).to_numpy()[labelled]
            != truth.astype(str).to_numpy()[labelled]
        ).astype(float)
    accuracy = spec.baseline.accuracy
    stream: np.ndarray
    if kind != "regression" and accuracy is not None:
        size = len(reference)
        wrong = round((1 - accuracy) * size)
        stream = rng.permutation(np.r_[np.ones(wrong), np.zeros(size - wrong)])
        source = (
            f"held-out error rate {1 - accuracy:.4g} (baseline accuracy on the "
            f"{spec.baseline.split or 'held-out'} split), as {size:,} rows in a random order"
        )
    else:
        label = reference[spec.target] if spec.target in reference.columns else None
        if label is None:
            stream, source = np.empty(0), "none: the reference has no label column"
        elif kind == "regression":
            stream = np.abs(
                reference_out.own.to_numpy() - pd.to_numeric(label, errors="coerce").to_numpy()
            )
            source = (
                "the training rows' own absolute errors (optimistic: the model was fit on them)"
            )
        else:
            stream = (
                reference_out.own.astype(str).to_numpy() != label.astype(str).to_numpy()
            ).astype(float)
            source = "the training rows' own errors (optimistic: the model was fit on them)"
    found = adwin_stream(ERROR, stream, window_error, spec.thresholds.adwin_delta, spec.seed)
    found["reference"] = source
    return found


def bias_drift(
    spec: MonitorJobSpec,
    rows: pd.DataFrame,
    carried: dict[str, np.ndarray],
    sensitive: list[str],
    decisions: np.ndarray | None,
    truth: pd.Series,
    labelled: np.ndarray,
    window_out: Outputs,
    positive: Any,
) -> dict[str, Any]:
    """Each sensitive feature's fairness on the window against its post-training values."""
    thresholds = spec.thresholds
    block: dict[str, Any] = {
        "positiveLabel": plain_label(positive) if positive is not None else None,
        "minGroupSize": thresholds.min_group_size,
        "sensitiveFeatures": sensitive,
    }
    if decisions is None or positive is None:
        why = (
            "fairness is measured for classifiers only"
            if decisions is None
            else "a multiclass model needs baseline.positiveLabel: the favourable class"
        )
        return block | {"measured": False, "message": why, "features": {}}
    if not sensitive:
        return block | {
            "measured": False,
            "message": "no sensitive feature to watch",
            "features": {},
        }
    absent = [f for f in sensitive if f not in rows.columns]
    baselines = {b.name: b for b in spec.baseline.fairness}
    options = FairnessOptions(min_group_size=thresholds.min_group_size)
    features: dict[str, Any] = {}
    chosen = pd.Series(decisions)
    probability = (
        pd.Series(window_out.proba[positive].to_numpy(dtype="float64"))
        if window_out.proba is not None
        else None
    )
    for name in (f for f in sensitive if f in rows.columns):
        mask = carried.get(name, np.ones(len(rows), dtype=bool))
        on = options.model_copy(update={"sensitive_features": [name]})
        # Selection rates over every row the feature is known for; rates that need the truth
        # (equal opportunity) over the labelled ones.
        everyone = measure(
            rows[mask].reset_index(drop=True),
            _or_none(truth[mask]),
            chosen[mask].reset_index(drop=True),
            _part(probability, mask),
            positive,
            on,
            "window",
        )["features"][name]
        window = {
            key: everyone["summary"].get(key)
            for key in (
                "disparateImpact",
                "statisticalParityDifference",
                "groupsCompared",
                "groupsTooSmall",
                "lowestSelectionGroup",
                "highestSelectionGroup",
                "disparateImpactInterval",
                "statisticalParityDifferenceInterval",
            )
        }
        window["equalOpportunityDifference"] = None
        selection = {
            group: (g["predictedPositiveRate"], g["count"])
            for group, g in everyone["groups"].items()
            if not g.get("small") and g.get("predictedPositiveRate") is not None
        }
        window["disparateImpactBounds"] = spread_interval(selection, True, thresholds.confidence)
        window["statisticalParityDifferenceBounds"] = spread_interval(
            selection, False, thresholds.confidence
        )
        window["equalOpportunityDifferenceBounds"] = None
        both = mask & labelled
        groups = {
            group: {
                "count": g["count"],
                "predictedPositiveRate": g.get("predictedPositiveRate"),
                "small": g.get("small"),
            }
            for group, g in everyone["groups"].items()
        }
        if both.any():
            with_labels = measure(
                rows[both].reset_index(drop=True),
                truth[both].reset_index(drop=True),
                chosen[both].reset_index(drop=True),
                _part(probability, both),
                positive,
                on,
                "window",
            )["features"][name]
            window["equalOpportunityDifference"] = with_labels["summary"].get(
                "equalOpportunityDifference"
            )
            # A true positive rate is over the group's positive rows.
            opportunity = {
                group: (g["truePositiveRate"], round(g["count"] * (g.get("positiveRate") or 0)))
                for group, g in with_labels["groups"].items()
                if not g.get("small") and g.get("truePositiveRate") is not None
            }
            window["equalOpportunityDifferenceBounds"] = spread_interval(
                opportunity, False, thresholds.confidence
            )
            for group, g in with_labels["groups"].items():
                groups.setdefault(group, {})["labelledCount"] = g["count"]
                groups[group]["truePositiveRate"] = g.get("truePositiveRate")
        baseline = baselines.get(name)
        table, alerts = fairness_changes(name, window, baseline, thresholds)
        features[name] = {
            "rows": int(mask.sum()),
            "labelledRows": int(both.sum()),
            "window": window,
            "baseline": baseline.model_dump(by_alias=True) if baseline else None,
            "comparison": table,
            "groups": groups,
            "alerts": alerts,
        }
    message = "measured on the window's rows with the model's decisions"
    if absent:
        message += f"; not in any batch: {', '.join(absent)}"
    return block | {"measured": True, "message": message, "features": features, "absent": absent}


def _or_none(truth: pd.Series) -> pd.Series:
    return truth.reset_index(drop=True).astype(object)


def _part(values: pd.Series | None, mask: np.ndarray) -> pd.Series | None:
    return None if values is None else values[mask].reset_index(drop=True)


def window_performance(
    predictor: Any, spec: MonitorJobSpec, out: Outputs, truth: pd.Series, labelled: np.ndarray
) -> dict[str, Any]:
    """The eval metric (and accuracy) on the labelled rows, by AutoGluon's own scorers."""
    from autogluon.core.metrics import get_metric

    from fairpilot_jobs.train import METRIC_ALIASES, natural_metrics

    thresholds = spec.thresholds
    name = spec.baseline.eval_metric or predictor.eval_metric.name
    name = METRIC_ALIASES.get(name, name)
    count = int(labelled.sum())
    baseline = spec.baseline.score
    block: dict[str, Any] = {
        "evalMetric": name,
        "labelledRows": count,
        "baseline": baseline,
        "baselineSplit": spec.baseline.split,
        "baselineAccuracy": spec.baseline.accuracy,
        "measured": False,
    }
    try:
        scorer = get_metric(name, predictor.problem_type)
    except Exception as exc:  # a metric AutoGluon does not know: not computed, not compared
        return block | {"message": f"{name} is not an AutoGluon metric: {exc}"}
    greater = higher_is_better(scorer)
    block["greaterIsBetter"] = greater
    if baseline is not None:
        block["bound"] = performance_bound(baseline, thresholds.performance_drop, greater)
    if count < thresholds.min_rows:
        return block | {
            "message": f"{count:,} labelled rows, fewer than thresholds.minRows "
            f"{thresholds.min_rows:,}: performance is not measured"
        }
    y_true = truth[labelled].reset_index(drop=True)
    if predictor.problem_type == "regression":
        y_pred: Any = out.own[labelled].reset_index(drop=True)
    else:
        assert out.proba is not None
        y_pred = out.proba[labelled].reset_index(drop=True)
        y_true = y_true.astype(object)
    try:
        scores = natural_metrics(
            predictor.evaluate_predictions(y_true, y_pred, silent=True, auxiliary_metrics=True)
        )
    except ValueError as exc:  # e.g. ROC AUC of rows that all carry the same label
        log.warning("the window's labelled rows cannot be scored: %s", exc)
        return block | {
            "message": f"{name} cannot be computed on the {count:,} labelled rows: {exc}"
        }
    score = scores.get(name)
    if score is None:
        score = other_metric(predictor, scorer, y_true, y_pred, out, labelled)
    worse = (
        None if score is None or baseline is None else relative_worsening(score, baseline, greater)
    )
    found = performance_alert(
        name, score, baseline, greater, thresholds.performance_drop, spec.baseline.split
    )
    return block | {
        "measured": score is not None,
        "score": finite(score),
        "relativeWorsening": finite(worse),
        "accuracy": scores.get("accuracy"),
        "metrics": scores,
        "message": f"{name} on {count:,} labelled rows, by AutoGluon's scorer"
        if score is not None
        else f"{name} could not be computed on the window's labelled rows",
        "alert": found,
    }


def higher_is_better(scorer: Any) -> bool:
    """Whether a larger value of the metric, as people read it, is better: AutoGluon's scorers
    all answer True to `greater_is_better` (they negate errors); the metric's own direction is
    `greater_is_better_internal` (its sign)."""
    internal = getattr(scorer, "greater_is_better_internal", None)
    if internal is None:
        internal = getattr(scorer, "_sign", 1) > 0
    return bool(internal)


def other_metric(
    predictor: Any, scorer: Any, y_true: pd.Series, y_pred: Any, out: Outputs, labelled: np.ndarray
) -> float | None:
    """A metric evaluate_predictions does not report (not the model's eval metric nor one of
    its auxiliary ones), through AutoGluon's scorer on the labels as the model encodes them."""
    try:
        if predictor.problem_type == "regression":
            value = scorer(y_true.to_numpy(dtype="float64"), np.asarray(y_pred, dtype="float64"))
        else:
            internal = predictor.transform_labels(y_true)
            if scorer.needs_class or getattr(scorer, "needs_pred", False):
                predicted = predictor.transform_labels(out.own[labelled].reset_index(drop=True))
            elif predictor.problem_type == "binary":
                predicted = y_pred[predictor.positive_class].to_numpy()
            else:
                predicted = predictor.transform_labels(y_pred, proba=True).to_numpy()
            value = scorer(np.asarray(internal), np.asarray(predicted))
        return float(scorer.convert_score_to_original(value))
    except Exception as exc:
        log.warning("%s could not be computed on the window: %s", scorer.name, exc)
        return None


def feature_row(found: drift.FeatureDrift, thresholds: Any) -> dict[str, Any]:
    return {
        "name": found.name,
        "kind": found.kind,
        "rows": found.rows,
        "psi": found.psi,
        "kl": found.kl,
        "js": found.js,
        "ksStatistic": found.ks_statistic,
        "ksPValue": found.ks_pvalue,
        "chi2Statistic": found.chi2_statistic,
        "chi2PValue": found.chi2_pvalue,
        "drifted": drift_verdict(found, thresholds) is not None,
    }


def prediction_block(
    found: drift.FeatureDrift | None,
    what: str,
    reference: Outputs,
    window: Outputs,
    thresholds: Any,
    served: str | None,
) -> dict[str, Any]:
    numeric = pd.api.types.is_numeric_dtype(window.values)
    block: dict[str, Any] = {
        "output": what,
        "source": "predictionColumn" if served else "model",
        "kind": "numeric" if numeric else "categorical",
    }
    if found is None:
        return block | {"psi": None, "drifted": False, "message": "no prediction in the window"}
    block |= {k: v for k, v in feature_row(found, thresholds).items() if k not in ("name", "kind")}
    block["drifted"] = found.psi >= thresholds.psi
    if numeric:
        block["referenceMean"] = float(np.nanmean(reference.values.to_numpy(dtype="float64")))
        block["windowMean"] = float(np.nanmean(window.values.to_numpy(dtype="float64")))
    else:
        block["referenceShares"] = _shares(reference.values)
        block["windowShares"] = _shares(window.values)
    return block


def _shares(values: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in values.value_counts(normalize=True).items()}
