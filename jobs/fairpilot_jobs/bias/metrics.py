"""Group fairness metrics with SageMaker Clarify's names, definitions and signs.

Everything is computed from four counts per group (rows, label positives, predicted
positives, true positives), each one `np.bincount` over integer group codes: one pass over the
data per feature, however many groups and metrics. That is what makes a million rows cheap.

Each non-privileged group d is compared with the privileged group a (not with "everyone
else"), advantaged minus disadvantaged, exactly as AWS's `smclarify` computes them: the tests
check every metric against it, and the per-group rates against fairlearn's `MetricFrame`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PRETRAINING = ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS")
POSTTRAINING = ("DPPL", "DI", "DCAcc", "DCR", "RD", "DAR", "DRR", "AD", "TE")
MISSING_GROUP = "(missing)"


@dataclass
class GroupStats:
    """Counts and rates of one group of one sensitive feature."""

    count: int
    positives: int
    predicted_positives: int | None = None
    true_positives: int | None = None

    @property
    def negatives(self) -> int:
        return self.count - self.positives

    @property
    def false_positives(self) -> int | None:
        if self.predicted_positives is None or self.true_positives is None:
            return None
        return self.predicted_positives - self.true_positives

    @property
    def false_negatives(self) -> int | None:
        return None if self.true_positives is None else self.positives - self.true_positives

    @property
    def true_negatives(self) -> int | None:
        if self.false_positives is None:
            return None
        return self.negatives - self.false_positives

    @property
    def positive_rate(self) -> float:
        return _ratio(self.positives, self.count)

    @property
    def predicted_positive_rate(self) -> float | None:
        if self.predicted_positives is None:
            return None
        return _ratio(self.predicted_positives, self.count)

    @property
    def true_positive_rate(self) -> float | None:
        return None if self.true_positives is None else _ratio(self.true_positives, self.positives)

    @property
    def false_positive_rate(self) -> float | None:
        fp = self.false_positives
        return None if fp is None else _ratio(fp, self.negatives)

    @property
    def false_negative_rate(self) -> float | None:
        fn = self.false_negatives
        return None if fn is None else _ratio(fn, self.positives)

    @property
    def accuracy(self) -> float | None:
        if self.true_positives is None or self.true_negatives is None:
            return None
        return _ratio(self.true_positives + self.true_negatives, self.count)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "positiveRate": _finite(self.positive_rate)}
        if self.predicted_positives is not None:
            out |= {
                "predictedPositiveRate": _finite(self.predicted_positive_rate),
                "truePositiveRate": _finite(self.true_positive_rate),
                "falsePositiveRate": _finite(self.false_positive_rate),
                "falseNegativeRate": _finite(self.false_negative_rate),
                "accuracy": _finite(self.accuracy),
            }
        return out


@dataclass
class FeatureBias:
    """All groups of one sensitive feature and each group's metrics against the privileged one."""

    feature: str
    privileged_group: str
    privileged_chosen_by: str
    groups: dict[str, GroupStats]
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "privilegedGroup": self.privileged_group,
            "privilegedChosenBy": self.privileged_chosen_by,
            "groups": {name: stats.to_dict() for name, stats in self.groups.items()},
            "metrics": {
                group: {name: _finite(value) for name, value in values.items()}
                for group, values in self.metrics.items()
            },
        }


def _ratio(numerator: float, denominator: float) -> float:
    """smclarify's `divide`: 0/0 is 0, x/0 is ±inf (reported as None)."""
    if denominator == 0:
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _difference(advantaged: float, disadvantaged: float) -> float:
    # smclarify reports 0, not inf - inf, when both sides are undefined the same way.
    if advantaged == disadvantaged and math.isinf(advantaged):
        return 0.0
    return advantaged - disadvantaged


def group_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes and group names; missing values form the group "(missing)"."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        names = [str(c) for c in values.cat.categories]
    else:
        raw, uniques = pd.factorize(values, use_na_sentinel=True)
        codes, names = raw.astype(np.int64), [str(u) for u in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(names), codes)
        names = [*names, MISSING_GROUP]
    return codes, names


def _label_distribution_metrics(a: GroupStats, d: GroupStats) -> dict[str, float]:
    """KL, JS, LP, TVD, KS over the label's distribution (positive, negative) in a and d."""
    pa = np.array([a.positives, a.negatives], dtype="float64") / a.count
    pd_ = np.array([d.positives, d.negatives], dtype="float64") / d.count
    both = (pa > 0) & (pd_ > 0)  # smclarify keeps only outcomes present in both groups
    pa, pd_ = pa[both], pd_[both]
    mean = 0.5 * (pa + pd_)
    return {
        "KL": float(np.sum(pa * np.log(pa / pd_))),
        "JS": float(0.5 * (np.sum(pa * np.log(pa / mean)) + np.sum(pd_ * np.log(pd_ / mean)))),
        "LP": float(np.linalg.norm(pa - pd_, 2)),
        "TVD": float(0.5 * np.linalg.norm(pa - pd_, 1)),
        "KS": float(np.linalg.norm(pa - pd_, np.inf)) if len(pa) else 0.0,
    }


