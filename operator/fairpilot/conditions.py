"""Status conditions in Kubernetes API conventions, and projecting a stage's result into status.

Pure functions: the operator calls them with what it read and patches what they return.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from fairpilot.api.kinds import Kind
from fairpilot.api.results import (
    BiasResult,
    DecisionsOutcome,
    ExplanationResult,
    FairnessResult,
    FairnessSummary,
    FeatureFairness,
    ProfileResult,
    StageError,
    StageResult,
    TrainingResult,
)
from fairpilot.api.status import MAX_COLUMN_NAMES, MAX_FAIRNESS_FEATURES, MAX_FAIRNESS_GATES
from fairpilot.api.validation import describe


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
    transition: str | None
    if previous is None or previous.get("status") != value:
        transition = at or now()
    else:
        transition = previous.get("lastTransitionTime")
    condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:4096],
        "lastTransitionTime": transition,
        "observedGeneration": generation,
    }
    return [c for c in conditions if c.get("type") != type_] + [condition]


class InvalidResult(ValueError):
    """A stage's result.json that its kind's model (api.results) refuses: the operator cannot
    project it, and says which field is wrong rather than guess."""

    reason = "InvalidResult"


def parse_result(kind: Kind, result: StageResult | Mapping[str, Any]) -> StageResult:
    """`result` as its kind's result model; InvalidResult, naming the field, if it is not one."""
    if isinstance(result, kind.result):
        return result
    if not isinstance(result, Mapping):
        raise InvalidResult(
            f"the {kind.stage} stage's result.json holds a JSON {type(result).__name__}, "
            "not an object"
        )
    try:
        return kind.result.model_validate(result)
    except ValidationError as exc:
        raise InvalidResult(
            f"the {kind.stage} stage's result.json is not what this operator reads: {describe(exc)}"
        ) from exc


def _training(result: TrainingResult | Mapping[str, Any]) -> TrainingResult:
    # Callers that hold a raw train result (tests, tools) get it parsed here.
    return result if isinstance(result, TrainingResult) else TrainingResult.model_validate(result)


def _score(result: TrainingResult, split: str) -> float | None:
    """The eval metric on one split (validation: what the best model won by; test)."""
    return result.metrics.get(split, {}).get(result.eval_metric)


# The measures of a feature's summary the status keeps (result.json `fairness`, per feature).
FAIRNESS_MEASURES = (
    "groupsCompared",
    "groupsTooSmall",
    "disparateImpact",
    "disparateImpactInterval",
    "statisticalParityDifference",
    "statisticalParityDifferenceInterval",
    "equalOpportunityDifference",
    "equalizedOddsDifference",
    "lowestSelectionGroup",
    "highestSelectionGroup",
)
MAX_GROUP_NAME = 256  # a group name is a value of the data: any length
MAX_GATE_MESSAGE = 1024


def _label_text(value: Any) -> str | None:
    """A label as text, as JSON writes it (`true`, `1`, `>50K`)."""
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _measures(name: str, summary: FairnessSummary | None) -> dict[str, Any]:
    found = summary.model_dump(by_alias=True) if summary is not None else {}
    out: dict[str, Any] = {"name": str(name)[:MAX_GROUP_NAME]}
    for key in FAIRNESS_MEASURES:
        value = found.get(key)
        if key.endswith("Group") and value is not None:
            value = str(value)[:MAX_GROUP_NAME]
        out[key] = value
    return out


def _summaries(found: dict[str, FeatureFairness]) -> list[dict[str, Any]]:
    return [_measures(name, feature.summary) for name, feature in found.items()][
        :MAX_FAIRNESS_FEATURES
    ]


def _outcome(found: DecisionsOutcome | None) -> list[dict[str, Any]]:
    features = found.features if found is not None else {}
    return [_measures(name, summary) for name, summary in features.items()][:MAX_FAIRNESS_FEATURES]


