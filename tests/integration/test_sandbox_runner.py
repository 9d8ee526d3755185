"""The sandbox's local Job runner against the API emulator: it lists once and resumes its watch.

What it costs the API server is read from the emulator's audit log, as in test_security.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fairpilot.cluster import Cluster
from fairpilot.sandbox.emulator import running_emulator
from fairpilot.sandbox.runner import USER_AGENT, LocalJobRunner
from fairpilot.sandbox.testing import eventually

NAMESPACE = "default"


def job(name: str) -> dict[str, Any]:
    container = {"name": "main", "image": "local", "command": [sys.executable, "-c", "pass"]}
    return {
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}},
    }


def runners_calls(log: Path) -> list[tuple[str, str]]:
    """(verb, requestURI) of the runner's requests about Jobs, in order."""
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return [
        (e["verb"], e["requestURI"])
        for e in events
        if e["userAgent"] == USER_AGENT and (e.get("objectRef") or {}).get("resource") == "jobs"
        and e["verb"] in ("list", "watch")
    ]  # fmt: skip


def test_the_runner_lists_once_and_resumes_its_watch_until_the_version_expires(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.jsonl"
    with running_emulator(audit_log=log) as url:
        cluster = Cluster.for_host(url)
        runner = LocalJobRunner(Cluster.for_host(url).client, idle=1.0).start()
        try:

            def complete(name: str) -> bool:
                status = cluster.batch.read_namespaced_job_status(name, NAMESPACE).status
                return bool(status and status.succeeded)

            cluster.batch.create_namespaced_job(NAMESPACE, job("first"))
            assert eventually(lambda: complete("first"), 60)
            # Several one-second watches end and are resumed; none of them lists again.
            watched = lambda: [verb for verb, _ in runners_calls(log)].count("watch")  # noqa: E731
            assert eventually(lambda: watched() >= 4, 30)
            calls = runners_calls(log)
            assert [verb for verb, _ in calls].count("list") == 1
            watches = [uri for verb, uri in calls if verb == "watch"]
            assert all("resourceVersion=" in uri for uri in watches)
            assert all("allowWatchBookmarks=true" in uri for uri in watches)

            # An API server restart expires every version: the runner lists again (once),
            # and a Job made after it still runs.
            url.restart()
            cluster.batch.create_namespaced_job(NAMESPACE, job("second"))
            assert eventually(lambda: complete("second"), 60)
            assert [verb for verb, _ in runners_calls(log)].count("list") == 2
        finally:
            runner.stop()
