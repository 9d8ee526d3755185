"""What became of each model family the spec asked for: trained, skipped (and why) or failed.

AutoGluon tries the families it is given and carries on when one does not work out, and a
family can end with nothing to show in three ways that its leaderboard does not tell apart
from never having been asked for. Each state is read from the most reliable source there is:

- trained: the trainer's own models (their class, hence their family), with the validation
  and test scores of the leaderboard;
- failed, or skipped while fitting: the trainer's failure records (`model_failures()`: the
  exception's type and message). Some exceptions mean the model was not possible here rather
  than broken (out of time while fitting, not enough memory, no GPU, a package not installed,
  no usable feature): those are reported as skipped, with the exception kept;
- skipped before fitting for lack of time, and skipped by a fit constraint: AutoGluon keeps no
  record of the first (it logs "Skipping X due to lack of time remaining." at level 15, below
  any verbosity people run with), so `FitLog` listens to the trainer's logger during the fit;
  the second is in the trainer's `_models_skipped_by_constraint`.

A family asked for that left no trace in any of them is still listed, skipped, with a reason
that says exactly that: a family is never silently absent.
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

TRAINED, SKIPPED, FAILED = "trained", "skipped", "failed"

# AutoGluon exceptions (autogluon.core.utils.exceptions) and builtins that mean "could not be
# trained here", not "broken": the reason each one gives.
SKIP_REASONS = {
    "InsufficientTime": "not enough time left in the budget to start it",
    "TimeLimitExceeded": "ran out of time while fitting (AutoGluon stopped it and kept nothing)",
    "NotEnoughMemoryError": "not enough memory for it (AutoGluon's estimate, before fitting)",
    "NotEnoughCudaMemoryError": "not enough GPU memory for it",
    "NoGPUError": "no GPU available for it",
    "ImportError": "a package it needs is not installed",
    "NoValidFeatures": "none of the features is usable by it",
    "NoStackFeatures": "no stack features to train it on",
    "NotValidStacker": "not allowed as a stacker",
}

_SKIPPED_FOR_TIME = re.compile(r"Skipping (\S+) due to lack of time remaining")
_FITTING = re.compile(r"Fitting model: (\S+) \.\.\.")


class FitLog(logging.Handler):
    """Captures what AutoGluon's trainer logs during a fit, including the level-15 records
    that say which models it skipped for lack of time, and passes on what the predictor's
    verbosity would have shown anyway, so the output does not change.

        with FitLog() as fit_log:
            predictor.fit(...)
        fit_log.skipped_for_time  # model names
    """

    def __init__(self) -> None:
        super().__init__(level=1)
        self.attempted: list[str] = []
        self.skipped_for_time: list[str] = []
        self._logger: logging.Logger | None = None
        self._saved: tuple[int, bool] = (logging.NOTSET, True)

    def __enter__(self) -> FitLog:
        from autogluon.tabular.trainer.abstract_trainer import AbstractTabularTrainer

        self._logger = logging.getLogger(AbstractTabularTrainer.__module__)
        self._saved = (self._logger.level, self._logger.propagate)
        self._logger.setLevel(15)
        self._logger.propagate = False
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._logger is not None:
            self._logger.removeHandler(self)
            self._logger.setLevel(self._saved[0])
            self._logger.propagate = self._saved[1]

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            return
        if match := _SKIPPED_FOR_TIME.search(message):
            self.skipped_for_time.append(match.group(1))
        elif match := _FITTING.search(message):
            self.attempted.append(match.group(1))
        self._forward(record)

    def _forward(self, record: logging.LogRecord) -> None:
        """Hand the record on as propagation would have, had the level let it through."""
        logger = self._logger.parent if self._logger is not None else None
        if logger is None or record.levelno < logger.getEffectiveLevel():
            return
        while logger is not None:
            for handler in logger.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
            if not logger.propagate:
                break
            logger = logger.parent


def _registered(keys: Iterable[str]) -> dict[str, Any]:
    """AutoGluon's model class of every hyperparameter key (GBM -> LGBModel) it knows."""
    from autogluon.tabular.registry import ag_model_registry

    out = {}
    for key in keys:
        try:
            out[key] = ag_model_registry.key_to_cls(key)
        except (KeyError, ValueError, AssertionError):
            continue
    return out


def autogluon_classes(keys: Iterable[str]) -> dict[str, str]:
    """AutoGluon's model class names (LGBModel, ...) -> their hyperparameter keys (GBM, ...)."""
    return {cls.__name__: key for key, cls in _registered(keys).items()}


def autogluon_names(keys: Iterable[str]) -> dict[str, str]:
    """AutoGluon's model name stems (LightGBM, ...) -> their hyperparameter keys."""
    return {cls.ag_name: key for key, cls in _registered(keys).items()}


def key_from_name(name: str, stems: dict[str, str]) -> str | None:
    """A model's key from its name (`LightGBMLarge_BAG_L1` -> GBM): its longest known stem."""
    for stem in sorted(stems, key=len, reverse=True):
        if name.startswith(stem):
            return stems[stem]
    return None


def _classify(exc_type: str) -> tuple[str, str | None]:
    """(state, reason) of a model whose fit raised an exception of this class name: the
    reason of its most specific class that means "not possible here", else failed."""
    from autogluon.core.utils import exceptions

    cls = getattr(exceptions, exc_type, None) or getattr(builtins, exc_type, None)
    lineage = [k.__name__ for k in cls.__mro__] if isinstance(cls, type) else [exc_type]
    for name in lineage:
        if name in SKIP_REASONS:
            return SKIPPED, SKIP_REASONS[name]
    return FAILED, None


