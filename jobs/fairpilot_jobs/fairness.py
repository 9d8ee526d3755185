"""A trained model's fairness on held-out data: per group of each sensitive feature (and of
their intersections), the measures the gates bound, and the gates' verdicts.

Per group: count, selection rate, true/false positive and false negative rates, precision,
accuracy and calibration (mean predicted probability of the positive class next to the
observed positive rate), with the post-training metrics of `bias.metrics` (Clarify's names)
against the feature's reference group. The gate measures are fairlearn's, between groups
(api.fairness), over the groups of at least `minGroupSize` rows; smaller groups are listed
and flagged `small`, never compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairpilot.api.fairness import FairnessGate, FairnessMetric, FairnessOptions
from fairpilot.errors import JobError
from fairpilot_jobs.bias.metrics import _finite, feature_bias, group_codes

JOINT = " × "  # the name of an intersection: "sex × race"
MAX_INTERSECTION_FEATURES = 3  # more makes groups of a few rows each: noise, and 2^k columns


def measure(
    heldout: pd.DataFrame,
    truth: pd.Series,
    predicted: pd.Series,
    probability: pd.Series | None,
    positive: Any,
    options: FairnessOptions,
    split: str,
) -> dict[str, Any]:
    """The fairness block of a training result (`result.json`, `fairness`)."""
    features = list(options.sensitive_features)
    missing = [f for f in features if f not in heldout.columns]
    if missing:
        raise JobError(
            "SensitiveFeatureNotFound",
            f"fairness.sensitiveFeatures {missing} are not columns of the {split} data; "
            f"columns are: {', '.join(map(str, list(heldout.columns)[:50]))}",
        )
    label = np.asarray(truth.astype(str) == str(positive))
    chosen = np.asarray(predicted.astype(str) == str(positive))
    score = None if probability is None else np.asarray(probability, dtype="float64")
    columns = {feature: heldout[feature] for feature in features}
    if 2 <= len(features) <= MAX_INTERSECTION_FEATURES:
        columns[JOINT.join(features)] = joint_groups(heldout, features)
    measured = {
        name: _feature(values.rename(name), label, chosen, score, options.min_group_size)
        for name, values in columns.items()
    }
    gates = [check(gate, measured, split) for gate in expand(options.gates, features)]
    return {
        "split": split,
        "rows": len(heldout),
        "positiveLabel": plain_label(positive),
        "minGroupSize": options.min_group_size,
        "features": {name: m for name, m in measured.items() if JOINT not in name},
        "intersections": {name: m for name, m in measured.items() if JOINT in name},
        "gates": gates,
    }


def joint_groups(frame: pd.DataFrame, features: list[str]) -> pd.Series:
    """Each row's group at the intersection of `features` ("Female × Black"); missing where any
    of them is (it then falls in the "(missing)" group, as a single feature's missing values)."""
    joint = frame[features].astype(str).agg(JOINT.join, axis=1)
    return joint.where(frame[features].notna().all(axis=1))


def plain_label(value: Any) -> Any:
    """A label as JSON has it: numbers and booleans as they are, anything else as text."""
    value = value.item() if isinstance(value, np.generic) else value
    return value if isinstance(value, int | float | bool) else str(value)


def _feature(
    values: pd.Series,
    label: np.ndarray,
    chosen: np.ndarray,
    score: np.ndarray | None,
    min_group_size: int,
) -> dict[str, Any]:
    found = feature_bias(values, label, chosen, min_group_size=min_group_size).to_dict()
    codes, names = group_codes(values)  # the names feature_bias gave the groups
    for index, name in enumerate(names):
        group = found["groups"].get(name)
        if group is None:
            continue
        rows = codes == index
        selected = chosen[rows].sum()
        group["precision"] = (
            _finite(float((label[rows] & chosen[rows]).sum() / selected)) if (selected) else None
        )
        if score is not None:
            # Calibration: what the model says on average, next to what happened.
            group["meanScore"] = _finite(float(score[rows].mean()))
            group["calibrationGap"] = _finite(float(score[rows].mean() - label[rows].mean()))
        group["small"] = group["count"] < min_group_size
        # Exact (Clopper-Pearson) 95% intervals: a small group's rate shows its uncertainty.
        positives = int(label[rows].sum())
        group["selectionRateInterval"] = exact_interval(int(selected), int(rows.sum()))
        group["truePositiveRateInterval"] = exact_interval(
            int((label[rows] & chosen[rows]).sum()), positives
        )
        group["_selected"] = int(selected)
    found["summary"] = summary(found["groups"])
    found["summary"] |= intervals(found["groups"], found["summary"])
    for group in found["groups"].values():
        group.pop("_selected", None)
    return found


CONFIDENCE = 0.95


def exact_interval(successes: int, trials: int) -> list[float] | None:
    """Clopper-Pearson interval of a rate: it never claims more than the counts allow."""
    from scipy.stats import beta

    if trials <= 0:
        return None
    tail = (1 - CONFIDENCE) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = (
        1.0 if successes == trials else float(beta.ppf(1 - tail, successes + 1, trials - successes))
    )
    return [low, high]


def intervals(groups: dict[str, dict[str, Any]], totals: dict[str, Any]) -> dict[str, Any]:
    """95% intervals of the disparate impact (Katz's log method) and of the statistical parity
    difference (Wald), between the lowest and the highest selection groups."""
    from scipy.stats import norm

    out: dict[str, Any] = {
        "disparateImpactInterval": None,
        "statisticalParityDifferenceInterval": None,
    }
    low, high = totals.get("lowestSelectionGroup"), totals.get("highestSelectionGroup")
    if low is None or high is None:
        return out
    z = float(norm.ppf(1 - (1 - CONFIDENCE) / 2))
    (k1, n1), (k2, n2) = ((groups[g]["_selected"], groups[g]["count"]) for g in (low, high))
    r1, r2 = k1 / n1, k2 / n2
    below, above = difference_bounds(r1, n1, r2, n2, z)
    out["statisticalParityDifferenceInterval"] = [max(-1.0, below), min(1.0, above)]
    if k1 > 0 and k2 > 0:
        out["disparateImpactInterval"] = list(ratio_bounds(r1, n1, r2, n2, z))
    return out


def difference_bounds(r1: float, n1: int, r2: float, n2: int, z: float) -> tuple[float, float]:
    """r2 - r1 give or take z standard errors (Wald)."""
    error = z * np.sqrt(r1 * (1 - r1) / n1 + r2 * (1 - r2) / n2)
    return float(r2 - r1 - error), float(r2 - r1 + error)


def ratio_bounds(r1: float, n1: int, r2: float, n2: int, z: float) -> tuple[float, float]:
    """r1 / r2 give or take z standard errors of its logarithm (Katz); both rates > 0."""
    error = z * np.sqrt((1 - r1) / (n1 * r1) + (1 - r2) / (n2 * r2))
    return float(r1 / r2 * np.exp(-error)), float(r1 / r2 * np.exp(error))


def summary(groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The gate measures over the groups large enough to compare (fairlearn's definitions)."""
    compared = {name: g for name, g in groups.items() if not g["small"]}
    out: dict[str, Any] = {
        "groupsCompared": len(compared),
        "groupsTooSmall": len(groups) - len(compared),
    }
    if len(compared) < 2:
        return out | {measure.value: None for measure in FairnessMetric}

    def spread(key: str) -> tuple[float | None, str | None, str | None]:
        rates: dict[str, float] = {
            n: rate for n, g in compared.items() if (rate := g.get(key)) is not None
        }
        if len(rates) < 2:
            return None, None, None
        low, high = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)
        return rates[high] - rates[low], low, high

    selection, low, high = spread("predictedPositiveRate")
    rates = {n: g["predictedPositiveRate"] for n, g in compared.items()}
    ratio = None
    if low is not None and high is not None and rates[high]:
        ratio = rates[low] / rates[high]
    opportunity, _, _ = spread("truePositiveRate")
    false_alarms, _, _ = spread("falsePositiveRate")
    odds = None if opportunity is None or false_alarms is None else max(opportunity, false_alarms)
    return out | {
        FairnessMetric.DISPARATE_IMPACT.value: _finite(ratio),
        FairnessMetric.STATISTICAL_PARITY_DIFFERENCE.value: _finite(selection),
        FairnessMetric.EQUAL_OPPORTUNITY_DIFFERENCE.value: _finite(opportunity),
        FairnessMetric.EQUALIZED_ODDS_DIFFERENCE.value: _finite(odds),
        "lowestSelectionGroup": low,
        "highestSelectionGroup": high,
    }


def expand(gates: list[FairnessGate], features: list[str]) -> list[tuple[FairnessGate, str]]:
    """Each gate with each feature it applies to (its own, else every sensitive feature)."""
    return [
        (gate, feature)
        for gate in gates
        for feature in ([gate.feature] if gate.feature else features)
    ]


def check(
    pair: tuple[FairnessGate, str], measured: dict[str, dict[str, Any]], split: str
) -> dict[str, Any]:
    """One gate on one feature: passed, or why not, with the groups and the numbers."""
    gate, feature = pair
    name = gate.metric.value
    bounds = " and ".join(
        f"{op} {bound:g}" for op, bound in ((">=", gate.min), ("<=", gate.max)) if bound is not None
    )
    verdict: dict[str, Any] = {
        "metric": name, "feature": feature, "min": gate.min, "max": gate.max, "split": split,
    }  # fmt: skip
    found = measured.get(feature)
    if found is None:
        return verdict | {
            "passed": False,
            "value": None,
            "message": f"{name} of {feature!r}: not a sensitive feature measured "
            f"({', '.join(measured)})",
        }
    totals = found["summary"]
    value = totals.get(name)
    if value is None:
        return verdict | {
            "passed": False,
            "value": None,
            "message": f"{name} of {feature!r} on the {split} split cannot be computed: "
            f"{totals['groupsCompared']} group(s) of at least the minimum size",
        }
    passed = (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
    low, high = totals.get("lowestSelectionGroup"), totals.get("highestSelectionGroup")
    groups = found["groups"]
    detail = (
        f" (selection rate {groups[low]['predictedPositiveRate']:.3f} for {low!r} vs "
        f"{groups[high]['predictedPositiveRate']:.3f} for {high!r})"
        if name in (FairnessMetric.DISPARATE_IMPACT, FairnessMetric.STATISTICAL_PARITY_DIFFERENCE)
        and low is not None
        else ""
    )
    return verdict | {
        "passed": passed,
        "value": value,
        "message": f"{name} of {feature!r} on the {split} split is {value:.3f}{detail}, which "
        f"{'meets' if passed else 'misses'} the bound {bounds}",
    }


def gate_verdict(fairness: dict[str, Any] | None) -> dict[str, Any]:
    """The fairness gates as one production-readiness gate (train.production_readiness)."""
    gates = (fairness or {}).get("gates") or []
    if not gates:
        return {"checked": False, "passed": None, "message": "no fairness gate is configured"}
    failed = [g for g in gates if not g["passed"]]
    return {
        "checked": True,
        "passed": not failed,
        "message": "; ".join(g["message"] for g in (failed or gates)),
    }
