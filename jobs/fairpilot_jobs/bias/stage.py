"""The bias stage: fairness metrics per sensitive feature and group, and reweighing weights."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from typing import Any

import numpy as np
import pandas as pd

from fairpilot.api import BiasJobSpec
from fairpilot.artifacts import ArtifactStore
from fairpilot.errors import JobError
from fairpilot_jobs.bias.labels import normalise, positive_mask, resolve_positive_label
from fairpilot_jobs.bias.metrics import (
    bias_detected,
    feature_bias,
    flip_columns,
    population_metrics,
)
from fairpilot_jobs.bias.reweighing import mitigation_effect, reweighing_table
from fairpilot_jobs.fairness import JOINT, MAX_INTERSECTION_FEATURES, joint_groups
from fairpilot_jobs.tables import read_table, require_columns

log = logging.getLogger(__name__)

REWEIGHING_FILE = "reweighing.json"
INDENTED_JSON_ENTRIES = 1000  # a longer reweighing table is written without indentation


def predictions(
    spec: BiasJobSpec, frame: pd.DataFrame, positive: Any
) -> tuple[np.ndarray | None, str | None]:
    """Which rows a model predicts positive: from a column, or from a stored model."""
    if spec.prediction_column is not None:
        return positive_mask(
            frame[spec.prediction_column], positive
        ), f"column {spec.prediction_column}"
    if spec.model is None:
        return None, None
    from fairpilot_jobs.models import load_predictor, predict

    with ExitStack() as stack:
        predictor, metadata = load_predictor(spec.model.uri, spec.model.digest, stack)
        missing = [f for f in predictor.original_features if f not in frame.columns]
        if missing:
            raise JobError(
                "ColumnNotFound", f"the dataset lacks the model's features {missing[:20]}"
            )
        if predictor.problem_type != "binary":
            raise JobError(
                "UnsupportedModel",
                "post-training bias needs a binary classifier; "
                f"the model is {predictor.problem_type}",
            )
        # The model's own decisions, per-group thresholds included: what it ships with.
        rule = metadata.get("decision_thresholds") or {}
        columns = [*predictor.original_features]
        if rule.get("feature") in frame.columns and rule["feature"] not in columns:
            columns.append(rule["feature"])
        predicted = predict(predictor, metadata, frame[columns])
    return positive_mask(predicted, positive), f"model {spec.model.uri}"


def _intersections(
    spec: BiasJobSpec,
    frame: pd.DataFrame,
    label_positive: np.ndarray,
    predicted: np.ndarray | None,
    features: dict[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """The sensitive features crossed (two or three of them, as the train stage's fairness
    measures them: "sex × race"): every joint group's rates and metrics against the joint group
    of each feature's privileged group (or, when that one is too small, the usual choice), and
    the thresholds it crosses in words. Rows missing any of the features form "(missing)"."""
    names = spec.sensitive_features
    if not 2 <= len(names) <= MAX_INTERSECTION_FEATURES:
        return {}, []
    name = JOINT.join(names)
    joint = joint_groups(frame, names)
    reference = JOINT.join(features[f]["privilegedGroup"] for f in names)
    size = int((joint == reference).sum())
    bias = feature_bias(
        joint.rename(name),
        label_positive,
        predicted,
        privileged_group=reference if size >= max(spec.min_group_size, 1) else None,
        min_group_size=spec.min_group_size,
    )
    findings = bias_detected(
        bias.metrics,
        min_disparate_impact=spec.thresholds.disparate_impact,
        max_abs_parity_difference=spec.thresholds.max_parity_difference,
    )
    measured = bias.to_dict()
    if measured["privilegedGroup"] == reference:
        measured["privilegedChosenBy"] = "each feature's privileged group"
    return {name: measured}, [f"{name}={finding}" for finding in findings]


def run_bias(spec: BiasJobSpec, store: ArtifactStore) -> dict[str, Any]:
    from fairpilot_jobs.reports.bias_report import build_bias_report
    from fairpilot_jobs.reports.html import pipeline_links

    frame = read_table(spec.dataset)
    named = {spec.target: "target", **{f: "sensitiveFeatures" for f in spec.sensitive_features}}
    if spec.prediction_column:
        named[spec.prediction_column] = "predictionColumn"
    if spec.group_variable:
        named.setdefault(spec.group_variable, "groupVariable")
    require_columns(frame, named)
    dropped = int(frame[spec.target].isna().sum())
    frame = frame[frame[spec.target].notna()].reset_index(drop=True)
    if frame.empty:
        raise JobError("EmptyLabel", f"target {spec.target!r} has no values")
    positive, positive_reason = resolve_positive_label(frame[spec.target], spec.positive_label)
    label_positive = positive_mask(frame[spec.target], positive)
    predicted, source = predictions(spec, frame, positive)
    log.info(
        "bias on %d rows, %d features, predictions: %s",
        len(frame),
        len(spec.sensitive_features),
        source,
    )

    strata = frame[spec.group_variable] if spec.group_variable else None
    # FlipTest's neighbours are found in the numeric columns, the label and the prediction
    # excepted (and, per feature, the feature itself); only with predictions to flip.
    flippable = (
        flip_columns(frame, exclude=(spec.target, spec.prediction_column))
        if predicted is not None
        else None
    )
    features: dict[str, Any] = {}
    findings: list[str] = []
    for feature in spec.sensitive_features:
        privileged = spec.privileged_groups.get(feature)
        try:
            bias = feature_bias(
                frame[feature],
                label_positive,
                predicted,
                privileged_group=normalise(privileged) if privileged is not None else None,
                min_group_size=spec.min_group_size,
                strata=strata,
                flip_features=(
                    frame[[c for c in flippable if c != feature]] if flippable is not None else None
                ),
            )
        except ValueError as exc:
            raise JobError("UnknownGroup", f"privilegedGroups.{feature}: {exc}") from exc
        features[feature] = bias.to_dict()
        findings += [
            f"{feature}={finding}"
            for finding in bias_detected(
                bias.metrics,
                min_disparate_impact=spec.thresholds.disparate_impact,
                max_abs_parity_difference=spec.thresholds.max_parity_difference,
            )
        ]

    intersections, crossing = _intersections(spec, frame, label_positive, predicted, features)
    table = reweighing_table(frame, spec.sensitive_features, label_positive)
    reweighing = {
        "method": "reweighing (Kamiran & Calders 2012)",
        "target": spec.target,
        "positiveLabel": positive,
        "sensitiveFeatures": spec.sensitive_features,
        "table": table,
    }
    if len(table) <= INDENTED_JSON_ENTRIES:
        reweighing_uri = store.write_json(REWEIGHING_FILE, reweighing)
    else:
        # json.dumps with an indent runs in pure Python (seconds for 100,000 entries); without
        # one, in C. A table that long is read by the train stage, not by a person.
        reweighing_uri = store.write_bytes(
            REWEIGHING_FILE,
            json.dumps(reweighing, default=_numpy_scalar).encode("utf-8"),
            "application/json",
        )
    result: dict[str, Any] = {
        "target": spec.target,
        "positiveLabel": positive,
        "positiveLabelReason": positive_reason,
        "rows": len(frame),
        "droppedMissingLabel": dropped,
        "predictionSource": source,
        "thresholds": spec.thresholds.model_dump(by_alias=True),
        "groupVariable": spec.group_variable,
        "features": features,
        # Whole-population figures (GE), with predictions only.
        "populationMetrics": (
            population_metrics(label_positive, predicted) if predicted is not None else {}
        ),
        "biasDetected": bool(findings),
        "findings": findings,
        # Informational: BiasDetected stays each feature's own test, as the spec's thresholds
        # say (a pipeline's stopIfBiasDetected acts on it); the report shows these beside it.
        "intersections": intersections,
        "intersectionFindings": crossing,
        "summary": summary(features),
        "mitigation": {
            "method": "reweighing",
            "uri": reweighing_uri,
            # The label's bias per feature before and after the weights, as training sees it.
            "effect": mitigation_effect(
                frame,
                table,
                label_positive,
                {f: features[f]["privilegedGroup"] for f in spec.sensitive_features},
            ),
        },
    }
    links = pipeline_links(spec.pipeline_index, store.root.child("report.html").uri, "Bias")
    html = build_bias_report(result, links)
    result["reports"] = {"bias": store.write_text("report.html", html, "text/html")}
    return result


def _numpy_scalar(value: Any) -> Any:
    """json.dumps' fallback: a numpy scalar (a positive label read as int64) as Python's."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def summary(features: dict[str, Any]) -> dict[str, Any]:
    """The one figure a status column shows: the lowest disparate impact, and where."""
    worst: tuple[float, str, str] | None = None
    for feature, data in features.items():
        for group, metrics in data["metrics"].items():
            value = metrics.get("DI", metrics.get("LDI"))
            if value is not None and (worst is None or value < worst[0]):
                worst = (value, feature, group)
    if worst is None:
        return {"minDisparateImpact": None}
    return {"minDisparateImpact": worst[0], "feature": worst[1], "group": worst[2]}