def model_records(
    predictor: Any,
    fit_log: FitLog | None,
    leaderboard: Sequence[dict[str, Any]],
    keys: Iterable[str],
) -> list[dict[str, Any]]:
    """One record per model AutoGluon trained, skipped or failed, with its family's key.

    Call it before models are deleted from the predictor."""
    keys = list(keys)
    classes = autogluon_classes(keys)
    stems = autogluon_names(keys)
    trainer = predictor._trainer
    scores = {row["model"]: row for row in leaderboard}
    records: list[dict[str, Any]] = []
    seen: set[str] = set()

    for name in predictor.model_names():
        inner = trainer.get_model_attribute(name, "type_inner", default=None)
        key = getattr(inner, "ag_key", None)
        if key not in keys:
            key = classes.get(getattr(inner, "__name__", ""), key_from_name(name, stems))
        if key is None:  # the weighted ensemble: not a family of its own
            continue
        row = scores.get(name, {})
        records.append(
            {
                "key": key,
                "model": name,
                "state": TRAINED,
                "kept": True,
                "scoreValidation": row.get("scoreValidation"),
                "scoreTest": row.get("scoreTest"),
                "fitSeconds": row.get("fitSeconds"),
            }
        )
        seen.add(name)

    failures = predictor.model_failures()
    for failure in failures.to_dict(orient="records") if len(failures) else []:
        name = str(failure.get("model"))
        key = (
            classes.get(str(failure.get("child_model_type")))
            or classes.get(str(failure.get("model_type")))
            or key_from_name(name, stems)
        )
        if key is None or name in seen:
            continue
        exc_type = str(failure.get("exc_type") or "Exception")
        message = " ".join(str(failure.get("exc_str") or "").split())
        state, reason = _classify(exc_type)
        record: dict[str, Any] = {"key": key, "model": name, "state": state}
        if reason:
            record["reason"] = reason
        record["error"] = {"type": exc_type, "message": message[:2000]}
        seconds = failure.get("total_time")
        if isinstance(seconds, int | float):
            record["seconds"] = round(float(seconds), 2)
        records.append(record)
        seen.add(name)

    constrained = getattr(trainer, "_models_skipped_by_constraint", None) or {}
    for name, why in constrained.items():
        key = key_from_name(name, stems)
        if key is None or name in seen:
            continue
        records.append(
            {"key": key, "model": name, "state": SKIPPED, "reason": f"fit constraint: {why}"}
        )
        seen.add(name)

    # Fitted (AutoGluon said so) and neither kept nor failed: removed after the fit by presets
    # that keep only the best model (optimize_for_deployment), or fitted by a dynamic-stacking
    # trial. Trained all the same; it is not in the model that was saved.
    attempted = fit_log.attempted if fit_log is not None else []
    skipped_for_time = fit_log.skipped_for_time if fit_log is not None else []
    for name in attempted:
        key = key_from_name(name, stems)
        if key is None or name in seen or name in skipped_for_time:
            continue
        records.append(
            {
                "key": key,
                "model": name,
                "state": TRAINED,
                "kept": False,
                "reason": "trained, then not kept by AutoGluon (presets that keep only the best)",
            }
        )
        seen.add(name)

    for name in skipped_for_time:
        key = key_from_name(name, stems)
        if key is None or name in seen:
            continue
        records.append(
            {
                "key": key,
                "model": name,
                "state": SKIPPED,
                "reason": SKIP_REASONS["InsufficientTime"],
            }
        )
        seen.add(name)
    return records


def family_report(
    algorithms: Sequence[Any], keys_of: dict[Any, str], records: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every family asked for, in the order asked, with its state and its models."""
    families = []
    for algorithm in dict.fromkeys(algorithms):
        key = keys_of[algorithm]
        models = [{k: v for k, v in r.items() if k != "key"} for r in records if r["key"] == key]
        trained = [m for m in models if m["state"] == TRAINED]
        failed = [m for m in models if m["state"] == FAILED]
        if trained:
            state = TRAINED
        elif failed:
            state = FAILED
        else:
            state = SKIPPED
        family: dict[str, Any] = {
            "family": str(algorithm),
            "autogluonKey": key,
            "state": state,
            "reason": None if trained else _family_reason(models),
            "models": models,
        }
        if trained:
            best = max(
                (m for m in trained if m.get("scoreValidation") is not None),
                key=lambda m: m["scoreValidation"],
                default=None,
            )
            family["bestModel"] = best["model"] if best else trained[0]["model"]
            family["bestScoreValidation"] = best["scoreValidation"] if best else None
            notes = []
            others = [m for m in models if m["state"] != TRAINED]
            if others:
                notes.append(
                    f"{len(trained)} of {len(models)} models trained; " + _family_reason(others)
                )
            if not any(m.get("kept", True) for m in trained):
                notes.append("none of its models is in the saved predictor (not kept by AutoGluon)")
            if notes:
                family["note"] = "; ".join(notes)
        families.append(family)
    return families


def _family_reason(models: Sequence[dict[str, Any]]) -> str:
    if not models:
        return (
            "AutoGluon recorded no fit, failure or skip for this family: it never reached it "
            "(the time budget ran out first, or it does not apply to this problem type)"
        )
    parts = []
    for m in models:
        why = m.get("reason") or ""
        error = m.get("error")
        if error:
            detail = f"{error['type']}: {error['message']}" if error["message"] else error["type"]
            why = f"{why} ({detail})" if why else detail
        parts.append(f"{m['model']}: {why}")
    return "; ".join(parts)


def summary_line(families: Sequence[dict[str, Any]]) -> str:
    """One line for logs and error messages: `lightgbm trained, catboost skipped (...)`."""
    return ", ".join(
        f"{f['family']} {f['state']}" + (f" ({f['reason']})" if f.get("reason") else "")
        for f in families
    )
