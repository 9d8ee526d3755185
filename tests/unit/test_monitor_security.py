"""The ModelMonitor holds the controls of issue 13 (docs/operations.md, "Security") as the other
stages do: what a monitor reads is checked before it is listed or read (also with its links
resolved), both models of a window are pinned by the Job and verified before unpickling, the
bridge's windows stay in their namespace and are written without following links, a hostile
batch (a bomb, a name no URI may hold, a link) is one rejected batch, a 10,000-group feature
costs seconds, and a look-alike TrainingRun is never taken for the monitor's candidate."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import pickle
import sys
import time
import types
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from fairpilot import access, artifacts
from fairpilot.api import MonitorJobSpec
from fairpilot.api.kinds import MODEL_MONITOR
from fairpilot.api.monitor import Batch
from fairpilot.artifacts import Listed
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.index import MonitorIndex
from fairpilot.bridge.predictions import PredictionConsumer, write_window
from fairpilot.bridge.windows import Windows
from fairpilot.config import OperatorConfig
from fairpilot.controller.reconcile import (
    CreateJob,
    CreateResource,
    Need,
    Outcome,
    PatchStatus,
    World,
    decide,
)
from fairpilot.errors import JobError
from fairpilot.events.payloads import PredictionRecord
from fairpilot.references import Resolved, UnresolvedReference, resolve
from fairpilot_jobs import cli, model_digest
from fairpilot_jobs.monitor import drift
from fairpilot_jobs.monitor.window import read_window

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
STAMP = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
DIGEST, OTHER = "sha256:" + "1" * 64, "sha256:" + "2" * 64
TEMPLATE = "s3://datasets/{namespace}/{user_id}/"
TENANTS = OperatorConfig(
    artifact_root="s3://artifacts", jobs_image="local", data_locations=[TEMPLATE]
)
REFERENCES = drift.reference_of(pd.DataFrame({"age": [20, 30, 40, 50]}), ["age"])


# -- helpers ------------------------------------------------------------------------------
def monitor(batches: str, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {"name": "watch", "namespace": "team-a", "uid": "m1", "generation": 1,
                     "creationTimestamp": "2026-12-01T12:00:00Z"},
        "spec": {"trainingRunRef": "income", "userId": "alice",
                 "batches": {"uri": batches, "intervalSeconds": 60}, **spec},
        "status": status or {},
    }  # fmt: skip


def plan_for(
    body: dict[str, Any], config: OperatorConfig, reads: dict[tuple[Any, ...], Any]
) -> tuple[Outcome, list[tuple[Any, ...]]]:
    """decide() until it has every read it asks for (each must be one of `reads`)."""
    world = World(body, None)
    world.now = STAMP
    asked: list[tuple[Any, ...]] = []
    while True:
        try:
            return decide(MODEL_MONITOR, world, config), asked
        except Need as need:
            assert need.key in reads, f"unexpected read {need.key}"
            asked.append(need.key)
            world.knows(need.key, reads[need.key])


def training_run(name: str, owner: str | None = None, **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "team-a", "uid": f"u-{name}",
                            "generation": 1}  # fmt: skip
    if owner:
        meta["ownerReferences"] = [{"kind": "ModelMonitor", "name": "watch", "uid": owner}]
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": meta,
        "spec": {"datasetRef": "adult", "target": "income", "modelId": "income"},
        "status": {"observedGeneration": 1, **status},
    }


# -- class 2: locations, before any listing ------------------------------------------------
@pytest.mark.parametrize(
    "prefix",
    [
        "s3://datasets/team-b/alice/batches/",  # another namespace's
        "s3://datasets/team-a/bob/batches/",  # another user's
        "s3://datasets/team-a/alice2/batches/",  # a string prefix, not the folder
        "s3://artifacts/team-b/alice/",  # another namespace's artifacts
    ],
)
def test_a_batch_prefix_it_may_not_read_fails_before_it_is_listed(prefix: str) -> None:
    """Not a monitor left waiting for data at a prefix that may well be empty, nor another
    tenant's object names and times in its status: LocationNotAllowed, and no listing."""
    body = monitor(prefix)
    plan, asked = plan_for(body, TENANTS, {("get", "ModelMonitor", "watch"): body})
    assert not any(key[0] == "listing" for key in asked)
    (failed,) = plan.writes
    assert isinstance(failed, PatchStatus) and failed.patch["phase"] == "Failed"
    ready = next(c for c in failed.patch["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "LocationNotAllowed" and "batches.uri" in ready["message"]
    assert "pending" not in failed.patch and "newestDataAt" not in failed.patch


def test_its_own_prefix_is_listed() -> None:
    prefix = "s3://datasets/team-a/alice/batches/"
    body = monitor(prefix)
    reads = {("get", "ModelMonitor", "watch"): body, ("listing", prefix): []}
    plan, asked = plan_for(body, TENANTS, reads)
    assert ("listing", prefix) in asked
    assert plan.writes[0].patch["phase"] == "Pending"  # type: ignore[attr-defined]


def test_a_file_prefix_that_is_a_link_out_of_its_folder_is_not_listed(tmp_path: Path) -> None:
    """The folder is alice's as written, and a link to team-b's data: judged with its links
    resolved, as the stage pod judges every file it opens."""
    data = tmp_path / "data"
    theirs = data / "team-b" / "bob" / "secret"
    theirs.mkdir(parents=True)
    (theirs / "2026-12-01.csv").write_text("age\n1\n")
    mine = data / "team-a" / "alice"
    mine.mkdir(parents=True)
    (mine / "batches").symlink_to(theirs, target_is_directory=True)
    config = OperatorConfig(
        artifact_root=f"file://{tmp_path}/artifacts",
        jobs_image="local",
        data_locations=[f"file://{data}/{{namespace}}/{{user_id}}/"],
    )
    body = monitor(f"file://{mine}/batches/")
    plan, asked = plan_for(body, config, {("get", "ModelMonitor", "watch"): body})
    assert not any(key[0] == "listing" for key in asked)
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "LocationNotAllowed" and "link" in ready["message"]
    # A link that stays in one's own folder is one's own.
    (mine / "real").mkdir()
    (mine / "inside").symlink_to(mine / "real", target_is_directory=True)
    assert access.resolved_problem(f"file://{mine}/inside/", [f"file://{mine}/"]) is None
    assert access.resolved_problem(f"file://{mine}/batches/x.csv", [f"file://{mine}/"])


def lookup(*objects: dict[str, Any]) -> Any:
    found = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    return lambda kind, name: found.get((kind, name))


RUN = training_run("income", phase="Succeeded", modelUri="s3://artifacts/team-a/alice/m/v1",
                   modelDigest=DIGEST, modelVersion="v1")  # fmt: skip
DATASET = {"kind": "Dataset", "metadata": {"name": "adult", "uid": "d"},
           "spec": {"uri": "s3://datasets/team-a/alice/adult.csv"},
           "status": {"phase": "Succeeded", "observedGeneration": 1}}  # fmt: skip


OUTSIDE_BATCH = {"batches": [{"uri": "s3://datasets/team-b/bob/b.csv"}]}
OUTSIDE_CANDIDATE = {
    "batches": [{"uri": "s3://datasets/team-a/alice/b.csv"}],
    "candidate": {"uri": "s3://artifacts/team-b/bob/m/v9", "digest": OTHER},
}


@pytest.mark.parametrize(
    ("window", "field"), [(OUTSIDE_BATCH, "batches[0]"), (OUTSIDE_CANDIDATE, "candidate")]
)
def test_every_location_of_a_window_is_checked(window: dict[str, Any], field: str) -> None:
    spec = monitor("s3://datasets/team-a/alice/")["spec"]
    with pytest.raises(UnresolvedReference) as refused:
        resolve(MODEL_MONITOR, spec, lookup(RUN, DATASET), "watch", TENANTS,
                namespace="team-a", window=window)  # fmt: skip
    assert refused.value.reason == "LocationNotAllowed"
    assert refused.value.message.startswith(f"{field}:")


# -- class 1: both models pinned by the Job, verified before unpickling -----------------------
def test_the_job_pins_the_candidate_model_as_it_pins_the_watched_one() -> None:
    """A window that scores a retrained candidate loads a second model: its digest is in the
    Job's own arguments too (`--candidate-digest`), not only in the spec's ConfigMap."""
    prefix = "file:///data/batches/"
    candidate = {"name": "watch-r1", "state": "Comparing", "reason": "r", "modelVersion": "v2"}
    status = {"retraining": {"candidate": candidate}, "lastCheckedAt": "2026-12-02T11:00:00Z"}
    body = monitor(prefix, status)
    trained = training_run("watch-r1", owner="m1", phase="Succeeded",
                           modelUri="file:///m/v2", modelDigest=OTHER)  # fmt: skip
    listed = [Listed(f"{prefix}1.csv", NOW - timedelta(minutes=5), 10)]
    resolved = Resolved(
        {"model": {"uri": "file:///m/v1", "digest": DIGEST},
         "candidate": {"uri": "file:///m/v2", "digest": OTHER},
         "reference": {"uri": "file:///d.csv"}, "target": "income",
         "batches": [{"uri": f"{prefix}1.csv"}]},
        inputs=[],
    )  # fmt: skip
    reads = {
        ("get", "ModelMonitor", "watch"): body,
        ("listing", prefix): listed,
        ("get", "TrainingRun", "watch-r1"): trained,
        ("references", "g1"): resolved,
    }
    config = OperatorConfig(artifact_root="file:///artifacts", jobs_image="local")
    plan, _ = plan_for(body, config, reads)
    (job,) = [w.job for w in plan.writes if isinstance(w, CreateJob)]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model-digest") + 1] == DIGEST
    assert args[args.index("--candidate-digest") + 1] == OTHER


def window_spec(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "model": {"uri": f"file://{tmp_path}/model", "digest": DIGEST},
        "reference": {"uri": f"file://{tmp_path}/reference.csv"},
        "target": "income",
        "batches": [{"uri": f"file://{tmp_path}/b.csv"}],
        **extra,
    }


@pytest.mark.parametrize(
    ("job_candidate", "spec_candidate"),
    [
        (None, OTHER),  # a candidate added to the spec of a Job that named none
        (OTHER, DIGEST),  # the candidate's digest changed in the spec
    ],
)
def test_a_candidate_the_job_does_not_pin_is_refused(
    tmp_path: Path, job_candidate: str | None, spec_candidate: str
) -> None:
    spec = window_spec(
        tmp_path, candidate={"uri": f"file://{tmp_path}/planted", "digest": spec_candidate}
    )
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / "out"
    code = cli.run("monitor", str(spec_file), f"file://{out}", "u/g1", DIGEST, job_candidate)
    assert code == 2
    error = json.loads((out / "error.json").read_text())
    assert error["reason"] == "ModelDigestMismatch", error
    assert not (out / "result.json").exists()
    # The same spec with the Job's own digest for its candidate passes this check.
    parsed = MonitorJobSpec.model_validate(spec)
    cli.pin_model_digest(parsed, DIGEST, spec_candidate)
    assert parsed.candidate is not None and parsed.candidate.digest == spec_candidate


class Payload:
    """Unpickling this creates a directory: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.marker,)


def planted_model(folder: Path, marker: Path) -> str:
    """A model directory whose predictor.pkl runs code when unpickled; its true digest."""
    folder.mkdir(parents=True)
    (folder / "predictor.pkl").write_bytes(pickle.dumps(Payload(marker)))
    (folder / "fairpilot-model.json").write_text("{}")
    _, digest = model_digest.write_manifest(folder)
    return digest


def test_the_monitor_stage_verifies_the_candidate_before_anything_is_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fairpilot_jobs.monitor.stage import run_monitor

    watched_digest = planted_model(tmp_path / "model", tmp_path / "watched-ran")
    real_digest = planted_model(tmp_path / "candidate", tmp_path / "candidate-ran")
    loaded: list[str] = []

    class Predictor:
        @staticmethod
        def load(path: str, **_: Any) -> Any:
            loaded.append(path)  # the watched model: not unpickled here
            return object()

    fake = types.ModuleType("autogluon.tabular")
    fake.TabularPredictor = Predictor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "autogluon.tabular", fake)
    store = artifacts.ArtifactStore(f"file://{tmp_path}/out")
    for digest, changed in [(OTHER, False), (real_digest, True)]:
        if changed:  # the candidate's files changed after its digest was recorded
            (tmp_path / "candidate" / "extra.pkl").write_bytes(b"x")
        spec = MonitorJobSpec.model_validate(
            window_spec(
                tmp_path,
                model={"uri": f"file://{tmp_path}/model", "digest": watched_digest},
                candidate={"uri": f"file://{tmp_path}/candidate", "digest": digest},
            )
        )
        with pytest.raises(JobError) as refused:
            run_monitor(spec, store)
        assert refused.value.reason in ("ModelDigestMismatch", "ModelTampered")
        assert refused.value.reason == ("ModelTampered" if changed else "ModelDigestMismatch")
    assert len(loaded) == 2, "only the watched model, once per run, reached the loader"
    assert not (tmp_path / "candidate-ran").exists()
    assert not (tmp_path / "watched-ran").exists()


# -- class 4: a hostile batch is one rejected batch ------------------------------------------
def test_a_name_no_uri_may_hold_rejects_that_batch_not_the_window(tmp_path: Path) -> None:
    """Whoever writes the data chooses the names: a file name with a newline or a zero-width
    space, an S3 key with '#' or '?', a NUL in a spec. Each is that batch's InvalidURI; the
    operator resolves the window (no InvalidSpec failing the monitor at every look)."""
    pd.DataFrame({"age": [21, 35]}).to_csv(tmp_path / "ok.csv", index=False)
    bad = [
        f"file://{tmp_path}/a%0Ab.csv",
        f"file://{tmp_path}/a%E2%80%8Bb.csv",
        f"file://{tmp_path}/a\x00b.csv",
        "s3://datasets/team-a/alice/batches/x#y.csv",
        "s3://datasets/team-a/alice/batches/x?y.csv",
    ]
    batches = [Batch.model_validate({"uri": uri}) for uri in [*bad, f"file://{tmp_path}/ok.csv"]]
    found = read_window(batches, REFERENCES)
    assert [u["uri"] for u in found.used] == [f"file://{tmp_path}/ok.csv"]
    assert [r["uri"] for r in found.rejected] == bad
    assert {r["reason"] for r in found.rejected} == {"InvalidURI"}
    assert all("\x00" not in r["message"] and "\n" not in r["message"] for r in found.rejected)

    spec = monitor("s3://datasets/team-a/alice/batches/")["spec"]
    window = {"batches": [{"uri": uri} for uri in bad[3:]]}
    resolved = resolve(MODEL_MONITOR, spec, lookup(RUN, DATASET), "watch", TENANTS,
                       namespace="team-a", window=window)  # fmt: skip
    assert [b["uri"] for b in resolved.spec["batches"]] == bad[3:]


def test_a_batch_through_a_link_out_of_the_allowed_folders_is_refused_in_the_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, theirs = tmp_path / "team-a" / "alice", tmp_path / "team-b" / "bob"
    mine.mkdir(parents=True)
    theirs.mkdir(parents=True)
    pd.DataFrame({"age": [40, 41]}).to_csv(theirs / "secret.csv", index=False)
    (mine / "b.csv").symlink_to(theirs / "secret.csv")
    monkeypatch.setenv(access.ALLOWED_LOCATIONS_ENV, json.dumps([f"file://{mine}/"]))
    found = read_window([Batch.model_validate({"uri": f"file://{mine}/b.csv"})], REFERENCES)
    assert found.used == []
    assert [r["reason"] for r in found.rejected] == ["LocationNotAllowed"]


def test_listing_a_batch_folder_follows_no_planted_link(tmp_path: Path) -> None:
    folder = tmp_path / "batches"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.csv").write_text("age\n1\n")
    (folder / "passwd.csv").symlink_to("/etc/passwd")
    (folder / "elsewhere").symlink_to(tmp_path.parent, target_is_directory=True)
    listed = artifacts.listing(f"file://{folder}/")
    assert [item.uri for item in listed] == [f"file://{folder}/sub/b.csv"]


def test_compressed_and_parquet_bombs_are_bounded_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monitor reads batches through the stages' bounded reader: the same limits, and the
    refusal's own reason for the one batch."""
    monkeypatch.setenv("FAIRPILOT_MAX_DECOMPRESSED_BYTES", "100000")
    monkeypatch.setenv("FAIRPILOT_MAX_PARQUET_METADATA_BYTES", "64")
    bomb = tmp_path / "bomb.csv"  # gzip under a plain name: known by its first bytes
    bomb.write_bytes(gzip.compress(b"age\n" + b"1\n" * 500_000))
    pd.DataFrame({"age": range(10)}).to_parquet(tmp_path / "wide.parquet")
    pd.DataFrame({"age": [30, 31]}).to_csv(tmp_path / "ok.csv", index=False)
    names = ["bomb.csv", "wide.parquet", "ok.csv"]
    batches = [Batch.model_validate({"uri": f"file://{tmp_path}/{n}"}) for n in names]
    found = read_window(batches, REFERENCES)
    assert {r["uri"].rsplit("/", 1)[1]: r["reason"] for r in found.rejected} == {
        "bomb.csv": "DecompressedTooLarge",
        "wide.parquet": "ParquetMetadataTooLarge",
    }
    assert len(found.rows) == 2


class _Metric:
    name = "accuracy"


class FakePredictor:
    """What measure_window asks of a binary model, without AutoGluon."""

    problem_type = "binary"
    original_features: ClassVar[list[str]] = ["x", "g"]
    class_labels: ClassVar[list[str]] = ["no", "yes"]
    positive_class = "yes"
    label = "income"
    eval_metric = _Metric()

    def predict_proba(self, rows: pd.DataFrame) -> pd.DataFrame:
        chance = 1 / (1 + np.exp(-rows["x"].to_numpy(dtype="float64")))
        return pd.DataFrame({"no": 1 - chance, "yes": chance})

    def predict_from_proba(self, proba: pd.DataFrame) -> np.ndarray:
        return np.where(proba["yes"] > 0.5, "yes", "no")

    def predict(self, rows: pd.DataFrame) -> pd.Series:
        return pd.Series(self.predict_from_proba(self.predict_proba(rows)), index=rows.index)


def test_a_feature_of_10000_groups_costs_seconds_and_a_readable_report(tmp_path: Path) -> None:
    from fairpilot_jobs.monitor.stage import measure_window
    from fairpilot_jobs.reports.monitor_report import build_monitor_report

    rng = np.random.default_rng(0)
    rows = 40_000

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": rng.normal(size=n), "g": [f"g{i % 10_000}" for i in range(n)]})

    frame(20_000).assign(income="no").to_csv(tmp_path / "reference.csv", index=False)
    frame(rows).to_csv(tmp_path / "b.csv", index=False)
    spec = MonitorJobSpec.model_validate(
        window_spec(
            tmp_path,
            sensitiveFeatures=["g"],
            thresholds={"minGroupSize": 2},
            baseline={"fairness": [{"name": "g", "disparateImpact": 0.9}]},
        )
    )
    started = time.monotonic()
    result = measure_window(spec, FakePredictor(), {})
    html = build_monitor_report(result)
    took = time.monotonic() - started
    groups = result["fairness"]["features"]["g"]["groups"]
    assert len(groups) == 10_000  # every group measured, all of them in result.json
    assert took < 30, f"{took:.1f} s"
    # The report tables the largest groups and the two the measures name, and says where
    # the rest are.
    assert html.count("<tr") < 200
    assert "10,000 groups: shown are the 20 largest" in html
    assert "fairness.features.g.groups" in html
    window = result["fairness"]["features"]["g"]["window"]
    for extreme in (window["lowestSelectionGroup"], window["highestSelectionGroup"]):
        assert extreme is not None and f">{extreme}<" in html


# -- class 2 (Kafka): a record stays in its namespace; windows follow no link -------------------
def record(**fields: Any) -> PredictionRecord:
    return PredictionRecord.model_validate(
        {"model_id": "income", "user_id": "ana", "features": {"age": 30}, **fields}
    )


def kafka_monitor(name: str, namespace: str) -> dict[str, Any]:
    return {
        "kind": "ModelMonitor",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"trainingRunRef": "income", "userId": "ana", "kafka": {"modelId": "income"}},
    }


def test_a_record_naming_no_namespace_reaches_only_the_bridges_own_namespace() -> None:
    """As a trigger without a namespace is the bridge's own namespace's: a team that makes a
    monitor with another team's user and model id does not receive that team's records."""
    bridge = BridgeConfig(
        bootstrap_servers="unused:9092", namespace="team-a", allowed_namespaces=["team-b"]
    )
    index = MonitorIndex(bridge, OperatorConfig(artifact_root="file:///artifacts"))
    index.update(kafka_monitor("ours", "team-a"), "ADDED")
    index.update(kafka_monitor("look-alike", "team-b"), "ADDED")
    assert [w.name for w in index.route(record(), "prediction-events")] == ["ours"]
    named = index.route(record(namespace="team-b"), "prediction-events")
    assert [w.name for w in named] == ["look-alike"]


@pytest.mark.parametrize("topic", ["fairpilot-dead-letter", "dataset-events", "bias-events"])
def test_a_monitor_cannot_make_the_bridge_read_its_own_topics(topic: str) -> None:
    """On the dead-letter topic, every record it dead-letters would come back to be
    dead-lettered again, without end."""
    index = MonitorIndex(
        BridgeConfig(bootstrap_servers="x:9092"), OperatorConfig(artifact_root="file:///a")
    )
    body = kafka_monitor("loop", "default")
    body["spec"]["kafka"]["topic"] = topic
    assert not index.update(body, "ADDED")
    assert index.subscription() == set()
    index.replace([body], index.mark())
    assert index.subscription() == set()


def test_window_files_follow_no_link_below_the_namespaces_artifact_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link planted in the namespace's artifact folders (to another namespace's, to /etc)
    is refused as the stages refuse one, not written through."""
    monkeypatch.setattr("fairpilot.bridge.predictions.WRITE_TRIES", 1)
    operator = OperatorConfig(artifact_root=f"file://{tmp_path}/artifacts")
    elsewhere = tmp_path / "artifacts" / "team-b" / "bob"
    elsewhere.mkdir(parents=True)
    mine = tmp_path / "artifacts" / "team-a" / "ana"
    mine.mkdir(parents=True)
    (mine / "modelmonitors").symlink_to(elsewhere, target_is_directory=True)
    body = kafka_monitor("watch", "team-a")
    index = MonitorIndex(BridgeConfig(bootstrap_servers="x:9092", namespace="team-a"), operator)
    index.update(body, "ADDED")
    (watcher,) = index.monitors.values()
    consumer = PredictionConsumer(
        BridgeConfig(bootstrap_servers="x:9092", namespace="team-a"),
        None,
        None,
        operator,  # type: ignore[arg-type]
    )
    consumer.index = index
    consumer.windows = Windows(1 << 20)
    key = (watcher.key, "prediction-events", 0)
    consumer.windows.learn(key, -1)
    (window,) = consumer.windows.add(key, 0, record(), 10, records=1, seconds=60, now=0.0)
    with pytest.raises(JobError) as refused:
        asyncio.run(consumer._write_one(window))
    assert refused.value.reason == "UnsafePath"
    assert list(elsewhere.iterdir()) == []
    # Without the link the window lands in the monitor's own folder.
    (mine / "modelmonitors").unlink()
    written = write_window(
        watcher.records_uri, window.name, [record()], "income", "prediction",
        access.artifact_root(operator, "team-a"),
    )  # fmt: skip
    assert written.startswith(f"file://{mine}/modelmonitors/watch/uid-watch/records/")


# -- class 5: a look-alike TrainingRun is not the monitor's candidate -------------------------
def test_a_training_run_of_the_candidates_name_made_by_someone_else_is_not_adopted() -> None:
    prefix = "file:///data/batches/"
    running = {"phase": "Running", "observedGeneration": 1, "runId": "g1r2", "window": 3,
               "jobName": "fp-monitor-watch-g1r2", "outputUri": "file:///out"}  # fmt: skip
    body = monitor(prefix, running, retraining={"triggers": ["DriftDetected"]})
    job = {"metadata": {"name": "fp-monitor-watch-g1r2", "ownerReferences": [{"uid": "m1"}]},
           "status": {"conditions": [{"type": "Complete", "status": "True"}]}}  # fmt: skip
    alert = {"type": "DriftDetected", "feature": "age", "metric": "psi", "value": 0.3,
             "baseline": None, "threshold": 0.2, "message": "age drifted"}  # fmt: skip
    summary = {"window": 3, "rows": 2000, "alerts": ["DriftDetected"]}
    result = {"window": 3, "rows": 2000, "judged": True, "labelledRows": 0, "alerts": [alert],
              "summary": summary, "history": [summary], "reports": {},
              "model": {"uri": "file:///m/v1", "modelId": "income", "version": "v1"}}  # fmt: skip
    look_alike = training_run("watch-r1", phase="Succeeded", modelUri="file:///m/x",
                              modelDigest=OTHER)  # fmt: skip
    world = World(body, job)
    world.now = STAMP
    reads = {
        ("json", "file:///out/result.json"): result,
        ("get", "TrainingRun", "income"): training_run("income"),
        ("get", "TrainingRun", "watch-r1"): look_alike,
    }
    world.created[("TrainingRun", "watch-r1")] = False  # the create found one there
    while True:
        try:
            plan = decide(MODEL_MONITOR, world, OperatorConfig(artifact_root="file:///a"))
            break
        except Need as need:
            assert need.key in reads, need.key
            world.knows(need.key, reads[need.key])
    written = [w for w in plan.writes if isinstance(w, PatchStatus)]
    assert written and "candidate" not in (written[-1].patch.get("retraining") or {})
    assert ("Warning", "RetrainingNotStarted") in [(e[0], e[1]) for e in plan.events]
    assert all(not isinstance(w, CreateResource) or w.resource["metadata"]["name"] == "watch-r1"
               for w in plan.writes)  # fmt: skip


@pytest.mark.parametrize("owner", ["m1", None, "someone-else"])
def test_a_candidate_of_another_owner_is_never_scored(owner: str | None) -> None:
    """The candidate is followed by its name; a TrainingRun of that name that the monitor did
    not make (deleted and made again while it trained) is left out of the window: never scored
    beside the watched model, never promoted."""
    prefix = "file:///data/batches/"
    candidate = {"name": "watch-r1", "state": "Comparing", "reason": "r", "modelVersion": "v2"}
    status = {"retraining": {"candidate": candidate}, "lastCheckedAt": "2026-12-02T11:00:00Z"}
    body = monitor(prefix, status)
    run = training_run("watch-r1", owner=owner, phase="Succeeded", modelUri="file:///m/x",
                       modelDigest=OTHER)  # fmt: skip
    world = World(body, None)
    world.now = STAMP
    world.knows(("get", "ModelMonitor", "watch"), body)
    world.knows(("listing", prefix), [Listed(f"{prefix}1.csv", NOW - timedelta(minutes=5), 1)])
    world.knows(("get", "TrainingRun", "watch-r1"), run)
    seen: list[dict[str, Any]] = []

    class Reader:
        def references(self, kind: Any, spec: Any, name: str, window: dict[str, Any]) -> Any:
            seen.append(window)
            return UnresolvedReference("NotReady", "stop here", waiting=True)

    with pytest.raises(Need) as need:
        decide(MODEL_MONITOR, world, OperatorConfig(artifact_root="file:///a"))
    assert need.value.key[0] == "references"
    need.value.read(Reader())  # type: ignore[arg-type]
    assert ("candidate" in seen[0]) == (owner == "m1")


def test_the_stage_loads_no_model_without_its_digest(tmp_path: Path) -> None:
    """The control: a spec (or Job) without a digest loads nothing."""
    marker = tmp_path / "ran"
    planted_model(tmp_path / "m", marker)
    from fairpilot_jobs.models import load_predictor

    with ExitStack() as stack, pytest.raises(JobError) as refused:
        load_predictor(f"file://{tmp_path}/m", None, stack)
    assert refused.value.reason == "ModelDigestMissing"
    assert not marker.exists()
