"""The training report's fairness (issue 14): the verdict area shows the fairness gates, and
"Fairness of the model" shows, per sensitive feature and intersection, the measures and the
groups of result.json's `fairness` block, exactly or marked rounded, small groups flagged and
left out of the comparison; and says why when fairness was not measured.

The result is built by hand around a real `fairness.measure` of synthetic predictions: no
AutoGluon training.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.reports import Table, assert_numbers_labelled, parse_page
from support.training_results import SPEC, section_html, text_of, training_result

from fairpilot.api import TrainJobSpec
from fairpilot.api.fairness import FairnessOptions
from fairpilot_jobs.fairness import JOINT, measure
from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import ROUNDED_MARK, format_exact, format_rounded
from fairpilot_jobs.reports.training_report import (
    BEFORE_AND_AFTER,
    MEASURES,
    TOO_SMALL,
    build_training_report,
)

GATES = [
    {"metric": "disparateImpact", "min": 0.8},
    {"metric": "equalizedOddsDifference", "max": 0.9, "feature": "race"},
]


def predictions(rows: int = 900, seed: int = 5) -> pd.DataFrame:
    """A model that favours men and group A, with race C rare: intersections under 40 rows."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], rows, p=[0.35, 0.65])
    race = rng.choice(["A", "B", "C"], rows, p=[0.6, 0.33, 0.07])
    score = np.clip(rng.normal(0.3 + 0.2 * (sex == "Male") + 0.05 * (race == "A"), 0.2), 0, 1)
    truth = np.where(rng.random(rows) < score, ">50K", "<=50K")
    predicted = np.where(score > 0.45, ">50K", "<=50K")
    return pd.DataFrame(
        {"sex": sex, "race": race, "truth": truth, "predicted": predicted, "score": score}
    )


def fairness_block(frame: pd.DataFrame, **options: Any) -> dict[str, Any]:
    found = measure(
        frame[["sex", "race"]],
        frame["truth"],
        frame["predicted"],
        frame["score"],
        ">50K",
        FairnessOptions(sensitive_features=["sex", "race"], **options),
        "test",
    )
    return {"measured": True, **found}  # as train.post_training_fairness returns it


def shown(cell_text: str, title: str | None) -> float | None:
    """The number a cell stands for: every digit from its tooltip when rounded."""
    text = (title or cell_text).replace(",", "").removeprefix(ROUNDED_MARK).strip()
    return None if text == "—" else float(text)


def rows_of(table: Table) -> list[dict[str, Any]]:
    names = [h.text.removesuffix(ROUNDED_MARK).strip() for h in table.head]
    return [
        {
            name: (cell.text.strip(), cell.attrs.get("title"))
            for name, cell in zip(names, row, strict=True)
        }
        for row in table.rows
    ]


def table_headed(html: str, first: str, caption: str = "") -> Table:
    """The first data table of `html` whose first column is `first` (and whose caption starts
    with `caption`)."""
    for table in parse_page(html).tables:
        if table.head and table.head[0].text.strip() == first:
            labelled = table.attrs.get("aria-labelledby")
            found = re.search(rf'id="{labelled}">([^<]*)<', html) if labelled else None
            if (found.group(1) if found else "").startswith(caption):
                return table
    raise AssertionError(f"no table headed {first!r} captioned {caption!r}")


@pytest.fixture(scope="module")
def gated() -> tuple[dict[str, Any], str]:
    result = training_result(fairness_block(predictions(), min_group_size=40, gates=GATES))
    return result, build_training_report(result, SPEC)


