"""Model-agnostic SHAP (permutation or kernel) over the whole AutoGluon predictor.

Used where exact TreeSHAP cannot be (see `tree.py`), and as the reference it is measured
against. The predictor sees DataFrames with the original dtypes, whatever shap hands over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


class Codec:
    """Numeric codes for categorical columns, because shap's maskers do arithmetic on data."""

    def __init__(self, *frames: pd.DataFrame) -> None:
        joined = pd.concat(frames, ignore_index=True)
        self.columns = list(joined.columns)
        self.dtypes = frames[0].dtypes.to_dict()
        self.categories = {
            column: pd.Index(joined[column].dropna().unique())
            for column in self.columns
            if not pd.api.types.is_numeric_dtype(joined[column])
            or pd.api.types.is_bool_dtype(joined[column])
        }

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty(frame.shape, dtype="float64")
        for i, column in enumerate(self.columns):
            if column in self.categories:
                codes = self.categories[column].get_indexer(frame[column]).astype("float64")
                codes[codes < 0] = np.nan
                out[:, i] = codes
            else:
                out[:, i] = frame[column].to_numpy(dtype="float64", na_value=np.nan)
        return out

    def decode(self, data: np.ndarray) -> pd.DataFrame:
        columns = {}
        for i, column in enumerate(self.columns):
            if column in self.categories:
                codes = data[:, i]
                valid = ~np.isnan(codes)
                values = np.full(len(codes), None, dtype=object)
                values[valid] = self.categories[column].to_numpy()[codes[valid].astype(int)]
                columns[column] = pd.Series(values).astype(self.dtypes[column], errors="ignore")
            else:
                columns[column] = pd.Series(data[:, i]).astype(self.dtypes[column], errors="ignore")
        return pd.DataFrame(columns)


def prediction_function(
    predictor: Any, template: pd.DataFrame, codec: Codec | None = None
) -> Callable[[Any], np.ndarray]:
    """f(X) -> the explained output: P(positive class), per-class probabilities, or the value."""
    kind = predictor.problem_type
    positive = predictor.positive_class if kind == "binary" else None

    def predict(data: Any) -> np.ndarray:
        if isinstance(data, pd.DataFrame):
            frame = data
        elif codec is not None:
            frame = codec.decode(np.asarray(data, dtype="float64"))
        else:
            raise TypeError("an array of rows needs the Codec that encoded them")
        if kind == "regression":
            return predictor.predict(frame).to_numpy(dtype="float64")
        proba = predictor.predict_proba(frame)
        if kind == "binary":
            return proba[positive].to_numpy(dtype="float64")
        return proba.to_numpy(dtype="float64")

    return predict


def explained_output(predictor: Any, rows: pd.DataFrame) -> np.ndarray:
    return prediction_function(predictor, rows)(rows)


def permutation_shap(
    predictor: Any, rows: pd.DataFrame, background: pd.DataFrame, seed: int
) -> dict[str, Any]:
    """shap's PermutationExplainer: sampled, but exactly additive by construction."""
    import shap

    codec = Codec(rows, background)
    predict = prediction_function(predictor, rows, codec)
    masker = shap.maskers.Independent(codec.encode(background), max_samples=len(background))
    explainer = shap.explainers.PermutationExplainer(predict, masker, seed=seed)
    result = explainer(codec.encode(rows), max_evals=max(500, 2 * rows.shape[1] + 1), silent=True)
    return {"values": np.asarray(result.values), "base": np.asarray(result.base_values)}


def kernel_shap(
    predictor: Any, rows: pd.DataFrame, background: pd.DataFrame, nsamples: int | str = "auto"
) -> dict[str, Any]:
    """shap's KernelExplainer, the classic model-agnostic reference (slow)."""
    import shap

    codec = Codec(rows, background)
    predict = prediction_function(predictor, rows, codec)
    explainer = shap.KernelExplainer(predict, codec.encode(background))
    values = explainer.shap_values(codec.encode(rows), nsamples=nsamples, silent=True)
    base = np.broadcast_to(
        np.asarray(explainer.expected_value, dtype="float64"),
        (len(rows), *np.shape(explainer.expected_value)),
    )
    return {"values": np.asarray(values), "base": np.array(base)}
