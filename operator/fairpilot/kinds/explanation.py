"""An Explanation: the model it explained and its top feature in the status; one seed
`xai.reported` event and one `xai_reports` document per expertise level's report."""

from __future__ import annotations

from typing import Any

from fairpilot.api.kinds import EXPLANATION
from fairpilot.api.results import ExplanationResult, StageResult
from fairpilot.events.outbound import Event, dataset_id_of, model_of
from fairpilot.events.payloads import XaiReported
from fairpilot.events.topics import Topics
from fairpilot.kinds.base import XAI_REPORTS, KindBehaviour, ReadJson, Succeeded, Write, bounded


class ExplanationBehaviour(KindBehaviour):
    kind = EXPLANATION
    names_a_model = True

    def status(self, result: StageResult) -> dict[str, Any]:
        assert isinstance(result, ExplanationResult)
        explained = result.model
        return {
            "modelId": explained.model_id,
            "modelVersion": explained.version,
            "modelUri": explained.uri,
            "method": result.method,
            "topFeature": result.top_feature,
            "additivityError": result.local_accuracy.max_abs_error,
        }

    def summary(self, status: dict[str, Any]) -> str:
        return f"{status.get('method')} SHAP; top feature {status.get('topFeature')}"

    def result_event_ids(self, status: dict[str, Any], run: str) -> list[str]:
        return [f"xai.reported/{run}/{level}" for level in sorted(status.get("reports") or {})]

    def result_events(self, done: Succeeded, topics: Topics, stamp: int) -> list[Event]:
        meta, status = done.meta, done.status
        model_id, version = model_of(self.kind, done.resource, done.get)
        dataset_id = dataset_id_of(self.kind, done.resource, done.get)
        events = []
        for level, uri in sorted(done.reports.items()):
            payload = XaiReported(
                event_id=f"xai_reported_{model_id}_{level}_{stamp}",
                timestamp=done.finished,
                user_id=done.user,
                dataset_id=dataset_id,
                model_id=model_id,
                level=level,
                xai_report_id=f"{meta['uid']}-{done.run}-{level}",
                version=version,
                method=status.get("method"),
                top_feature=status.get("topFeature"),
                model_uri=status.get("modelUri"),
                report_uri=uri,
                namespace=done.meta["namespace"],
                resource=done.meta["name"],
            )
            key = f"{done.user}_{model_id}"
            events.append(
                Event(f"xai.reported/{done.run}/{level}", topics.xai, key, payload.to_json())
            )
        return events

    def records(self, done: Succeeded, common: dict[str, Any], read_json: ReadJson) -> list[Write]:
        status = done.status
        result = bounded(read_json(f"{status.get('outputUri') or ''}/result.json"))
        writes: list[Write] = []
        for level, uri in sorted(done.reports.items()):
            report_id = f"{done.meta['uid']}-{done.run}-{level}"
            document = {
                **common,
                "xai_report_id": report_id,
                "report_type": "model_explanation",
                "level": level,
                "report_uri": uri,
                "method": status.get("method"),
                "top_feature": status.get("topFeature"),
                "model_uri": status.get("modelUri"),
                "model_version": status.get("modelVersion"),
                "created_at": status.get("finishedAt"),
                "result": result,
            }
            writes.append((XAI_REPORTS, report_id, document))
        return writes