def test_the_measures_of_every_feature_and_intersection_are_the_results(gated) -> None:
    result, html = gated
    fairness = result["fairness"]
    every = {**fairness["features"], **fairness["intersections"]}
    assert list(every) == ["sex", "race", f"sex{JOINT}race"]
    assert_numbers_labelled(parse_page(html))
    # Overview: a column per feature and intersection, a row per measure.
    overview = table_headed(section_html(html, "Fairness of the model"), "measure")
    assert [h.text.removesuffix(ROUNDED_MARK).strip() for h in overview.head[1:]] == list(every)
    by_measure = {r["measure"][0]: r for r in rows_of(overview)}
    for name, data in every.items():
        summary = data["summary"]
        for key, (title, _, _) in MEASURES.items():
            assert shown(*by_measure[title][name]) == summary[key], (name, key)
        assert by_measure["Groups compared"][name][0] == format_exact(summary["groupsCompared"])
        too_small = by_measure["Groups too small to compare"][name][0]
        assert too_small == format_exact(summary["groupsTooSmall"])
        # Its own section: the measures again, each explained with the groups it was taken
        # between and their rates.
        own = section_html(html, f"Fairness by {name}")
        lines = {r["measure"][0]: r for r in rows_of(table_headed(own, "measure"))}
        for key, (title, definition, parity) in MEASURES.items():
            assert shown(*lines[title]["value"]) == summary[key]
            meaning = lines[title]["what it means"][0]
            assert meaning.startswith(definition[0].upper() + definition[1:])
            assert meaning.endswith(parity[0].upper() + parity[1:])
        groups = data["groups"]
        low, high = summary["lowestSelectionGroup"], summary["highestSelectionGroup"]
        low_rate = prose(groups[low]["predictedPositiveRate"])
        high_rate = prose(groups[high]["predictedPositiveRate"])
        line = lines["Disparate impact"]["what it means"][0]
        assert f": {low}'s {low_rate} over {high}'s {high_rate}." in line
        line = lines["Statistical parity difference"]["what it means"][0]
        assert f": {high}'s {high_rate} minus {low}'s {low_rate}." in line
        assert summary["disparateImpact"] == pytest.approx(
            groups[low]["predictedPositiveRate"] / groups[high]["predictedPositiveRate"]
        )


def prose(value: float) -> str:
    """A rate as the page's sentences write it: 4 significant digits, "≈" when rounded."""
    text = format_rounded(value)
    return text if text == format_exact(value) else f"{ROUNDED_MARK}{text}"


ERRORS = {
    "selection rate": "predictedPositiveRate",
    "TPR": "truePositiveRate",
    "FPR": "falsePositiveRate",
    "FNR": "falseNegativeRate",
    "precision": "precision",
}
CALIBRATION = {
    "mean score": "meanScore",
    "observed rate": "positiveRate",
    "calibration gap": "calibrationGap",
    "accuracy": "accuracy",
}


def test_the_groups_tables_hold_every_rate_of_the_result(gated) -> None:
    result, html = gated
    fairness = result["fairness"]
    for name, data in {**fairness["features"], **fairness["intersections"]}.items():
        own = section_html(html, f"Fairness by {name}")
        for caption, columns in (
            ("Groups: selection and errors", ERRORS),
            ("Groups: calibration and accuracy", CALIBRATION),
        ):
            rows = {r["group"][0]: r for r in rows_of(table_headed(own, "group", caption))}
            assert list(rows) == list(data["groups"])
            for group, values in data["groups"].items():
                row = rows[group]
                assert row["rows"][0] == format_exact(values["count"])
                for column, key in columns.items():
                    assert shown(*row[column]) == values[key], (name, group, column)
        for values in data["groups"].values():  # what the page says the gap is
            gap = values["meanScore"] - values["positiveRate"]
            assert math.isclose(values["calibrationGap"], gap, abs_tol=1e-12)
        text = text_of(own)
        assert "TPR (true positive rate) the share predicted >50K" in text
        assert "calibration gap: the first minus the second" in text


def test_small_groups_are_flagged_and_not_compared(gated) -> None:
    result, html = gated
    joint = result["fairness"]["intersections"][f"sex{JOINT}race"]
    small = {g for g, values in joint["groups"].items() if values["small"]}
    assert small, "race C is rare: some intersections have under 40 rows"
    assert joint["summary"]["groupsTooSmall"] == len(small)
    own = section_html(html, f"Fairness by sex{JOINT}race")
    have = "group has" if len(small) == 1 else "groups have"
    assert f"{len(small)} {have} fewer than 40 rows: {TOO_SMALL}." in text_of(own)
    for caption in ("Groups: selection and errors", "Groups: calibration and accuracy"):
        notes = {r["group"][0]: r["note"][0] for r in rows_of(table_headed(own, "group", caption))}
        assert set(notes) == set(joint["groups"])
        for group, note in notes.items():
            assert (note == f"⚠ {TOO_SMALL}") is (group in small), group
    # Not compared: neither the extremes nor the chart name them.
    summary = joint["summary"]
    assert not {summary["lowestSelectionGroup"], summary["highestSelectionGroup"]} & small
    assert "are not drawn: too few rows to compare" in text_of(own)
    assert "<svg" in own


