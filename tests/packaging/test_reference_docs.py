"""The documentation: the generated reference is current and complete, and every link in the
README and docs/ lands on a file (and heading) of this repository."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from fairpilot.api.kinds import KINDS, Kind
from fairpilot.reference_docs import render

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def test_committed_reference_matches_the_models() -> None:
    assert REFERENCE.is_file(), "run `fairpilot reference` (or `make crds`) and commit the result"
    assert REFERENCE.read_text(encoding="utf-8") == render(), (
        "docs/reference.md is stale: run `fairpilot reference` (or `make crds`) and commit it"
    )


def _field_paths(model: type[BaseModel], prefix: str) -> Iterator[str]:
    """Every field path of a model, from the models themselves (not the generated schema the
    reference is made from), so a field the generator skipped is caught."""
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}"
        yield path
        for nested, suffix in _nested_models(field.annotation):
            yield from _field_paths(nested, path + suffix)


def _nested_models(annotation: object, suffix: str = "") -> Iterator[tuple[type[BaseModel], str]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, suffix
        return
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset):
        for arg in args:
            yield from _nested_models(arg, suffix + "[]")
    elif origin is dict and len(args) == 2:
        yield from _nested_models(args[1], suffix + ".<key>")
    else:  # Optional, unions, Annotated: the same place in the object
        for arg in args:
            yield from _nested_models(arg, suffix)


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.kind)
def test_every_field_is_in_the_reference(kind: Kind) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    section = text.split(f"\n## {kind.kind}\n", 1)[1].split("\n## ", 1)[0]
    spec = [path for path in _field_paths(kind.spec, "spec") if f"`{path}`" not in section]
    status = [path for path in _field_paths(kind.status, "status") if f"`{path}`" not in section]
    assert spec == [], f"{kind.kind}: spec fields missing from docs/reference.md"
    assert status == [], f"{kind.kind}: status fields missing from docs/reference.md"


def _prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks, with code spans removed: a link written as an
    example in code is not a link."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            yield CODE_SPAN.sub("", line)


def _links(page: Path) -> list[str]:
    return [
        match.group(1)
        for line in _prose_lines(page.read_text(encoding="utf-8"))
        for match in LINK.finditer(line)
    ]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        slug = _slug(line.lstrip("#"))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_links_resolve_inside_the_repository(page: Path) -> None:
    problems = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not a file
            if target.startswith("file:"):
                problems.append(f"{target}: a file outside the repository")
            continue
        path_part, _, anchor = target.partition("#")
        if path_part.startswith("/"):
            problems.append(f"{target}: an absolute path (link relative to the page instead)")
            continue
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: leaves the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not problems, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_page_points_outside_the_repository(page: Path) -> None:
    # Not even in code: the shared folder beside the repository is not part of it, so what a
    # page needs from there is copied into docs/ (design.md, seeds.md).
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert "/work/" not in text


def test_the_docs_folder_has_a_page_per_reader() -> None:
    names = {page.name for page in PAGES}
    expected = {
        "install.md",
        "resources.md",
        "reference.md",
        "kafka.md",
        "warehouse.md",
        "stages.md",
        "operations.md",
        "design.md",
        "seeds.md",
    }
    assert expected <= names
