"""A Dataset: its profile in the status, its document in the warehouse; no result event (the
seed's `dataset.uploaded` comes from the producer, not from FairPilot)."""

from __future__ import annotations

from typing import Any

from fairpilot.api.kinds import DATASET
from fairpilot.api.results import ProfileResult, StageResult
from fairpilot.api.status import MAX_COLUMN_NAMES
from fairpilot.kinds.base import DATASETS, KindBehaviour, ReadJson, Succeeded, Write, bounded


class DatasetBehaviour(KindBehaviour):
    kind = DATASET

    def status(self, result: StageResult) -> dict[str, Any]:
        assert isinstance(result, ProfileResult)
        suggestion = result.suggestion
        status: dict[str, Any] = {
            "rows": result.rows,
            "columns": result.columns,
            "suggestedTarget": suggestion.target if suggestion else None,
            "suggestedTaskType": suggestion.task_type if suggestion else None,
            "warnings": len(result.warnings),
        }
        names = [p.name for p in result.column_profiles]
        if len(names) <= MAX_COLUMN_NAMES:
            status["columnNames"] = names
        return status

    def summary(self, status: dict[str, Any]) -> str:
        rows, columns = status.get("rows"), status.get("columns")
        return f"{rows} rows, {columns} columns, target {status.get('suggestedTarget')}"

    def records(self, done: Succeeded, common: dict[str, Any], read_json: ReadJson) -> list[Write]:
        spec, status = done.spec, done.status
        document = {
            **common,
            "uri": spec.get("uri"),
            "format": spec.get("format"),
            "target": spec.get("target") or status.get("suggestedTarget"),
            "task_type": spec.get("taskType") or status.get("suggestedTaskType"),
            "sensitive_features": spec.get("sensitiveFeatures") or [],
            "rows": status.get("rows"),
            "columns": status.get("columns"),
            "reports": done.reports,
            "profile": bounded(read_json(f"{status.get('outputUri') or ''}/result.json")),
        }
        return [(DATASETS, done.meta["uid"], document)]