def test_gates_are_in_the_verdict_area_with_their_messages(gated) -> None:
    result, html = gated
    gates = result["fairness"]["gates"]
    assert [(g["feature"], g["metric"]) for g in gates] == [
        ("sex", "disparateImpact"), ("race", "disparateImpact"), ("race", "equalizedOddsDifference")
    ]  # fmt: skip
    failed = [g for g in gates if not g["passed"]]
    assert failed, "the synthetic model favours men"
    verdict = text_of(section_html(html, "Result"))
    assert f"Fairness gates: {len(failed)} of {len(gates)} failed" in verdict
    for gate in gates:
        word = "Passed" if gate["passed"] else "Failed"
        assert f"{word}: {gate['message']}" in verdict
    assert "rounded to 3 decimals" in verdict
    # Before the production-readiness verdict, which the failed gate makes "not ready".
    assert verdict.index("Fairness gates") < verdict.index("Not production-ready")
    assert "callout-danger" in section_html(html, "Result")
    # The table of gates in Fairness of the model: bound, value every digit on hover.
    overview = section_html(html, "Fairness of the model")
    table = table_headed(overview, "verdict")
    for row, gate in zip(rows_of(table), gates, strict=True):
        assert row["verdict"][0] == ("passed" if gate["passed"] else "failed")
        assert row["feature"][0] == gate["feature"]
        assert shown(*row["value"]) == gate["value"]
        assert row["bound"][0] == (
            f"≥ {gate['min']}" if gate["min"] is not None else f"≤ {gate['max']}"
        )


def test_where_and_on_what_it_was_measured(gated) -> None:
    _, html = gated
    text = text_of(section_html(html, "Fairness of the model"))
    assert "the test split: 900 rows of the test dataset" in text
    assert ">50K (positive label)" in text
    assert "at least 40 rows" in text
    for title, definition, parity in MEASURES.values():
        assert f"{title}: {definition}; {parity}" in text


def test_a_passing_gate_and_no_gate() -> None:
    frame = predictions()
    passing = fairness_block(frame, gates=[{"metric": "equalizedOddsDifference", "max": 0.99}])
    html = build_training_report(training_result(passing), SPEC)
    verdict = text_of(section_html(html, "Result"))
    assert "Fairness gates: all 2 passed" in verdict
    assert "Production-ready" in verdict and "Not production-ready" not in verdict
    ungated = build_training_report(training_result(fairness_block(frame)), SPEC)
    verdict = text_of(section_html(ungated, "Result"))
    assert "Fairness: no gate" in verdict
    assert "900 rows of the test split" in verdict


def test_nothing_large_enough_to_compare() -> None:
    found = fairness_block(predictions(), min_group_size=10_000, gates=GATES[:1])
    html = build_training_report(training_result(found), SPEC)
    assert_numbers_labelled(parse_page(html))
    for name in ("sex", "race", f"sex{JOINT}race"):
        own = section_html(html, f"Fairness by {name}")
        assert "Fewer than two groups have at least 10,000 rows" in text_of(own)
        values = [r["value"][0] for r in rows_of(table_headed(own, "measure"))]
        assert values == ["—"] * 4
        assert "<svg" not in own  # nothing compared, nothing drawn
        notes = [r["note"][0] for r in rows_of(table_headed(own, "group"))]
        assert notes and all(note == f"⚠ {TOO_SMALL}" for note in notes)
    verdict = text_of(section_html(html, "Result"))
    assert "Fairness gates: 2 of 2 failed" in verdict and "cannot be computed" in verdict


def test_not_measured_says_why() -> None:
    why = "a multiclass model needs fairness.positiveLabel: the favourable class"
    html = build_training_report(training_result({"measured": False, "message": why}), SPEC)
    assert "Fairness: not measured" in text_of(section_html(html, "Result"))
    assert why in text_of(section_html(html, "Result"))
    assert why in text_of(section_html(html, "Fairness of the model"))
    assert "Fairness by" not in html


