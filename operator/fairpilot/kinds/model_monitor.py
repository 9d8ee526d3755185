"""A ModelMonitor's window: its figures in the status, one condition per kind of alert
(`DriftDetected`, `BiasDrift`, `PerformanceDegraded`, and `BatchesRejected`), one
`drift.detected` event and one `drift_alerts` document per alert, a `monitor_windows` document
per window. `DataStale` is not a window's: the reconciler sets it at every look
(fairpilot.monitoring)."""

from __future__ import annotations

from typing import Any

from fairpilot.api.kinds import MODEL_MONITOR
from fairpilot.api.monitor import AlertType
from fairpilot.api.results import MonitorResult, StageResult
from fairpilot.events.outbound import Event, dataset_id_of, model_of
from fairpilot.events.payloads import DriftDetected, ModelPromotion
from fairpilot.events.topics import Topics
from fairpilot.kinds.base import (
    DRIFT_ALERTS,
    MODEL_PROMOTIONS,
    MONITOR_WINDOWS,
    Condition,
    KindBehaviour,
    ReadJson,
    Succeeded,
    Write,
    bounded,
)

MAX_FEATURES_IN_STATUS = 50
# What each condition says when the window raised no alert of its type.
_HELD = {
    AlertType.DRIFT_DETECTED: ("NoDrift", "no feature and not the prediction drifted"),
    AlertType.BIAS_DRIFT: ("FairnessHeld", "fairness held"),  # for the measures compared
    AlertType.PERFORMANCE_DEGRADED: ("PerformanceHeld", "the model scored as on held-out data"),
}
_RAISED = {
    AlertType.DRIFT_DETECTED: "ThresholdCrossed",
    AlertType.BIAS_DRIFT: "FairnessFell",
    AlertType.PERFORMANCE_DEGRADED: "ScoreFell",
}


def _feature_psi(result: MonitorResult) -> dict[str, float]:
    """The window's PSI per feature (the largest MAX_FEATURES_IN_STATUS), from the result's
    per-feature drift table."""
    table = (result.model_extra or {}).get("features") or []
    found = {
        str(row["name"]): float(row["psi"])
        for row in table
        if isinstance(row, dict) and row.get("name") is not None and row.get("psi") is not None
    }
    largest = sorted(found.items(), key=lambda item: -item[1])[:MAX_FEATURES_IN_STATUS]
    return {name: round(value, 6) for name, value in largest}


def _fairness_held(result: MonitorResult) -> Condition:
    """BiasDrift when no measure crossed its line: False only for the measures that had a
    value both in the window and after training, named with their numbers; Unknown when none
    had (a model that chose nobody has no disparate impact, a window without labels no equal
    opportunity), since "held" would then claim what nobody measured."""
    fairness = result.fairness
    prefix = f"window {result.window}"
    if fairness is None or not fairness.measured:
        why = fairness.message if fairness is not None and fairness.message else "not measured"
        return (AlertType.BIAS_DRIFT, None, "FairnessNotMeasured", f"{prefix}: {why}")
    held, missing = [], []
    for name, feature in fairness.features.items():
        for c in feature.comparison:
            if c.window is None or c.training is None:
                missing.append(f"{name} {c.measure}")
            else:
                held.append(f"{name} {c.measure} {c.training:.4g} -> {c.window:.4g}")
    unknown = (
        f"; not compared (undefined in the window or after training): {', '.join(missing)}"
        if missing
        else ""
    )
    if not held:
        return (
            AlertType.BIAS_DRIFT,
            None,
            "FairnessNotCompared",
            f"{prefix}: no fairness measure could be compared with training{unknown} "
            "(disparate impact is undefined when the model chooses nobody, equal opportunity "
            "without labels)"
            if fairness.features
            else f"{prefix}: no sensitive feature was in the window",
        )
    reason, words = _HELD[AlertType.BIAS_DRIFT]
    return (AlertType.BIAS_DRIFT, False, reason, f"{prefix}: {words}: {', '.join(held)}{unknown}")


