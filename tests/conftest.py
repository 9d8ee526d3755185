"""Shared fixtures: Adult income on disk, a stage runner, a trained model, an S3 API server."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Imported now, while this process has one thread: hypothesis's pytest plugin imports it at the
# end of a run otherwise, when the sandboxes' daemon threads may be compiling too, and CPython
# 3.11.7 then fails (SystemError: AST constructor recursion depth mismatch, gh-106905).
import hypothesis  # noqa: F401
import pytest
from support.jobs import TRAIN_BUDGET_SECONDS, JobRun, run_job

from fairpilot.datasets import export_adult


@pytest.fixture
def tiny_csv(tmp_path: Path) -> str:
    """A six-row CSV (fairpilot.sandbox.testing.TINY_CSV) as a file:// URI."""
    from fairpilot.sandbox.testing import TINY_CSV

    path = tmp_path / "tiny.csv"
    path.write_text(TINY_CSV)
    return f"file://{path}"


@pytest.fixture(scope="session")
def adult(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """URIs of adult.csv (32,561 rows) and adult_test.csv (16,281 rows)."""
    paths = export_adult(tmp_path_factory.mktemp("data"))
    return {split: f"file://{path}" for split, path in paths.items()}


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, adult: dict[str, str]) -> JobRun:
    """One real AutoGluon run on Adult, shared by the train, bias and explain tests."""
    run = run_job(
        "train",
        {
            "dataset": {"uri": adult["train"]},
            "testDataset": {"uri": adult["test"]},
            "target": "income",
            "evalMetric": "roc_auc",
            "timeLimitSeconds": TRAIN_BUDGET_SECONDS,
            "validationThreshold": {"metric": "roc_auc", "min": 0.85},
            # Measured on the test set, no gate: production readiness stays the threshold's.
            "fairness": {"sensitiveFeatures": ["sex", "race"]},
            "modelId": "adult-income",
            "userId": "tester",
        },
        tmp_path_factory.mktemp("train") / "out",
    )
    assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="session")
def profiled(tmp_path_factory: pytest.TempPathFactory, adult: dict[str, str]) -> JobRun:
    run = run_job(
        "profile",
        {"uri": adult["train"], "sensitiveFeatures": ["sex", "race"]},
        tmp_path_factory.mktemp("profile") / "out",
    )
    assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="session")
def biased(tmp_path_factory: pytest.TempPathFactory, adult: dict[str, str]) -> JobRun:
    spec = {
        "dataset": {"uri": adult["train"]},
        "target": "income",
        "positiveLabel": ">50K",
        "sensitiveFeatures": ["sex", "race"],
    }
    run = run_job("bias", spec, tmp_path_factory.mktemp("bias") / "out")
    assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="session")
def explained(
    tmp_path_factory: pytest.TempPathFactory, adult: dict[str, str], trained: JobRun
) -> JobRun:
    spec = {
        "model": {"uri": trained.result["model"]["uri"], "digest": trained.result["modelDigest"]},
        "dataset": {"uri": adult["test"]},
        "sampleSize": 500,
    }
    run = run_job("explain", spec, tmp_path_factory.mktemp("explain") / "out")
    assert run.returncode == 0, run.stderr
    return run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 API server on loopback; returns the environment a job needs to reach it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "fairpilot-test",
        "AWS_SECRET_ACCESS_KEY": "fairpilot-test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FAIRPILOT_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_client(s3_server: dict[str, str]) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3_server["FAIRPILOT_S3_ENDPOINT_URL"])


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary (installed into .tools on first use)."""
    from k8s_tools import ensure

    return ensure()["helm"]
