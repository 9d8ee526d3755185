"""Data drift statistics (`fairpilot_jobs.monitor.drift`) against scipy and textbook formulas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from fairpilot_jobs.monitor.drift import (
    EPSILON,
    MISSING,
    UNSEEN,
    data_drift,
    feature_drift,
    feature_reference,
    reference_of,
)

RNG = np.random.default_rng(7)


def training() -> pd.DataFrame:
    rows = 20_000
    return pd.DataFrame(
        {
            "age": RNG.normal(40, 12, rows).round(),
            "hours": RNG.gamma(4, 10, rows),
            "sex": RNG.choice(["Female", "Male"], rows, p=[0.33, 0.67]),
            "race": RNG.choice(["A", "B", "C", "D"], rows, p=[0.7, 0.15, 0.1, 0.05]),
        }
    )


def psi_by_hand(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / expected.sum(), EPSILON)
    a = np.maximum(actual / actual.sum(), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def test_numeric_bins_are_the_reference_deciles_and_the_statistics_match_scipy() -> None:
    train = training()
    ref = feature_reference("hours", train["hours"])
    window = pd.Series(RNG.gamma(4, 14, 5_000))  # a 40 % longer week
    drift = feature_drift(ref, window)
    # The bins, counted independently: numpy's histogram over the same edges, open-ended.
    edges = np.concatenate([[-np.inf], np.quantile(train["hours"], np.linspace(0, 1, 11)[1:-1]),
                            [np.inf]])  # fmt: skip
    expected = np.histogram(train["hours"], edges)[0]
    actual = np.histogram(window, edges)[0]
    assert ref.counts[:-1].tolist() == expected.tolist()
    assert drift.psi == pytest.approx(psi_by_hand(expected, actual), abs=1e-12)
    window_shares = actual / actual.sum()
    floored = np.maximum(window_shares, EPSILON), np.maximum(expected / expected.sum(), EPSILON)
    assert drift.kl == pytest.approx(float(rel_entr(*floored).sum()), abs=1e-12)
    assert drift.js == pytest.approx(
        jensenshannon(expected / expected.sum(), window_shares, base=2), abs=1e-12
    )
    ks = stats.ks_2samp(window, train["hours"])
    assert (drift.ks_statistic, drift.ks_pvalue) == (pytest.approx(ks.statistic),
                                                     pytest.approx(ks.pvalue))  # fmt: skip
    assert drift.significant and drift.psi >= 0.2


def test_a_sample_of_the_reference_itself_does_not_drift() -> None:
    train = training()
    references = reference_of(train)
    for seed in range(20):
        window = train.sample(2_000, random_state=seed)
        for drift in data_drift(references, window).values():
            assert drift.psi < 0.1, (seed, drift)
            assert not drift.significant


def test_categorical_drift_is_scipys_chi_squared_with_unseen_and_missing_bins() -> None:
    train = training()
    ref = feature_reference("race", train["race"])
    assert ref.bins == ("A", "B", "C", "D", UNSEEN, MISSING)
    window = pd.Series(["A"] * 500 + ["B"] * 300 + ["E"] * 150 + [None] * 50)
    drift = feature_drift(ref, window)
    counts = ref.counts_of(window)
    assert counts.tolist() == [500, 300, 0, 0, 150, 50]
    table = np.vstack([ref.counts, counts])
    table = table[:, table.sum(axis=0) > 0]
    chi2, pvalue, *_ = stats.chi2_contingency(table, correction=False)
    assert drift.chi2_statistic == pytest.approx(chi2)
    assert drift.chi2_pvalue == pytest.approx(pvalue)
    assert drift.psi == pytest.approx(psi_by_hand(ref.counts, counts), abs=1e-12)
    assert drift.ks_statistic is None and drift.significant


def test_missing_values_have_a_bin_of_their_own() -> None:
    train = training()
    ref = feature_reference("age", train["age"])
    emptier = train["age"].sample(4_000, random_state=1).to_numpy().copy()
    emptier[:1_000] = np.nan  # a quarter of the values stop arriving
    drift = feature_drift(ref, pd.Series(emptier))
    assert ref.bins[-1] == MISSING and ref.counts[-1] == 0
    assert ref.counts_of(pd.Series(emptier))[-1] == 1_000
    assert drift.psi >= 0.2  # the ages present did not move; their absence did


def test_bad_windows_say_what_is_wrong() -> None:
    train = training()
    references = reference_of(train)
    with pytest.raises(KeyError, match=r"lacks the model's feature.*: hours"):
        data_drift(references, train.drop(columns=["hours"]))
    with pytest.raises(ValueError, match="'age': the window has no rows"):
        feature_drift(references["age"], pd.Series([], dtype=float))
    with pytest.raises(ValueError):  # text where the model had numbers
        feature_drift(references["age"], pd.Series(["forty", "fifty"]))
