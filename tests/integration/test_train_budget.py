"""The train stage's time budget and its model-family report (issue 12, item 7).

The budget: AutoGluon's time_limit is what is left of the stage's budget, never more than the
budget, and result.json's timing adds up. The families: every family asked for is listed with
a state (trained, skipped, failed) and, when it has no trained model, a reason; a family made to
fail for real (a hyperparameter its library refuses, a package that cannot be imported) is
reported with the exception. Benchmarks measure the wall time (bench/bench_train.py); these
tests never assert one.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.jobs import run_job

from fairpilot.api import Algorithm, TrainJobSpec
from fairpilot.artifacts import ArtifactStore
from fairpilot.datasets import adult
from fairpilot.errors import JobError
from fairpilot_jobs import train
from fairpilot_jobs.model_families import (
    FAILED,
    SKIP_REASONS,
    SKIPPED,
    TRAINED,
    FitLog,
    _classify,
    family_report,
    key_from_name,
)
from fairpilot_jobs.time_budget import MIN_FIT_SHARE, StageClock, overhead_seconds

KEYS = train.AUTOGLUON_KEYS
STATES = (TRAINED, SKIPPED, FAILED)


# -- the plan ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    budget=st.integers(min_value=10, max_value=7 * 24 * 3600),
    spent=st.floats(min_value=0, max_value=2, allow_nan=False),
    train_rows=st.integers(min_value=0, max_value=10_000_000),
    test_rows=st.integers(min_value=0, max_value=10_000_000),
    families=st.lists(st.sampled_from(list(Algorithm)), min_size=1, max_size=8),
)
def test_autogluon_never_gets_more_than_the_budget_left(
    budget: int, spent: float, train_rows: int, test_rows: int, families: list[Algorithm]
) -> None:
    """time_limit <= budget; it is the budget left less the reserve, or half the budget
    when that is less, and then the planned overrun says by how much."""
    clock = StageClock(budget, origin=time.monotonic() - spent * budget)
    keys = [KEYS[f] for f in dict.fromkeys(families)]
    limit = clock.plan_fit(train_rows, test_rows, keys)
    available = budget - clock.elapsed() - clock.reserve
    assert 0 < limit <= budget
    assert limit >= round(MIN_FIT_SHARE * budget, 1)
    assert clock.reserve > 0
    if clock.planned_overrun:
        assert limit == round(MIN_FIT_SHARE * budget, 1)
        assert clock.planned_overrun == pytest.approx(MIN_FIT_SHARE * budget - available, abs=0.05)
    else:
        assert limit <= round(available, 1) + 0.1
    # More rows to predict never leave AutoGluon more time.
    bigger = StageClock(budget, origin=clock.origin)
    assert bigger.plan_fit(train_rows + 1000, test_rows + 1000, keys) <= limit + 0.1


def test_the_clock_starts_at_the_call_inside_another_process() -> None:
    """pytest was not started to run a stage: its own start-up is not the stage's."""
    clock = StageClock(60)
    assert clock.origin_kind == "stage call"
    assert clock.elapsed() < 1
    assert overhead_seconds(60) >= 5 and overhead_seconds(3600) == pytest.approx(180)


# -- the families ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc_type", "state"),
    [
        ("ImportError", SKIPPED),
        ("ModuleNotFoundError", SKIPPED),
        ("TimeLimitExceeded", SKIPPED),
        ("NoStackFeatures", SKIPPED),
        ("InsufficientTime", SKIPPED),
        ("NotEnoughMemoryError", SKIPPED),
        ("NoGPUError", SKIPPED),
        ("CatBoostError", FAILED),
        ("InvalidParameterError", FAILED),
        ("ValueError", FAILED),
        ("SomethingNobodyHeardOf", FAILED),
    ],
)
def test_an_exception_is_a_skip_only_when_it_means_not_possible_here(
    exc_type: str, state: str
) -> None:
    got, reason = _classify(exc_type)
    assert got == state
    assert (reason is not None) == (state == SKIPPED)
    if exc_type in SKIP_REASONS:  # its own reason, not its base class's
        assert reason == SKIP_REASONS[exc_type]


def test_model_names_map_to_their_family() -> None:
    from fairpilot_jobs.model_families import autogluon_names

    stems = autogluon_names(KEYS.values())
    assert key_from_name("LightGBMLarge", stems) == "GBM"
    assert key_from_name("LightGBMXT_BAG_L1", stems) == "GBM"
    assert key_from_name("CatBoost_r9_BAG_L2", stems) == "CAT"
    assert key_from_name("RandomForestEntr", stems) == "RF"
    assert key_from_name("NeuralNetTorch", stems) == "NN_TORCH"
    assert key_from_name("WeightedEnsemble_L2", stems) is None


