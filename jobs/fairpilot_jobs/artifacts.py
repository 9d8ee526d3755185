"""One artifact store for `file://` and `s3://` URIs.

Stages read inputs and write outputs only through this module, so the same code runs on a
laptop, in the sandbox and in a pod. S3 goes through boto3 and takes its endpoint, region and
credentials from the usual AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_REGION`,
`AWS_ENDPOINT_URL_S3`, ...); `FAIRPILOT_S3_ENDPOINT_URL` overrides the endpoint, for MinIO
and other S3-compatible servers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from fairpilot_jobs.errors import JobError

ENDPOINT_ENV = "FAIRPILOT_S3_ENDPOINT_URL"
ALLOWED_ROOT_ENV = "FAIRPILOT_FILE_ROOT"


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
        relative = relative.lstrip("/")
        if self.scheme == "file":
            return Location("file", "", str(Path(self.path) / relative))
        base = self.path.rstrip("/")
        return Location("s3", self.bucket, f"{base}/{relative}" if base else relative)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def parse_uri(uri: str) -> Location:
    """Parse and check a URI; a relative or escaping `file://` path is refused."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        if parsed.netloc not in ("", "localhost"):
            raise JobError("InvalidURI", f"{uri}: file URIs take an absolute path (file:///...)")
        if not path.startswith("/"):
            raise JobError("InvalidURI", f"{uri}: file URIs take an absolute path (file:///...)")
        if ".." in Path(path).parts:
            raise JobError("InvalidURI", f"{uri}: '..' is not allowed in a path")
        root = os.environ.get(ALLOWED_ROOT_ENV)
        if root and not Path(path).resolve().is_relative_to(Path(root).resolve()):
            raise JobError("InvalidURI", f"{uri}: outside the allowed root {root}")
        return Location("file", "", path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise JobError("InvalidURI", f"{uri}: s3 URIs need a bucket (s3://bucket/key)")
        return Location("s3", parsed.netloc, parsed.path.lstrip("/"))
    raise JobError("InvalidURI", f"{uri}: only file:// and s3:// URIs are supported")


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


class ArtifactStore:
    """Reads and writes files under one root URI."""

    def __init__(self, root: str | Location) -> None:
        self.root = parse_uri(root) if isinstance(root, str) else root
        # The run that claimed this location (`claim`): a stage's further claims (the model's
        # registry folder) are made in its name, so that a retry of the run may take them.
        self.run_id: str | None = None

    # -- claiming ------------------------------------------------------------------------
    def claim(self, run_id: str | None, what: str = "output location") -> None:
        """Make the location this run's, or refuse: artifacts are never overwritten.

        An empty location is claimed by a marker created exclusively (a file opened with
        O_EXCL, an S3 put with If-None-Match), so two runs cannot both take it. A location that
        holds anything else is refused, unless its marker names `run_id`: the same run tried
        again (a Job's retry), which may write over its own partial output.
        """
        marker = json.dumps({"runId": run_id}).encode()
        self.run_id = run_id
        if not names(self.uri()) and self.create_exclusive(CLAIM_FILE, marker):
            return
        try:
            claimed = json.loads(read_bytes(self.uri(CLAIM_FILE))).get("runId")
        except (JobError, ValueError, AttributeError):
            claimed = None
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
            path = Path(target.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
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

    # -- writing -------------------------------------------------------------------------
    def uri(self, relative: str = "") -> str:
        return self.root.child(relative).uri if relative else self.root.uri

    def write_bytes(self, relative: str, data: bytes, content_type: str | None = None) -> str:
        target = self.root.child(relative)
        if target.scheme == "file":
            path = Path(target.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader never sees half a file (result.json above all).
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
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
        """Copy a local directory tree under `relative`; returns its URI."""
        local_dir = Path(local_dir)
        for file in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            self.write_bytes(
                f"{relative}/{file.relative_to(local_dir).as_posix()}", file.read_bytes()
            )
        return self.uri(relative)

    def delete(self, relative: str) -> None:
        target = self.root.child(relative)
        if target.scheme == "file":
            Path(target.path).unlink(missing_ok=True)
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
    location = parse_uri(uri)
    if location.scheme == "file":
        path = Path(location.path)
        if not path.is_file():
            raise JobError("NotFound", f"{uri} does not exist")
        return path.read_bytes()
    try:
        return _s3_client().get_object(Bucket=location.bucket, Key=location.path)["Body"].read()
    except Exception as exc:
        raise _s3_error(location, "reading", exc) from exc


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
        path = Path(tmp) / (location.name or "object")
        try:
            _s3_client().download_file(location.bucket, location.path, str(path))
        except Exception as exc:
            raise _s3_error(location, "reading", exc) from exc
        yield path


@contextmanager
def local_dir(uri: str) -> Iterator[Path]:
    """A local directory holding the tree under `uri`: itself, or a temporary download."""
    location = parse_uri(uri)
    if location.scheme == "file":
        path = Path(location.path)
        if not path.is_dir():
            raise JobError("NotFound", f"{uri} is not a directory")
        yield path
        return
    prefix = location.path.rstrip("/") + "/"
    with tempfile.TemporaryDirectory(prefix="fairpilot-") as tmp:
        count = 0
        try:
            paginator = _s3_client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(prefix) :]
                    if not relative or ".." in Path(relative).parts:
                        continue
                    target = Path(tmp) / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _s3_client().download_file(location.bucket, item["Key"], str(target))
                    count += 1
        except Exception as exc:
            raise _s3_error(location, "reading", exc) from exc
        if count == 0:
            raise JobError("NotFound", f"{uri} holds no files")
        yield Path(tmp)
