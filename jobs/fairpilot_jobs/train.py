"""The train stage: AutoGluon's TabularPredictor within a time budget, stored as a model artifact.

AutoGluon does the modelling; this module turns a spec into its arguments, checks the input
first so that a wrong label fails in a second rather than after the budget, and turns what
AutoGluon knows (leaderboard, validation data, ensemble weights) into the result the operator
and the model registry (seed 004) need.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairpilot import __version__, artifacts
from fairpilot.api import Algorithm, TaskType, TrainJobSpec
from fairpilot.api.fairness import FairnessOptions
from fairpilot.api.monitor import Baseline, FairnessBaseline
from fairpilot.errors import JobError
from fairpilot_jobs.classifier_curves import binary_curves
from fairpilot_jobs.fairness import gate_verdict
from fairpilot_jobs.model_digest import hash_file, write_manifest
from fairpilot_jobs.model_families import FitLog, family_report, model_records, summary_line
from fairpilot_jobs.models import METADATA_FILE
from fairpilot_jobs.tables import read_table, require_columns
from fairpilot_jobs.time_budget import StageClock, leaderboard_on, training_scores
from fairpilot_jobs.train_fairness import fairness_step

log = logging.getLogger(__name__)

MODEL_DIR = "model"
WEIGHT_COLUMN = "__fairpilot_sample_weight__"

# Our algorithm names -> AutoGluon's hyperparameter keys.
AUTOGLUON_KEYS = {
    Algorithm.LIGHTGBM: "GBM",
    Algorithm.CATBOOST: "CAT",
    Algorithm.XGBOOST: "XGB",
    Algorithm.RANDOM_FOREST: "RF",
    Algorithm.EXTRA_TREES: "XT",
    Algorithm.NEURAL_NETWORK: "NN_TORCH",
    Algorithm.KNN: "KNN",
    Algorithm.LINEAR: "LR",
}
# Short names people use for AutoGluon's long metric names (ARCHITECTURE.md: `rmse`).
METRIC_ALIASES = {
    "root_mean_squared_error": "rmse",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "median_absolute_error": "median_ae",
    "mean_absolute_percentage_error": "mape",
}


def problem_type(label: pd.Series, task: TaskType | None) -> str:
    """AutoGluon's problem type for a label, refusing labels that cannot be learnt."""
    non_null = label.dropna()
    distinct = int(non_null.nunique())
    if distinct < 2:
        raise JobError(
            "SingleClassLabel",
            f"label {label.name!r} has {distinct} distinct value(s); training needs at least two",
        )
    if task is TaskType.REGRESSION:
        if not pd.api.types.is_numeric_dtype(label) or pd.api.types.is_bool_dtype(label):
            example = non_null.astype(str).iloc[0]
            raise JobError(
                "NonNumericLabel",
                f"taskType is regression but label {label.name!r} is not numeric "
                f"(e.g. {example!r})",
            )
        return "regression"
    if task is TaskType.BINARY:
        if distinct != 2:
            raise JobError(
                "LabelMismatch",
                f"taskType is binary but label {label.name!r} has {distinct} values",
            )
        return "binary"
    if task is TaskType.MULTICLASS:
        return "multiclass"
    if task is TaskType.CLASSIFICATION:
        return "binary" if distinct == 2 else "multiclass"
    from fairpilot_jobs.profile import infer_task_type

    return str(infer_task_type(label)[0])


def hyperparameters(algorithms: list[Algorithm]) -> dict[str, Any]:
    """AutoGluon's default model zoo restricted to the chosen families, tuned variants kept."""
    from autogluon.tabular.configs.hyperparameter_configs import get_hyperparameter_config

    defaults = get_hyperparameter_config("default")
    chosen: dict[str, Any] = {}
    for algorithm in algorithms:
        key = AUTOGLUON_KEYS[algorithm]
        chosen[key] = defaults.get(key, {})
    return chosen


