"""Faults a team running FairPilot unattended will meet, each against the sandbox with the real
Kafka broker: operators killed with SIGKILL in every stage, two replicas, Kafka and S3 going
away, and Jobs that run out of time or memory or crash. Short versions; `bench/bench_soak.py`
runs the long ones (README, "Reliability").
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support.faults import CuttableLink, PhaseRecorder

from fairpilot.config import JobDefaults
from fairpilot.sandbox.app import Sandbox, sandbox_config
from fairpilot.sandbox.kafka import free_port, running_broker
from fairpilot.sandbox.process import OperatorProcess
from fairpilot.sandbox.testing import (
    STATUS,
    by_name,
    delivered,
    eventually,
    payloads,
    produce,
    read_until,
    resource,
    wait_for,
)
from fairpilot.sandbox.testing import bias_trigger as trigger

OUT_TOPICS = ["bias-events", "automl-events", "xai-events", STATUS]


@pytest.fixture(scope="module")
def small_adult(tmp_path_factory: pytest.TempPathFactory, adult: dict[str, str]) -> str:
    """400 Adult rows: every stage, training included, takes seconds."""
    path = tmp_path_factory.mktemp("data") / "adult-400.csv"
    frame = pd.read_csv(adult["train"].removeprefix("file://"))
    frame.sample(400, random_state=1).to_csv(path, index=False)
    return f"file://{path}"


def pipeline(name: str, uri: str, **training: Any) -> dict[str, Any]:
    return resource(
        "Dataset",
        name,
        {
            "uri": uri,
            "userId": "ops",
            "target": "income",
            "sensitiveFeatures": ["sex"],
            "pipeline": {
                "bias": {"positiveLabel": ">50K"},
                "training": {"timeLimitSeconds": 10, **training},
                "explanation": {"sampleSize": 50, "levels": ["beginner"]},
            },
        },
    )


def pods_per_job(sandbox: Sandbox) -> Counter[str]:
    pods = sandbox.cluster.core.list_namespaced_pod("default").items
    return Counter(p.metadata.labels["job-name"] for p in pods)


def failed_pods(sandbox: Sandbox) -> int:
    pods = sandbox.cluster.core.list_namespaced_pod("default").items
    return sum(1 for p in pods if p.status and p.status.phase == "Failed")


def ready_reason(item: dict[str, Any]) -> str | None:
    conditions = (item.get("status") or {}).get("conditions") or []
    return next((c.get("reason") for c in conditions if c["type"] == "Ready"), None)


@pytest.mark.timeout(600)
def test_an_operator_killed_in_every_stage_finishes_the_pipeline_once(
    tmp_path: Path, small_adult: str
) -> None:
    stages = ["kill", "kill-bias", "kill-train", "kill-explain"]
    with (
        Sandbox(tmp_path / "artifacts", operator_process=True) as sandbox,
        PhaseRecorder(sandbox.url) as recorder,
    ):
        assert sandbox.kafka is not None
        sandbox.apply([pipeline("kill", small_adult)])
        for name in stages:
            with sandbox.runner.held():  # the stage's Job certainly runs during the kill
                item = wait_for(sandbox, name, lambda s: s.get("phase") == "Running", 300)
                sandbox.kill_operator()
                sandbox.start_operator()
                job = item["status"]["jobName"]
                ended = lambda job=job: job in sandbox.runner.holding  # noqa: E731
                assert eventually(ended, 300), f"{job} never ended"
            # and once more while the Job's end is being reported and recorded
            sandbox.kill_operator()
            sandbox.start_operator()
        wait_for(sandbox, "kill", lambda s: s.get("pipeline") in ("Succeeded", "Failed"), 300)
        items = by_name(sandbox)
        jobs = pods_per_job(sandbox)
        # a Running and a Succeeded status per stage, and a report from the last three
        everything = lambda rs: len(rs) >= 2 * len(stages) + 3  # noqa: E731
        records = read_until(sandbox.kafka, OUT_TOPICS, everything, timeout=60)
        logs = sandbox.operators[0].logs()
    assert set(items) == set(stages)
    for name, item in items.items():
        assert item["status"]["phase"] == "Succeeded", (name, item["status"])
    assert items["kill"]["status"]["pipeline"] == "Succeeded"
    assert logs.count("Signal SIGTERM") == 0, "every stop was a SIGKILL"
    # no Job created twice and no stage run twice: one Job per resource, one pod per Job
    assert sorted(jobs) == sorted(i["status"]["jobName"] for i in items.values())
    assert set(jobs.values()) == {1}, jobs
    # no event sent twice, none missing
    assert len(payloads(records, "bias-events")) == 1
    assert len(payloads(records, "automl-events")) == 1
    assert len(payloads(records, "xai-events")) == 1
    statuses = payloads(records, STATUS)
    ids = [p["event_id"] for p in statuses]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    assert sorted((p["resource"], p["phase"]) for p in statuses) == sorted(
        (name, phase) for name in stages for phase in ("Running", "Succeeded")
    )
    # no status went backwards, as seen by a watch
    assert not recorder.went_back(), recorder.went_back()
    assert all(recorder.seen[f"{i['kind']}/{n}"] for n, i in items.items())


def all_succeed(sandbox: Sandbox, names: list[str], timeout: float = 60) -> bool:
    """Apply a no-op Dataset of each name; whether all succeed within `timeout`."""
    sandbox.apply([resource("Dataset", name, {"uri": "file:///unused.csv"}) for name in names])
    phase = lambda name: (by_name(sandbox)[name].get("status") or {}).get("phase")  # noqa: E731
    return eventually(lambda: all(phase(name) == "Succeeded" for name in names), timeout)


def peers(sandbox: Sandbox) -> dict[str, Any]:
    peering = sandbox.cluster.custom.get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", "fairpilot"
    )
    return peering.get("status") or {}


def acting(operator: OperatorProcess) -> bool:
    """Whether Kopf's peering left this replica acting, by the last word it logged on it."""
    logs = operator.logs()
    paused = max(logs.rfind("Pausing operations"), logs.rfind("Pausing all operators"))
    return logs.rfind("Resuming operations") > paused


