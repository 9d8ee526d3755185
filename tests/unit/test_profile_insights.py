"""The profile's distributions, association with the target and warnings (issue 17, section 1).

Cramér's V, the correlation ratio and Pearson's r are checked against scipy; histograms against
numpy; the report shows histograms, top categories, associations and the class balance in view,
not inside a collapsed <details>.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import f_oneway, pearsonr
from scipy.stats.contingency import association, crosstab

from fairpilot.api import ProfileJobSpec
from fairpilot_jobs.profile import correlation_ratio, cramers_v, histogram, profile_frame
from fairpilot_jobs.reports.profile_report import build_profile_report


def spec(**fields: object) -> ProfileJobSpec:
    return ProfileJobSpec.model_validate({"uri": "file:///unused.csv", **fields})


def table(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.choice(["yes", "no"], rows, p=[0.3, 0.7])
    return pd.DataFrame(
        {
            "colour": np.where(
                rng.uniform(size=rows) < 0.6, np.where(label == "yes", "red", "blue"), "green"
            ),
            "size": rng.choice(["s", "m", "l", "xl"], rows),
            "amount": rng.normal(10, 3, rows) + 4 * (label == "yes"),
            "gain": np.where(rng.uniform(size=rows) < 0.8, 0.0, rng.exponential(100, rows)),
            "same": 7,
            "label": label,
        }
    )


@pytest.mark.parametrize("seed", range(3))
def test_cramers_v_matches_scipy(seed: int) -> None:
    frame = table(seed=seed)
    for column in ("colour", "size"):
        _, counts = crosstab(frame[column], frame["label"])
        expected = association(counts, method="cramer", correction=False)
        assert cramers_v(frame[column], frame["label"]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_correlation_ratio_matches_anova(seed: int) -> None:
    frame = table(seed=seed)
    groups = [frame.loc[frame["size"] == g, "amount"] for g in sorted(frame["size"].unique())]
    f = f_oneway(*groups).statistic
    k, n = len(groups), len(frame)
    eta_squared = f * (k - 1) / (f * (k - 1) + (n - k))
    assert correlation_ratio(frame["size"], frame["amount"]) ** 2 == pytest.approx(
        eta_squared, rel=1e-10
    )
    assert correlation_ratio(pd.Series(["a"] * 5), pd.Series([1.0] * 5)) == 0.0


def test_associations_in_the_profile() -> None:
    frame = table()
    result = profile_frame(frame, spec(target="label"))
    found = {a["column"]: a for a in result["targetAssociation"]}
    assert "label" not in found and "same" not in found  # the target and constants left out
    assert found["colour"]["measure"] == "Cramér's V"
    assert found["amount"]["measure"] == "correlation ratio η"
    values = [abs(a["value"]) for a in result["targetAssociation"]]
    assert values == sorted(values, reverse=True)
    assert found["colour"]["value"] > found["size"]["value"]  # built in vs random
    regression = frame.assign(target=frame["amount"] * 2 + 1)
    result = profile_frame(regression, spec(target="target", taskType="regression"))
    found = {a["column"]: a for a in result["targetAssociation"]}
    expected = pearsonr(regression["gain"], regression["target"]).statistic
    assert found["gain"]["measure"] == "pearson r"
    assert found["gain"]["value"] == pytest.approx(expected, rel=1e-10)
    assert found["size"]["measure"] == "correlation ratio η"


def test_histogram_counts_every_value() -> None:
    values = np.random.default_rng(1).normal(0, 1, 1000)
    out = histogram(values)
    counts, edges = np.histogram(values, bins=20)
    assert out["counts"] == counts.tolist() and out["edges"] == edges.tolist()
    whole = histogram(np.array([1.0, 2, 2, 3, 5]))
    assert whole["counts"] == [1, 2, 1, 0, 1] and len(whole["edges"]) == 6
    assert histogram(np.array([np.nan])) == {"edges": [], "counts": []}


def test_warnings_for_duplicates_zeros_and_constants() -> None:
    frame = pd.concat([table(), table().iloc[:5]], ignore_index=True)
    result = profile_frame(frame, spec(target="label"))
    kinds = {(w["type"], w["column"]) for w in result["warnings"]}
    assert ("ZeroInflated", "gain") in kinds
    assert ("ConstantColumn", "same") in kinds
    assert ("DuplicateRows", "") in kinds
    assert result["duplicateRows"] == 5
    [duplicates] = [w for w in result["warnings"] if w["type"] == "DuplicateRows"]
    assert duplicates["message"].startswith("5 rows (")
    columns = {c["name"]: c for c in result["columnProfiles"]}
    assert sum(columns["amount"]["histogram"]["counts"]) == len(frame)


def visible(html: str) -> str:
    """The page without its collapsed <details> blocks."""
    return re.sub(r"<details>.*?</details>", "", html, flags=re.DOTALL)


def test_report_shows_distributions_associations_and_balance() -> None:
    frame = table()
    result = profile_frame(frame, spec(target="label"))
    html = visible(build_profile_report(result, spec(target="label")))
    labels = re.findall(r'aria-label="([^"]+)"', html)
    assert "Class balance of label" in labels
    assert "Numeric columns" in labels
    assert "Categorical columns: top 5 values" in labels
    assert "Association with label" in labels
    assert "<h2>Distributions</h2>" in html and "<h2>Association with label</h2>" in html
    assert "Cramér&#x27;s V" in html
    assert "ZeroInflated" in html
