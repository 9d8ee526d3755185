"""The explain stage: sample rows, compute SHAP values, check them, write reports per level."""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from fairpilot import artifacts
from fairpilot.api import ExplainJobSpec, ShapMethod
from fairpilot.errors import JobError
from fairpilot_jobs.explain.agnostic import explained_output, kernel_shap, permutation_shap
from fairpilot_jobs.explain.tree import TreeUnsupported, tree_shap
from fairpilot_jobs.models import load_predictor
from fairpilot_jobs.tables import read_table

log = logging.getLogger(__name__)

MAX_STORED_ROWS = 100_000


def sample_rows(frame: pd.DataFrame, predictor: Any, size: int, seed: int) -> pd.DataFrame:
    features = list(predictor.original_features)
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise JobError(
            "ColumnNotFound",
            f"the dataset lacks columns the model was trained on: {missing[:20]}",
        )
    rows = frame[features]
    if len(rows) > size:
        rows = rows.sample(n=size, random_state=seed)
    return rows


# Float32 boosters reproduce the predictor's output to ~1e-7 (relative); a larger gap means
# AutoGluon transformed the output in a way the tree path does not model (e.g. calibration).
TREE_TOLERANCE = 1e-5


def check_tree_additivity(predictor: Any, rows: pd.DataFrame, shap: dict[str, Any]) -> None:
    output = explained_output(predictor, rows)
    error = np.abs(shap["base"] + shap["values"].sum(axis=1) - output).max()
    if error > TREE_TOLERANCE * max(1.0, float(np.abs(output).max())):
        raise TreeUnsupported(f"TreeSHAP values miss the predictor's output by {error:.2e}")


def compute_shap(
    predictor: Any, rows: pd.DataFrame, background: pd.DataFrame, spec: ExplainJobSpec
) -> dict[str, Any]:
    """SHAP values by the requested method; `auto` tries exact TreeSHAP first."""
    started = time.monotonic()
    fallback = None
    if spec.method in (ShapMethod.AUTO, ShapMethod.TREE):
        try:
            shap = tree_shap(predictor, rows, background)
            check_tree_additivity(predictor, rows, shap)
            shap["method"] = "tree"
            shap["algorithm"] = (
                "exact interventional TreeSHAP per tree member (XGBoost through shap, CatBoost "
                "natively, LightGBM from its own tree dump) over the background rows, in the "
                + (
                    "probability space (rescale rule per row and background row)"
                    if predictor.problem_type == "binary"
                    else "prediction space"
                )
                + ", combined by the ensemble weights"
            )
        except TreeUnsupported as exc:
            if spec.method is ShapMethod.TREE:
                raise JobError(
                    "TreeShapUnsupported", f"method tree is not possible: {exc}"
                ) from exc
            fallback = str(exc)
            log.info("exact TreeSHAP not possible (%s): falling back to permutation", exc)
    if fallback is not None or spec.method is ShapMethod.PERMUTATION:
        shap = permutation_shap(predictor, rows, background, spec.seed)
        shap["method"] = "permutation"
        shap["algorithm"] = "shap PermutationExplainer over the whole predictor (model-agnostic)"
    elif spec.method is ShapMethod.KERNEL:
        shap = kernel_shap(predictor, rows, background)
        shap["method"] = "kernel"
        shap["algorithm"] = "shap KernelExplainer over the whole predictor (model-agnostic)"
    shap["seconds"] = time.monotonic() - started
    shap["fallbackReason"] = fallback
    return shap


