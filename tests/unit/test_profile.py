"""The profile stage's logic on Adult and on tables built to trip each warning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairpilot.api import ProfileJobSpec, TaskType
from fairpilot.datasets import adult
from fairpilot.errors import JobError
from fairpilot_jobs.profile import infer_task_type, profile_frame


@pytest.fixture(scope="module")
def adult_train() -> pd.DataFrame:
    return adult()[0]


def spec(**fields) -> ProfileJobSpec:
    return ProfileJobSpec.model_validate({"uri": "file:///unused.csv", **fields})


def test_adult_profile(adult_train: pd.DataFrame) -> None:
    result = profile_frame(adult_train, spec(sensitiveFeatures=["sex", "race"]))
    assert result["rows"] == 32561
    assert result["columns"] == 15
    columns = {c["name"]: c for c in result["columnProfiles"]}
    assert columns["age"]["type"] == "numeric"
    assert columns["age"]["numeric"]["min"] == 17
    assert columns["age"]["numeric"]["max"] == 90
    assert columns["age"]["numeric"]["mean"] == pytest.approx(adult_train["age"].mean())
    assert columns["workclass"]["missing"] == 1836
    assert columns["occupation"]["missing"] == 1843
    assert columns["sex"]["distinct"] == 2
    assert columns["race"]["topCategories"][0] == {
        "value": "White",
        "count": 27816,
        "fraction": pytest.approx(27816 / 32561),
    }
    suggestion = result["suggestion"]
    assert suggestion["target"] == "income"
    assert suggestion["taskType"] == "binary"
    assert any("usual name for a label" in r for r in suggestion["targetReasons"])
    assert result["sensitiveFeatures"]["sex"][0]["value"] == "Male"
    assert result["duplicateRows"] == 24


def test_warnings_for_constant_id_missing_and_leaking_columns() -> None:
    rng = np.random.default_rng(0)
    n = 400
    label = rng.choice(["yes", "no"], size=n)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "country": ["NL"] * n,
            "notes": np.where(rng.random(n) < 0.7, None, "x"),
            "approved_flag": np.where(label == "yes", "A", "R"),
            "amount": rng.normal(100, 10, n),
            "outcome": label,
        }
    )
    result = profile_frame(frame, spec())
    found = {(w["type"], w["column"]) for w in result["warnings"]}
    assert ("IdLikeColumn", "customer_id") in found
    assert ("ConstantColumn", "country") in found
    assert ("HighMissingness", "notes") in found
    assert ("LabelLeakageCandidate", "approved_flag") in found
    assert not any(column == "amount" for _, column in found)
    assert result["suggestion"]["target"] == "outcome"


def test_regression_leak_by_correlation() -> None:
    rng = np.random.default_rng(1)
    price = rng.normal(200, 50, 300)
    frame = pd.DataFrame(
        {"size": rng.normal(80, 10, 300), "price_eur": price * 0.9, "price": price}
    )
    result = profile_frame(frame, spec(target="price", taskType="regression"))
    assert result["suggestion"]["taskType"] == "regression"
    leaks = [w["column"] for w in result["warnings"] if w["type"] == "LabelLeakageCandidate"]
    assert leaks == ["price_eur"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b", "a"], TaskType.BINARY),
        ([1, 2, 3, 1, 2, 3, 4], TaskType.MULTICLASS),
        (list(np.linspace(0, 1, 50)), TaskType.REGRESSION),
        (["x", "y", "z"], TaskType.MULTICLASS),
    ],
)
def test_task_type(values, expected) -> None:
    assert infer_task_type(pd.Series(values, name="y"))[0] is expected


def test_unknown_target_names_the_columns(adult_train: pd.DataFrame) -> None:
    with pytest.raises(JobError, match="columns are: age, workclass") as caught:
        profile_frame(adult_train, spec(target="salary_band"))
    assert caught.value.reason == "TargetNotFound"
