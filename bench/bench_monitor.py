"""A ModelMonitor's alerts on Adult: no false alarm on stationary data, and injected shifts
caught within two windows.

A model is trained on adult.data with `fairpilot-job train` (test set adult.test, fairness
measured on sex and race, as a TrainingRun's baseline has it). Then the monitor stage's window
(`measure_window`, the code a `fairpilot-job monitor` Job runs) is called in this process, at
the default thresholds, on windows of `--rows` rows written as CSV batches:

- stationary: `--stationary` windows sampled from the training data itself (a replay of the
  reference) without the label, and as many sampled from the held-out test data with the
  label; each counted as a false alarm if it raises any alert. The training rows go without
  their label because the model has seen them: its errors there are fewer, and differently
  spread over the groups, than on any new data, so the label-based measures (equal
  opportunity, performance, the error stream) would compare a fitted sample with held-out
  figures and find a difference that is real but no drift;
- psi: a population whose `age` is shifted by the smallest whole number of years that gives a
  population PSI >= 0.2 against the training data (computed once on all of adult.test); windows
  sampled from it;
- di: a population in which women the model selects are dropped at random until its disparate
  impact by sex (the model's decisions on the whole population) is 0.1 below the model's
  held-out value; windows sampled from it.

Each shift starts after two stationary windows; its figure is the number of shifted windows
until the alert it should raise (DriftDetected on age; BiasDrift on sex) was raised, over
`--trials` runs with different samples. Target: within two windows, and no false alarm in 100.

    python bench/bench_monitor.py [--rows 2000] [--stationary 100] [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from harness import describe, run_stage

from fairpilot.api import MonitorJobSpec
from fairpilot.api.monitor import MonitorThresholds
from fairpilot.datasets import export_adult
from fairpilot_jobs.models import load_predictor, predict
from fairpilot_jobs.monitor import drift
from fairpilot_jobs.monitor.stage import measure_window

SHIFT_AFTER = 2  # stationary windows before a shift starts
MAX_WINDOWS = 5  # shifted windows looked at before calling a shift missed


def train(directory: Path, budget: int) -> tuple[dict[str, Any], dict[str, Path]]:
    paths = export_adult(directory / "data")
    spec = {
        "dataset": {"uri": f"file://{paths['train']}"},
        "testDataset": {"uri": f"file://{paths['test']}"},
        "target": "income",
        "evalMetric": "roc_auc",
        "timeLimitSeconds": budget,
        "fairness": {"sensitiveFeatures": ["sex", "race"], "positiveLabel": ">50K"},
        "modelId": "adult-income",
    }
    return run_stage("train", spec, directory), paths


def baseline_of(result: dict[str, Any]) -> dict[str, Any]:
    """What the operator gives a window from the TrainingRun's status (references.py)."""
    fairness = result["fairness"]
    return {
        "evalMetric": result["evalMetric"],
        "score": result["metrics"]["test"]["roc_auc"],
        "split": "test",
        "accuracy": result["metrics"]["test"]["accuracy"],
        "positiveLabel": fairness["positiveLabel"],
        "fairness": [
            {"name": name, **{k: block["summary"].get(k) for k in (
                "disparateImpact", "statisticalParityDifference", "equalOpportunityDifference")}}
            for name, block in fairness["features"].items()
        ],
    }  # fmt: skip


class Monitor:
    """Windows of one monitor, measured one after another as its Jobs would."""

    def __init__(
        self,
        result: dict[str, Any],
        paths: dict[str, Path],
        folder: Path,
        thresholds: dict[str, Any],
    ) -> None:
        self.folder, self.history, self.number = folder, [], 0
        self.common = {
            "thresholds": thresholds,
            "model": {"uri": result["model"]["uri"], "digest": result["modelDigest"]},
            "reference": {"uri": f"file://{paths['train']}"},
            "target": "income",
            "sensitiveFeatures": ["sex", "race"],
            "baseline": baseline_of(result),
        }
        self.stack = ExitStack()
        self.predictor, self.metadata = load_predictor(
            result["model"]["uri"], result["modelDigest"], self.stack
        )

    def window(self, rows: pd.DataFrame) -> dict[str, Any]:
        self.number += 1
        path = self.folder / f"{id(self)}-{self.number}.csv"
        rows.to_csv(path, index=False)
        spec = MonitorJobSpec.model_validate(
            {
                **self.common,
                "batches": [{"uri": f"file://{path}", "modifiedAt": "2026-12-02T00:00:00Z"}],
                "window": self.number,
                "history": self.history[-30:],
            }
        )
        result = measure_window(spec, self.predictor, self.metadata)
        self.history = result["history"]
        return result


def alerts_of(result: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(a["type"], a.get("feature"), a["metric"]) for a in result["alerts"]]


def age_shift(train: pd.DataFrame, test: pd.DataFrame) -> tuple[int, float]:
    reference = drift.feature_reference("age", train["age"])
    for years in range(1, 40):
        psi = drift.feature_drift(reference, test["age"] + years).psi
        if psi >= 0.2:
            return years, psi
    raise RuntimeError("no shift of age reaches PSI 0.2")


def di_of(frame: pd.DataFrame, decisions: np.ndarray) -> float:
    chosen = pd.Series(decisions.astype(str) == ">50K", index=frame.index)
    rates = chosen.groupby(frame["sex"].str.strip()).mean()
    return float(rates.min() / rates.max())


