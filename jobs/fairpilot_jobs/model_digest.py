"""A model directory's digest: what the train stage wrote, checked before anything is unpickled.

An AutoGluon predictor is a tree of pickles, and unpickling runs code: whoever can write to
the artifact store could plant a "model" that runs in the explain or bias pod. So the train
stage records what it wrote, and a stage that loads a model first proves it has exactly that.

The design:

- `fairpilot-manifest.json`, written last into the model directory, lists every other file
  of the directory (relative POSIX path -> sha256 and size), `fairpilot-model.json` (the
  metadata) included. It is canonical JSON (sorted keys, no spaces, ASCII), so its bytes are
  a function of its content.
- The model's digest is `sha256:<hex>` of those bytes. It covers every byte of the model: the
  manifest directly, every other file through the manifest. The train stage reports it in
  result.json (`modelDigest`); the operator keeps it in the TrainingRun's status and hands it
  to the stages that load the model (`model: {uri, digest}`).
- Not covered, and never loaded: the manifest itself (the digest covers it) and the run's
  claim marker `.fairpilot-run.json` at the top (artifacts.CLAIM_FILE, written into a registry
  folder before training). Neither is copied into the directory the model is loaded from.
- `verified_copy` checks the whole tree before anything in it is read as a model: the
  manifest's digest equals the expected one; every file present is in the manifest with its
  size and sha256; every file of the manifest is present; nothing else is there; no entry
  is a symbolic link (every file and directory is opened with O_NOFOLLOW, relative to its
  parent's descriptor, so no link anywhere in the tree is followed) or a device, FIFO or
  socket. It hashes in chunks while copying into a private temporary directory, from which
  the model is then loaded: a writer to the store cannot swap a file between the check and
  the load, because what is loaded is what was hashed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from fairpilot import artifacts
from fairpilot.api.common import MODEL_DIGEST_PATTERN
from fairpilot.errors import JobError

MANIFEST_FILE = "fairpilot-manifest.json"
MANIFEST_FORMAT = "fairpilot.io/model-manifest/v1"
# Files a model directory may hold that the manifest does not list (see the module's doc).
UNLISTED = frozenset({MANIFEST_FILE, artifacts.CLAIM_FILE})
DIGEST_RE = re.compile(MODEL_DIGEST_PATTERN)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 16 << 20
MAX_DEPTH = 32
MAX_FILES = 100_000

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | _O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | _O_CLOEXEC | _O_DIRECTORY


# -- writing (the train stage) ------------------------------------------------------------------
def canonical(manifest: dict[str, Any]) -> bytes:
    """The manifest's bytes: the same content always gives the same bytes, hence digest."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the tree under `root`: every file but UNLISTED, path -> sha256 and size."""
    files: dict[str, dict[str, Any]] = {}
    with _opened_dir(root) as root_fd:
        for dir_fd, name, relative in _walk(root_fd, "", str(root)):
            if relative in UNLISTED:
                continue
            fd = _open_file(dir_fd, name, relative, str(root))
            with os.fdopen(fd, "rb") as handle:
                sha, size = _hash(handle)
            files[relative] = {"sha256": sha, "size": size}
    return {"format": MANIFEST_FORMAT, "algorithm": "sha256", "files": dict(sorted(files.items()))}


def write_manifest(root: Path) -> tuple[dict[str, Any], str]:
    """Write `fairpilot-manifest.json` under `root` (the last file written); its digest."""
    manifest = build_manifest(root)
    data = canonical(manifest)
    (root / MANIFEST_FILE).write_bytes(data)
    return manifest, digest_of(data)


def hash_file(path: Path) -> tuple[str, int]:
    """sha256 (hex) and size of one file, read in chunks."""
    with path.open("rb") as handle:
        return _hash(handle)


# -- verifying (the stages that load a model) ----------------------------------------------------
def require_digest(digest: str | None, uri: str) -> str:
    """The expected digest of the model at `uri`; a spec without one is refused."""
    if not digest:
        raise JobError(
            "ModelDigestMissing",
            f"the job spec gives no digest for the model at {uri}: a model directory is code "
            "(pickles), so FairPilot loads only one whose digest it knows (model.digest, the "
            "modelDigest the train stage reported)",
        )
    if not DIGEST_RE.match(digest):
        raise JobError(
            "ModelDigestMissing",
            f"model.digest {digest[:80]!r} is not of the form sha256:<64 lower-case hex digits>",
        )
    return digest


