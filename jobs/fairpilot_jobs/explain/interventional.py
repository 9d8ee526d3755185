"""Exact interventional TreeSHAP in a model's output space, for trees given as plain arrays.

shap's TreeExplainer computes this for XGBoost (and CatBoost computes it natively), but it
misreads LightGBM's categorical splits (`x in {a, c, f}`, which AutoGluon's LightGBM uses for
every categorical column: shap's C++ keeps the category set in a float and counts categories
from 1). This module computes the same values from the tree structure and a per-node "goes
left" matrix, so the booster's own split semantics (categorical sets, missing values, default
directions) are applied by the adapter that builds that matrix (`boosters.py`), and nothing
here needs to know them.

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
output over the background. The work is a walk of every tree per (row, background row) pair
that visits only the leaves some hybrid of the two reaches, compiled with numba (which shap
itself depends on); it is checked against Shapley values by enumeration in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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


class _ShapleyWeights:
    """The leaf game's weights for up to `size` features, by (a, c): what each of the a
    features only x satisfies gets, (a-1)!·c!/(a+c)!, and each of the c features only b
    satisfies, a!·(c-1)!/(a+c)!. Looked up, not recomputed, for every leaf."""

    def __init__(self, size: int) -> None:
        a = np.arange(size + 1, dtype=float)[:, None]
        c = np.arange(size + 1, dtype=float)[None, :]
        lg = np.vectorize(math.lgamma, otypes=[float])
        total = lg(a + c + 1.0)
        self.for_x = np.where(a > 0, np.exp(lg(np.maximum(a, 1)) + lg(c + 1.0) - total), 0.0)
        self.for_b = np.where(c > 0, np.exp(lg(a + 1.0) + lg(np.maximum(c, 1)) - total), 0.0)

    def __call__(self, a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.for_x[a, c], self.for_b[a, c]


def _flatten(trees: Sequence[TreeArrays]) -> tuple[np.ndarray, ...]:
    """All trees in one set of node arrays (children as absolute indices), and their roots."""
    offsets = np.cumsum([0] + [len(tree.left) for tree in trees])
    left = np.concatenate(
        [np.where(t.left >= 0, t.left + o, -1) for t, o in zip(trees, offsets, strict=False)]
    )
    right = np.concatenate(
        [np.where(t.right >= 0, t.right + o, -1) for t, o in zip(trees, offsets, strict=False)]
    )
    feature = np.concatenate([t.feature for t in trees])
    value = np.concatenate([t.value for t in trees]).astype(np.float64)
    return (
        offsets[:-1].astype(np.int64),
        left.astype(np.int64),
        right.astype(np.int64),
        (feature.astype(np.int64)),
        value,
    )


def _depth(trees: Sequence[TreeArrays]) -> int:
    deepest = 0
    for tree in trees:
        for _, path in tree.leaf_paths():
            deepest = max(deepest, len(path))
    return deepest


_KERNEL: Any = None


def _kernel() -> Any:
    """The per-pair traversal, compiled by numba (a dependency of shap) on first use.

    For one explained row x and one background row b, a tree is walked as every hybrid of
    the two would walk it: where x and b go the same way there is one path; where they part,
    the split's feature is taken from x on one branch and from b on the other, unless an
    earlier split on the path already took it from one of them (then that one decides). A leaf
    reached with a features taken from x and c from b gets the leaf game's Shapley weights.
    """
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    import numba

    @numba.njit(parallel=True, cache=False, nogil=True)
    def kernel(roots, left, right, feature, value, x_left, b_left, scale, w_x, w_b, out):
        n, m = x_left.shape[0], b_left.shape[0]
        depth = w_x.shape[0] + 64
        for i in numba.prange(n):
            source = np.zeros(out.shape[1], np.int8)  # 0: free, 1: from x, 2: from b
            taken = np.empty(depth, np.int64)  # features taken on the current path, in order
            taken_from = np.empty(depth, np.int8)
            st_node = np.empty(2 * depth + 2, np.int64)
            st_base = np.empty(2 * depth + 2, np.int64)
            st_feature = np.empty(2 * depth + 2, np.int64)
            st_from = np.empty(2 * depth + 2, np.int8)
            for j in range(m):
                weight = scale[i, j]
                top = 0
                for root in roots:
                    st_node[0], st_base[0], st_feature[0], st_from[0] = root, 0, -1, 0
                    sp = 1
                    while sp > 0:
                        sp -= 1
                        node, base = st_node[sp], st_base[sp]
                        while top > base:
                            top -= 1
                            source[taken[top]] = 0
                        if st_feature[sp] >= 0:
                            source[st_feature[sp]] = st_from[sp]
                            taken[top] = st_feature[sp]
                            taken_from[top] = st_from[sp]
                            top += 1
                        if left[node] < 0:
                            if top == 0:
                                continue
                            a = 0
                            for t in range(top):
                                if taken_from[t] == 1:
                                    a += 1
                            c = top - a
                            v = value[node] * weight
                            for t in range(top):
                                if taken_from[t] == 1:
                                    out[i, taken[t]] += v * w_x[a, c]
                                else:
                                    out[i, taken[t]] -= v * w_b[a, c]
                            continue
                        f = feature[node]
                        go_x = left[node] if x_left[i, node] else right[node]
                        go_b = left[node] if b_left[j, node] else right[node]
                        if go_x == go_b or source[f] == 1:
                            st_node[sp], st_base[sp], st_feature[sp] = go_x, top, -1
                            sp += 1
                        elif source[f] == 2:
                            st_node[sp], st_base[sp], st_feature[sp] = go_b, top, -1
                            sp += 1
                        else:
                            st_node[sp], st_base[sp], st_feature[sp], st_from[sp] = go_x, top, f, 1
                            sp += 1
                            st_node[sp], st_base[sp], st_feature[sp], st_from[sp] = go_b, top, f, 2
                            sp += 1
                    while top > 0:  # the next tree starts with every feature free
                        top -= 1
                        source[taken[top]] = 0
            for f in range(out.shape[1]):
                out[i, f] /= m

    _KERNEL = kernel
    return kernel


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
        scale = np.ones((n, m))  # every pair weighs 1
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
    if trees and n and m:
        roots, left, right, feature, value = _flatten(trees)
        weights = _ShapleyWeights(max(n_features, _depth(trees)))
        _kernel()(
            roots,
            left,
            right,
            feature,
            value,
            np.ascontiguousarray(np.concatenate(list(rows_left), axis=1)),
            np.ascontiguousarray(np.concatenate(list(background_left), axis=1)),
            np.ascontiguousarray(scale),
            weights.for_x,
            weights.for_b,
            values,
        )
    output_x, output_b = link(margin_x), link(margin_b)
    return values, float(output_b.mean()), output_x