def sample_weights(spec: TrainJobSpec, frame: pd.DataFrame) -> np.ndarray | None:
    """Per-row weights from a bias job's reweighing table, or None without mitigation."""
    if spec.mitigation is None:
        return None
    from fairpilot_jobs.bias.labels import positive_mask
    from fairpilot_jobs.bias.reweighing import apply_reweighing

    document = artifacts.read_json(spec.mitigation.reweighing.uri)
    try:
        features = document["sensitiveFeatures"]
        table = document["table"]
        positive = document["positiveLabel"]
        target = document["target"]
    except (KeyError, TypeError) as exc:
        raise JobError(
            "InvalidReweighing",
            f"{spec.mitigation.reweighing.uri} is not a reweighing table written by a bias job",
        ) from exc
    if target != spec.target:
        raise JobError(
            "InvalidReweighing",
            f"the reweighing table is for target {target!r}, not {spec.target!r}",
        )
    require_columns(frame, {f: "sensitiveFeatures (of the reweighing table)" for f in features})
    return apply_reweighing(frame, table, features, positive_mask(frame[target], positive))


def natural_metrics(scores: dict[str, Any]) -> dict[str, float]:
    """AutoGluon reports errors negated (higher is better); give them their usual sign."""
    from autogluon.core.metrics import get_metric

    out = {}
    for name, value in scores.items():
        if value is None or not np.isfinite(value):
            continue
        with contextlib.suppress(ValueError, AttributeError):  # not a metric AutoGluon knows
            value = get_metric(name).convert_score_to_original(value)
        out[METRIC_ALIASES.get(name, name)] = float(value)
    return out


def validation_metrics(predictor: Any) -> tuple[dict[str, float], str, tuple[Any, Any] | None]:
    """All metrics on AutoGluon's own validation data (holdout, or out-of-fold when bagged),
    where they came from, and the true labels with the predictions they were computed from."""
    try:
        x_val, y_val = predictor.load_data_internal("val")
    except Exception:
        x_val, y_val = None, None
    if x_val is not None and y_val is not None and len(y_val):
        if predictor.problem_type == "regression":
            predicted = predictor.predict(x_val, transform_features=False)
        else:
            predicted = predictor.predict_proba(x_val, transform_features=False)
        truth = predictor.transform_labels(y_val, inverse=True)
        scores = predictor.evaluate_predictions(
            truth, predicted, silent=True, auxiliary_metrics=True
        )
        return natural_metrics(scores), "holdout", (truth, predicted)
    try:
        _, y_train = predictor.load_data_internal("train", return_X=False)
        oof = (
            predictor.predict_oof()
            if predictor.problem_type == "regression"
            else predictor.predict_proba_oof()
        )
        truth = predictor.transform_labels(y_train.loc[oof.index], inverse=True)
        scores = predictor.evaluate_predictions(truth, oof, silent=True, auxiliary_metrics=True)
        return natural_metrics(scores), "out-of-fold", (truth, oof)
    except Exception as exc:  # never fail a finished training over an extra figure
        log.warning("no validation metrics beyond the leaderboard: %s", exc)
        return {}, "none", None


def diagnostics(
    predictor: Any,
    test: tuple[Any, Any] | None,
    validation: tuple[Any, Any] | None,
    validation_source: str,
) -> dict[str, Any] | None:
    """A binary model's confusion matrix, ROC, precision-recall and calibration on the test
    split, else on the validation rows, from the predictions already made for the metrics."""
    if predictor.problem_type != "binary" or not predictor.can_predict_proba:
        return None
    split, pair = ("test", test) if test is not None else (validation_source, validation)
    if pair is None:
        return None
    truth, predicted = pair
    positive = predictor.positive_class
    if not hasattr(predicted, "columns") or positive not in predicted.columns:
        return None
    threshold = getattr(predictor, "decision_threshold", None)
    try:
        return binary_curves(
            truth,
            predicted[positive],
            positive,
            threshold=0.5 if threshold is None else float(threshold),
            split=split,
        )
    except Exception as exc:  # never fail a finished training over an extra figure
        log.warning("no classifier curves: %s", exc)
        return None


