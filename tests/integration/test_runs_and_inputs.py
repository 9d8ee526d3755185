"""Runs in the sandbox (real Kopf, emulated API server, real stage jobs): results that stay put,
dependents that follow their inputs, and work refused before a Job is started."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fairpilot import API_GROUP, API_VERSION
from fairpilot.sandbox.app import Sandbox, sandbox_config
from fairpilot.sandbox.testing import by_name, eventually, resource, wait_for

NAMESPACE = "runs"
DONE = ("Succeeded", "Failed")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "artifacts", namespace=NAMESPACE, kafka=False) as running:
        yield running


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its SHA-256: what "untouched" means."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def jobs(sandbox: Sandbox) -> list[dict[str, Any]]:
    listing = sandbox.cluster.batch.list_namespaced_job(NAMESPACE, _preload_content=False)
    return json.loads(listing.data)["items"]


def pods_of(sandbox: Sandbox, job: str) -> list[Any]:
    pods = sandbox.cluster.core.list_namespaced_pod(NAMESPACE).items
    return [p for p in pods if (p.metadata.labels or {}).get("job-name") == job]


def patch_spec(sandbox: Sandbox, plural: str, name: str, spec: dict[str, Any]) -> None:
    sandbox.cluster.custom.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, NAMESPACE, plural, name, {"spec": spec}
    )


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def test_a_resource_created_again_never_touches_the_earlier_ones_artifacts(
    sandbox: Sandbox, tiny_csv: str
) -> None:
    sandbox.apply([resource("Dataset", "same-name", {"uri": tiny_csv})])
    first = wait_for(sandbox, "same-name", lambda s: s.get("phase") in DONE)
    assert first["status"]["phase"] == "Succeeded", first["status"]
    before = tree_digest(local(first["status"]["outputUri"]))
    assert "result.json" in before

    sandbox.cluster.custom.delete_namespaced_custom_object(
        API_GROUP, API_VERSION, NAMESPACE, "datasets", "same-name"
    )
    assert eventually(lambda: "same-name" not in by_name(sandbox))
    sandbox.apply([resource("Dataset", "same-name", {"uri": tiny_csv, "target": "age"})])
    second = wait_for(
        sandbox,
        "same-name",
        lambda s: s.get("phase") in DONE and s.get("runId") == "g1" and s.get("rows"),
    )
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["status"]["outputUri"] != first["status"]["outputUri"]
    assert tree_digest(local(first["status"]["outputUri"])) == before
    assert (local(second["status"]["outputUri"]) / "result.json").is_file()


def test_a_stage_refuses_an_output_location_another_run_wrote(tmp_path: Path, tiny_csv) -> None:
    from support.jobs import run_job

    out = tmp_path / "out"
    first = run_job("profile", {"uri": tiny_csv}, out, run_id="uid-a/g1")
    assert first.returncode == 0, first.stderr
    before = tree_digest(out)
    # The same run again (a Job's retry) may write; another run, or none named, may not.
    for other in ("uid-b/g1", "uid-a/g2", None):
        refused = run_job("profile", {"uri": tiny_csv}, out, run_id=other)
        assert refused.returncode == 2, refused.stderr
        assert "OutputNotEmpty" in refused.stderr
        assert tree_digest(out) == before
    retried = run_job("profile", {"uri": tiny_csv}, out, run_id="uid-a/g1")
    assert retried.returncode == 0, retried.stderr


def bias_on(dataset: str) -> dict[str, Any]:
    return resource(
        "BiasAnalysis",
        f"{dataset}-bias",
        {
            "datasetRef": dataset,
            "target": "income",
            "positiveLabel": "yes",
            "sensitiveFeatures": ["sex"],
        },
    )


def test_a_dataset_profiled_again_re_runs_the_analysis_that_used_it(
    sandbox: Sandbox, tmp_path: Path, tiny_csv: str
) -> None:
    sandbox.apply([resource("Dataset", "moving", {"uri": tiny_csv}), bias_on("moving")])
    first = wait_for(sandbox, "moving-bias", lambda s: s.get("phase") in DONE)
    assert first["status"]["phase"] == "Succeeded", first["status"]
    assert first["status"]["runId"] == "g1"
    assert condition(first["status"], "UpToDate")["status"] == "True"
    used = {item["field"]: item for item in first["status"]["inputs"]}
    assert used["datasetRef"]["runId"] == "g1"
    before = tree_digest(local(first["status"]["outputUri"]))

    # New data under the Dataset: a new generation, profiled again; the analysis follows.
    bigger = tmp_path / "bigger.csv"
    bigger.write_text(local(tiny_csv).read_text() + "33,M,no\n29,F,yes\n")
    patch_spec(sandbox, "datasets", "moving", {"uri": f"file://{bigger}"})
    again = wait_for(
        sandbox, "moving-bias", lambda s: s.get("runId") == "g1r1" and s.get("phase") in DONE
    )
    status = again["status"]
    assert status["phase"] == "Succeeded", status
    assert condition(status, "UpToDate")["status"] == "True"
    assert {item["field"]: item for item in status["inputs"]}["datasetRef"]["runId"] == "g2"
    assert status["outputUri"] != first["status"]["outputUri"]
    assert tree_digest(local(first["status"]["outputUri"])) == before
    result = json.loads((local(status["outputUri"]) / "result.json").read_text())
    assert result["rows"] == 8  # the new data, not the old
    names = sorted(job["metadata"]["name"] for job in jobs(sandbox))
    assert names == [
        "fp-bias-moving-bias-g1",
        "fp-bias-moving-bias-g1r1",
        "fp-profile-moving-g1",
        "fp-profile-moving-g2",
    ]


def test_without_following_inputs_a_stale_result_says_so(tmp_path: Path, tiny_csv: str) -> None:
    artifacts = tmp_path / "artifacts"
    config = sandbox_config(artifacts, follow_inputs=False)
    with Sandbox(artifacts, namespace=NAMESPACE, kafka=False, config=config) as sandbox:
        sandbox.apply([resource("Dataset", "still", {"uri": tiny_csv}), bias_on("still")])
        wait_for(sandbox, "still-bias", lambda s: s.get("phase") == "Succeeded")
        patch_spec(sandbox, "datasets", "still", {"target": "income"})
        # InputChanging while the Dataset profiles again, then InputChanged for good.
        def changed(status: dict[str, Any]) -> bool:
            return condition(status, "UpToDate").get("reason") == "InputChanged"

        stale = wait_for(sandbox, "still-bias", changed)
        up_to_date = condition(stale["status"], "UpToDate")
        assert up_to_date["reason"] == "InputChanged"
        assert "Dataset 'still'" in up_to_date["message"] and "g1 -> g2" in up_to_date["message"]
        assert stale["status"]["phase"] == "Succeeded" and stale["status"]["runId"] == "g1"
        assert [j["metadata"]["name"] for j in jobs(sandbox)].count("fp-bias-still-bias-g1r1") == 0


def test_what_the_operator_can_judge_fails_before_a_job(tmp_path: Path, tiny_csv: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    inside = data / "tiny.csv"
    inside.write_text(local(tiny_csv).read_text())
    with Sandbox(
        tmp_path / "artifacts", namespace=NAMESPACE, kafka=False, file_root=tmp_path
    ) as sandbox:
        sandbox.apply(
            [
                resource("Dataset", "outside", {"uri": "file:///etc/hostname"}),
                resource("Dataset", "inside", {"uri": f"file://{inside}"}),
                resource(
                    "TrainingRun",
                    "typo",
                    {"datasetRef": "inside", "target": "incme", "timeLimitSeconds": 30},
                ),
                resource(
                    "BiasAnalysis",
                    "no-such-feature",
                    {"datasetRef": "inside", "target": "income", "sensitiveFeatures": ["gender"]},
                ),
            ]
        )
        for name, reason, words in (
            ("outside", "InvalidURI", "outside the allowed root"),
            ("typo", "ColumnNotFound", "did you mean 'income'"),
            ("no-such-feature", "ColumnNotFound", "sensitiveFeatures 'gender'"),
        ):
            failed = wait_for(sandbox, name, lambda s: s.get("phase") in DONE)
            status = failed["status"]
            assert status["phase"] == "Failed", (name, status)
            assert condition(status, "Ready")["reason"] == reason, (name, status)
            assert words in condition(status, "Ready")["message"], (name, status)
        started = sorted(job["metadata"]["name"] for job in jobs(sandbox))
        assert started == ["fp-profile-inside-g1"], "only the Dataset that can be read ran"


def test_an_input_error_fails_the_job_at_once_without_retries(
    sandbox: Sandbox, tiny_csv: str
) -> None:
    analysis = bias_on("labels")
    analysis["spec"]["positiveLabel"] = "maybe"  # no such label: the stage exits 2
    sandbox.apply([resource("Dataset", "labels", {"uri": tiny_csv}), analysis])
    failed = wait_for(sandbox, "labels-bias", lambda s: s.get("phase") in DONE)
    assert failed["status"]["phase"] == "Failed"
    assert condition(failed["status"], "Ready")["reason"] == "UnknownPositiveLabel"
    job = next(j for j in jobs(sandbox) if j["metadata"]["name"] == "fp-bias-labels-bias-g1")
    assert job["spec"]["backoffLimit"] >= 1
    reasons = [c.get("reason") for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert reasons == ["PodFailurePolicy"]
    assert len(pods_of(sandbox, "fp-bias-labels-bias-g1")) == 1, "no retry of a wrong input"


@pytest.mark.slow
def test_a_retrained_model_gets_a_new_version_and_its_explanation_follows(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Patch a TrainingRun: it trains v2 (v1 stays where it was), and its Explanation, which
    explained v1, explains v2 without being touched."""
    from fairpilot.datasets import adult

    data = tmp_path / "small.csv"
    columns = ["age", "education_num", "hours_per_week", "sex", "income"]
    adult()[0][columns].sample(600, random_state=0).to_csv(data, index=False)
    training = {
        "datasetRef": "small",
        "target": "income",
        "timeLimitSeconds": 10,
        "algorithms": ["lightgbm"],
        "userId": "ana",
    }
    sandbox.apply(
        [
            resource("Dataset", "small", {"uri": f"file://{data}", "userId": "ana"}),
            resource("TrainingRun", "model", training),
            resource(
                "Explanation",
                "why",
                {
                    "trainingRunRef": "model",
                    "sampleSize": 20,
                    "backgroundSize": 10,
                    "levels": ["expert"],
                    "userId": "ana",
                },
            ),
        ]
    )
    first = wait_for(sandbox, "why", lambda s: s.get("phase") in DONE, timeout=240)
    assert first["status"]["phase"] == "Succeeded", first["status"]
    run_v1 = by_name(sandbox)["model"]["status"]
    assert run_v1["modelVersion"] == "v1" and first["status"]["modelVersion"] == "v1"
    assert run_v1["modelUri"].endswith("/ana/models/model/v1")
    model_v1 = tree_digest(local(run_v1["modelUri"]))

    patch_spec(sandbox, "trainingruns", "model", {"seed": 7})
    again = wait_for(
        sandbox, "why", lambda s: s.get("runId") == "g1r1" and s.get("phase") in DONE, timeout=240
    )
    run_v2 = by_name(sandbox)["model"]["status"]
    assert run_v2["runId"] == "g2" and run_v2["modelVersion"] == "v2"
    assert [m["version"] for m in run_v2["models"]] == ["v1", "v2"]
    assert tree_digest(local(run_v1["modelUri"])) == model_v1, "v1 is still v1"
    status = again["status"]
    assert status["phase"] == "Succeeded", status
    assert (status["modelVersion"], status["modelUri"]) == ("v2", run_v2["modelUri"])
    assert condition(status, "UpToDate")["status"] == "True"
    page = (local(status["reports"]["expert"])).read_text()
    assert "model model v2" in page

