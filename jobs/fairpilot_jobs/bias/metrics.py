"""Group fairness metrics with SageMaker Clarify's names, definitions and signs.

Why it is fast: every figure here is a function of four counts per group (true negatives,
false positives, false negatives, true positives; without predictions, negatives and
positives). All of them come from ONE `np.bincount` over `4 * group_code + 2 * label +
prediction`, so a feature costs one pass over its rows, however many groups and metrics it
has. The metrics are then arithmetic on arrays as long as the number of groups. CDDL and CDDPL
add one bincount over (group, stratum of the group variable, outcome) cells; FT, a k-NN fit
and query on a bounded sample (below).

Why the comparison is what it is: each non-privileged group d is compared with the privileged
group a alone (not with "everyone else"), with the sign convention of AWS's `smclarify`
(mostly advantaged minus disadvantaged; DCR, DRR, SD and TE are disadvantaged minus
advantaged). So the sign does not read alike everywhere: for most metrics positive means "d is
worse off", but a negative DCAcc or DCR means d is under-accepted or over-rejected; the bias
report's glossary gives each metric's reading, checked against these formulas in
tests/unit/test_bias_glossary.py. The tests check every metric
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
* CDDL and CDDPL (conditional demographic disparity, given a `groupVariable` such as a
  department) leave out the strata where the pair d, a lacks an outcome: there, "d's share of
  the rejected minus d's share of the accepted" has no second term. `smclarify` counts that
  0/0 as 0, so a stratum where everyone is rejected adds d's whole share as "disparity" (up to
  1 when only d is in it), though both groups are treated alike. Here the weighted mean runs
  over the other strata (CDD is then `smclarify`'s on the rows of those strata), and is None
  when no stratum has both outcomes (`smclarify` raises when the data have only one).
  Missing values of the group variable are one stratum, "(missing)", as missing values of a
  sensitive feature are one group; `smclarify` silently drops those rows.
* FT (FlipTest) has the sign of AWS's documentation, FT = (F+ - F-) / n_d with F+ the members
  of d the model rejects whose nearest neighbours in a it accepts: positive means d is worse
  off, as for the other metrics. `smclarify`'s code counts the two flip sets the other way
  round and returns the negative of that; the tests check FT == -smclarify.FT. The k-NN is
  `smclarify`'s (scikit-learn's `KNeighborsClassifier`, 5 neighbours, 1 when a has 9 rows or
  fewer, Euclidean distance on unscaled values), fitted on a's rows with the model's
  predictions and asked about d's rows. Its features are the numeric and boolean columns of
  the data set but the label, the prediction and the sensitive feature itself; `smclarify`
  refuses any other column, and one-hot encoding them would let the widest categorical column
  decide every distance, so they are left out (and named in the result). Missing or infinite
  values, which `smclarify` cannot take, become the column's mean over the rows used. The
  cost is bounded: at most `FT_MAX_REFERENCE_ROWS` rows of a and `FT_MAX_TESTED_ROWS` rows of
  all compared groups together (small groups whole, large ones cut to a common size) are
  used, drawn with a fixed seed, and the result says so (`flipTest.sampled`); a feature with
  more than `FT_MAX_GROUPS` compared groups gets no FT (the result says why).

GE (generalized entropy index, alpha = 2, of the "benefit" prediction - label + 1) is one
figure for the whole population, not per group: `population_metrics` gives it, and the stage
reports it once per analysis. It is a function of the four overall counts, like the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Clarify's metrics by stage. Per group d come all of them but GE (whole population:
# `population_metrics`); CDDL and CDDPL only with a group variable (`strata`), FT only with
# the columns to find neighbours in (`flip_features`), and the post-training ones only with
# predictions.
PRETRAINING = ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL")
POSTTRAINING = (
    "DPPL", "DI", "DCAcc", "DCR", "RD", "SD", "DAR", "DRR", "AD", "TE", "CDDPL", "FT", "GE"
)  # fmt: skip
_METRIC_ORDER = [*PRETRAINING, "LDI", *POSTTRAINING]
CONDITIONAL = ("CDDL", "CDDPL")  # need a group variable
FLIP = ("FT",)  # needs feature columns
POPULATION = ("GE",)  # one figure for all rows, not per group
MISSING_GROUP = "(missing)"
CHOSEN_BY_SPEC = "spec"
CHOSEN_BY_RATE = "highest positive rate"
# The fewest rows a group needs to be chosen as the privileged reference automatically (when a
# group that large exists): the usual floor for a rate to be more than noise.
REFERENCE_MIN_ROWS = 30
# ... and the share of the rows it must hold, when groups that large exist.
REFERENCE_MIN_SHARE = 0.10

# FlipTest: smclarify's neighbour counts (smclarify.bias.metrics.constants: FT_DEFAULT_NEIGHBOR,
# FT_MIN_NEIGHBOR, FT_SAMPLES_COUNT_THRESHOLD), and the bounds that keep a million rows fast.
FT_NEIGHBORS = 5
FT_MIN_NEIGHBORS = 1  # when a has FT_FEW_ROWS rows or fewer
FT_FEW_ROWS = 9
FT_MAX_REFERENCE_ROWS = 50_000  # privileged rows the k-NN is fitted on, at most
FT_MAX_TESTED_ROWS = 25_000  # rows of all compared groups together asked about, at most
FT_MAX_GROUPS = 50  # compared groups; so a sampled group keeps 500 rows or more
FT_SEED = 0

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
    groups too small to compare. `flip_test` says what FlipTest used (columns, neighbours, rows,
    whether they were sampled) or why it was skipped; None when it was not asked for.
    """

    feature: str
    privileged_group: str
    privileged_chosen_by: str
    groups: dict[str, GroupStats]
    metrics: dict[str, dict[str, float | None]]
    flip_test: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase; NaN and infinities become None."""
        out = {
            "privilegedGroup": self.privileged_group,
            "privilegedChosenBy": self.privileged_chosen_by,
            "groups": {name: stats.to_dict() for name, stats in self.groups.items()},
            "metrics": {
                group: {name: _finite(value) for name, value in values.items()}
                for group, values in self.metrics.items()
            },
        }
        if self.flip_test is not None:
            out["flipTest"] = self.flip_test
        return out


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
        "specificity": _divide(tn, tn + fp),
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
        # smclarify.common.DLA: sp_d - sp_a. A higher specificity of d means fewer of its
        # negatives get the favourable prediction by mistake: positive, d is worse off.
        "SD": dis_minus_adv("specificity"),
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


def _strata_cells(
    codes: np.ndarray, size: int, strata: np.ndarray, strata_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's (group, stratum) cell, and each cell's group and stratum.

    Every combination is a cell when there are no more of them than rows (the usual case: a
    few groups times a few departments); otherwise only the combinations that occur, found by
    one `np.unique`, so 10,000 zip codes times 1,000 strata do not allocate ten million cells.
    """
    key = codes.astype(np.int64) * strata_size + strata
    cells = size * strata_size
    if cells <= max(len(codes), 1 << 16):
        every = np.arange(cells)
        return key, every // strata_size, every % strata_size
    occurring, row_cell = np.unique(key, return_inverse=True)
    return row_cell.reshape(-1), occurring // strata_size, occurring % strata_size


