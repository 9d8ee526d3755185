"""Exact TreeSHAP over AutoGluon's ensemble of gradient-boosted trees.

AutoGluon's best model is usually a weighted ensemble of LightGBM, XGBoost and CatBoost
members (each possibly bagged over folds). Each member's booster computes exact path-dependent
TreeSHAP natively (LightGBM `pred_contrib`, XGBoost `pred_contribs`, CatBoost `ShapValues`)
in its margin (log-odds) space, in milliseconds. Shapley values are linear in the model, so
the ensemble's values are the members' values combined by the ensemble weights:

- regression: the output is the weighted sum of member outputs, so the combination is exact;
- binary classification: the ensemble averages member *probabilities*, so each member's margin
  values are first mapped to its probability change with the rescale rule
  (phi_p = phi_m * (sigmoid(m(x)) - sigmoid(E m)) / (m(x) - E m)), which keeps additivity
  exact; the base value is the weighted mean of sigmoid(E m).

Anything else (multiclass, stacked layers, non-tree members, features AutoGluon derived from
several columns) raises `TreeUnsupported`, and the caller falls back to a model-agnostic
explainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


class TreeUnsupported(Exception):
    """The ensemble cannot be explained exactly with TreeSHAP; the message says why."""


@dataclass
class MemberValues:
    name: str
    weight: float
    margin_values: np.ndarray  # (rows, features) in the member's margin space
    margin_base: np.ndarray  # (rows,)


def leaf_members(trainer: Any, model: Any, weight: float = 1.0) -> list[tuple[Any, float]]:
    """Flatten weighted and bagged ensembles into (leaf model, weight) pairs."""
    from autogluon.core.models import BaggedEnsembleModel, WeightedEnsembleModel

    if isinstance(model, WeightedEnsembleModel):
        out: list[tuple[Any, float]] = []
        for name, member_weight in model._get_model_weights().items():
            if member_weight > 0:
                out += leaf_members(
                    trainer, trainer.load_model(name), weight * float(member_weight)
                )
        return out
    if isinstance(model, BaggedEnsembleModel):
        children = list(model.models)
        if getattr(model, "_child_oof", False) or not children:
            raise TreeUnsupported(f"{model.name} has no fold models to explain")
        out = []
        for child in children:
            out.append((_BaggedChild(model, model.load_child(child)), weight / len(children)))
        return out
    return [(model, weight)]


class _BaggedChild:
    """A fold model seen through its bag's preprocessing."""

    def __init__(self, bag: Any, child: Any) -> None:
        self.bag, self.child = bag, child
        self.name = f"{bag.name}/{child.name}"

    def preprocess(self, frame: pd.DataFrame) -> Any:
        return self.child.preprocess(self.bag.preprocess(frame, model=self.child))


def _member_values(
    model: Any, internal: pd.DataFrame, features: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Margin-space SHAP values of one leaf model, mapped onto `features`."""
    from autogluon.tabular.models import CatBoostModel, LGBModel, XGBoostModel

    leaf = model.child if isinstance(model, _BaggedChild) else model
    if not isinstance(leaf, LGBModel | XGBoostModel | CatBoostModel):
        raise TreeUnsupported(f"{leaf.name} ({type(leaf).__name__}) is not a supported tree model")
    transformed = model.preprocess(internal)
    if isinstance(leaf, LGBModel):
        raw = leaf.model.predict(transformed, pred_contrib=True)
        columns = list(transformed.columns)
        return _project(raw, columns, features, leaf.name)
    if isinstance(leaf, XGBoostModel):
        import xgboost

        booster = leaf.model.get_booster()
        best = getattr(leaf.model, "best_iteration", None)
        kwargs = {"iteration_range": (0, best + 1)} if best is not None else {}
        raw = booster.predict(xgboost.DMatrix(transformed), pred_contribs=True, **kwargs)
        return _project(raw, _xgboost_columns(leaf), features, leaf.name)
    from catboost import Pool

    pool = Pool(transformed, cat_features=leaf.model.get_cat_feature_indices())
    raw = leaf.model.get_feature_importance(data=pool, type="ShapValues")
    return _project(raw, list(transformed.columns), features, leaf.name)


def _xgboost_columns(model: Any) -> list[str]:
    """Original column of every one-hot column AutoGluon's XGBoost preprocessing creates."""
    generator = getattr(model, "_ohe_generator", None)
    if generator is None:
        raise TreeUnsupported(f"{model.name}: unknown XGBoost preprocessing")
    columns: list[str] = []
    encoder = generator.ohe_encs
    for index, column in enumerate(generator.cat_cols):
        width = len(encoder.categories_[index]) - (1 if encoder.drop is not None else 0)
        columns += [column] * width
    return columns + list(generator.other_cols)


def _project(
    raw: np.ndarray, columns: list[str], features: list[str], name: str
) -> tuple[np.ndarray, np.ndarray]:
    raw = np.asarray(raw, dtype="float64")
    if raw.ndim != 2 or raw.shape[1] != len(columns) + 1:
        raise TreeUnsupported(f"{name}: {raw.shape} contributions for {len(columns)} columns")
    index = {feature: i for i, feature in enumerate(features)}
    unknown = sorted(set(columns) - set(index))
    if unknown:
        raise TreeUnsupported(f"{name} uses derived features {unknown[:5]}")
    projection = np.zeros((len(columns), len(features)))
    projection[np.arange(len(columns)), [index[c] for c in columns]] = 1.0
    return raw[:, :-1] @ projection, raw[:, -1]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|


def tree_shap(predictor: Any, rows: pd.DataFrame) -> dict[str, Any]:
    """Exact ensemble TreeSHAP for `rows` (original columns, no label).

    Returns values (rows, features), base values (rows,), the output they add up to, and
    the members with their weights.
    """
    kind = predictor.problem_type
    if kind not in ("binary", "regression"):
        raise TreeUnsupported(f"{kind} problems are explained model-agnostically")
    features = list(rows.columns)
    internal = predictor.transform_features(rows)
    derived = sorted(set(internal.columns) - set(features))
    if derived:
        raise TreeUnsupported(f"AutoGluon derived features {derived[:5]} from several columns")
    trainer = predictor._learner.load_trainer()
    best = trainer.load_model(predictor.model_best)
    members = leaf_members(trainer, best)
    values = np.zeros((len(rows), len(features)))
    base = np.zeros(len(rows))
    weights: dict[str, float] = {}
    for model, weight in members:
        phi, bias = _member_values(model, internal, features)
        if kind == "binary":
            margin = bias + phi.sum(axis=1)
            delta = margin - bias
            p_x, p_base = _sigmoid(margin), _sigmoid(bias)
            slope = np.where(
                np.abs(delta) > 1e-12,
                (p_x - p_base) / np.where(np.abs(delta) > 1e-12, delta, 1.0),
                p_base * (1 - p_base),
            )
            phi, bias = phi * slope[:, None], p_base
        values += weight * phi
        base += weight * bias
        weights[model.name] = weights.get(model.name, 0.0) + weight
    return {"values": values, "base": base, "features": features, "members": weights}
