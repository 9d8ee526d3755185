"""The bias report's glossary, small-group warnings and rate intervals (issue 17, section 1).

Every metric has its meaning, range, ideal value and sign in view (a <dl>, not a table in a
scroll box); the sign each entry states is checked against the metrics as computed; groups
under SMALL_GROUP_ROWS rows or not compared get a warning; the positive-rate intervals are
scipy's Clopper-Pearson bounds.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from support.reports import assert_numbers_labelled, parse_page

from fairpilot_jobs.bias.metrics import feature_bias
from fairpilot_jobs.reports.bias_report import (
    GLOSSARY,
    METRIC_NAMES,
    SMALL_GROUP_ROWS,
    build_bias_report,
)


def result(groups: dict[str, dict[str, Any]], metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": "income",
        "positiveLabel": ">50K",
        "positiveLabelReason": "given",
        "thresholds": {"disparateImpact": 0.8},
        "biasDetected": False,
        "findings": [],
        "rows": sum(g["count"] for g in groups.values()),
        "predictionSource": None,
        "mitigation": {"uri": "file:///w.json"},
        "features": {
            "race": {
                "privilegedGroup": "White",
                "privilegedChosenBy": "highest positive rate",
                "groups": groups,
                "metrics": metrics,
            }
        },
    }


GROUPS = {
    "White": {"count": 2000, "positiveRate": 500 / 2000},
    "Black": {"count": 400, "positiveRate": 50 / 400},
    "Other": {"count": 37, "positiveRate": 4 / 37},
    "Tiny": {"count": 3, "positiveRate": 0.0},
}
METRICS = {"Black": {"LDI": 0.5, "DPL": 0.125}, "Other": {"LDI": 0.4324, "DPL": 0.1419}}


def visible(html: str) -> str:
    return re.sub(r"<details>.*?</details>", "", html, flags=re.DOTALL)


def test_every_metric_has_meaning_range_ideal_and_sign_in_view() -> None:
    html = build_bias_report(result(GROUPS, METRICS))
    assert set(GLOSSARY) == set(METRIC_NAMES)
    glossary = re.search(r'<dl class="glossary">(.*?)</dl>', visible(html), re.DOTALL)
    assert glossary, "the glossary is a definition list in view"
    entries = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", glossary.group(1), re.DOTALL)
    assert len(entries) == len(METRIC_NAMES)
    for (term, body), (key, (span, ideal, sign)) in zip(entries, GLOSSARY.items(), strict=True):
        text = unescape(re.sub(r"<[^>]+>", " ", body))
        assert unescape(term).startswith(f"{key}: ")
        assert "Range" in text and span in text and "Ideal" in text and ideal in text
        assert "Sign" in text and sign in text
        assert len(re.findall(r"<p>", body)) == 1, f"{key} has no meaning line"
    assert "table-wrap" not in glossary.group(1)


def test_stated_signs_match_the_metrics() -> None:
    """A group the model under-accepts and over-rejects: the signs the glossary states."""
    rng = np.random.default_rng(0)
    sensitive = pd.Series(["a"] * 4000 + ["d"] * 4000)
    label = rng.uniform(size=8000) < 0.4
    predicted = label.copy()
    d = np.arange(8000) >= 4000
    missed = d & label & (rng.uniform(size=8000) < 0.5)  # half of d's positives rejected
    predicted[missed] = False
    m = feature_bias(sensitive, label, predicted, privileged_group="a").metrics["d"]
    assert "negative when the model accepts the group less" in GLOSSARY["DCAcc"][2]
    assert m["DCAcc"] < 0
    assert "negative when the model rejects the group more" in GLOSSARY["DCR"][2]
    assert m["DCR"] < 0
    assert "positive when the model misses more" in GLOSSARY["RD"][2]
    assert m["RD"] > 0
    assert m["DPPL"] > 0 and m["DI"] < 1 and m["AD"] > 0
    assert "positive when the group's errors lean more to missed positives" in GLOSSARY["TE"][2]
    assert m["TE"] is None or m["TE"] > 0
    assert "positive when more of the group's rejections are right" in GLOSSARY["DRR"][2]
    assert m["DRR"] < 0  # d's rejections now include missed positives: fewer are right


def test_small_groups_are_warned_about() -> None:
    html = visible(build_bias_report(result(GROUPS, METRICS)))
    match = re.search(r"Small groups of race</p><p>(.*?)</p>", html)
    assert match, "no small-group warning"
    text = unescape(match.group(1))
    assert f"2 groups of race have fewer than {SMALL_GROUP_ROWS} rows or no metrics" in text
    assert "Other (37 rows), Tiny (3 rows)" in text
    assert "1 of them is under minGroupSize" in text
    big = {k: v for k, v in GROUPS.items() if v["count"] >= SMALL_GROUP_ROWS}
    assert "Small groups" not in build_bias_report(result(big, {"Black": METRICS["Black"]}))


@pytest.mark.parametrize("group", list(GROUPS))
def test_rate_intervals_are_clopper_pearson(group: str) -> None:
    html = build_bias_report(result(GROUPS, METRICS))
    page = parse_page(html)
    assert_numbers_labelled(page)
    table = next(t for t in page.tables if any("rate 95% low" in h.text for h in t.head))
    low_column, high_column = table.column("rate 95% low"), table.column("rate 95% high")
    row = next(r for r in table.rows if r[0].text.strip() == group)
    count = GROUPS[group]["count"]
    positives = round(GROUPS[group]["positiveRate"] * count)
    expected = binomtest(positives, count).proportion_ci(0.95, method="exact")
    low = float(row[low_column].attrs.get("title") or row[low_column].text.strip("≈"))
    high = float(row[high_column].attrs.get("title") or row[high_column].text.strip("≈"))
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)