def _conditional_disparity(
    cells: tuple[np.ndarray, np.ndarray, np.ndarray],
    size: int,
    strata_size: int,
    outcome: np.ndarray,
    a: int,
) -> np.ndarray:
    """Clarify's CDD of every group d against a (an array over groups), from one bincount.

    Per stratum i of the rows of d and a: DD_i = n_d0 / n_0 - n_d1 / n_1 (d's share of the
    negative outcomes minus its share of the positive ones); CDD is their mean weighted by the
    rows of d and a in the stratum. A stratum without both outcomes (for that pair) has no
    DD_i and is left out (see the module docstring); a stratum with rows of a only has
    DD_i = 0 and counts.
    """
    row_cell, cell_group, cell_stratum = cells
    n_cells = len(cell_group)
    table = np.bincount(row_cell * 2 + outcome, minlength=2 * n_cells).reshape(n_cells, 2)
    table = table.astype("float64")
    of_a = cell_group == a
    a_table = np.zeros((strata_size, 2))
    a_table[cell_stratum[of_a]] = table[of_a]  # a's cells: one per stratum at most
    shared = a_table[cell_stratum]  # a's counts in the stratum of each cell
    negatives = table[:, 0] + shared[:, 0]
    positives = table[:, 1] + shared[:, 1]
    # Cells of a group d that has rows there; the rest are a's own or empty.
    mine = ~of_a & (table.sum(axis=1) > 0)
    defined = mine & (negatives > 0) & (positives > 0)
    disparity = np.zeros(n_cells)
    disparity[defined] = (
        table[defined, 0] / negatives[defined] - table[defined, 1] / positives[defined]
    )
    weight = np.where(defined, negatives + positives, 0.0)
    # Strata where d has no rows: a's rows alone, DD_i = 0, counted when a has both outcomes.
    a_weight = np.where((a_table > 0).all(axis=1), a_table.sum(axis=1), 0.0)
    a_in_mine = np.where(mine, a_weight[cell_stratum], 0.0)
    numerator = np.bincount(cell_group, weights=weight * disparity, minlength=size)
    denominator = (
        np.bincount(cell_group, weights=weight, minlength=size)
        + a_weight.sum()
        - np.bincount(cell_group, weights=a_in_mine, minlength=size)
    )
    return _divide(numerator, denominator)