def pair_metrics(a: GroupStats, d: GroupStats) -> dict[str, float | None]:
    """Clarify's metrics of group d against group a (plus LDI, the label's DI)."""
    qa, qd = a.positive_rate, d.positive_rate
    out: dict[str, float | None] = {
        "CI": _ratio(a.count - d.count, a.count + d.count),
        "DPL": qa - qd,
        **_label_distribution_metrics(a, d),
        "LDI": _ratio(qd, qa),
    }
    if a.predicted_positives is None or d.predicted_positives is None:
        return out
    qa_hat, qd_hat = a.predicted_positive_rate, d.predicted_positive_rate
    assert qa_hat is not None and qd_hat is not None
    # Conditional acceptance c = n(1) / n_hat(1); conditional rejection r = n(0) / n_hat(0).
    c_a = _ratio(a.positives, a.predicted_positives)
    c_d = _ratio(d.positives, d.predicted_positives)
    r_a = _ratio(a.negatives, a.count - a.predicted_positives)
    r_d = _ratio(d.negatives, d.count - d.predicted_positives)
    recall_a = _ratio(a.true_positives, a.positives)
    recall_d = _ratio(d.true_positives, d.positives)
    precision_a = _ratio(a.true_positives, a.predicted_positives)
    precision_d = _ratio(d.true_positives, d.predicted_positives)
    npv_a = _ratio(a.true_negatives, a.count - a.predicted_positives)
    npv_d = _ratio(d.true_negatives, d.count - d.predicted_positives)
    accuracy_a = _ratio(a.true_positives + a.true_negatives, a.count)
    accuracy_d = _ratio(d.true_positives + d.true_negatives, d.count)
    tau_a = _ratio(a.false_negatives, a.false_positives)
    tau_d = _ratio(d.false_negatives, d.false_positives)
    out |= {
        "DPPL": qa_hat - qd_hat,
        "DI": _ratio(qd_hat, qa_hat),
        "DCAcc": _difference(c_a, c_d),
        # Rejection metrics: Clarify takes d minus a, so that positive still means "d worse off".
        "DCR": _difference(r_d, r_a),
        "RD": _difference(recall_a, recall_d),
        "DAR": _difference(precision_a, precision_d),
        "DRR": _difference(npv_d, npv_a),
        "AD": _difference(accuracy_a, accuracy_d),
        "TE": _difference(tau_d, tau_a),
    }
    return out


def feature_bias(
    sensitive: pd.Series,
    label_positive: np.ndarray,
    predicted_positive: np.ndarray | None = None,
    privileged_group: str | None = None,
    min_group_size: int = 1,
) -> FeatureBias:
    """Per-group statistics of one sensitive feature and metrics against the privileged group."""
    codes, names = group_codes(sensitive)
    size = len(names)
    label_positive = np.asarray(label_positive, dtype=bool)
    counts = np.bincount(codes, minlength=size)
    positives = np.bincount(codes, weights=label_positive, minlength=size)
    predicted = true_positive = None
    if predicted_positive is not None:
        predicted_positive = np.asarray(predicted_positive, dtype=bool)
        predicted = np.bincount(codes, weights=predicted_positive, minlength=size)
        true_positive = np.bincount(
            codes, weights=label_positive & predicted_positive, minlength=size
        )
    groups = {
        name: GroupStats(
            count=int(counts[i]),
            positives=int(positives[i]),
            predicted_positives=None if predicted is None else int(predicted[i]),
            true_positives=None if true_positive is None else int(true_positive[i]),
        )
        for i, name in enumerate(names)
        if counts[i] > 0
    }
    feature = str(sensitive.name)
    if privileged_group is not None:
        if privileged_group not in groups:
            shown = ", ".join(sorted(groups)[:30])
            raise ValueError(f"{privileged_group!r} is not a group of {feature!r}; groups: {shown}")
        chosen_by = "spec"
    else:
        privileged_group = min(
            groups, key=lambda g: (-groups[g].positive_rate, -groups[g].count, g)
        )
        chosen_by = "highest positive rate"
    advantaged = groups[privileged_group]
    metrics = {
        name: pair_metrics(advantaged, stats)
        for name, stats in groups.items()
        if name != privileged_group and stats.count >= min_group_size
    }
    return FeatureBias(feature, privileged_group, chosen_by, groups, metrics)


def bias_detected(
    metrics: dict[str, dict[str, float | None]],
    min_disparate_impact: float = 0.8,
    max_abs_parity_difference: float | None = None,
) -> list[str]:
    """Findings, one per threshold crossed, in words; empty when nothing is crossed."""
    findings = []
    for group, values in metrics.items():
        name, ratio = ("DI", values.get("DI")) if "DI" in values else ("LDI", values.get("LDI"))
        if ratio is not None and ratio < min_disparate_impact:
            findings.append(
                f"{group}: {name} {ratio:.3f} is below {min_disparate_impact} (four-fifths rule)"
                if min_disparate_impact == 0.8
                else f"{group}: {name} {ratio:.3f} is below {min_disparate_impact}"
            )
        if max_abs_parity_difference is not None:
            name = "DPPL" if "DPPL" in values else "DPL"
            gap = values.get(name)
            if gap is not None and abs(gap) > max_abs_parity_difference:
                findings.append(
                    f"{group}: |{name}| {abs(gap):.3f} exceeds {max_abs_parity_difference}"
                )
    return findings