def one_acting(operators: list[OperatorProcess]) -> bool:
    if sum(map(acting, operators)) != 1:
        return False
    time.sleep(1)  # and still so a moment later, when each has seen the other's record
    return sum(map(acting, operators)) == 1


@pytest.mark.timeout(300)
def test_two_replicas_one_acts_and_the_other_takes_over(tmp_path: Path) -> None:
    with Sandbox(
        tmp_path / "artifacts",
        noop_jobs=True,
        kafka=False,
        operator_process=True,
        replicas=2,
        peering_lifetime=10,
    ) as sandbox:
        # both have announced themselves on the peering object (the chart creates it)
        assert eventually(lambda: len(peers(sandbox)) == 2, 30), peers(sandbox)
        # and seen each other: the one of lower priority is paused (it starts paused, or is
        # paused when the other appears), so exactly one acts
        assert eventually(lambda: one_acting(sandbox.operators), 30), list(
            map(acting, sandbox.operators)
        )
        assert all_succeed(sandbox, [f"a{i}" for i in range(8)])
        handled = [op.logs().count("Handler 'reconcile' succeeded") for op in sandbox.operators]
        assert sorted(handled)[0] == 0 and sorted(handled)[1] >= 8, handled
        active = handled.index(max(handled))
        standby = sandbox.operators[1 - active]
        sandbox.kill_operator(active)
        killed_at = time.monotonic()
        assert all_succeed(sandbox, [f"b{i}" for i in range(4)])
        takeover = time.monotonic() - killed_at
        assert standby.logs().count("Handler 'reconcile' succeeded") >= 4
        assert "Resuming operations" in standby.logs()
    assert takeover < 10 + 15, "the standby resumes once the killed peer's record expires"


def analyses(sandbox: Sandbox) -> list[str]:
    """The BiasAnalyses the `early-*` trigger messages made."""
    return [n for n in by_name(sandbox) if n.startswith("early-") and "-bias-" in n]


