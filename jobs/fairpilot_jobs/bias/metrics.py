"""Group fairness metrics with SageMaker Clarify's names, definitions and signs.

Why it is fast: every figure here is a function of four counts per group (true negatives,
false positives, false negatives, true positives; without predictions, negatives and
positives). All of them come from ONE `np.bincount` over `4 * group_code + 2 * label +
prediction`, so a feature costs one pass over its rows, however many groups and metrics it
has. The metrics are then arithmetic on arrays as long as the number of groups.

Why the comparison is what it is: each non-privileged group d is compared with the privileged
group a alone (not with "everyone else"), with the sign convention of AWS's `smclarify`
(mostly advantaged minus disadvantaged, so that positive means "d is worse off"; DCR, DRR and
TE are disadvantaged minus advantaged, for the same reason). The tests check every metric
against `smclarify` and every per-group rate against fairlearn's `MetricFrame`.

Where this departs from `smclarify`, on purpose:

* A division by zero is undefined and reported as None. `smclarify` returns 0 for 0/0 and
  infinity for x/0, and then subtracts such values; a 0 that only means "this group has no
  predicted positives" would read as "no bias".
* KL, JS, LP, TVD and KS are over the whole label distribution (positive, negative).
  `smclarify` first drops every outcome that one of the two groups lacks, which gives a
  negative KL and a halved TVD when, say, a small group has no positive label. Here KL is
  None (infinite) in that case and the others keep their textbook values. When both groups
  have both outcomes, as in any real data set, the two agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PRETRAINING = ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS")
POSTTRAINING = ("DPPL", "DI", "DCAcc", "DCR", "RD", "DAR", "DRR", "AD", "TE")
MISSING_GROUP = "(missing)"
CHOSEN_BY_SPEC = "spec"
CHOSEN_BY_RATE = "highest positive rate"
# The fewest rows a group needs to be chosen as the privileged reference automatically (when a
# group that large exists): the usual floor for a rate to be more than noise.
REFERENCE_MIN_ROWS = 30

# Columns of the per-group count table: index = 2 * label + prediction.
_TN, _FP, _FN, _TP = range(4)


@dataclass
class GroupStats:
    """Counts and rates of one group of one sensitive feature.

    Rates whose denominator is zero (say, the true positive rate of a group without a single
    positive label) are None rather than 0, so that "undefined" never reads as "perfect" or
    "worst".
    """

    count: int
    positives: int
    positive_rate: float
    predicted_positive_rate: float | None = None
    true_positive_rate: float | None = None
    false_positive_rate: float | None = None
    false_negative_rate: float | None = None
    accuracy: float | None = None
    predicted_positives: int | None = None
    true_positives: int | None = None
    false_positives: int | None = None
    true_negatives: int | None = None
    false_negatives: int | None = None

    @property
    def negatives(self) -> int:
        return self.count - self.positives

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the prediction-only rates appear only when there were predictions."""
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
    """All groups of one sensitive feature, and each group's metrics against the privileged one.

    `metrics` holds the groups compared (every non-privileged group with at least
    `min_group_size` rows); `groups` holds every group, so a report can still show the rates of
    groups too small to compare.
    """

    feature: str
    privileged_group: str
    privileged_chosen_by: str
    groups: dict[str, GroupStats]
    metrics: dict[str, dict[str, float | None]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase; NaN and infinities become None."""
        return {
            "privilegedGroup": self.privileged_group,
            "privilegedChosenBy": self.privileged_chosen_by,
            "groups": {name: stats.to_dict() for name, stats in self.groups.items()},
            "metrics": {
                group: {name: _finite(value) for name, value in values.items()}
                for group, values in self.metrics.items()
            },
        }


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio; NaN where the denominator is zero (undefined, reported as None)."""
    numerator = np.asarray(numerator, dtype="float64")
    denominator = np.asarray(denominator, dtype="float64")
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def group_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes and group names; missing values become the group "(missing)".

    Group names are `str(value)`: values that print the same (1 and "1" in an object column)
    are one group, since a spec, a JSON report and a CSV round trip cannot tell them apart.
    Names come sorted, "(missing)" last, and only groups that occur are listed (unused
    categories of a categorical column are dropped). Sorting and merging touch the distinct
    values only; the rows are factorised once and re-coded with one `take`.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        raw = values.cat.codes.to_numpy()
        uniques: list[Any] = list(values.cat.categories)
    else:
        raw, found = pd.factorize(values, use_na_sentinel=True)
        uniques = list(found)
    codes = np.asarray(raw, dtype=np.intp)  # int8 category codes would overflow below
    names = [str(u) for u in uniques]
    counts = np.bincount(codes + 1, minlength=len(names) + 1)  # slot 0: missing (code -1)
    occurring = {names[i] for i in np.flatnonzero(counts[1:])}
    if counts[0]:
        occurring.add(MISSING_GROUP)
    kept = sorted(occurring, key=lambda n: (n == MISSING_GROUP, n))
    position = {name: i for i, name in enumerate(kept)}
    # The last entry serves code -1, so missing rows need no separate pass.
    lookup = np.array(
        [position.get(n, -1) for n in names] + [position.get(MISSING_GROUP, -1)], dtype=np.intp
    )
    return lookup[codes], kept


def canonical_value(name: str) -> str:
    """The spelling under which a spec's group matches a data value: 1 == 1.0, True == true."""
    text = name.strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def _resolve_group(feature: str, given: Any, names: list[str]) -> str:
    """The group a spec names: exact `str` match first, then the same value spelled otherwise.

    A YAML spec says `1` where a CSV read gives 1.0, or `true` where pandas gives True; those
    are the same group, and refusing them would only make users guess the spelling.
    """
    wanted = str(given)
    if wanted in names:
        return wanted
    matches = [n for n in names if canonical_value(n) == canonical_value(wanted)]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(names[:50]) + (f", ... ({len(names)} groups)" if len(names) > 50 else "")
    if matches:
        raise ValueError(
            f"privileged group {wanted!r} of feature {feature!r} is ambiguous: it could be any "
            f"of {', '.join(matches)}"
        )
    raise ValueError(
        f"privileged group {wanted!r} is not a group of feature {feature!r}; its groups are: "
        f"{shown}"
    )


def _relative_entropy(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) per column of two (2, groups) distributions; inf where q lacks p's support."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)  # 0 log 0 = 0
    return terms.sum(axis=0)


def _label_distributions(qa: float, qd: np.ndarray) -> dict[str, np.ndarray]:
    """KL, JS, LP, TVD, KS between the label distributions (positive, negative) of the
    privileged group a and every group d at once (arrays over groups)."""
    pd_ = np.vstack([qd, 1.0 - qd])
    pa = np.broadcast_to(np.array([[qa], [1.0 - qa]]), pd_.shape)
    mean = 0.5 * (pa + pd_)
    diff = pa - pd_
    return {
        "KL": _relative_entropy(pa, pd_),
        "JS": 0.5 * (_relative_entropy(pa, mean) + _relative_entropy(pd_, mean)),
        "LP": np.sqrt(np.sum(diff * diff, axis=0)),
        "TVD": 0.5 * np.sum(np.abs(diff), axis=0),
        "KS": np.max(np.abs(diff), axis=0),
    }


def _rates(table: np.ndarray, with_predictions: bool) -> dict[str, np.ndarray]:
    """Per-group counts and rates (arrays over groups) from the (groups, 4) count table."""
    tn, fp, fn, tp = (table[:, i] for i in (_TN, _FP, _FN, _TP))
    count = tn + fp + fn + tp
    positives = fn + tp
    out = {"count": count, "positives": positives, "positive_rate": _divide(positives, count)}
    if not with_predictions:
        return out
    predicted = fp + tp
    out |= {
        "predicted_positives": predicted,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "predicted_positive_rate": _divide(predicted, count),
        "true_positive_rate": _divide(tp, positives),
        "false_positive_rate": _divide(fp, tn + fp),
        "false_negative_rate": _divide(fn, positives),
        "accuracy": _divide(tp + tn, count),
        # Clarify's conditional acceptance / rejection: labelled over predicted.
        "acceptance": _divide(positives, predicted),
        "rejection": _divide(tn + fp, tn + fn),
        "precision": _divide(tp, predicted),
        "negative_predictive_value": _divide(tn, tn + fn),
        "fn_per_fp": _divide(fn, fp),
    }
    return out


def _pair_metrics(r: dict[str, np.ndarray], a: int) -> dict[str, np.ndarray]:
    """Clarify's metrics of every group d against group a, plus LDI (the label's disparate
    impact), as arrays over groups: arithmetic on the rate arrays, never a loop over groups,
    so 50,000 groups cost what 2 do (the entry of a itself is computed and not used)."""
    na, nd = r["count"][a], r["count"]
    qa, qd = r["positive_rate"][a], r["positive_rate"]
    out: dict[str, np.ndarray] = {
        "CI": (na - nd) / (na + nd),
        "DPL": qa - qd,
        **_label_distributions(float(qa), qd),
        "LDI": _divide(qd, qa),
    }
    if "predicted_positives" not in r:
        return out

    def adv_minus_dis(name: str) -> np.ndarray:
        return r[name][a] - r[name]

    def dis_minus_adv(name: str) -> np.ndarray:
        return r[name] - r[name][a]

    out |= {
        "DPPL": adv_minus_dis("predicted_positive_rate"),
        "DI": _divide(r["predicted_positive_rate"], r["predicted_positive_rate"][a]),
        "DCAcc": adv_minus_dis("acceptance"),
        "DCR": dis_minus_adv("rejection"),
        "RD": adv_minus_dis("true_positive_rate"),
        "DAR": adv_minus_dis("precision"),
        "DRR": dis_minus_adv("negative_predictive_value"),
        "AD": adv_minus_dis("accuracy"),
        "TE": dis_minus_adv("fn_per_fp"),
    }
    return out


def _column(values: np.ndarray) -> list[float | None]:
    """A float array as a list of Python floats, None where not finite (undefined)."""
    array = np.asarray(values, dtype="float64")
    finite = np.isfinite(array)
    if finite.all():
        return array.tolist()
    return [v if ok else None for v, ok in zip(array.tolist(), finite.tolist(), strict=True)]


def _count_table(
    codes: np.ndarray,
    size: int,
    label_positive: np.ndarray,
    predicted_positive: np.ndarray | None,
) -> np.ndarray:
    """(groups, 4) counts of TN, FP, FN, TP: one bincount over a combined key."""
    key = codes * 4 + label_positive.astype(np.intp) * 2
    if predicted_positive is not None:
        key += predicted_positive
    return np.bincount(key, minlength=4 * size).reshape(size, 4)


def feature_bias(
    sensitive: pd.Series,
    label_positive: np.ndarray,
    predicted_positive: np.ndarray | None = None,
    privileged_group: str | None = None,
    min_group_size: int = 1,
) -> FeatureBias:
    """Per-group statistics of one sensitive feature and metrics against the privileged group.

    `privileged_group` is compared with `str(value)` (and, failing that, with the same value
    spelled otherwise, e.g. 1 for 1.0). When None, the privileged group is the one with the
    highest label positive rate among groups of at least `min_group_size` rows, "(missing)"
    excepted (ties: larger count, then name), and of at least REFERENCE_MIN_ROWS rows when
    such a group exists: a handful of rows or absent values should not become the reference
    every other group is measured against. Groups smaller than `min_group_size` get
    statistics but no metrics.
    """
    feature = str(sensitive.name)
    label_positive = np.asarray(label_positive, dtype=bool)
    if predicted_positive is not None:
        predicted_positive = np.asarray(predicted_positive, dtype=bool)
    lengths = {len(sensitive), len(label_positive)}
    if predicted_positive is not None:
        lengths.add(len(predicted_positive))
    if len(lengths) != 1:
        raise ValueError(f"feature {feature!r}: sensitive, label and prediction lengths differ")
    codes, names = group_codes(sensitive)
    if not names:
        raise ValueError(f"feature {feature!r} has no rows")
    with_predictions = predicted_positive is not None
    rates = _rates(
        _count_table(codes, len(names), label_positive, predicted_positive), with_predictions
    )

    # Arrays become Python lists once: per-group work below is list indexing, not numpy
    # scalar access, which is what keeps 50,000 groups at a fraction of a second.
    counts = rates["count"].tolist()
    positives = rates["positives"].tolist()
    positive_rate = rates["positive_rate"].tolist()
    none = [None] * len(names)

    def stat(name: str) -> list[float | None]:
        return _column(rates[name]) if name in rates else none

    def number(name: str) -> list[int | None]:
        return rates[name].tolist() if name in rates else none

    columns = zip(
        stat("predicted_positive_rate"),
        stat("true_positive_rate"),
        stat("false_positive_rate"),
        stat("false_negative_rate"),
        stat("accuracy"),
        number("predicted_positives"),
        number("tp"),
        number("fp"),
        number("tn"),
        number("fn"),
        strict=True,
    )
    groups = {
        name: GroupStats(counts[i], positives[i], positive_rate[i], *extra)
        for i, (name, extra) in enumerate(zip(names, columns, strict=True))
    }

    if privileged_group is not None:
        privileged = _resolve_group(feature, privileged_group, names)
        chosen_by = CHOSEN_BY_SPEC
    else:
        def rank(i: int) -> tuple[float, int, str]:
            return (-positive_rate[i], -counts[i], names[i])

        eligible = [
            i for i, n in enumerate(names) if n != MISSING_GROUP and counts[i] >= min_group_size
        ] or list(range(len(names)))
        # A rate of 1.0 from two rows is chance, not advantage: with many small groups (a zip
        # code, 10,000 of them) the reference must be a group whose rate means something.
        supported = [i for i in eligible if counts[i] >= REFERENCE_MIN_ROWS]
        best = min(supported or eligible, key=rank)
        privileged = names[best]
        chosen_by = CHOSEN_BY_RATE
        if supported and best != min(eligible, key=rank):
            chosen_by = f"{CHOSEN_BY_RATE} among groups of at least {REFERENCE_MIN_ROWS} rows"
    a = names.index(privileged)
    pairs = _pair_metrics(rates, a)
    keys = list(pairs)
    values = list(zip(*(_column(pairs[k]) for k in keys), strict=True))
    metrics = {
        name: dict(zip(keys, values[d], strict=True))
        for d, name in enumerate(names)
        if d != a and counts[d] >= min_group_size
    }
    return FeatureBias(feature, privileged, chosen_by, groups, metrics)


def bias_detected(
    metrics: dict[str, dict[str, float | None]],
    min_disparate_impact: float = 0.8,
    max_abs_parity_difference: float | None = None,
) -> list[str]:
    """Findings in words, one per threshold crossed; empty when none is.

    The disparate impact test uses the predictions' DI when there are predictions and the
    label's LDI otherwise, so the four-fifths rule applies to a data set before any model
    exists. Findings start with the group ("Female: DI 0.358 ..."); the caller, who knows the
    feature, prefixes it ("sex=Female: ...").
    """
    findings = []
    rule = " (four-fifths rule)" if math.isclose(min_disparate_impact, 0.8) else ""
    for group, values in metrics.items():
        name = "DI" if "DI" in values else "LDI"
        ratio = values.get(name)
        if ratio is not None and math.isfinite(ratio) and ratio < min_disparate_impact:
            findings.append(f"{group}: {name} {ratio:.3f} is below {min_disparate_impact}{rule}")
        if max_abs_parity_difference is not None:
            name = "DPPL" if "DPPL" in values else "DPL"
            gap = values.get(name)
            if gap is not None and math.isfinite(gap) and abs(gap) > max_abs_parity_difference:
                findings.append(
                    f"{group}: |{name}| {abs(gap):.3f} exceeds {max_abs_parity_difference}"
                )
    return findings
