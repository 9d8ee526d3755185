"""Exact interventional TreeSHAP in a model's output space, for trees given as plain arrays.

shap's TreeExplainer computes this for XGBoost (and CatBoost computes it natively), but it
misreads LightGBM's categorical splits (`x in {a, c, f}`), which AutoGluon's LightGBM uses for
every categorical column. This module computes the same values from the tree structure and
a per-node "goes left" matrix, so the booster's own split semantics (categorical sets, missing
values, default directions) are applied by the adapter that builds that matrix
(`boosters.py`), and nothing here needs to know them.

What is computed (Lundberg et al. 2020, "From local explanations to global understanding with
explainable AI for trees", interventional feature perturbation), for every explained row x and
background row b:

- the Shapley values of the game v(S) = F(x_S, b_rest) of the raw (margin) output F, which
  for a sum of trees is a sum over leaves: a leaf is reached by the hybrid point iff every
  feature on its path is taken from a row that satisfies that feature's conditions. With
  a = features only x satisfies and c = features only b satisfies, a leaf of value v gives
  each of the a features v·(a-1)!·c!/(a+c)! and each of the c features -v·a!·(c-1)!/(a+c)!
  (Laberge & Pequignot 2022, "Understanding interventional TreeSHAP");
- mapped to the output space by the link g (identity or logistic) with the rescale rule per
  pair: φ_g(x, b) = φ(x, b)·(g(F(x)) - g(F(b))) / (F(x) - F(b)), as shap does for
  `model_output="probability"`;
- averaged over the background rows.

So the values add up exactly to g(F(x)) - E_b[g(F(b))]: the base value is the model's mean
output over the background. Rows and background rows are grouped by the pattern of path
conditions they satisfy at each leaf, so the work per leaf is one small table and one matrix
product, not a loop over pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Link = Callable[[np.ndarray], np.ndarray]


def identity(z: np.ndarray) -> np.ndarray:
    return z


def logistic(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|


def _logistic_slope(z: np.ndarray) -> np.ndarray:
    p = logistic(z)
    return p * (1.0 - p)


@dataclass(frozen=True)
class TreeArrays:
    """One tree: node i is internal when `left[i] >= 0`; leaves carry `value` (raw output)."""

    left: np.ndarray  # (nodes,) int, -1 at leaves
    right: np.ndarray  # (nodes,) int, -1 at leaves
    feature: np.ndarray  # (nodes,) int, the explained feature a split reads; -1 at leaves
    value: np.ndarray  # (nodes,) float, the leaf's raw output; ignored at internal nodes

    def leaf_paths(self) -> list[tuple[int, list[tuple[int, bool]]]]:
        """(leaf, [(internal node, went left), ...]) for every leaf, root first."""
        out: list[tuple[int, list[tuple[int, bool]]]] = []
        stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
        while stack:
            node, path = stack.pop()
            if self.left[node] < 0:
                out.append((node, path))
                continue
            stack.append((int(self.right[node]), [*path, (node, False)]))
            stack.append((int(self.left[node]), [*path, (node, True)]))
        return out


def raw_output(trees: Sequence[TreeArrays], goes_left: Sequence[np.ndarray]) -> np.ndarray:
    """The sum of the leaf values each row reaches: what the booster predicts as raw score."""
    rows = goes_left[0].shape[0] if goes_left else 0
    total = np.zeros(rows)
    for tree, left in zip(trees, goes_left, strict=True):
        node = np.zeros(rows, dtype=np.int64)
        active = tree.left[node] >= 0
        while active.any():
            index = np.nonzero(active)[0]
            here = node[index]
            node[index] = np.where(left[index, here], tree.left[here], tree.right[here])
            active = tree.left[node] >= 0
        total += tree.value[node]
    return total


def _weights(a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shapley weights of the leaf game: per feature x alone satisfies, per feature b alone."""
    lg = np.vectorize(math.lgamma, otypes=[float])
    total = lg(a + c + 1.0)
    with np.errstate(invalid="ignore"):
        for_x = np.where(a > 0, np.exp(lg(np.maximum(a, 1)) + lg(c + 1.0) - total), 0.0)
        for_b = np.where(c > 0, np.exp(lg(a + 1.0) + lg(np.maximum(c, 1)) - total), 0.0)
    return for_x, for_b