@pytest.mark.timeout(300)
def test_messages_sent_before_a_broker_outage_are_all_processed_after_it(
    tmp_path: Path, s3_client: Any
) -> None:
    outage = float(os.environ.get("FAIRPILOT_TEST_KAFKA_OUTAGE", "8"))
    s3_client.create_bucket(Bucket="tansu-faults")  # topics and offsets survive the restart
    port, storage = free_port(), "s3://tansu-faults/"
    broker = running_broker(port, storage=storage)
    bootstrap = broker.__enter__()
    try:
        with Sandbox(
            tmp_path / "artifacts", noop_jobs=True, kafka=bootstrap, operator_process=True
        ) as sandbox:
            sandbox.kill_operator()  # nobody consumes: the messages wait in the broker
            produce(bootstrap, [("bias-trigger-events", trigger(f"early-{i}")) for i in range(6)])
            broker.__exit__(None, None, None)
            sandbox.start_operator()  # an operator that starts while Kafka is down
            # stages go on without Kafka
            sandbox.apply(
                [
                    resource("Dataset", "during", {"uri": "file:///unused.csv", "userId": "u"}),
                    resource(
                        "BiasAnalysis",
                        "during-bias",
                        {"datasetRef": "during", "target": "income", "sensitiveFeatures": ["sex"]},
                    ),
                ]
            )
            wait_for(sandbox, "during-bias", lambda s: s.get("phase") == "Succeeded", 60)
            time.sleep(max(0.0, outage - 5))
            broker = running_broker(port, storage=storage)
            broker.__enter__()
            assert eventually(
                lambda: (
                    len(analyses(sandbox)) == 6
                    and all(
                        delivered(sandbox, n, "bias.reported/g1")
                        for n in [*analyses(sandbox), "during-bias"]
                    )
                ),
                120,
            ), by_name(sandbox).keys()
            count = len(by_name(sandbox))
            # every resource's Running and Succeeded, and the seven reports
            everything = lambda rs: len(rs) >= 2 * count + 7  # noqa: E731
            records = read_until(bootstrap, ["bias-events", STATUS], everything, timeout=60)
    finally:
        broker.__exit__(None, None, None)
    reported = payloads(records, "bias-events")
    assert len(reported) == 7 and len({p["event_id"] for p in reported}) == 7, [
        (r.partition, r.offset, r.timestamp, json.loads(r.value)["event_id"], r.headers)
        for r in records
        if r.topic == "bias-events"
    ]
    statuses = [p["event_id"] for p in payloads(records, STATUS)]
    assert len(statuses) == len(set(statuses))
    assert count == 2 * 6 + 2  # a Dataset and a BiasAnalysis per message, and the two applied
    phases = Counter(p["phase"] for p in payloads(records, STATUS))
    assert phases["Running"] == phases["Succeeded"] == count, phases  # once each


@pytest.fixture
def s3_link(s3_server: dict[str, str], s3_client: Any) -> Any:
    port = int(s3_server["FAIRPILOT_S3_ENDPOINT_URL"].rsplit(":", 1)[1])
    s3_client.create_bucket(Bucket="fp-faults")
    return lambda **options: CuttableLink(port, **options).up()


def s3_sandbox(tmp_path: Path, link: CuttableLink, backoff_limit: int) -> Sandbox:
    config = sandbox_config(
        tmp_path / "artifacts",
        artifact_root="s3://fp-faults/runs",
        s3_endpoint_url=link.url,
        jobs=JobDefaults(backoff_limit=backoff_limit),
    )
    return Sandbox(
        tmp_path / "artifacts",
        kafka=False,
        config=config,
        operator_process=True,  # so that the operator, too, reaches S3 only through the link
        runner_options={"retry_delay": 3.0},
    )


@pytest.mark.timeout(300)
def test_s3_gone_while_a_job_writes_is_retried_and_succeeds(
    tmp_path: Path, s3_link: Any, small_adult: str
) -> None:
    link = s3_link(cut_on_write=True)
    with s3_sandbox(tmp_path, link, backoff_limit=2) as sandbox:
        sandbox.apply([resource("Dataset", "flaky", {"uri": small_adult})])
        assert link.cut_event.wait(120), "the job never wrote"
        # The job's S3 client retries for a few seconds itself; keep the link down until that
        # attempt has failed, then bring it back before the Job controller's next one.
        assert eventually(lambda: failed_pods(sandbox) >= 1, 60), "the cut attempt never failed"
        link.up()
        done = wait_for(sandbox, "flaky", lambda s: s.get("phase") in ("Succeeded", "Failed"), 120)
        first = sandbox.cluster.termination("default", done["status"]["jobName"])
        pods = pods_per_job(sandbox)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["rows"] == 400
    assert pods[done["status"]["jobName"]] == 2, "one failed attempt, then one that worked"
    assert first is not None and first["exitCode"] == 0


