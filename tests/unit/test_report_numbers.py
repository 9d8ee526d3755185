"""Numbers in the reports are exact unless the page says they are rounded (issue 12, item 8).

Observed values (min, max, counts, data values, category values, sizes) are shown with every
digit; derived statistics (means, standard deviations, interpolated quartiles, rates, metrics)
may be rounded, and then carry the "≈" mark: in the table header with a note under the table,
or in front of the value in key-value lists, cards and chart labels. The tests hold that as a
property over random tables, not for one example.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.reports import assert_numbers_labelled, parse_page

from fairpilot.api import ProfileJobSpec
from fairpilot_jobs.profile import profile_frame
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.bias_report import build_bias_report
from fairpilot_jobs.reports.html import (
    ROUNDED_MARK,
    ROUNDED_NOTE,
    Report,
    approx,
    format_exact,
    format_rounded,
    shows_exactly,
)
from fairpilot_jobs.reports.profile_report import ROUNDED_STATISTICS, build_profile_report

SEEDS = range(6)
EXACT_STATISTICS = ("min", "max", "zeros")


# -- a parse of the report's tables and cards ------------------------------------------------












# -- the formatters --------------------------------------------------------------------------


def _awkward_floats(seed: int, size: int = 400) -> np.ndarray:
    """Floats of every kind: many digits, large, negative, tiny, whole, any bit pattern."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**63, size, dtype=np.int64).view(np.float64)
    return np.concatenate(
        [
            rng.normal(0, 1, size),
            rng.normal(0, 1e6, size),
            rng.uniform(-1e9, 1e9, size),
            rng.integers(-(10**9), 10**9, size).astype(np.float64),
            rng.uniform(0, 1e-9, size),
            -rng.exponential(1e-5, size),
            10.0 ** rng.uniform(-300, 300, size),
            np.where(np.isfinite(bits), bits, 1.0),
            np.array([99999.0, 12285.0, 0.1, 1 / 3, 2.0**53, 2.0**53 + 2, 1e16, 5e-324, -0.0]),
        ]
    )


def _parse(text: str) -> float:
    assert text.count(".") <= 1 and " " not in text, text
    return float(text.replace(",", ""))


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_text_reads_back_as_the_same_float(seed: int) -> None:
    for value in _awkward_floats(seed):
        text = format_exact(float(value))
        assert _parse(text) == value, (repr(value), text)
        assert format_exact(value) == text  # numpy float64 alike
        assert shows_exactly(value, text)
        assert approx(value, text) == text


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_text_has_thousands_separators_and_no_spurious_digits(seed: int) -> None:
    for value in _awkward_floats(seed):
        text = format_exact(float(value))
        if "e" in text:
            assert abs(value) >= 1e16 or abs(value) < 1e-4, text
            continue
        whole = text.lstrip("-").partition(".")[0]
        assert whole == f"{int(whole.replace(',', '')):,}", text
        if value.is_integer():
            assert "." not in text  # 99999.0 is "99,999", not "99,999.0"
        assert len(text.replace(",", "").lstrip("-")) <= len(repr(float(value))), text


@pytest.mark.parametrize("seed", SEEDS)
def test_integers_are_shown_with_every_digit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for value in rng.integers(-(2**62), 2**62, 300):
        text = format_exact(value)
        assert int(text.replace(",", "")) == value
        assert format_exact(int(value)) == text == format_rounded(value)


@pytest.mark.parametrize("seed", SEEDS)
def test_float32_values_read_back_in_their_own_precision(seed: int) -> None:
    values = np.random.default_rng(seed).normal(0, 1e4, 300).astype(np.float32)
    for value in values:
        text = format_exact(value)
        assert np.float32(text.replace(",", "")) == value
        assert len(text) <= 14, text  # "1,234.5677", not the float64 expansion


@pytest.mark.parametrize("seed", SEEDS)
def test_rounded_text_is_close_and_keeps_the_whole_number(seed: int) -> None:
    for value in _awkward_floats(seed):
        text = format_rounded(float(value))
        shown = _parse(text)
        if abs(value) >= 1e16:
            assert shown == value  # nothing to round to
        elif abs(value) >= 1_000:
            assert abs(shown - value) <= 0.5, (value, text)  # the whole number, every digit
        elif abs(value) > 1e-300:  # not a subnormal, where digits are few
            assert math.isclose(shown, value, rel_tol=5.01e-4), (value, text)
        digits = text.lstrip("-").partition("e")[0].replace(",", "").replace(".", "")
        if abs(value) < 1_000:
            assert len(digits.lstrip("0")) <= 4, text