def verdict(
    spec: TrainJobSpec, metrics: dict[str, dict[str, float]], eval_metric: str
) -> dict[str, Any]:
    """Seed 003's validation against a threshold: does the model meet the bound?

    Without a threshold nothing is checked, and nothing passed: `passed` is None.
    """
    threshold = spec.validation_threshold
    if threshold is None:
        return {
            "checked": False,
            "passed": None,
            "message": "no validationThreshold set: the model was not validated",
        }
    name = METRIC_ALIASES.get(threshold.metric or eval_metric, threshold.metric or eval_metric)
    split = "test" if threshold.on == "test" and metrics.get("test") else "validation"
    value = metrics.get(split, {}).get(name)
    if value is None:
        known = sorted(metrics.get(split, {}))
        raise JobError(
            "UnknownMetric",
            f"validationThreshold.metric {name!r} was not computed on {split}; known: {known}",
        )
    passed = (threshold.min is None or value >= threshold.min) and (
        threshold.max is None or value <= threshold.max
    )
    bounds = " and ".join(
        f"{op} {bound!r}"
        for op, bound in ((">=", threshold.min), ("<=", threshold.max))
        if bound is not None
    )
    where = f"{split} split"
    if split != threshold.on:
        where += f" (on: {threshold.on} asked, but no test dataset was given)"
    return {
        "checked": True,
        "passed": passed,
        "metric": name,
        "split": split,
        "value": value,
        "min": threshold.min,
        "max": threshold.max,
        "message": (
            f"{name} on the {where} is {value!r}, which {'meets' if passed else 'misses'} the "
            f"bound {bounds}"
        ),
    }


