"""The real operator (Kopf) against the sandbox's API server, with Jobs run as local processes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.testing import by_name, eventually, resource, wait_for

PIPELINE = (
    Path(__file__).resolve().parents[2] / "manifests" / "examples" / "adult" / "pipeline.yaml"
)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "artifacts") as running:
        yield running


def test_adult_pipeline_runs_end_to_end(sandbox: Sandbox, adult: dict[str, str]) -> None:
    documents = list(yaml.safe_load_all(PIPELINE.read_text()))
    for document in documents:
        document["spec"]["uri"] = adult[
            "test" if document["metadata"]["name"] == "adult-test" else "train"
        ]
    pipeline = documents[0]["spec"]["pipeline"]
    pipeline["training"]["timeLimitSeconds"] = 15
    pipeline["explanation"]["sampleSize"] = 100
    pipeline["explanation"]["levels"] = ["beginner"]
    sandbox.apply(documents)
    assert sandbox.wait(420), {
        k: v.get("status", {}).get("message") for k, v in by_name(sandbox).items()
    }
    items = by_name(sandbox)
    assert set(items) == {"adult", "adult-test", "adult-bias", "adult-train", "adult-explain"}
    for name, item in items.items():
        status = item["status"]
        assert status["phase"] == "Succeeded", (name, status)
        assert status["observedGeneration"] == 1
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
    assert items["adult"]["status"]["rows"] == 32561
    assert items["adult"]["status"]["pipeline"] == "Succeeded"
    bias = items["adult-bias"]["status"]
    assert bias["biasDetected"] is True
    assert any(c["type"] == "BiasDetected" and c["status"] == "True" for c in bias["conditions"])
    train = items["adult-train"]
    assert train["spec"]["mitigation"] == {"biasAnalysisRef": "adult-bias"}
    assert train["status"]["evalMetric"] == "roc_auc" and train["status"]["bestScore"] > 0.85
    assert items["adult-explain"]["status"]["method"] == "tree"
    for name in ("adult-bias", "adult-train", "adult-explain"):
        owners = items[name]["metadata"]["ownerReferences"]
        assert owners[0]["uid"] == items["adult"]["metadata"]["uid"]
    jobs = sandbox.cluster.batch.list_namespaced_job("default").items
    assert sorted(j.metadata.name for j in jobs) == sorted(
        i["status"]["jobName"] for i in items.values()
    )
    report = Path(items["adult-explain"]["status"]["reports"]["beginner"].removeprefix("file://"))
    assert report.is_file()
    check_pipeline_links(sandbox, items)


def _local_links(page: Path) -> list[Path]:
    """The files a page's relative links lead to (fragments and remote URIs left out)."""
    hrefs = re.findall(r'href="([^"#]+)"', page.read_text())
    return [(page.parent / unquote(h)).resolve() for h in hrefs if ":" not in h]


def check_pipeline_links(sandbox: Sandbox, items: dict[str, dict[str, Any]]) -> None:
    """The operator's index page lists every stage as it ended, linking to each report that
    exists; each report links back to the index (as relative paths: the folder can move)."""
    uid = items["adult"]["metadata"]["uid"]
    index = next(sandbox.artifacts.glob(f"**/datasets/adult/{uid}/index.html"))
    reports = {
        Path(uri.removeprefix("file://")).resolve()
        for name in ("adult", "adult-bias", "adult-train", "adult-explain")
        for uri in items[name]["status"]["reports"].values()
    }

    def current() -> bool:
        text = index.read_text()
        return text.count(">Succeeded<") == 5 and set(_local_links(index)) == reports

    assert eventually(current, timeout=20), index.read_text()
    assert "not created" not in index.read_text()
    for report in reports:
        links = _local_links(report)
        assert index.resolve() in links, report
        assert all(link.is_file() for link in links), (report, links)


def test_missing_reference_waits_then_proceeds(sandbox: Sandbox, tiny_csv: str) -> None:
    sandbox.apply(
        [
            resource(
                "BiasAnalysis",
                "late",
                {
                    "datasetRef": "tiny",
                    "target": "income",
                    "sensitiveFeatures": ["sex"],
                    "positiveLabel": "yes",
                },
            )
        ]
    )
    waiting = wait_for(
        sandbox, "late", lambda s: s.get("phase") == "Pending" and s.get("conditions")
    )
    condition = next(
        c for c in waiting["status"]["conditions"] if c["type"] == "ReferencesResolved"
    )
    assert condition["status"] == "False" and condition["reason"] == "ReferenceNotFound"
    assert "Dataset 'tiny' does not exist" in condition["message"]
    sandbox.apply([resource("Dataset", "tiny", {"uri": tiny_csv})])
    done = wait_for(sandbox, "late", lambda s: s.get("phase") == "Succeeded")
    assert done["status"]["minDisparateImpact"] == pytest.approx(0.5)


def test_wrong_column_fails_with_the_reason(sandbox: Sandbox, tiny_csv: str) -> None:
    sandbox.apply([resource("Dataset", "wrong", {"uri": tiny_csv, "target": "salary"})])
    failed = wait_for(sandbox, "wrong", lambda s: s.get("phase") == "Failed")
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "TargetNotFound"
    assert "columns are: age, sex, income" in ready["message"]
    time.sleep(2)
    jobs = sandbox.cluster.batch.list_namespaced_job("default").items
    assert [j.metadata.name for j in jobs] == ["fp-profile-wrong-g1"], "no retry storm"
    from prometheus_client import REGISTRY

    failed_jobs = REGISTRY.get_sample_value(
        "fairpilot_job_outcomes_total", {"stage": "profile", "outcome": "failed"}
    )
    assert failed_jobs is not None and failed_jobs >= 1


def test_spec_change_reruns_with_a_new_generation(sandbox: Sandbox, tiny_csv: str) -> None:
    sandbox.apply([resource("Dataset", "tiny", {"uri": tiny_csv})])
    wait_for(sandbox, "tiny", lambda s: s.get("phase") == "Succeeded")
    sandbox.cluster.custom.patch_namespaced_custom_object(
        "fairpilot.io", "v1alpha1", "default", "datasets", "tiny", {"spec": {"target": "age"}}
    )
    rerun = wait_for(
        sandbox,
        "tiny",
        lambda s: s.get("observedGeneration") == 2 and s.get("phase") == "Succeeded",
    )
    assert rerun["status"]["suggestedTarget"] == "age"
    assert rerun["status"]["jobName"] == "fp-profile-tiny-g2"


def test_restarted_operator_adopts_the_running_job(sandbox: Sandbox, adult: dict[str, str]) -> None:
    sandbox.apply([resource("Dataset", "adult", {"uri": adult["train"], "target": "income"})])
    wait_for(sandbox, "adult", lambda s: s.get("phase") == "Running")
    with sandbox.runner.held():  # the profile Job runs until the new operator is up
        sandbox.restart_operator()
        job = sandbox.cluster.batch.read_namespaced_job("fp-profile-adult-g1", "default")
        assert not job.status.completion_time, "the restart must happen while the Job runs"
    done = wait_for(sandbox, "adult", lambda s: s.get("phase") == "Succeeded")
    assert done["status"]["rows"] == 32561
    jobs = sandbox.cluster.batch.list_namespaced_job("default").items
    assert [j.metadata.name for j in jobs] == ["fp-profile-adult-g1"], "never a second Job"