def _listed(messages: list[str], limit: int = 5) -> str:
    shown = "; ".join(messages[:limit])
    return shown + (f"; and {len(messages) - limit} more" if len(messages) > limit else "")


class ModelMonitorBehaviour(KindBehaviour):
    kind = MODEL_MONITOR
    names_a_model = True

    def status(self, result: StageResult) -> dict[str, Any]:
        assert isinstance(result, MonitorResult)
        summary = result.summary.model_dump(by_alias=True, mode="json", exclude_none=True)
        finished = (result.model_extra or {}).get("finishedAt")
        if isinstance(finished, str) and "finishedAt" not in summary:
            summary["finishedAt"] = finished
        earlier = [
            w.model_dump(by_alias=True, mode="json", exclude_none=True)
            for w in result.history
            if w.window != result.window
        ]
        return {
            "modelId": result.model.model_id,
            "modelVersion": result.model.version,
            "window": result.window,
            "newestDataAt": result.newest_data_at,
            "maxPsi": result.summary.max_psi,
            "featurePsi": _feature_psi(result),
            "alerts": [a.model_dump(by_alias=True, mode="json") for a in result.alerts][:200],
            "rejected": [r.model_dump(by_alias=True, mode="json") for r in result.rejected],
            "windows": [*earlier, summary],
        }

    def conditions(self, result: StageResult, status: dict[str, Any]) -> list[Condition]:
        assert isinstance(result, MonitorResult)
        found: list[Condition] = []
        for type_, (held_reason, held) in _HELD.items():
            alerts = [a.message for a in result.alerts if a.type == type_]
            if alerts:
                found.append((type_, True, _RAISED[type_], _listed(alerts)))
            elif not result.judged:
                message = (
                    f"window {result.window} had {result.rows} rows, fewer than "
                    "thresholds.minRows: measured, not judged"
                )
                found.append((type_, None, "TooFewRows", message))
            elif type_ is AlertType.PERFORMANCE_DEGRADED and result.labelled_rows == 0:
                message = f"window {result.window} carried no labels: performance not measured"
                found.append((type_, None, "NoLabels", message))
            elif type_ is AlertType.BIAS_DRIFT:
                found.append(_fairness_held(result))
            else:
                found.append((type_, False, held_reason, f"window {result.window}: {held}"))
        rejected = [f"{r.uri}: {r.reason}: {r.message}" for r in result.rejected]
        found.append(
            ("BatchesRejected", True, "BatchRejected", _listed(rejected))
            if rejected
            else ("BatchesRejected", False, "AllUsed", f"window {result.window} used every batch")
        )
        return found

    def summary(self, status: dict[str, Any]) -> str:
        window = status.get("window")
        types = sorted({str(a.get("type")) for a in status.get("alerts") or []})
        alerts = ", ".join(types) if types else "no alert"
        psi = status.get("maxPsi")
        largest = f"; largest PSI {psi:.3f}" if isinstance(psi, int | float) else ""
        return f"window {window}: {alerts}{largest}"

    def result_event_ids(self, status: dict[str, Any], run: str) -> list[str]:
        alerts = [f"drift.detected/{run}/{i}" for i in range(len(status.get("alerts") or []))]
        return alerts + [_promotion_id(c, run) for c in _decided_by(status, run)]

    def result_events(self, done: Succeeded, topics: Topics, stamp: int) -> list[Event]:
        meta, status = done.meta, done.status
        model_id, version = model_of(self.kind, done.resource, done.get)
        dataset_id = dataset_id_of(self.kind, done.resource, done.get)
        window = int(status.get("window") or 1)
        rows = int(((status.get("windows") or [{}])[-1]).get("rows") or 0)
        events = []
        for index, alert in enumerate(status.get("alerts") or []):
            payload = DriftDetected(
                event_id=f"drift_detected_{model_id}_{window}_{index}_{stamp}",
                timestamp=done.finished,
                user_id=done.user,
                dataset_id=dataset_id,
                model_id=model_id,
                version=version,
                alert_id=f"{meta['uid']}-{done.run}-{index}",
                alert_type=alert.get("type", ""),
                feature=alert.get("feature"),
                metric=alert.get("metric", ""),
                value=alert.get("value"),
                baseline=alert.get("baseline"),
                threshold=alert.get("threshold"),
                message=alert.get("message", ""),
                window=window,
                rows=rows,
                report_uri=done.first_report,
                namespace=meta["namespace"],
                resource=meta["name"],
            )
            key = f"{done.user}_{model_id}"
            event_id = f"drift.detected/{done.run}/{index}"
            events.append(Event(event_id, topics.drift, key, payload.to_json()))
        for candidate in _decided_by(status, done.run):
            promoted = candidate.get("state") == "Promoted"
            verdict = ModelPromotion(
                event_type="model.promoted" if promoted else "model.refused",
                event_id=f"model_{'promoted' if promoted else 'refused'}_{model_id}_{stamp}",
                timestamp=done.finished,
                user_id=done.user,
                dataset_id=dataset_id,
                model_id=model_id,
                version=candidate.get("modelVersion"),
                # The window that decided ran the watched model: the one compared with.
                previous_version=version,
                training_run=candidate["name"],
                reason=candidate.get("reason", ""),
                production_ready=candidate.get("productionReady"),
                metric=candidate.get("metric"),
                score=candidate.get("score"),
                current_score=candidate.get("currentScore"),
                rows=candidate.get("rows"),
                window=candidate.get("window"),
                message=candidate.get("message", ""),
                namespace=meta["namespace"],
                resource=meta["name"],
            )
            events.append(
                Event(
                    _promotion_id(candidate, done.run),
                    topics.automl,
                    f"{done.user}_{model_id}",
                    verdict.to_json(),
                )
            )
        return events

    def records(self, done: Succeeded, common: dict[str, Any], read_json: ReadJson) -> list[Write]:
        status = done.status
        window_id = f"{done.meta['uid']}-{done.run}"
        summary = (status.get("windows") or [{}])[-1]
        writes: list[Write] = []
        for index, alert in enumerate(status.get("alerts") or []):
            alert_id = f"{window_id}-{index}"
            document = {
                **common,
                "alert_id": alert_id,
                "window_id": window_id,
                "window": status.get("window"),
                **{key: alert.get(key) for key in ("type", "feature", "metric", "message")},
                **{key: alert.get(key) for key in ("value", "baseline", "threshold")},
                "model_id": status.get("modelId"),
                "model_version": status.get("modelVersion"),
                "report_uri": done.first_report,
                "created_at": status.get("finishedAt"),
            }
            writes.append((DRIFT_ALERTS, alert_id, document))
        document = {
            **common,
            "window_id": window_id,
            "window": status.get("window"),
            "model_id": status.get("modelId"),
            "model_version": status.get("modelVersion"),
            "summary": summary,
            "alerts": status.get("alerts") or [],
            "reports": done.reports,
            "created_at": status.get("finishedAt"),
            "result": bounded(read_json(f"{status.get('outputUri') or ''}/result.json")),
        }
        writes.append((MONITOR_WINDOWS, window_id, document))
        for candidate in _decided_by(status, done.run):
            decision_id = f"{done.meta['uid']}-{candidate['name']}"
            record = {
                **common,
                "decision_id": decision_id,
                **candidate,
                "model_id": status.get("modelId"),
                "created_at": candidate.get("decidedAt"),
            }
            writes.append((MODEL_PROMOTIONS, decision_id, record))
        return writes


def _decided_by(status: dict[str, Any], run: str) -> list[dict[str, Any]]:
    """The retraining candidates this run promoted or refused (a window decides at most one)."""
    retraining = status.get("retraining") or {}
    return [c for c in retraining.get("candidates") or [] if c.get("decidedBy") == run]


def _promotion_id(candidate: dict[str, Any], run: str) -> str:
    verdict = "promoted" if candidate.get("state") == "Promoted" else "refused"
    return f"model.{verdict}/{run}/{candidate['name']}"