def flip_columns(frame: pd.DataFrame, exclude: Any = ()) -> list[Any]:
    """The columns FlipTest may find neighbours in: numeric or boolean ones, but `exclude`."""
    left_out = {str(c) for c in exclude if c is not None}
    return [c for c in frame.columns if str(c) not in left_out and _numeric(frame[c].dtype)]


def _water_level(sizes: np.ndarray, budget: int) -> int | None:
    """The largest c with sum(min(size, c)) <= budget: small groups whole, large ones cut to
    a common size. None when every row fits."""
    if int(sizes.sum()) <= budget:
        return None
    ordered = np.sort(sizes)
    before = np.concatenate([[0], np.cumsum(ordered)])
    for i in range(len(ordered)):
        level = (budget - int(before[i])) // (len(ordered) - i)
        if level < ordered[i]:
            return max(int(level), 1)
    return None  # not reached: the sum exceeds the budget


def _flip_test(
    codes: np.ndarray,
    names: list[str],
    a: int,
    compared: list[int],
    predicted: np.ndarray,
    features: pd.DataFrame,
) -> tuple[np.ndarray, dict[str, Any]]:
    """FT of every compared group (an array over groups, NaN elsewhere) and what it used."""
    ft = np.full(len(names), np.nan)
    columns = [str(c) for c in features.columns]
    refused = [c for c, t in zip(columns, features.dtypes, strict=True) if not _numeric(t)]
    if refused:
        raise ValueError(f"FlipTest takes numeric or boolean columns only, not {refused[:10]}")
    if not compared:
        return ft, {"skipped": "no group to compare"}
    if not columns:
        return ft, {"skipped": "no numeric column besides the label, prediction and feature"}
    if len(compared) > FT_MAX_GROUPS:
        return ft, {
            "skipped": f"{len(compared):,} groups compared; FlipTest is computed for features "
            f"of at most {FT_MAX_GROUPS} compared groups"
        }
    rng = np.random.default_rng(FT_SEED)
    order = np.argsort(codes, kind="stable")  # rows of each group, in row order
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])

    def rows(group: int, at_most: int | None) -> np.ndarray:
        found = order[starts[group] : starts[group + 1]]
        if at_most is None or len(found) <= at_most:
            return found
        return np.sort(rng.choice(found, size=at_most, replace=False))

    reference = rows(a, FT_MAX_REFERENCE_ROWS)
    level = _water_level(np.diff(starts)[compared], FT_MAX_TESTED_ROWS)
    tested = [rows(d, level) for d in compared]
    tested_rows = np.concatenate(tested)
    matrix = features.iloc[np.concatenate([reference, tested_rows])].to_numpy(
        dtype="float64", na_value=np.nan
    )
    matrix[~np.isfinite(matrix)] = np.nan
    present = ~np.isnan(matrix).all(axis=0)
    matrix, used = matrix[:, present], [c for c, keep in zip(columns, present, strict=True) if keep]
    if not used:
        return ft, {"skipped": f"columns {columns[:10]} have no values in the rows used"}
    gaps = np.isnan(matrix)
    imputed = [c for c, gap in zip(used, gaps.any(axis=0), strict=True) if gap]
    if imputed:
        matrix = np.where(gaps, np.nanmean(matrix, axis=0), matrix)

    from sklearn.neighbors import KNeighborsClassifier

    neighbours = FT_NEIGHBORS if len(reference) > FT_FEW_ROWS else FT_MIN_NEIGHBORS
    knn = KNeighborsClassifier(
        n_neighbors=neighbours, weights="uniform", algorithm="auto", leaf_size=30, p=2
    )
    knn.fit(matrix[: len(reference)], predicted[reference])
    as_privileged = knn.predict(matrix[len(reference) :]).astype(bool)
    model = predicted[tested_rows]
    group = codes[tested_rows]
    # F+: rejected, though their neighbours in a are accepted; F-: the other way round.
    flips_up = np.bincount(group, weights=~model & as_privileged, minlength=len(names))
    flips_down = np.bincount(group, weights=model & ~as_privileged, minlength=len(names))
    asked = np.bincount(group, minlength=len(names))
    ft[compared] = (flips_up[compared] - flips_down[compared]) / asked[compared]
    info: dict[str, Any] = {
        "columns": used,
        "neighbors": neighbours,
        "privilegedRows": int(starts[a + 1] - starts[a]),
        "referenceRows": len(reference),
        "rows": {names[d]: len(r) for d, r in zip(compared, tested, strict=True)},
        "sampled": bool(len(reference) < starts[a + 1] - starts[a] or level is not None),
    }
    if imputed:
        info["imputed"] = imputed
    return ft, info


