"""The train stage's time budget: the whole stage, not only AutoGluon, fits in `timeLimitSeconds`.

The clock starts when the stage starts: at the start of the `fairpilot-job` process (its
interpreter start-up, imports and spec loading count), or at the call of `run_train` when the
stage runs inside a process that was started for something else (a test, a notebook).
AutoGluon gets what is left of the budget once the data is loaded, less a reserve for the work
after the fit (metrics on the training rows, the leaderboard and metrics on the test set,
trimming the model, upload, report, exit), which scales with the rows to predict:

    time_limit = budget - elapsed - reserve
    reserve    = fixed + test rows * (sum of the families' seconds a row)
                       + training rows * (the slowest family's seconds a row)
                       + an allowance for AutoGluon running past its time_limit

but never less than MIN_FIT_SHARE of the budget: with a budget smaller than the stage's fixed
costs the model still gets time to train, and the stage says by how much it planned to overrun
(`plannedOverrunSeconds`).

The stated overhead: the stage ends within budget + max(OVERHEAD_SECONDS, OVERHEAD_SHARE *
budget) of its process starting, plus any planned overrun. It covers what the stage cannot
plan: AutoGluon running past its time_limit (the model it is fitting when the time runs out
finishes its current step, and the weighted ensemble is fitted after it), the post-fit work
taking longer than its reserve, a machine slower or busier than the one the reserve was
measured on, and the interpreter's exit. The Pod's own start (image pull, container creation)
happens before the process and is not the stage's. bench/bench_train.py measures it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# The reserve for the post-fit work. Fixed: reading back the validation data, the leaderboard,
# trimming and saving the predictor, hashing and uploading a model of a few MB, the report, the
# interpreter's exit. Per row: every model predicts each test row, and the best model (an
# ensemble, about one family's worth of models) each training row. The seconds a row are for
# all of a family's default variants (LightGBM has three, random and extra trees two each),
# from AutoGluon's own prediction times on Adult on the reference machine (2 cores), rounded
# up: coarse, and the training rows are sampled when they would not fit (training_scores).
RESERVE_FIXED_SECONDS = 1.5
PREDICT_SECONDS_PER_ROW = {
    "GBM": 25e-6,
    "CAT": 4e-6,
    "XGB": 4e-6,
    "RF": 60e-6,
    "XT": 60e-6,
    "NN_TORCH": 15e-6,
    "KNN": 10e-6,
    "LR": 2e-6,
}
UNKNOWN_FAMILY_SECONDS_PER_ROW = 60e-6
# AutoGluon runs past the time_limit it is given: the model it is fitting when the time runs
# out finishes its current step, and the weighted ensemble is fitted after it.
OVERRUN_ALLOWANCE_SECONDS = 0.5
OVERRUN_ALLOWANCE_SHARE = 0.01
# AutoGluon always gets at least this share of the budget.
MIN_FIT_SHARE = 0.5
# The stated overhead (see the module's docstring and bench/README.md).
OVERHEAD_SECONDS = 5.0
OVERHEAD_SHARE = 0.05
# Metrics on the training rows are an over-fitting check, not the model's score: when
# predicting every training row would run past the budget, they are computed on a sample of
# rows (at least this many), and result.json says how many.
MIN_TRAINING_METRIC_ROWS = 5000
# Sampling is a safety net for a reserve far off the mark, not a routine: all rows unless
# predicting them would run past the budget by more than half the stated overhead.
TRAINING_METRIC_SLACK = 0.5
# What must be left after the training metrics: trimming, saving, upload, report.
AFTER_TRAINING_METRICS_SECONDS = 1.0


def _launched_as_stage() -> bool:
    """Was this process started to run one stage (`fairpilot-job`, `python -m ...cli`)?"""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "fairpilot_jobs.cli":
        return True
    return Path(sys.argv[0] if sys.argv else "").name == "fairpilot-job"


def _process_age() -> float | None:
    """Seconds since this process started, or None when it cannot be told."""
    try:
        import psutil

        age = time.time() - psutil.Process().create_time()
    except Exception:  # no psutil, or no /proc: start the clock at the stage call instead
        return None
    return age if 0 <= age < 3600 else None


class StageClock:
    """Seconds since the stage started, and the plan that keeps it within its budget."""

    def __init__(self, budget_seconds: float, origin: float | None = None) -> None:
        self.budget = float(budget_seconds)
        now = time.monotonic()
        if origin is not None:
            self.origin, self.origin_kind = origin, "given"
        else:
            age = _process_age() if _launched_as_stage() else None
            if age is None:
                self.origin, self.origin_kind = now, "stage call"
            else:
                self.origin, self.origin_kind = now - age, "process start"
        self.marks: dict[str, float] = {}
        self.reserve = 0.0
        self.fit_limit: float | None = None
        self.planned_overrun = 0.0
        self.training_metric_rows: int | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.origin

    def left(self) -> float:
        return self.budget - self.elapsed()

    def mark(self, name: str) -> float:
        """Remember the elapsed time at a named point of the stage; returns it."""
        self.marks[name] = self.elapsed()
        return self.marks[name]

    def plan_fit(self, train_rows: int, test_rows: int, keys: Iterable[str]) -> float:
        """AutoGluon's time_limit: the budget left, less the reserve for the post-fit work."""
        self.reserve = reserve_seconds(train_rows, test_rows, keys, self.budget)
        available = self.left() - self.reserve
        floor = MIN_FIT_SHARE * self.budget
        limit = max(available, floor)
        self.planned_overrun = max(0.0, floor - available)
        self.fit_limit = round(limit, 1)
        if self.planned_overrun:
            log.warning(
                "budget %.0f s: start-up took %.1f s and the post-fit reserve is %.1f s, which "
                "leaves AutoGluon %.1f s; it gets %.1f s, so the stage will overrun by about "
                "%.1f s",
                self.budget,
                self.elapsed(),
                self.reserve,
                available,
                limit,
                self.planned_overrun,
            )
        return self.fit_limit

    def rows_affordable(self, rows: int, seconds_per_row: float, after: float) -> int:
        """How many of `rows` can be predicted at `seconds_per_row` and still leave `after`
        seconds, allowing half the stated overhead: all of them when they fit, never fewer
        than MIN_TRAINING_METRIC_ROWS."""
        if seconds_per_row <= 0:
            return rows
        seconds = self.left() - after + TRAINING_METRIC_SLACK * overhead_seconds(self.budget)
        affordable = int(seconds / seconds_per_row)
        return min(rows, max(affordable, MIN_TRAINING_METRIC_ROWS))

    def summary(self) -> dict[str, Any]:
        """The figures result.json carries under `timing`."""
        total = self.elapsed()
        startup = self.marks.get("start", 0.0)
        fit_start = self.marks.get("fitStart", startup)
        fit_end = self.marks.get("fitEnd", fit_start)
        return {
            "budgetSeconds": self.budget,
            "clockStartedAt": self.origin_kind,
            "startupSeconds": round(startup, 2),
            "prepareSeconds": round(fit_start - startup, 2),
            "reserveSeconds": round(self.reserve, 2),
            "autogluonTimeLimitSeconds": self.fit_limit,
            "fitSeconds": round(fit_end - fit_start, 2),
            "postFitSeconds": round(total - fit_end, 2),
            "totalSeconds": round(total, 2),
            "plannedOverrunSeconds": round(self.planned_overrun, 2),
            "allowedOverheadSeconds": round(overhead_seconds(self.budget), 2),
            "withinBudget": total <= self.budget,
            "trainingMetricRows": self.training_metric_rows,
        }


