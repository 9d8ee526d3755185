"""Interventional SHAP of one gradient-boosted member, in the member's output space.

Each booster gets the exact method it supports, all with the same definition (interventional
feature perturbation over a background set, the rescale rule per pair for probabilities; see
`interventional.py`), so that members can be combined linearly by their ensemble weights:

- XGBoost: shap's TreeExplainer (`feature_perturbation="interventional"`,
  `model_output="probability"` or `"raw"`), which reads XGBoost's own tree dump;
- CatBoost: CatBoost's native Independent Tree SHAP (`get_feature_importance(type=
  "ShapValues", reference_data=..., model_output="Probability" | "Raw")`), which knows its
  categorical encodings;
- LightGBM: `interventional.py` over LightGBM's own tree dump, with LightGBM's split rules
  (categorical sets, missing values, default directions) applied here. shap misreads
  LightGBM's categorical splits, which AutoGluon's LightGBM uses for every category column.

Each function returns a `MemberShap`: values over the member's input columns, the base value
and the output they add up to; the caller maps the columns onto the explained features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairpilot_jobs.explain.interventional import (
    TreeArrays,
    identity,
    interventional_shap,
    logistic,
    raw_output,
)

# Rows are explained in chunks of at most this many (row, tree node) decisions (one byte each).
MAX_DECISIONS = 50_000_000
# LightGBM treats |x| <= this as zero for `missing_type: Zero` (kZeroThreshold in its sources).
_LGBM_ZERO = 1e-35


class BoosterUnsupported(Exception):
    """This member cannot be explained exactly; the message says why."""


@dataclass(frozen=True)
class MemberShap:
    values: np.ndarray  # (rows, columns) in the member's output space
    base: float  # the member's mean output over the background rows
    output: np.ndarray  # (rows,) base + the sum of the values
    columns: list[str]  # the member's input column of every value column


def dense(matrix: Any) -> np.ndarray:
    """A float matrix as the booster saw it. Entries a sparse matrix does not store are
    *missing* to XGBoost (not zero), so they become NaN, which keeps its routing."""
    if hasattr(matrix, "tocoo"):
        coo = matrix.tocoo()
        out = np.full(matrix.shape, np.nan)
        out[coo.row, coo.col] = coo.data
        return out
    if isinstance(matrix, pd.DataFrame):
        return matrix.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(matrix, dtype="float64")


# -- XGBoost ---------------------------------------------------------------------------------
def xgboost_values(
    model: Any, rows: Any, background: Any, probability: bool, columns: list[str]
) -> MemberShap:
    import shap

    explainer = shap.TreeExplainer(
        model,
        data=dense(background),
        feature_perturbation="interventional",
        model_output="probability" if probability else "raw",
    )
    explained = explainer(dense(rows), check_additivity=False)
    values = np.asarray(explained.values, dtype="float64")
    if values.ndim != 2:
        raise BoosterUnsupported(f"XGBoost gave SHAP values of shape {values.shape}")
    base = float(np.ravel(explained.base_values)[0])
    return MemberShap(values, base, base + values.sum(axis=1), columns)


# -- CatBoost --------------------------------------------------------------------------------
def catboost_values(
    model: Any, rows: pd.DataFrame, background: pd.DataFrame, probability: bool
) -> MemberShap:
    from catboost import Pool

    categorical = model.get_cat_feature_indices()

    # CatBoost asks for a label whenever a loss is involved, even though Independent Tree SHAP
    # of the model's output never reads it: a constant one is given.
    def pool(frame: pd.DataFrame) -> Any:
        return Pool(frame, cat_features=categorical, label=np.zeros(len(frame), dtype=int))

    raw = model.get_feature_importance(
        data=pool(rows),
        type="ShapValues",
        reference_data=pool(background),
        model_output="Probability" if probability else "Raw",
    )
    raw = np.asarray(raw, dtype="float64")
    if raw.ndim != 2:
        raise BoosterUnsupported(f"CatBoost gave SHAP values of shape {raw.shape}")
    values, base = raw[:, :-1], raw[:, -1]
    return MemberShap(values, float(base[0]), base + values.sum(axis=1), list(rows.columns))


# -- LightGBM --------------------------------------------------------------------------------
class _LightGBMTree:
    """One tree of LightGBM's `dump_model()`, as arrays plus the split rule of every node."""

    def __init__(self, structure: dict[str, Any], scale: float) -> None:
        nodes: list[dict[str, Any]] = []
        left: list[int] = []
        right: list[int] = []

        def visit(node: dict[str, Any]) -> int:
            index = len(nodes)
            nodes.append(node)
            left.append(-1)
            right.append(-1)
            if "split_index" in node:
                left[index] = visit(node["left_child"])
                right[index] = visit(node["right_child"])
            elif "leaf_coeff" in node:
                raise BoosterUnsupported("LightGBM linear trees are not explained exactly")
            return index

        visit(structure)
        self.nodes = nodes
        self.arrays = TreeArrays(
            left=np.asarray(left, dtype=np.int64),
            right=np.asarray(right, dtype=np.int64),
            feature=np.asarray([int(n.get("split_feature", -1)) for n in nodes], dtype=np.int64),
            value=np.asarray([float(n.get("leaf_value", 0.0)) * scale for n in nodes]),
        )

    def goes_left(self, data: np.ndarray) -> np.ndarray:
        """(rows, nodes): LightGBM's NumericalDecision / CategoricalDecision per node."""
        out = np.zeros((data.shape[0], len(self.nodes)), dtype=bool)
        for index, node in enumerate(self.nodes):
            if "split_index" not in node:
                continue
            x = data[:, int(node["split_feature"])]
            missing = str(node.get("missing_type", "None"))
            if node.get("decision_type") == "==":
                # NaN and negative values go right; otherwise: is the category in the set?
                categories = [int(c) for c in str(node["threshold"]).split("||")]
                valid = ~np.isnan(x) & (x >= 0)
                whole = np.where(valid, x, -1).astype(np.int64)
                out[:, index] = valid & np.isin(whole, categories)
                continue
            if node.get("decision_type") != "<=":
                raise BoosterUnsupported(f"LightGBM split {node.get('decision_type')!r}")
            # NaN is its own "missing" only under missing_type NaN; otherwise it reads as 0.
            value = x if missing == "NaN" else np.where(np.isnan(x), 0.0, x)
            if missing == "NaN":
                default = np.isnan(value)
            elif missing == "Zero":
                default = np.abs(value) <= _LGBM_ZERO
            else:
                default = np.zeros(len(value), dtype=bool)
            with np.errstate(invalid="ignore"):
                decided = value <= float(node["threshold"])
            out[:, index] = np.where(default, bool(node.get("default_left")), decided)
        return out


