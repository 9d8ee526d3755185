"""A TrainingRun: the model, its scores and fairness in the status; the `ValidationPassed`,
`FairnessGatesPassed` and `ProductionReady` conditions; the seed's `model.uploaded` event; an
`ai_models` document (seed 004's schema) per run."""

from __future__ import annotations

from typing import Any

from fairpilot.api.kinds import TRAINING_RUN
from fairpilot.api.results import StageResult, TrainingResult
from fairpilot.events.outbound import Event, dataset_id_of, model_of
from fairpilot.events.payloads import ModelUploaded
from fairpilot.events.topics import Topics
from fairpilot.kinds.base import MODELS, Condition, KindBehaviour, ReadJson, Succeeded, Write
from fairpilot.kinds.fairness import (
    fairness_condition,
    fairness_line,
    fairness_of,
    mitigation_of,
    project_fairness,
)


def _score(result: TrainingResult, split: str) -> float | None:
    """The eval metric on one split (validation: what the best model won by; test)."""
    return result.metrics.get(split, {}).get(result.eval_metric)


class TrainingRunBehaviour(KindBehaviour):
    kind = TRAINING_RUN
    names_a_model = True

    def status(self, result: StageResult) -> dict[str, Any]:
        assert isinstance(result, TrainingResult)
        model, validation = result.model, result.validation
        status: dict[str, Any] = {
            "bestModel": result.best_model.name,
            "evalMetric": result.eval_metric,
            "bestScore": _score(result, "validation"),
            "validationScore": _score(result, "validation"),
            "testScore": _score(result, "test"),
            "modelUri": model.uri,
            # What explain and bias check the model's files against (fairpilot_jobs.model_digest).
            "modelDigest": result.model_digest or model.digest,
            "modelSizeMb": model.size_mb,
            # Unchecked is not passed: no threshold, no verdict.
            "validationPassed": validation.passed if validation.checked else None,
            "productionReady": result.production_ready.ready if result.production_ready else None,
            # Always set (None clears a previous run's): the status is merge-patched.
            "fairness": project_fairness(result.fairness),
            "mitigation": mitigation_of(result),
        }
        metadata = model.metadata
        # Fields set (extras included): an empty `metadata: {}` sets nothing, as before.
        if metadata is not None and metadata.model_fields_set:
            custom = metadata.custom_metadata
            status |= {
                "modelId": metadata.model_id,
                "modelVersion": metadata.version,
                "modelType": metadata.model_type,
                "framework": metadata.framework,
                "frameworkDetail": custom.framework if custom else None,
                "algorithm": metadata.algorithm,
                "accuracy": {
                    "training": metadata.training_accuracy,
                    "validation": metadata.validation_accuracy,
                    "test": metadata.test_accuracy,
                },
            }
        return status

    def conditions(self, result: StageResult, status: dict[str, Any]) -> list[Condition]:
        assert isinstance(result, TrainingResult)
        validation = result.validation
        validated: Condition
        if validation.checked:
            passed = bool(validation.passed)
            validated = (
                "ValidationPassed",
                passed,
                "ThresholdMet" if passed else "ThresholdMissed",
                validation.message or "",
            )
        else:
            validated = (
                "ValidationPassed",
                None,
                "NotChecked",
                "no validationThreshold was set: the model was not validated",
            )
        fair = fairness_condition(status.get("fairness"))
        ready = result.production_ready
        if ready is None:
            return [validated, fair]
        reason = "AllGatesPassed" if ready.ready else (ready.reason or "GateFailed")
        return [validated, fair, ("ProductionReady", ready.ready, reason, ready.message or "")]

    def summary(self, status: dict[str, Any]) -> str:
        scores = [
            f"{split} {value:.4f}"
            for split, value in (
                ("validation", status.get("validationScore")),
                ("test", status.get("testScore")),
            )
            if value is not None
        ]
        shown = ", ".join(scores) or "no score"
        version = f" {status['modelVersion']}" if status.get("modelVersion") else ""
        line = f"{status.get('bestModel')}{version}: {status.get('evalMetric')} {shown}"
        fairness = fairness_line(status.get("fairness"))
        return f"{line}; {fairness}" if fairness else line

    def result_event_ids(self, status: dict[str, Any], run: str) -> list[str]:
        return [f"model.uploaded/{run}"]

    def result_events(self, done: Succeeded, topics: Topics, stamp: int) -> list[Event]:
        status = done.status
        model_id, version = model_of(self.kind, done.resource, done.get)
        accuracy = status.get("accuracy") or {}
        fairness = fairness_of(status)
        payload = ModelUploaded(
            event_id=f"model_uploaded_{model_id}_{stamp}",
            timestamp=done.finished,
            user_id=done.user,
            model_id=model_id,
            dataset_id=dataset_id_of(self.kind, done.resource, done.get),
            version=version,
            framework=status.get("framework") or "other",
            framework_detail=status.get("frameworkDetail"),
            model_type=status.get("modelType"),
            algorithm=status.get("algorithm") or status.get("bestModel"),
            model_size_mb=status.get("modelSizeMb"),
            training_accuracy=accuracy.get("training"),
            validation_accuracy=accuracy.get("validation"),
            test_accuracy=accuracy.get("test"),
            eval_metric=status.get("evalMetric"),
            best_score=status.get("bestScore"),
            validation_passed=status.get("validationPassed"),
            validation_score=status.get("validationScore"),
            test_score=status.get("testScore"),
            production_ready=status.get("productionReady"),
            model_uri=status.get("modelUri"),
            report_uri=done.first_report,
            fairness=fairness,
            fairness_gates_passed=fairness.gates_passed if fairness else None,
            mitigation=status.get("mitigation"),
            namespace=done.meta["namespace"],
            resource=done.meta["name"],
        )
        key = f"{done.user}_{model_id}"
        return [Event(f"model.uploaded/{done.run}", topics.automl, key, payload.to_json())]

    def records(self, done: Succeeded, common: dict[str, Any], read_json: ReadJson) -> list[Write]:
        status = done.status
        # Seed 004's schema, exactly as the train stage wrote it next to the model.
        metadata = read_json(f"{status.get('outputUri') or ''}/model_metadata.json") or {}
        # The same fairness brief as the model.uploaded event's.
        fairness = fairness_of(status)
        document = {
            **metadata,
            **common,
            "model_uri": status.get("modelUri"),
            "eval_metric": status.get("evalMetric"),
            "best_score": status.get("bestScore"),
            "validation_score": status.get("validationScore"),
            "test_score": status.get("testScore"),
            "reports": done.reports,
            "fairness": fairness.to_json() if fairness else None,
            "fairness_gates_passed": fairness.gates_passed if fairness else None,
            "mitigation": status.get("mitigation"),
        }
        return [(MODELS, f"{done.meta['uid']}-{done.run}", document)]
