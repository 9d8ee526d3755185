"""scripts/e2e-kind.sh (`make e2e`) without a cluster: it parses, it skips cleanly (exit 0,
nothing run) where Docker or kind is missing, and the Python it embeds does what the run needs
(rewrite the example's data URIs, judge the resources' phases, list the URIs to check)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "e2e-kind.sh"
BASH = shutil.which("bash") or "/bin/bash"

# A stand-in that records how it was called; `docker info` exits with FAKE_DOCKER_INFO_RC.
FAKE = """#!{bash}
echo "${{0##*/}} $*" >>"$FAKE_LOG"
if [[ ${{0##*/}} == docker && $1 == info ]]; then exit "${{FAKE_DOCKER_INFO_RC:-0}}"; fi
exit 0
"""


def run_script(
    tmp_path: Path, fakes: list[str], **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs the script with a PATH of nothing but the given fakes; returns what they recorded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in fakes:
        fake = bin_dir / name
        fake.write_text(FAKE.format(bash=BASH))
        fake.chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    done = subprocess.run(
        [BASH, str(SCRIPT)],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "FAKE_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    return done, log.read_text().splitlines()


def test_script_parses() -> None:
    subprocess.run([BASH, "-n", str(SCRIPT)], check=True, timeout=30)


def test_skips_without_docker_and_kind(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, ["kubectl", "helm", "make"])
    assert done.returncode == 0, done.stderr
    assert "SKIPPED" in done.stdout and "nothing ran" in done.stdout
    assert "missing: docker" in done.stdout
    assert "missing: kind" in done.stdout
    assert calls == []  # no kubectl, helm, make: not a single command ran


def test_skips_when_the_docker_engine_is_unreachable(tmp_path: Path) -> None:
    done, calls = run_script(
        tmp_path, ["docker", "kind", "kubectl", "helm"], FAKE_DOCKER_INFO_RC="1"
    )
    assert done.returncode == 0, done.stderr
    assert "SKIPPED" in done.stdout
    assert "Docker engine (docker info failed" in done.stdout
    assert "missing: kind" not in done.stdout
    assert calls == ["docker info"]  # no kind, no build, no kubectl


def test_skips_without_kind(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, ["docker", "kubectl", "helm"])
    assert done.returncode == 0, done.stderr
    assert "SKIPPED" in done.stdout
    assert "missing: kind" in done.stdout and "engine" not in done.stdout
    assert calls == ["docker info"]


def test_missing_tools_fail_when_required(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, [], E2E_REQUIRE="1")
    assert done.returncode == 1
    assert "SKIPPED" in done.stdout and "E2E_REQUIRE=1" in done.stderr
    assert calls == []


# ---- A whole run against stand-ins for docker, kind, kubectl and helm ----

# kubectl answers what the script asks, as a cluster where everything works would.
FAKE_KUBECTL = """#!{bash}
echo "kubectl $*" >>"$FAKE_LOG"
args=" $* "
case $args in
    *" exec -i "* | *" apply -f - "*) cat >/dev/null ;;
    *" get job/minio-buckets -o jsonpath={{.spec"*) printf 'minio/mc:RELEASE.X' ;;
    *" get job/minio-buckets -o jsonpath={{range"*) printf 'Complete ' ;;
    *" -o json "*) cat "$FAKE_RESOURCES" ;;
    *" exec deploy/kafka "*bias-events*) echo '{{"event_type":"bias.reported"}}' ;;
    *" exec deploy/kafka "*automl-events*) echo '{{"event_type":"model.uploaded"}}' ;;
    *" exec deploy/kafka "*xai-events*) echo '{{"event_type":"xai.reported"}}' ;;
    *" exec deploy/mongodb "*)
        echo '{{"datasets":2,"bias_reports":1,"ai_models":1,"xai_reports":3}}' ;;
    *" ls --recursive "*) echo "[2025-01-01 00:00:00 UTC] 1.0KiB STANDARD result.json" ;;
    *" cat "*) echo "<!doctype html><html><body>report</body></html>" ;;