def test_absent_says_how_to_ask_for_it() -> None:
    html = build_training_report(training_result(None), SPEC)
    verdict = text_of(section_html(html, "Result"))
    assert "Fairness: not measured" in verdict
    text = text_of(section_html(html, "Fairness of the model"))
    assert "Fairness was not measured" in text
    assert "spec.fairness.sensitiveFeatures" in text
    assert "the Dataset's sensitiveFeatures" in text
    assert "Fairness by" not in html


def test_many_groups_show_the_largest_and_sum_up_the_rest() -> None:
    """60 zip codes: the 20 largest are shown, with the reference group and the groups the
    measures name (small ones among them); the rest summed up in a sentence."""
    rng = np.random.default_rng(11)
    rows = 9000
    weights = np.linspace(2, 0.3, 60)
    zips = rng.choice([f"Z{i:03d}" for i in range(60)], rows, p=weights / weights.sum())
    score = np.clip(rng.random(rows) + 0.3 * (zips == "Z050") - 0.3 * (zips == "Z051"), 0, 1)
    frame = pd.DataFrame(
        {
            "zip": zips,
            "truth": np.where(rng.random(rows) < score, "yes", "no"),
            "predicted": np.where(score > 0.5, "yes", "no"),
            "score": score,
        }
    )
    found = measure(
        frame[["zip"]],
        frame["truth"],
        frame["predicted"],
        frame["score"],
        "yes",
        FairnessOptions(sensitive_features=["zip"], min_group_size=30),
        "validation",
    )
    data = found["features"]["zip"]
    groups, summary = data["groups"], data["summary"]
    assert (summary["lowestSelectionGroup"], summary["highestSelectionGroup"]) == ("Z051", "Z050")
    html = build_training_report(training_result({"measured": True, **found}), SPEC)
    own = section_html(html, "Fairness by zip")
    text = text_of(own)
    listed = [r["group"][0] for r in rows_of(table_headed(own, "group"))]
    largest = sorted(groups, key=lambda g: (-groups[g]["count"], g))[:20]
    # Every group a measure names is shown: the extremes of the selection, true positive and
    # false positive rates among the groups compared, and the reference group.
    roles: dict[str, list[str]] = {data["privilegedGroup"]: ["the reference group"]}
    for key, rate in (
        ("predictedPositiveRate", "selection rate"),
        ("truePositiveRate", "true positive rate"),
        ("falsePositiveRate", "false positive rate"),
    ):
        compared = {g: v[key] for g, v in groups.items() if not v["small"]}
        roles.setdefault(min(compared, key=compared.get), []).append(f"the lowest {rate}")
        roles.setdefault(max(compared, key=compared.get), []).append(f"the highest {rate}")
    assert set(listed) == set(largest) | set(roles)
    assert listed[0] == data["privilegedGroup"]
    for group in set(roles) - set(largest):
        assert f"{group} ({' and '.join(roles[group])})" in text
    for line in (r["what it means"][0] for r in rows_of(table_headed(own, "measure"))):
        named = set(re.findall(r"(Z\d{3})'s", line))
        assert named and named <= set(listed), line
    hidden = set(groups) - set(listed)
    hidden_rows = sum(groups[g]["count"] for g in hidden)
    assert f"{len(hidden):,} more groups ({hidden_rows:,} rows) are not" in text
    assert "fairness.features.zip.groups" in text
    measured_on = text_of(section_html(html, "Fairness of the model"))
    assert "the validation split: 9,000 rows AutoGluon held out from training" in measured_on


@pytest.mark.browser
def test_the_report_renders(gated, tmp_path: Path) -> None:
    from support.browser import check_page, chromium_path

    if chromium_path() is None:
        pytest.skip("chromium is not installed")
    _, html = gated
    path = tmp_path / "report.html"
    path.write_text(html)
    page = check_page(path, screenshot=tmp_path / "report.png", full_page=True)
    assert page.errors == [] and page.failed_requests == []
    assert "Fairness of the model" in page.text and f"Fairness by sex{JOINT}race" in page.text


# -- before and after the per-group thresholds (fairness.method: thresholds) ------------------

CONSTRAINT = {"metric": "disparateImpact", "min": 0.8, "feature": "sex"}
CONSTRAINED_SPEC = TrainJobSpec.model_validate(
    {
        "dataset": {"uri": "file:///data/adult.csv"},
        "target": "income",
        "modelId": "adult-income",
        "fairness": {
            "sensitiveFeatures": ["sex", "race"],
            "method": "thresholds",
            "constraints": [CONSTRAINT],
            "gates": [{"metric": "disparateImpact", "min": 0.8}],
        },
    }
)


