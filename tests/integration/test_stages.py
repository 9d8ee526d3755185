"""The four stages end to end through `fairpilot-job`, on the real Adult data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from support.jobs import JobRun, run_job


def test_profile(profiled: JobRun) -> None:
    result = profiled.result
    assert result["stage"] == "profile"
    assert result["rows"] == 32561
    assert result["suggestion"]["target"] == "income"
    assert result["suggestion"]["taskType"] == "binary"
    assert Path(result["reports"]["profile"].removeprefix("file://")).is_file()


def test_bias_pre_training(biased: JobRun) -> None:
    result = biased.result
    sex = result["features"]["sex"]
    assert sex["privilegedGroup"] == "Male"
    assert sex["privilegedChosenBy"] == "highest positive rate"
    assert sex["groups"]["Male"]["positiveRate"] == pytest.approx(0.3057, abs=1e-4)
    assert sex["groups"]["Female"]["positiveRate"] == pytest.approx(0.1095, abs=1e-4)
    female = sex["metrics"]["Female"]
    # The figures AWS's smclarify gives on Adult with women as the disadvantaged facet.
    assert female["CI"] == pytest.approx(0.3384, abs=1e-4)
    assert female["DPL"] == pytest.approx(0.1963, abs=1e-4)
    assert female["KL"] == pytest.approx(0.1412, abs=1e-4)
    assert female["JS"] == pytest.approx(0.0302, abs=1e-4)
    assert female["LDI"] == pytest.approx(0.358, abs=1e-3)
    assert "DI" not in female, "no predictions, no post-training metrics"
    assert result["biasDetected"] is True
    assert any(f.startswith("sex=Female") for f in result["findings"])
    assert result["summary"]["minDisparateImpact"] < 0.8
    assert set(result["features"]["race"]["groups"]) >= {"White", "Black", "Asian-Pac-Islander"}


def test_bias_reweighing_artifact(biased: JobRun) -> None:
    table = json.loads(Path(biased.result["mitigation"]["uri"].removeprefix("file://")).read_text())
    assert table["target"] == "income"
    assert table["positiveLabel"] == ">50K"
    weights = {
        (r["groups"]["sex"], r["groups"]["race"], r["labelPositive"]): r["weight"]
        for r in table["table"]
    }
    # Kamiran & Calders: positive women are up-weighted, positive men down-weighted.
    assert weights[("Female", "White", True)] > 1 > weights[("Male", "White", True)]


def test_bias_intersections_and_mitigation_effect(biased: JobRun, adult: dict[str, str]) -> None:
    """sex × race on Adult: every joint group's count and label rate as pandas counts them,
    LDI against Male × White (each feature's privileged group); kept out of BiasDetected.
    The mitigation's effect: the reweighed rates balance sex exactly (every sex × race cell
    of Adult has both labels)."""
    frame = pd.read_csv(adult["train"].removeprefix("file://"), skipinitialspace=True)
    positive = frame["income"].astype(str).str.strip() == ">50K"
    joint = frame["sex"].astype(str) + " × " + frame["race"].astype(str)
    expected = positive.groupby(joint).agg(["size", "mean"])
    result = biased.result
    crossed = result["intersections"]["sex × race"]
    assert crossed["privilegedGroup"] == "Male × White"
    assert crossed["privilegedChosenBy"] == "each feature's privileged group"
    assert set(crossed["groups"]) == set(expected.index)
    for group, (size, rate) in expected.iterrows():
        assert crossed["groups"][group]["count"] == size
        assert crossed["groups"][group]["positiveRate"] == pytest.approx(rate, rel=1e-12)
    black_women = crossed["metrics"]["Female × Black"]["LDI"]
    assert black_women == pytest.approx(
        expected.loc["Female × Black", "mean"] / expected.loc["Male × White", "mean"]
    )
    assert black_women < result["features"]["race"]["metrics"]["Black"]["LDI"]
    assert any(f.startswith("sex × race=Female × Black") for f in result["intersectionFindings"])
    assert not any("×" in f for f in result["findings"])
    effect = result["mitigation"]["effect"]["sex"]
    assert effect["metrics"]["Female"]["LDI"] == pytest.approx(0.358, abs=1e-3)
    assert effect["metrics"]["Female"]["reweighedLDI"] == 1
    assert effect["metrics"]["Female"]["reweighedDPL"] == 0


def test_bias_post_training_from_the_model(
    tmp_path: Path, adult: dict[str, str], trained: JobRun
) -> None:
    spec = {
        "dataset": {"uri": adult["test"]},
        "model": {"uri": trained.result["model"]["uri"], "digest": trained.result["modelDigest"]},
        "target": "income",
        "sensitiveFeatures": ["sex"],
    }
    run = run_job("bias", spec, tmp_path / "out")
    assert run.returncode == 0, run.stderr
    female = run.result["features"]["sex"]["metrics"]["Female"]
    assert run.result["predictionSource"].startswith("model")
    assert 0 < female["DI"] < 0.8
    assert female["DPPL"] > 0
    groups = run.result["features"]["sex"]["groups"]
    assert 0.8 < groups["Female"]["accuracy"] <= 1


def test_train(trained: JobRun) -> None:
    result = trained.result
    assert result["problemType"] == "binary"
    assert result["evalMetric"] == "roc_auc"
    assert result["metrics"]["test"]["roc_auc"] > 0.9
    assert result["metrics"]["validation"]["roc_auc"] > 0.9
    assert {"accuracy", "f1"} <= set(result["metrics"]["test"])
    # AutoGluon picks the best model by validation score; the leaderboard lists every model.
    # Several may share the best score (an ensemble of one member scores as that member).
    board = {row["model"]: row for row in result["leaderboard"]}
    best = max(row["scoreValidation"] for row in board.values())
    assert board[result["bestModel"]["name"]]["scoreValidation"] == best
    assert result["validation"] == {
        **result["validation"],
        "checked": True,
        "passed": True,
        "metric": "roc_auc",
        "split": "test",
    }
    assert result["gpu"]["used"] == 0
    model_dir = Path(result["model"]["uri"].removeprefix("file://"))
    assert (model_dir / "predictor.pkl").is_file()
    metadata = json.loads((model_dir / "fairpilot-model.json").read_text())
    # Seed 004's model metadata schema.
    for field in (
        "model_id",
        "user_id",
        "version",
        "framework",
        "model_type",
        "algorithm",
        "files",
        "model_size_mb",
        "test_accuracy",
        "validation_accuracy",
        "training_accuracy",
        "created_at",
        "is_production_ready",
    ):
        assert field in metadata, field
    assert metadata["model_id"] == "adult-income"
    # Seed 004's framework values only; which library it is, is said beside.
    assert metadata["framework"] == "other"
    assert metadata["custom_metadata"]["framework"].startswith("autogluon.tabular ")
    assert metadata["is_production_ready"] is True
    assert result["productionReady"]["ready"] is True
    assert sum(f["file_size"] for f in metadata["files"]) > 0
    assert any(f["is_primary"] for f in metadata["files"])


def test_explain(explained: JobRun) -> None:
    result = explained.result
    assert result["method"] == "tree"
    assert result["rows"] == 500
    assert result["localAccuracy"]["maxAbsError"] <= 1e-6
    importance = [item["feature"] for item in result["globalImportance"]]
    assert set(importance[:5]) & {
        "relationship",
        "marital_status",
        "capital_gain",
        "age",
        "education_num",
    }
    assert set(result["reports"]) == {"beginner", "intermediate", "expert"}
    values = pd.read_parquet(result["artifacts"]["shapValues"].removeprefix("file://"))
    assert len(values) == 500
    shap_columns = [c for c in values.columns if c.startswith("shap::")]
    assert len(shap_columns) == len(result["features"])
    reconstructed = values["base_value"] + values[shap_columns].sum(axis=1)
    assert (reconstructed - values["output"]).abs().max() <= 1e-6


def test_stage_reads_and_writes_s3(
    s3_client, s3_server: dict[str, str], tmp_path: Path, adult: dict[str, str]
) -> None:
    s3_client.create_bucket(Bucket="datasets")
    s3_client.create_bucket(Bucket="artifacts")
    s3_client.upload_file(adult["test"].removeprefix("file://"), "datasets", "u1/adult.csv")
    spec = {
        "dataset": {"uri": "s3://datasets/u1/adult.csv"},
        "target": "income",
        "sensitiveFeatures": ["sex"],
    }
    run = run_job(
        "bias", spec, tmp_path / "unused", env=s3_server, output_uri="s3://artifacts/u1/bias/run-1"
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(
        s3_client.get_object(Bucket="artifacts", Key="u1/bias/run-1/result.json")["Body"].read()
    )
    assert result["rows"] == 16281
    assert result["reports"]["bias"] == "s3://artifacts/u1/bias/run-1/report.html"
    keys = {
        o["Key"]
        for o in s3_client.list_objects_v2(Bucket="artifacts", Prefix="u1/bias/run-1/")["Contents"]
    }
    written = ("result.json", "report.html", "reweighing.json", ".fairpilot-run.json")
    assert keys == {f"u1/bias/run-1/{n}" for n in written}  # the last: the run's claim
