"""The CRDs: generated from the models without drift, structural, and accepting the examples."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from support.crds import ROOT, schema_of, validate

from fairpilot.api.kinds import BY_KIND, KINDS
from fairpilot.crds import crd, drift, file_name

EXAMPLES = sorted((ROOT / "manifests" / "examples").rglob("*.yaml"))




def test_committed_crds_match_the_models() -> None:
    assert drift(ROOT / "crds") == [], "run `fairpilot crds` and commit the result"


def _walk(node: dict[str, Any], path: str, problems: list[str], in_spec: bool) -> None:
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "title", "$defs"):
        if forbidden in node:
            problems.append(f"{path}: has {forbidden}")
    if node.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties false")
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type")
    for name, child in node.get("properties", {}).items():
        if in_spec and "description" not in child:
            problems.append(f"{path}.{name}: no description")
        _walk(child, f"{path}.{name}", problems, in_spec)
    if isinstance(node.get("items"), dict):
        _walk(node["items"], f"{path}[]", problems, in_spec)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], f"{path}{{}}", problems, in_spec)


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_schemas_are_structural_and_documented(kind: str) -> None:
    root = schema_of(kind)
    problems: list[str] = []
    _walk(root["properties"]["spec"], "spec", problems, in_spec=True)
    _walk(root["properties"]["status"], "status", problems, in_spec=False)
    assert problems == []


def test_names_columns_and_category() -> None:
    for kind in KINDS:
        document = crd(kind)
        assert document["metadata"]["name"] == f"{kind.plural}.fairpilot.io"
        assert document["spec"]["names"]["categories"] == ["fairpilot"]
        assert document["spec"]["names"]["shortNames"]
        version = document["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        columns = [c["name"] for c in version["additionalPrinterColumns"]]
        assert columns[0] == "Phase" and "Age" in columns
        assert file_name(kind) == f"{kind.plural}.fairpilot.io.yaml"






def example_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in EXAMPLES:
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("apiVersion", "").startswith("fairpilot.io/"):
                documents.append(
                    (f"{path.relative_to(ROOT)}:{document['metadata']['name']}", document)
                )
    return documents


@pytest.mark.parametrize(
    ("name", "document"), example_documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_examples_validate_against_their_crd_and_model(name: str, document: dict[str, Any]) -> None:
    validate(document)
    BY_KIND[document["kind"]].spec.model_validate(document["spec"])


def test_examples_cover_every_kind_and_the_pipeline() -> None:
    kinds = {document["kind"] for _, document in example_documents()}
    assert kinds == set(BY_KIND)
    assert any(d["kind"] == "Dataset" and "pipeline" in d["spec"] for _, d in example_documents())


@pytest.mark.parametrize(
    ("kind", "spec", "words"),
    [
        ("TrainingRun", {"datasetRef": "d", "target": "y", "timeLimitSeconds": 1}, "minimum"),
        ("TrainingRun", {"datasetRef": "d", "target": "y", "presets": "turbo"}, "is not one of"),
        ("TrainingRun", {"target": "y"}, "'datasetRef' is a required property"),
        ("BiasAnalysis", {"datasetRef": "d", "target": "y", "sensitiveFeatures": []}, "non-empty"),
        ("Explanation", {"trainingRunRef": "t", "levels": ["guru"]}, "is not one of"),
        ("Dataset", {"uri": "ftp://x/y.csv"}, "does not match"),
        ("Dataset", {"uri": "file:///d.csv", "colour": "red"}, "Additional properties"),
    ],
)
def test_the_schema_refuses_bad_resources(kind: str, spec: dict[str, Any], words: str) -> None:
    document = {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x"},
        "spec": spec,
    }
    with pytest.raises(jsonschema.ValidationError, match=words):
        validate(document)