def mitigated_block(min_group_size: int = 40) -> dict[str, Any]:
    """The fairness block `train_fairness.fairness_step` writes for method thresholds, built
    the way it and `thresholds.fit_thresholds` build it, around synthetic scores: operating
    points measured on validation rows (OxonFair's search replaced by a grid of thresholds),
    the most accurate that meets the constraint with a margin of sampling error chosen, and
    the held-out rows measured before and after it."""
    from fairpilot.api.fairness import FairnessGate
    from fairpilot_jobs.thresholds import _meets, _point, decide, group_labels, pareto
    from fairpilot_jobs.train_fairness import Decisions, Scores, _outcome

    options = CONSTRAINED_SPEC.fairness.model_copy(update={"min_group_size": min_group_size})
    gate = FairnessGate.model_validate(CONSTRAINT)
    validation = predictions(2000, seed=7)
    groups = group_labels(validation["sex"])
    score = validation["score"].to_numpy()
    truth = (validation["truth"] == ">50K").to_numpy()
    grid = [
        {"Female": float(f), "Male": float(m)}
        for f in np.linspace(0.25, 0.5, 11)
        for m in (0.5, 0.55, 0.6)
    ]
    points = [_point(t, score, truth, groups, "sex", options) for t in grid]
    default = _point({"Female": 0.5, "Male": 0.5}, score, truth, groups, "sex", options)
    feasible = [p for p in points if _meets(p, [gate], "sex", "cautious")]
    assert feasible, "the grid reaches disparate impact >= 0.8 with a margin"
    chosen = max(feasible, key=lambda p: p["accuracy"])
    fitted = {
        "feature": "sex",
        "method": "grid of per-group thresholds on P(positive), fitted on validation rows",
        "thresholds": chosen["thresholds"],
        "validation": {"before": default, "after": chosen},
        "frontier": pareto(points, gate.metric),
    }
    test = predictions()
    rows = test[["sex", "race"]]
    truth_test = test["truth"]
    p_positive = test["score"].to_numpy()
    own = np.where(p_positive > 0.5, ">50K", "<=50K")
    decided = np.where(
        decide(p_positive, group_labels(rows["sex"]), fitted["thresholds"]), ">50K", "<=50K"
    )

    def measured(decisions: np.ndarray) -> dict[str, Any]:
        return measure(
            rows, truth_test, pd.Series(decisions), test["score"], ">50K", options, "test"
        )

    before, after = measured(own), measured(decided)
    scores = Scores(rows, truth_test, pd.DataFrame({">50K": p_positive}), "test")
    mitigation = {
        **fitted,
        "heldout": {
            "split": "test",
            "before": _outcome(Decisions(scores, ">50K", p_positive, own, before)),
            "after": _outcome(Decisions(scores, ">50K", p_positive, decided, after)),
        },
    }
    return {"measured": True, **after, "before": before, "mitigation": mitigation}


@pytest.fixture(scope="module")
def mitigated() -> tuple[dict[str, Any], str]:
    result = training_result(mitigated_block())
    return result, build_training_report(result, CONSTRAINED_SPEC)


def markers(svg: str, gid: str) -> int:
    """How many markers the chart's group `gid` draws (one `<use>` each)."""
    found = re.search(rf'id="fp[0-9a-f]+-{re.escape(gid)}">(.*?)</g>', svg, re.DOTALL)
    return len(re.findall(r"<use ", found.group(1))) if found else 0


