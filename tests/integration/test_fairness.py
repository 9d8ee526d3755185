"""A trained model's fairness (issue 14): the measures against fairlearn, the gates' verdicts,
small groups flagged, intersections; and the train stage measuring it on held-out rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    true_positive_rate,
)

from fairpilot.api.fairness import FairnessOptions
from fairpilot_jobs.fairness import JOINT, gate_verdict, measure


def synthetic(rows: int = 4000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], rows, p=[0.35, 0.65])
    race = rng.choice(["A", "B", "C"], rows, p=[0.6, 0.3, 0.1])
    score = np.clip(rng.normal(0.35 + 0.15 * (sex == "M") + 0.05 * (race == "A"), 0.2), 0, 1)
    truth = np.where(rng.random(rows) < score, ">50K", "<=50K")
    predicted = np.where(score > 0.45, ">50K", "<=50K")
    return pd.DataFrame(
        {"sex": sex, "race": race, "truth": truth, "predicted": predicted, "score": score}
    )


def measured(frame: pd.DataFrame, **options) -> dict:
    return measure(
        frame[["sex", "race"]],
        frame["truth"],
        frame["predicted"],
        frame["score"],
        ">50K",
        FairnessOptions(sensitive_features=["sex", "race"], **options),
        "test",
    )


def test_the_measures_are_fairlearns() -> None:
    frame = synthetic()
    found = measured(frame, min_group_size=1)
    y_true = frame["truth"] == ">50K"
    y_pred = frame["predicted"] == ">50K"
    for feature in ("sex", "race"):
        summary = found["features"][feature]["summary"]
        groups = frame[feature]
        assert summary["disparateImpact"] == pytest.approx(
            demographic_parity_ratio(y_true, y_pred, sensitive_features=groups)
        )
        assert summary["statisticalParityDifference"] == pytest.approx(
            demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
        )
        assert summary["equalizedOddsDifference"] == pytest.approx(
            equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
        )
        tpr = MetricFrame(
            metrics=true_positive_rate, y_true=y_true, y_pred=y_pred, sensitive_features=groups
        )
        assert summary["equalOpportunityDifference"] == pytest.approx(tpr.difference())
        for group, rate in tpr.by_group.items():
            assert found["features"][feature]["groups"][group]["truePositiveRate"] == (
                pytest.approx(rate)
            )


def test_groups_carry_precision_and_calibration() -> None:
    frame = synthetic()
    groups = measured(frame)["features"]["sex"]["groups"]
    for name, group in groups.items():
        rows = frame[frame["sex"] == name]
        chosen = rows["predicted"] == ">50K"
        hits = (rows["truth"] == ">50K") & chosen
        assert group["precision"] == pytest.approx(hits.sum() / chosen.sum())
        assert group["meanScore"] == pytest.approx(rows["score"].mean())
        observed = (rows["truth"] == ">50K").mean()
        assert group["calibrationGap"] == pytest.approx(rows["score"].mean() - observed)


def test_intersections_and_small_groups() -> None:
    frame = synthetic(600)
    found = measured(frame, min_group_size=40)
    joint = found["intersections"][f"sex{JOINT}race"]
    assert set(joint["groups"]) == {f"{s}{JOINT}{r}" for s in "FM" for r in "ABC"}
    small = {name for name, group in joint["groups"].items() if group["small"]}
    counts = frame.groupby(["sex", "race"]).size()
    assert small == {f"{s}{JOINT}{r}" for (s, r), n in counts.items() if n < 40}
    assert small, "the synthetic data has intersections under the minimum"
    assert joint["summary"]["groupsTooSmall"] == len(small)
    large = frame[~frame.apply(lambda r: f"{r['sex']}{JOINT}{r['race']}" in small, axis=1)]
    assert joint["summary"]["disparateImpact"] == pytest.approx(
        demographic_parity_ratio(
            large["truth"] == ">50K",
            large["predicted"] == ">50K",
            sensitive_features=large["sex"] + JOINT + large["race"],
        )
    )


def test_gates_name_the_measure_the_feature_the_groups_and_the_numbers() -> None:
    frame = synthetic()
    found = measured(
        frame,
        gates=[
            {"metric": "disparateImpact", "min": 0.8},
            {"metric": "equalizedOddsDifference", "max": 0.9, "feature": "race"},
        ],
    )
    gates = found["gates"]
    assert [(g["metric"], g["feature"]) for g in gates] == [
        ("disparateImpact", "sex"), ("disparateImpact", "race"), ("equalizedOddsDifference", "race")
    ]  # fmt: skip
    sex = gates[0]
    ratio = found["features"]["sex"]["summary"]["disparateImpact"]
    assert sex["value"] == ratio and sex["passed"] is (ratio >= 0.8)
    assert not sex["passed"], "the synthetic model favours M"
    assert "disparateImpact of 'sex' on the test split is" in sex["message"]
    assert "for 'F'" in sex["message"] and "for 'M'" in sex["message"]
    assert "misses the bound >= 0.8" in sex["message"]
    verdict = gate_verdict(found)
    assert verdict["checked"] and verdict["passed"] is False
    assert "disparateImpact of 'sex'" in verdict["message"]
    assert gate_verdict(measured(frame)) == {
        "checked": False, "passed": None, "message": "no fairness gate is configured"
    }  # fmt: skip


def test_the_train_stage_measures_what_its_model_predicts_on_the_test_set(
    trained, adult: dict[str, str]
) -> None:
    """The fairness in result.json is the stored model's, on the test rows: the model loaded
    as the stages load it, its predictions measured by fairlearn, give the same numbers."""
    from contextlib import ExitStack

    from fairpilot_jobs.models import load_predictor

    fairness = trained.result["fairness"]
    assert fairness["measured"] and fairness["split"] == "test"
    assert fairness["positiveLabel"] == ">50K"
    path = adult["test"].removeprefix("file://")
    test = pd.read_csv(path, skipinitialspace=True, na_values=["?"])
    test = test[test["income"].notna()]
    assert fairness["rows"] == len(test)
    with ExitStack() as stack:
        predictor, _ = load_predictor(
            trained.result["model"]["uri"], trained.result["modelDigest"], stack
        )
        predicted = predictor.predict(test.drop(columns=["income"])) == ">50K"
    truth = test["income"] == ">50K"
    for feature in ("sex", "race"):
        summary = fairness["features"][feature]["summary"]
        large = test[feature].map(test[feature].value_counts()) >= fairness["minGroupSize"]
        assert summary["disparateImpact"] == pytest.approx(
            demographic_parity_ratio(
                truth[large], predicted[large], sensitive_features=test[feature][large]
            )
        )
    assert set(fairness["intersections"]) == {f"sex{JOINT}race"}
    assert trained.result["productionReady"]["gates"]["fairness"]["checked"] is False


@pytest.fixture(scope="module")
def constrained(tmp_path_factory: pytest.TempPathFactory, adult: dict[str, str]):
    """Adult, trained once more with per-group thresholds: disparate impact >= 0.8 for sex."""
    from support.jobs import TRAIN_BUDGET_SECONDS, run_job

    run = run_job(
        "train",
        {
            "dataset": {"uri": adult["train"]},
            "testDataset": {"uri": adult["test"]},
            "target": "income",
            "timeLimitSeconds": TRAIN_BUDGET_SECONDS,
            "algorithms": ["lightgbm"],
            "fairness": {
                "sensitiveFeatures": ["sex"],
                "method": "thresholds",
                "constraints": [{"metric": "disparateImpact", "min": 0.8}],
                "gates": [{"metric": "disparateImpact", "min": 0.8}],
            },
        },
        tmp_path_factory.mktemp("constrained") / "out",
    )
    assert run.returncode == 0, run.stderr
    return run


@pytest.mark.slow
def test_the_constraint_holds_on_the_held_out_test_set(constrained, adult) -> None:
    from contextlib import ExitStack

    from fairpilot_jobs.models import load_predictor, predict

    result = constrained.result
    fairness = result["fairness"]
    assert fairness["split"] == "test"
    before = fairness["before"]["features"]["sex"]["summary"]["disparateImpact"]
    after = fairness["features"]["sex"]["summary"]["disparateImpact"]
    assert before < 0.8 <= after, (before, after)
    mitigation = fairness["mitigation"]
    assert len(mitigation["frontier"]) >= 20
    assert any(point["paretoOptimal"] for point in mitigation["frontier"])
    held = mitigation["heldout"]
    assert held["after"]["features"]["sex"]["disparateImpact"] == after
    assert held["before"]["accuracy"] > held["after"]["accuracy"] > 0.7  # what fairness cost
    assert result["productionReady"]["gates"]["fairness"]["passed"] is True
    # What ships is what was measured: the stored model, through the documented helper.
    path = adult["test"].removeprefix("file://")
    test = pd.read_csv(path, skipinitialspace=True, na_values=["?"]).dropna(subset=["income"])
    with ExitStack() as stack:
        predictor, metadata = load_predictor(result["model"]["uri"], result["modelDigest"], stack)
        assert metadata["decision_thresholds"]["thresholds"] == mitigation["thresholds"]
        decided = predict(predictor, metadata, test.drop(columns=["income"])) == ">50K"
    assert demographic_parity_ratio(
        test["income"] == ">50K", decided, sensitive_features=test["sex"]
    ) == pytest.approx(after)
    assert float((decided == (test["income"] == ">50K")).mean()) == pytest.approx(
        held["after"]["accuracy"]
    )


def test_the_thresholds_are_oxonfairs_decisions() -> None:
    """OxonFair adds a per-group offset to P(positive) and predicts positive when p + offset >
    1 - p: the stored thresholds (1 - offset) / 2 decide every row the same way."""
    from fairpilot_jobs.thresholds import decide

    rng = np.random.default_rng(0)
    probability = rng.random(5000)
    groups = rng.choice(["F", "M"], 5000)
    offsets = {"F": 0.37, "M": -0.12}
    theirs = probability + np.array([offsets[g] for g in groups]) > 1 - probability
    ours = decide(probability, groups, {g: (1 - o) / 2 for g, o in offsets.items()})
    assert (ours == theirs).all()


def test_rates_and_ratios_carry_their_uncertainty() -> None:
    """A small group's rate shows how little it says: exact (Clopper-Pearson) intervals as
    scipy computes them; the disparate impact's and the parity difference's intervals hold
    their point values and narrow as the groups grow."""
    from scipy.stats import binomtest

    frame = synthetic(600)
    found = measured(frame)
    for name, group in found["features"]["race"]["groups"].items():
        rows = frame[frame["race"] == name]
        chosen = int((rows["predicted"] == ">50K").sum())
        exact = binomtest(chosen, len(rows)).proportion_ci(confidence_level=0.95, method="exact")
        assert group["selectionRateInterval"] == pytest.approx([exact.low, exact.high])
        low, high = group["selectionRateInterval"]
        assert low <= group["predictedPositiveRate"] <= high
    small = found["features"]["race"]["groups"]["C"]
    large = found["features"]["race"]["groups"]["A"]
    width = lambda g: g["selectionRateInterval"][1] - g["selectionRateInterval"][0]  # noqa: E731
    assert width(small) > width(large)
    summary = found["features"]["sex"]["summary"]
    low, high = summary["disparateImpactInterval"]
    assert low < summary["disparateImpact"] < high
    spd_low, spd_high = summary["statisticalParityDifferenceInterval"]
    assert spd_low < summary["statisticalParityDifference"] < spd_high
    bigger = measured(synthetic(20000))["features"]["sex"]["summary"]["disparateImpactInterval"]
    assert bigger[1] - bigger[0] < (high - low) / 3  # 33 times the rows: about 1/5.7 the width


@pytest.mark.slow
def test_reweighing_is_shown_against_an_unweighted_baseline(
    tmp_path_factory: pytest.TempPathFactory, adult: dict[str, str], biased
) -> None:
    """With reweighing, the budget buys two fits of equal share: the reweighed model and an
    unweighted baseline on the same data; both are measured on the same held-out rows."""
    from support.jobs import TRAIN_BUDGET_SECONDS, run_job

    from fairpilot.api.kinds import TRAINING_RUN
    from fairpilot.kinds import project_result

    run = run_job(
        "train",
        {
            "dataset": {"uri": adult["train"]},
            "testDataset": {"uri": adult["test"]},
            "target": "income",
            "timeLimitSeconds": TRAIN_BUDGET_SECONDS,
            "algorithms": ["lightgbm"],
            "mitigation": {"reweighing": {"uri": biased.result["mitigation"]["uri"]}},
            "fairness": {"sensitiveFeatures": ["sex"]},
        },
        tmp_path_factory.mktemp("reweighed") / "out",
    )
    assert run.returncode == 0, run.stderr
    compared = run.result["fairness"]["reweighing"]
    baseline, reweighed = compared["baseline"], compared["reweighed"]
    assert baseline["split"] == reweighed["split"] == "test"
    for side in (baseline, reweighed):
        assert 0.7 < side["accuracy"] < 1 and 0.8 < side["rocAuc"] < 1
        assert 0 < side["features"]["sex"]["disparateImpact"] < 1
    # The reweighed model is the one measured (and shipped).
    assert reweighed["features"]["sex"]["disparateImpact"] == pytest.approx(
        run.result["fairness"]["features"]["sex"]["summary"]["disparateImpact"]
    )
    timing = run.result["timing"]  # two fits share the budget the stage keeps to
    assert timing["totalSeconds"] <= timing["budgetSeconds"] + timing["allowedOverheadSeconds"]
    status = project_result(TRAINING_RUN, run.result)
    assert status["mitigation"] == "reweighing"
    assert status["fairness"]["reweighing"]["accuracyBaseline"] == baseline["accuracy"]


@pytest.mark.parametrize("favourable_is_autogluons_positive", [True, False])
def test_thresholds_meet_the_constraint_for_the_favourable_outcome(
    favourable_is_autogluons_positive: bool,
) -> None:
    """The thresholds are on P(favourable), whichever class AutoGluon calls positive (COMPAS:
    the favourable outcome is "no" re-offending, AutoGluon's positive class is "yes")."""
    from types import SimpleNamespace

    from fairpilot.api.fairness import FairnessGate
    from fairpilot_jobs.thresholds import decide, fit_thresholds

    rng = np.random.default_rng(5)
    rows = 6000
    groups = rng.choice(["a", "b"], rows, p=[0.4, 0.6])
    p_yes = np.clip(rng.normal(0.45 + 0.2 * (groups == "a"), 0.2), 0.01, 0.99)
    yes = rng.random(rows) < p_yes
    # Favourable: "no" (or "yes" in the other case); its probability and truth.
    favourable_p = p_yes if favourable_is_autogluons_positive else 1 - p_yes
    favourable = yes if favourable_is_autogluons_positive else ~yes
    validation = pd.DataFrame({"race": groups})
    options = FairnessOptions(
        sensitive_features=["race"],
        method="thresholds",
        constraints=[{"metric": "disparateImpact", "min": 0.8}],
    )
    fitted = fit_thresholds(
        SimpleNamespace(problem_type="binary"), validation, favourable_p, favourable, "race",
        [FairnessGate(metric="disparateImpact", min=0.8)], options,
    )  # fmt: skip
    chosen = decide(favourable_p, groups, fitted["thresholds"])
    assert demographic_parity_ratio(favourable, chosen, sensitive_features=groups) >= 0.8
    before = favourable_p > 0.5
    assert demographic_parity_ratio(favourable, before, sensitive_features=groups) < 0.8
    assert (chosen == favourable).mean() > 0.6
    assert len(fitted["frontier"]) >= 20
