"""The monitor stage on the trained Adult model: one window of new batches each test.

Batches are written with pandas (CSV and Parquet) into the test's folder; the stage runs in
this process through `fairpilot_jobs.cli.run` (which validates result.json as MonitorResult),
and as a subprocess where the exit code is the point.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from support.jobs import JobRun, run_job

from fairpilot.api.monitor import AlertType
from fairpilot.api.results import MonitorResult
from fairpilot_jobs import cli
from fairpilot_jobs.monitor import drift

FEATURES_CHANGED = ("age", "hours_per_week")


@pytest.fixture(scope="module")
def adult_frames(adult: dict[str, str]) -> dict[str, pd.DataFrame]:
    return {split: pd.read_csv(uri.removeprefix("file://")) for split, uri in adult.items()}


def baseline_of(trained: JobRun) -> dict[str, Any]:
    """What the operator gives a window: the TrainingRun's held-out figures."""
    result = trained.result
    test = result["metrics"]["test"]
    fairness = result["fairness"]
    return {
        "evalMetric": result["evalMetric"],
        "score": test[result["evalMetric"]],
        "split": "test",
        "accuracy": test["accuracy"],
        "positiveLabel": fairness["positiveLabel"],
        "fairness": [
            {
                "name": name,
                "disparateImpact": found["summary"]["disparateImpact"],
                "statisticalParityDifference": found["summary"]["statisticalParityDifference"],
                "equalOpportunityDifference": found["summary"]["equalOpportunityDifference"],
            }
            for name, found in fairness["features"].items()
        ],
    }


