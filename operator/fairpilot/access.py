"""Tenancy: what a namespace (and a user in it) may read, and where its stages write.

FairPilot runs on clusters that many teams share. The namespace is the boundary Kubernetes
enforces (RBAC decides who may create resources in it), so it is the boundary here too:

- **Data locations.** `data_locations` (operator-wide, or per namespace) are folders, written
  as templates with `{namespace}` and `{user_id}`: `s3://datasets/{namespace}/{user_id}/`.
  A resource reads only inside the folders its namespace and its `spec.userId` render to.
  The operator refuses anything else before it starts a Job (`references.check_uri`); the
  stage pod checks again (`FAIRPILOT_ALLOWED_LOCATIONS`, what `readable` returns), so that a
  job spec edited on the way cannot read elsewhere; the Kafka bridge dead-letters a message
  whose `uri` falls outside (`bridge.inbound`).
- **Artifacts.** Each namespace writes under its own prefix (`artifact_root`): the stage pods
  of namespace X may then be given credentials for X's prefix alone.
- **Credentials.** A pod can reference only Secrets of its own namespace; the Job names the
  namespace's Secret (`credentials_secret`), so a stage in X runs with X's credentials.

`{user_id}` is what the resource's spec says. Within a namespace anyone who may create a
resource may write any userId, so user folders separate people who share a namespace only as
far as they trust each other; namespaces separate teams that do not.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
from pathlib import PurePosixPath
from urllib.parse import unquote

from fairpilot.api.validation import dot_segment, invisible_characters
from fairpilot.config import OperatorConfig

ALLOWED_LOCATIONS_ENV = "FAIRPILOT_ALLOWED_LOCATIONS"

# What an id may be to go into a path or an S3 key as itself: one segment, no '%' (file://
# URIs are percent-decoded, so `%2F` would turn back into '/'), no '?' or '#' (they would cut
# a URI short), not starting with '.' (`.`, `..`), nothing invisible. E-mail addresses pass.
_PATH_SEGMENT = re.compile(r"^[^./\\%?#][^/\\%?#]*$")


def is_path_segment(value: str) -> bool:
    """Whether `value` can stand in a path or key as one segment, as it is."""
    return bool(_PATH_SEGMENT.match(value)) and not invisible_characters(value)


# -- folder names -------------------------------------------------------------------------
_SAFE = frozenset(string.ascii_letters + string.digits + "._-")
_MAX_FOLDER = 128
NO_USER = "~none"  # the folder of resources without a userId; no user id encodes to it


def folder_name(value: str | None) -> str:
    """A user-chosen id as one folder name of the artifact store, one to one.

    Ids of letters, digits, '.', '_' and '-' (not starting with '.') are their own folder.
    Any other character is written `~XX` per UTF-8 byte (`~` itself is `~7E`), so that
    "a b", "a_b" and "a~20b" stay three folders. Longer than 128 characters after that: a
    prefix, `~~` and the id's SHA-256, which no shorter id can be written as.
    """
    if value is None:
        return NO_USER
    if value and value[0] != "." and len(value) <= _MAX_FOLDER and set(value) <= _SAFE:
        return value
    encoded = "".join(
        char if char in _SAFE and not (index == 0 and char == ".") else _escape(char)
        for index, char in enumerate(value)
    )
    if len(encoded) <= _MAX_FOLDER and encoded:
        return encoded
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{encoded[: _MAX_FOLDER - 2 - len(digest)]}~~{digest}"


def _escape(char: str) -> str:
    return "".join(f"~{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


# -- templates ----------------------------------------------------------------------------
def render(template: str, namespace: str, user_id: str | None) -> str | None:
    """The location a template means for this namespace and user; None when it needs a user id
    that this resource has not, or one that cannot stand in a path as itself."""
    needs_user = "{user_id}" in template
    if needs_user and (user_id is None or not is_path_segment(user_id)):
        return None
    return template.format(namespace=namespace, user_id=user_id or "")


# -- membership ---------------------------------------------------------------------------
def _parts(uri: str) -> tuple[str, str, str] | None:
    """(scheme, bucket, path) as the stages read the URI: file paths percent-decoded and
    normalised, S3 keys literal."""
    if uri.startswith("file://"):
        path = unquote(uri[len("file://") :])
        if not path.startswith("/") or ".." in PurePosixPath(path).parts:
            return None
        return "file", "", str(PurePosixPath(path))
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or dot_segment(key):
            return None
        return "s3", bucket, key
    return None


def within(uri: str, folder: str) -> bool:
    """Whether `uri` is `folder` or inside it (a folder, not a string prefix: s3://b/alice
    does not hold s3://b/alice2/x)."""
    inner, outer = _parts(uri), _parts(folder)
    if inner is None or outer is None or inner[:2] != outer[:2]:
        return False
    path, base = inner[2], outer[2].rstrip("/")
    if outer[0] == "file":
        return PurePosixPath(path).is_relative_to(PurePosixPath(base or "/"))
    return base == "" or path == base or path.startswith(base + "/")


def problem(uri: str, allowed: list[str] | None) -> str | None:
    """Why `uri` may not be read, or None; `allowed` None means no restriction."""
    if allowed is None:
        return None
    if any(within(uri, folder) for folder in allowed):
        return None
    shown = ", ".join(allowed) if allowed else "none"
    return f"{uri[:200]!r} is outside the locations this namespace and user may read ({shown})"


def resolved_problem(uri: str, allowed: list[str] | None) -> str | None:
    """Why a `file://` URI may not be read once its links are resolved, or None: a link planted
    in one's own folder (or the folder itself a link) must not reach another tenant's files.
    The stage pod judges the same way (`artifacts._check_allowed`); the operator, which lists
    a ModelMonitor's folder itself, must not look there either. Not a file:// URI, no
    restriction, or a path that cannot be resolved (a NUL: refused as an input error anyway):
    None."""
    parts = _parts(uri)
    if allowed is None or parts is None or parts[0] != "file":
        return None
    try:
        real = os.path.realpath(parts[2])
        folders = [
            os.path.realpath(found[2])
            for folder in allowed
            if (found := _parts(folder)) is not None and found[0] == "file"
        ]
    except ValueError:
        return None
    if any(PurePosixPath(real).is_relative_to(PurePosixPath(folder)) for folder in folders):
        return None
    shown = ", ".join(allowed) if allowed else "none"
    return (
        f"{uri[:200]!r} leads through a link to {real[:200]!r}, outside the locations this "
        f"namespace and user may read ({shown})"
    )


# -- the operator's configuration, per namespace ------------------------------------------
def artifact_root(config: OperatorConfig, namespace: str) -> str:
    """Where a namespace's stages write: its own prefix of the artifact root."""
    entry = config.namespaces.get(namespace)
    template = (entry.artifact_root if entry and entry.artifact_root else None) or (
        config.artifact_root
    )
    root = template.rstrip("/")
    if "{namespace}" in root:
        return root.replace("{namespace}", namespace)
    return f"{root}/{namespace}"


def data_locations(config: OperatorConfig, namespace: str, user_id: str | None) -> list[str] | None:
    """The folders a resource of this namespace and user may read data from; None: any."""
    entry = config.namespaces.get(namespace)
    templates = entry.data_locations if entry and entry.data_locations is not None else None
    if templates is None:
        templates = config.data_locations or None
    if templates is None:
        return None
    return [loc for t in templates if (loc := render(t, namespace, user_id)) is not None]


def readable(config: OperatorConfig, namespace: str, user_id: str | None) -> list[str] | None:
    """What a stage pod may read: the data locations and its namespace's artifacts (models,
    reweighing tables, earlier results); None: any (no data locations are configured)."""
    data = data_locations(config, namespace, user_id)
    return None if data is None else [*data, artifact_root(config, namespace)]


def credentials_secret(config: OperatorConfig, namespace: str) -> str | None:
    """The Secret (in `namespace`) that stage pods take S3 credentials from, if any."""
    entry = config.namespaces.get(namespace)
    name = (entry.s3_credentials_secret if entry else None) or config.s3_credentials_secret
    return name.replace("{namespace}", namespace) if name else None
