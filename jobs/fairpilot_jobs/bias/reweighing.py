"""Reweighing (Kamiran & Calders, 2012): sample weights that make label and group independent.

w(g, y) = P(g) P(y) / P(g, y), with g the joint group over all sensitive features. Training on
these weights is a pre-processing mitigation that needs no change to the learner. The table
form (one weight per group and label) is what the bias stage stores, so that the train stage
can apply it to any data that has the same columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairpilot_jobs.bias.metrics import MISSING_GROUP


def _group_keys(df: pd.DataFrame, sensitive_features: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            f: df[f].astype(object).where(df[f].notna(), MISSING_GROUP).astype(str)
            for f in sensitive_features
        }
    )


def reweighing_table(
    df: pd.DataFrame, sensitive_features: list[str], label_positive: np.ndarray
) -> list[dict[str, Any]]:
    """One entry per (joint group, label) present: its count and weight."""
    keys = _group_keys(df, sensitive_features)
    keys["__positive__"] = np.asarray(label_positive, dtype=bool)
    total = len(keys)
    joint = keys.groupby([*sensitive_features, "__positive__"], sort=True).size()
    group_totals = keys.groupby(sensitive_features, sort=True).size()
    label_totals = keys.groupby("__positive__").size()
    table = []
    for index, count in joint.items():
        *group, positive = index if isinstance(index, tuple) else (index,)
        group_key = tuple(group) if len(group) > 1 else group[0]
        expected = group_totals[group_key] * label_totals[positive] / total
        table.append(
            {
                "groups": dict(zip(sensitive_features, group, strict=True)),
                "labelPositive": bool(positive),
                "count": int(count),
                "weight": float(expected / count),
            }
        )
    return table


def apply_reweighing(
    df: pd.DataFrame,
    table: list[dict[str, Any]],
    sensitive_features: list[str],
    label_positive: np.ndarray,
) -> np.ndarray:
    """Per-row weights from a table; combinations the table does not know get 1.0."""
    keys = _group_keys(df, sensitive_features)
    keys["__positive__"] = np.asarray(label_positive, dtype=bool)
    lookup = pd.DataFrame(
        [
            {
                **entry["groups"],
                "__positive__": bool(entry["labelPositive"]),
                "__weight__": float(entry["weight"]),
            }
            for entry in table
        ],
        columns=[*sensitive_features, "__positive__", "__weight__"],
    )
    lookup[sensitive_features] = lookup[sensitive_features].astype(str)
    merged = keys.merge(lookup, on=[*sensitive_features, "__positive__"], how="left")
    return merged["__weight__"].fillna(1.0).to_numpy(dtype="float64")
