"""A model directory is code: stages load only the model the train stage wrote (issue 13).

The train stage records a manifest of every file it wrote for the model and one digest of it;
the operator hands the digest to the explain and bias stages with the model's URI; they check
the whole directory against it before anything is unpickled. Every attack below plants or
changes something in a copy of a real trained model; a planted pickle would create a marker
when unpickled, and the marker must never appear.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from support.jobs import JobRun, run_job

from fairpilot.api.kinds import EXPLANATION, TRAINING_RUN
from fairpilot.config import OperatorConfig
from fairpilot.controller.reconcile import _unreported_digest, _with_model
from fairpilot.errors import JobError
from fairpilot.kinds import project_result
from fairpilot.references import UnresolvedReference, resolve
from fairpilot_jobs import model_digest
from fairpilot_jobs.models import load_predictor

DIGEST_FORMAT = re.compile(r"^sha256:[0-9a-f]{64}$")


class Payload:
    """Unpickling this creates a directory: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.marker,)


def payload(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker))


def test_the_payload_runs_when_unpickled(tmp_path: Path) -> None:
    """The control: what the attacks plant does run code when something unpickles it."""
    marker = tmp_path / "ran"
    pickle.loads(payload(marker))
    assert marker.is_dir()


# -- the train stage records the digest --------------------------------------------------------
def model_dir(trained: JobRun) -> Path:
    return Path(trained.result["model"]["uri"].removeprefix("file://"))


def test_train_records_a_manifest_of_every_file_and_its_digest(trained: JobRun) -> None:
    result = trained.result
    digest = result["modelDigest"]
    assert DIGEST_FORMAT.match(digest)
    assert result["model"]["digest"] == digest
    root = model_dir(trained)
    raw = (root / model_digest.MANIFEST_FILE).read_bytes()
    # The digest is the sha256 of the manifest's canonical JSON.
    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    manifest = json.loads(raw)
    assert model_digest.canonical(manifest) == raw
    assert result["model"]["manifest"] == manifest
    files = manifest["files"]
    assert list(files) == sorted(files)
    on_disk = {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and p.name != model_digest.MANIFEST_FILE
    }
    # Every file but the manifest itself, the metadata and every pickle included.
    assert set(files) == set(on_disk)
    assert {"predictor.pkl", "fairpilot-model.json"} <= set(files)
    assert any(name.startswith("models/") for name in files)
    for name, path in on_disk.items():
        data = path.read_bytes()
        assert files[name] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


# -- the stages verify before they unpickle -----------------------------------------------------
@pytest.fixture
def copy(trained: JobRun, tmp_path: Path) -> Path:
    """A copy of the trained model, to tamper with."""
    target = tmp_path / "model"
    shutil.copytree(model_dir(trained), target, symlinks=True)
    return target


def load(path: Path, digest: str | None) -> tuple[Any, dict[str, Any]]:
    with ExitStack() as stack:
        return load_predictor(f"file://{path}", digest, stack)


def refused(path: Path, digest: str | None, reason: str) -> JobError:
    with pytest.raises(JobError) as caught:
        load(path, digest)
    assert caught.value.reason == reason, caught.value
    return caught.value