@pytest.mark.timeout(300)
def test_s3_gone_for_good_fails_the_stage_with_the_reason(
    tmp_path: Path, s3_link: Any, small_adult: str
) -> None:
    link = s3_link(cut_on_write=True)
    with s3_sandbox(tmp_path, link, backoff_limit=1) as sandbox:
        sandbox.apply([resource("Dataset", "stranded", {"uri": small_adult})])
        done = wait_for(
            sandbox, "stranded", lambda s: s.get("phase") in ("Succeeded", "Failed"), 240
        )
        pods = pods_per_job(sandbox)
    status = done["status"]
    assert status["phase"] == "Failed", status
    assert ready_reason(done) == "StorageUnavailable", status
    assert link.url.removeprefix("http://") in status["message"] or "fp-faults" in status["message"]
    assert pods[status["jobName"]] == 2, "retried within its backoff limit (1)"


def failed_stage(sandbox: Sandbox, dataset: str, stage: str) -> dict[str, Any]:
    """The stage that failed, once its Dataset's pipeline says Failed."""
    wait_for(sandbox, dataset, lambda s: s.get("pipeline") in ("Succeeded", "Failed"), 300)
    return by_name(sandbox)[stage]


def failure_events(sandbox: Sandbox, count: int) -> dict[str, str]:
    """The reasons of the Failed status events, once `count` of them have been sent."""
    assert sandbox.kafka is not None
    records = read_until(sandbox.kafka, [STATUS], lambda rs: len(failed(rs)) >= count, timeout=60)
    return {p["resource"]: p["reason"] for p in failed(records)}


def failed(records: list[Any]) -> list[dict[str, Any]]:
    return [p for p in payloads(records, STATUS) if p["phase"] == "Failed"]


@pytest.mark.timeout(300)
def test_a_job_past_its_deadline_fails_with_the_reason_and_stops_the_pipeline(
    tmp_path: Path,
) -> None:
    # The profile of "stuck" never ends, as a read from a hung network mount would not.
    hang = lambda job: job["metadata"]["name"].startswith("fp-profile-stuck")  # noqa: E731
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    config = sandbox_config(tmp_path / "artifacts", jobs=JobDefaults(active_deadline_seconds=4))
    with Sandbox(
        tmp_path / "artifacts", config=config, runner_options={"hang": hang}
    ) as sandbox:
        sandbox.apply([pipeline("stuck", f"file://{data}")])
        stuck = failed_stage(sandbox, "stuck", "stuck")
        names = set(by_name(sandbox))
        events = failure_events(sandbox, 1)
    assert by_name_phase(stuck) == ("Failed", "DeadlineExceeded")
    assert "deadline of 4 s" in stuck["status"]["message"]
    assert names == {"stuck"}, "the pipeline stopped at the failed stage"
    assert events == {"stuck": "DeadlineExceeded"}


@pytest.mark.timeout(420)
def test_out_of_memory_and_crashed_jobs_fail_with_the_reason_and_stop_the_pipeline(
    tmp_path: Path, small_adult: str
) -> None:
    crash = lambda job: job["metadata"]["name"].startswith("fp-bias-crashy")  # noqa: E731
    with Sandbox(
        tmp_path / "artifacts", runner_options={"crash": crash, "retry_delay": 0.5}
    ) as sandbox:
        sandbox.apply(
            [
                pipeline("hungry", small_adult, resources={"memory": "160Mi"}),
                pipeline("crashy", small_adult),
            ]
        )
        hungry = failed_stage(sandbox, "hungry", "hungry-train")
        crashy = failed_stage(sandbox, "crashy", "crashy-bias")
        names = set(by_name(sandbox))
        pods = pods_per_job(sandbox)
        events = failure_events(sandbox, 2)
    assert by_name_phase(hungry) == ("Failed", "OOMKilled")
    assert "(160Mi)" in hungry["status"]["message"]
    assert by_name_phase(crashy) == ("Failed", "JobFailed")
    assert "exited with code 1: Segmentation fault" in crashy["status"]["message"]
    # each was retried within its Job's backoff limit (2) before it was given up
    assert pods[hungry["status"]["jobName"]] == pods[crashy["status"]["jobName"]] == 3
    # the pipelines stopped at the failed stage
    assert "hungry-explain" not in names and "crashy-train" not in names
    # and each failure was announced on the status topic with its reason
    assert events == {"hungry-train": "OOMKilled", "crashy-bias": "JobFailed"}


def by_name_phase(item: dict[str, Any]) -> tuple[str | None, str | None]:
    return (item.get("status") or {}).get("phase"), ready_reason(item)
