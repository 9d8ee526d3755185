"""Fairness-constrained operating points: one decision threshold per group of a sensitive
feature, fitted on validation predictions to meet a constraint at the best accuracy.

The search is OxonFair's (`oxonfair.FairPredictor`, built for AutoGluon's predictors): it
computes the accuracy-fairness frontier of per-group score offsets on the validation rows.
Its offsets become plain thresholds on P(positive): OxonFair predicts positive when
p + offset > 1 - p, that is when p > (1 - offset) / 2. Each frontier point is then measured
again with FairPilot's own definitions (`fairpilot_jobs.fairness`, fairlearn's), and the point
chosen is the most accurate one that meets every constraint by those definitions, so that
what the gate checks is what was optimised. The thresholds are stored with the model
(`fairpilot-model.json`, `decisionThresholds`) and applied by `predict`, so that what was
measured is what ships.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import pandas as pd

from fairpilot.api.fairness import FairnessGate, FairnessMetric, FairnessOptions
from fairpilot.errors import JobError
from fairpilot_jobs.fairness import check, difference_bounds, ratio_bounds, summary

log = logging.getLogger(__name__)

MIN_FRONTIER_POINTS = 20
MISSING = "(missing)"


def _oxonfair_measure(metric: FairnessMetric) -> Any:
    from oxonfair import group_metrics as gm

    return {
        FairnessMetric.DISPARATE_IMPACT: gm.disparate_impact,
        FairnessMetric.STATISTICAL_PARITY_DIFFERENCE: gm.demographic_parity,
        FairnessMetric.EQUAL_OPPORTUNITY_DIFFERENCE: gm.equal_opportunity,
        FairnessMetric.EQUALIZED_ODDS_DIFFERENCE: gm.equalized_odds,
    }[metric]


def group_labels(values: pd.Series) -> np.ndarray:
    """The group of each row as text, missing values as one group of their own."""
    return np.asarray(values.astype("string").fillna(MISSING).astype(str))


def decide(probability: np.ndarray, groups: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Positive where P(positive) exceeds its group's threshold (0.5 for a group not fitted)."""
    cut = np.array([thresholds.get(g, 0.5) for g in groups], dtype="float64")
    return np.asarray(probability, dtype="float64") > cut


def fit_thresholds(
    predictor: Any,
    validation: pd.DataFrame,
    probability: np.ndarray,
    truth_positive: np.ndarray,
    feature: str,
    constraints: list[FairnessGate],
    options: FairnessOptions,
) -> dict[str, Any]:
    """Per-group thresholds for `feature` on the validation rows, and the frontier.

    `validation`: the rows as read (with the label), `probability`: the predictor's P(positive)
    on them, `truth_positive`: whether each row's label is the positive one.
    """
    from oxonfair import FairPredictor
    from oxonfair import group_metrics as gm

    if predictor.problem_type != "binary":
        raise JobError(
            "ThresholdsNeedBinary",
            "fairness.method thresholds needs a binary classifier (one threshold per group)",
        )
    groups = group_labels(validation[feature])
    primary = constraints[0]
    # OxonFair is given the scores of the favourable class as its class 1 (not AutoGluon's
    # own class order, whose positive class may be the unfavourable one, "yes" to
    # re-offending), so that its selection rates are those of the favourable outcome.
    scores = np.stack([1 - probability, probability], axis=1)
    fair = FairPredictor(
        lambda rows: scores[np.asarray(rows)],
        {"data": np.arange(len(scores)), "target": truth_positive.astype(int), "groups": groups},
    )
    greater = primary.min is not None
    bound = primary.min if greater else primary.max
    fair.fit(gm.accuracy, _oxonfair_measure(primary.metric), bound, greater_is_better_const=greater)
    names = [str(n) for n in fair.group_encoder.categories_[0]]
    offsets = np.asarray(fair.frontier_thresholds(), dtype="float64")  # groups x points
    candidates = [
        {n: float((1 - offsets[i, column]) / 2) for i, n in enumerate(names)}
        for column in range(offsets.shape[1])
    ]
    candidates = densify(candidates, MIN_FRONTIER_POINTS)
    points = [_point(t, probability, truth_positive, groups, feature, options) for t in candidates]
    default = _point(
        dict.fromkeys(names, 0.5), probability, truth_positive, groups, feature, options
    )
    # Met with a margin of sampling error where any point is, else as measured.
    feasible = [p for p in points if _meets(p, constraints, feature, "cautious")] or [
        p for p in points if _meets(p, constraints, feature)
    ]
    if not feasible:
        closest = max(points, key=lambda p: _slack(p, primary))
        raise JobError(
            "ConstraintUnreachable",
            f"no per-group thresholds on the validation rows meet {primary.metric.value} "
            f"{'>=' if greater else '<='} {bound:g} for {feature!r}: the closest reaches "
            f"{closest['measures'][primary.metric.value]}; loosen the constraint",
        )
    chosen = max(feasible, key=lambda p: p["accuracy"])
    return {
        "feature": feature,
        "method": "oxonfair per-group thresholds on P(positive), fitted on validation rows",
        "thresholds": chosen["thresholds"],
        "validation": {"before": default, "after": chosen},
        "frontier": pareto(points, primary.metric),
    }