def member(root: Path) -> Path:
    """The largest file of a member model (under models/)."""
    return max(
        (p for p in (root / "models").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )


def test_the_intact_model_loads_from_a_verified_private_copy(trained: JobRun, copy: Path) -> None:
    with ExitStack() as stack:
        predictor, metadata = load_predictor(
            trained.result["model"]["uri"], trained.result["modelDigest"], stack
        )
        assert Path(predictor.path).resolve() != model_dir(trained).resolve()
        assert metadata["model_id"] == "adult-income"
        assert list(predictor.class_labels) == ["<=50K", ">50K"]
    # The run's claim marker (a registry folder's) is no part of the model, and allowed.
    (copy / ".fairpilot-run.json").write_text('{"runId": "g1"}')
    load(copy, trained.result["modelDigest"])


def test_a_replaced_predictor_pickle_is_never_unpickled(
    trained: JobRun, copy: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    (copy / "predictor.pkl").write_bytes(payload(marker))
    error = refused(copy, trained.result["modelDigest"], "ModelDigestMismatch")
    assert "predictor.pkl" in error.message
    assert not marker.exists()


def test_a_planted_extra_pickle_is_refused(trained: JobRun, copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (copy / "models" / "evil.pkl").write_bytes(payload(marker))
    error = refused(copy, trained.result["modelDigest"], "ModelTampered")
    assert "models/evil.pkl" in error.message
    assert not marker.exists()


def test_a_manifest_rewritten_for_a_planted_pickle_does_not_match_the_digest(
    trained: JobRun, copy: Path, tmp_path: Path
) -> None:
    """The attacker recomputes the manifest: the digest the operator holds gives it away."""
    marker = tmp_path / "ran"
    (copy / "predictor.pkl").write_bytes(payload(marker))
    (copy / model_digest.MANIFEST_FILE).unlink()
    _, forged = model_digest.write_manifest(copy)
    assert forged != trained.result["modelDigest"]
    refused(copy, trained.result["modelDigest"], "ModelDigestMismatch")
    assert not marker.exists()


def test_one_changed_byte_in_a_member_model_is_refused(trained: JobRun, copy: Path) -> None:
    target = member(copy)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    error = refused(copy, trained.result["modelDigest"], "ModelDigestMismatch")
    assert target.relative_to(copy).as_posix() in error.message


def test_changed_metadata_is_refused(trained: JobRun, copy: Path) -> None:
    metadata = copy / "fairpilot-model.json"
    text = metadata.read_text()
    assert '"is_active": true' in text
    metadata.write_text(text.replace('"is_active": true', '"is_active": false'))
    refused(copy, trained.result["modelDigest"], "ModelDigestMismatch")


def test_a_missing_file_is_refused(trained: JobRun, copy: Path) -> None:
    target = member(copy)
    target.unlink()
    error = refused(copy, trained.result["modelDigest"], "ModelTampered")
    assert target.relative_to(copy).as_posix() in error.message


def test_a_symlink_is_refused_even_to_the_right_content(trained: JobRun, copy: Path) -> None:
    target = member(copy)
    original = model_dir(trained) / target.relative_to(copy)
    target.unlink()
    target.symlink_to(original)
    error = refused(copy, trained.result["modelDigest"], "ModelTampered")
    assert "symbolic link" in error.message


def test_a_symlinked_directory_is_refused(trained: JobRun, copy: Path) -> None:
    shutil.rmtree(copy / "models")
    (copy / "models").symlink_to(model_dir(trained) / "models", target_is_directory=True)
    error = refused(copy, trained.result["modelDigest"], "ModelTampered")
    assert "symbolic link" in error.message


def test_a_symlinked_model_directory_is_refused(trained: JobRun, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(model_dir(trained), target_is_directory=True)
    refused(link, trained.result["modelDigest"], "ModelTampered")


def test_a_wrong_or_missing_digest_is_refused(trained: JobRun, copy: Path) -> None:
    refused(copy, "sha256:" + "0" * 64, "ModelDigestMismatch")
    refused(copy, None, "ModelDigestMissing")
    refused(copy, "", "ModelDigestMissing")


def test_a_model_without_a_manifest_is_not_verifiable(trained: JobRun, copy: Path) -> None:
    (copy / model_digest.MANIFEST_FILE).unlink()
    refused(copy, trained.result["modelDigest"], "ModelNotVerifiable")


def _explain(trained: JobRun, adult: dict[str, str], model: dict[str, Any], out: Path) -> JobRun:
    spec = {"model": model, "dataset": {"uri": adult["test"]}, "sampleSize": 20}
    return run_job("explain", spec, out)


def test_the_cli_refuses_a_planted_pickle_with_exit_code_2(
    trained: JobRun, adult: dict[str, str], copy: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    (copy / "models" / "evil.pkl").write_bytes(payload(marker))
    model = {"uri": f"file://{copy}", "digest": trained.result["modelDigest"]}
    run = _explain(trained, adult, model, tmp_path / "explain")
    assert run.returncode == 2, run.stderr
    assert run.error["reason"] == "ModelTampered" and "models/evil.pkl" in run.error["message"]
    assert not (run.output / "result.json").exists()
    # The bias stage loads models the same way.
    spec = {
        "dataset": {"uri": adult["test"]},
        "model": model,
        "target": "income",
        "sensitiveFeatures": ["sex"],
    }
    bias = run_job("bias", spec, tmp_path / "bias")
    assert bias.returncode == 2, bias.stderr
    assert bias.error["reason"] == "ModelTampered"
    assert not marker.exists()


def test_the_cli_refuses_a_model_without_a_digest_with_exit_code_2(
    trained: JobRun, adult: dict[str, str], tmp_path: Path
) -> None:
    run = _explain(trained, adult, {"uri": trained.result["model"]["uri"]}, tmp_path / "out")
    assert run.returncode == 2, run.stderr
    assert run.error["reason"] == "ModelDigestMissing"


def test_an_s3_model_is_verified_after_download(trained: JobRun, s3_client: Any) -> None:
    s3_client.create_bucket(Bucket="models")
    root = model_dir(trained)
    for path in root.rglob("*"):
        if path.is_file():
            key = f"m/v1/{path.relative_to(root).as_posix()}"
            s3_client.put_object(Bucket="models", Key=key, Body=path.read_bytes())
    digest = trained.result["modelDigest"]
    with ExitStack() as stack:
        predictor, _ = load_predictor("s3://models/m/v1", digest, stack)
        assert predictor.problem_type == "binary"
    s3_client.put_object(Bucket="models", Key="m/v1/models/evil.pkl", Body=b"planted")
    with pytest.raises(JobError) as caught, ExitStack() as stack:
        load_predictor("s3://models/m/v1", digest, stack)
    assert caught.value.reason == "ModelTampered" and "models/evil.pkl" in caught.value.message


# -- the operator: status, and the digest in the job spec ---------------------------------------
def test_the_training_run_status_carries_the_digest(trained: JobRun) -> None:
    projected = project_result(TRAINING_RUN, trained.result)
    assert projected["modelDigest"] == trained.result["modelDigest"]
    older = {"version": "v0", "modelUri": "s3://models/v0", "modelDigest": "sha256:" + "a" * 64}
    projected["models"] = _with_model({"models": [older]}, projected, "g2", "now")
    assert projected["models"][0] == older
    assert projected["models"][-1]["modelDigest"] == trained.result["modelDigest"]
    TRAINING_RUN.status.model_validate(projected)


D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _training_run(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "model", "uid": "uid-model", "generation": 1},
        "spec": {"datasetRef": "data", "target": "income"},
        "status": {"phase": "Succeeded", "observedGeneration": 1, "runId": "g2", **status},
    }


def _explanation_spec(run: dict[str, Any], **spec: Any) -> dict[str, Any]:
    dataset = {
        "metadata": {"name": "data", "uid": "uid-data", "generation": 1},
        "spec": {"uri": "file:///data/adult.csv"},
        "status": {"phase": "Succeeded", "observedGeneration": 1},
    }
    objects = {"TrainingRun": run, "Dataset": dataset}
    resolved = resolve(
        EXPLANATION, {"trainingRunRef": "model", **spec}, lambda kind, name: objects.get(kind)
    )
    return {"spec": resolved.spec, "inputs": resolved.inputs}


def test_the_job_spec_gets_the_current_or_the_pinned_models_digest() -> None:
    run = _training_run(
        modelUri="s3://models/v2",
        modelVersion="v2",
        modelDigest=D2,
        models=[
            {"version": "v1", "modelUri": "s3://models/v1", "modelDigest": D1},
            {"version": "v2", "modelUri": "s3://models/v2", "modelDigest": D2},
        ],
    )
    current = _explanation_spec(run)
    assert current["spec"]["model"] == {"uri": "s3://models/v2", "digest": D2}
    recorded = next(i for i in current["inputs"] if i["field"] == "trainingRunRef")
    assert recorded["modelDigest"] == D2
    pinned = _explanation_spec(run, modelVersion="v1")
    assert pinned["spec"]["model"] == {"uri": "s3://models/v1", "digest": D1}


def test_a_model_without_a_digest_is_refused_by_the_operator() -> None:
    old = _training_run(modelUri="s3://models/v1", modelVersion="v1")
    with pytest.raises(UnresolvedReference) as caught:
        _explanation_spec(old)
    assert caught.value.reason == "ModelNotVerifiable" and not caught.value.waiting
    # A pinned version trained before digests existed, on a run whose current model has one.
    mixed = _training_run(
        modelUri="s3://models/v2",
        modelVersion="v2",
        modelDigest=D2,
        models=[
            {"version": "v1", "modelUri": "s3://models/v1"},
            {"version": "v2", "modelUri": "s3://models/v2", "modelDigest": D2},
        ],
    )
    with pytest.raises(UnresolvedReference) as caught:
        _explanation_spec(mixed, modelVersion="v1")
    assert caught.value.reason == "ModelNotVerifiable" and "v1" in caught.value.message


def test_the_operator_trusts_a_digest_only_as_the_train_pod_reported_it(trained: JobRun) -> None:
    """result.json is in the artifact store, like the model: a digest there that the pod did
    not report (its termination message, written by the kubelet) fails the TrainingRun."""
    projected = project_result(TRAINING_RUN, trained.result)
    reported = {"message": json.dumps({"modelDigest": trained.result["modelDigest"]})}
    assert _unreported_digest(TRAINING_RUN, projected, reported) is None
    for terminated in (None, {"message": ""}, {"message": "not json"},
                       {"message": json.dumps({"modelDigest": "sha256:" + "1" * 64})}):  # fmt: skip
        problem = _unreported_digest(TRAINING_RUN, projected, terminated)
        assert problem and "not the one the train pod reported" in problem


def test_a_retry_clears_its_own_partial_upload_and_nothing_else(tmp_path: Path) -> None:
    from fairpilot.artifacts import CLAIM_FILE, ArtifactStore

    store = ArtifactStore(f"file://{tmp_path}/models/m/v1")
    store.claim("uid/g1")
    store.write_bytes("models/partial.pkl", b"first attempt")
    (tmp_path / "elsewhere").write_text("not ours")
    (tmp_path / "models" / "m" / "v1" / "link").symlink_to(tmp_path / "elsewhere")
    again = ArtifactStore(f"file://{tmp_path}/models/m/v1")
    again.claim("uid/g1")  # the same run, retried
    again.clear_own_attempt()
    assert again.files() == [CLAIM_FILE]
    assert (tmp_path / "elsewhere").read_text() == "not ours"


def test_the_job_itself_pins_the_digest_the_spec_must_agree_with() -> None:
    """The spec travels in a ConfigMap (immutable, but a namespace user with the rights could
    delete and re-create it before the pod starts); the Job's own arguments, which cannot be
    changed once it exists, carry the digest too, and the stage refuses a spec that differs."""
    from fairpilot.api import ExplainJobSpec
    from fairpilot.jobs import build_job, spec_config_map
    from fairpilot_jobs.cli import pin_model_digest

    good, planted = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    explanation = {
        "metadata": {"name": "e", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"trainingRunRef": "m"},
    }
    job = build_job(EXPLANATION, explanation, OperatorConfig(), "g1", model_digest=good)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model-digest") + 1] == good
    assert spec_config_map(EXPLANATION, explanation, {}, "g1")["immutable"] is True
    spec = ExplainJobSpec.model_validate(
        {"model": {"uri": "file:///m", "digest": planted}, "dataset": {"uri": "file:///d.csv"}}
    )
    with pytest.raises(JobError) as refused:
        pin_model_digest(spec, good)
    assert refused.value.reason == "ModelDigestMismatch"
    unpinned = ExplainJobSpec.model_validate(
        {"model": {"uri": "file:///m"}, "dataset": {"uri": "file:///d.csv"}}
    )
    pin_model_digest(unpinned, good)
    assert unpinned.model.digest == good