def production_readiness(gates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ready only when every configured gate was checked on held-out data and passed; with no
    gate configured nothing vouches for the model, so it is not ready either."""
    configured = {name: gate for name, gate in gates.items() if gate.get("checked")}
    if not configured:
        return {
            "ready": False,
            "reason": "NoGates",
            "message": "no gate is configured (validationThreshold, fairness.gates): nothing "
            "vouches for this model, so it is not marked production-ready",
            "gates": gates,
        }
    failed = {name: gate for name, gate in configured.items() if not gate.get("passed")}
    if failed:
        return {
            "ready": False,
            "reason": "GateFailed",
            "message": "; ".join(f"{name}: {gate['message']}" for name, gate in failed.items()),
            "gates": gates,
        }
    return {
        "ready": True,
        "reason": "AllGatesPassed",
        "message": "; ".join(f"{name}: {gate['message']}" for name, gate in configured.items()),
        "gates": gates,
    }


def model_location(spec: TrainJobSpec, store: artifacts.ArtifactStore) -> artifacts.ArtifactStore:
    """Where the model goes, claimed for this run before any training: the registry folder of
    its (model id, version) when the operator gives one, else `<output>/model`."""
    if spec.model_output is None:
        return artifacts.ArtifactStore(store.root.child(MODEL_DIR))
    target = artifacts.ArtifactStore(spec.model_output.uri)
    try:
        target.claim(store.run_id, "model version")
    except JobError as exc:
        raise JobError(
            "ModelVersionTaken",
            f"model {spec.model_id!r} version {spec.version!r} already exists at "
            f"{target.uri()}; one (model id, version) is one model: give another version",
        ) from exc
    return target


def ensemble_description(predictor: Any) -> dict[str, Any]:
    """The best model and, for an ensemble, its members and weights."""
    best = predictor.model_best
    info = predictor.model_info(best)  # info()["model_info"][best], without every model's
    weights: dict[str, float] = {}
    for child in (info.get("children_info") or {}).values():
        weights.update({k: float(v) for k, v in (child.get("model_weights") or {}).items()})
    return {"name": best, "type": info.get("model_type"), "members": weights}


def file_records(model_dir: Path, base_uri: str) -> list[dict[str, Any]]:
    records = []
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(model_dir).as_posix()
        sha, size = hash_file(path)
        records.append(
            {
                "filename": path.name,
                "file_path": f"{base_uri.rstrip('/')}/{relative}",
                "file_size": size,
                "file_type": path.suffix.lstrip(".") or "bin",
                "file_hash": sha,
                "content_type": "application/json"
                if path.suffix == ".json"
                else "application/octet-stream",
                "is_primary": relative == "predictor.pkl",
                "description": "AutoGluon TabularPredictor" if relative == "predictor.pkl" else "",
            }
        )
    return records


def gpu_plan(spec: TrainJobSpec) -> dict[str, Any]:
    """GPUs are used when asked for and present; asking without CUDA trains on CPU, said aloud."""
    import torch

    cuda = bool(torch.cuda.is_available())
    count = torch.cuda.device_count() if cuda else 0
    used = min(spec.resources.gpu, count)
    plan: dict[str, Any] = {"requested": spec.resources.gpu, "cudaAvailable": cuda, "used": used}
    if used:
        plan["devices"] = [torch.cuda.get_device_name(i) for i in range(used)]
    if spec.resources.gpu and not cuda:
        log.warning(
            "%d GPU(s) requested but CUDA is not available: training on CPU", spec.resources.gpu
        )
    return plan


def run_train(spec: TrainJobSpec, store: artifacts.ArtifactStore) -> dict[str, Any]:
    # The budget covers the whole stage, from its process starting (fairpilot_jobs.time_budget).
    clock = StageClock(spec.time_limit_seconds)
    clock.mark("start")
    from autogluon.tabular import TabularPredictor

    from fairpilot_jobs.reports.html import pipeline_links
    from fairpilot_jobs.reports.training_report import build_training_report

    # The model's (id, version) is claimed first: a version taken fails now, not after training.
    model_store = model_location(spec, store)
    frame = read_table(spec.dataset)
    named = {spec.target: "target", **{c: "excludedColumns" for c in spec.excluded_columns}}
    require_columns(frame, named)
    test = None
    if spec.test_dataset is not None:
        test = read_table(spec.test_dataset, what="test dataset")
        require_columns(test, {spec.target: "target"}, what="test dataset")
    dropped = int(frame[spec.target].isna().sum())
    fairness_options = fairness_for(spec)
    if fairness_options is not None:
        # Measured on held-out rows as they were read: a sensitive column may well be one of
        # excludedColumns (not learnt from, but the model is still judged on its groups).
        require_columns(
            frame, {c: "fairness.sensitiveFeatures" for c in fairness_options.sensitive_features}
        )
    raw = frame
    frame = frame[frame[spec.target].notna()].drop(columns=spec.excluded_columns)
    kind = problem_type(frame[spec.target], spec.task_type)
    weights = sample_weights(spec, frame)
    if weights is not None:
        frame = frame.assign(**{WEIGHT_COLUMN: weights})
    raw_test = None
    if test is not None:
        raw_test = test = test[test[spec.target].notna()]
        test = test.drop(columns=[c for c in spec.excluded_columns if c in test.columns])
        if kind != "regression":
            unseen = set(test[spec.target].unique()) - set(frame[spec.target].unique())
            if unseen:
                raise JobError(
                    "LabelMismatch",
                    "test dataset has label values never seen in training: "
                    f"{sorted(map(str, unseen))[:10]}",
                )
    gpus = gpu_plan(spec)
    log.info(
        "training %s on %d rows, budget %d s, gpus %d",
        kind,
        len(frame),
        spec.time_limit_seconds,
        gpus["used"],
    )

    with tempfile.TemporaryDirectory(prefix="fairpilot-train-") as tmp:
        model_dir = Path(tmp) / MODEL_DIR
        # What is left of the budget, less a reserve for the work after the fit.
        time_limit = clock.plan_fit(
            len(frame),
            len(test) if test is not None else 0,
            [AUTOGLUON_KEYS[a] for a in dict.fromkeys(spec.algorithms)],
        )
        # Reweighing's cost and gain are shown against a model trained without the weights on
        # the same data: the fit time is split in two equal halves, so that the two compare
        # like for like (fairness.baseline: false keeps it all for the reweighed model).
        with_baseline = bool(
            weights is not None and fairness_options is not None and fairness_options.baseline
        )
        if with_baseline:
            time_limit /= 2
        log.info(
            "AutoGluon gets %.1f s%s: %.1f s spent since the stage started, %.1f s kept for after",
            time_limit,
            " (and as much for the unweighted baseline)" if with_baseline else "",
            clock.elapsed(),
            clock.reserve,
        )
        started = time.monotonic()
        clock.mark("fitStart")
        predictor = TabularPredictor(
            label=spec.target,
            problem_type=kind,
            eval_metric=spec.eval_metric,
            path=str(model_dir),
            sample_weight=WEIGHT_COLUMN if weights is not None else None,
            verbosity=1,
        )
        try:
            # FitLog hears which models AutoGluon skipped for lack of time (model_families).
            with FitLog() as fit_log:
                predictor.fit(frame, time_limit=time_limit, **fit_arguments(spec, gpus))
        except ValueError as exc:
            raise JobError("TrainingFailed", f"AutoGluon refused the data: {exc}") from exc
        fit_seconds = time.monotonic() - started
        baseline = None
        if with_baseline:
            baseline = TabularPredictor(
                label=spec.target,
                problem_type=kind,
                eval_metric=spec.eval_metric,
                path=str(Path(tmp) / "baseline"),
                verbosity=0,
            ).fit(
                frame.drop(columns=[WEIGHT_COLUMN]),
                time_limit=time_limit,
                **fit_arguments(spec, gpus),
            )
        clock.mark("fitEnd")
        if not predictor.model_names():
            records = model_records(predictor, fit_log, [], AUTOGLUON_KEYS.values())
            families = family_report(spec.algorithms, AUTOGLUON_KEYS, records)
            raise JobError(
                "TrainingFailed",
                f"no model finished within the time budget: {summary_line(families)}",
            )
        eval_metric = predictor.eval_metric.name
        val_metrics, val_source, val_predictions = validation_metrics(predictor)
        metrics: dict[str, dict[str, float]] = {"training": {}, "validation": val_metrics}
        # Every model scored on the test set in one prediction pass, the best one's metrics
        # taken from the same predictions.
        board, test_scores, test_predicted = leaderboard_on(predictor, test)
        if test_scores is not None:
            metrics["test"] = natural_metrics(test_scores)
        curves = diagnostics(
            predictor,
            (test[predictor.label], test_predicted)
            if test is not None and test_predicted is not None
            else None,
            val_predictions,
            val_source,
        )
        # Scored on the training rows themselves: the seed's `training_accuracy`, and the gap
        # to validation shows over-fitting; on a sample when all rows would not fit the budget.
        metrics["training"] = natural_metrics(training_scores(predictor, frame, clock))
        judged = verdict(spec, metrics, eval_metric)
        fairness, decision_thresholds = None, None
        if fairness_options is not None:
            measuring = time.monotonic()
            fairness, decision_thresholds = fairness_step(
                predictor, fairness_options, raw, raw_test, test, baseline
            )
            # What fairness costs in time (thresholds fitted, measures taken), beside the fit.
            fairness["seconds"] = round(time.monotonic() - measuring, 3)
        best = ensemble_description(predictor)
        families = family_report(
            spec.algorithms,
            AUTOGLUON_KEYS,
            model_records(predictor, fit_log, leaderboard_records(board), AUTOGLUON_KEYS.values()),
        )
        log.info("model families: %s", summary_line(families))
        # Keep only what the best model needs: smaller artifact, faster explain and predict.
        predictor.delete_models(models_to_keep="best", dry_run=False, delete_from_disk=True)
        predictor.save_space()

        size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
        model_uri = model_store.uri()
        ready = production_readiness(
            {"validationThreshold": judged, "fairness": gate_verdict(fairness)}
        )
        metadata = model_metadata(spec, kind, best, metrics, size, model_dir, model_uri, ready)
        metadata["custom_metadata"]["held_out"] = held_out(eval_metric, kind, metrics, fairness)
        if decision_thresholds is not None:
            # What ships is what was measured: models.predict applies them (and the digest
            # covers them, as every byte of the model).
            metadata["decision_thresholds"] = decision_thresholds
        (model_dir / METADATA_FILE).write_text(_dumps(metadata))
        # Last: the manifest of every file above (metadata included), whose digest the stages
        # that load the model check it against before unpickling anything (model_digest).
        manifest, digest = write_manifest(model_dir)
        # A retry of this run may find its first attempt's partial upload: files the manifest
        # does not list, which would make the stages refuse the model.
        model_store.clear_own_attempt()
        model_store.upload_dir(model_dir, "")

    leaderboard = leaderboard_records(board)
    result = {
        "problemType": kind,
        "evalMetric": METRIC_ALIASES.get(eval_metric, eval_metric),
        "rows": {
            "train": len(frame),
            "test": len(test) if test is not None else None,
            "droppedMissingLabel": dropped,
        },
        "sampleWeights": "reweighing" if weights is not None else None,
        "timeLimitSeconds": spec.time_limit_seconds,
        "fitSeconds": round(fit_seconds, 2),
        "timing": clock.summary(),
        "modelFamilies": families,
        "gpu": gpus,
        "bestModel": best,
        "leaderboard": leaderboard,
        "metrics": metrics,
        "validationSource": val_source,
        "validation": judged,
        "diagnostics": curves,
        "fairness": fairness,
        "productionReady": ready,
        "model": {
            "uri": model_uri,
            "sizeMb": round(size / 2**20, 3),
            "metadata": metadata,
            "digest": digest,
            "manifest": manifest,
        },
        # What the explain and bias stages check the model against (model.digest in their spec).
        "modelDigest": digest,
    }
    links = pipeline_links(spec.pipeline_index, store.root.child("report.html").uri, "Training")
    report = build_training_report(result, spec, links)
    result["reports"] = {"training": store.write_text("report.html", report, "text/html")}
    store.write_json("model_metadata.json", metadata)
    return result


def fit_arguments(spec: TrainJobSpec, gpus: dict[str, Any]) -> dict[str, Any]:
    """What `TabularPredictor.fit` is given besides the rows and the time, for the model and
    for the unweighted baseline alike."""
    return {
        "presets": str(spec.presets),
        "hyperparameters": hyperparameters(spec.algorithms),
        "num_gpus": gpus["used"],
        "ag_args_fit": {"random_seed": spec.seed} if spec.seed else None,
        "raise_on_no_models_fitted": False,
    }


def fairness_for(spec: TrainJobSpec) -> FairnessOptions | None:
    """What to measure the model's fairness on: none without sensitive features. A feature
    that a constraint or a gate names is measured too."""
    if spec.fairness is not None:
        named = [g.feature for g in [*spec.fairness.constraints, *spec.fairness.gates]]
        wanted = list(dict.fromkeys([*spec.fairness.sensitive_features, *filter(None, named)]))
        if wanted != spec.fairness.sensitive_features:
            spec = spec.model_copy(
                update={"fairness": spec.fairness.model_copy(update={"sensitive_features": wanted})}
            )
    if spec.fairness is None or not spec.fairness.sensitive_features:
        if spec.fairness is not None and spec.fairness.gates:
            raise JobError(
                "NoSensitiveFeatures",
                "fairness.gates are set but fairness.sensitiveFeatures is empty: name the "
                "columns whose groups the model is judged on",
            )
        return None
    return spec.fairness


def leaderboard_records(board: pd.DataFrame) -> list[dict[str, Any]]:
    columns = {
        "model": "model",
        "score_test": "scoreTest",
        "score_val": "scoreValidation",
        "fit_time": "fitSeconds",
        "pred_time_val": "predictSecondsValidation",
        "stack_level": "stackLevel",
    }
    present = [c for c in columns if c in board.columns]
    records = board[present].rename(columns=columns).to_dict(orient="records")
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
        for r in records
    ]


def model_metadata(
    spec: TrainJobSpec,
    kind: str,
    best: dict[str, Any],
    metrics: dict[str, dict[str, float]],
    size: int,
    model_dir: Path,
    model_uri: str,
    ready: dict[str, Any],
) -> dict[str, Any]:
    """Seed 004's model metadata schema, filled from the training run."""
    import autogluon.tabular

    now = datetime.now(UTC).isoformat()
    members = ", ".join(f"{name} {weight:.2f}" for name, weight in best["members"].items())
    accuracy_key = "accuracy" if kind != "regression" else "r2"
    return {
        "model_id": spec.model_id or "model",
        "user_id": spec.user_id,
        "name": spec.model_id or f"{spec.target} {kind} model",
        "description": f"AutoGluon {kind} model predicting {spec.target}",
        "version": spec.version or "v1",
        # Seed 004's values only (pytorch, tensorflow, sklearn, onnx, keras, huggingface,
        # other): AutoGluon is none of them; custom_metadata.framework says which it is.
        "framework": "other",
        "model_type": "regression" if kind == "regression" else "classification",
        "algorithm": f"{best['name']} ({members})" if members else best["name"],
        "files": file_records(model_dir, model_uri),
        "primary_file_path": f"{model_uri}/predictor.pkl",
        "model_size_mb": round(size / 2**20, 3),
        "training_dataset": spec.dataset.uri,
        "training_accuracy": metrics.get("training", {}).get(accuracy_key),
        "validation_accuracy": metrics.get("validation", {}).get(accuracy_key),
        "test_accuracy": metrics.get("test", {}).get(accuracy_key),
        "training_loss": None,
        "metrics": metrics,
        "python_version": platform.python_version(),
        "dependencies": [
            f"autogluon.tabular=={autogluon.tabular.__version__}",
            f"fairpilot=={__version__}",
        ],
        "hardware_requirements": "GPU" if spec.resources.gpu else "CPU",
        "tags": ["fairpilot", "autogluon", kind],
        "custom_metadata": {
            "framework": f"autogluon.tabular {autogluon.tabular.__version__}",
            "target": spec.target,
            "problem_type": kind,
            "best_model": best,
            "production_readiness": ready,
        },
        "created_at": now,
        "updated_at": now,
        "is_active": True,
        "is_production_ready": bool(ready["ready"]),
    }


def held_out(
    eval_metric: str,
    kind: str,
    metrics: dict[str, dict[str, float]],
    fairness: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the model did on held-out rows, in a ModelMonitor's baseline terms
    (`api.monitor.Baseline`, the figures its TrainingRun's status shows): kept in the model's
    own metadata, so that a monitor of this version, current or not, compares its windows with
    them (and the digest covers them, as every byte of the model)."""
    split = "test" if metrics.get("test", {}).get(eval_metric) is not None else "validation"
    features = (fairness or {}).get("features") or {}
    baseline = Baseline(
        eval_metric=eval_metric,
        score=metrics.get(split, {}).get(eval_metric),
        split=split,
        accuracy=metrics.get(split, {}).get("accuracy" if kind != "regression" else "r2"),
        positive_label=(fairness or {}).get("positiveLabel"),
        fairness=[
            FairnessBaseline(name=name, **_baseline_measures(measured.get("summary") or {}))
            for name, measured in list(features.items())[:16]
        ],
    )
    return baseline.model_dump(by_alias=True, mode="json", exclude_none=True)


def _baseline_measures(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "disparate_impact": summary.get("disparateImpact"),
        "statistical_parity_difference": summary.get("statisticalParityDifference"),
        "equal_opportunity_difference": summary.get("equalOpportunityDifference"),
    }


def _dumps(payload: Any) -> str:
    import json

    return json.dumps(payload, indent=2, default=str)