def write_batches(folder: Path, frame: pd.DataFrame, parts: int = 2) -> list[dict[str, Any]]:
    """`frame` as `parts` batches, CSV and Parquet in turn, an hour apart."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = []
    for i, part in enumerate(np.array_split(np.arange(len(frame)), parts)):
        rows = frame.iloc[part]
        path = folder / (f"batch-{i}.parquet" if i % 2 else f"batch-{i}.csv")
        if path.suffix == ".parquet":
            rows.to_parquet(path, index=False)
        else:
            rows.to_csv(path, index=False)
        batches.append({"uri": f"file://{path}", "modifiedAt": f"2024-05-01T{10 + i:02d}:00:00Z"})
    return batches


def monitor_spec(
    trained: JobRun, adult: dict[str, str], batches: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "model": {"uri": trained.result["model"]["uri"], "digest": trained.result["modelDigest"]},
        "reference": {"uri": adult["train"]},
        "target": "income",
        "batches": batches,
        "window": 3,
        "baseline": baseline_of(trained),
        "history": [
            {
                "window": 1,
                "rows": 2_000,
                "maxPsi": 0.02,
                "predictionPsi": 0.01,
                "disparateImpact": {"sex": 0.33, "race": 0.29},
                "score": 0.93,
            },
            {
                "window": 2,
                "rows": 2_000,
                "maxPsi": 0.03,
                "predictionPsi": 0.01,
                "disparateImpact": {"sex": 0.31, "race": 0.27},
                "score": 0.92,
            },
        ],
        **extra,
    }


def run_window(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """The stage in this process, as its pod runs it; the result.json it wrote."""
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert cli.run("monitor", str(spec_file), f"file://{out}") == 0, (
        out / "error.json"
    ).read_text()
    return json.loads((out / "result.json").read_text())


def alerts_of(result: dict[str, Any], kind: AlertType) -> list[dict[str, Any]]:
    return [a for a in result["alerts"] if a["type"] == kind.value]


@pytest.fixture(scope="module")
def stationary(
    tmp_path_factory: pytest.TempPathFactory,
    trained: JobRun,
    adult: dict[str, str],
    adult_frames: dict[str, pd.DataFrame],
) -> dict[str, Any]:
    """4,000 labelled rows of the test split, in a CSV and a Parquet batch."""
    folder = tmp_path_factory.mktemp("stationary")
    rows = adult_frames["test"].sample(4_000, random_state=11)
    return run_window(folder, monitor_spec(trained, adult, write_batches(folder / "in", rows)))


def test_a_stationary_window_raises_no_alert(stationary: dict[str, Any]) -> None:
    result = stationary
    assert result["judged"] and result["rows"] == 4_000 and result["labelledRows"] == 4_000
    assert result["alerts"] == [] and result["rejected"] == []
    psi = {f["name"]: f["psi"] for f in result["features"]}
    assert len(psi) == 14 and max(psi.values()) < 0.1, psi
    assert result["predictionDrift"]["psi"] < 0.1
    assert [s["changeDetected"] for s in result["adwin"]["streams"]] == [False, False]
    assert [s["stream"] for s in result["adwin"]["streams"]] == ["(score)", "(error)"]
    assert result["performance"]["measured"] and result["performance"]["relativeWorsening"] < 0.05
    summary = result["summary"]
    assert summary["window"] == 3 and summary["alerts"] == [] and summary["driftedFeatures"] == 0
    assert summary["maxPsi"] == max(psi.values())
    assert set(summary["disparateImpact"]) == {"sex", "race"}
    assert result["newestDataAt"] == "2024-05-01T11:00:00Z"
    assert [w["window"] for w in result["history"]] == [1, 2, 3]
    assert result["model"]["modelId"] == "adult-income" and result["model"]["version"]


def test_the_result_is_a_monitor_result_and_the_report_renders(
    stationary: dict[str, Any],
) -> None:
    MonitorResult.model_validate(stationary)
    text = json.dumps(stationary, allow_nan=False)  # every float finite (or null)
    assert "NaN" not in text
    html = Path(stationary["reports"]["window"].removeprefix("file://")).read_text()
    for chart in (
        "Drift: largest feature PSI and prediction PSI",
        "Disparate impact per sensitive feature",
        "roc_auc on labelled rows",
        "PSI per feature",
    ):
        assert re.search(rf'<svg[^>]*aria-label="{re.escape(chart)}"', html), chart
    visible = re.sub(r"<svg.*?</svg>", "", html, flags=re.DOTALL)
    assert not re.search(r"\bnan\b", visible, flags=re.IGNORECASE)
    assert "No alert" in visible and "How to read this report" in visible


def test_the_model_carries_its_held_out_figures_and_a_window_uses_them(
    trained: JobRun,
    adult: dict[str, str],
    adult_frames: dict[str, pd.DataFrame],
    tmp_path: Path,
) -> None:
    """A monitor pinned to an older version gets no baseline from the TrainingRun's status
    (it shows the current model's): the window takes the figures that version's training kept
    in its own metadata, which are those the status showed when it was current."""
    model = Path(trained.result["model"]["uri"].removeprefix("file://"))
    kept = json.loads((model / "fairpilot-model.json").read_text())["custom_metadata"]["held_out"]
    assert kept == baseline_of(trained)
    rows = adult_frames["test"].sample(500, random_state=5)
    result = run_window(
        tmp_path, monitor_spec(trained, adult, write_batches(tmp_path / "in", rows), baseline={})
    )
    assert result["baseline"] == baseline_of(trained)
    assert result["performance"]["baseline"] == baseline_of(trained)["score"]
    compared = result["fairness"]["features"]["sex"]["comparison"]
    training = {c["measure"]: c["training"] for c in compared}
    (sex,) = [f for f in baseline_of(trained)["fairness"] if f["name"] == "sex"]
    assert training["disparateImpact"] == sex["disparateImpact"] is not None


def test_a_shifted_feature_raises_drift_detected_with_drift_s_own_numbers(
    tmp_path: Path, trained: JobRun, adult: dict[str, str], adult_frames: dict[str, pd.DataFrame]
) -> None:
    rows = adult_frames["test"].sample(2_000, random_state=12)
    rows = rows.assign(age=rows["age"] + 15).drop(columns="income")
    result = run_window(
        tmp_path, monitor_spec(trained, adult, write_batches(tmp_path / "in", rows))
    )
    found = {a["feature"]: a for a in alerts_of(result, AlertType.DRIFT_DETECTED)}
    assert "age" in found and found["age"]["metric"] == "psi"
    # The same numbers drift.feature_drift gives for the same data (the whole training data
    # is the reference: fewer rows than the sample's cap).
    expected = drift.feature_drift(
        drift.feature_reference("age", adult_frames["train"]["age"]), rows["age"]
    )
    assert found["age"]["value"] == expected.psi >= 0.2
    assert found["age"]["threshold"] == 0.2
    table = {f["name"]: f for f in result["features"]}
    assert table["age"]["ksStatistic"] == expected.ks_statistic
    assert table["age"]["js"] == expected.js and table["age"]["drifted"]
    assert result["features"][0]["name"] == "age"  # largest PSI first
    assert result["labelledRows"] == 0 and not result["performance"]["measured"]
    assert len(result["adwin"]["streams"]) == 1  # no labels, no error stream
    assert result["summary"]["maxPsiFeature"] == "age"


def test_women_decided_against_more_often_raise_bias_drift(
    tmp_path: Path, trained: JobRun, adult: dict[str, str], adult_frames: dict[str, pd.DataFrame]
) -> None:
    """Women of the window resampled from the low-income women: the model gives them '>50K'
    far less often, and disparate impact of sex falls far below its value after training."""
    test = adult_frames["test"]
    men = test[test["sex"] == "Male"].sample(1_300, random_state=13)
    women = test[(test["sex"] == "Female") & (test["income"] == "<=50K")]
    women = women[women["marital_status"] != "Married-civ-spouse"].sample(700, random_state=13)
    rows = pd.concat([men, women]).sample(frac=1, random_state=13).drop(columns="income")
    result = run_window(
        tmp_path, monitor_spec(trained, adult, write_batches(tmp_path / "in", rows))
    )
    baseline = {b["name"]: b for b in baseline_of(trained)["fairness"]}["sex"]
    bias = {(a["feature"], a["metric"]): a for a in alerts_of(result, AlertType.BIAS_DRIFT)}
    alert = bias[("sex", "disparateImpact")]
    window = result["fairness"]["features"]["sex"]["window"]
    assert (
        alert["value"] == window["disparateImpact"] == result["summary"]["disparateImpact"]["sex"]
    )
    assert alert["baseline"] == baseline["disparateImpact"]
    assert alert["baseline"] - alert["value"] >= 0.1
    assert alert["threshold"] == pytest.approx(baseline["disparateImpact"] - 0.1)
    assert f"{alert['baseline']:.4g}" in alert["message"]
    assert f"{alert['value']:.4g}" in alert["message"]
    assert window["lowestSelectionGroup"] == "Female"
    assert "BiasDrift" in result["summary"]["alerts"]


def test_flipped_labels_degrade_performance_by_autogluon_s_own_measure(
    tmp_path: Path, trained: JobRun, adult: dict[str, str], adult_frames: dict[str, pd.DataFrame]
) -> None:
    from autogluon.tabular import TabularPredictor

    rows = adult_frames["test"].sample(2_000, random_state=14).reset_index(drop=True)
    flip = np.random.default_rng(14).random(len(rows)) < 0.3
    rows.loc[flip, "income"] = rows.loc[flip, "income"].map({">50K": "<=50K", "<=50K": ">50K"})
    rows.loc[:9, "income"] = ">50K."  # a label the model does not know: not scored
    result = run_window(
        tmp_path, monitor_spec(trained, adult, write_batches(tmp_path / "in", rows))
    )
    degraded = {a["feature"]: a for a in alerts_of(result, AlertType.PERFORMANCE_DEGRADED)}
    alert = degraded[None]
    predictor = TabularPredictor.load(
        trained.result["model"]["uri"].removeprefix("file://"), verbosity=0
    )
    own = predictor.evaluate(rows.iloc[10:], silent=True)
    performance = result["performance"]
    assert result["labelledRows"] == performance["labelledRows"] == 1_990
    assert result["unknownLabels"] == 10
    assert performance["score"] == pytest.approx(own["roc_auc"], abs=1e-12)
    assert performance["accuracy"] == pytest.approx(own["accuracy"], abs=1e-12)
    assert alert["metric"] == "roc_auc" and alert["value"] == performance["score"]
    assert alert["baseline"] == baseline_of(trained)["score"]
    assert performance["relativeWorsening"] > 0.05 and result["summary"]["score"] == alert["value"]
    # The error stream rose as well: ADWIN saw it.
    assert degraded["(error)"]["metric"] == "adwin"
    assert degraded["(error)"]["value"] > degraded["(error)"]["baseline"]
    # Features did not move: none drifted.
    features = {f["name"] for f in result["features"]}
    assert not [a for a in alerts_of(result, AlertType.DRIFT_DETECTED) if a["feature"] in features]


def test_bad_batches_are_rejected_and_the_good_one_measured(
    tmp_path: Path, trained: JobRun, adult: dict[str, str], adult_frames: dict[str, pd.DataFrame]
) -> None:
    rows = adult_frames["test"].sample(1_200, random_state=15)
    good = write_batches(tmp_path / "good", rows.iloc[:1_000], parts=1)
    folder = tmp_path / "bad"
    folder.mkdir()
    rows.iloc[1_000:1_100].drop(columns="age").to_csv(folder / "no-age.csv", index=False)
    texty = rows.iloc[1_100:].astype({"hours_per_week": str})
    texty.iloc[3, texty.columns.get_loc("hours_per_week")] = "forty"
    texty.to_parquet(folder / "text.parquet", index=False)
    batches = [
        *good,
        {"uri": f"file://{folder}/no-age.csv"},
        {"uri": f"file://{folder}/text.parquet"},
    ]
    result = run_window(tmp_path, monitor_spec(trained, adult, batches))
    assert result["rows"] == 1_000 and result["batches"] == [
        {"uri": good[0]["uri"], "rows": 1_000, "modifiedAt": good[0]["modifiedAt"]}
    ]
    reasons = {r["uri"]: (r["reason"], r["message"]) for r in result["rejected"]}
    assert reasons[f"file://{folder}/no-age.csv"][0] == "ColumnNotFound"
    assert "'age'" in reasons[f"file://{folder}/no-age.csv"][1]
    assert reasons[f"file://{folder}/text.parquet"][0] == "WrongType"
    assert "'hours_per_week'" in reasons[f"file://{folder}/text.parquet"][1]
    # Nothing lost: every batch is listed, used or rejected, and still where it was.
    listed = [b["uri"] for b in result["batches"]] + [r["uri"] for r in result["rejected"]]
    assert sorted(listed) == sorted(b["uri"] for b in batches)
    assert all(Path(uri.removeprefix("file://")).exists() for uri in listed)
    assert result["judged"] and not alerts_of(result, AlertType.DRIFT_DETECTED)


def test_a_window_without_a_usable_batch_fails_with_empty_window(
    tmp_path: Path, trained: JobRun, adult: dict[str, str], adult_frames: dict[str, pd.DataFrame]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rows = adult_frames["test"].head(50)
    rows.drop(columns="age").to_csv(folder / "no-age.csv", index=False)
    rows.head(0).to_csv(folder / "empty.csv", index=False)
    uris = [
        f"file://{folder}/no-age.csv",
        f"file://{folder}/empty.csv",
        f"file://{folder}/gone.csv",
    ]
    run = run_job(
        "monitor", monitor_spec(trained, adult, [{"uri": u} for u in uris]), tmp_path / "out"
    )
    assert run.returncode == 2, run.stderr
    assert not (run.output / "result.json").exists()
    error = run.error
    assert error["reason"] == "EmptyWindow" and error["exitCode"] == 2
    for uri, reason in zip(uris, ("ColumnNotFound", "EmptyBatch", "BatchNotFound"), strict=True):
        assert f"{uri}: {reason}" in error["message"]
    assert "Each batch needs the model's feature columns" in error["message"]
    assert "EmptyWindow" in run.stderr


def test_fewer_rows_than_min_rows_are_measured_but_not_judged(
    tmp_path: Path, trained: JobRun, adult: dict[str, str], adult_frames: dict[str, pd.DataFrame]
) -> None:
    rows = adult_frames["test"].sample(60, random_state=16)
    rows = rows.assign(age=rows["age"] + 15)  # drifted, but too few rows to say so
    result = run_window(
        tmp_path, monitor_spec(trained, adult, write_batches(tmp_path / "in", rows))
    )
    assert result["rows"] == 60 and not result["judged"]
    assert result["alerts"] == [] and result["summary"]["alerts"] == []
    table = {f["name"]: f for f in result["features"]}
    assert table["age"]["psi"] >= 0.2 and table["age"]["drifted"]  # still computed and shown
    assert "fewer than thresholds.minRows" in result["judgement"]
    assert not result["performance"]["measured"]
    html = Path(result["reports"]["window"].removeprefix("file://")).read_text()
    assert "Not judged: too few rows" in html


def test_a_served_probability_column_is_compared_instead_of_the_model_s(
    tmp_path: Path, trained: JobRun, adult: dict[str, str], adult_frames: dict[str, pd.DataFrame]
) -> None:
    """predictionColumn: what production served; a served score halved is prediction drift
    even where the features did not move."""
    rows = adult_frames["test"].sample(1_000, random_state=17).drop(columns="income")
    rows["served"] = np.random.default_rng(17).beta(1, 8, len(rows))
    spec = monitor_spec(
        trained, adult, write_batches(tmp_path / "in", rows), predictionColumn="served"
    )
    result = run_window(tmp_path, spec)
    prediction = result["predictionDrift"]
    assert prediction["source"] == "predictionColumn" and prediction["kind"] == "numeric"
    assert prediction["windowMean"] == pytest.approx(rows["served"].mean())
    found = {a["feature"]: a for a in alerts_of(result, AlertType.DRIFT_DETECTED)}
    assert found["(prediction)"]["value"] == prediction["psi"] >= 0.2


@pytest.mark.parametrize(
    ("metric", "problem", "higher"),
    [
        ("roc_auc", "binary", True),
        ("accuracy", "multiclass", True),
        ("r2", "regression", True),
        ("rmse", "regression", False),
        ("mae", "regression", False),
        ("log_loss", "binary", False),
    ],
)
def test_errors_are_worse_when_they_rise(metric: str, problem: str, higher: bool) -> None:
    """AutoGluon's scorers all say greater_is_better (they negate errors): the direction the
    performance check uses is the metric's own."""
    from autogluon.core.metrics import get_metric

    from fairpilot_jobs.monitor.stage import higher_is_better

    assert higher_is_better(get_metric(metric, problem)) is higher