def _point(
    thresholds: dict[str, float],
    probability: np.ndarray,
    truth: np.ndarray,
    groups: np.ndarray,
    feature: str,
    options: FairnessOptions,
) -> dict[str, Any]:
    chosen = decide(probability, groups, thresholds)
    per_group: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(groups):
        rows = groups == name
        positives, negatives = truth[rows].sum(), (~truth[rows]).sum()
        per_group[str(name)] = {
            "count": int(rows.sum()),
            "positives": int(positives),
            "negatives": int(negatives),
            "predictedPositiveRate": float(chosen[rows].mean()),
            "truePositiveRate": float((chosen & truth)[rows].sum() / positives)
            if positives
            else None,
            "falsePositiveRate": float((chosen & ~truth)[rows].sum() / negatives)
            if negatives
            else None,
            "small": int(rows.sum()) < options.min_group_size,
        }
    measures = summary(per_group)
    return {
        "thresholds": thresholds,
        "accuracy": float((chosen == truth).mean()),
        "measures": {m.value: measures.get(m.value) for m in FairnessMetric},
        "cautious": cautious(per_group),
        "feature": feature,
    }


# How far inside its bound a constraint is met on the validation rows: one-sided 95%. The
# thresholds are chosen on those rows, and a measure that just meets the bound there misses it
# on new rows about half the time; a margin of sampling error keeps it met on held-out data.
Z = 1.645


def cautious(groups: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Each measure at the cautious end of its sampling error: the lower bound of the
    disparate impact (delta method on log rates), the upper bounds of the differences."""
    compared = {n: g for n, g in groups.items() if not g["small"]}

    def spread(rate: str, size: str) -> tuple[float, float] | None:
        found = {
            n: (g[rate], g[size])
            for n, g in compared.items()
            if g.get(rate) is not None and g[size]
        }
        if len(found) < 2:
            return None
        low = min(found, key=lambda n: found[n][0])
        high = max(found, key=lambda n: found[n][0])
        (r1, n1), (r2, n2) = found[low], found[high]
        return difference_bounds(r1, n1, r2, n2, Z)[1], _log_ratio_bound(r1, n1, r2, n2)

    selection = spread("predictedPositiveRate", "count")
    opportunity = spread("truePositiveRate", "positives")
    alarms = spread("falsePositiveRate", "negatives")
    odds = None if opportunity is None or alarms is None else max(opportunity[0], alarms[0])
    return {
        FairnessMetric.DISPARATE_IMPACT.value: None if selection is None else selection[1],
        FairnessMetric.STATISTICAL_PARITY_DIFFERENCE.value: None
        if selection is None
        else selection[0],
        FairnessMetric.EQUAL_OPPORTUNITY_DIFFERENCE.value: None
        if opportunity is None
        else opportunity[0],
        FairnessMetric.EQUALIZED_ODDS_DIFFERENCE.value: odds,
    }


def _log_ratio_bound(r1: float, n1: int, r2: float, n2: int) -> float:
    """The lower bound of r1 / r2 (r1 the lower rate)."""
    if r2 <= 0:
        return 1.0
    if r1 <= 0:
        return 0.0
    return min(1.0, ratio_bounds(r1, n1, r2, n2, Z)[0])


def densify(candidates: list[dict[str, float]], wanted: int) -> list[dict[str, float]]:
    """At least `wanted` operating points: OxonFair's frontier, and midpoints between
    neighbours (ordered by the mean threshold) where it found fewer."""
    points = sorted(candidates, key=lambda t: sum(t.values()) / len(t))
    while 1 < len(points) < wanted:
        mids = [{g: (a[g] + b[g]) / 2 for g in a} for a, b in itertools.pairwise(points)]
        merged = [x for pair in zip(points, mids, strict=False) for x in pair] + [points[-1]]
        points = merged
    return points


def _meets(
    point: dict[str, Any], constraints: list[FairnessGate], feature: str, key: str = "measures"
) -> bool:
    measured = {feature: {"summary": point[key], "groups": {}}}
    return all(
        check((gate, gate.feature or feature), measured, "validation")["passed"]
        for gate in constraints
    )


def _slack(point: dict[str, Any], gate: FairnessGate) -> float:
    value = point["measures"].get(gate.metric.value)
    if value is None:
        return -np.inf
    return value - gate.min if gate.min is not None else gate.max - value


def pareto(points: list[dict[str, Any]], metric: FairnessMetric) -> list[dict[str, Any]]:
    """The operating points, most accurate first, each with its measures and whether no other
    point is both more accurate and fairer by `metric` (`paretoOptimal`)."""
    higher_is_fairer = metric is FairnessMetric.DISPARATE_IMPACT

    def fairness(point: dict[str, Any]) -> float:
        value = point["measures"].get(metric.value)
        if value is None:
            return -np.inf
        return value if higher_is_fairer else -value

    out = []
    for point in sorted(points, key=lambda p: -p["accuracy"]):
        dominated = any(
            other["accuracy"] >= point["accuracy"]
            and fairness(other) >= fairness(point)
            and (other["accuracy"] > point["accuracy"] or fairness(other) > fairness(point))
            for other in points
        )
        out.append(
            {
                "accuracy": point["accuracy"],
                **point["measures"],
                "thresholds": point["thresholds"],
                "paretoOptimal": not dominated,
            }
        )
    return out
