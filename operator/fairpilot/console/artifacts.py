"""Reports opened through the console: only files below a served namespace's artifact root.

A browser asks for `/ns/NS/artifacts/PATH`; PATH is taken relative to the namespace's artifact
root (`fairpilot.access.artifact_root`, the operator's configuration), never as a URI or an
absolute path. The console reads with the operator's credentials, so it must not become a way
to read what the operator may read but a person should not:

- a namespace the console does not serve: `Refused` (403);
- `..`, an empty or `.` segment, a backslash, a control or invisible character: `Refused`;
- a file of a kind no report is made of (a model's pickles, the data): `Refused`;
- on the local disk, a symbolic link anywhere from the root down (a folder or the file):
  `Refused`, through the artifact store's no-follow reads (`ArtifactStore.read_bytes`);
- nothing there: `Missing` (404).
"""

from __future__ import annotations

from dataclasses import dataclass

from fairpilot import access
from fairpilot.api.validation import invisible_characters
from fairpilot.artifacts import ArtifactStore
from fairpilot.config import OperatorConfig
from fairpilot.errors import JobError

# What stages write for people to look at (reports and what they link to); nothing else is
# served: no model files, no data.
SERVED_SUFFIXES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
}


class Refused(Exception):
    """A path the console will not read (403)."""


class Missing(Exception):
    """Nothing at that path (404)."""


@dataclass(frozen=True)
class Artifact:
    data: bytes
    content_type: str


def relative_path(path: str) -> list[str]:
    """PATH's segments, or Refused: no `..`, `.`, empty segment, backslash or hidden char."""
    segments = path.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or "\\" in segment or invisible_characters(segment):
            raise Refused(f"{path[:200]!r} is not a plain path below the artifact root")
    return segments


def content_type(path: str) -> str:
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in SERVED_SUFFIXES:
        name = path.rsplit("/", 1)[-1][:100]
        raise Refused(
            f"{name!r} is no report: the console opens {', '.join(SERVED_SUFFIXES)} files only"
        )
    return SERVED_SUFFIXES[suffix]


def console_path(config: OperatorConfig, namespace: str, uri: str) -> str | None:
    """The PATH under which the console serves `uri` (a report's URI from a status), or None
    when it lies outside the namespace's artifact root."""
    root = access.artifact_root(config, namespace).rstrip("/")
    if not access.within(uri, root) or uri.rstrip("/") == root:
        return None
    return uri[len(root) + 1 :]


def read(config: OperatorConfig, namespace: str, path: str) -> Artifact:
    """The file at PATH below the namespace's artifact root (the caller has checked that the
    console serves the namespace)."""
    segments = relative_path(path)
    kind = content_type(path)
    root = access.artifact_root(config, namespace).rstrip("/")
    relative = "/".join(segments)
    if not access.within(f"{root}/{relative}", root):
        raise Refused(f"{path[:200]!r} is outside the artifact root")
    try:
        data = ArtifactStore(root).read_bytes(relative)
    except JobError as exc:
        if exc.reason in ("NotFound", "NotADirectory"):
            raise Missing(f"no artifact {relative!r} in namespace {namespace}") from None
        if exc.reason in ("UnsafePath", "DocumentTooLarge", "InvalidURI"):
            raise Refused(exc.message) from None
        raise
    return Artifact(data, kind)
