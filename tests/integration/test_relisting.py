"""What Kopf's re-listing costs: nothing, for objects the operator has already acted on.

Kopf lists every watched object again when a watch is answered 410 Expired: after an API server
restart (`Sandbox.restart_api_server`), or a disconnect that outlasted the server's history of
changes. It passes each listed object to the event handlers as if it were new; reconciling the
owner of every finished Job again at each such listing costs a GET and a reconciliation per Job
(bench/bench_relist.py). A restarted operator lists everything too, but starts with an empty
record: its resume handlers reconcile every resource once anyway.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import REGISTRY

from fairpilot.controller import handlers
from fairpilot.controller.seen import SeenVersions
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.testing import eventually, resource, wait_for


def reconciliations(kind: str) -> float:
    labels = {"kind": kind, "outcome": "ok"}
    return REGISTRY.get_sample_value("fairpilot_reconciliations_total", labels) or 0.0


def settled(kind: str) -> float:
    """The count once it has not moved for a second (Kopf done with the last events)."""
    last = reconciliations(kind)
    while True:
        time.sleep(1)
        now = reconciliations(kind)
        if now == last:
            return now
        last = now


def test_seen_versions() -> None:
    seen = SeenVersions()
    job = {"metadata": {"uid": "u1", "resourceVersion": "7"}}
    assert seen.is_new(job)
    seen.handled(job)
    assert not seen.is_new(job), "the same version again: a re-listing"
    assert seen.is_new({"metadata": {"uid": "u1", "resourceVersion": "8"}})
    assert seen.is_new({"metadata": {"uid": "u2", "resourceVersion": "7"}})
    assert seen.is_new({"metadata": {}}), "without a version, never skipped"
    seen.forget(job)
    assert seen.is_new(job) and len(seen) == 0


def test_a_finished_job_listed_again_does_not_reconcile_its_owner(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "artifacts", noop_jobs=True, kafka=False) as sandbox:
        sandbox.apply([resource("Dataset", "census", {"uri": "file:///unused.csv"})])
        done = wait_for(sandbox, "census", lambda s: s.get("phase") == "Succeeded", 60)
        before = settled("Dataset")
        job = sandbox.cluster.get_job("default", done["status"]["jobName"])
        assert job is not None
        assert sandbox.runtime is not None
        handlers.job_changed(sandbox.runtime, job, None)  # what Kopf passes when it lists again
        assert reconciliations("Dataset") == before
        # A new version of the Job is news (Kopf's own watch sees it too: one reconcile).
        sandbox.cluster.batch.patch_namespaced_job(
            job["metadata"]["name"], "default", {"metadata": {"labels": {"touched": "yes"}}}
        )
        changed = eventually(
            lambda: (
                sandbox.cluster.get_job("default", job["metadata"]["name"])
                if reconciliations("Dataset") > before
                else None
            ),
            20,
        )
        assert changed, "the Job's new version was not reconciled"
        handlers.job_changed(sandbox.runtime, changed, None)
        assert settled("Dataset") == before + 1
