"""A ModelMonitor's clock and windows in the reconciler, with no cluster: when it looks, which
batches a window takes, what a measured or failed window leaves, and that nothing is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fairpilot import monitoring
from fairpilot.api.kinds import MODEL_MONITOR
from fairpilot.artifacts import Listed
from fairpilot.config import OperatorConfig
from fairpilot.controller.reconcile import (
    ArtifactStoreUnavailable,
    CreateJob,
    Need,
    Outcome,
    PatchStatus,
    World,
    decide,
)
from fairpilot.references import Resolved

CONFIG = OperatorConfig(artifact_root="file:///artifacts", jobs_image="local")
PREFIX = "file:///data/batches/"
NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def monitor(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {
            "name": "watch",
            "namespace": "ml",
            "uid": "m1",
            "generation": 1,
            "creationTimestamp": "2026-12-01T12:00:00Z",
        },
        "spec": {
            "trainingRunRef": "model",
            "batches": {"uri": PREFIX, "intervalSeconds": 60},
            **spec,
        },
        "status": status or {},
    }


def batch(name: str, minutes_ago: float) -> Listed:
    return Listed(f"{PREFIX}{name}", NOW - timedelta(minutes=minutes_ago), 100)


def world_at(resource: dict[str, Any], at: datetime = NOW, job: Any = None) -> World:
    world = World(resource, job)
    world.now = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return world


def plan_for(world: World, reads: dict[tuple[Any, ...], Any]) -> tuple[Outcome, list[Any]]:
    """decide() until it has every read it asks for; returns the plan and the reads asked."""
    asked: list[tuple[Any, ...]] = []
    while True:
        try:
            return decide(MODEL_MONITOR, world, CONFIG), asked
        except Need as need:
            assert need.key not in asked, f"{need.key} asked twice"
            assert need.key in reads, f"unexpected read {need.key}"
            asked.append(need.key)
            world.knows(need.key, reads[need.key])


def job_spec(window: dict[str, Any]) -> Resolved:
    return Resolved({"batches": window["batches"], "window": window["window"]}, inputs=[])


def test_a_new_monitor_without_data_waits_and_says_where() -> None:
    body = monitor()
    plan, asked = plan_for(
        world_at(body), {("get", "ModelMonitor", "watch"): body, ("listing", PREFIX): []}
    )
    assert ("listing", PREFIX) in asked
    (pending,) = plan.writes
    assert isinstance(pending, PatchStatus)
    assert pending.patch["phase"] == "Pending"
    assert PREFIX in pending.patch["message"]
    assert pending.patch["lastCheckedAt"] == "2026-12-02T12:00:00Z"
    stale = next(c for c in pending.patch["conditions"] if c["type"] == "DataStale")
    assert stale["status"] == "False" and stale["reason"] == "NoDataYet"


def test_a_look_that_is_not_due_reads_nothing_and_writes_nothing() -> None:
    looked = {
        "phase": "Succeeded",
        "observedGeneration": 1,
        "runId": "g1",
        "jobName": "fp-monitor-watch-g1",
        "lastCheckedAt": "2026-12-02T11:59:30Z",
    }
    plan, asked = plan_for(world_at(monitor(looked)), {})
    assert asked == [] and plan.writes == []
    # A minute after the last look, it is due.
    later = NOW + timedelta(seconds=31)
    with pytest.raises(Need) as need:
        decide(MODEL_MONITOR, world_at(monitor(looked), later), CONFIG)
    assert need.value.key == ("get", "ModelMonitor", "watch"), "judged on the fresh resource"


def test_a_cron_schedule_decides_when_to_look() -> None:
    looked = {
        "phase": "Succeeded",
        "observedGeneration": 1,
        "lastCheckedAt": "2026-12-02T11:00:30Z",
    }
    spec = {"trainingRunRef": "model", "batches": {"uri": PREFIX, "schedule": "0 * * * *"}}
    body = monitor(looked) | {"spec": spec}
    assert monitoring.due(spec, looked, NOW)  # 12:00 came after 11:00:30
    assert not monitoring.due(spec, looked, NOW - timedelta(minutes=1))
    assert monitoring.next_look(spec["batches"], NOW) == NOW + timedelta(hours=1)
    assert monitoring.looks(spec, looked, 1, NOW) and body


def test_a_look_asked_for_is_due_at_once_and_only_once() -> None:
    """The bridge (a window of records written) and a candidate that ended ask for a look out
    of schedule; the look after the request answers it."""
    spec = {"trainingRunRef": "model", "batches": {"uri": PREFIX, "intervalSeconds": 3600}}
    looked = {
        "phase": "Succeeded",
        "observedGeneration": 1,
        "lastCheckedAt": "2026-12-02T11:59:00Z",
    }
    assert not monitoring.due(spec, looked, NOW)
    asked = looked | {"wakeRequestedAt": "2026-12-02T11:59:30.250000Z"}
    assert monitoring.due(spec, asked, NOW)
    assert not monitoring.due(spec, asked, NOW - timedelta(seconds=31)), "not before it is asked"
    # In the same second as the look: it may have come before the look, so it is due.
    assert monitoring.due(spec, looked | {"wakeRequestedAt": "2026-12-02T11:59:00Z"}, NOW)
    answered = asked | {"lastCheckedAt": "2026-12-02T11:59:31Z"}
    assert not monitoring.due(spec, answered, NOW)


def test_new_batches_start_a_window_with_exactly_those_batches() -> None:
    body = monitor()
    listing = [batch("a.csv", 10), batch("b.csv", 5), batch("young.csv", 0.01)]
    reads = {("get", "ModelMonitor", "watch"): body, ("listing", PREFIX): listing}
    resolved_with: dict[str, Any] = {}

    class Reader:  # what resolve() is asked: the window travels with the spec
        def references(self, kind: Any, spec: Any, name: str, window: Any = None) -> Resolved:
            resolved_with.update(window)
            return job_spec(window)

    world = world_at(body)
    for key, value in reads.items():
        world.knows(key, value)
    with pytest.raises(Need) as need:
        decide(MODEL_MONITOR, world, CONFIG)
    assert need.value.key == ("references", "g1")
    reads[("references", "g1")] = need.value.read(Reader())  # type: ignore[arg-type]
    plan, _ = plan_for(world_at(body), reads)
    running, create = plan.writes
    assert isinstance(running, PatchStatus) and isinstance(create, CreateJob)
    # The young batch (written 0.6 s ago) waits for the next look: it may be half-written.
    assert resolved_with["batches"] == [
        {"uri": f"{PREFIX}a.csv", "modifiedAt": "2026-12-02T11:50:00.000000Z"},
        {"uri": f"{PREFIX}b.csv", "modifiedAt": "2026-12-02T11:55:00.000000Z"},
    ]
    assert resolved_with["window"] == 1 and resolved_with["history"] == []
    assert running.patch["phase"] == "Running" and running.patch["window"] == 1
    assert running.patch["pending"] == [f"{PREFIX}a.csv", f"{PREFIX}b.csv"]
    assert running.patch["taken"] == {
        "modifiedAt": "2026-12-02T11:55:00.000000Z",
        "uri": f"{PREFIX}b.csv",
    }
    assert create.name == "fp-monitor-watch-g1"


def test_the_next_window_takes_only_what_came_after_the_mark() -> None:
    status = {
        "phase": "Succeeded",
        "observedGeneration": 1,
        "runId": "g1",
        "window": 1,
        "jobName": "fp-monitor-watch-g1",
        "lastCheckedAt": "2026-12-02T11:58:00Z",
        "taken": {"modifiedAt": "2026-12-02T11:55:00.000000Z", "uri": f"{PREFIX}b.csv"},
        "windows": [{"window": 1, "rows": 10}],
    }
    # Same second as the mark but sorting after it: new. Same time and URI: taken.
    listing = [batch("a.csv", 10), batch("b.csv", 5), batch("c.csv", 5), batch("d.csv", 1)]
    window = monitoring.next_window(monitor(status)["spec"], status, listing, NOW)
    assert window.uris == [f"{PREFIX}c.csv", f"{PREFIX}d.csv"]
    assert window.number == 2 and window.attempt == 1
    assert monitoring.next_run(status, 1) == "g1r1"
    assert monitoring.history(monitor(status)["spec"], status) == [{"window": 1, "rows": 10}]


def test_at_most_max_batches_per_window_and_the_rest_next_time() -> None:
    spec = {"batches": {"uri": PREFIX, "maxBatchesPerWindow": 2}}
    listing = [batch(f"{i}.csv", 10 - i) for i in range(5)]
    first = monitoring.next_window(spec, {}, listing, NOW)
    assert first.uris == [f"{PREFIX}0.csv", f"{PREFIX}1.csv"]
    second = monitoring.next_window(spec, {"taken": first.taken, "window": 1}, listing, NOW)
    assert second.uris == [f"{PREFIX}2.csv", f"{PREFIX}3.csv"] and second.number == 2


def test_a_window_that_failed_on_its_input_records_its_batches_as_rejected() -> None:
    status = {"window": 3, "pending": [f"{PREFIX}bad.csv"], "windowAttempts": 1}
    error = {"reason": "EmptyWindow", "message": "bad.csv: no column age", "exitCode": 2}
    left = monitoring.after_failure(status, error, "EmptyWindow", error["message"])
    assert left["pending"] == []
    (rejected,) = left["rejected"]
    assert rejected["uri"] == f"{PREFIX}bad.csv" and rejected["reason"] == "EmptyWindow"
    assert "window 3" in rejected["message"] and "no column age" in rejected["message"]


def test_a_window_that_failed_otherwise_is_tried_again_then_recorded() -> None:
    status = {"window": 3, "pending": [f"{PREFIX}x.csv"], "windowAttempts": 1, "taken": None}
    again = monitoring.after_failure(status, None, "OOMKilled", "out of memory")
    assert again == {"pending": [f"{PREFIX}x.csv"], "windowAttempts": 1}
    window = monitoring.next_window({"batches": {"uri": PREFIX}}, {**status, **again}, [], NOW)
    assert window.uris == [f"{PREFIX}x.csv"] and window.number == 3 and window.attempt == 2
    last = monitoring.after_failure({**status, "windowAttempts": 3}, None, "OOMKilled", "oom")
    assert last["pending"] == [] and last["rejected"][0]["reason"] == "OOMKilled"
    assert "after 3 attempts" in last["rejected"][0]["message"]


def test_a_listing_that_fails_keeps_the_phase_and_says_why() -> None:
    status = {"phase": "Succeeded", "observedGeneration": 1, "runId": "g1", "window": 1}
    body = monitor(status)
    plan, _ = plan_for(
        world_at(body),
        {
            ("get", "ModelMonitor", "watch"): body,
            ("listing", PREFIX): ArtifactStoreUnavailable("S3Unavailable: connection refused"),
        },
    )
    (patch,) = plan.writes
    assert isinstance(patch, PatchStatus) and "phase" not in patch.patch
    listed = next(c for c in patch.patch["conditions"] if c["type"] == "BatchesListed")
    assert listed["status"] == "False" and "connection refused" in listed["message"]


def test_data_goes_stale_after_the_threshold_and_says_since_when() -> None:
    spec = {"batches": {"uri": PREFIX}, "thresholds": {"staleAfterSeconds": 3600}}
    fresh = monitoring.staleness(spec, [batch("a.csv", 30)], None, NOW, [PREFIX])
    assert not fresh.stale and fresh.reason == "Fresh"
    stale = monitoring.staleness(spec, [batch("a.csv", 61)], None, NOW, [PREFIX])
    assert stale.stale and stale.reason == "NoNewData" and "1 h" in stale.message
    never = monitoring.staleness(spec, [], NOW - timedelta(days=2), NOW, [PREFIX])
    assert never.stale and "since the monitor was created" in never.message
    # The whole reconciler: the condition turns True with one Warning event.
    status = {
        "phase": "Succeeded",
        "observedGeneration": 1,
        "runId": "g1",
        "window": 1,
        "taken": {"modifiedAt": "2026-12-02T10:00:00.000000Z", "uri": f"{PREFIX}a.csv"},
    }
    body = monitor(status, thresholds={"staleAfterSeconds": 3600})
    plan, _ = plan_for(
        world_at(body),
        {("get", "ModelMonitor", "watch"): body, ("listing", PREFIX): [batch("a.csv", 120)]},
    )
    (patch,) = plan.writes
    condition = next(c for c in patch.patch["conditions"] if c["type"] == "DataStale")  # type: ignore[union-attr]
    assert condition["status"] == "True"
    assert ("Warning", "DataStale", condition["message"]) in plan.events


def window_result(alerts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    summary = {
        "window": 2,
        "rows": 500,
        "maxPsi": 0.31,
        "maxPsiFeature": "age",
        "alerts": sorted({a["type"] for a in alerts}),
    }
    return {
        "window": 2,
        "rows": 500,
        "judged": True,
        "labelledRows": 0,
        "alerts": alerts,
        "rejected": [],
        "summary": summary,
        "history": [{"window": 1, "rows": 400}, summary],
        "model": {"uri": "file:///m", "modelId": "income", "version": "v1"},
        "features": [{"name": "age", "psi": 0.31}, {"name": "sex", "psi": 0.01}],
        "fairness": fairness_block(di=(0.31, 0.30)),
        "reports": {"window": "file:///artifacts/out/report.html"},
        **extra,
    }


def fairness_block(di: tuple[float | None, float | None]) -> dict[str, Any]:
    """A window's bias-drift block: sex's disparate impact (training, window), and an equal
    opportunity difference the unlabelled window could not measure."""
    training, window = di
    return {
        "measured": True,
        "message": "measured on the window's rows with the model's decisions",
        "features": {
            "sex": {
                "comparison": [
                    {"measure": "disparateImpact", "training": training, "window": window},
                    {"measure": "equalOpportunityDifference", "training": 0.07, "window": None},
                ]
            }
        },
    }


def test_a_measured_window_sets_its_conditions_events_and_trend() -> None:
    alert = {
        "type": "DriftDetected",
        "feature": "age",
        "metric": "psi",
        "value": 0.31,
        "baseline": None,
        "threshold": 0.2,
        "message": "age drifted: PSI 0.310 >= 0.2",
    }
    status = {
        "phase": "Running",
        "observedGeneration": 1,
        "runId": "g1r1",
        "window": 2,
        "jobName": "fp-monitor-watch-g1r1",
        "outputUri": "file:///artifacts/out",
        "pending": [f"{PREFIX}c.csv"],
        "windowAttempts": 1,
        "rejected": [{"uri": f"{PREFIX}old.csv", "reason": "EmptyWindow", "message": "m"}],
        "windows": [{"window": 1, "rows": 400}],
    }
    done = {
        "metadata": {"name": "fp-monitor-watch-g1r1", "ownerReferences": [{"uid": "m1"}]},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    body = monitor(status, history=2)
    reads = {("json", "file:///artifacts/out/result.json"): window_result([alert])}
    plan, _ = plan_for(world_at(body, job=done), reads)
    (succeeded,) = plan.writes
    patch = succeeded.patch  # type: ignore[union-attr]
    assert patch["phase"] == "Succeeded" and patch["pending"] == []
    assert patch["message"] == "window 2: DriftDetected; largest PSI 0.310"
    conditions = {c["type"]: c for c in patch["conditions"]}
    assert conditions["DriftDetected"]["status"] == "True"
    assert conditions["DriftDetected"]["message"] == alert["message"]
    assert conditions["BiasDrift"]["status"] == "False"
    assert conditions["PerformanceDegraded"]["status"] == "Unknown"  # no labels
    assert ("Warning", "DriftDetected", alert["message"]) in plan.events
    assert patch["featurePsi"] == {"age": 0.31, "sex": 0.01}
    assert [w["window"] for w in patch["windows"]] == [1, 2]
    assert patch["rejected"] == status["rejected"], "earlier rejections are kept"


def test_a_window_with_too_few_rows_judges_nothing() -> None:
    from fairpilot.kinds import behaviour, project_result, result_conditions

    result = window_result([], judged=False, rows=12)
    status = project_result(MODEL_MONITOR, result)
    found = {c[0]: c for c in result_conditions(MODEL_MONITOR, status, result)}
    assert found["DriftDetected"][1] is None and found["DriftDetected"][2] == "TooFewRows"
    assert "fewer than thresholds.minRows" in found["BiasDrift"][3]
    assert behaviour(MODEL_MONITOR).summary(status).startswith("window 2: no alert")


def bias_condition(result: dict[str, Any]) -> tuple[str, bool | None, str, str]:
    from fairpilot.kinds import project_result, result_conditions

    status = project_result(MODEL_MONITOR, result)
    return {c[0]: c for c in result_conditions(MODEL_MONITOR, status, result)}["BiasDrift"]


def test_bias_drift_holds_only_for_what_was_compared_and_says_so() -> None:
    _, held, reason, message = bias_condition(window_result([]))
    assert (held, reason) == (False, "FairnessHeld")
    assert "sex disparateImpact 0.31 -> 0.3" in message
    assert "not compared" in message and "sex equalOpportunityDifference" in message


@pytest.mark.parametrize("di", [(None, None), (0.31, None), (None, 0.3)])
def test_bias_drift_is_unknown_when_no_measure_could_be_compared(
    di: tuple[float | None, float | None],
) -> None:
    """A model that chose nobody (at training or in the window) has no disparate impact:
    saying fairness "held" would claim what nobody measured."""
    _, held, reason, message = bias_condition(window_result([], fairness=fairness_block(di)))
    assert (held, reason) == (None, "FairnessNotCompared"), message
    assert "chooses nobody" in message


def test_bias_drift_is_unknown_when_fairness_was_not_measured() -> None:
    fairness = {"measured": False, "message": "fairness is measured for classifiers only"}
    _, held, reason, message = bias_condition(window_result([], fairness=fairness))
    assert (held, reason) == (None, "FairnessNotMeasured")
    assert message == "window 2: fairness is measured for classifiers only"
    _, held, reason, _ = bias_condition({**window_result([]), "fairness": None})
    assert (held, reason) == (None, "FairnessNotMeasured")


def succeeded_monitor(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    from fairpilot.kinds import project_result

    projected = project_result(MODEL_MONITOR, window_result(alerts))
    status = {
        **projected,
        "phase": "Succeeded",
        "observedGeneration": 1,
        "runId": "g1r1",
        "jobName": "fp-monitor-watch-g1r1",
        "outputUri": "file:///artifacts/out",
        "startedAt": "2026-12-02T11:59:00Z",
        "finishedAt": "2026-12-02T12:00:00Z",
    }
    return monitor(status, userId="alice")


ALERTS = [
    {
        "type": "DriftDetected",
        "feature": "age",
        "metric": "psi",
        "value": 0.31,
        "baseline": None,
        "threshold": 0.2,
        "message": "age drifted: PSI 0.310 >= 0.2",
    },
    {
        "type": "BiasDrift",
        "feature": "sex",
        "metric": "disparateImpact",
        "value": 0.52,
        "baseline": 0.71,
        "threshold": 0.1,
        "message": "sex: DI 0.52, was 0.71 after training",
    },
]


def test_each_alert_is_one_drift_detected_event_with_the_seeds_ids() -> None:
    from fairpilot.events.topics import Topics
    from fairpilot.kinds import events_for

    resource = succeeded_monitor(ALERTS)
    run = {
        "metadata": {"name": "model", "annotations": {"fairpilot.io/dataset-id": "adult"}},
        "spec": {"modelId": "income"},
        "status": {"modelId": "income", "modelVersion": "v1"},
    }
    events = events_for(MODEL_MONITOR, resource, Topics(), lambda kind, ns, name: run)
    drift = [e for e in events if e.topic == "drift-events"]
    assert [e.id for e in drift] == ["drift.detected/g1r1/0", "drift.detected/g1r1/1"]
    payload = drift[1].payload
    assert payload["event_type"] == "drift.detected" and payload["user_id"] == "alice"
    assert payload["model_id"] == "income" and payload["version"] == "v1"
    assert payload["dataset_id"] == "adult"
    assert (payload["alert_type"], payload["feature"], payload["value"], payload["baseline"]) == (
        "BiasDrift",
        "sex",
        0.52,
        0.71,
    )
    assert payload["report_uri"] == "file:///artifacts/out/report.html"
    assert drift[1].key == "alice_income"
    # Delivered ones are not made again.
    again = events_for(MODEL_MONITOR, resource, Topics(), lambda *_: run, {e.id for e in drift})
    assert not [e for e in again if e.topic == "drift-events"]


def test_the_warehouse_keeps_each_alert_and_each_window() -> None:
    from fairpilot.warehouse.store import records_for

    writes = records_for(
        MODEL_MONITOR,
        succeeded_monitor(ALERTS),
        lambda uri: {"x": 1},
        {"user_id": "alice", "model_id": "income"},
    )
    collections = [collection for collection, _, _ in writes]
    assert collections == ["drift_alerts", "drift_alerts", "monitor_windows"]
    _, alert_id, alert = writes[1]
    assert alert_id == "m1-g1r1-1" and alert["type"] == "BiasDrift" and alert["window"] == 2
    assert alert["value"] == 0.52 and alert["baseline"] == 0.71
    _, window_id, window = writes[2]
    assert window_id == "m1-g1r1" and window["summary"]["maxPsi"] == 0.31
    assert window["result"] == {"x": 1}


def test_a_monitor_of_kafka_records_looks_in_its_own_records_folder() -> None:
    body = monitor() | {"spec": {"trainingRunRef": "model", "kafka": {"windowRecords": 500}}}
    records = "file:///artifacts/ml/~none/modelmonitors/watch/m1/records"
    listing = [Listed(f"{records}/w-0-0-499.jsonl", NOW - timedelta(minutes=1), 10)]
    reads = {("get", "ModelMonitor", "watch"): body, ("listing", records): listing}
    world = world_at(body)
    for key, value in reads.items():
        world.knows(key, value)
    with pytest.raises(Need) as need:
        decide(MODEL_MONITOR, world, CONFIG)
    assert need.value.key == ("references", "g1"), "a window of the bridge's records starts"
    assert monitoring.prefixes(body["spec"], records) == [records]
    both = {**body["spec"], "batches": {"uri": PREFIX}}
    assert monitoring.prefixes(both, records) == [PREFIX, records]
    # Its records are JSON lines whatever format the batch source names.
    window = monitoring.next_window(
        {**both, "batches": {"uri": PREFIX, "format": "csv"}}, {}, listing, NOW
    )
    assert window.batches == [{"uri": listing[0].uri, "modifiedAt": "2026-12-02T11:59:00.000000Z"}]
    # Without a batch source it looks every minute (the bridge also wakes it).
    looked = {"lastCheckedAt": "2026-12-02T11:59:30Z"}
    assert not monitoring.due(body["spec"], looked, NOW)
    assert monitoring.due(body["spec"], looked, NOW + timedelta(seconds=31))
