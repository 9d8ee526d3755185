"""One artifact store for `file://` and `s3://` URIs.

Stages read inputs and write outputs only through this module, so the same code runs on a
laptop, in the sandbox and in a pod. S3 goes through boto3 and takes its endpoint, region and
credentials from the usual AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_REGION`,
`AWS_ENDPOINT_URL_S3`, ...); `FAIRPILOT_S3_ENDPOINT_URL` overrides the endpoint, for MinIO
and other S3-compatible servers.

Links on the local disk (`file://`):

- Writes never follow a link. Below the *trusted directory* every directory is entered with
  `O_DIRECTORY | O_NOFOLLOW` relative to its parent's descriptor (and made with `mkdir` relative
  to it), so a planted symbolic link is refused (`UnsafePath`) and never followed, with no
  window between a check and a use. The trusted directory is `FAIRPILOT_FILE_ROOT` when the
  store's root lies under it (what the administrator set up, links included, is theirs; what
  lies below it is shared with every run, so the root's own folders under it are checked too),
  otherwise the parent of the store's root (the caller chose that path: on a laptop `/tmp` may
  well be a link, as on macOS). So the output folder itself and everything made below it are
  never links. Files are written to an unpredictable temporary name created exclusively
  (`O_EXCL | O_NOFOLLOW`) in the target directory, then renamed over the target (a rename
  replaces a link at the destination, it does not write through it).
- Reads of data (`local_file`, `local_dir`, `names`, `exists`) follow links: a user's dataset
  may well be a link on a laptop, and `FAIRPILOT_FILE_ROOT` is judged on the resolved path.
  `read_bytes`/`read_json` read FairPilot's own documents (a spec by URI, result.json,
  error.json, reweighing weights): a link as the file's last component is refused there
  (`UnsafePath`), and the store's own reads (`ArtifactStore.read_bytes`, the claim marker) use
  the same no-follow walk as writes.
- S3 keys are mapped to local names segment by segment: empty and `.` segments are dropped, a
  `..` segment, a control character or two keys naming one local file refuse the download
  (`UnsafeKey`), so nothing lands outside the download folder. A backslash is an ordinary
  character of a POSIX file name and is kept as such.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import secrets
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse, urlsplit

from fairpilot import access
from fairpilot.api.validation import invisible_characters
from fairpilot.errors import JobError

ENDPOINT_ENV = "FAIRPILOT_S3_ENDPOINT_URL"
ALLOWED_ROOT_ENV = "FAIRPILOT_FILE_ROOT"
ALLOWED_LOCATIONS_ENV = access.ALLOWED_LOCATIONS_ENV

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# A directory of the trusted part (FAIRPILOT_FILE_ROOT or the root's parent), links followed.
_OPEN_TRUSTED_DIR = os.O_RDONLY | _DIRECTORY | _CLOEXEC
# Any directory below it: a link is refused (ELOOP), not followed.
_OPEN_DIR = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
# A file read: no link as its last component; O_NONBLOCK so that a planted FIFO cannot hang us.
_OPEN_READ = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
# A file created: never one that exists, never through a link.
_OPEN_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
# The longest file name most file systems take (bytes).
_NAME_MAX = 255


@dataclass(frozen=True)
class Location:
    """A parsed URI: scheme `file` with an absolute path, or `s3` with bucket and key."""

    scheme: str
    bucket: str  # empty for file://
    path: str  # absolute path for file://, key (no leading slash) for s3://

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        return f"s3://{self.bucket}/{self.path}"

    def child(self, relative: str) -> Location:
        if ".." in relative.split("/"):
            raise JobError("UnsafePath", f"{self.uri}: {relative!r} climbs out with '..'")
        relative = relative.lstrip("/")
        if self.scheme == "file":
            return Location("file", "", str(Path(self.path) / relative))
        base = self.path.rstrip("/")
        return Location("s3", self.bucket, f"{base}/{relative}" if base else relative)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def _escaped(text: str, limit: int = 200) -> str:
    """`text` with every control or invisible character written as a Python escape (`\\x00`),
    cut to `limit` characters: an error message shows what was given on one printable line."""
    shown = "".join(
        char.encode("unicode_escape").decode("ascii") if invisible_characters(char) else char
        for char in text[:limit]
    )
    return shown + ("…" if len(text) > limit else "")


def _refuse_invisible(uri: str, text: str, where: str) -> None:
    """An input error when `text` (the URI, or its decoded path) holds a control character (NUL,
    newline, escape, DEL), a format character (zero-width space, right-to-left override) or
    another invisible one: it would name another file than the one shown, cut a path at a NUL,
    or be dropped by the URL parser (tab and newline are)."""
    bad = invisible_characters(text)
    if bad:
        codes = ", ".join(dict.fromkeys(bad[:5]))
        raise JobError(
            "InvalidURI",
            f"{_escaped(uri)}: {where} holds control or invisible characters ({codes}): "
            f"{_escaped(text)}",
        )


def parse_uri(uri: str) -> Location:
    """Parse and check a URI; a relative or escaping `file://` path is refused, and so is
    a control or invisible character anywhere in it (decoded or not)."""
    _refuse_invisible(uri, uri, "the URI")
    try:
        parsed = urlparse(uri)
    except ValueError as exc:  # an unbalanced `[` in the host, ...
        raise JobError("InvalidURI", f"{uri}: not a URI ({exc})") from exc
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        _refuse_invisible(uri, path, "the decoded path")
        if parsed.netloc not in ("", "localhost"):
            raise JobError("InvalidURI", f"{uri}: file URIs take an absolute path (file:///...)")
        if not path.startswith("/"):
            raise JobError("InvalidURI", f"{uri}: file URIs take an absolute path (file:///...)")
        if ".." in Path(path).parts:
            raise JobError("InvalidURI", f"{uri}: '..' is not allowed in a path")
        root = os.environ.get(ALLOWED_ROOT_ENV)
        if root and not Path(path).resolve().is_relative_to(Path(root).resolve()):
            raise JobError("InvalidURI", f"{uri}: outside the allowed root {root}")
        location = Location("file", "", path)
    elif parsed.scheme == "s3":
        if not parsed.netloc:
            raise JobError("InvalidURI", f"{uri}: s3 URIs need a bucket (s3://bucket/key)")
        # The key is not percent-decoded (S3 keys are taken as written), so the check of the
        # whole URI above covers it.
        location = Location("s3", parsed.netloc, parsed.path.lstrip("/"))
    else:
        raise JobError("InvalidURI", f"{uri}: only file:// and s3:// URIs are supported")

    _check_allowed(uri, location)
    return location


def _check_allowed(uri: str, location: Location) -> None:
    """The location must lie in one its namespace and user may use, as the operator judged
    before it started the Job (`fairpilot.access`; the Job's FAIRPILOT_ALLOWED_LOCATIONS). A
    file:// path is judged as written and as resolved: a link planted in one's own folder
    must not reach another tenant's files."""
    value = os.environ.get(ALLOWED_LOCATIONS_ENV)
    if value is None:
        return
    try:
        allowed = json.loads(value)
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise ValueError("not a list of URIs")
    except ValueError as exc:
        raise JobError(
            "LocationNotAllowed", f"{ALLOWED_LOCATIONS_ENV} is unusable: {exc}"
        ) from None
    # A file:// path is already percent-decoded here; `access.within` decodes a URI's path
    # once more, so it is given the path encoded again: `/data/a%2Fx` (a file of /data whose
    # name holds `%2F`) must not be judged as `/data/a/x`.
    written = _file_uri(location.path) if location.scheme == "file" else location.uri
    inside = any(access.within(written, folder) for folder in allowed)
    if inside and location.scheme == "file":
        real = _file_uri(os.path.realpath(location.path))
        inside = any(
            access.within(real, _file_uri(os.path.realpath(unquote(folder[len("file://") :]))))
            for folder in allowed
            if folder.startswith("file://")
        )
    if not inside:
        raise JobError(
            "LocationNotAllowed",
            f"{uri[:200]} is outside the locations this namespace and user may read "
            f"({', '.join(allowed) or 'none'})",
        )


def _file_uri(path: str) -> str:
    """The `file://` URI of a (decoded) local path, for `access.within`, which decodes it."""
    return "file://" + quote(path, safe="/")


def relative_link(page_uri: str, target_uri: str) -> str:
    """The href from the page at `page_uri` to `target_uri`: a relative path where both lie in
    the same store (scheme and bucket or host), so that it works wherever the store is opened
    (a local folder, a console serving S3); else the target's URI."""
    page, target = urlsplit(page_uri), urlsplit(target_uri)
    if (page.scheme, page.netloc) != (target.scheme, target.netloc) or not page.scheme:
        return target_uri
    folder = posixpath.dirname(page.path) or "/"
    return posixpath.relpath(target.path or "/", folder)


@cache
def _s3_client() -> Any:
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get(ENDPOINT_ENV) or None
    # Adaptive retries ride out short S3 hiccups; a longer outage fails the job clearly.
    config = Config(retries={"max_attempts": 5, "mode": "adaptive"}, connect_timeout=10)
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def _s3_error(location: Location, action: str, exc: Exception) -> JobError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            return JobError("NotFound", f"{location.uri} does not exist")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return JobError("AccessDenied", f"{action} {location.uri}: access denied ({code})")
        return JobError("StorageError", f"{action} {location.uri}: {code or exc}")
    return JobError("StorageUnavailable", f"{action} {location.uri}: {exc}")


CLAIM_FILE = ".fairpilot-run.json"


# -- the local disk, links never followed (see the module's docstring) -------------------------
def _segments(path: str) -> list[str]:
    """A path's names, without the empty and `.` ones that `//` and `/./` make."""
    return [part for part in path.split("/") if part not in ("", ".")]


def _trusted_split(root: str, trusted: str | None = None) -> tuple[str, list[str]]:
    """Where the no-follow walk to a store's root starts, and the root's names below it.

    Links at and above the start are the administrator's (FAIRPILOT_FILE_ROOT) or the caller's
    (the folder they named the output in); from there on down, none is followed. Under a file
    root, the folders between it and the store's root are shared with every other run, so they
    are walked too: a link there (even one staying inside the root) would hand one run's output
    to another's folder. Without one, the caller chose the output path, and only the output
    folder itself and what is below it are walked.
    `trusted`, a folder above the root that the caller knows the administrator set up (the
    bridge's: the namespace's artifact root), starts the walk there when no file root does.
    """
    parts = _segments(root)
    allowed = os.environ.get(ALLOWED_ROOT_ENV)
    if allowed:
        # As written, then resolved: parse_uri accepts a path under either.
        for base in dict.fromkeys((os.path.abspath(allowed), os.path.realpath(allowed))):
            base_parts = _segments(base)
            if parts[: len(base_parts)] == base_parts:
                return "/" + "/".join(base_parts), parts[len(base_parts) :]
    if trusted:
        base_parts = _segments(trusted)
        if base_parts and parts[: len(base_parts)] == base_parts and len(parts) > len(base_parts):
            return "/" + "/".join(base_parts), parts[len(base_parts) :]
    if not parts:
        return "/", []
    return "/" + "/".join(parts[:-1]), parts[-1:]


def _split(relative: str) -> tuple[list[str], str]:
    """The folders and the file name of a path below a store's root; `..` is refused."""
    parts = _segments(relative)
    if ".." in parts:
        raise JobError("UnsafePath", f"{relative!r}: '..' is not allowed below an output location")
    if not parts:
        raise JobError("UnsafePath", f"{relative!r} names no file")
    return parts[:-1], parts[-1]


def _open_child_dir(parent_fd: int, name: str, shown: str) -> int:
    """Open directory `name` of `parent_fd` without following a link; JobError for a link or a
    non-directory, FileNotFoundError when there is nothing of that name."""
    try:
        return os.open(name, _OPEN_DIR, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise
        try:
            mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            raise exc from None
        if stat.S_ISLNK(mode):
            raise JobError(
                "UnsafePath",
                f"{shown} is a symbolic link: FairPilot follows no link in an output "
                "location; give one whose folders are plain folders",
            ) from None
        raise JobError("NotADirectory", f"{shown} is not a directory") from None


def _open_dir(root: str, below: list[str], create: bool, trusted: str | None = None) -> int:
    """A descriptor of folder `root`/`below`, reached without following a link from the trusted
    start down (see `_trusted_split`); missing folders are made when `create`, else
    FileNotFoundError. The caller closes it."""
    start, names = _trusted_split(root, trusted)
    names = names + below
    try:
        if create:
            os.makedirs(start, exist_ok=True)
        fd = os.open(start, _OPEN_TRUSTED_DIR)
    except (FileExistsError, NotADirectoryError):
        raise JobError("NotADirectory", f"{start} is not a directory") from None
    shown = start.rstrip("/")
    try:
        for name in names:
            shown = f"{shown}/{name}"
            try:
                child = _open_child_dir(fd, name, shown)
            except FileNotFoundError:
                if not create:
                    raise
                # Made meanwhile by another writer: opened as any other, a link refused.
                with suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
                child = _open_child_dir(fd, name, shown)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_atomically(dir_fd: int, name: str, data: bytes) -> None:
    """Write `name` in the folder `dir_fd` through a temporary file, then rename.

    The temporary file is made in the same folder (so the rename is atomic), under a name no
    one can guess, exclusively and without following a link (O_EXCL | O_NOFOLLOW): a file or
    link planted in advance is never written to. The rename replaces a link at `name` rather
    than writing through it. A reader never sees half a file (result.json above all).
    """
    for _ in range(16):
        temporary = f".{name[: _NAME_MAX - 40]}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(temporary, _OPEN_CREATE, 0o666, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:  # 16 collisions of 64 random bits: someone is making our names
        raise JobError("UnsafePath", f"cannot create a temporary file for {name}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


# FairPilot's own documents (result.json, error.json, a spec, a claim marker) are at most a few
# MB (a result with every group of 16 sensitive features of 10,000 groups each: about 21 MB);
# one larger was not written by a stage, and is refused rather than read into the operator's
# memory.
MAX_DOCUMENT_BYTES = 64 * 2**20


def _too_large(shown: str, size: int, limit: int) -> JobError:
    return JobError(
        "DocumentTooLarge",
        f"{shown} is {size:,} bytes, more than FairPilot reads of its own documents "
        f"({limit:,}): not written by a stage",
    )


def _read_file(name: str, dir_fd: int | None, shown: str, limit: int | None = None) -> bytes:
    """The bytes of a regular file, never read through a link as its last component (and never
    blocking on a FIFO); JobError NotFound when there is no such file, UnsafePath for a link,
    DocumentTooLarge past `limit` bytes."""
    try:
        fd = os.open(name, _OPEN_READ, dir_fd=dir_fd)
    except FileNotFoundError:
        raise JobError("NotFound", f"{shown} does not exist") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise JobError(
                "UnsafePath", f"{shown} is a symbolic link: FairPilot reads its own files only"
            ) from None
        if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.ENXIO):
            raise JobError("NotFound", f"{shown} does not exist") from None
        raise
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):  # a folder, a FIFO, a device
            raise JobError("NotFound", f"{shown} does not exist (not a file)")
        if limit is not None and found.st_size > limit:
            raise _too_large(shown, found.st_size, limit)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read() if limit is None else handle.read(limit + 1)
    if limit is not None and len(data) > limit:  # grown since
        raise _too_large(shown, len(data), limit)
    return data


def _plain_files(top: Path) -> list[str]:
    """The files under `top`, relative, sorted; a link or anything else than a folder or a
    regular file refuses the whole tree (UnsafePath): a model folder that the train stage wrote
    holds none, so one there was put there by someone else."""
    found: list[str] = []

    def walk(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                relative = f"{prefix}{entry.name}"
                if entry.is_symlink():
                    raise JobError(
                        "UnsafePath",
                        f"{top}/{relative} is a symbolic link: only plain files are uploaded",
                    )
                if entry.is_dir(follow_symlinks=False):
                    walk(Path(entry.path), f"{relative}/")
                elif entry.is_file(follow_symlinks=False):
                    found.append(relative)
                else:
                    raise JobError(
                        "UnsafePath", f"{top}/{relative} is not a regular file: not uploaded"
                    )

    walk(top, "")
    return sorted(found)


class ArtifactStore:
    """Reads and writes files under one root URI."""

    def __init__(self, root: str | Location, trusted: str | None = None) -> None:
        """`trusted`: a `file://` folder above the root from which, down, no link is followed
        (`_trusted_split`), when FAIRPILOT_FILE_ROOT does not already say one."""
        self.root = parse_uri(root) if isinstance(root, str) else root
        self.trusted = (
            parse_uri(trusted).path
            if trusted and trusted.startswith("file://") and self.root.scheme == "file"
            else None
        )
        # The run that claimed this location (`claim`): a stage's further claims (the model's
        # registry folder) are made in its name, so that a retry of the run may take them.
        self.run_id: str | None = None

    # -- the local disk ----------------------------------------------------------------------
    @contextmanager
    def _folder(self, below: list[str], create: bool) -> Iterator[int]:
        """A descriptor of the root's folder `below`, reached without following links."""
        fd = _open_dir(self.root.path, below, create, self.trusted)
        try:
            yield fd
        finally:
            os.close(fd)

    # -- claiming ------------------------------------------------------------------------
    def claim(self, run_id: str | None, what: str = "output location") -> None:
        """Make the location this run's, or refuse: artifacts are never overwritten.

        An empty location is claimed by a marker created exclusively (a file opened with
        O_EXCL, an S3 put with If-None-Match), so two runs cannot both take it. A location that
        holds anything else is refused, unless its marker names `run_id`: the same run tried
        again (a Job's retry), which may write over its own partial output. On the local disk
        the location is made first, and refused when it (or a folder leading to it below the
        file root) is a link.
        """
        marker = json.dumps({"runId": run_id}).encode()
        self.run_id = run_id
        if self.root.scheme == "file":
            with self._folder([], create=True):
                pass
        if not names(self.uri()) and self.create_exclusive(CLAIM_FILE, marker):
            return
        try:
            claimed = json.loads(self.read_bytes(CLAIM_FILE)).get("runId")
        except (JobError, ValueError, AttributeError):
            claimed = None  # none, unreadable, or a link: not this run's
        if run_id is not None and claimed == run_id:
            return
        self.run_id = None
        raise JobError(
            "OutputNotEmpty",
            f"{self.uri()} already holds another run's artifacts ({what}); FairPilot never "
            "writes over earlier results: give an output location of its own",
        )

    def create_exclusive(self, relative: str, data: bytes) -> bool:
        """Create a file that must not exist yet; False when it does (someone else made it)."""
        target = self.root.child(relative)
        if target.scheme == "file":
            folders, name = _split(relative)
            with self._folder(folders, create=True) as dir_fd:
                try:
                    fd = os.open(name, _OPEN_CREATE, 0o644, dir_fd=dir_fd)
                except FileExistsError:  # a file, or a link planted there: not ours either way
                    return False
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
            return True
        from botocore.exceptions import ClientError

        try:
            _s3_client().put_object(
                Bucket=target.bucket, Key=target.path, Body=data, IfNoneMatch="*"
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise _s3_error(target, "writing", exc) from exc
        except Exception as exc:
            raise _s3_error(target, "writing", exc) from exc

    def read_bytes(self, relative: str) -> bytes:
        """One of the store's own files (the claim marker): on the local disk no link is
        followed, neither a folder on the way nor the file itself."""
        target = self.root.child(relative)
        if target.scheme != "file":
            return read_bytes(target.uri)
        folders, name = _split(relative)
        try:
            with self._folder(folders, create=False) as dir_fd:
                return _read_file(name, dir_fd, target.path, MAX_DOCUMENT_BYTES)
        except FileNotFoundError:
            raise JobError("NotFound", f"{target.uri} does not exist") from None

    # -- writing -------------------------------------------------------------------------
    def uri(self, relative: str = "") -> str:
        return self.root.child(relative).uri if relative else self.root.uri

    def write_bytes(self, relative: str, data: bytes, content_type: str | None = None) -> str:
        target = self.root.child(relative)
        if target.scheme == "file":
            folders, name = _split(relative)
            with self._folder(folders, create=True) as dir_fd:
                _write_atomically(dir_fd, name, data)
        else:
            extra = {"ContentType": content_type} if content_type else {}
            try:
                _s3_client().put_object(Bucket=target.bucket, Key=target.path, Body=data, **extra)
            except Exception as exc:
                raise _s3_error(target, "writing", exc) from exc
        return target.uri

    def write_text(self, relative: str, text: str, content_type: str = "text/plain") -> str:
        return self.write_bytes(relative, text.encode("utf-8"), f"{content_type}; charset=utf-8")

    def write_json(self, relative: str, payload: Any) -> str:
        text = json.dumps(payload, indent=2, sort_keys=False, default=_json_default)
        return self.write_bytes(relative, text.encode("utf-8"), "application/json")

    def upload_dir(self, local_dir: str | Path, relative: str) -> str:
        """Copy a local directory tree under `relative`; returns its URI.

        The tree must hold plain files and folders only: a link in it (to /etc/passwd, to a
        folder elsewhere) refuses the upload before anything is written, and each file is
        opened without following a link, in case one is swapped in meanwhile.
        """
        local_dir = Path(local_dir)
        for file in _plain_files(local_dir):
            data = _read_file(str(local_dir / file), None, str(local_dir / file))
            self.write_bytes(f"{relative}/{file}", data)
        return self.uri(relative)

    def files(self) -> list[str]:
        """Every file under the root (links included, never followed), relative, sorted."""
        if self.root.scheme == "file":
            found = []
            for folder, dirs, names_here in os.walk(self.root.path, followlinks=False):
                below = Path(folder).relative_to(self.root.path)
                linked = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
                for name in [*names_here, *linked]:
                    found.append((below / name).as_posix())
            return sorted(found)
        prefix = self.root.path.rstrip("/") + "/" if self.root.path else ""
        try:
            paginator = _s3_client().get_paginator("list_objects_v2")
            return sorted(
                item["Key"][len(prefix) :]
                for page in paginator.paginate(Bucket=self.root.bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            )
        except Exception as exc:
            raise _s3_error(self.root, "listing", exc) from exc

    def clear_own_attempt(self) -> None:
        """Remove what an earlier attempt of the claiming run left (a Job's retry), all but the
        claim marker. Only for a location this run claimed (or one inside it): `claim` made
        sure it holds nothing of another run's."""
        for name in self.files():
            if name != CLAIM_FILE:
                self.delete(name)

    def delete(self, relative: str) -> None:
        target = self.root.child(relative)
        if target.scheme == "file":
            folders, name = _split(relative)
            try:
                with self._folder(folders, create=False) as dir_fd:
                    os.unlink(name, dir_fd=dir_fd)  # a link is removed, not what it points to
            except FileNotFoundError:
                pass
            return
        try:
            _s3_client().delete_object(Bucket=target.bucket, Key=target.path)
        except Exception as exc:
            raise _s3_error(target, "deleting", exc) from exc


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- reading ------------------------------------------------------------------------------
def names(uri: str) -> list[str]:
    """The entries directly under a location (files and folders, folders without their '/'),
    sorted; empty when there is nothing there."""
    location = parse_uri(uri)
    if location.scheme == "file":
        path = Path(location.path)
        return sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []
    prefix = location.path.rstrip("/") + "/" if location.path else ""
    found: set[str] = set()
    try:
        paginator = _s3_client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix, Delimiter="/"):
            found.update(item["Key"][len(prefix) :] for item in page.get("Contents", []))
            found.update(
                item["Prefix"][len(prefix) :].rstrip("/") for item in page.get("CommonPrefixes", [])
            )
    except Exception as exc:
        raise _s3_error(location, "listing", exc) from exc
    return sorted(name for name in found if name)


@dataclass(frozen=True)
class Listed:
    """One object (file) under a prefix, as a listing gives it."""

    uri: str
    modified: datetime  # UTC
    size: int


MAX_LISTED = 100_000


def listing(uri: str, limit: int = MAX_LISTED) -> list[Listed]:
    """Every object under a prefix, in its subfolders too, oldest first (then by URI); at most
    `limit`. Names starting with '.' (a file still being written, by the usual convention) and,
    on a disk, links and anything but regular files are left out: a link would let a batch
    name a file outside the prefix."""
    location = parse_uri(uri)
    found: list[Listed] = []
    if location.scheme == "file":
        top = Path(location.path)
        if not top.is_dir():
            return []
        for folder, dirs, files in os.walk(top, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(folder) / name
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    continue
                modified = datetime.fromtimestamp(info.st_mtime, UTC)
                found.append(Listed(f"file://{quote(str(path))}", modified, info.st_size))
                if len(found) >= limit:
                    break
            if len(found) >= limit:
                break
    else:
        prefix = location.path.rstrip("/") + "/" if location.path else ""
        try:
            paginator = _s3_client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/") or key.rsplit("/", 1)[-1].startswith("."):
                        continue
                    modified = item["LastModified"].astimezone(UTC)
                    found.append(Listed(f"s3://{location.bucket}/{key}", modified, item["Size"]))
                if len(found) >= limit:
                    break
        except Exception as exc:
            raise _s3_error(location, "listing", exc) from exc
    return sorted(found[:limit], key=lambda item: (item.modified, item.uri))


def exists(uri: str) -> bool:
    location = parse_uri(uri)
    if location.scheme == "file":
        return Path(location.path).exists()
    try:
        _s3_client().head_object(Bucket=location.bucket, Key=location.path)
        return True
    except Exception as exc:
        error = _s3_error(location, "reading", exc)
        if error.reason == "NotFound":
            return False
        raise error from exc


def read_bytes(uri: str) -> bytes:
    """A document's bytes. Used for FairPilot's own documents only (a spec by URI, result.json,
    error.json, weights), never for data: on the local disk a link as the file's last component
    is refused (UnsafePath) rather than read, as a link planted in an output location would
    hand its target (a secret of the reader's) to whoever reads the result."""
    location = parse_uri(uri)
    if location.scheme == "file":
        return _read_file(location.path, None, uri, MAX_DOCUMENT_BYTES)
    try:
        found = _s3_client().get_object(Bucket=location.bucket, Key=location.path)
        with contextlib.closing(found["Body"]) as body:
            size = int(found.get("ContentLength") or 0)
            if size > MAX_DOCUMENT_BYTES:
                raise _too_large(uri, size, MAX_DOCUMENT_BYTES)
            data = body.read(MAX_DOCUMENT_BYTES + 1)
    except JobError:
        raise
    except Exception as exc:
        raise _s3_error(location, "reading", exc) from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _too_large(uri, len(data), MAX_DOCUMENT_BYTES)
    return data


def read_json(uri: str) -> Any:
    try:
        return json.loads(read_bytes(uri))
    except json.JSONDecodeError as exc:
        raise JobError("InvalidJSON", f"{uri} is not valid JSON: {exc}") from exc


@contextmanager
def local_file(uri: str) -> Iterator[Path]:
    """A local path holding the object: the file itself, or a temporary download."""
    location = parse_uri(uri)
    if location.scheme == "file":
        path = Path(location.path)
        if not path.is_file():
            raise JobError("NotFound", f"{uri} does not exist")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="fairpilot-") as tmp:
        # The object's name, for its suffix (`.csv.gz`), when it is a plain file name.
        name = location.name
        if name in ("", ".", "..") or len(name.encode()) > _NAME_MAX:
            name = "object"
        path = Path(tmp) / name
        try:
            _s3_client().download_file(location.bucket, location.path, str(path))
        except Exception as exc:
            raise _s3_error(location, "reading", exc) from exc
        yield path


def _download_plan(uri: str, prefix: str, keys: list[str]) -> dict[tuple[str, ...], str]:
    """The local name (as its path's names) of each key under `prefix`.

    A key is cut into names at `/`; empty and `.` names are dropped (`a//b` and `a/./b` are
    `a/b`, and `prefix//etc/x` is `etc/x`, not `/etc/x`); a key ending in `/` is a console's
    "folder" and holds no file. A `..` name, a control or invisible character, a name too long
    for a file, two keys naming one file, or a file where another key needs a folder refuse the
    whole download (UnsafeKey): the train stage writes no such keys, and a silent pick of one
    of them would load a model that no one wrote.
    """
    plan: dict[tuple[str, ...], str] = {}
    for key in keys:
        relative = key[len(prefix) :]
        if not relative or relative.endswith("/"):
            continue
        bad = invisible_characters(key)
        if bad:
            codes = ", ".join(dict.fromkeys(bad[:5]))
            raise JobError(
                "UnsafeKey", f"{uri}: object '{_escaped(key)}' holds control characters ({codes})"
            )
        names = tuple(_segments(relative))
        if ".." in names:
            raise JobError(
                "UnsafeKey", f"{uri}: object {key!r} has a '..' segment; it is not downloaded"
            )
        if not names or any(len(name.encode()) > _NAME_MAX for name in names):
            raise JobError("UnsafeKey", f"{uri}: object {key!r} names no local file")
        if names in plan:
            raise JobError(
                "UnsafeKey", f"{uri}: objects {plan[names]!r} and {key!r} name the same file"
            )
        plan[names] = key
    folders = {names[:end] for names in plan for end in range(1, len(names))}
    for names, key in plan.items():
        if names in folders:
            raise JobError(
                "UnsafeKey", f"{uri}: object {key!r} is both a file and a folder of other objects"
            )
    return plan


@contextmanager
def local_dir(uri: str) -> Iterator[Path]:
    """A local directory holding the tree under `uri`: itself, or a temporary download (keys
    mapped to local names by `_download_plan`: nothing lands outside the folder)."""
    location = parse_uri(uri)
    if location.scheme == "file":
        path = Path(location.path)
        if not path.is_dir():
            raise JobError("NotFound", f"{uri} is not a directory")
        yield path
        return
    base = location.path.rstrip("/")
    prefix = f"{base}/" if base else ""
    try:
        paginator = _s3_client().get_paginator("list_objects_v2")
        keys = [
            item["Key"]
            for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]
    except Exception as exc:
        raise _s3_error(location, "reading", exc) from exc
    plan = _download_plan(uri, prefix, keys)
    if not plan:
        raise JobError("NotFound", f"{uri} holds no files")
    with tempfile.TemporaryDirectory(prefix="fairpilot-") as tmp:
        folder = Path(tmp).resolve()
        for names, key in sorted(plan.items()):
            target = folder.joinpath(*names)
            # Cannot fail after the plan's checks; kept as the last word on where files land.
            if not target.resolve().is_relative_to(folder):
                raise JobError("UnsafeKey", f"{uri}: object {key!r} would land outside")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                _s3_client().download_file(location.bucket, key, str(target))
            except Exception as exc:
                raise _s3_error(location.child(key[len(prefix) :]), "reading", exc) from exc
        yield folder
