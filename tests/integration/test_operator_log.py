"""The operator's own log reads like a log (issue 17): a wait is one INFO line, not an ERROR at
every retry; each phase change is one INFO line; a failure one WARNING with its reason.

Real Kopf in the sandbox, its records as caplog receives them; retries every 0.1 s, so the
few seconds a test waits are dozens of retries.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from fairpilot.backoff import Backoff
from fairpilot.controller.runtime import Retry
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.testing import resource, wait_for

ANALYSIS = {"datasetRef": "census", "target": "income", "sensitiveFeatures": ["sex"]}
QUICK = Retry(waiting=Backoff(first=0.1, limit=0.1), recheck=Backoff(first=0.1, limit=0.1))


def lines(caplog: pytest.LogCaptureFixture, *words: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if all(w in r.getMessage() for w in words)]


def test_a_wait_is_one_info_line_and_each_phase_change_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with Sandbox(tmp_path / "artifacts", noop_jobs=True, kafka=False, retry=QUICK) as sandbox:
        with sandbox.runner.held():  # the Dataset runs while the analysis waits for it
            sandbox.apply(
                [
                    resource("Dataset", "census", {"uri": "file:///unused.csv"}),
                    resource("BiasAnalysis", "fair", ANALYSIS),
                ]
            )
            wait_for(sandbox, "fair", lambda s: s.get("phase") == "Pending", 30)
            time.sleep(2)  # some twenty retries of the wait
        wait_for(sandbox, "fair", lambda s: s.get("phase") == "Succeeded", 60)
    assert not lines(caplog, "failed temporarily"), "a wait is no error"
    assert all(r.levelno < logging.ERROR for r in caplog.records if r.name.startswith("kopf"))
    # The wait's messages (the Dataset's phase in it) each once: the first in the line of the
    # change to Pending, each later one in a `waits:` line, INFO.
    said = [
        r.getMessage().split(": ", 1)[1].removeprefix("new → Pending: ")
        for r in lines(caplog, "BiasAnalysis default/fair", "datasetRef: waiting for Dataset")
    ]
    assert said and len(said) == len(set(said)) <= 3, said
    assert said[-1] == "datasetRef: waiting for Dataset 'census' to succeed (now Running)"
    assert all(r.levelno == logging.INFO for r in lines(caplog, "fair waits:"))
    for phase in ("Pending", "Running", "Succeeded"):
        changes = lines(caplog, "BiasAnalysis", "fair", f"→ {phase}")
        assert len(changes) == 1, (phase, [r.getMessage() for r in changes])
        assert changes[0].levelno == logging.INFO


def test_a_failure_is_one_warning_with_its_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with Sandbox(tmp_path / "artifacts", noop_jobs=True, kafka=False, retry=QUICK) as sandbox:
        sandbox.apply([resource("BiasAnalysis", "orphan", {**ANALYSIS, "target": ""})])
        failed = wait_for(sandbox, "orphan", lambda s: s.get("phase") == "Failed", 30)
        time.sleep(1)
    warnings = lines(caplog, "BiasAnalysis", "orphan", "→ Failed")
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert failed["status"]["message"] in warnings[0].getMessage()
