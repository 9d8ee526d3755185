"""Validating a document against the committed CRD of its kind."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema

from fairpilot.api.kinds import BY_KIND
from fairpilot.crds import crd

ROOT = Path(__file__).resolve().parents[2]


def schema_of(kind: str) -> dict[str, Any]:
    return crd(BY_KIND[kind])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def as_json_schema(node: Any) -> Any:
    """OpenAPI v3.0 -> JSON Schema draft 4 (which also has boolean exclusiveMinimum)."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    if "properties" in node:
        # Kubernetes prunes unknown fields; an example must not rely on that, so refuse them.
        out["additionalProperties"] = False
    return out


def validate(document: dict[str, Any]) -> None:
    schema = as_json_schema(copy.deepcopy(schema_of(document["kind"])))
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.Draft4Validator(schema).validate(document)