@pytest.mark.parametrize(
    ("value", "shown", "exact"),
    [
        (0.24, "24%", True),
        (37.0, "37%", True),
        (37.2, "37%", False),
        (0.857142, "0.857", False),
        (99999, "100,000", False),
        (99999, "99,999", True),
        (12285, "12,280", False),
        (12285.0, "1.228e+04", False),
        (float("inf"), "∞", True),
        (1.0, "n/a", False),
    ],
)
def test_shows_exactly(value: float, shown: str, exact: bool) -> None:
    assert shows_exactly(value, shown) is exact
    assert approx(value, shown) == (shown if exact else f"{ROUNDED_MARK}{shown}")


def test_chart_labels_are_exact_or_marked() -> None:
    assert charts._format_values([99999, 12285, 3], None) == ["99,999", "12,285", "3"]
    assert charts._format_values([0.857142, 0.5, math.nan], None) == ["≈0.857", "0.5", "n/a"]
    assert charts._format_values([37.2, 40.0], "{:.0f}%") == ["≈37%", "40%"]
    assert charts._format_values([1e20], None) == ["100,000,000,000,000,000,000"]
    for svg in (
        charts.bar_chart(["a", "b"], [0.857142, 1.0]),
        charts.category_bars({"x": 99999, "y": 12285}),
        charts.grouped_bar_chart(["a"], {"s": [0.333333]}),
    ):
        assert svg.startswith("<svg ")


# -- the toolkit: tables, key-value lists and cards ------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_table_shows_exact_values_and_marks_rounded_columns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "count": rng.integers(0, 10**9, 30),
            "observed": rng.normal(0, 1e5, 30),
            "whole": rng.integers(-(10**6), 10**6, 30).astype(np.float64),
            "rate": rng.uniform(0, 1, 30),
            "tiny": rng.uniform(0, 1e-8, 30),
        }
    )
    section = Report("t").section("s").table(frame, rounded={"rate", "tiny", "whole"})
    [table] = parse_page(section._body()).tables
    assert_numbers_labelled(parse_page(section._body()))
    for name in ("count", "observed", "whole", "rate", "tiny"):
        column = table.column(name)
        texts = [row[column].text for row in table.rows]
        if name in ("count", "observed", "whole"):  # whole floats need no rounding
            assert texts == [format_exact(v) for v in frame[name]]
            assert not table.head[column].marked
        else:
            assert texts == [format_rounded(v) for v in frame[name]]
            assert table.head[column].marked
    assert table.notes == ["30 rows.", ROUNDED_NOTE]


def test_table_without_rounding_has_no_mark_or_note() -> None:
    html = Report("t").section("s").table([{"a": 0.1234567, "b": 2.5}], rounded={"b"})._body()
    [table] = parse_page(html).tables
    assert [c.text for c in table.rows[0]] == ["0.1234567", "2.5"]
    assert not any(h.marked for h in table.head) and table.notes == []
    assert ROUNDED_MARK not in html


def test_key_values_and_cards_mark_rounded_values() -> None:
    values = {"max": 99999.0, "min": 12285.0, "mean": 189664.13, "rate": 0.8734567, "n": 7}
    html = (
        Report("t")
        .section("s")
        .key_values(values, rounded={"mean", "rate", "n"})
        .metrics(values, rounded=True)
        ._body()
    )
    page = parse_page(html)
    [kv] = page.tables
    shown = {row[0].text: row[1] for row in kv.rows}
    for cells in (shown, page.cards):
        assert cells["max"].text == "99,999" and cells["min"].text == "12,285"
        assert cells["n"].text == "7" and "title" not in cells["n"].attrs
        assert cells["mean"].text == "≈189,664" and cells["mean"].attrs["title"] == "189,664.13"
        assert cells["rate"].text == "≈0.8735" and cells["rate"].attrs["title"] == "0.8734567"
    assert shown["mean"].text != page.cards["max"].text


# -- the profile report ----------------------------------------------------------------------