def di_population(monitor: Monitor, test: pd.DataFrame, target: float, seed: int) -> Any:
    """adult.test with selected women dropped until DI by sex is `target`; and that DI."""
    decisions = np.asarray(
        predict(monitor.predictor, monitor.metadata, test.drop(columns="income"))
    )
    selected_women = test.index[(test["sex"].str.strip() == "Female") & (decisions == ">50K")]
    order = np.random.default_rng(seed).permutation(selected_women)
    low, high = 0, len(order)
    while low < high:  # the fewest dropped that bring DI to the target
        middle = (low + high) // 2
        kept = test.index.difference(order[:middle])
        if di_of(test.loc[kept], decisions[test.index.get_indexer(kept)]) <= target:
            high = middle
        else:
            low = middle + 1
    kept = test.index.difference(order[:low])
    return test.loc[kept], di_of(test.loc[kept], decisions[test.index.get_indexer(kept)])


def detection(
    monitor_for: Any,
    stationary: pd.DataFrame,
    shifted: pd.DataFrame,
    rows: int,
    wanted: Any,
    trials: int,
) -> list[int | None]:
    """Shifted windows until `wanted(alerts)`, per trial (None: not within MAX_WINDOWS)."""
    found: list[int | None] = []
    for trial in range(trials):
        monitor = monitor_for()
        rng = np.random.default_rng(1000 + trial)
        for _ in range(SHIFT_AFTER):
            monitor.window(stationary.sample(rows, random_state=rng.integers(2**31)))
        delay = None
        for index in range(1, MAX_WINDOWS + 1):
            result = monitor.window(shifted.sample(rows, random_state=rng.integers(2**31)))
            if wanted(alerts_of(result)):
                delay = index
                break
        found.append(delay)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows per window")
    parser.add_argument("--stationary", type=int, default=100, help="stationary windows")
    parser.add_argument("--trials", type=int, default=5, help="runs of each shift")
    parser.add_argument("--budget", type=int, default=60, help="training time limit, seconds")
    parser.add_argument("--out", type=Path, default=Path("bench/results/monitor.json"))
    parser.add_argument(
        "--thresholds", type=json.loads, default={}, help="JSON: thresholds other than default"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        trained, paths = train(directory, args.budget)
        train_rows = pd.read_csv(paths["train"], skipinitialspace=True)
        test_rows = pd.read_csv(paths["test"], skipinitialspace=True)
        folder = directory / "batches"
        folder.mkdir()

        def monitor_for() -> Monitor:
            return Monitor(trained, paths, folder, args.thresholds)

        # Stationary replays: the reference without labels, the held-out data with them.
        stationary: dict[str, Any] = {}
        seconds: list[float] = []
        replays = {
            "reference (training rows, no label)": train_rows.drop(columns="income"),
            "held-out (test rows, labelled)": test_rows,
        }
        for label, rows in replays.items():
            monitor = monitor_for()
            rng = np.random.default_rng(0)
            false_alarms: dict[str, int] = {}
            alarmed_windows = 0
            for _ in range(args.stationary):
                began = time.perf_counter()
                result = monitor.window(rows.sample(args.rows, random_state=rng.integers(2**31)))
                seconds.append(time.perf_counter() - began)
                if result["alerts"]:
                    alarmed_windows += 1
                for type_, feature, metric in alerts_of(result):
                    key = f"{type_} {feature} {metric}"
                    false_alarms[key] = false_alarms.get(key, 0) + 1
            stationary[label] = {
                "windows": args.stationary,
                "windowsWithAnAlert": alarmed_windows,
                "alerts": false_alarms,
            }

        years, population_psi = age_shift(train_rows, test_rows)
        aged = test_rows.assign(age=test_rows["age"] + years)
        psi_delays = detection(
            monitor_for, test_rows, aged, args.rows,
            lambda alerts: ("DriftDetected", "age", "psi") in alerts, args.trials,
        )  # fmt: skip

        held_out = next(f for f in baseline_of(trained)["fairness"] if f["name"] == "sex")
        target = held_out["disparateImpact"] - 0.1
        population, population_di = di_population(monitor_for(), test_rows, target, seed=0)
        di_delays = detection(
            monitor_for, test_rows, population, args.rows,
            lambda alerts: ("BiasDrift", "sex", "disparateImpact") in alerts, args.trials,
        )  # fmt: skip

    figures = {
        "machine": describe("river", "autogluon.tabular"),
        "rowsPerWindow": args.rows,
        "thresholds": MonitorThresholds.model_validate(args.thresholds).model_dump(by_alias=True),
        "stationary": {
            **stationary,
            "secondsPerWindow": {
                "median": round(float(np.median(seconds)), 3),
                "max": round(float(np.max(seconds)), 3),
            },
            "target": "no window with an alert in 100",
        },
        "psi": {
            "shift": f"age + {years} years",
            "populationPsi": round(population_psi, 4),
            "windowsToDetect": psi_delays,
            "target": "<= 2 windows",
        },
        "di": {
            "heldOutDisparateImpact": round(held_out["disparateImpact"], 4),
            "populationDisparateImpact": round(population_di, 4),
            "windowsToDetect": di_delays,
            "target": "<= 2 windows",
        },
        "trials": args.trials,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
