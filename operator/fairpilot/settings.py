"""Settings from environment variables: the one reader behind every `from_env`.

The operator reads its configuration (FAIRPILOT_*), the Kafka bridge's (FAIRPILOT_KAFKA_*) and
the warehouse's (MONGO_URI) from the environment the Helm chart gives its pod. Each is a pydantic
model; this turns variables into that model's input, so the model validates (and documents)
every value, and each kind of value is spelt one way everywhere:

- a field is `<PREFIX><FIELD NAME IN UPPER CASE>`; empty values count as unset;
- a list is comma-separated (`a,b,c`); a mapping or a model is JSON;
- `nested` reads a sub-model's fields under their own prefix (FAIRPILOT_KAFKA_TOPIC_DEAD_LETTER
  is `topics.dead_letter`);
- `renamed` names variables that do not follow the pattern (MONGO_URI), by dotted field path.

pydantic-settings does the same, but spells lists as JSON and nesting with a delimiter; the
variable names here are a contract with installed charts and existing deployments.
"""

from __future__ import annotations

import json
import os
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


def from_env(
    model: type[BaseModel],
    prefix: str,
    env: Mapping[str, str] | None = None,
    *,
    fields: set[str] | None = None,
    nested: Mapping[str, str] | None = None,
    renamed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The values for `model` found in `env` (default: os.environ), ready to validate.

    fields: only these fields (default: every field of the model that is not nested).
    nested: field -> the prefix (after `prefix`) of its sub-model's variables.
    renamed: variable -> dotted field path, for variables outside the pattern.
    """
    env = os.environ if env is None else env
    nested = dict(nested or {})
    values: dict[str, Any] = {}
    names = fields if fields is not None else set(model.model_fields) - set(nested)
    for name in sorted(names):
        variable = f"{prefix}{name.upper()}"
        raw = env.get(variable, "")
        if raw != "":
            values[name] = _parse(variable, raw, model.model_fields[name].annotation)
    for name, sub_prefix in nested.items():
        annotation = model.model_fields[name].annotation
        sub_model = next(t for t in _types(annotation) if _is_model(t))
        found = from_env(sub_model, f"{prefix}{sub_prefix}", env)
        if found:
            values[name] = found
    for variable, path in (renamed or {}).items():
        raw = env.get(variable, "")
        if raw != "":
            *parents, leaf = path.split(".")
            target = values
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = raw
    return values


def _types(annotation: Any) -> tuple[Any, ...]:
    """The types an annotation allows (`X | None` -> (X, NoneType))."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _parse(variable: str, raw: str, annotation: Any) -> Any:
    """A variable's text as the field expects it: a list from commas, JSON for a mapping or a
    model; anything else as text, which pydantic converts (numbers, booleans, enums)."""
    kinds = {typing.get_origin(t) or t for t in _types(annotation)}
    if kinds & {list, tuple, set, frozenset}:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if dict in kinds or any(_is_model(t) for t in kinds):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{variable} is not JSON: {exc}") from None
    return raw
