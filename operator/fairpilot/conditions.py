"""Status conditions in Kubernetes API conventions, and projecting a stage's result into status.

Pure functions: the operator calls them with what it read and patches what they return.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fairpilot.api.kinds import Kind
from fairpilot.api.status import MAX_COLUMN_NAMES


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_of(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of that type in a status, if it has one."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == type_:
            return condition
    return None


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    at: str | None = None,
) -> list[dict[str, Any]]:
    """A new list with `type_` set; its transition time changes only when its status does."""
    value = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != value
    condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:4096],
        "lastTransitionTime": (at or now()) if changed else previous.get("lastTransitionTime"),
        "observedGeneration": generation,
    }
    return [c for c in conditions if c.get("type") != type_] + [condition]


def _score(result: dict[str, Any], split: str) -> float | None:
    """The eval metric on one split (validation: what the best model won by; test)."""
    metric = result.get("evalMetric")
    return ((result.get("metrics") or {}).get(split) or {}).get(metric)


def project_result(kind: Kind, result: dict[str, Any]) -> dict[str, Any]:
    """The status fields a kind shows, taken from its stage's result.json."""
    status: dict[str, Any] = {"reports": dict(result.get("reports") or {})}
    if kind.kind == "Dataset":
        suggestion = result.get("suggestion") or {}
        status |= {
            "rows": result.get("rows"),
            "columns": result.get("columns"),
            "suggestedTarget": suggestion.get("target"),
            "suggestedTaskType": suggestion.get("taskType"),
            "warnings": len(result.get("warnings") or []),
        }
        names = [p.get("name") for p in result.get("columnProfiles") or []]
        if len(names) <= MAX_COLUMN_NAMES and all(isinstance(n, str) for n in names):
            status["columnNames"] = names
    elif kind.kind == "BiasAnalysis":
        status |= {
            "biasDetected": result.get("biasDetected"),
            "minDisparateImpact": (result.get("summary") or {}).get("minDisparateImpact"),
            "findings": list(result.get("findings") or [])[:50],
            "reweighingUri": (result.get("mitigation") or {}).get("uri"),
        }
    elif kind.kind == "TrainingRun":
        model = result.get("model") or {}
        validation = result.get("validation") or {}
        status |= {
            "bestModel": (result.get("bestModel") or {}).get("name"),
            "evalMetric": result.get("evalMetric"),
            "bestScore": _score(result, "validation"),
            "validationScore": _score(result, "validation"),
            "testScore": _score(result, "test"),
            "modelUri": model.get("uri"),
            # What explain and bias check the model's files against (fairpilot_jobs.model_digest).
            "modelDigest": result.get("modelDigest") or model.get("digest"),
            "modelSizeMb": model.get("sizeMb"),
            # Unchecked is not passed: no threshold, no verdict.
            "validationPassed": validation.get("passed") if validation.get("checked") else None,
            "productionReady": (result.get("productionReady") or {}).get("ready"),
        }
        metadata = model.get("metadata") or {}
        if metadata:
            status |= {
                "modelId": metadata.get("model_id"),
                "modelVersion": metadata.get("version"),
                "modelType": metadata.get("model_type"),
                "framework": metadata.get("framework"),
                "frameworkDetail": (metadata.get("custom_metadata") or {}).get("framework"),
                "algorithm": metadata.get("algorithm"),
                "accuracy": {
                    split: metadata.get(f"{split}_accuracy")
                    for split in ("training", "validation", "test")
                },
            }
    elif kind.kind == "Explanation":
        model = result.get("model") or {}
        status |= {
            "modelId": model.get("modelId"),
            "modelVersion": model.get("version"),
            "modelUri": model.get("uri"),
            "method": result.get("method"),
            "topFeature": result.get("topFeature"),
            "additivityError": (result.get("localAccuracy") or {}).get("maxAbsError"),
        }
    return status