esac
exit 0
"""


def simulate(
    tmp_path: Path, items: list[dict[str, Any]], clusters: str = "", **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "helm"):
        (bin_dir / name).write_text(FAKE.format(bash=BASH))
    (bin_dir / "kind").write_text(
        f"#!{BASH}\n"
        'echo "kind $*" >>"$FAKE_LOG"\n'
        f'if [[ $1 == get ]]; then printf "{clusters}"; fi\n'
    )
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL.format(bash=BASH))
    for fake in bin_dir.iterdir():
        fake.chmod(0o755)
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"kind": "List", "items": items}))
    log = tmp_path / "calls.log"
    log.touch()
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [BASH, str(SCRIPT)],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "TMPDIR": str(work),
            "FAKE_LOG": str(log),
            "FAKE_RESOURCES": str(resources),
            "E2E_PYTHON": sys.executable,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    return done, log.read_text().splitlines()


def index(calls: list[str], prefix: str) -> int:
    found = [i for i, call in enumerate(calls) if call.startswith(prefix)]
    assert found, f"no call starting with {prefix!r} in:\n" + "\n".join(calls)
    return found[0]


def test_a_run_with_helm_goes_through_every_step(tmp_path: Path) -> None:
    done, calls = simulate(tmp_path, all_succeeded())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "e2e-kind: PASSED" in done.stdout
    steps = [
        "docker build -t ghcr.io/fairpilot/operator:0.1.0 -f images/operator/Dockerfile .",
        "docker build -t ghcr.io/fairpilot/jobs:0.1.0 -f images/jobs/Dockerfile .",
        "kind create cluster --name fairpilot-e2e --kubeconfig ",
        "kind load docker-image --name fairpilot-e2e ghcr.io/fairpilot/operator:0.1.0",
        "kind load docker-image --name fairpilot-e2e ghcr.io/fairpilot/jobs:0.1.0",
        "kubectl create namespace fairpilot",
        "kubectl apply -k manifests/dev/services",
        "kubectl -n fairpilot rollout status deployment/kafka",
        "helm install fairpilot charts/fairpilot -n fairpilot --create-namespace "
        "-f manifests/dev/values-kind.yaml --wait",
        "kubectl -n fairpilot rollout status deployment/fairpilot",
        "kubectl -n fairpilot exec -i e2e-mc -c mc -- mc --config-dir /tmp/mc pipe "
        "local/datasets/adult.csv",
        f"kubectl -n fairpilot apply -f {tmp_path}/work/",  # the rewritten pipeline.yaml
        "kubectl -n fairpilot exec deploy/kafka",
        "kubectl -n fairpilot exec e2e-mc -c mc -- mc --config-dir /tmp/mc cat "
        "local/fairpilot-artifacts/demo/bias/adult-bias/g1/report.html",
        "kubectl -n fairpilot exec deploy/mongodb",
        "kind delete cluster --name fairpilot-e2e",
    ]
    positions = [index(calls, step) for step in steps]
    assert positions == sorted(positions)
    assert not [c for c in calls if "jobs-cuda" in c]  # E2E_SKIP_CUDA=1 by default
    assert "2 HTML reports" in done.stdout
    assert list((tmp_path / "work").iterdir()) == []  # the work directory is removed


def test_a_run_with_kustomize_keeps_the_cluster_when_asked(tmp_path: Path) -> None:
    done, calls = simulate(
        tmp_path, all_succeeded(), E2E_INSTALL="kustomize", E2E_KEEP="1", E2E_SKIP_BUILD="1"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    index(calls, "kubectl apply -k manifests/overlays/dev")
    assert not [c for c in calls if c.startswith(("helm", "docker build", "kind delete"))]
    assert "kept cluster fairpilot-e2e" in done.stdout


def test_a_failed_resource_fails_fast_with_diagnostics(tmp_path: Path) -> None:
    items = all_succeeded()
    items[3]["status"].update(phase="Failed", message="the job failed: OOMKilled")
    done, calls = simulate(tmp_path, items)
    assert done.returncode == 1
    assert "a FairPilot resource failed" in done.stderr
    assert "OOMKilled" in done.stdout and "diagnostics" in done.stdout
    index(calls, "kubectl -n fairpilot logs deployment/fairpilot --all-containers")
    assert not [c for c in calls if "exec deploy/kafka" in c]  # stopped before the checks
    assert calls[-1].startswith("kind delete cluster --name fairpilot-e2e")


def test_an_existing_cluster_is_left_alone(tmp_path: Path) -> None:
    done, calls = simulate(tmp_path, all_succeeded(), clusters="other\\nfairpilot-e2e\\n")
    assert done.returncode == 1
    assert "a kind cluster named fairpilot-e2e exists" in done.stderr
    assert calls == ["docker info", "kind get clusters"]


def test_everything_the_script_uses_is_there() -> None:
    text = SCRIPT.read_text()
    for path in (
        "manifests/dev/services",
        "manifests/dev/values-kind.yaml",
        "manifests/overlays/dev",
        "manifests/examples/adult/pipeline.yaml",
        "charts/fairpilot",
        "scripts/k8s_tools.py",
    ):
        assert path in text, path
        assert (ROOT / path).exists(), path
    # The operator Deployment and the dev services the script waits for and execs into.
    assert "OPERATOR=deployment/fairpilot" in text
    for name in ("minio", "kafka", "mongodb", "minio-buckets"):
        assert name in text


# ---- The Python the script runs with heredocs ----


def embedded_python() -> list[str]:
    return re.findall(r"<<'PY'\n(.*?)\nPY\n", SCRIPT.read_text(), flags=re.S)


def block(marker: str) -> str:
    (found,) = [code for code in embedded_python() if marker in code]
    return found


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-", *args], input=code, capture_output=True, text=True, timeout=30
    )


def test_embedded_python_compiles() -> None:
    blocks = embedded_python()
    assert len(blocks) == 4
    for code in blocks:
        compile(code, "e2e-kind.sh", "exec")


def test_pipeline_data_is_moved_to_s3(tmp_path: Path) -> None:
    target = tmp_path / "pipeline.yaml"
    done = run_python(
        block("s3://datasets/"),
        str(ROOT / "manifests/examples/adult/pipeline.yaml"),
        str(target),
    )
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(target.read_text()))
    assert {d["metadata"]["name"]: d["spec"]["uri"] for d in docs} == {
        "adult": "s3://datasets/adult.csv",
        "adult-test": "s3://datasets/adult_test.csv",
    }
    assert docs[0]["spec"]["pipeline"]["training"]["testDatasetRef"] == "adult-test"


def resource(kind: str, name: str, phase: str | None, **status: Any) -> dict[str, Any]:
    spec = {"pipeline": {"bias": {}}} if kind == "Dataset" and name == "adult" else {}
    return {
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
        "status": {"phase": phase, **status} if phase else {},
    }


def all_succeeded() -> list[dict[str, Any]]:
    return [
        resource("Dataset", "adult", "Succeeded", pipeline="Succeeded"),
        resource("Dataset", "adult-test", "Succeeded"),
        resource(
            "BiasAnalysis",
            "adult-bias",
            "Succeeded",
            outputUri="s3://fairpilot-artifacts/demo/bias/adult-bias/g1/",
            reports={"bias": "s3://fairpilot-artifacts/demo/bias/adult-bias/g1/report.html"},
        ),
        resource(
            "TrainingRun",
            "adult-train",
            "Succeeded",
            outputUri="s3://fairpilot-artifacts/demo/train/g1/",
            modelUri="s3://fairpilot-artifacts/demo/train/g1/model/",
        ),
        resource(
            "Explanation",
            "adult-explain",
            "Succeeded",
            reports={"beginner": "s3://fairpilot-artifacts/demo/x/report-beginner.html"},
        ),
    ]


def evaluate(tmp_path: Path, items: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    listing = tmp_path / "resources.json"
    listing.write_text(json.dumps({"items": items}))
    return run_python(block("not created yet"), str(listing))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (None, 0),
        (("TrainingRun", {"phase": "Running"}), 2),
        (("TrainingRun", {"phase": "Failed", "message": "OOMKilled"}), 1),
        (("Dataset", {"pipeline": "Stopped"}), 1),
        (("Dataset", {"pipeline": "Running"}), 2),
        (("Explanation", None), 2),  # not created yet
    ],
)
def test_phases_are_judged(
    tmp_path: Path, change: tuple[str, dict[str, Any] | None] | None, expected: int
) -> None:
    items = all_succeeded()
    if change:
        kind, status = change
        target = next(i for i in items if i["kind"] == kind)
        if status is None:
            items.remove(target)
        else:
            target["status"].update(status)
    done = evaluate(tmp_path, items)
    assert done.returncode == expected, done.stdout + done.stderr
    assert "adult-train" in done.stdout


def test_uris_to_check_come_from_the_statuses(tmp_path: Path) -> None:
    listing = tmp_path / "resources.json"
    listing.write_text(json.dumps({"items": all_succeeded()}))
    done = run_python(block('"modelUri"'), str(listing))
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert [
        "TrainingRun/adult-train",
        "prefix",
        "modelUri",
        "s3://fairpilot-artifacts/demo/train/g1/model/",
    ] in rows
    assert [
        "BiasAnalysis/adult-bias",
        "report",
        "bias",
        "s3://fairpilot-artifacts/demo/bias/adult-bias/g1/report.html",
    ] in rows
    assert len(rows) == 5


def test_event_counter_counts_only_the_event_type(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event_type":"xai.reported","level":"beginner"}\n'
        "Processed a total of 3 messages\n"
        '{"event_type":"xai.reported","level":"expert"}\n'
        '{"event_type":"status.changed"}\n'
        "[1, 2]\n"
    )
    done = run_python(block("count +="), str(events), "xai.reported")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