def test_before_and_after_on_the_held_out_split_are_the_results(mitigated) -> None:
    result, html = mitigated
    assert_numbers_labelled(parse_page(html))
    heldout = result["fairness"]["mitigation"]["heldout"]
    before, after = heldout["before"], heldout["after"]
    own = section_html(html, BEFORE_AND_AFTER)
    table = table_headed(own, "measure", "Before and after the thresholds, on the held-out test")
    rows = rows_of(table)
    expected = [("Accuracy", "all rows", before["accuracy"], after["accuracy"])] + [
        (title, name, before["features"][name][key], after["features"][name][key])
        for name in ("sex", "race")
        for key, (title, _, _) in MEASURES.items()
    ]
    assert len(rows) == len(expected)
    for row, (title, feature, then, now) in zip(rows, expected, strict=True):
        assert (row["measure"][0], row["feature"][0]) == (title, feature)
        assert shown(*row["before"]) == then
        assert shown(*row["after"]) == now
        assert shown(*row["change"]) == now - then
        constrained = (title, feature) == ("Disparate impact", "sex")
        assert row["constraint"][0] == ("≥ 0.8" if constrained else "")
    assert "(900 rows)" in text_of(own)
    # What it cost and bought, and why ROC AUC did not move.
    text = " ".join(text_of(own).split())
    points = (before["accuracy"] - after["accuracy"]) * 100
    assert points > 0
    assert f"On the test split, fairness cost {prose(points)} accuracy points" in text
    then, now = (h["features"]["sex"]["disparateImpact"] for h in (before, after))
    assert then < 0.8 <= now
    assert f"disparate impact for sex moved from {prose(then)} to {prose(now)}" in text
    assert "ROC AUC and the other metrics of the scores are unchanged" in text
    assert f"(ROC AUC on the test split: {prose(0.9012345)}, before and after)" in text
    # The top-level measures are the decisions with the thresholds: what ships.
    overview = text_of(section_html(html, "Fairness of the model"))
    assert f"{BEFORE_AND_AFTER}, below, compares them" in " ".join(overview.split())
    assert result["fairness"]["features"]["sex"]["summary"]["disparateImpact"] == now


def test_the_thresholds_per_group_against_the_default(mitigated) -> None:
    result, html = mitigated
    fairness = result["fairness"]
    thresholds = fairness["mitigation"]["thresholds"]
    own = section_html(html, BEFORE_AND_AFTER)
    table = table_headed(own, "group", "The thresholds on P(")
    rows = {r["group"][0]: r for r in rows_of(table)}
    assert list(rows) == list(thresholds) == ["Female", "Male"]
    assert thresholds["Female"] < thresholds["Male"]  # women predicted >50K more readily
    for group, threshold in thresholds.items():
        row = rows[group]
        assert shown(*row["threshold"]) == threshold
        assert shown(*row["vs 0.5"]) == threshold - 0.5
        for column, block in (
            ("selected before", fairness["before"]),
            ("selected after", fairness),
        ):
            rate = block["features"]["sex"]["groups"][group]["predictedPositiveRate"]
            assert shown(*row[column]) == rate, (group, column)
    caption = "fitted on the validation rows, against the default 0.5; the share of each group"
    assert caption in text_of(own)
    assert "(its selection rate) before and after them, on the held-out test split" in text_of(own)


def test_the_frontier_chart(mitigated) -> None:
    result, html = mitigated
    mitigation = result["fairness"]["mitigation"]
    frontier = mitigation["frontier"]
    own = section_html(html, BEFORE_AND_AFTER)
    svgs = re.findall(r"<svg .*?</svg>", own, re.DOTALL)
    assert len(svgs) == 1
    svg = svgs[0]
    assert f"Accuracy and disparate impact for sex: {len(frontier)} sets of thresholds" in svg
    assert markers(svg, "frontier-points") == len(frontier) >= 20
    optimal = [p for p in frontier if p["paretoOptimal"]]
    assert 1 <= markers(svg, "frontier-front") == len(optimal) < len(frontier)
    assert markers(svg, "frontier-marked-0") == 1  # chosen
    assert markers(svg, "frontier-marked-1") == 1  # unconstrained
    caption = " ".join(text_of(re.search(r"<figcaption>(.*?)</figcaption>", own).group(1)).split())
    chosen, unconstrained = mitigation["validation"]["after"], mitigation["validation"]["before"]
    assert chosen["thresholds"] == mitigation["thresholds"]
    assert chosen["cautious"]["disparateImpact"] >= 0.8  # met with a margin
    assert "measured on the validation rows they were fitted on" in caption
    assert (
        f"Unconstrained, the model's own decisions: disparate impact "
        f"{prose(unconstrained['measures']['disparateImpact'])}, accuracy "
        f"{prose(unconstrained['accuracy'])}." in caption
    )
    assert (
        f"Chosen: disparate impact {prose(chosen['measures']['disparateImpact'])}, accuracy "
        f"{prose(chosen['accuracy'])}; at the cautious end of its sampling error (one-sided 95%, "
        f"the whisker) {prose(chosen['cautious']['disparateImpact'])}." in caption
    )
    assert "most accurate point that meets ≥ 0.8 with that margin of sampling error" in caption
    assert "The dashed line is the constraint, disparate impact ≥ 0.8" in caption
    closer = [
        p for p in frontier if p["accuracy"] > chosen["accuracy"] and p["disparateImpact"] >= 0.8
    ]
    if closer:
        assert f"The {len(closer)} more accurate" in caption


