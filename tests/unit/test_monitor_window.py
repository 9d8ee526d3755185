"""One window of a ModelMonitor without a model (`fairpilot_jobs.monitor.window`): ADWIN on
hand-made and replayed streams, reading batches (and rejecting bad ones), the alerts' rules,
the summary and history, and the trend chart."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairpilot.api.monitor import (
    MAX_HISTORY,
    Batch,
    FairnessBaseline,
    MonitorThresholds,
    WindowSummary,
)
from fairpilot.errors import JobError
from fairpilot_jobs.monitor import drift
from fairpilot_jobs.monitor.window import (
    ERROR,
    SCORE,
    adwin_alert,
    adwin_stream,
    drift_alerts,
    empty_window_message,
    fairness_changes,
    history,
    newest,
    performance_alert,
    plain,
    read_window,
    spread_interval,
    summary,
)
from fairpilot_jobs.reports import charts

DELTA = MonitorThresholds().adwin_delta  # the default: what a monitor runs with


# -- ADWIN --------------------------------------------------------------------------------------
def scores(rng: np.random.Generator, rows: int, mean: float) -> np.ndarray:
    """Scores in [0, 1] around `mean`, shaped like a classifier's (beta distributed)."""
    return rng.beta(4 * mean, 4 * (1 - mean), rows)


def test_adwin_finds_an_obvious_change_where_it_happens() -> None:
    rng = np.random.default_rng(1)
    reference = scores(rng, 20_000, 0.25)
    window = np.concatenate([scores(rng, 500, 0.25), scores(rng, 1_500, 0.6)])
    found = adwin_stream(SCORE, reference, window, DELTA, seed=0)
    assert found["changeDetected"]
    first = found["changes"][0]["row"]
    assert 500 <= first < 700, first  # after the change, and soon after it
    assert found["referenceRows"] == 20_000 and found["windowRows"] == 2_000
    # Where the stream stands at the end: the new regime's mean, on its rows.
    assert found["currentMean"] == pytest.approx(window[500:].mean(), abs=0.03)
    assert found["currentRows"] <= 1_500 + 100
    alert = adwin_alert(found)
    assert alert is not None
    assert alert["type"] == "DriftDetected" and alert["feature"] == SCORE
    assert alert["metric"] == "adwin" and alert["threshold"] == DELTA
    assert alert["value"] == found["currentMean"] and alert["baseline"] == found["referenceMean"]
    assert f"row {first:,} of the window" in alert["message"]


def test_a_rise_of_the_error_is_performance_degraded_and_a_fall_no_alert() -> None:
    rng = np.random.default_rng(7)
    reference = (rng.random(20_000) < 0.13).astype(float)
    worse = np.concatenate([rng.random(300) < 0.13, rng.random(1_700) < 0.35]).astype(float)
    found = adwin_stream(ERROR, reference, worse, DELTA, 0)
    alert = adwin_alert(found)
    assert alert is not None and alert["type"] == "PerformanceDegraded"
    assert alert["feature"] == ERROR and alert["value"] > alert["baseline"]
    better = np.concatenate([rng.random(300) < 0.13, rng.random(1_700) < 0.01]).astype(float)
    found = adwin_stream(ERROR, reference, better, DELTA, 0)
    assert found["changeDetected"] and adwin_alert(found) is None


def test_adwin_finds_no_change_in_a_stream_without_one() -> None:
    rng = np.random.default_rng(2)
    found = adwin_stream(SCORE, scores(rng, 20_000, 0.25), scores(rng, 5_000, 0.25), DELTA, 0)
    assert not found["changeDetected"] and found["changes"] == [] and found["changeCount"] == 0
    assert adwin_alert(found) is None


def test_a_change_inside_the_reference_part_is_not_the_window_s() -> None:
    """Only cuts after the reference rows count; unshuffled, a reference that changes half way
    makes ADWIN cut there, and that is not an alert."""
    rng = np.random.default_rng(3)
    reference = np.concatenate([scores(rng, 5_000, 0.2), scores(rng, 5_000, 0.5)])
    found = adwin_stream(SCORE, reference, scores(rng, 2_000, 0.5), DELTA, 0, shuffle=False)
    assert not found["changeDetected"]


