"""Which label value is the favourable one, and which rows carry it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairpilot.errors import JobError


def normalise(value: Any) -> str:
    """One spelling per value, so `1`, `1.0` and `"1"` (YAML, CSV, JSON) all match."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text.lower() if text.lower() in ("true", "false") else text


def positive_mask(label: pd.Series, positive: Any) -> np.ndarray:
    codes, uniques = pd.factorize(label)
    hits = np.array([normalise(u) == normalise(positive) for u in uniques], dtype=bool)
    return hits[codes] & (codes >= 0) if len(uniques) else np.zeros(len(label), dtype=bool)


def resolve_positive_label(label: pd.Series, given: Any | None) -> tuple[Any, str]:
    """The positive label and why it was chosen; errors name the values that exist."""
    counts = label.dropna().value_counts()
    values = {normalise(v): v for v in counts.index}
    if len(values) < 2:
        raise JobError(
            "SingleClassLabel",
            f"label {label.name!r} has {len(values)} distinct value(s); bias needs two",
        )
    if given is not None:
        if normalise(given) not in values:
            shown = ", ".join(map(repr, list(values.values())[:20]))
            raise JobError(
                "UnknownPositiveLabel",
                f"positiveLabel {given!r} is not a value of {label.name!r}; values are {shown}",
            )
        return values[normalise(given)], "given in the spec"
    for candidate in ("1", "true"):
        if set(values) == {"0", candidate} or set(values) == {"false", candidate}:
            return values[candidate], f"the label is binary and {candidate} means yes"
    if len(values) == 2:
        rarer = counts.index[-1]
        return (
            rarer,
            "the less frequent of the label's two values (usually the outcome of interest)",
        )
    raise JobError(
        "PositiveLabelRequired",
        f"label {label.name!r} has {len(values)} values; set positiveLabel to the favourable one",
    )