def _numeric(dtype: Any) -> bool:
    return bool(pd.api.types.is_numeric_dtype(dtype))


def population_metrics(
    label_positive: np.ndarray, predicted_positive: np.ndarray
) -> dict[str, float | None]:
    """Whole-population metrics: GE, Clarify's generalized entropy index with alpha = 2.

    The benefit of a row is prediction - label + 1: 0 for a false negative, 1 for a correct
    prediction, 2 for a false positive. GE = sum((b / mean b)^2 - 1) / (2 n), from the four
    overall counts. None when the mean benefit is 0 (every row a false negative), where
    `smclarify` raises.
    """
    label = np.asarray(label_positive, dtype=bool)
    predicted = np.asarray(predicted_positive, dtype=bool)
    if len(label) != len(predicted):
        raise ValueError("label and prediction lengths differ")
    tn, fp, fn, tp = np.bincount(label * 2 + predicted, minlength=4).tolist()
    n = tn + fp + fn + tp
    benefit = tp + tn + 2 * fp
    if n == 0 or benefit == 0:
        return {"GE": None}
    mean = benefit / n
    ge = ((tp + tn) + 4 * fp) / (n * mean * mean) - 1.0
    return {"GE": _finite(ge / 2.0)}


def feature_bias(
    sensitive: pd.Series,
    label_positive: np.ndarray,
    predicted_positive: np.ndarray | None = None,
    privileged_group: str | None = None,
    min_group_size: int = 1,
    strata: pd.Series | None = None,
    flip_features: pd.DataFrame | None = None,
) -> FeatureBias:
    """Per-group statistics of one sensitive feature and metrics against the privileged group.

    `strata`: the group variable's values (a department, say), row by row: adds CDDL, and
    CDDPL with predictions. `flip_features`: the numeric columns FlipTest finds neighbours in,
    row by row (the caller leaves out the label, the prediction and this feature;
    `flip_columns` picks them): adds FT; it needs predictions.

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
    for extra in (strata, flip_features):
        if extra is not None:
            lengths.add(len(extra))
    if len(lengths) != 1:
        raise ValueError(
            f"feature {feature!r}: sensitive, label, prediction, group variable and FlipTest "
            "column lengths differ"
        )
    if flip_features is not None and predicted_positive is None:
        raise ValueError("FlipTest (flip_features) needs predictions")
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

    def stat(name: str) -> list[float | None]:
        if name in rates:
            return _column(rates[name])
        return [None] * len(names)

    def number(name: str) -> list[int | None]:
        if name in rates:
            return rates[name].tolist()
        return [None] * len(names)

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
        # A rate of 1.0 from two rows is chance, not advantage, and a group of 3% of the rows
        # is no reference a reader would accept for the other 97%: the reference is the best
        # off of the groups that are a real share of the data, when there are such groups.
        total = sum(counts)
        supported = [i for i in eligible if counts[i] >= REFERENCE_MIN_ROWS]
        major = [i for i in supported if counts[i] >= REFERENCE_MIN_SHARE * total]
        best = min(major or supported or eligible, key=rank)
        privileged = names[best]
        chosen_by = CHOSEN_BY_RATE
        if best != min(eligible, key=rank):
            chosen_by = (
                f"{CHOSEN_BY_RATE} among groups of at least {REFERENCE_MIN_SHARE:.0%} of the rows"
                if major
                else f"{CHOSEN_BY_RATE} among groups of at least {REFERENCE_MIN_ROWS} rows"
            )
    a = names.index(privileged)
    compared = [d for d in range(len(names)) if d != a and counts[d] >= min_group_size]
    pairs = _pair_metrics(rates, a)
    if strata is not None:
        strata_codes, strata_names = group_codes(strata)
        cells = _strata_cells(codes, len(names), strata_codes, len(strata_names))
        conditional = {"CDDL": label_positive}
        if predicted_positive is not None:
            conditional["CDDPL"] = predicted_positive
        for name, outcome in conditional.items():
            pairs[name] = _conditional_disparity(
                cells, len(names), len(strata_names), outcome.astype(np.intp), a
            )
    flip_info = None
    if flip_features is not None and predicted_positive is not None:
        pairs["FT"], flip_info = _flip_test(
            codes, names, a, compared, predicted_positive, flip_features
        )
        if "skipped" in flip_info:
            del pairs["FT"]
    keys = sorted(pairs, key=_METRIC_ORDER.index)  # pre-training first, as Clarify lists them
    values = list(zip(*(_column(pairs[k]) for k in keys), strict=True))
    metrics = {names[d]: dict(zip(keys, values[d], strict=True)) for d in compared}
    return FeatureBias(feature, privileged, chosen_by, groups, metrics, flip_info)


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
