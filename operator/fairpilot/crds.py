"""CustomResourceDefinitions generated from the pydantic models (the single source of truth).

pydantic writes JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: no `$ref`,
no `anyOf` of types, `nullable` instead of a null type, boolean `exclusiveMinimum`, no
`additionalProperties: false` (unknown fields are pruned instead). This module converts one
into the other and writes `crds/*.yaml`; a test regenerates them and fails on drift.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from fairpilot import API_GROUP, API_VERSION
from fairpilot.api import labels as label
from fairpilot.api.kinds import KINDS, Kind

_DROPPED = {"title"}


def openapi_schema(model: Any, *, spec: bool = True) -> dict[str, Any]:
    """The model's schema as a structural OpenAPI v3 schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _convert(raw, definitions, spec)


def _convert(node: dict[str, Any], definitions: dict[str, Any], spec: bool) -> dict[str, Any]:
    node = copy.deepcopy(node)
    if "$ref" in node:
        target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
        # Keys beside the reference (description, default) describe this use of it.
        node = {**copy.deepcopy(target), **node}
    if "anyOf" in node:
        options = node.pop("anyOf")
        concrete = [option for option in options if option != {"type": "null"}]
        nullable = len(concrete) < len(options)
        if len(concrete) == 1:
            converted = _convert(concrete[0], definitions, spec)
            node = {
                **converted,
                **{k: v for k, v in node.items() if k != "default" or v is not None},
            }
        else:
            # A scalar of several types (a label value: string, number or boolean).
            node["x-kubernetes-preserve-unknown-fields"] = True
        if nullable:
            node["nullable"] = True
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "additionalProperties":
            if value is False:
                continue  # structural schemas prune unknown fields instead
            out[key] = _convert(value, definitions, spec) if isinstance(value, dict) else value
        elif key == "properties":
            out[key] = {name: _convert(prop, definitions, spec) for name, prop in value.items()}
        elif key == "items":
            out[key] = _convert(value, definitions, spec)
        elif key == "propertyNames":
            # Kubernetes' schema language has no propertyNames: the API server refuses the CRD
            # (strict field validation). The same constraint on map keys as a CEL rule.
            rule = _key_rule(value)
            if rule:
                out.setdefault("x-kubernetes-validations", []).append(rule)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        else:
            out[key] = value
    if (
        spec
        and out.get("type") == "array"
        and out.get("items", {}).get("type") in ("string", "integer")
    ):
        out["x-kubernetes-list-type"] = "set"  # duplicates mean nothing in these lists
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _key_rule(names: dict[str, Any]) -> dict[str, str] | None:
    checks, said = [], []
    if "minLength" in names:
        checks.append(f"size(k) >= {names['minLength']}")
        said.append(f"at least {names['minLength']} characters")
    if "maxLength" in names:
        checks.append(f"size(k) <= {names['maxLength']}")
        said.append(f"at most {names['maxLength']} characters")
    if "pattern" in names:
        checks.append(f"k.matches({json.dumps(names['pattern'])})")
        said.append(f"matching {names['pattern']}")
    if not checks:
        return None
    return {"rule": f"self.all(k, {' && '.join(checks)})", "message": f"keys: {', '.join(said)}"}


def crd(kind: Kind) -> dict[str, Any]:
    columns = [
        {
            "name": column.name,
            "type": column.type,
            "jsonPath": column.json_path,
            **({"description": column.description} if column.description else {}),
            **({"priority": column.priority} if column.priority else {}),
        }
        for column in kind.columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{API_GROUP}",
            "labels": {label.PART_OF: "fairpilot"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["fairpilot"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": openapi_schema(kind.spec),
                                "status": openapi_schema(kind.status, spec=False),
                            },
                        }
                    },
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    header = (
        "# Generated from the pydantic models in operator/fairpilot/api by `fairpilot crds`.\n"
        "# Do not edit: change the models and regenerate.\n"
    )
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=100)


def file_name(kind: Kind) -> str:
    return f"{kind.plural}.{API_GROUP}.yaml"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        path = directory / file_name(kind)
        path.write_text(render(kind))
        paths.append(path)
    return paths


def drift(directory: Path) -> list[str]:
    """Names of CRD files that differ from what the models generate."""
    return [
        file_name(kind)
        for kind in KINDS
        if not (directory / file_name(kind)).is_file()
        or (directory / file_name(kind)).read_text() != render(kind)
    ]