def _patterns(satisfied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a boolean matrix and, for every row, the index of its pattern."""
    if satisfied.shape[1] <= 62:
        codes = satisfied.astype(np.int64) @ (np.int64(1) << np.arange(satisfied.shape[1]))
        unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        return satisfied[first], inverse.reshape(-1)
    unique, inverse = np.unique(satisfied, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


def interventional_shap(
    trees: Sequence[TreeArrays],
    rows_left: Sequence[np.ndarray],
    background_left: Sequence[np.ndarray],
    n_features: int,
    link: Link = identity,
) -> tuple[np.ndarray, float, np.ndarray]:
    """SHAP values (rows, features), the base value and the explained output g(F(x)).

    `rows_left[t]` and `background_left[t]` are (rows, nodes) booleans: whether each row goes
    left at each internal node of tree t, as the booster decides it.
    """
    margin_x = raw_output(trees, rows_left)
    margin_b = raw_output(trees, background_left)
    n, m = len(margin_x), len(margin_b)
    if link is identity:
        scale = None  # every pair weighs 1: the background only enters through its counts
    elif link is logistic:
        delta = margin_x[:, None] - margin_b[None, :]
        close = np.abs(delta) < 1e-12
        scale = np.where(
            close,
            _logistic_slope(margin_x)[:, None] * np.ones((1, m)),
            (logistic(margin_x)[:, None] - logistic(margin_b)[None, :])
            / np.where(close, 1.0, delta),
        )
    else:
        raise ValueError("link must be identity or logistic")
    values = np.zeros((n, n_features))
    for tree, x_left, b_left in zip(trees, rows_left, background_left, strict=True):
        for leaf, path in tree.leaf_paths():
            if not path:
                continue  # a stump adds the same to every row: nothing to attribute
            features = sorted({int(tree.feature[node]) for node, _ in path})
            column = {feature: i for i, feature in enumerate(features)}
            sat_x = np.ones((n, len(features)), dtype=bool)
            sat_b = np.ones((m, len(features)), dtype=bool)
            for node, went_left in path:
                i = column[int(tree.feature[node])]
                sat_x[:, i] &= x_left[:, node] == went_left
                sat_b[:, i] &= b_left[:, node] == went_left
            px, index_x = _patterns(sat_x)
            pb, index_b = _patterns(sat_b)
            x_only = px[:, None, :] & ~pb[None, :, :]  # (P, Q, k)
            b_only = ~px[:, None, :] & pb[None, :, :]
            blocked = (~px[:, None, :] & ~pb[None, :, :]).any(axis=2)
            for_x, for_b = _weights(x_only.sum(axis=2), b_only.sum(axis=2))
            table = float(tree.value[leaf]) * (
                x_only * for_x[..., None] - b_only * for_b[..., None]
            )
            table[blocked] = 0.0
            if not table.any():
                continue
            # share[x, q]: the background's weight in pattern q for row x (sum of its pairs'
            # scale factors over m), so that one product replaces the loop over pairs.
            if scale is None:
                counts = np.bincount(index_b, minlength=len(pb)) / m
                contribution = np.einsum("q,nqk->nk", counts, table[index_x])
            else:
                onehot = np.zeros((m, len(pb)))
                onehot[np.arange(m), index_b] = 1.0 / m
                share = scale @ onehot
                contribution = np.einsum("nq,nqk->nk", share, table[index_x])
            values[:, features] += contribution
    output_x, output_b = link(margin_x), link(margin_b)
    return values, float(output_b.mean()), output_x
