"""Shared by the benchmarks: what they ran on, and running a stage as its users do."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


def describe(*packages: str) -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    versions = {}
    for package in ("numpy", "pandas", *packages):
        versions[package] = None
        for distribution in (package, f"{package}-cpu"):  # xgboost ships as xgboost-cpu too
            try:
                versions[package] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        gpu = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpuCount": os.cpu_count(),
        "memoryGiB": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gpu": gpu,
        "python": sys.version.split()[0],
        "versions": versions,
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
    }


def run_stage(stage: str, spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run `fairpilot-job STAGE` in a subprocess into workdir/STAGE; returns its result.json."""
    import json

    import yaml

    spec_file = workdir / f"{stage}.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    output = workdir / stage
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fairpilot_jobs.cli",
            stage,
            "--spec",
            str(spec_file),
            "--output",
            f"file://{output}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads((output / "result.json").read_text())
