"""Reweighing (Kamiran & Calders, 2012): sample weights that make label and group independent.

w(g, y) = P(g) P(y) / P(g, y), with g the joint group over ALL sensitive features (their
intersection: reweighing sex and race one at a time would leave, say, Black women
under-weighted). Under these weights every group has the overall positive rate and the weights
sum to the row count, so a learner trained on them sees no association between group and label
and no change of scale. It is a pre-processing mitigation that needs no change to the learner.

One exception to the formula: a joint group in which every row has the same label (7 people
who never worked, none earning >50K) cannot be balanced by any weight; the formula would
shrink it to P(y) of its size and the total below N. Its rows keep weight 1 instead.

The table form (one weight per joint group and label) is what the bias stage stores: the train
stage applies it to any data with the same columns, matching values as strings the way
`metrics.group_codes` names groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairpilot_jobs.bias.metrics import canonical_value, group_codes


def _joint_codes(
    df: pd.DataFrame, sensitive_features: list[str]
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Codes of the joint group per row, and for each joint code its per-feature codes.

    Features are combined one at a time and re-factorised after each step, so codes stay below
    the row count however many features and groups there are (no overflow of a mixed radix).
    """
    joint = np.zeros(len(df), dtype=np.intp)
    combos = np.zeros((1, 0), dtype=np.intp)  # joint code -> codes of the features so far
    names: list[list[str]] = []
    for feature in sensitive_features:
        codes, feature_names = group_codes(df[feature])
        names.append(feature_names)
        width = max(len(feature_names), 1)
        stacked, uniques = pd.factorize(joint * width + codes, sort=True)
        joint = np.asarray(stacked, dtype=np.intp)
        uniques = np.asarray(uniques, dtype=np.intp)
        combos = np.column_stack([combos[uniques // width], uniques % width])
    return joint, combos, names


def reweighing_table(
    df: pd.DataFrame, sensitive_features: list[str], label_positive: np.ndarray
) -> list[dict[str, Any]]:
    """One entry per (joint group, label) that occurs: its row count and weight.

    [{"groups": {"sex": "Male", "race": "White"}, "labelPositive": True, "count": 7000,
      "weight": 0.87}, ...], sorted by group names, negative label first.
    """
    label = np.asarray(label_positive, dtype=bool)
    if len(label) != len(df):
        raise ValueError("label_positive must have one entry per row")
    if not sensitive_features:
        raise ValueError("reweighing needs at least one sensitive feature")
    total = len(df)
    if total == 0:
        return []
    joint, combos, names = _joint_codes(df, sensitive_features)
    cells = np.bincount(joint * 2 + label, minlength=2 * len(combos)).reshape(-1, 2)
    group_totals = cells.sum(axis=1)
    label_totals = cells.sum(axis=0)
    # P(g) P(y) / P(g, y) = n_g n_y / (N n_gy). A joint group with one label value only cannot
    # be made independent of the label by any weight; its rows keep weight 1, so that, as for
    # every other group, its weighted size is its size and the weights still sum to N.
    weights = np.ones_like(cells, dtype="float64")
    both = (cells > 0).all(axis=1)
    weights[both] = group_totals[both, None] * label_totals[None, :] / (total * cells[both])
    table = []
    # Joint codes are in lexicographic order of the (sorted) per-feature codes: name order.
    for g in range(len(combos)):
        groups = {feature: names[f][combos[g, f]] for f, feature in enumerate(sensitive_features)}
        for y in (0, 1):
            count = int(cells[g, y])
            if count == 0:
                continue
            table.append(
                {
                    "groups": groups,
                    "labelPositive": bool(y),
                    "count": count,
                    "weight": float(weights[g, y]),
                }
            )
    return table


def apply_reweighing(
    df: pd.DataFrame,
    table: list[dict[str, Any]],
    sensitive_features: list[str],
    label_positive: np.ndarray,
) -> np.ndarray:
    """Per-row weights from a table; combinations the table does not know get 1.0.

    Values are compared as strings, missing ones as "(missing)"; a value spelled differently
    but equal (1 and 1.0, True and true: CSV and JSON round trips do this) still matches.
    The lookup loops over the distinct combinations present, never over rows.
    """
    label = np.asarray(label_positive, dtype=bool)
    if len(label) != len(df):
        raise ValueError("label_positive must have one entry per row")
    if len(df) == 0:
        return np.ones(0, dtype="float64")
    exact: dict[tuple[Any, ...], float] = {}
    loose: dict[tuple[Any, ...], float] = {}
    for entry in table:
        values = tuple(str(entry["groups"][f]) for f in sensitive_features)
        positive = bool(entry["labelPositive"])
        exact[(*values, positive)] = float(entry["weight"])
        loose.setdefault((*(canonical_value(v) for v in values), positive), float(entry["weight"]))
    joint, combos, names = _joint_codes(df, sensitive_features)
    weights = np.ones((len(combos), 2), dtype="float64")
    for g, codes in enumerate(combos):
        values = tuple(names[f][c] for f, c in enumerate(codes))
        for y in (False, True):
            key = (*values, y)
            fallback = loose.get((*(canonical_value(v) for v in values), y), 1.0)
            weights[g, int(y)] = exact.get(key, fallback)
    return weights[joint, label.astype(np.intp)]


def reweighed_rates(
    values: pd.Series, label_positive: np.ndarray, weights: np.ndarray
) -> dict[str, dict[str, float]]:
    """Each group's positive rate of the label as the data has it and as a learner trained with
    `weights` sees it: sum(w y) / sum(w) over the group's rows. Groups named as everywhere
    else (`metrics.group_codes`)."""
    codes, names = group_codes(values)
    label = np.asarray(label_positive, dtype="float64")
    weights = np.asarray(weights, dtype="float64")
    size = len(names)
    counts = np.bincount(codes, minlength=size)
    positives = np.bincount(codes, weights=label, minlength=size)
    weight_sums = np.bincount(codes, weights=weights, minlength=size)
    weighted_positives = np.bincount(codes, weights=weights * label, minlength=size)
    return {
        name: {
            "count": int(counts[i]),
            "positiveRate": float(positives[i] / counts[i]),
            "reweighedPositiveRate": float(weighted_positives[i] / weight_sums[i]),
        }
        for i, name in enumerate(names)
        if counts[i]
    }


def mitigation_effect(
    df: pd.DataFrame,
    table: list[dict[str, Any]],
    label_positive: np.ndarray,
    privileged: dict[str, str],
) -> dict[str, Any]:
    """What reweighing does to each sensitive feature's label bias: per group, the positive
    rate before and after (the weights as the train stage applies them, `apply_reweighing`),
    and the label's disparate impact (LDI = q_d / q_a) and difference in positive proportions
    (DPL = q_a - q_d) against the privileged group, before and after.

    After reweighing every joint group has the overall positive rate, so both measures are at
    their ideal (1 and 0) except where a group holds rows of one label only (kept at weight 1):
    the report says so rather than promise a perfect balance.
    """
    features = list(privileged)
    weights = apply_reweighing(df, table, features, label_positive)
    effect: dict[str, Any] = {}
    for feature, chosen in privileged.items():
        rates = reweighed_rates(df[feature], label_positive, weights)
        base = rates.get(chosen)
        compared: dict[str, dict[str, float | None]] = {}
        for group, rate in rates.items():
            if base is None or group == chosen:
                continue
            data, weighted = rate["positiveRate"], rate["reweighedPositiveRate"]
            ratio = _ratio(weighted, base["reweighedPositiveRate"])
            compared[group] = {
                "LDI": _ratio(data, base["positiveRate"]),
                # Sums of float weights differ in the 13th digit where the rates are equal:
                # 12 decimals keep every real difference and show a balanced group as 1 and 0.
                "reweighedLDI": None if ratio is None else round(ratio, 12),
                "DPL": base["positiveRate"] - data,
                "reweighedDPL": round(base["reweighedPositiveRate"] - weighted, 12),
            }
        effect[feature] = {"privilegedGroup": chosen, "groups": rates, "metrics": compared}
    return effect


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None
