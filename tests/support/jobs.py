"""Running a stage as its pod would: `fairpilot-job` in a subprocess, and what it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TRAIN_BUDGET_SECONDS = 30


@dataclass
class JobRun:
    returncode: int
    stdout: str
    stderr: str
    output: Path

    @property
    def result(self) -> dict[str, Any]:
        return json.loads((self.output / "result.json").read_text())

    @property
    def error(self) -> dict[str, Any]:
        return json.loads((self.output / "error.json").read_text())


def run_job(
    stage: str,
    spec: dict[str, Any] | str,
    output: Path,
    env: dict[str, str] | None = None,
    output_uri: str | None = None,
    timeout: float = 600,
    run_id: str | None = None,
) -> JobRun:
    """Run `fairpilot-job` in a subprocess, as the operator's pod would."""
    output.mkdir(parents=True, exist_ok=True)
    spec_file = output.parent / f"{output.name}-spec.yaml"
    spec_file.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "fairpilot_jobs.cli",
            stage,
            "--spec",
            str(spec_file),
            "--output",
            output_uri or f"file://{output}",
            *(["--run-id", run_id] if run_id else []),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return JobRun(completed.returncode, completed.stdout, completed.stderr, output)
