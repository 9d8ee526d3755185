"""Data drift per feature: a window of new data against the model's training data.

The reference is built once from the training data (`reference_of`) and holds, per feature,
what each window is compared with: for a numeric feature the reference's decile edges, the
share of rows in each bin and its sorted values (for the two-sample KS test); for a categorical
feature the share of each category. Missing values have a bin of their own, and a window's
categories that the reference never saw share one "unseen" bin: a column that starts arriving
empty, or with new codes, has drifted too.

Per feature and window (`feature_drift`):

- PSI, the population stability index: sum over bins of (w - r) * ln(w / r);
- KL, the Kullback-Leibler divergence of the window from the reference: sum of w * ln(w / r);
- JS, the Jensen-Shannon distance (base 2, in [0, 1]), as `scipy.spatial.distance.jensenshannon`;
- for a numeric feature, the two-sample Kolmogorov-Smirnov statistic and p-value
  (`scipy.stats.ks_2samp`, on the values present);
- for a categorical one, the chi-squared test of the window's counts against the reference's
  (`scipy.stats.chi2_contingency` on the 2 x bins table).

Bin shares are floored at `EPSILON` (1e-4) before PSI and KL, as the usual PSI practice does,
so that a bin empty on one side gives a large but finite value. The conventional reading of
PSI: below 0.1 stable, 0.1 to 0.2 a moderate shift, 0.2 and above a significant one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

EPSILON = 1e-4
MISSING, UNSEEN = "(missing)", "(unseen)"
PSI_SIGNIFICANT = 0.2


@dataclass(frozen=True)
class FeatureReference:
    """What a window of one feature is compared with."""

    name: str
    kind: Literal["numeric", "categorical"]
    bins: tuple[str, ...]  # the bins' labels, MISSING last (and UNSEEN before it, categorical)
    shares: np.ndarray  # the reference's share of rows per bin (sums to 1)
    counts: np.ndarray  # the reference's rows per bin
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))  # numeric: inner bin edges
    categories: tuple[str, ...] = ()  # categorical: the reference's categories, in bin order
    values: np.ndarray = field(default_factory=lambda: np.empty(0))  # numeric: sorted, present

    def counts_of(self, column: pd.Series) -> np.ndarray:
        """A window's rows per bin of this reference."""
        return self._window(column)[0]

    def _window(self, column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """A window's rows per bin, and (numeric) its present values as numbers, converted
        once for both the bins and the KS test."""
        missing = int(column.isna().sum())
        if self.kind == "numeric":
            values = _numbers(column)
            return np.append(_numeric_bins(self.edges, values), missing), values
        present = column.dropna().astype(str)
        codes = pd.Categorical(present, categories=self.categories).codes
        # Code -1: a category the reference never saw.
        counts = np.bincount(np.where(codes < 0, len(self.categories), codes),
                             minlength=len(self.categories) + 1)  # fmt: skip
        return np.append(counts, missing).astype(np.int64), np.empty(0)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift in one window."""

    name: str
    kind: Literal["numeric", "categorical"]
    rows: int
    psi: float
    kl: float
    js: float
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    chi2_statistic: float | None = None
    chi2_pvalue: float | None = None

    @property
    def significant(self) -> bool:
        return self.psi >= PSI_SIGNIFICANT


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def feature_reference(name: str, column: pd.Series, bins: int = 10) -> FeatureReference:
    """The reference of one training column: deciles (or `bins` quantiles) for a numeric one,
    its categories for any other."""
    missing = int(column.isna().sum())
    present = column.dropna()
    if _numeric(column):
        values = np.sort(present.to_numpy(dtype=float))
        quantiles = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]) if len(values) else []
        edges = np.unique(np.asarray(quantiles, dtype=float))
        counts = np.append(_numeric_bins(edges, values), missing)
        labels = (*_interval_labels(edges), MISSING)
        return FeatureReference(name, "numeric", labels, _shares(counts), counts, edges,
                                values=values)  # fmt: skip
    as_text = present.astype(str)
    categories = tuple(sorted(as_text.unique()))
    counts = np.append(as_text.value_counts().reindex(categories).to_numpy(), [0, missing])
    labels = (*categories, UNSEEN, MISSING)
    return FeatureReference(name, "categorical", labels, _shares(counts), counts,
                            categories=categories)  # fmt: skip


def reference_of(frame: pd.DataFrame, columns: list[str] | None = None, bins: int = 10
                 ) -> dict[str, FeatureReference]:  # fmt: skip
    """The reference of every column (or of `columns`) of the training data."""
    return {name: feature_reference(name, frame[name], bins) for name in columns or frame.columns}


def feature_drift(reference: FeatureReference, column: pd.Series) -> FeatureDrift:
    """How far a window of one feature has moved from its reference. An empty window raises
    ValueError: it has no distribution to compare."""
    counts, values = reference._window(column)
    rows = int(counts.sum())
    if rows == 0:
        raise ValueError(f"feature {reference.name!r}: the window has no rows")
    window, expected = _floored(counts), _floored(reference.counts)
    psi = float(np.sum((window - expected) * np.log(window / expected)))
    kl = float(np.sum(window * np.log(window / expected)))
    js = float(jensenshannon(_shares(reference.counts), _shares(counts), base=2))
    ks: tuple[float, float] | None = None
    chi2: tuple[float, float] | None = None
    if reference.kind == "numeric":
        if len(values) and len(reference.values):
            test = stats.ks_2samp(values, reference.values)
            ks = float(test.statistic), float(test.pvalue)
    else:
        # Bins empty on both sides carry no information (and make expected counts zero).
        table = np.vstack([reference.counts, counts])
        table = table[:, table.sum(axis=0) > 0]
        chi2 = (0.0, 1.0)
        if table.shape[1] >= 2:
            statistic, pvalue, *_ = stats.chi2_contingency(table, correction=False)
            chi2 = float(statistic), float(pvalue)
    return FeatureDrift(
        reference.name,
        reference.kind,
        rows,
        psi,
        kl,
        js,
        ks_statistic=ks[0] if ks else None,
        ks_pvalue=ks[1] if ks else None,
        chi2_statistic=chi2[0] if chi2 else None,
        chi2_pvalue=chi2[1] if chi2 else None,
    )


def data_drift(references: dict[str, FeatureReference], window: pd.DataFrame
               ) -> dict[str, FeatureDrift]:  # fmt: skip
    """Every referenced feature's drift in a window. A missing column raises KeyError naming
    it: a batch without a feature the model uses is bad input, not drift."""
    absent = [name for name in references if name not in window.columns]
    if absent:
        raise KeyError(f"the window lacks the model's feature(s): {', '.join(absent)}")
    return {name: feature_drift(ref, window[name]) for name, ref in references.items()}


def _numbers(column: pd.Series) -> np.ndarray:
    """A column's present values as floats; text where numbers belong raises ValueError."""
    return pd.to_numeric(column.dropna(), errors="raise").to_numpy(dtype=float)


def _numeric_bins(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows per bin: right-closed bins over the inner edges, the first and last open-ended,
    so that values outside the reference's range land in them."""
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def _floored(counts: np.ndarray) -> np.ndarray:
    return np.maximum(_shares(counts), EPSILON)


def _interval_labels(edges: np.ndarray) -> tuple[str, ...]:
    if not len(edges):
        return ("(-inf, inf)",)
    bounds = ["-inf", *(f"{edge:g}" for edge in edges), "inf"]
    return tuple(f"({low}, {high}]" for low, high in itertools.pairwise(bounds))