def project_fairness(
    fairness: FairnessResult | Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The status' brief of a train result's `fairness`: the summary measures per feature and
    intersection, and the gates; not the per-group tables (a feature may have 10,000 groups).

    Every key is always there (None when it does not apply): the status is written by merge
    patch, so a key left out would keep the previous run's value. Lists, not maps keyed by
    feature, for the same reason (and Kubernetes' API conventions).
    """
    if fairness is None:
        return None
    if not isinstance(fairness, FairnessResult):
        fairness = FairnessResult.model_validate(fairness)
    measured = fairness.measured
    brief: dict[str, Any] = {
        "measured": measured,
        "message": None if measured else (fairness.message or "")[:MAX_GATE_MESSAGE],
        "split": None,
        "rows": None,
        "positiveLabel": None,
        "minGroupSize": None,
        "features": None,
        "intersections": None,
        "thresholds": None,
        "reweighing": None,
        "gates": None,
        "gatesChecked": None,
        "gatesFailed": None,
        "gatesPassed": None,
    }
    if not measured:
        return brief
    gates = fairness.gates
    failed = [g for g in gates if not g.passed]
    shown = (failed + [g for g in gates if g.passed])[:MAX_FAIRNESS_GATES]
    brief |= {
        "split": fairness.split,
        "rows": fairness.rows,
        "positiveLabel": _label_text(fairness.positive_label),
        "minGroupSize": fairness.min_group_size,
        "features": _summaries(fairness.features),
        "intersections": _summaries(fairness.intersections),
        "gates": [
            {
                "metric": gate.metric,
                "feature": gate.feature,
                "passed": gate.passed,
                "value": gate.value,
                "min": gate.min,
                "max": gate.max,
                "message": (gate.message or "")[:MAX_GATE_MESSAGE],
            }
            for gate in shown
        ],
        "gatesChecked": len(gates),
        "gatesFailed": len(failed),
        "gatesPassed": (not failed) if gates else None,
        "thresholds": _thresholds(fairness),
        "reweighing": _reweighing(fairness),
    }
    return brief


def _reweighing(fairness: FairnessResult) -> dict[str, Any] | None:
    compared = fairness.reweighing
    if compared is None:
        return None
    baseline, reweighed = compared.baseline, compared.reweighed
    return {
        "accuracyBaseline": baseline.accuracy if baseline else None,
        "accuracyReweighed": reweighed.accuracy if reweighed else None,
        "rocAucBaseline": baseline.roc_auc if baseline else None,
        "rocAucReweighed": reweighed.roc_auc if reweighed else None,
        "baseline": _outcome(baseline),
        "reweighed": _outcome(reweighed),
    }


def _thresholds(fairness: FairnessResult) -> dict[str, Any] | None:
    mitigation = fairness.mitigation
    if mitigation is None:
        return None
    held = mitigation.heldout
    before = fairness.before.features if fairness.before is not None else {}
    thresholds = dict(list(mitigation.thresholds.items())[:MAX_FAIRNESS_GATES])
    return {
        "feature": mitigation.feature,
        "thresholds": {str(k)[:MAX_GROUP_NAME]: v for k, v in thresholds.items()},
        "accuracyBefore": held.before.accuracy if held and held.before else None,
        "accuracyAfter": held.after.accuracy if held and held.after else None,
        "before": _summaries(before),
    }


def mitigation_of(result: TrainingResult | Mapping[str, Any]) -> str | None:
    """How the model was made fairer: reweighing, thresholds, both, or None."""
    result = _training(result)
    used = []
    if result.sample_weights:
        used.append("reweighing")
    if result.fairness is not None and result.fairness.mitigation is not None:
        used.append("thresholds")
    return " and ".join(used) or None


def project_result(kind: Kind, result: StageResult | Mapping[str, Any]) -> dict[str, Any]:
    """The status fields a kind shows, taken from its stage's result.json (parsed by the kind's
    result model; a raw result is parsed here, and one that does not parse raises
    InvalidResult)."""
    parsed = parse_result(kind, result)
    status: dict[str, Any] = {"reports": dict(parsed.reports)}
    if isinstance(parsed, ProfileResult):
        suggestion = parsed.suggestion
        status |= {
            "rows": parsed.rows,
            "columns": parsed.columns,
            "suggestedTarget": suggestion.target if suggestion else None,
            "suggestedTaskType": suggestion.task_type if suggestion else None,
            "warnings": len(parsed.warnings),
        }
        names = [p.name for p in parsed.column_profiles]
        if len(names) <= MAX_COLUMN_NAMES:
            status["columnNames"] = names
    elif isinstance(parsed, BiasResult):
        status |= {
            "biasDetected": parsed.bias_detected,
            "minDisparateImpact": parsed.summary.min_disparate_impact,
            "findings": parsed.findings[:50],
            "reweighingUri": parsed.mitigation.uri if parsed.mitigation else None,
        }
    elif isinstance(parsed, TrainingResult):
        model, validation = parsed.model, parsed.validation
        status |= {
            "bestModel": parsed.best_model.name,
            "evalMetric": parsed.eval_metric,
            "bestScore": _score(parsed, "validation"),
            "validationScore": _score(parsed, "validation"),
            "testScore": _score(parsed, "test"),
            "modelUri": model.uri,
            # What explain and bias check the model's files against (fairpilot_jobs.model_digest).
            "modelDigest": parsed.model_digest or model.digest,
            "modelSizeMb": model.size_mb,
            # Unchecked is not passed: no threshold, no verdict.
            "validationPassed": validation.passed if validation.checked else None,
            "productionReady": parsed.production_ready.ready if parsed.production_ready else None,
            # Always set (None clears a previous run's): the status is merge-patched.
            "fairness": project_fairness(parsed.fairness),
            "mitigation": mitigation_of(parsed),
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
    elif isinstance(parsed, ExplanationResult):
        explained = parsed.model
        status |= {
            "modelId": explained.model_id,
            "modelVersion": explained.version,
            "modelUri": explained.uri,
            "method": parsed.method,
            "topFeature": parsed.top_feature,
            "additivityError": parsed.local_accuracy.max_abs_error,
        }
    return status


def result_conditions(
    kind: Kind, status: dict[str, Any], result: StageResult | Mapping[str, Any]
) -> list[tuple[str, bool | None, str, str]]:
    """(type, status, reason, message) of the conditions a succeeded stage's result sets.

    status: what project_result made of `result`."""
    parsed = parse_result(kind, result)
    if isinstance(parsed, BiasResult):
        detected = bool(status.get("biasDetected"))
        findings = "; ".join(status.get("findings") or []) or "no threshold crossed"
        reason = "ThresholdCrossed" if detected else "WithinThresholds"
        return [("BiasDetected", detected, reason, findings)]
    if not isinstance(parsed, TrainingResult):
        return []
    validation = parsed.validation
    validated: tuple[str, bool | None, str, str]
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
    ready = parsed.production_ready
    if ready is None:
        return [validated, fair]
    reason = "AllGatesPassed" if ready.ready else (ready.reason or "GateFailed")
    return [validated, fair, ("ProductionReady", ready.ready, reason, ready.message or "")]


def fairness_condition(fairness: dict[str, Any] | None) -> tuple[str, bool | None, str, str]:
    """FairnessGatesPassed from the status' fairness brief (project_fairness).

    True: every fairness gate met; False: one missed, the message says which, on which groups,
    with the numbers. Unknown when there is no verdict (nothing measured, or no gate set), as
    for ValidationPassed: the condition is always there, so a previous run's is never left.
    """
    if not fairness:
        return (
            "FairnessGatesPassed",
            None,
            "NotMeasured",
            "spec.fairness names no sensitive features: the model's fairness was not measured",
        )
    if not fairness.get("measured"):
        said = fairness.get("message") or "the train stage did not say why"
        return ("FairnessGatesPassed", None, "NotMeasured", f"fairness not measured: {said}")
    gates = fairness.get("gates") or []
    if not gates:
        measured = ", ".join(
            f"{m['name']} {m['disparateImpact']:.3f}"
            for m in (fairness.get("features") or []) + (fairness.get("intersections") or [])
            if m.get("disparateImpact") is not None
        )
        shown = f"; disparate impact: {measured}" if measured else ""
        return (
            "FairnessGatesPassed",
            None,
            "NoGates",
            f"measured on {fairness.get('rows')} {fairness.get('split')} rows, but no "
            f"fairness.gates are set{shown}",
        )
    failed = [g for g in gates if not g.get("passed")]
    said = "; ".join(str(g.get("message") or "") for g in (failed or gates))
    if failed:
        count = fairness.get("gatesFailed") or len(failed)
        return (
            "FairnessGatesPassed",
            False,
            "GateFailed",
            f"{count} fairness gate(s) missed: {said}",
        )
    return ("FairnessGatesPassed", True, "GatesPassed", said)


def fairness_line(fairness: dict[str, Any] | None) -> str | None:
    """The model's fairness in a few words: the first feature's disparate impact, through each
    mitigation (unweighted baseline, reweighed, thresholded), and the gates' verdict."""
    if not fairness or not fairness.get("measured") or not fairness.get("features"):
        return None
    first = fairness["features"][0]
    name, shipped = first.get("name"), first.get("disparateImpact")
    if shipped is None:
        return None

    def of(measures: list[dict[str, Any]] | None) -> float | None:
        found = next((m for m in measures or [] if m.get("name") == name), {})
        return found.get("disparateImpact")

    steps = []
    reweighing, thresholds = fairness.get("reweighing") or {}, fairness.get("thresholds") or {}
    if of(reweighing.get("baseline")) is not None:
        steps.append(f"{of(reweighing.get('baseline')):.2f}")
    if of(reweighing.get("reweighed")) is not None and thresholds:
        steps.append(f"{of(reweighing.get('reweighed')):.2f} (reweighing)")
    elif of(thresholds.get("before")) is not None:
        steps.append(f"{of(thresholds.get('before')):.2f}")
    last = f"{shipped:.2f}" + (
        " (thresholds)" if thresholds else " (reweighing)" if reweighing else ""
    )
    line = f"{name} disparate impact {' -> '.join([*steps, last])} on {fairness.get('split')}"
    if fairness.get("gatesChecked"):
        line += "; fairness gates " + ("passed" if fairness.get("gatesPassed") else "failed")
    return line


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
        line = f"{status.get('bestModel')}{version}: {status.get('evalMetric')} {shown}"
        fairness = fairness_line(status.get("fairness"))
        return f"{line}; {fairness}" if fairness else line
    return f"{status.get('method')} SHAP; top feature {status.get('topFeature')}"


def stage_error(document: StageError | Mapping[str, Any] | None) -> StageError | None:
    """A stage's error.json (or the JSON of its termination message) as StageError; None when
    there is none or it says no usable reason: the caller then looks at the next source."""
    if document is None or isinstance(document, StageError):
        return document
    try:
        return StageError.model_validate(document)
    except ValidationError:
        return None


def failure(
    error: StageError | Mapping[str, Any] | None,
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
    said_by_stage = stage_error(error)
    if said_by_stage is not None:
        return said_by_stage.reason, said_by_stage.message
    terminated = terminated or {}
    if terminated.get("reason") == "OOMKilled":
        containers = (((spec.get("template") or {}).get("spec") or {}).get("containers")) or [{}]
        memory = ((containers[0].get("resources") or {}).get("limits") or {}).get("memory")
        shown = f" ({memory})" if memory else ""
        return "OOMKilled", (
            f"the stage used more memory than its limit{shown} and was killed; "
            "give it more with spec.resources.memory or use a sample of the data"
        )
    message = str(terminated.get("message") or "").strip()
    if message:
        import json

        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        # The stage writes the same StageError there (reason and message) for the kubelet.
        said_by_pod = stage_error(parsed) if isinstance(parsed, dict) else None
        if said_by_pod is not None:
            return said_by_pod.reason, said_by_pod.message
    code = terminated.get("exitCode")
    said = message.splitlines()[-1][:1000] if message else ""
    if code is not None:
        return "JobFailed", f"the stage exited with code {code}" + (f": {said}" if said else "")
    return "JobFailed", said or "the stage's Job failed without saying why"