def test_adwin_skips_values_that_are_not_finite() -> None:
    rng = np.random.default_rng(4)
    window = scores(rng, 1_000, 0.3)
    window[::10] = np.nan
    found = adwin_stream(ERROR, scores(rng, 5_000, 0.3), window, DELTA, 0)
    assert found["windowRows"] == 900
    assert math.isfinite(found["windowMean"])


@pytest.fixture(scope="module")
def adult_scores() -> tuple[np.ndarray, np.ndarray]:
    """A gradient-boosted model's scores and 0/1 errors on Adult's 32,561 training rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from fairpilot.datasets import adult

    train, _ = adult()
    features = train.drop(columns="income")
    for column in features.select_dtypes("object"):
        features[column] = features[column].astype("category")
    label = (train["income"] == ">50K").to_numpy()
    model = HistGradientBoostingClassifier(
        max_iter=60, categorical_features="from_dtype", random_state=0
    ).fit(features, label)
    score = model.predict_proba(features)[:, 1]
    error = (model.predict(features) != label).astype(float)
    return score, error


def test_no_false_alarm_on_twenty_stationary_windows_of_adult_rows(
    adult_scores: tuple[np.ndarray, np.ndarray],
) -> None:
    """20 windows of 2,000 rows replayed from the reference: ADWIN at the default delta finds
    no change, in the score stream nor in the error stream."""
    score, error = adult_scores
    rng = np.random.default_rng(5)
    alarms = []
    for window in range(20):
        rows = rng.choice(len(score), 2_000, replace=False)
        for name, stream in ((SCORE, score), (ERROR, error)):
            found = adwin_stream(name, stream, stream[rows], DELTA, seed=window)
            if found["changeDetected"]:
                alarms.append((window, name, found["changes"][0]))
    assert alarms == []


def test_adwin_sees_a_shift_of_adult_scores(adult_scores: tuple[np.ndarray, np.ndarray]) -> None:
    score, _ = adult_scores
    rng = np.random.default_rng(6)
    window = score[rng.choice(len(score), 2_000, replace=False)].copy()
    window[1_000:] = np.clip(window[1_000:] + 0.3, 0, 1)
    found = adwin_stream(SCORE, score, window, DELTA, 0)
    assert found["changeDetected"] and found["changes"][0]["row"] >= 1_000


# -- batches ------------------------------------------------------------------------------------
TRAINING = pd.DataFrame(
    {
        "age": [25, 38, 28, 44, 18, 34, 29, 63, 24, 55] * 10,
        "hours": [40, 50, 40, 40, 30, 30, 40, 32, 40, 10] * 10,
        "sex": ["Male", "Female"] * 50,
    }
)
REFERENCES = drift.reference_of(TRAINING)


def batch(path: Path, frame: pd.DataFrame | None = None, text: str | None = None, **extra) -> Batch:
    if text is not None:
        path.write_text(text)
    elif frame is not None:
        if path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
    return Batch.model_validate({"uri": f"file://{path}", **extra})


def test_bad_batches_are_rejected_with_reasons_and_the_good_ones_read(tmp_path: Path) -> None:
    good = TRAINING.head(20).assign(income=">50K")
    batches = [
        batch(tmp_path / "good.csv", good),
        batch(tmp_path / "good.parquet", TRAINING.tail(30)),
        batch(tmp_path / "no-age.csv", TRAINING.drop(columns="age")),
        batch(tmp_path / "text.csv", TRAINING.assign(hours=["forty"] + [40] * 99)),
        batch(tmp_path / "empty.csv", text="age,hours,sex\n"),
        batch(tmp_path / "broken.parquet", text="not parquet at all"),
        Batch.model_validate({"uri": f"file://{tmp_path}/gone.csv"}),
    ]
    found = read_window(batches, REFERENCES, optional=["income"])
    assert [u["uri"] for u in found.used] == [b.uri for b in batches[:2]]
    assert [u["rows"] for u in found.used] == [20, 30]
    reasons = {r["uri"].rsplit("/", 1)[1]: r["reason"] for r in found.rejected}
    assert reasons == {
        "no-age.csv": "ColumnNotFound",
        "text.csv": "WrongType",
        "empty.csv": "EmptyBatch",
        "broken.parquet": "BatchUnreadable",
        "gone.csv": "BatchNotFound",
    }
    messages = {r["reason"]: r["message"] for r in found.rejected}
    assert "'age'" in messages["ColumnNotFound"]
    assert "'hours'" in messages["WrongType"] and "'forty'" in messages["WrongType"]
    # Nothing lost: every batch is used or rejected, and every file is still where it was.
    assert len(found.used) + len(found.rejected) == len(batches)
    assert all((tmp_path / name).exists() for name in reasons if name != "gone.csv")
    assert len(found.rows) == 50 and list(found.rows.columns) == ["age", "hours", "sex", "income"]
    # The label came with the first batch only.
    assert found.carried["income"].tolist() == [True] * 20 + [False] * 30


def test_numbers_written_as_text_are_numbers(tmp_path: Path) -> None:
    frame = TRAINING.astype({"age": str})
    lines = batch(tmp_path / "b.jsonl", text=frame.to_json(orient="records", lines=True))
    found = read_window([lines], REFERENCES)
    assert found.rejected == []
    assert pd.api.types.is_numeric_dtype(found.rows["age"])
    assert found.rows["age"].tolist() == TRAINING["age"].tolist()


def test_a_required_column_is_named_when_absent(tmp_path: Path) -> None:
    found = read_window(
        [batch(tmp_path / "b.csv", TRAINING)], REFERENCES, required={"served": "predictionColumn"}
    )
    assert found.rows.empty and found.rejected[0]["reason"] == "ColumnNotFound"
    assert "'served' (predictionColumn)" in found.rejected[0]["message"]


def test_a_store_outage_fails_the_window_instead_of_rejecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fairpilot_jobs.monitor import window

    def unavailable(*args: object, **kwargs: object) -> pd.DataFrame:
        raise JobError("StorageUnavailable", "the store did not answer")

    monkeypatch.setattr(window, "read_table", unavailable)
    with pytest.raises(JobError) as caught:
        read_window([batch(tmp_path / "b.csv", TRAINING)], REFERENCES)
    assert caught.value.transient


def test_the_empty_window_message_names_every_batch_and_what_to_fix() -> None:
    rejected = [
        {"uri": "s3://bucket/1.csv", "reason": "ColumnNotFound", "message": "lacks 'age'"},
        {"uri": "s3://bucket/2.csv", "reason": "EmptyBatch", "message": "0 rows"},
    ]
    message = empty_window_message(4, rejected, [], ["age", "hours", "sex"])
    assert "window 4" in message
    assert "s3://bucket/1.csv: ColumnNotFound: lacks 'age'" in message
    assert "s3://bucket/2.csv: EmptyBatch" in message
    assert "age, hours, sex" in message


def test_newest_is_the_latest_time_whatever_its_zone() -> None:
    times = ["2024-05-01T23:00:00Z", "2024-05-02T00:30:00+02:00", "yesterday", None]
    batches = [
        Batch.model_validate({"uri": f"s3://bucket/{i}.csv", "modifiedAt": at})
        for i, at in enumerate(times)
    ]
    assert newest(batches) == "2024-05-01T23:00:00Z"  # 22:30 UTC is the earlier
    assert newest(batches[2:]) is None


# -- alerts -------------------------------------------------------------------------------------
def test_drift_alerts_at_the_psi_threshold_and_on_p_values_when_asked() -> None:
    window = pd.DataFrame(
        {"age": TRAINING["age"] + 20, "hours": TRAINING["hours"], "sex": TRAINING["sex"]}
    )
    found = drift.data_drift(REFERENCES, window)
    alerts = drift_alerts(found, MonitorThresholds())
    assert [a["feature"] for a in alerts] == ["age"]
    assert alerts[0]["value"] == found["age"].psi and alerts[0]["threshold"] == 0.2
    assert alerts[0]["metric"] == "psi" and f"{found['age'].psi:.4g}" in alerts[0]["message"]
    # At exactly the threshold: drifted.
    exactly = MonitorThresholds(psi=found["age"].psi)
    assert [a["feature"] for a in drift_alerts(found, exactly)] == ["age"]
    # A p-value bound catches what PSI does not.
    slight = drift.data_drift(REFERENCES, window.assign(age=TRAINING["age"] + 1))
    assert drift_alerts(slight, MonitorThresholds(psi=5)) == []
    by_test = drift_alerts(slight, MonitorThresholds(psi=5, p_value=0.999))
    assert {a["metric"] for a in by_test} <= {"ksPValue", "chi2PValue"} and by_test


def test_bias_drift_when_an_established_change_reaches_the_threshold() -> None:
    baseline = FairnessBaseline(
        name="sex",
        disparate_impact=0.8,
        statistical_parity_difference=0.05,
        equal_opportunity_difference=0.02,
    )
    thresholds = MonitorThresholds()  # drop 0.1, rise 0.1
    window = {
        # Fell by 0.15, and the interval lies wholly below 0.8 and reaches 0.7: alert.
        "disparateImpact": 0.65,
        "disparateImpactBounds": [0.60, 0.69],
        # Rose by 0.05 only, established but cannot reach 0.15: none.
        "statisticalParityDifference": 0.1,
        "statisticalParityDifferenceBounds": [0.08, 0.12],
        # Rose by 0.18, established: alert.
        "equalOpportunityDifference": 0.2,
        "equalOpportunityDifferenceBounds": [0.1, 0.3],
    }
    rows, alerts = fairness_changes("sex", window, baseline, thresholds)
    assert [(a["metric"], a["value"], a["baseline"]) for a in alerts] == [
        ("disparateImpact", 0.65, 0.8),
        ("equalOpportunityDifference", 0.2, 0.02),
    ]
    assert all(a["type"] == "BiasDrift" and a["feature"] == "sex" for a in alerts)
    assert alerts[0]["threshold"] == pytest.approx(0.7)
    assert "0.8" in alerts[0]["message"] and "0.65" in alerts[0]["message"]
    assert "99.9% interval 0.6 to 0.69" in alerts[0]["message"]
    assert [r["crossed"] for r in rows] == [True, False, True]
    # The same fall in a noisy window (the interval reaches the training value): none.
    noisy = {**window, "disparateImpactBounds": [0.45, 0.85]}
    assert "disparateImpact" not in [a["metric"] for a in fairness_changes(
        "sex", noisy, baseline, thresholds)[1]]  # fmt: skip
    # A fall of 0.08 that is established and may be 0.1: alert; of 0.04, certain: none.
    near = {"disparateImpact": 0.72, "disparateImpactBounds": [0.66, 0.78]}
    assert len(fairness_changes("sex", near, baseline, thresholds)[1]) == 1
    small = {"disparateImpact": 0.76, "disparateImpactBounds": [0.74, 0.78]}
    assert fairness_changes("sex", small, baseline, thresholds)[1] == []
    # Better than training, no interval, or no training value: no alert.
    fine = {"disparateImpact": 0.95, "disparateImpactBounds": [0.9, 1.0]}
    assert fairness_changes("sex", fine, baseline, thresholds)[1] == []
    assert fairness_changes("sex", {"disparateImpact": 0.3}, baseline, thresholds)[1] == []
    assert fairness_changes("sex", window, None, thresholds)[1] == []


def test_the_spread_interval_is_katzs_and_walds_widened_for_the_pairs() -> None:
    from scipy.stats import norm

    # Two groups: 40 of 400 chosen against 120 of 400.
    r1, n1, r2, n2 = 0.1, 400, 0.3, 400
    z = norm.ppf(1 - 0.001 / 2)
    log_error = z * np.sqrt((1 - r1) / (n1 * r1) + (1 - r2) / (n2 * r2))
    ratio = spread_interval({"a": (r1, n1), "b": (r2, n2)}, True, 0.999)
    assert ratio == pytest.approx([r1 / r2 * np.exp(-log_error), r1 / r2 * np.exp(log_error)])
    # Agresti-Caffo: a success and a failure added to each group.
    a1, a2 = (40 + 1) / 402, (120 + 1) / 402
    spread = np.sqrt(a1 * (1 - a1) / 402 + a2 * (1 - a2) / 402)
    difference = spread_interval({"a": (r1, n1), "b": (r2, n2)}, False, 0.999)
    assert difference == pytest.approx([a2 - a1 - z * spread, a2 - a1 + z * spread])
    # Three groups: the extremes, at 0.001 / 3 pairs.
    three = spread_interval({"a": (r1, n1), "m": (0.2, 50), "b": (r2, n2)}, False, 0.999)
    wider = norm.ppf(1 - 0.001 / 6) * spread
    assert three == pytest.approx([a2 - a1 - wider, a2 - a1 + wider])
    # Six of six against one of six: Wald's interval would be a point; this one is wide.
    tiny = spread_interval({"a": (1 / 6, 6), "b": (1.0, 6)}, False, 0.999)
    assert tiny is not None and tiny[0] < 0.1 and tiny[1] == 1.0
    # Nobody chosen in one group: half a row each way (Haldane), still an interval from 0.
    none_chosen = spread_interval({"a": (0.0, 100), "b": (0.3, 100)}, True, 0.999)
    assert none_chosen is not None and 0 < none_chosen[0] < 0.001 and none_chosen[1] == 1.0
    assert spread_interval({"a": (0.0, 10), "b": (0.0, 10)}, True, 0.999) is None
    assert spread_interval({"a": (0.2, 10)}, False, 0.999) is None


def test_performance_degraded_by_a_relative_share_either_way_round() -> None:
    # Higher is better: 0.93 -> 0.87 is 6.5% worse, over 5%.
    alert = performance_alert("roc_auc", 0.87, 0.93, True, 0.05, "test")
    assert alert is not None and alert["type"] == "PerformanceDegraded"
    assert alert["threshold"] == pytest.approx(0.93 * 0.95)
    assert performance_alert("roc_auc", 0.90, 0.93, True, 0.05, "test") is None
    # Lower is better (rmse): a rise is worse.
    assert performance_alert("rmse", 11.0, 10.0, False, 0.05, None) is not None
    assert performance_alert("rmse", 9.0, 10.0, False, 0.05, None) is None
    assert performance_alert("rmse", None, 10.0, False, 0.05, None) is None


# -- summary and history -------------------------------------------------------------------------
def test_the_summary_is_a_window_summary_and_history_keeps_the_last_hundred() -> None:
    found = drift.data_drift(REFERENCES, TRAINING.assign(age=TRAINING["age"] + 20))
    alerts = drift_alerts(found, MonitorThresholds())
    this = summary(
        7,
        100,
        None,
        found,
        MonitorThresholds(),
        None,
        {"sex": {"disparateImpact": 0.5, "statisticalParityDifference": math.nan}},
        None,
        alerts + alerts,
    )
    WindowSummary.model_validate(this)
    assert this["maxPsiFeature"] == "age" and this["driftedFeatures"] == 1
    assert this["alerts"] == ["DriftDetected"]
    assert this["statisticalParityDifference"] == {"sex": None}
    before = [WindowSummary(window=n) for n in range(1, 120)]
    kept = history(before, this)
    assert len(kept) == MAX_HISTORY and kept[-1] == this
    assert [w["window"] for w in kept][:2] == [21, 22]
    # A retry of window 7 replaces the first attempt.
    again = history([WindowSummary(window=6), WindowSummary(window=7)], this)
    assert [w["window"] for w in again] == [6, 7] and again[-1] == this


def test_plain_makes_a_result_json_safe() -> None:
    assert plain({"a": np.float64("nan"), "b": [np.int64(3), math.inf], "c": (1.5,)}) == {
        "a": None,
        "b": [3, None],
        "c": [1.5],
    }


# -- the trend chart ----------------------------------------------------------------------------
def test_line_chart_draws_series_gaps_and_thresholds() -> None:
    svg = charts.line_chart(
        [1, 2, 3, 4],
        {"sex": [0.8, None, 0.7, 0.55], "race": [0.9, 0.88, 0.86, 0.9]},
        references=[
            {"label": "sex: BiasDrift below 0.7", "value": 0.7, "series": "sex"},
            {"label": "limit", "value": math.nan},
        ],
        title="Disparate impact per sensitive feature",
        xlabel="window",
    )
    assert svg.startswith("<svg") and 'aria-label="Disparate impact per sensitive feature"' in svg
    assert "nan" not in svg.lower().replace("nanum", "")
    empty = charts.line_chart([], {}, title="nothing")
    assert empty.startswith("<svg") and 'aria-label="nothing"' in empty
    with pytest.raises(ValueError, match="2 values for 3 points"):
        charts.line_chart([1, 2, 3], {"a": [1.0, 2.0]})