def verified_copy(uri: str, digest: str | None, stack: ExitStack) -> tuple[Path, dict[str, Any]]:
    """A private copy of the model at `uri`, proven to be the one with `digest`; its manifest.

    Nothing of the model is read as anything but bytes until this returns. `stack` keeps the
    copy for as long as the caller needs it.
    """
    expected = require_digest(digest, uri)
    target = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fairpilot-model-")))
    with ExitStack() as download:
        try:
            # file://: the directory itself; s3://: a private download, verified here.
            source = download.enter_context(artifacts.local_dir(uri))
        except JobError as exc:
            if exc.transient:
                raise
            raise JobError("ModelNotFound", f"no model at {uri}: {exc.message}") from exc
        manifest = verify_tree(source, expected, uri, copy_to=target)
    return target, manifest


def verify_tree(
    root: Path, expected: str, uri: str | None = None, copy_to: Path | None = None
) -> dict[str, Any]:
    """Check the tree under `root` against the digest `expected` (see the module's doc).

    With `copy_to`, every file of the manifest is copied there as it is hashed. Raises
    JobError: ModelNotFound (no model there), ModelNotVerifiable (no manifest: a model
    written before models had digests), ModelDigestMismatch (the manifest, or a file, is not
    what the digest says), ModelTampered (a file added or missing, a symbolic link, ...).
    """
    where = uri or str(root)
    try:
        with _opened_dir(root, where) as root_fd:
            files = _manifest_files(root_fd, expected, where)
            seen: set[str] = set()
            for dir_fd, name, relative in _walk(root_fd, "", where):
                if relative in UNLISTED:
                    continue
                entry = files.get(relative)
                if entry is None:
                    raise JobError(
                        "ModelTampered",
                        f"{where} holds {relative!r}, which the model's manifest does not list: "
                        "a file was added after training; nothing was loaded",
                    )
                _check_file(dir_fd, name, relative, entry, where, copy_to)
                seen.add(relative)
    except OSError as exc:
        raise JobError(
            "ModelTampered", f"{where} cannot be verified: {exc.strerror or exc}"
        ) from exc
    missing = sorted(set(files) - seen)
    if missing:
        raise JobError(
            "ModelTampered",
            f"{where} lacks {missing[0]!r}"
            + (f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else "")
            + " of the model's manifest: a file was removed after training",
        )
    return {"format": MANIFEST_FORMAT, "algorithm": "sha256", "files": files}


def _manifest_files(root_fd: int, expected: str, where: str) -> dict[str, dict[str, Any]]:
    """The manifest's files, once its bytes are proven to have the expected digest."""
    try:
        fd = os.open(MANIFEST_FILE, _FILE_FLAGS, dir_fd=root_fd)
    except FileNotFoundError:
        if not _exists(root_fd, "predictor.pkl"):
            raise JobError(
                "ModelNotFound",
                f"{where} holds no model (no predictor.pkl); give the model/ directory of a "
                "train stage",
            ) from None
        raise JobError(
            "ModelNotVerifiable",
            f"{where} has no {MANIFEST_FILE}: the model was trained by a FairPilot that did not "
            "record digests, or the manifest was removed; train it again to use it",
        ) from None
    except OSError as exc:
        raise _link_or(exc, MANIFEST_FILE, where) from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise JobError("ModelTampered", f"{where}: {MANIFEST_FILE} is not a regular file")
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise JobError("ModelTampered", f"{where}: {MANIFEST_FILE} is larger than any manifest")
    found = digest_of(data)
    if not hmac.compare_digest(found, expected):
        raise JobError(
            "ModelDigestMismatch",
            f"{where}: the model's manifest has digest {found}, the job spec expects {expected}: "
            "the model was replaced or modified after training (or is another model); "
            "nothing was loaded",
        )
    return _parse(data, where)


def _parse(data: bytes, where: str) -> dict[str, dict[str, Any]]:
    # The bytes are the train stage's (their digest matched): this guards against a bug, not
    # against an attacker.
    try:
        manifest = json.loads(data)
        files = manifest["files"]
        valid = manifest.get("format") == MANIFEST_FORMAT and isinstance(files, dict)
        for path, entry in files.items() if valid else ():
            size = entry["size"]
            valid = (
                _SHA256_RE.match(entry["sha256"]) is not None
                and isinstance(size, int)
                and size >= 0
                and path not in UNLISTED
                and all(part not in ("", ".", "..") for part in path.split("/"))
            )
            if not valid:
                break
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise JobError("ModelNotVerifiable", f"{where}: {MANIFEST_FILE} is malformed") from exc
    if not valid:
        raise JobError("ModelNotVerifiable", f"{where}: {MANIFEST_FILE} is malformed")
    return files