def reserve_seconds(train_rows: int, test_rows: int, keys: Iterable[str], budget: float) -> float:
    """Seconds kept back from AutoGluon for the work after the fit."""
    costs = [PREDICT_SECONDS_PER_ROW.get(k, UNKNOWN_FAMILY_SECONDS_PER_ROW) for k in keys] or [0.0]
    return (
        RESERVE_FIXED_SECONDS
        + sum(costs) * max(test_rows, 0)
        + max(costs) * max(train_rows, 0)
        + OVERRUN_ALLOWANCE_SECONDS
        + OVERRUN_ALLOWANCE_SHARE * budget
    )


def overhead_seconds(budget: float) -> float:
    """The stated overhead over the budget the whole stage stays within."""
    return max(OVERHEAD_SECONDS, OVERHEAD_SHARE * budget)


# -- the post-fit work, lean: each row is predicted once ------------------------------------

PROBE_ROWS = 1000


def leaderboard_on(
    predictor: Any, test: Any | None
) -> tuple[Any, dict[str, float] | None, Any | None]:
    """The leaderboard and, with a test set, every model's test score, the best model's
    metrics and its predictions on the test set (probabilities where it has them), from one
    prediction pass over the test set (AutoGluon's `leaderboard(test)` followed by
    `evaluate(test)` predicts it twice with the best model and its members)."""
    board = predictor.leaderboard(silent=True)
    if test is None:
        return board, None, None
    truth = test[predictor.label]
    predictions = (
        predictor.predict_proba_multi(test)
        if predictor.can_predict_proba
        else predictor.predict_multi(test)
    )
    metric = predictor.eval_metric.name
    scores = {
        model: predictor.evaluate_predictions(
            truth, predicted, silent=True, auxiliary_metrics=False
        ).get(metric)
        for model, predicted in predictions.items()
    }
    board = board.assign(score_test=board["model"].map(scores))
    best = predictor.evaluate_predictions(
        truth, predictions[predictor.model_best], silent=True, auxiliary_metrics=True
    )
    return board, best, predictions[predictor.model_best]


def training_scores(predictor: Any, frame: Any, clock: StageClock) -> dict[str, Any]:
    """AutoGluon's metrics on the training rows: all of them when predicting them fits in
    the budget (a probe of PROBE_ROWS rows tells the cost), else a seeded sample."""
    rows = len(frame)
    if rows > 10 * PROBE_ROWS:
        probe = frame.iloc[:PROBE_ROWS]
        started = time.monotonic()
        if predictor.can_predict_proba:
            predictor.predict_proba(probe)
        else:
            predictor.predict(probe)
        per_row = (time.monotonic() - started) / PROBE_ROWS
        rows = clock.rows_affordable(rows, per_row, after=AFTER_TRAINING_METRICS_SECONDS)
    clock.training_metric_rows = rows
    sample = frame
    if rows < len(frame):
        log.info(
            "training metrics on %d of %d rows: all would not fit the budget", rows, len(frame)
        )
        sample = frame.sample(n=rows, random_state=0)
    return predictor.evaluate(sample, silent=True, auxiliary_metrics=True)
