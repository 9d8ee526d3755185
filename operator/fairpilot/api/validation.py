"""Rules for what users and producers hand FairPilot: one-line errors, Kubernetes names, text.

Shared by the operator (specs of resources applied to the API), the Kafka bridge (payloads)
and the stage jobs (spec files), so that the same input gets the same answer on every way in.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import string
import unicodedata
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError

# Kubernetes' own rules (k8s.io/apimachinery/pkg/util/validation): resource names are DNS-1123
# subdomains (253 characters at most), Job and label-bearing names DNS-1123 labels (63), and
# label values 63 characters of this pattern (empty allowed).
DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_RE = re.compile(rf"^{DNS1123_LABEL}(\.{DNS1123_LABEL})*$")
DNS1123_LABEL_RE = re.compile(rf"^{DNS1123_LABEL}$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
MAX_SUBDOMAIN = 253
MAX_LABEL = 63
MAX_LABEL_PREFIX = 253
# The API server refuses an object whose annotations (keys and values) exceed 256 KiB in all.
MAX_ANNOTATIONS_BYTES = 256 * 1024

# Unicode categories that print nothing or something else than they are: controls (NUL,
# newline), format characters (right-to-left override, zero-width space), lone surrogates,
# private-use and unassigned code points, line and paragraph separators. An identifier with one
# of them looks like another identifier in `kubectl`, logs and reports, or breaks encoders.
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}

# A `..` path segment, written plainly or percent-encoded (the jobs decode `%2e` in file:// URIs).
DOT_SEGMENT = r"(^|/)(\.|%2[eE]){2}(/|$)"
_DOT_SEGMENT_RE = re.compile(DOT_SEGMENT)


def describe(
    error: ValidationError,
    limit: int = 8,
    shown: int = 80,
    model: type[BaseModel] | None = None,
) -> str:
    """pydantic's errors as one line: `field: problem (got value); ...`.

    pydantic's own text spans lines and embeds documentation links; a condition message, a
    dead-letter header and a job's stderr line each want one short line. The offending value is
    cut to `shown` characters so that a 500 KB string does not come back in the answer.
    `model`: the model that was validated; a field it does not have is then told the one it
    most likely meant (`targt: unknown field; did you mean `target`?`).
    """
    parts = []
    errors = error.errors(include_url=False)
    for item in errors[:limit]:
        where = ".".join(_shown(part, shown) for part in item["loc"]) or "spec"
        # Messages of our own validators quote the input: kept, but on one line.
        message = " ".join(item["msg"].removeprefix("Value error, ").split())
        if item["type"] == "extra_forbidden":
            message = "unknown field"
            meant = near_miss(model, item["loc"]) if model is not None else None
            if meant is not None:
                message += f"; did you mean `{meant}`?"
        got = ""
        if item["type"] not in ("missing", "extra_forbidden"):
            text = json.dumps(item.get("input"), default=str)
            got = f" (got {text[:shown]}{'…' if len(text) > shown else ''})"
        parts.append(f"{where}: {message}{got}")
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def near_miss(model: type[BaseModel], loc: tuple[str | int, ...]) -> str | None:
    """The field (its name as in the resource) that the unknown field at `loc` most likely
    meant: the closest name among those of the object that holds it, compared without case and
    `_` (`min_group_sise` finds `minGroupSize`); None when none is close (difflib)."""
    if not loc or not isinstance(loc[-1], str):
        return None
    try:
        schema = _schema(model)
    except Exception:  # a model pydantic cannot describe as JSON: no suggestion, still an error
        return None
    fields = _fields_at(schema, schema.get("$defs", {}), loc[:-1])
    by_key = {_loose(name): name for name in fields}
    close = difflib.get_close_matches(_loose(loc[-1]), list(by_key), n=1, cutoff=0.75)
    return by_key[close[0]] if close else None


@functools.lru_cache(maxsize=64)
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, mode="validation")


def _loose(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _fields_at(
    schema: dict[str, Any], defs: dict[str, Any], loc: tuple[str | int, ...]
) -> set[str]:
    """The field names of the object(s) at `loc` in a JSON schema (through references, unions,
    lists and maps)."""
    nodes = [schema]
    for part in loc:
        below = []
        for node in (each for n in nodes for each in _options(n, defs)):
            properties, items = node.get("properties") or {}, node.get("items")
            values = node.get("additionalProperties")
            if isinstance(part, str) and part in properties:
                below.append(properties[part])
            elif isinstance(part, int) and isinstance(items, dict):
                below.append(items)
            elif isinstance(values, dict):
                below.append(values)
        nodes = below
    return {
        name for n in nodes for each in _options(n, defs) for name in each.get("properties") or {}
    }


def _options(node: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    """What a schema node may be: itself, or what its $ref, anyOf, oneOf or allOf name."""
    if depth > 16:
        return []
    if "$ref" in node:
        target = defs.get(str(node["$ref"]).rsplit("/", 1)[-1])
        return _options(target, defs, depth + 1) if isinstance(target, dict) else []
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(node.get(key), list):
            return [o for each in node[key] for o in _options(each, defs, depth + 1)]
    return [node]


def _shown(part: str | int, limit: int) -> str:
    # A location is a field name, a list index, or a key of a user's map: the last may hold
    # anything (a newline, 500 KB), so it is quoted and cut where it would not read as itself.
    text = str(part)
    if isinstance(part, str) and (not text.isprintable() or len(text) > limit):
        quoted = json.dumps(text)
        return f"{quoted[:limit]}…" if len(quoted) > limit else quoted
    return text


def invisible_characters(text: str) -> list[str]:
    """The code points of `text` that are controls, format characters, surrogates, ..."""
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in _INVISIBLE]


def check_printable(text: str) -> str:
    """`text` when every character prints as itself; for pydantic AfterValidators."""
    bad = invisible_characters(text)
    if bad:
        shown = ", ".join(dict.fromkeys(bad[:5]))
        raise ValueError(f"holds invisible or control characters ({shown})")
    return text


def dot_segment(path: str) -> bool:
    """Whether a path (or URI) has a `..` segment, plainly or percent-encoded."""
    return bool(_DOT_SEGMENT_RE.search(path)) or ".." in unquote(path).split("/")


def is_dns1123_subdomain(name: str) -> bool:
    return len(name) <= MAX_SUBDOMAIN and bool(DNS1123_SUBDOMAIN_RE.match(name))


def is_dns1123_label(name: str) -> bool:
    return len(name) <= MAX_LABEL and bool(DNS1123_LABEL_RE.match(name))


def is_label_value(value: str) -> bool:
    return len(value) <= MAX_LABEL and bool(LABEL_VALUE_RE.match(value))


def is_qualified_name(key: str) -> bool:
    """A label or annotation key: `[prefix/]name`, prefix a DNS-1123 subdomain."""
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns1123_subdomain(prefix):
        return False
    return len(name) <= MAX_LABEL and bool(LABEL_NAME_RE.match(name))


def metadata_problems(metadata: dict[str, Any]) -> list[str]:
    """What the API server would refuse in an object's name, labels and annotations."""
    problems = []
    name = metadata.get("name")
    if not isinstance(name, str) or not is_dns1123_subdomain(name):
        problems.append(f"name {name!r} is not a DNS-1123 subdomain (lower case, 253 at most)")
    namespace = metadata.get("namespace")
    if namespace is not None and not (isinstance(namespace, str) and is_dns1123_label(namespace)):
        problems.append(f"namespace {namespace!r} is not a DNS-1123 label")
    for key, value in (metadata.get("labels") or {}).items():
        if not is_qualified_name(key):
            problems.append(f"label key {key!r} is not a qualified name")
        if not isinstance(value, str) or not is_label_value(value):
            problems.append(f"label {key}={value!r} is not a valid label value")
    annotations = metadata.get("annotations") or {}
    for key in annotations:
        if not is_qualified_name(key):
            problems.append(f"annotation key {key!r} is not a qualified name")
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        problems.append(f"annotations take {size} bytes, more than {MAX_ANNOTATIONS_BYTES}")
    return problems


# The placeholders a data-location or artifact-root template may use (fairpilot.access).
PLACEHOLDERS = frozenset({"namespace", "user_id"})


def template_problem(template: str) -> str | None:
    """Why a location template cannot be used, or None."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        return f"{template!r} is not a template: {exc}"
    unknown = fields - PLACEHOLDERS
    if unknown:
        return f"{template!r} names {sorted(unknown)}; only {{namespace}} and {{user_id}} exist"
    sample = template.format(namespace="ns", user_id="user")
    if not (sample.startswith("s3://") or sample.startswith("file:///")):
        return f"{template!r} is not an s3:// or file:/// location"
    if dot_segment(sample.split("://", 1)[1]) or invisible_characters(sample) or "?" in sample:
        return f"{template!r} has '..', '?' or invisible characters"
    if sample.startswith("s3://") and not sample[len("s3://") :].split("/", 1)[0]:
        return f"{template!r} names no bucket"
    return None
