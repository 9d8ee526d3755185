"""YAML that users write (manifests, spec files), read with bounds.

`yaml.safe_load` already refuses Python tags (no code runs), but it expands nothing eagerly:
aliases share one node, so a "billion laughs" document of a few hundred bytes loads in no
time and then explodes in whoever walks it (pydantic, `json.dumps`, the API client). Here the
document is composed first (aliases still shared), its expanded size is counted in one pass
over the distinct nodes, and only a document within the bounds is constructed. Anchors and
aliases used in moderation keep working.
"""

from __future__ import annotations

from typing import Any

import yaml

# A spec or a manifest holds hundreds of values; a bomb billions.
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_BYTES = 16 * 1024 * 1024


class UnsafeYaml(ValueError):
    """The text is not YAML, or it is YAML too large or too deep to be a spec."""


def _expanded_size(root: yaml.Node, limit: int, depth_limit: int) -> int:
    # Iterative (a recursive walk would hit Python's stack on deep documents), memoised per node
    # so each distinct node is counted once however many aliases point at it.
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if depth > depth_limit:
            raise UnsafeYaml(f"nested more than {depth_limit} levels deep")
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = list(node.value)
        if children_done:
            total = 1 + sum(sizes[id(child)] for child in children)
            if total > limit:
                raise UnsafeYaml(
                    f"expands to more than {limit} values (aliases of aliases: a YAML bomb?)"
                )
            sizes[id(node)] = total
            continue
        stack.append((node, depth, True))
        # A recursive alias (`&a [*a]`) never completes: it shows up as unbounded depth.
        stack.extend((child, depth + 1, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def load_all(
    text: str | bytes,
    *,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_BYTES,
) -> list[Any]:
    """Every document in `text`, each checked against the bounds before it is constructed."""
    if len(text) > max_bytes:
        raise UnsafeYaml(f"{len(text)} bytes, more than the limit of {max_bytes}")
    documents = []
    try:
        loader = yaml.SafeLoader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    continue
                _expanded_size(node, max_nodes, max_depth)
                documents.append(loader.construct_document(node))
        finally:
            loader.dispose()
    except RecursionError:
        raise UnsafeYaml(f"nested more than {max_depth} levels deep") from None
    except yaml.YAMLError as exc:
        raise UnsafeYaml(f"not valid YAML: {' '.join(str(exc).split())}") from None
    return documents


def load(text: str | bytes, **bounds: int) -> Any:
    """The one document in `text` (None when empty), checked as `load_all` does."""
    documents = load_all(text, **bounds)
    if len(documents) > 1:
        raise UnsafeYaml(f"holds {len(documents)} documents; one was expected")
    return documents[0] if documents else None