def result_conditions(
    kind: Kind, status: dict[str, Any], result: dict[str, Any]
) -> list[tuple[str, bool | None, str, str]]:
    """(type, status, reason, message) of the conditions a succeeded stage's result sets."""
    if kind.kind == "BiasAnalysis":
        detected = bool(status.get("biasDetected"))
        findings = "; ".join(status.get("findings") or []) or "no threshold crossed"
        reason = "ThresholdCrossed" if detected else "WithinThresholds"
        return [("BiasDetected", detected, reason, findings)]
    if kind.kind != "TrainingRun":
        return []
    validation = result.get("validation") or {}
    if validation.get("checked"):
        passed = bool(validation.get("passed"))
        validated = (
            "ValidationPassed",
            passed,
            "ThresholdMet" if passed else "ThresholdMissed",
            str(validation.get("message") or ""),
        )
    else:
        validated = (
            "ValidationPassed",
            None,
            "NotChecked",
            "no validationThreshold was set: the model was not validated",
        )
    ready = result.get("productionReady") or {}
    if "ready" not in ready:
        return [validated]
    reason = "AllGatesPassed" if ready["ready"] else str(ready.get("reason") or "GateFailed")
    return [validated, ("ProductionReady", bool(ready["ready"]), reason, ready.get("message", ""))]


def summary_message(kind: Kind, status: dict[str, Any]) -> str:
    """The one line `kubectl get -o wide` shows for a finished resource."""
    if kind.kind == "Dataset":
        rows, columns = status.get("rows"), status.get("columns")
        return f"{rows} rows, {columns} columns, target {status.get('suggestedTarget')}"
    if kind.kind == "BiasAnalysis":
        di = status.get("minDisparateImpact")
        verdict = "bias detected" if status.get("biasDetected") else "no bias detected"
        return f"{verdict}; lowest disparate impact {di:.3f}" if di is not None else verdict
    if kind.kind == "TrainingRun":
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
        return f"{status.get('bestModel')}{version}: {status.get('evalMetric')} {shown}"
    return f"{status.get('method')} SHAP; top feature {status.get('topFeature')}"


def failure(
    error: dict[str, Any] | None,
    terminated: dict[str, Any] | None,
    job: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """(reason, message) of a failed stage, from the most specific source that says.

    error: the stage's error.json. terminated: the last pod's `state.terminated` (exitCode,
    reason, message). job: the Job, whose own Failed condition says when Kubernetes stopped it.
    A stage that was killed (deadline, out of memory, a crash) writes no error.json, and the
    user must still learn which of these it was and what to change.
    """
    spec = (job or {}).get("spec") or {}
    for condition in ((job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("reason") == "DeadlineExceeded":
            seconds = spec.get("activeDeadlineSeconds")
            limit = f" of {seconds} s" if seconds else ""
            return "DeadlineExceeded", (
                f"the stage ran longer than its deadline{limit} and was stopped; a TrainingRun's "
                "deadline follows its timeLimitSeconds, other stages' the operator's "
                "jobs.activeDeadlineSeconds"
            )
    if error and error.get("reason"):
        return str(error["reason"]), str(error.get("message") or "")
    terminated = terminated or {}
    if terminated.get("reason") == "OOMKilled":
        containers = (((spec.get("template") or {}).get("spec") or {}).get("containers")) or [{}]
        limit = ((containers[0].get("resources") or {}).get("limits") or {}).get("memory")
        shown = f" ({limit})" if limit else ""
        return "OOMKilled", (
            f"the stage used more memory than its limit{shown} and was killed; "
            "give it more with spec.resources.memory or use a sample of the data"
        )
    message = str(terminated.get("message") or "").strip()
    if message:
        import json

        try:
            parsed = json.loads(message)
            if isinstance(parsed, dict) and parsed.get("reason"):
                return str(parsed["reason"]), str(parsed.get("message") or "")
        except ValueError:
            pass
    code = terminated.get("exitCode")
    said = message.splitlines()[-1][:1000] if message else ""
    if code is not None:
        return "JobFailed", f"the stage exited with code {code}" + (f": {said}" if said else "")
    return "JobFailed", said or "the stage's Job failed without saying why"