def random_frame(seed: int, rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    missing = rng.random(rows) < 0.2
    return pd.DataFrame(
        {
            "big_int": rng.integers(-(10**9), 10**9, rows),
            "count": rng.integers(0, 10**9, rows),
            "digits": rng.normal(0, 1, rows) * 10.0 ** rng.integers(-3, 7),
            "negative": -rng.uniform(1e3, 1e7, rows),
            "tiny": rng.uniform(0, 1e-7, rows),
            "sparse": np.where(missing, np.nan, rng.normal(50_000, 20_000, rows)),
            "few": rng.choice([12285, 99999, 1_000_001], rows),
            "group": rng.choice(["a", "b", "c"], rows),
            "outcome": rng.choice(["yes", "no"], rows),
        }
    )


def profile_html(frame: pd.DataFrame) -> tuple[dict[str, Any], str]:
    spec = ProfileJobSpec.model_validate(
        {"uri": "file:///unused.csv", "target": "outcome", "sensitiveFeatures": ["group"]}
    )
    result = profile_frame(frame, spec)
    return result, build_profile_report(result, spec)


@pytest.mark.parametrize("seed", SEEDS)
def test_profile_report_shows_observed_values_exactly(seed: int) -> None:
    frame = random_frame(seed)
    result, html = profile_html(frame)
    page = parse_page(html)
    assert_numbers_labelled(page)

    cards = {"Rows": "rows", "Columns": "columns", "Duplicate rows": "duplicateRows"}
    for label, key in cards.items():
        assert page.cards[label].text == f"{result[key]:,}"

    [columns] = [t for t in page.tables if t.head and "min" in [h.text.strip() for h in t.head]]
    names = [row[columns.column("column")].text for row in columns.rows]
    numeric = [c for c in result["columnProfiles"] if "numeric" in c]
    assert {c["name"] for c in numeric} >= {"big_int", "count", "digits", "negative", "tiny"}
    for profile in result["columnProfiles"]:
        row = columns.rows[names.index(profile["name"])]
        assert row[columns.column("missing")].text == f"{profile['missing']:,}"
        assert row[columns.column("distinct")].text == f"{profile['distinct']:,}"
        if "numeric" not in profile:
            continue
        observed = frame[profile["name"]].dropna()
        for name, value in [("min", observed.min()), ("max", observed.max())]:
            text = row[columns.column(name)].text
            assert text == format_exact(value) == format_exact(profile["numeric"][name])
            assert _parse(text) == value
            old = format_exact(float(f"{value:.4g}"))  # what the report showed before
            if old != text:
                assert f">{old}<" not in html

    details = [t for t in page.tables if "kv" in t.classes]
    assert len(details) == len(numeric)
    for profile, table in zip(numeric, details, strict=True):
        shown = {row[0].text: row[1] for row in table.rows}
        assert set(shown) == set(profile["numeric"])
        for name, value in profile["numeric"].items():
            cell = shown[name]
            if name in EXACT_STATISTICS or name not in ROUNDED_STATISTICS:
                assert cell.text == format_exact(value), (profile["name"], name)
            elif cell.text != format_exact(value):
                assert cell.text == f"{ROUNDED_MARK}{format_rounded(value)}"
                assert cell.attrs["title"] == format_exact(value)


def test_profile_report_adult_extremes() -> None:
    """The example in the issue: 99999 was shown as "100,000" and 12285 as "12,280"."""
    frame = pd.DataFrame(
        {
            "capital_gain": [0, 99999, 15024, 0, 7688],
            "fnlwgt": [77516, 12285, 338409, 1484705, 284582],
            "income": ["<=50K", ">50K", ">50K", "<=50K", ">50K"],
        }
    )
    _, html = profile_html(frame.assign(group="a", outcome=frame["income"]))
    assert ">99,999<" in html and ">12,285<" in html and ">1,484,705<" in html
    assert "100,000" not in html and "12,280" not in html and "1,485,000" not in html


def test_bias_report_counts_exact_and_rates_marked() -> None:
    result = {
        "target": "income",
        "positiveLabel": ">50K",
        "positiveLabelReason": "given",
        "thresholds": {"disparateImpact": 0.855},
        "biasDetected": True,
        "findings": ["sex=Female: DI 0.358 is below 0.855"],
        "rows": 123_456_789,
        "predictionSource": None,
        "mitigation": {"uri": "file:///w.csv"},
        "features": {
            "sex": {
                "privilegedGroup": "Male",
                "privilegedChosenBy": "highest positive rate",
                "groups": {
                    "Male": {"count": 99_999, "positiveRate": 0.30573657},
                    "Female": {"count": 12_285, "positiveRate": 0.1094619},
                },
                "metrics": {"Female": {"LDI": 0.35802469, "DPL": 0.1962746, "CI": 0.78}},
            }
        },
    }
    html = build_bias_report(result)
    page = parse_page(html)
    assert_numbers_labelled(page)
    assert ">123,456,789<" in html and ">99,999<" in html and ">12,285<" in html
    assert "85.5%" in html  # the threshold the user set, every digit
    group_table = next(t for t in page.tables if t.head and t.head[0].text.strip() == "group")
    assert group_table.head[group_table.column("positiveRate")].marked
    assert not group_table.head[group_table.column("count")].marked
    assert "rounded to 3 decimals" in html