def test_no_thresholds_no_before_and_after(gated) -> None:
    _, html = gated
    assert BEFORE_AND_AFTER not in html
    assert "frontier-points" not in html
    assert "per-group" not in text_of(section_html(html, "Fairness of the model"))


def test_frontier_chart_takes_awkward_input() -> None:
    nothing = charts.frontier_chart([], [], title="empty")
    assert nothing.startswith("<svg ") and markers(nothing, "frontier-points") == 0
    svg = charts.frontier_chart(
        [0.5, None, math.nan, 0.9, 0.9],
        [0.8, 0.7, 0.6, None, 0.75],
        optimal=[True, False, False, False, True],
        marked={"chosen": (0.9, 0.75), "no x": (None, 0.9)},
        margins={"chosen": 0.85, "no x": 0.2},
        bound_min=0.8,
        bound_max=1.25,
        title="awkward",
    )
    assert markers(svg, "frontier-points") == 2  # the finite ones
    assert markers(svg, "frontier-front") == 2
    assert markers(svg, "frontier-marked-0") == 1 and "frontier-marked-1" not in svg
    with pytest.raises(ValueError):
        charts.frontier_chart([0.1, 0.2], [0.3])


@pytest.mark.browser
def test_the_report_with_thresholds_renders(mitigated, tmp_path: Path) -> None:
    from support.browser import check_page, chromium_path

    if chromium_path() is None:
        pytest.skip("chromium is not installed")
    _, html = mitigated
    path = tmp_path / "report.html"
    path.write_text(html)
    page = check_page(path, screenshot=tmp_path / "report.png", full_page=True)
    assert page.errors == [] and page.failed_requests == []
    assert BEFORE_AND_AFTER in page.text


def test_before_and_after_without_the_constraints_in_the_spec(mitigated) -> None:
    """A spec that does not carry the constraints (not as the train stage writes it): the
    same numbers, the frontier of disparate impact, no bound drawn or claimed."""
    result, _ = mitigated
    html = build_training_report(result, SPEC)
    own = section_html(html, BEFORE_AND_AFTER)
    assert "constraint" not in [h.text.strip() for h in table_headed(own, "measure").head]
    assert markers(own, "frontier-points") == len(result["fairness"]["mitigation"]["frontier"])
    assert "dashed line" not in text_of(own) and "bought" not in text_of(own)


def test_reweighing_is_shown_against_its_baseline() -> None:
    """With reweighing, a section compares the reweighed model with the unweighted baseline:
    every number in its table is the result's."""
    from fairpilot_jobs.reports.training_report import REWEIGHING

    def side(accuracy: float, auc: float, di: float) -> dict[str, Any]:
        return {
            "split": "test",
            "accuracy": accuracy,
            "rocAuc": auc,
            "features": {"sex": {"disparateImpact": di, "statisticalParityDifference": 0.1,
                                 "equalOpportunityDifference": 0.05,
                                 "equalizedOddsDifference": 0.07}},
        }  # fmt: skip

    fairness = fairness_block(predictions())
    fairness["reweighing"] = {
        "baseline": side(0.8698, 0.925, 0.3189),
        "reweighed": side(0.8624, 0.9163, 0.5521),
    }
    html = build_training_report(training_result(fairness), SPEC)
    rows = rows_of(table_headed(section_html(html, REWEIGHING), "measure"))
    found = {
        (r["measure"][0], r["feature"][0]): (shown(*r["baseline"]), shown(*r["reweighed"]))
        for r in rows
    }
    assert found[("Accuracy", "all rows")] == (0.8698, 0.8624)
    assert found[("ROC AUC", "all rows")] == (0.925, 0.9163)
    di = next(v for (m, f), v in found.items() if f == "sex" and "isparate" in m)
    assert di == (0.3189, 0.5521)
    assert REWEIGHING not in build_training_report(
        training_result(fairness_block(predictions())), SPEC
    )