_models = st.lists(
    st.tuples(
        st.sampled_from(sorted(set(KEYS.values()))),
        st.sampled_from(STATES),
        st.text("abcXYZ_1", min_size=1, max_size=8),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(asked=st.lists(st.sampled_from(list(Algorithm)), min_size=1, max_size=10), models=_models)
def test_every_family_asked_for_is_listed_once_with_a_state_and_a_reason(
    asked: list[Algorithm], models: list[tuple[str, str, str]]
) -> None:
    records: list[dict[str, Any]] = []
    for i, (key, state, name) in enumerate(models):
        record: dict[str, Any] = {"key": key, "model": f"{name}{i}", "state": state}
        if state == TRAINED:
            record["scoreValidation"] = i / 10
        elif state == SKIPPED:
            record["reason"] = "not enough time left in the budget to start it"
        else:
            record["error"] = {"type": "CatBoostError", "message": f"bad {i}"}
        records.append(record)
    families = family_report(asked, KEYS, records)
    assert [f["family"] for f in families] == [str(a) for a in dict.fromkeys(asked)]
    for family in families:
        mine = [r for r in records if r["key"] == family["autogluonKey"]]
        states = {r["state"] for r in mine}
        assert family["state"] in STATES
        assert len(family["models"]) == len(mine)
        if TRAINED in states:
            assert family["state"] == TRAINED and family["reason"] is None
            assert family["bestModel"] in {r["model"] for r in mine if r["state"] == TRAINED}
            if len(states) > 1:
                assert family["note"]
        else:
            assert family["state"] == (FAILED if FAILED in states else SKIPPED)
            assert family["reason"]
            for record in mine:  # each model's fate is in the family's reason
                assert record["model"] in family["reason"]
                if record["state"] == FAILED:
                    assert record["error"]["message"] in family["reason"]
            if not mine:
                assert "recorded no fit, failure or skip" in family["reason"]


def test_fit_log_hears_the_skips_and_passes_on_only_what_the_verbosity_shows() -> None:
    from autogluon.tabular.trainer.abstract_trainer import AbstractTabularTrainer

    heard: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            heard.append(record)

    root = logging.getLogger("autogluon")
    trainer_log = logging.getLogger(AbstractTabularTrainer.__module__)
    saved = (root.level, trainer_log.level, trainer_log.propagate)
    keep = Keep()
    root.addHandler(keep)
    root.setLevel(25)  # verbosity=1
    try:
        with FitLog() as fit_log:
            trainer_log.log(20, "Fitting model: LightGBM ... Training model for up to 5.00s")
            trainer_log.log(15, "Skipping CatBoost_BAG_L1 due to lack of time remaining.")
            trainer_log.log(30, "\tNot enough memory to train XGBoost... Skipping this model.")
        trainer_log.log(15, "Skipping NeuralNetTorch due to lack of time remaining.")
    finally:
        root.removeHandler(keep)
        root.setLevel(saved[0])
    assert fit_log.attempted == ["LightGBM"]
    assert fit_log.skipped_for_time == ["CatBoost_BAG_L1"]  # only what was said during the fit
    assert [r.levelno for r in heard] == [30]  # what verbosity=1 shows, and nothing more
    assert (trainer_log.level, trainer_log.propagate) == saved[1:]


# -- real training -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_adult(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """3,000 training and 1,000 test rows of Adult as file:// URIs."""
    folder = tmp_path_factory.mktemp("small-adult")
    frame, test = adult()
    paths = {}
    for name, rows in (("train", frame.sample(3000, random_state=1)), ("test", test.iloc[:1000])):
        path = folder / f"{name}.csv"
        rows.to_csv(path, index=False)
        paths[name] = f"file://{path}"
    return paths


def _check_timing(result: dict[str, Any], budget: int) -> None:
    timing = result["timing"]
    assert timing["budgetSeconds"] == budget == result["timeLimitSeconds"]
    assert 0 < timing["autogluonTimeLimitSeconds"] <= budget
    parts = ("startupSeconds", "prepareSeconds", "fitSeconds", "postFitSeconds")
    assert all(timing[p] >= 0 for p in parts)
    assert timing["fitSeconds"] + timing["postFitSeconds"] <= timing["totalSeconds"] + 0.02
    assert sum(timing[p] for p in parts) == pytest.approx(timing["totalSeconds"], abs=0.05)
    assert timing["fitSeconds"] == pytest.approx(result["fitSeconds"], abs=0.05)
    assert timing["withinBudget"] == (timing["totalSeconds"] <= budget)
    assert 0 < timing["trainingMetricRows"] <= result["rows"]["train"]


def _check_families(result: dict[str, Any], asked: list[str]) -> None:
    families = result["modelFamilies"]
    assert [f["family"] for f in families] == asked
    for family in families:
        assert family["state"] in STATES
        if family["state"] != TRAINED:
            assert family["reason"], family
    # The leaderboard's models are the trained ones that were kept (the weighted ensemble
    # belongs to no family).
    trained = {
        m["model"] for f in families for m in f["models"] if m["state"] == TRAINED and m["kept"]
    }
    board = {row["model"] for row in result["leaderboard"]}
    assert trained == {m for m in board if not m.startswith("WeightedEnsemble")}


@pytest.mark.slow
def test_a_tiny_budget_lists_every_family_and_why_it_was_not_trained(
    tmp_path: Path, small_adult: dict[str, str]
) -> None:
    asked = [str(a) for a in Algorithm]
    spec = {
        "dataset": {"uri": small_adult["train"]},
        "testDataset": {"uri": small_adult["test"]},
        "target": "income",
        "timeLimitSeconds": 10,
        "algorithms": asked,
    }
    run = run_job("train", spec, tmp_path / "out")
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["timing"]["clockStartedAt"] == "process start"
    _check_timing(result, 10)
    _check_families(result, asked)
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Model families" in report
    for family in result["modelFamilies"]:
        assert family["family"] in report


def _run_in_process(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    store = ArtifactStore(f"file://{tmp_path / 'out'}")
    return train.run_train(TrainJobSpec.model_validate(spec), store)


@pytest.mark.slow
def test_a_family_that_raises_is_failed_and_one_that_cannot_be_imported_is_skipped(
    tmp_path: Path, small_adult: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real failures, not mocks: CatBoost refuses a negative L2 regularisation, and xgboost
    cannot be imported (as if it were not installed)."""
    choose = train.hyperparameters

    def with_a_bad_catboost(algorithms: list[Algorithm]) -> dict[str, Any]:
        return {**choose(algorithms), "CAT": {"l2_leaf_reg": -1}}

    monkeypatch.setattr(train, "hyperparameters", with_a_bad_catboost)
    monkeypatch.setitem(sys.modules, "xgboost", None)  # `import xgboost` raises ImportError
    spec = {
        "dataset": {"uri": small_adult["train"]},
        "target": "income",
        "timeLimitSeconds": 20,
        "algorithms": ["lightgbm", "catboost", "xgboost"],
    }
    result = _run_in_process(tmp_path, spec)
    families = {f["family"]: f for f in result["modelFamilies"]}
    assert families["lightgbm"]["state"] == TRAINED
    catboost = families["catboost"]
    assert catboost["state"] == FAILED
    assert catboost["models"][0]["error"]["type"] == "CatBoostError"
    assert "L2LeafRegularizer" in catboost["models"][0]["error"]["message"]
    assert "L2LeafRegularizer" in catboost["reason"]
    xgboost = families["xgboost"]
    assert xgboost["state"] == SKIPPED
    assert "not installed" in xgboost["reason"]
    assert xgboost["models"][0]["error"]["type"] in {"ImportError", "ModuleNotFoundError"}
    assert result["timing"]["clockStartedAt"] == "stage call"
    _check_timing(result, 20)
    _check_families(result, ["lightgbm", "catboost", "xgboost"])


@pytest.mark.slow
def test_when_nothing_trains_the_error_says_what_became_of_each_family(
    tmp_path: Path, small_adult: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train, "hyperparameters", lambda _: {"CAT": {"l2_leaf_reg": -1}})
    spec = {
        "dataset": {"uri": small_adult["train"]},
        "target": "income",
        "timeLimitSeconds": 10,
        "algorithms": ["catboost"],
    }
    with pytest.raises(JobError) as caught:
        _run_in_process(tmp_path, spec)
    assert caught.value.reason == "TrainingFailed"
    assert "catboost failed" in caught.value.message
    assert "CatBoostError" in caught.value.message


@pytest.mark.slow
def test_models_autogluon_trained_but_did_not_keep_are_still_listed(
    tmp_path: Path, small_adult: dict[str, str]
) -> None:
    """optimize_for_deployment keeps only the best model: the others were trained all the
    same, and their families are not reported as never reached."""
    spec = {
        "dataset": {"uri": small_adult["train"]},
        "target": "income",
        "timeLimitSeconds": 20,
        "presets": "optimize_for_deployment",
        "algorithms": ["lightgbm", "catboost", "knn"],
    }
    result = _run_in_process(tmp_path, spec)
    _check_families(result, ["lightgbm", "catboost", "knn"])
    models = [m for f in result["modelFamilies"] for m in f["models"]]
    dropped = [m for m in models if m["state"] == TRAINED and not m["kept"]]
    # Which ones the best ensemble keeps is AutoGluon's choice; each one it did not keep is
    # listed, trained, with the reason it is not in the model.
    assert all(m["reason"] for m in dropped)
    for family in result["modelFamilies"]:
        assert "recorded no fit" not in (family["reason"] or ""), family
