"""Status conditions in Kubernetes API conventions, and projecting a stage's result into status.

Pure functions: the operator calls them with what it read and patches what they return.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fairpilot.api.kinds import Kind
from fairpilot.api.status import MAX_COLUMN_NAMES, MAX_FAIRNESS_FEATURES, MAX_FAIRNESS_GATES


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


def _score(result: dict[str, Any], split: str) -> float | None:
    """The eval metric on one split (validation: what the best model won by; test)."""
    metric = result.get("evalMetric")
    return ((result.get("metrics") or {}).get(split) or {}).get(metric)


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


def _measures(name: str, found: Any) -> dict[str, Any]:
    summary = (found.get("summary") if isinstance(found, dict) else None) or {}
    out: dict[str, Any] = {"name": str(name)[:MAX_GROUP_NAME]}
    for key in FAIRNESS_MEASURES:
        value = summary.get(key)
        if key.endswith("Group") and value is not None:
            value = str(value)[:MAX_GROUP_NAME]
        out[key] = value
    return out


def project_fairness(fairness: Any) -> dict[str, Any] | None:
    """The status' brief of a train result's `fairness`: the summary measures per feature and
    intersection, and the gates; not the per-group tables (a feature may have 10,000 groups).

    Every key is always there (None when it does not apply): the status is written by merge
    patch, so a key left out would keep the previous run's value. Lists, not maps keyed by
    feature, for the same reason (and Kubernetes' API conventions).
    """
    if not isinstance(fairness, dict):
        return None
    measured = bool(fairness.get("measured", True))
    brief: dict[str, Any] = {
        "measured": measured,
        "message": None if measured else str(fairness.get("message") or "")[:MAX_GATE_MESSAGE],
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
    gates = [g for g in fairness.get("gates") or [] if isinstance(g, dict)]
    failed = [g for g in gates if not g.get("passed")]
    shown = (failed + [g for g in gates if g.get("passed")])[:MAX_FAIRNESS_GATES]
    brief |= {
        "split": fairness.get("split"),
        "rows": fairness.get("rows"),
        "positiveLabel": _label_text(fairness.get("positiveLabel")),
        "minGroupSize": fairness.get("minGroupSize"),
        "features": [
            _measures(name, found) for name, found in (fairness.get("features") or {}).items()
        ][:MAX_FAIRNESS_FEATURES],
        "intersections": [
            _measures(name, found) for name, found in (fairness.get("intersections") or {}).items()
        ][:MAX_FAIRNESS_FEATURES],
        "gates": [
            {
                "metric": str(gate.get("metric")),
                "feature": gate.get("feature"),
                "passed": gate.get("passed"),
                "value": gate.get("value"),
                "min": gate.get("min"),
                "max": gate.get("max"),
                "message": str(gate.get("message") or "")[:MAX_GATE_MESSAGE],
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


def _reweighing(fairness: dict[str, Any]) -> dict[str, Any] | None:
    compared = fairness.get("reweighing")
    if not isinstance(compared, dict):
        return None
    baseline, reweighed = compared.get("baseline") or {}, compared.get("reweighed") or {}

    def measures(side: dict[str, Any]) -> list[dict[str, Any]]:
        features = side.get("features") or {}
        return [_measures(name, {"summary": found}) for name, found in features.items()][
            :MAX_FAIRNESS_FEATURES
        ]

    return {
        "accuracyBaseline": baseline.get("accuracy"),
        "accuracyReweighed": reweighed.get("accuracy"),
        "rocAucBaseline": baseline.get("rocAuc"),
        "rocAucReweighed": reweighed.get("rocAuc"),
        "baseline": measures(baseline),
        "reweighed": measures(reweighed),
    }


def _thresholds(fairness: dict[str, Any]) -> dict[str, Any] | None:
    mitigation = fairness.get("mitigation")
    if not isinstance(mitigation, dict):
        return None
    held = mitigation.get("heldout") or {}
    before = (fairness.get("before") or {}).get("features") or {}
    thresholds = dict(list((mitigation.get("thresholds") or {}).items())[:MAX_FAIRNESS_GATES])
    return {
        "feature": mitigation.get("feature"),
        "thresholds": {str(k)[:MAX_GROUP_NAME]: v for k, v in thresholds.items()},
        "accuracyBefore": (held.get("before") or {}).get("accuracy"),
        "accuracyAfter": (held.get("after") or {}).get("accuracy"),
        "before": [_measures(name, found) for name, found in before.items()][
            :MAX_FAIRNESS_FEATURES
        ],
    }


def mitigation_of(result: dict[str, Any]) -> str | None:
    """How the model was made fairer: reweighing, thresholds, both, or None."""
    used = []
    if result.get("sampleWeights"):
        used.append("reweighing")
    if isinstance((result.get("fairness") or {}).get("mitigation"), dict):
        used.append("thresholds")
    return " and ".join(used) or None


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
            # Always set (None clears a previous run's): the status is merge-patched.
            "fairness": project_fairness(result.get("fairness")),
            "mitigation": mitigation_of(result),
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
    validated: tuple[str, bool | None, str, str]
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
    fair = fairness_condition(status.get("fairness"))
    ready = result.get("productionReady") or {}
    if "ready" not in ready:
        return [validated, fair]
    reason = "AllGatesPassed" if ready["ready"] else str(ready.get("reason") or "GateFailed")
    return [
        validated,
        fair,
        ("ProductionReady", bool(ready["ready"]), reason, ready.get("message", "")),
    ]


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
            if isinstance(parsed, dict) and parsed.get("reason"):
                return str(parsed["reason"]), str(parsed.get("message") or "")
        except ValueError:
            pass
    code = terminated.get("exitCode")
    said = message.splitlines()[-1][:1000] if message else ""
    if code is not None:
        return "JobFailed", f"the stage exited with code {code}" + (f": {said}" if said else "")
    return "JobFailed", said or "the stage's Job failed without saying why"
