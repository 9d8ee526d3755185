"""A BiasAnalysis: its verdict in the status and the `BiasDetected` condition, the seed's
`bias.reported` event, a `bias_reports` document per run."""

from __future__ import annotations

from typing import Any

from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET
from fairpilot.api.results import BiasResult, StageResult
from fairpilot.events.outbound import Event, dataset_id_of
from fairpilot.events.payloads import BiasReported
from fairpilot.events.topics import Topics
from fairpilot.kinds.base import (
    BIAS_REPORTS,
    Condition,
    KindBehaviour,
    ReadJson,
    Succeeded,
    Write,
    bounded,
)


class BiasAnalysisBehaviour(KindBehaviour):
    kind = BIAS_ANALYSIS

    def status(self, result: StageResult) -> dict[str, Any]:
        assert isinstance(result, BiasResult)
        return {
            "biasDetected": result.bias_detected,
            "minDisparateImpact": result.summary.min_disparate_impact,
            "findings": result.findings[:50],
            "reweighingUri": result.mitigation.uri if result.mitigation else None,
        }

    def conditions(self, result: StageResult, status: dict[str, Any]) -> list[Condition]:
        detected = bool(status.get("biasDetected"))
        findings = "; ".join(status.get("findings") or []) or "no threshold crossed"
        reason = "ThresholdCrossed" if detected else "WithinThresholds"
        return [("BiasDetected", detected, reason, findings)]

    def summary(self, status: dict[str, Any]) -> str:
        di = status.get("minDisparateImpact")
        verdict = "bias detected" if status.get("biasDetected") else "no bias detected"
        return f"{verdict}; lowest disparate impact {di:.3f}" if di is not None else verdict

    def result_event_ids(self, status: dict[str, Any], run: str) -> list[str]:
        return [f"bias.reported/{run}"]

    def result_events(self, done: Succeeded, topics: Topics, stamp: int) -> list[Event]:
        meta, spec, status = done.meta, done.spec, done.status
        dataset_id = dataset_id_of(self.kind, done.resource, done.get)
        dataset = done.get(DATASET, meta["namespace"], spec.get("datasetRef", "")) or {}
        task_type = (dataset.get("spec") or {}).get("taskType") or (
            dataset.get("status") or {}
        ).get("suggestedTaskType")
        payload = BiasReported(
            dataset_id=dataset_id,
            user_id=done.user,
            bias_report_id=f"{meta['uid']}-{done.run}",
            has_transformation_report=bool(status.get("reweighingUri")),
            target_column_name=spec.get("target", ""),
            task_type=task_type,
            timestamp=done.finished,
            event_id=f"bias_reported_{meta['name']}_{stamp}",
            bias_detected=status.get("biasDetected"),
            min_disparate_impact=status.get("minDisparateImpact"),
            findings=list(status.get("findings") or []),
            report_uri=done.first_report,
            transformation_uri=status.get("reweighingUri"),
            namespace=done.meta["namespace"],
            resource=done.meta["name"],
        )
        key = f"{done.user}_{dataset_id}"
        return [Event(f"bias.reported/{done.run}", topics.bias, key, payload.to_json())]

    def records(self, done: Succeeded, common: dict[str, Any], read_json: ReadJson) -> list[Write]:
        spec, status = done.spec, done.status
        report_id = f"{done.meta['uid']}-{done.run}"
        document = {
            **common,
            "bias_report_id": report_id,
            "target_column_name": spec.get("target"),
            "sensitive_features": spec.get("sensitiveFeatures") or [],
            "bias_detected": status.get("biasDetected"),
            "min_disparate_impact": status.get("minDisparateImpact"),
            "findings": status.get("findings") or [],
            "has_transformation_report": bool(status.get("reweighingUri")),
            "transformation_uri": status.get("reweighingUri"),
            "reports": done.reports,
            "created_at": status.get("finishedAt"),
            "result": bounded(read_json(f"{status.get('outputUri') or ''}/result.json")),
        }
        return [(BIAS_REPORTS, report_id, document)]