def run_explain(spec: ExplainJobSpec, store: artifacts.ArtifactStore) -> dict[str, Any]:
    from contextlib import ExitStack

    from fairpilot_jobs.reports.explanation_report import build_explanation_report
    from fairpilot_jobs.reports.html import pipeline_links

    with ExitStack() as stack:
        predictor, metadata = load_predictor(spec.model.uri, spec.model.digest, stack)
        frame = read_table(spec.dataset)
        rows = sample_rows(frame, predictor, spec.sample_size, spec.seed)
        background = sample_rows(frame, predictor, spec.background_size, spec.seed + 1)
        log.info("explaining %d rows with %d features (%s)", len(rows), rows.shape[1], spec.method)
        shap = compute_shap(predictor, rows, background, spec)
        output = explained_output(predictor, rows)
        values = np.asarray(shap["values"], dtype="float64")
        base = np.asarray(shap["base"], dtype="float64")
        # Summing over features works for (rows, features) and (rows, features, classes).
        error = np.abs(base + values.sum(axis=1) - output).max()
        kind = predictor.problem_type
        classes = [str(c) for c in predictor.class_labels] if kind != "regression" else []

    features = list(rows.columns)
    # One base value, or one per class (values of shape (rows, features, classes)).
    per_class: list[float] | None = None if values.ndim == 2 else base[0].tolist()
    base_value = float(base.reshape(len(rows), -1)[0, 0]) if per_class is None else per_class
    magnitude = np.abs(values).mean(axis=0)
    if magnitude.ndim == 2:
        magnitude = magnitude.sum(axis=1)
    mean_signed = values.mean(axis=0) if values.ndim == 2 else values.mean(axis=0).sum(axis=1)
    importance = sorted(
        (
            {"feature": f, "meanAbsShap": float(m), "meanShap": float(s)}
            for f, m, s in zip(features, magnitude, mean_signed, strict=True)
        ),
        key=lambda item: -item["meanAbsShap"],
    )
    if kind == "binary":
        explained = f"probability of {predictor.positive_class!r}"
    elif kind == "multiclass":
        explained = "probability of each class"
    else:
        explained = f"predicted {predictor.label}"
    result: dict[str, Any] = {
        "method": shap["method"],
        "methodRequested": str(spec.method),
        "algorithm": shap["algorithm"],
        "fallbackReason": shap["fallbackReason"],
        "problemType": kind,
        "target": predictor.label,
        "explainedOutput": explained,
        "rows": len(rows),
        "backgroundRows": len(background),
        "features": features,
        "baseValue": base_value,
        # E[f(X)] over the background: the number every report level calls the average.
        "averagePrediction": {
            "value": base_value if values.ndim == 2 else None,
            "perClass": None if per_class is None else dict(zip(classes, per_class, strict=True)),
            "over": "background rows",
            "rows": len(background),
        },
        "explainedRowsMeanOutput": (
            float(np.mean(output)) if values.ndim == 2 else np.mean(output, axis=0).tolist()
        ),
        "globalImportance": importance,
        "topFeature": importance[0]["feature"],
        "localAccuracy": {
            "maxAbsError": float(error),
            "check": "base value + sum of SHAP values = model output, for every explained row",
            "checkedAgainst": "predictor.predict_proba"
            if kind != "regression"
            else "predictor.predict",
        },
        "shapSeconds": round(shap["seconds"], 4),
        "members": shap.get("members"),
        "model": {
            "uri": spec.model.uri,
            "modelId": metadata.get("model_id"),
            "version": metadata.get("version"),
        },
        "classes": classes,
        # Those the model's TrainingRun measured its fairness on: the report shows their SHAP
        # values per group.
        "sensitiveFeatures": [f for f in sensitive_features(metadata) if f in features],
    }
    table = shap_table(rows, values, base, output, features, classes)
    result["artifacts"] = {
        "shapValues": store.write_bytes(
            "shap_values.parquet", table, "application/vnd.apache.parquet"
        )
    }
    reports = {}
    # Each level's report links to the others' (and to the pipeline's index).
    uris = {level: store.root.child(f"report-{level}.html").uri for level in spec.levels}
    pages = {f"Explanation ({level})": uri for level, uri in uris.items()}
    for level, page in uris.items():
        links = pipeline_links(spec.pipeline_index, page, "Explanation", pages)
        html = build_explanation_report(result, rows, values, base, output, level, links)
        reports[str(level)] = store.write_text(f"report-{level}.html", html, "text/html")
    result["reports"] = reports
    return result


def sensitive_features(metadata: dict[str, Any]) -> list[str]:
    """The sensitive features the train stage measured the model's fairness on, from its
    metadata (`custom_metadata.held_out.fairness`, one entry per feature); none if it did not."""
    held_out = (metadata.get("custom_metadata") or {}).get("held_out") or {}
    return [str(item["name"]) for item in held_out.get("fairness") or [] if item.get("name")]


def shap_table(
    rows: pd.DataFrame,
    values: np.ndarray,
    base: np.ndarray,
    output: np.ndarray,
    features: list[str],
    classes: list[str],
) -> bytes:
    """Per-row SHAP values as Parquet: row index, one column per feature (and class)."""
    data: dict[str, Any] = {"row": rows.index.to_numpy()}
    if values.ndim == 2:
        for i, feature in enumerate(features):
            data[f"shap::{feature}"] = values[:, i]
        data["base_value"] = base.reshape(len(rows), -1)[:, 0]
        data["output"] = output
    else:
        for c, label in enumerate(classes):
            for i, feature in enumerate(features):
                data[f"shap::{feature}::{label}"] = values[:, i, c]
            data[f"base_value::{label}"] = base[:, c]
            data[f"output::{label}"] = output[:, c]
    buffer = io.BytesIO()
    pd.DataFrame(data).to_parquet(buffer, index=False)
    return buffer.getvalue()
