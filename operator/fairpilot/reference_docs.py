"""docs/reference.md, the custom-resource reference, generated from the pydantic models.

It reads the structural schemas the CRDs are made of (`crds.openapi_schema`), not the models a
second time: what the page says of a field (type, default, bounds, enum, pattern, CEL rules) is
what the API server enforces, and the page cannot disagree with the CRDs. Descriptions come from
the models' `Field(description=...)` and docstrings, which the CRDs carry too. A test
regenerates the page and fails when the committed file is stale, as it does for the CRDs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairpilot import API_GROUP, API_VERSION
from fairpilot.api.kinds import KINDS, Kind
from fairpilot.crds import openapi_schema

DEFAULT_OUTPUT = Path("docs/reference.md")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")

_HEADER = """\
<!-- Generated from the pydantic models in operator/fairpilot/api by `fairpilot reference`
     (`make crds` runs it). Do not edit: change the models and regenerate. -->

# Custom resource reference

Every field of the four custom resources, API group `{group}`, version `{version}`. The
pydantic models in `operator/fairpilot/api/` are the single source of truth: the CRDs in
`crds/` and this page are both generated from them, and a test fails when either is stale.
What the resources are for, and how they work together, is in [resources.md](resources.md).

How to read the tables:

- **Field**: the path in the object; `[]` is an element of a list, `<key>` a key of a map.
- **Required**: `yes` where the API server refuses the object without the field (only within
  the object that holds it: a required field of an optional block is required once the block
  is given).
- **Default**: what the field is when omitted; blank when it is absent (or an empty list).
- **Rules**: what the API server checks at `kubectl apply` (the operator and the stage jobs
  check the same rules again, with the models, for objects that bypassed the schema).
- **Status** fields are written by the operator; a user never sets them.

| Kind | Short name | Its Job runs |
|---|---|---|
"""


@dataclass(frozen=True)
class Row:
    """One field of a schema, as the reference's tables show it."""

    path: str
    type: str
    required: bool
    default: str
    description: str
    rules: str


def rows(schema: dict[str, Any], prefix: str) -> list[Row]:
    """Every field below `schema`, depth first, in the models' declaration order."""
    out: list[Row] = []
    required = set(schema.get("required", []))
    for name, node in schema.get("properties", {}).items():
        path = f"{prefix}.{name}"
        out.append(
            Row(
                path=path,
                type=_type(node),
                required=name in required,
                default=_default(node),
                description=_prose(_description(node)),
                rules=_rules(node),
            )
        )
        out.extend(_children(node, path))
    return out


def _children(node: dict[str, Any], path: str) -> list[Row]:
    if "properties" in node:
        return rows(node, path)
    items = node.get("items")
    if isinstance(items, dict) and _is_object(items):
        return rows(items, f"{path}[]")
    values = node.get("additionalProperties")
    if isinstance(values, dict) and _is_object(values):
        return rows(values, f"{path}.<key>")
    return []


def _is_object(node: dict[str, Any]) -> bool:
    return "properties" in node


def _type(node: dict[str, Any]) -> str:
    items = node.get("items")
    if node.get("type") == "array" and isinstance(items, dict):
        return f"list of {_type(items)}"
    values = node.get("additionalProperties")
    if node.get("type") == "object" and isinstance(values, dict):
        return f"map of {_type(values)}"
    if "type" not in node:
        # A label value (string, number or boolean): the CRD cannot say which, the model can.
        return "any"
    kind = str(node["type"])
    return f"{kind} ({node['format']})" if "format" in node else kind


def _default(node: dict[str, Any]) -> str:
    if "default" not in node:
        return ""
    return _code(json.dumps(node["default"], ensure_ascii=False))


def _description(node: dict[str, Any]) -> str:
    text = str(node.get("description", ""))
    items = node.get("items")
    # A list of scalars has one row: the element's own description (an enum's docstring,
    # say) belongs in it, since no row of its own shows it.
    if isinstance(items, dict) and not _is_object(items) and items.get("description"):
        element = str(items["description"])
        text = f"{text} Each: {element}" if text else element
    return text


def _rules(node: dict[str, Any]) -> str:
    found = _bounds(node)
    items = node.get("items")
    if isinstance(items, dict) and not _is_object(items):
        found += [f"each {rule}" for rule in _bounds(items)]
    values = node.get("additionalProperties")
    if isinstance(values, dict) and not _is_object(values):
        found += [f"each value {rule}" for rule in _bounds(values)]
    if node.get("x-kubernetes-list-type") == "set":
        found.append("no duplicates")
    found += [rule["message"] for rule in node.get("x-kubernetes-validations", [])]
    return "; ".join(found)


