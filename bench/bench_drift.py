"""Data drift statistics on 1,000,000 rows x 20 features per window, against scipy and numpy.

The reference is Adult's training split (adult.data) with six more numeric columns (noise
scaled to Adult's own columns, so that there are 20 features: 12 numeric, 8 categorical); the
window is 1,000,000 rows sampled with replacement from adult.test, with the same six columns.
Ours: `reference_of` once, then `data_drift` per window (the timed call). The anchor computes
the same statistics column by column the plain way: numpy's histogram over the reference's
decile edges and the textbook PSI and KL, `scipy.spatial.distance.jensenshannon`,
`scipy.stats.ks_2samp` and `scipy.stats.chi2_contingency` over a pandas crosstab. Both must
agree within 1e-9 (PSI, KL, JS, KS) and 1e-6 relative (chi-squared).

    python bench/bench_drift.py [--rows 1000000] [--repeat 3] [--out bench/results/drift.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from harness import describe
from scipy import stats
from scipy.spatial.distance import jensenshannon

from fairpilot.datasets import adult
from fairpilot_jobs.monitor.drift import EPSILON, data_drift, reference_of

EXTRA = 6  # noise columns, to reach 20 features


def frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = adult()
    features = [c for c in train.columns if c != "income"]
    rng = np.random.default_rng(0)
    window = test[features].iloc[rng.integers(0, len(test), rows)].reset_index(drop=True)
    reference = train[features].reset_index(drop=True)
    for i in range(EXTRA):
        base = features[[0, 2, 4, 10, 11, 12][i]]  # Adult's numeric columns
        for frame in (reference, window):
            scale = float(frame[base].std()) or 1.0
            frame[f"noise{i}"] = frame[base] + rng.normal(0, scale / 4, len(frame))
    return reference, window


def anchor(reference: pd.DataFrame, window: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The same statistics, column by column, with numpy and scipy directly."""
    out = {}
    for name in reference.columns:
        ref, new = reference[name], window[name]
        if pd.api.types.is_numeric_dtype(ref):
            present = ref.dropna().to_numpy(dtype=float)
            inner = np.unique(np.quantile(present, np.linspace(0, 1, 11)[1:-1]))
            # Right-closed bins, as the drift module's: numpy's histogram is left-closed, so
            # the edges go through np.nextafter to move each tie into the lower bin.
            edges = np.concatenate([[-np.inf], np.nextafter(inner, np.inf), [np.inf]])
            expected = np.append(np.histogram(present, edges)[0], ref.isna().sum())
            actual = np.append(np.histogram(new.dropna(), edges)[0], new.isna().sum())
            ks = stats.ks_2samp(new.dropna().to_numpy(dtype=float), present)
            extra = {"ks": float(ks.statistic), "ksP": float(ks.pvalue)}
        else:
            categories = sorted(ref.dropna().astype(str).unique())
            new_text = new.dropna().astype(str)
            expected = np.array(
                [*(ref.astype(str).value_counts().reindex(categories)), 0, ref.isna().sum()]
            )
            seen = new_text.value_counts().reindex(categories, fill_value=0).to_numpy()
            unseen = int((~new_text.isin(categories)).sum())
            actual = np.array([*seen, unseen, new.isna().sum()])
            table = np.vstack([expected, actual])
            table = table[:, table.sum(axis=0) > 0]
            chi2 = stats.chi2_contingency(table, correction=False)
            extra = {"chi2": float(chi2.statistic), "chi2P": float(chi2.pvalue)}
        e = np.maximum(expected / expected.sum(), EPSILON)
        a = np.maximum(actual / actual.sum(), EPSILON)
        out[name] = {
            "psi": float(np.sum((a - e) * np.log(a / e))),
            "kl": float(np.sum(a * np.log(a / e))),
            "js": float(jensenshannon(expected / expected.sum(), actual / actual.sum(), base=2)),
            **extra,
        }
    return out


def best(repeat: int, call: Any) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - began)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/drift.json"))
    args = parser.parse_args()
    reference, window = frames(args.rows)
    began = time.perf_counter()
    references = reference_of(reference)
    build = time.perf_counter() - began
    ours_s, ours = best(args.repeat, lambda: data_drift(references, window))
    anchor_s, theirs = best(args.repeat, lambda: anchor(reference, window))
    differences: dict[str, float] = {}
    for name, drift in ours.items():
        pairs = {
            "psi": drift.psi,
            "kl": drift.kl,
            "js": drift.js,
            "ks": drift.ks_statistic,
            "ksP": drift.ks_pvalue,
            "chi2": drift.chi2_statistic,
            "chi2P": drift.chi2_pvalue,
        }
        for key, value in pairs.items():
            if key in theirs[name]:
                scale = 1.0 if key != "chi2" else max(1.0, abs(theirs[name][key]))
                difference = abs(float(value or 0.0) - theirs[name][key]) / scale
                differences[key] = max(differences.get(key, 0.0), difference)
    figures = {
        "machine": describe("scipy"),
        "rows": {"reference": len(reference), "window": len(window)},
        "features": {
            "numeric": sum(d.kind == "numeric" for d in ours.values()),
            "categorical": sum(d.kind == "categorical" for d in ours.values()),
        },
        "referenceBuildSeconds": round(build, 3),
        "oursSeconds": round(ours_s, 3),
        "anchorSeconds": round(anchor_s, 3),
        "speedup": round(anchor_s / ours_s, 2),
        "maxDifference": differences,
        "drifted": {n: round(d.psi, 4) for n, d in ours.items() if d.significant},
        "note": "best of --repeat; the window is adult.test resampled, the reference adult.data "
        "(the two splits differ a little, so some PSI is expected: drifted lists PSI >= 0.2)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    agree = all(v <= (1e-6 if k == "chi2" else 1e-9) for k, v in differences.items()
                if not k.endswith("P"))  # fmt: skip
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
