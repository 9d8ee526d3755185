"""What the sandbox's API server shows kubectl: Tables, JSONPath cells, ages, events, logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fairpilot.api.kinds import DATASET
from fairpilot.crds import crd
from fairpilot.sandbox import kubectl_views as views

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_ages_read_as_kubectl_shows_them() -> None:
    cases = {ago(seconds=5): "5s", ago(seconds=150): "2m30s", ago(minutes=42): "42m",
             ago(hours=5, minutes=3): "5h3m", ago(hours=30): "30h", ago(days=3, hours=2): "3d2h",
             ago(days=40): "40d"}  # fmt: skip
    assert {stamp: views.human_age(stamp, NOW) for stamp in cases} == cases
    assert views.human_age(None) == "<unknown>"


def test_json_path_reads_printer_column_paths() -> None:
    obj = {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "False"}, {"type": "UpToDate", "status": "True"}]},
        "items": [1, 2]}  # fmt: skip
    assert views.json_path(obj, ".status.phase") == ["Running"]
    assert views.json_path(obj, '.status.conditions[?(@.type=="UpToDate")].status') == ["True"]
    assert views.json_path(obj, ".items[1]") == [2]
    assert views.json_path(obj, ".items[*]") == [1, 2]
    assert views.json_path(obj, ".status.missing") == []


def test_a_crds_printer_columns_make_the_table() -> None:
    created = (datetime.now(UTC) - timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    item = {"metadata": {"name": "adult", "creationTimestamp": created},
            "status": {"phase": "Succeeded", "rows": 6, "message": "done"}}  # fmt: skip
    table = views.table("fairpilot.io", "datasets", [item], crd(DATASET), "v1alpha1")
    names = [column["name"] for column in table["columnDefinitions"]]
    assert names == ["Name", "Phase", "Rows", "Target", "Age", "Message"]
    cells = table["rows"][0]["cells"]
    assert cells[:4] == ["adult", "Succeeded", 6, None]
    assert cells[4].endswith("s") and cells[5] == "done"  # an age: seconds, not a date
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert views.wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not views.wants_table("application/json")


def test_events_read_through_either_api() -> None:
    core = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Dataset", "name": "adult"}, "message": "done",
            "reason": "Succeeded", "type": "Normal", "lastTimestamp": "2026-01-01T00:00:00Z",
            "source": {"component": "kopf"}}  # fmt: skip
    new = views.events_v1(core)
    assert new["regarding"] == core["involvedObject"] and new["note"] == "done"
    assert new["reportingController"] == "kopf" and new["eventTime"].endswith(".000000Z")
    back = views.core_event(new)
    assert back["involvedObject"] == core["involvedObject"] and back["message"] == "done"


def test_pod_logs_are_rotated_once_and_read_back(tmp_path: Path) -> None:
    log = views.pod_log_path(tmp_path, "default", "pod-0", "stage")
    log.parent.mkdir(parents=True)
    log.write_bytes(b"".join(b"line %d\n" % n for n in range(100)))
    views.rotate(log, 100)  # past the limit: kept as .log.1, the log starts again
    assert log.read_bytes() == b"" and log.with_suffix(".log.1").stat().st_size > 100
    with log.open("ab") as more:
        more.write(b"line 100\n")
    assert views.read_log(log, tail_lines=2) == b"line 99\nline 100\n"
    assert views.read_log(log, limit_bytes=7) == b"line 0\n"
    views.rotate(log, 100)  # within the limit: left alone
    assert log.read_bytes() == b"line 100\n"
