"""controller/logs.py on records shaped as Kopf's ObjectLogger makes them (the integration
test, tests/integration/test_operator_log.py, runs real Kopf)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import kopf
import pytest

from fairpilot.controller import logs

REF = {"apiVersion": "fairpilot.io/v1alpha1", "kind": "BiasAnalysis", "name": "fair",
       "uid": "u1", "namespace": "ml"}  # fmt: skip
WAIT = "Handler 'reconcile' failed temporarily: datasetRef: waiting for Dataset 'd' ({})"


@pytest.fixture
def operator() -> Iterator[tuple[kopf.OperatorSettings, logs.ResourceLines]]:
    settings, lines = kopf.OperatorSettings(), logs.ResourceLines()
    records = logs.install(settings, lines)
    yield settings, lines
    logs.uninstall(records)


def kopf_log(settings: kopf.OperatorSettings, level: int, message: str, **ref: str) -> None:
    """As kopf's ObjectLogger logs: the message formatted, the settings and k8s_ref as extras."""
    extra = {"settings": settings, "k8s_skip": False, "k8s_ref": {**REF, **ref}}
    logging.getLogger("kopf.objects").log(level, message, extra=extra)


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records]


def test_a_wait_is_one_info_line_per_message(
    operator: tuple[kopf.OperatorSettings, logs.ResourceLines], caplog: pytest.LogCaptureFixture
) -> None:
    settings, lines = operator
    caplog.set_level(logging.INFO)
    for _ in range(5):
        kopf_log(settings, logging.ERROR, WAIT.format("now Pending"))
    kopf_log(settings, logging.ERROR, WAIT.format("now Running"))
    kopf_log(settings, logging.ERROR, WAIT.format("now Running"))
    kopf_log(settings, logging.ERROR, WAIT.format("now Running"), uid="u2")  # created anew
    assert said(caplog) == [
        ("INFO", "BiasAnalysis ml/fair waits: datasetRef: waiting for Dataset 'd' (now Pending)"),
        ("INFO", "BiasAnalysis ml/fair waits: datasetRef: waiting for Dataset 'd' (now Running)"),
        ("INFO", "BiasAnalysis ml/fair waits: datasetRef: waiting for Dataset 'd' (now Running)"),
    ]
    assert all(getattr(r, "k8s_skip", False) for r in caplog.records), "no Event for a log line"
    caplog.clear()
    # The phase change that starts a wait says its message; the retries after it add nothing.
    key = ("BiasAnalysis", "ml", "fair", "u3")
    message = "datasetRef: waiting for Dataset 'd' (now Pending)"
    lines.phase(key, (None, "Pending"), {"message": message})
    kopf_log(settings, logging.ERROR, WAIT.format("now Pending"), uid="u3")
    lines.phase(key, ("Pending", "Running"), {"message": "Job j started"})
    lines.phase(key, ("Pending", "Running"), {"message": "Job j started"})  # a concurrent one
    # It ran, and waits again (a re-run): news again.
    kopf_log(settings, logging.ERROR, WAIT.format("now Pending"), uid="u3")
    assert said(caplog) == [
        ("INFO", f"BiasAnalysis ml/fair: new → Pending: {message}"),
        ("INFO", "BiasAnalysis ml/fair: Pending → Running: Job j started"),
        ("INFO", f"BiasAnalysis ml/fair waits: {message}"),
    ]


def test_a_failure_is_a_warning_with_its_reason_and_errors_stay_errors(
    operator: tuple[kopf.OperatorSettings, logs.ResourceLines], caplog: pytest.LogCaptureFixture
) -> None:
    settings, lines = operator
    caplog.set_level(logging.INFO)
    ready = {"type": "Ready", "status": "False", "reason": "InvalidSpec"}
    status = {"message": "spec.target: a bad one", "conditions": [ready]}
    lines.phase(("TrainingRun", "ml", "m", "u"), ("Pending", "Failed"), status)
    kopf_log(settings, logging.ERROR, "Handler 'reconcile' failed with an exception: boom")
    kopf_log(settings, logging.INFO, "Handler 'deliver' succeeded.")  # routine: DEBUG
    kopf_log(settings, logging.INFO, "Creation is processed: 1 succeeded; 0 failed.")
    kopf_log(kopf.OperatorSettings(), logging.ERROR, WAIT.format("x"))  # another operator's
    assert said(caplog) == [
        ("WARNING", "TrainingRun ml/m: Pending → Failed (InvalidSpec): spec.target: a bad one"),
        ("ERROR", "Handler 'reconcile' failed with an exception: boom"),
        ("ERROR", WAIT.format("x")),
    ]
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    kopf_log(settings, logging.INFO, "Handler 'deliver' succeeded.")
    assert said(caplog) == [("DEBUG", "Handler 'deliver' succeeded.")]
