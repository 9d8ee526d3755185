"""The pipeline index page: stages in pipeline order with their phase, relative report links,
everything from a resource escaped, nothing loaded from anywhere."""

from __future__ import annotations

import re

from fairpilot.pipeline_index import Stage, index_page, relative_href, stages_of

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
    assert relative_href(INDEX, f"{ROOT}/v1/profile.html") == "v1/profile.html"
    assert (
        relative_href(INDEX, "s3://art/tester/trainingruns/adult-train/v2/report.html")
        == "../../trainingruns/adult-train/v2/report.html"
    )
    other = "s3://elsewhere/report.html"
    assert relative_href(INDEX, other) == other
    assert relative_href("file:///a/b/index.html", "file:///a/c/r.html") == "../c/r.html"
    assert relative_href("file:///a/b/index.html", f"{ROOT}/r.html") == f"{ROOT}/r.html"


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
