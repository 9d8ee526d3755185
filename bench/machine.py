"""What a benchmark ran on, written next to its figures."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
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
