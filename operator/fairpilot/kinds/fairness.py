"""A TrainingRun's fairness, from its train result to its status, conditions and events.

The train stage measures the shipped model's fairness per sensitive feature (and mitigates);
the status keeps a bounded brief of it (`project_fairness`), the `FairnessGatesPassed`
condition and the summary line read that brief, and the `model.uploaded` event and the
warehouse carry it in the seed's snake_case (`fairness_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic.alias_generators import to_camel

from fairpilot.api.results import (
    DecisionsOutcome,
    FairnessResult,
    FairnessSummary,
    FeatureFairness,
    TrainingResult,
)
from fairpilot.api.status import MAX_FAIRNESS_FEATURES, MAX_FAIRNESS_GATES
from fairpilot.events.payloads import FairnessGateVerdict, FairnessMeasures, ModelFairness

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


def _training(result: TrainingResult | Mapping[str, Any]) -> TrainingResult:
    # Callers that hold a raw train result (tests, tools) get it parsed here.
    return result if isinstance(result, TrainingResult) else TrainingResult.model_validate(result)


def mitigation_of(result: TrainingResult | Mapping[str, Any]) -> str | None:
    """How the model was made fairer: reweighing, thresholds, both, or None."""
    result = _training(result)
    used = []
    if result.sample_weights:
        used.append("reweighing")
    if result.fairness is not None and result.fairness.mitigation is not None:
        used.append("thresholds")
    return " and ".join(used) or None


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


# status.fairness' measures (camelCase) -> the events' names (snake_case, as the seed's).
MEASURES = {to_camel(name): name for name in FairnessMeasures.model_fields}


def fairness_of(status: dict[str, Any]) -> ModelFairness | None:
    """A TrainingRun's status.fairness as the events and the warehouse carry it: snake_case,
    the measures keyed by feature (and intersection)."""
    brief = status.get("fairness")
    if not isinstance(brief, dict):
        return None

    def measures(items: list[dict[str, Any]] | None) -> dict[str, FairnessMeasures]:
        return {
            str(m.get("name")): FairnessMeasures(
                **{k: m.get(camel) for camel, k in MEASURES.items()}
            )
            for m in items or []
        }

    return ModelFairness(
        measured=bool(brief.get("measured")),
        message=brief.get("message"),
        split=brief.get("split"),
        rows=brief.get("rows"),
        positive_label=brief.get("positiveLabel"),
        min_group_size=brief.get("minGroupSize"),
        features=measures(brief.get("features")),
        intersections=measures(brief.get("intersections")),
        gates=[
            FairnessGateVerdict(**{k: gate.get(k) for k in FairnessGateVerdict.model_fields})
            for gate in brief.get("gates") or []
        ],
        gates_passed=brief.get("gatesPassed"),
    )
