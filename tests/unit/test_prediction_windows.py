"""Windows of prediction records without Kafka: closing by count and by time, the offsets that
may be committed, what a re-read skips; the record's checks, its routing, its JSON line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fairpilot.bridge.config import BridgeConfig, PrincipalGrant
from fairpilot.bridge.inbound import Rejected
from fairpilot.bridge.index import MonitorIndex, no_monitor
from fairpilot.bridge.predictions import parse_record, window_lines
from fairpilot.bridge.windows import (
    Windows,
    parse_window_name,
    topic_in_name,
    watermark,
    window_name,
)
from fairpilot.config import OperatorConfig
from fairpilot.events.payloads import PredictionRecord

A = (("default", "a", "uid-a"), "prediction-events", 0)  # monitor a, partition 0
B = (("default", "b", "uid-b"), "prediction-events", 0)  # monitor b, the same partition
P0 = ("prediction-events", 0)


def windows(*known: Any, max_bytes: int = 1 << 30) -> Windows:
    found = Windows(max_bytes)
    for key in known or (A, B):
        found.learn(key, -1)
    return found


def add(w: Windows, key: Any, offset: int, records: int = 3, seconds: float = 60, now=0.0):
    return w.add(key, offset, f"r{offset}", 10, records=records, seconds=seconds, now=now)


def test_a_window_closes_at_its_count_and_the_next_one_opens() -> None:
    w = windows()
    assert add(w, A, 0) == [] and add(w, A, 1) == []
    [closed] = add(w, A, 2)
    assert closed.reason == "count" and [o for o, _ in closed.items] == [0, 1, 2]
    assert closed.name == window_name("prediction-events", 0, 0, 2)
    assert add(w, A, 3) == [] and list(w.open) == [A]


def test_a_window_closes_when_its_time_is_up_and_not_before() -> None:
    w = windows()
    add(w, A, 0, seconds=5, now=100.0)
    add(w, A, 1, seconds=5, now=104.0)  # time counts from the first record
    assert w.due(104.9) == []
    [closed] = w.due(105.0)
    assert closed.reason == "time" and closed.first == 0 and closed.last == 1
    assert w.open == {}


def test_offsets_are_committed_only_up_to_the_first_record_of_a_window_not_written() -> None:
    w = windows()
    add(w, A, 0)  # a: 0, 2, 4 -> closes at 4; b: 1, 3 still open
    add(w, B, 1)
    add(w, A, 2)
    add(w, B, 3)
    [closed] = add(w, A, 4)
    consumed = {P0: 5}
    # Neither window is written: the commit stays at 0 (a's first record).
    assert w.commits(consumed) == {P0: 0}
    w.written(closed)
    # a's window is written; b's, still open, began at 1.
    assert w.commits(consumed) == {P0: 1}
    [b] = w.due(1e9)
    assert w.commits(consumed) == {P0: 1}  # closed but not written yet: still held
    w.written(b)
    assert w.commits(consumed) == {P0: 5}


def test_records_of_windows_written_before_a_restart_are_skipped_when_read_again() -> None:
    # Before: a's window 0-4 written, b's 1-3 open when the process stopped, commit at 1.
    names = [window_name("prediction-events", 0, 0, 4)]
    w = Windows(1 << 30)
    w.learn(A, watermark(names, "prediction-events", 0))
    w.learn(B, watermark([], "prediction-events", 0))
    # Read again from offset 1: b's records come again, a's are in its file already.
    for offset, key in [(1, B), (2, A), (3, B), (4, A)]:
        assert add(w, key, offset, records=10) == []
    assert w.skipped == 2
    assert [o for o, _ in w.open[B].items] == [1, 3]
    assert A not in w.open
    # a's next record after the file: a new window.
    add(w, A, 6, records=10)
    assert [o for o, _ in w.open[A].items] == [6]


def test_the_oldest_window_is_written_early_when_the_open_windows_hold_too_much() -> None:
    w = windows(max_bytes=35)
    add(w, A, 0, records=100, now=1.0)
    add(w, B, 1, records=100, now=2.0)
    add(w, A, 2, records=100, now=3.0)
    [closed] = add(w, B, 3, records=100, now=4.0)  # 40 bytes > 35: a's (the oldest) goes
    assert closed.key == A and closed.reason == "memory" and w.buffered == 20


def test_a_monitor_gone_drops_its_window_and_a_lowered_count_closes_one() -> None:
    w = windows()
    for offset in range(3):
        add(w, A, offset, records=10)
    add(w, B, 3, records=10)
    limits = {A[0]: (2, 60.0)}  # a now closes at 2 records; b is gone
    [closed] = w.retune(limits.get)
    assert closed.key == A and closed.reason == "count" and len(closed.items) == 3
    assert w.open == {}
    assert w.commits({P0: 4}) == {P0: 0}  # a's window still to write
    w.written(closed)
    assert w.commits({P0: 4}) == {P0: 4}  # b's records are let go with it


def test_a_revoked_partition_forgets_its_windows_and_what_its_files_hold() -> None:
    w = windows()
    add(w, A, 0)
    w.revoke([P0])
    assert w.open == {} and not w.knows(A) and w.hold(P0) is None


def test_window_names_sort_as_their_offsets_and_read_back() -> None:
    names = [window_name("t", 0, first, first + 9) for first in (0, 990, 10_000, 100_000)]
    assert sorted(names) == names
    assert parse_window_name(names[1]) == ("t", 0, 990, 999)
    assert parse_window_name("report.html") is None
    assert watermark([*names, window_name("t", 1, 5, 7_000_000)], "t", 0) == 100_009
    long = "x" * 249
    assert len(window_name(long, 99_999, 2**63 - 2, 2**63 - 1)) <= 255
    assert parse_window_name(window_name(long, 3, 1, 2))[0] == topic_in_name(long)


# -- the record ---------------------------------------------------------------------------------
RECORD = {
    "event_type": "prediction.made",
    "model_id": "income",
    "user_id": "ana",
    "record_id": "r-1",
    "timestamp": "2026-12-02T10:00:00Z",
    "features": {"age": 39, "sex": " Male", "hours": 40.5, "member": True, "note": None},
    "prediction": 0.83,
    "label": " >50K",
}


def test_a_record_keeps_its_values_as_sent_and_becomes_one_json_line() -> None:
    record = parse_record(json.dumps(RECORD).encode(), 1 << 18)
    assert record.features["sex"] == " Male"  # spaces kept: the training data's category
    line = json.loads(window_lines([record], "income", "prediction"))
    assert line == {
        "age": 39, "sex": " Male", "hours": 40.5, "member": True, "note": None,
        "record_id": "r-1", "timestamp": "2026-12-02T10:00:00Z",
        "prediction": 0.83, "income": " >50K",
    }  # fmt: skip
    # The monitor's predictionColumn names the prediction's column; a feature keeps its name.
    clash = parse_record(json.dumps({**RECORD, "features": {"record_id": 1}}).encode(), 1 << 18)
    assert json.loads(window_lines([clash], "y", "served")) == {
        "record_id": 1, "timestamp": "2026-12-02T10:00:00Z", "served": 0.83, "y": " >50K",
    }  # fmt: skip


def without(field: str) -> dict[str, Any]:
    return {key: value for key, value in RECORD.items() if key != field}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "NotJson"),
        (None, "EmptyMessage"),
        (b"[1]", "NotAnObject"),
        (json.dumps({**RECORD, "features": {"x": "y" * 300_000}}).encode(), "PayloadTooLarge"),
        (json.dumps(without("user_id")).encode(), "InvalidPayload"),
        (json.dumps(without("model_id")).encode(), "InvalidPayload"),
        (json.dumps({**RECORD, "model_id": "a b"}).encode(), "InvalidName"),
        (json.dumps({**RECORD, "features": [1, 2]}).encode(), "InvalidPayload"),
        (json.dumps({**RECORD, "features": {}}).encode(), "InvalidPayload"),
        (json.dumps({**RECORD, "features": {"a": {"b": 1}}}).encode(), "InvalidPayload"),
        (json.dumps({**RECORD, "features": {f"c{i}": 1 for i in range(1001)}}).encode(),
         "InvalidPayload"),
        (json.dumps({**RECORD, "label": [1]}).encode(), "InvalidPayload"),
        (json.dumps({**RECORD, "features": {"a\u200bb": 1}}).encode(), "InvalidPayload"),
        (json.dumps({**RECORD, "features": {"": 1}}).encode(), "InvalidPayload"),
        (json.dumps({**RECORD, "features": {"c" * 257: 1}}).encode(), "InvalidPayload"),
        (json.dumps({**RECORD, "features": {"a": "x" * 4097}}).encode(), "InvalidPayload"),
        (b'{"model_id": "m", "user_id": "a", "user_id": "b", "features": {"x": 1}}', "NotJson"),
    ],
)  # fmt: skip
def test_a_bad_record_is_refused_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(Rejected) as refused:
        parse_record(value, 256 * 1024)
    assert refused.value.reason == reason, refused.value.message


def test_a_bad_column_is_named_in_the_reason() -> None:
    row = {**RECORD, "features": {"age": 1, "sex": {"a": 1}}}
    with pytest.raises(Rejected) as bad:
        parse_record(json.dumps(row).encode(), 1024)
    assert bad.value.message.startswith("features: 'sex' must be a JSON scalar (text, a number")
    assert "not an object" in bad.value.message


# -- routing ------------------------------------------------------------------------------------
def monitor(name: str, user: str, run: str = "income", **kafka: Any) -> dict[str, Any]:
    return {
        "kind": "ModelMonitor",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"trainingRunRef": run, "userId": user, "kafka": kafka},
    }


def run(name: str, model_id: str | None = None) -> dict[str, Any]:
    spec = {"target": "income", **({"modelId": model_id} if model_id else {})}
    return {"kind": "TrainingRun", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def record(**fields: Any) -> PredictionRecord:
    return PredictionRecord.model_validate({**RECORD, **fields})


def index(**config: Any) -> MonitorIndex:
    bridge = BridgeConfig(bootstrap_servers="unused:9092", **config)
    return MonitorIndex(bridge, OperatorConfig(artifact_root="file:///artifacts"))


def test_a_record_goes_to_every_monitor_of_its_user_and_model_and_to_no_other() -> None:
    found = index()
    assert found.update(monitor("ana-1", "ana"), "ADDED")  # a new topic to read
    assert not found.update(monitor("ana-2", "ana"), "ADDED")
    found.update(monitor("bob", "bob"), "ADDED")
    found.update(monitor("other-model", "ana", modelId="churn"), "ADDED")
    found.update({**monitor("no-kafka", "ana"), "spec": {"trainingRunRef": "income"}}, "ADDED")
    # Until its TrainingRun is known, a monitor without kafka.modelId takes nothing.
    assert found.runs_to_look_up() == [("default", "income")]
    assert found.route(record(), "prediction-events") == []
    found.learn_run("default", "income", run("income", model_id="income"))
    names = {w.name for w in found.route(record(), "prediction-events")}
    assert names == {"ana-1", "ana-2"}
    assert [w.name for w in found.route(record(user_id="bob"), "prediction-events")] == ["bob"]
    assert [w.name for w in found.route(record(model_id="churn"), "prediction-events")] == [
        "other-model"
    ]
    assert found.route(record(model_id="nothing"), "prediction-events") == []
    assert found.route(record(), "another-topic") == []
    [ana] = [w for w in found.monitors.values() if w.name == "ana-1"]
    assert ana.records_uri == (
        "file:///artifacts/default/ana/modelmonitors/ana-1/uid-ana-1/records"
    )
    assert found.label_column(ana) == "income"
    # The TrainingRun's model id changes: the routes follow.
    found.update(run("income", model_id="income-v2"), "MODIFIED")
    assert found.route(record(), "prediction-events") == []
    assert len(found.route(record(model_id="income-v2"), "prediction-events")) == 2
    # A monitor deleted takes no more.
    found.update(monitor("bob", "bob"), "DELETED")
    assert found.route(record(user_id="bob", model_id="income-v2"), "prediction-events") == []
    message = no_monitor(record(model_id="nothing"), "prediction-events").message
    assert "'nothing'" in message and "'ana'" in message


def test_a_listing_replaces_what_it_saw_but_not_what_the_watch_told_since() -> None:
    found = index()
    found.update(monitor("old", "ana", modelId="m"), "ADDED")
    since = found.mark()
    found.update(monitor("new", "ana", modelId="m"), "ADDED")  # after the listing began
    assert not found.replace([monitor("listed", "ana", modelId="m")], since)  # same topics
    assert {w.name for w in found.monitors.values()} == {"new", "listed"}


def test_namespaces_and_principals_apply_as_for_triggers() -> None:
    found = index(allowed_namespaces=["team-a"])
    found.update(monitor("m", "ana", modelId="income"), "ADDED")
    assert len(found.route(record(), "prediction-events")) == 1
    assert found.route(record(namespace="team-a"), "prediction-events") == []
    with pytest.raises(Rejected, match="kube-system") as refused:
        found.route(record(namespace="kube-system"), "prediction-events")
    assert refused.value.reason == "NamespaceNotAllowed"

    grants = {"shop": PrincipalGrant(user_ids=["ana"], namespaces=["default"])}
    found = index(principals=grants)
    found.update(monitor("m", "ana", modelId="income"), "ADDED")
    assert found.subscription() == {"prediction-events", "prediction-events.shop"}
    assert len(found.route(record(), "prediction-events.shop")) == 1
    for topic, fields, reason in [
        ("prediction-events", {}, "PrincipalUnknown"),
        ("prediction-events.shop", {"user_id": "bob"}, "UserNotAllowed"),
    ]:
        with pytest.raises(Rejected) as refused:
            found.route(record(**fields), topic)
        assert refused.value.reason == reason