def _bounds(node: dict[str, Any]) -> list[str]:
    found = []
    if "enum" in node:
        found.append("one of " + ", ".join(_code(str(value)) for value in node["enum"]))
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None:
        found.append(f"{'>' if node.get('exclusiveMinimum') else '>='} {low}")
    if high is not None:
        found.append(f"{'<' if node.get('exclusiveMaximum') else '<='} {high}")
    found += _range(node, "minLength", "maxLength", "characters")
    found += _range(node, "minItems", "maxItems", "items")
    found += _range(node, "minProperties", "maxProperties", "keys")
    if "pattern" in node:
        found.append(f"matches {_code(node['pattern'])}")
    return found


def _range(node: dict[str, Any], low_key: str, high_key: str, unit: str) -> list[str]:
    low, high = node.get(low_key), node.get(high_key)
    if low is not None and high is not None:
        return [f"{low}–{high} {unit}"]
    bound, word = (low, "at least") if low is not None else (high, "at most")
    if bound is None:
        return []
    return [f"{word} {bound} {unit.removesuffix('s') if bound == 1 else unit}"]


def _code(text: str) -> str:
    # A backtick inside would end the span early: fence with more backticks than it holds.
    fence = "``" if "`" in text else "`"
    padded = f" {text} " if fence == "``" else text
    return f"{fence}{padded}{fence}"


def _prose(text: str) -> str:
    """Descriptions as Markdown text: `g<generation>` outside a code span would be read as an
    HTML tag and vanish, so a `<` that starts a tag is escaped there (and only there: inside a
    code span the entity would show as typed; `<=` starts no tag and stays readable)."""
    parts = text.split("`")
    return "`".join(part if i % 2 else _TAG_START.sub("&lt;", part) for i, part in enumerate(parts))


def _cell(text: str) -> str:
    # One table row per line, and `|` would start a new cell (GFM reads `\|` as a literal
    # pipe, also inside code spans).
    return " ".join(text.split()).replace("|", "\\|")


def _table(found: list[Row]) -> list[str]:
    lines = [
        "| Field | Type | Required | Default | Description | Rules |",
        "|---|---|---|---|---|---|",
    ]
    for row in found:
        cells = [
            _code(row.path),
            row.type,
            "yes" if row.required else "",
            row.default,
            row.description,
            row.rules,
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return lines


def _kind_section(kind: Kind) -> list[str]:
    spec = openapi_schema(kind.spec)
    status = openapi_schema(kind.status, spec=False)
    names = ", ".join(_code(name) for name in kind.short_names)
    columns = [column.name for column in kind.columns if not column.priority]
    wide = [column.name for column in kind.columns if column.priority]
    shown = ", ".join(columns) + (f" (and with `-o wide`: {', '.join(wide)})" if wide else "")
    lines = [
        f"## {kind.kind}",
        "",
        f"`apiVersion: {kind.api_version}`, `kind: {kind.kind}`; plural `{kind.plural}`, "
        f"short name {names}, category `fairpilot`. Its Job runs "
        f"`fairpilot-job {kind.stage}`.",
        "",
        _prose(kind.description),
        "",
        f"`kubectl get {kind.plural}` shows: {shown}.",
        "",
        "### Spec",
        "",
    ]
    lines += _table(rows(spec, "spec"))
    across = spec.get("x-kubernetes-validations", [])
    if across:
        lines += ["", "Rules across fields (the API server refuses the object otherwise):", ""]
        lines += [f"- {rule['message']}" for rule in across]
    lines += ["", "### Status", ""]
    lines += _table(rows(status, "status"))
    return lines


def render() -> str:
    """The whole of docs/reference.md."""
    text = _HEADER.format(group=API_GROUP, version=API_VERSION)
    lines = [
        f"| [{kind.kind}](#{kind.kind.lower()}) | {', '.join(kind.short_names)} | "
        f"`fairpilot-job {kind.stage}` |"
        for kind in KINDS
    ]
    for kind in KINDS:
        lines += ["", *_kind_section(kind)]
    return text + "\n".join(lines) + "\n"


def write(path: Path = DEFAULT_OUTPUT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path


def is_current(path: Path = DEFAULT_OUTPUT) -> bool:
    """Whether the file at `path` is what the models generate now."""
    return path.is_file() and path.read_text(encoding="utf-8") == render()