def _check_file(
    dir_fd: int,
    name: str,
    relative: str,
    entry: dict[str, Any],
    where: str,
    copy_to: Path | None,
) -> None:
    fd = _open_file(dir_fd, name, relative, where)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size != entry["size"]:
            why = f"it has {size} bytes, the manifest says {entry['size']}"
            raise _mismatch(where, relative, why)
        sink = None
        if copy_to is not None:
            destination = copy_to / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            sink = destination.open("xb")
        try:
            # At most one byte more than the manifest's size: a file that grows is refused.
            sha, read = _hash(handle, sink, limit=entry["size"] + 1)
        finally:
            if sink is not None:
                sink.close()
    if read != entry["size"]:
        raise _mismatch(where, relative, "it changed while it was read")
    if not hmac.compare_digest(sha, entry["sha256"]):
        raise _mismatch(where, relative, "its sha256 is not the manifest's")


def _mismatch(where: str, relative: str, why: str) -> JobError:
    return JobError(
        "ModelDigestMismatch",
        f"{where}: {relative!r} is not the file the train stage wrote ({why}); nothing was loaded",
    )


def _hash(handle: Any, sink: Any = None, limit: int | None = None) -> tuple[str, int]:
    """sha256 (hex) and length of what `handle` holds (up to `limit` bytes), in chunks;
    with `sink`, each chunk is also written there."""
    sha = hashlib.sha256()
    size = 0
    while chunk := handle.read(CHUNK if limit is None else min(CHUNK, limit - size)):
        sha.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return sha.hexdigest(), size


@contextmanager
def _opened_dir(path: Path, where: str | None = None) -> Iterator[int]:
    """A directory's descriptor, opened without following a link at its last component."""
    try:
        fd = os.open(str(path_without_slash(path)), _DIR_FLAGS)
    except OSError as exc:
        raise _link_or(exc, ".", where or str(path)) from exc
    try:
        yield fd
    finally:
        os.close(fd)


def path_without_slash(path: Path) -> Path:
    # A trailing slash would make the kernel resolve a link at the last component.
    return Path(str(path).rstrip("/") or "/")


def _walk(
    dir_fd: int, prefix: str, where: str, depth: int = 0, count: list[int] | None = None
) -> Iterator[tuple[int, str, str]]:
    """(parent's descriptor, name, relative path) of every regular file, in name order.

    Links and special files are refused, never followed or read.
    """
    count = [0] if count is None else count
    if depth > MAX_DEPTH:
        raise JobError("ModelTampered", f"{where}: {prefix!r} is nested deeper than any model")
    for name in sorted(os.listdir(dir_fd)):
        relative = f"{prefix}{name}"
        count[0] += 1
        if count[0] > MAX_FILES:
            raise JobError("ModelTampered", f"{where} holds over {MAX_FILES} entries")
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            raise JobError(
                "ModelTampered",
                f"{where}: {relative!r} is a symbolic link: refused, not followed; nothing was "
                "loaded",
            )
        if stat.S_ISDIR(mode):
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise _link_or(exc, relative, where) from exc
            try:
                yield from _walk(child, f"{relative}/", where, depth + 1, count)
            finally:
                os.close(child)
        elif stat.S_ISREG(mode):
            yield dir_fd, name, relative
        else:
            raise JobError(
                "ModelTampered",
                f"{where}: {relative!r} is not a regular file or directory",
            )


def _open_file(dir_fd: int, name: str, relative: str, where: str) -> int:
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise _link_or(exc, relative, where) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise JobError("ModelTampered", f"{where}: {relative!r} is not a regular file")
    return fd


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _link_or(exc: OSError, relative: str, where: str) -> JobError:
    import errno

    what = "the model directory itself" if relative == "." else repr(relative)
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return JobError(
            "ModelTampered",
            f"{where}: {what} is a symbolic link (or not what it should be): refused, not followed",
        )
    if isinstance(exc, FileNotFoundError):
        return JobError("ModelTampered", f"{where}: {what} vanished while it was verified")
    return JobError("ModelTampered", f"{where}: {what} cannot be read: {exc.strerror}")