def lightgbm_matrix(booster: Any, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The float matrix LightGBM predicts from (categories as the codes it was trained with),
    and the frame's column behind each of its columns."""
    names = booster.feature_name()
    # LightGBM reads columns by position; names only tell which is which when they match.
    if set(names) <= set(frame.columns):
        frame = frame[names]
    elif len(names) != frame.shape[1]:
        raise BoosterUnsupported(f"LightGBM expects {len(names)} columns, got {frame.shape[1]}")
    else:
        names = list(frame.columns)
    columns = []
    categorical = iter(booster.pandas_categorical or [])
    for name in names:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = pd.Categorical(column, categories=next(categorical)).codes
            columns.append(np.where(codes < 0, np.nan, codes.astype("float64")))
        else:
            columns.append(column.to_numpy(dtype="float64", na_value=np.nan))
    matrix = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    return matrix, names


def lightgbm_values(
    booster: Any, rows: pd.DataFrame, background: pd.DataFrame, probability: bool
) -> MemberShap:
    dump = booster.dump_model()
    objective = str(dump.get("objective", ""))
    if int(dump.get("num_tree_per_iteration", 1)) != 1:
        raise BoosterUnsupported("multiclass LightGBM is explained model-agnostically")
    slope = 1.0
    if probability:
        if not objective.startswith(("binary", "cross_entropy")):
            raise BoosterUnsupported(f"LightGBM objective {objective!r} is not logistic")
        for word in objective.split():
            if word.startswith("sigmoid:"):
                slope = float(word.split(":", 1)[1])
    infos = dump["tree_info"]
    # Random-forest mode averages its trees; a sigmoid with slope s is the logistic of s·F.
    scale = slope / len(infos) if dump.get("average_output") and infos else slope
    trees = [_LightGBMTree(info["tree_structure"], scale) for info in infos]
    data_x, columns = lightgbm_matrix(booster, rows)
    data_b, _ = lightgbm_matrix(booster, background)
    background_left = [tree.goes_left(data_b) for tree in trees]
    arrays = [tree.arrays for tree in trees]
    native = np.asarray(booster.predict(data_x, raw_score=True), dtype="float64") * (
        slope if probability else 1.0
    )
    # Rows in chunks: each needs a bool per tree node (a large model has 10^5 nodes).
    nodes = max(1, sum(len(tree.nodes) for tree in trees))
    chunk = max(1, MAX_DECISIONS // nodes)
    chunks: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    base = 0.0
    for start in range(0, len(data_x), chunk):
        part = data_x[start : start + chunk]
        rows_left = [tree.goes_left(part) for tree in trees]
        # The trees as read here must predict what LightGBM predicts, or the values explain
        # another model: checked on every explained row before anything is computed.
        mine = raw_output(arrays, rows_left)
        expected = native[start : start + chunk]
        if not np.allclose(mine, expected, rtol=1e-9, atol=1e-9):
            gap = float(np.abs(mine - expected).max())
            raise BoosterUnsupported(f"LightGBM trees read back differ from its output ({gap})")
        found, base, output = interventional_shap(
            arrays, rows_left, background_left, data_x.shape[1],
            logistic if probability else identity,
        )  # fmt: skip
        chunks.append(found)
        outputs.append(output)
    values = np.concatenate(chunks) if chunks else np.zeros((0, data_x.shape[1]))
    output = np.concatenate(outputs) if outputs else np.zeros(0)
    return MemberShap(values, base, output, columns)
