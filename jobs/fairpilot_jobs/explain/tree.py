"""Exact interventional TreeSHAP over AutoGluon's ensemble of gradient-boosted trees.

AutoGluon's best model is usually a weighted ensemble of LightGBM, XGBoost and CatBoost
members (each possibly bagged over folds). What is explained is the predictor's own output:
P(positive class) for binary classification, the predicted value for regression. Each member
is explained in that output space with interventional TreeSHAP over the same background rows
(`boosters.py`: the method each booster supports exactly), so that

- every member's base value is its mean output over the background, and its values add up
  to its output on each row;
- Shapley values are linear in the model, and the ensemble's output is the weighted sum of
  its members' outputs (probabilities for classification), so the ensemble's values are the
  members' values combined by the ensemble weights, and its base value is E[f(X)] over the
  background: the model's average prediction, the number every report level states.

Anything else (multiclass, stacked layers, non-tree members, features AutoGluon derived from
several columns) raises `TreeUnsupported`, and the caller falls back to a model-agnostic
explainer over the same background.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairpilot_jobs.explain.boosters import (
    BoosterUnsupported,
    MemberShap,
    catboost_values,
    lightgbm_values,
    xgboost_values,
)


class TreeUnsupported(Exception):
    """The ensemble cannot be explained exactly with TreeSHAP; the message says why."""


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
    model: Any, rows: pd.DataFrame, background: pd.DataFrame, features: list[str], binary: bool
) -> MemberShap:
    """Interventional SHAP of one leaf model, mapped onto `features`."""
    from autogluon.tabular.models import CatBoostModel, LGBModel, XGBoostModel

    leaf = model.child if isinstance(model, _BaggedChild) else model
    if not isinstance(leaf, LGBModel | XGBoostModel | CatBoostModel):
        raise TreeUnsupported(f"{leaf.name} ({type(leaf).__name__}) is not a supported tree model")
    x, b = model.preprocess(rows), model.preprocess(background)
    try:
        if isinstance(leaf, LGBModel):
            found = lightgbm_values(leaf.model, x, b, binary)
        elif isinstance(leaf, XGBoostModel):
            found = xgboost_values(leaf.model, x, b, binary, _xgboost_columns(leaf))
        else:
            found = catboost_values(leaf.model, x, b, binary)
    except BoosterUnsupported as exc:
        raise TreeUnsupported(f"{leaf.name}: {exc}") from exc
    return MemberShap(
        _project(found.values, found.columns, features, leaf.name),
        found.base,
        found.output,
        features,
    )


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


def _project(values: np.ndarray, columns: list[str], features: list[str], name: str) -> np.ndarray:
    """Values per member column -> values per feature (one-hot columns summed into theirs)."""
    values = np.asarray(values, dtype="float64")
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise TreeUnsupported(f"{name}: {values.shape} values for {len(columns)} columns")
    index = {feature: i for i, feature in enumerate(features)}
    unknown = sorted(set(columns) - set(index))
    if unknown:
        raise TreeUnsupported(f"{name} uses derived features {unknown[:5]}")
    projection = np.zeros((len(columns), len(features)))
    projection[np.arange(len(columns)), [index[c] for c in columns]] = 1.0
    return values @ projection


def tree_shap(predictor: Any, rows: pd.DataFrame, background: pd.DataFrame) -> dict[str, Any]:
    """Exact ensemble TreeSHAP for `rows` against `background` (original columns, no label).

    Returns values (rows, features), base values (rows,), each member's weight, and the
    output the values add up to.
    """
    kind = predictor.problem_type
    if kind not in ("binary", "regression"):
        raise TreeUnsupported(f"{kind} problems are explained model-agnostically")
    features = list(rows.columns)
    internal = predictor.transform_features(rows)
    internal_background = predictor.transform_features(background[features])
    derived = sorted(set(internal.columns) - set(features))
    if derived:
        raise TreeUnsupported(f"AutoGluon derived features {derived[:5]} from several columns")
    trainer = predictor._learner.load_trainer()
    best = trainer.load_model(predictor.model_best)
    members = leaf_members(trainer, best)
    values = np.zeros((len(rows), len(features)))
    base = 0.0
    output = np.zeros(len(rows))
    weights: dict[str, float] = {}
    for model, weight in members:
        found = _member_values(model, internal, internal_background, features, kind == "binary")
        values += weight * found.values
        base += weight * found.base
        output += weight * found.output
        weights[model.name] = weights.get(model.name, 0.0) + weight
    return {
        "values": values,
        "base": np.full(len(rows), base),
        "output": output,
        "features": features,
        "members": weights,
    }
