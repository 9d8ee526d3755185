"""The pipeline index page: stages in pipeline order with their phase, relative report links,
everything from a resource escaped, nothing loaded from anywhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET, Kind
from fairpilot.artifacts import relative_link
from fairpilot.config import OperatorConfig
from fairpilot.controller import pipeline_pages
from fairpilot.pipeline_index import Stage, index_page, stages_of
from fairpilot_jobs.reports.html import Report, pipeline_links

ROOT = "s3://art/tester/datasets/adult"
INDEX = f"{ROOT}/index.html"


def resource(kind: str, name: str, phase: str, reports: dict[str, str], message: str = "") -> dict:
    return {
        "kind": kind,
        "metadata": {"name": name},
        "status": {
            "phase": phase,
            "reports": reports,
            "conditions": [{"type": "Ready", "status": "False", "message": message}],
        },
    }


def test_relative_links_within_one_store() -> None:
    assert relative_link(INDEX, f"{ROOT}/v1/profile.html") == "v1/profile.html"
    assert (
        relative_link(INDEX, "s3://art/tester/trainingruns/adult-train/v2/report.html")
        == "../../trainingruns/adult-train/v2/report.html"
    )
    other = "s3://elsewhere/report.html"
    assert relative_link(INDEX, other) == other
    assert relative_link("file:///a/b/index.html", "file:///a/c/r.html") == "../c/r.html"
    assert relative_link("file:///a/b/index.html", f"{ROOT}/r.html") == f"{ROOT}/r.html"


def test_stages_in_pipeline_order_with_phase_and_reports() -> None:
    dataset = resource("Dataset", "adult", "Succeeded", {"profile": f"{ROOT}/v1/profile.html"})
    children = {
        "TrainingRun": resource("TrainingRun", "adult-train", "Failed", {}, "budget <b>spent</b>"),
        "BiasAnalysis": resource("BiasAnalysis", "adult-bias", "Succeeded", {"bias": "x"}),
        "Explanation": None,
    }
    stages = stages_of(dataset, children)
    assert [s.kind for s in stages] == ["Dataset", "BiasAnalysis", "TrainingRun", "Explanation"]
    assert stages[2].message == "budget <b>spent</b>"  # only a failed stage says why
    assert stages[1].message == ""
    assert stages[3] == Stage("Explanation", None, None)
    # A pipeline without bias lists no BiasAnalysis.
    assert [s.kind for s in stages_of(dataset, {"TrainingRun": None})] == [
        "Dataset",
        "TrainingRun",
    ]
    html = index_page("adult", "ml", stages, index_uri=INDEX, pipeline_phase="Stopped")
    rows = re.findall(r"<tr><td>(\w+)</td>", html)
    assert rows == ["Dataset", "BiasAnalysis", "TrainingRun", "Explanation"]
    assert '<a href="v1/profile.html">profile</a>' in html
    assert "budget &lt;b&gt;spent&lt;/b&gt;" in html and "<b>" not in html
    assert "not created" in html
    assert '<span class="phase failed">Failed</span>' in html


def test_the_page_loads_nothing_and_escapes_names() -> None:
    stages = [Stage("Dataset", '"><script>alert(1)</script>', "Running", {"p<": "javascript:x"})]
    html = index_page('a"b', "n", stages, index_uri=INDEX)
    assert "<script" not in html
    assert not re.search(r"(src|href)=[\"']https?://", html)
    assert "<link" not in html and "@import" not in html
    assert 'href="javascript' not in html


# -- the operator's writer (controller/pipeline_pages.py) ---------------------------------------
def _resources(root: str) -> dict[tuple[str, str], dict[str, Any]]:
    owner = {"apiVersion": "fairpilot.io/v1alpha1", "kind": "Dataset", "name": "adult",
             "uid": "d1"}  # fmt: skip

    def made(kind: str, name: str, phase: str, reports: dict[str, str], **meta: Any) -> dict:
        item = resource(kind, name, phase, reports)
        item["metadata"] |= {"namespace": "ml", "uid": f"{name}-uid", **meta}
        return item

    dataset = made("Dataset", "adult", "Succeeded", {"profile": f"{root}/p/report.html"})
    dataset["metadata"]["uid"] = "d1"
    dataset["spec"] = {"uri": "file:///d.csv", "pipeline": {"bias": {}, "training": {}}}
    dataset["status"]["pipeline"] = "Running"
    bias = made("BiasAnalysis", "adult-bias", "Succeeded", {"bias": f"{root}/b/report.html"},
                ownerReferences=[owner])  # fmt: skip
    return {("Dataset", "adult"): dataset, ("BiasAnalysis", "adult-bias"): bias}


def test_the_operator_writes_the_index_of_a_stage_s_pipeline(tmp_path: Path) -> None:
    root = f"file://{tmp_path}"
    config = OperatorConfig(artifact_root=root, jobs_image="local")
    items = _resources(root)

    def get(kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        assert namespace == "ml"
        return items.get((kind.kind, name))

    bias = items[("BiasAnalysis", "adult-bias")]
    assert pipeline_pages.refresh(get, config, BIAS_ANALYSIS, bias) is False
    index = tmp_path / "ml" / "~none" / "datasets" / "adult" / "d1" / "index.html"
    html = index.read_text()
    rows = re.findall(r"<tr><td>(\w+)</td>", html)
    assert rows == ["Dataset", "BiasAnalysis", "TrainingRun"]  # no explanation in the block
    assert '<a href="../../../../../p/report.html">profile</a>' in html
    assert "not created" in html  # the TrainingRun, not made yet
    # A TrainingRun under the stage's name that another Dataset owns is not this pipeline's.
    stranger = resource("TrainingRun", "adult-train", "Failed", {"x": "https://evil/x"})
    stranger["metadata"] |= {"namespace": "ml", "ownerReferences": [{"uid": "other"}]}
    items[("TrainingRun", "adult-train")] = stranger
    assert pipeline_pages.refresh(get, config, BIAS_ANALYSIS, bias) is False
    assert "evil" not in index.read_text() and "not created" in index.read_text()

    # Not a pipeline's: a stage whose Dataset was made again, a Dataset without a pipeline.
    index.unlink()
    items[("Dataset", "adult")]["metadata"]["uid"] = "d2"
    assert pipeline_pages.refresh(get, config, BIAS_ANALYSIS, bias) is False
    dataset = items[("Dataset", "adult")]
    del dataset["spec"]["pipeline"]
    assert pipeline_pages.refresh(get, config, DATASET, dataset) is False
    assert not index.exists()


def test_an_index_the_store_refuses_is_tried_again(tmp_path: Path) -> None:
    (tmp_path / "ml").write_text("a file where the namespace's folder should be")
    config = OperatorConfig(artifact_root=f"file://{tmp_path}", jobs_image="local")
    items = _resources(f"file://{tmp_path}")

    def get(kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return items.get((kind.kind, name))

    assert pipeline_pages.refresh(get, config, DATASET, items[("Dataset", "adult")]) is True


def test_a_report_links_to_the_index_and_its_sibling_pages() -> None:
    here = "s3://art/ml/u/explanations/e/uid/g1/report-beginner.html"
    index = "s3://art/ml/u/datasets/adult/d1/index.html"
    pages = {"Explanation (beginner)": here, "Explanation (expert)": here.replace("beg", "exp")}
    assert pipeline_links(index, here, "Explanation", pages) == [
        ("Pipeline index", "../../../../datasets/adult/d1/index.html"),
        ("Explanation (beginner)", None),
        ("Explanation (expert)", "report-expinner.html"),
    ]
    assert pipeline_links(index, here, "Profile") == [
        ("Pipeline index", "../../../../datasets/adult/d1/index.html"),
        ("Profile", None),
    ]
    assert pipeline_links(None, here, "Profile") == []  # alone: no bar
    html = Report("t", links=pipeline_links(index, here, "Profile")).render()
    assert '<a href="../../../../datasets/adult/d1/index.html">Pipeline index</a>' in html
    assert '<span aria-current="page">Profile</span>' in html
