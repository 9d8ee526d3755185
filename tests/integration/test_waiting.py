"""A stage that waits for another: one status write for the wait, and a wake-up when it ends.

Every trigger message applies a Dataset and a BiasAnalysis together, so under a burst thousands
of resources wait at once. A wait must not cost the API server a write at every retry, and a
stage must start when the one it waits for ends, not when its retry next comes round.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fairpilot.api.kinds import BY_KIND
from fairpilot.backoff import Backoff
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.controller.reconcile import reconcile
from fairpilot.controller.runtime import Retry
from fairpilot.controller.waiters import Waiters
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.emulator import running_emulator
from fairpilot.sandbox.testing import resource, wait_for

ANALYSIS = {"datasetRef": "census", "target": "income", "sensitiveFeatures": ["sex"]}


def test_waiters_wake_each_dependent_once_and_close_the_race_with_a_mark() -> None:
    waiters = Waiters()
    upstream, a, b = ("Dataset", "ns", "d"), ("BiasAnalysis", "ns", "a"), ("TrainingRun", "ns", "b")
    assert waiters.add(upstream, a, since=waiters.mark())
    assert waiters.add(upstream, b, since=waiters.mark())
    assert len(waiters) == 2
    assert waiters.release(upstream) == {a, b}
    assert waiters.release(upstream) == set(), "each is told once"
    # A dependent that read its reference before the reference ended, and records its wait
    # only after: told to go on now instead of waiting for a release that has happened.
    mark = waiters.mark()
    waiters.release(upstream)
    assert not waiters.add(upstream, a, since=mark)
    assert len(waiters) == 0
    # One that read it after the end (a fresh mark) waits for the next end, as it should.
    assert waiters.add(upstream, a, since=waiters.mark())
    # A resource waits for one thing at a time, and a deleted one for nothing.
    other = ("Dataset", "ns", "test-data")
    assert waiters.add(other, a, since=waiters.mark())
    assert len(waiters) == 1
    waiters.forget(a)
    assert len(waiters) == 0 and waiters.release(other) == set()


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[tuple[Cluster, Path]]:
    audit = tmp_path / "audit.jsonl"
    with running_emulator(audit) as url:
        yield Cluster.for_host(url), audit


def status_writes(audit: Path, name: str) -> int:
    requests = [json.loads(line) for line in audit.read_text().splitlines()]
    return sum(
        1
        for r in requests
        if r["verb"] == "patch"
        and r["objectRef"].get("name") == name
        and r["objectRef"].get("subresource") == "status"
    )


def test_a_wait_writes_its_status_once_however_often_it_is_retried(
    audited: tuple[Cluster, Path], tmp_path: Path
) -> None:
    cluster, audit = audited
    dataset = cluster.custom.create_namespaced_custom_object(
        "fairpilot.io", "v1alpha1", "default", "datasets",
        resource("Dataset", "census", {"uri": "file:///d.csv"}),
    )  # fmt: skip
    cluster.patch_status(BY_KIND["Dataset"], "default", "census", {"phase": "Running"})
    cluster.custom.create_namespaced_custom_object(
        "fairpilot.io", "v1alpha1", "default", "biasanalyses",
        resource("BiasAnalysis", "fair", ANALYSIS),
    )  # fmt: skip
    config = OperatorConfig(artifact_root=f"file://{tmp_path}", jobs_image="local")
    kind = BY_KIND["BiasAnalysis"]
    for _ in range(4):  # what Kopf's retries do while the Dataset runs
        body = cluster.get(kind, "default", "fair")
        assert body is not None
        outcome = reconcile(kind, body, cluster, config)
        assert outcome.waiting and outcome.waiting_on == ("Dataset", "census")
        assert outcome.status["phase"] == "Pending"
    assert status_writes(audit, "fair") == 1
    assert dataset["metadata"]["name"] == "census"


def test_a_stage_that_ends_wakes_the_stages_waiting_for_it(tmp_path: Path) -> None:
    # Retries far longer than the test may take: only a wake-up can move a waiting stage on.
    slow = Retry(waiting=Backoff(first=300.0, limit=300.0), recheck=Backoff(300.0, 300.0))
    with Sandbox(tmp_path / "artifacts", noop_jobs=True, kafka=False, retry=slow) as sandbox:
        with sandbox.runner.held():  # the Dataset's Job runs until the analysis waits for it
            sandbox.apply(
                [
                    resource("Dataset", "census", {"uri": "file:///unused.csv"}),
                    resource("BiasAnalysis", "fair", ANALYSIS),
                    resource("TrainingRun", "model", {"datasetRef": "census", "target": "y"}),
                ]
            )
            for name in ("fair", "model"):
                wait_for(sandbox, name, lambda s: s.get("phase") == "Pending", 30)
        done: dict[str, Any] = {
            name: wait_for(sandbox, name, lambda s: s.get("phase") == "Succeeded", 60)
            for name in ("fair", "model")
        }
    assert all(item["status"]["jobName"] for item in done.values())
