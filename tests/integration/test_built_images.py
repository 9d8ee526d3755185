"""The built images, run in a Docker engine as their pods would run them.

- A stage pod's lockdown, seen from inside the container: the flags come from the Job the
  operator's builder writes (sandbox/containers.py), so this follows the builder.
- The jobs image runs profile, bias, train (a short budget) and explain on Adult through the
  sandbox with `runtime="docker"`: the real operator writes each Job, and each Job's pod is a
  container of the jobs image under that Job's security context, volumes, env and memory limit.
- The operator image, run as the Helm chart's Deployment says (its security context, config
  ConfigMap, /tmp emptyDir, args and probes), reconciles a Dataset through the sandbox's API
  emulator, its probes and metrics answering.
- The CUDA jobs image holds a CUDA build of torch and runs the stage program (no GPU here).

Nothing is built here: `make images` builds the images (minutes, gigabytes). Without a Docker
engine, or without the images, each test is skipped and says which.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas
import pytest
import yaml
from support.chart import by_kind, render
from support.jobs import TRAIN_BUDGET_SECONDS

from fairpilot.api.kinds import DATASET
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.datasets import export_adult
from fairpilot.jobs import build_job
from fairpilot.sandbox import containers
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.emulator import running_emulator
from fairpilot.sandbox.process import write_kubeconfig
from fairpilot.sandbox.runner import LocalJobRunner
from fairpilot.sandbox.testing import eventually

pytestmark = pytest.mark.images

REPO = Path(__file__).resolve().parents[2]
STAGES = REPO / "manifests" / "examples" / "adult" / "stages"
JOBS_IMAGE = OperatorConfig.model_fields["jobs_image"].default
JOBS_CUDA_IMAGE = OperatorConfig.model_fields["jobs_cuda_image"].default


@pytest.fixture(scope="module")
def engine() -> None:
    problem = containers.engine_problem()
    if problem:
        pytest.skip(f"no container can run here: {problem}")


def need(image: str, target: str) -> None:
    if not containers.image_present(image):
        pytest.skip(f"{image} is not built here (make {target})")


@pytest.fixture
def jobs_image(engine: None) -> str:
    need(JOBS_IMAGE, "image-jobs")
    return JOBS_IMAGE


@pytest.fixture
def root() -> Iterator[Path]:
    """A file root the pods' user (not this one) can open, with Adult in data/: not under
    pytest's tmp_path, whose base folder is this user's only (and pytest keeps it so)."""
    path = Path(tempfile.mkdtemp(prefix="fairpilot-images-"))
    path.chmod(0o755)
    export_adult(path / "data")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- a stage pod, seen from inside ---------------------------------------------------------------

# Run in place of the stage's command: what the container's process is allowed.
PROBE = r"""
import json, os, errno
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\t" in line)
def writable(path):
    try:
        with open(os.path.join(path, "probe"), "w"):
            pass
        return True
    except OSError as error:
        return errno.errorcode[error.errno]
# cgroup v2, else v1 (this engine's kernel decides which the container sees).
for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    if os.path.exists(path):
        limit = open(path).read().strip()
        break
print(json.dumps({
    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "cap_eff": int(status["CapEff"], 16), "cap_bnd": int(status["CapBnd"], 16),
    "no_new_privs": int(status["NoNewPrivs"]), "seccomp": int(status["Seccomp"]),
    "root": writable("/"), "opt": writable("/opt/venv"), "tmp": writable("/tmp"),
    "spec": writable("/etc/fairpilot"), "memory_max": limit,
    "spec_files": sorted(os.listdir("/etc/fairpilot")),
}))
"""


def test_a_stage_pod_runs_as_locked_down_as_its_job_says(jobs_image: str, tmp_path: Path) -> None:
    config = OperatorConfig(artifact_root="file:///nowhere", jobs_image=jobs_image)
    dataset = {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "locked", "namespace": "ml", "uid": "uid-locked", "generation": 1},
        "spec": {"uri": "file:///nowhere/data.csv"},
    }
    job = build_job(DATASET, dataset, config, "g1")
    pod_spec = job["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    context = containers.security_context(pod_spec, container)
    container["command"], container["args"] = ["python", "-c", PROBE], []
    name = f"fp-test-locked-{os.getpid()}"
    argv = containers.docker_run_argv(
        pod_spec,
        name=name,
        folders=containers.prepare_folders(pod_spec, tmp_path, {"spec": {"spec.yaml": "{}"}}),
        env_path=containers.write_env_file(
            tmp_path, {e["name"]: e["value"] for e in container["env"]}
        ),
    )
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    finally:
        containers.remove(name)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)

    assert seen["uid"] == seen["euid"] == context["runAsUser"] != 0
    assert seen["gid"] == context["runAsGroup"]
    assert pod_spec["securityContext"]["fsGroup"] in seen["groups"]
    assert context["capabilities"]["drop"] == ["ALL"]
    assert seen["cap_eff"] == seen["cap_bnd"] == 0
    assert context["allowPrivilegeEscalation"] is False and seen["no_new_privs"] == 1
    assert context["seccompProfile"]["type"] == "RuntimeDefault" and seen["seccomp"] == 2
    # readOnlyRootFilesystem: the image's own files too; the emptyDir is the one place to write.
    assert context["readOnlyRootFilesystem"] is True
    assert seen["root"] == seen["opt"] == "EROFS"
    assert seen["tmp"] is True
    assert seen["spec"] == "EROFS" and seen["spec_files"] == ["spec.yaml"]
    from kubernetes.utils.quantity import parse_quantity

    limit = container["resources"]["limits"]["memory"]
    assert seen["memory_max"] == str(int(parse_quantity(limit)))


# --- the jobs image: the four stages on Adult through the sandbox ------------------------------


def adult_stages(root: Path) -> list[dict[str, Any]]:
    """The example stages (manifests/examples/adult/stages) on data under `root`, with a
    short training budget and explanation sample, as a test can afford."""
    items = []
    for path in sorted(STAGES.glob("0[1-4]-*.yaml")):
        text = path.read_text().replace("file:///tmp/fairpilot/", f"file://{root}/")
        for document in yaml.safe_load_all(text):
            spec = document["spec"]
            if document["kind"] == "TrainingRun":
                spec["timeLimitSeconds"] = TRAIN_BUDGET_SECONDS
                spec["validationThreshold"]["min"] = 0.85  # what a short budget reaches
            if document["kind"] == "Explanation":
                spec["sampleSize"] = 300
            items.append(document)
    return items


@pytest.mark.slow
def test_the_jobs_image_runs_the_adult_stages_as_their_jobs_say(
    jobs_image: str, root: Path
) -> None:
    items = adult_stages(root)
    with Sandbox(root / "artifacts", file_root=root, runtime="docker", kafka=False) as sandbox:
        assert sandbox.config.jobs_image == jobs_image
        sandbox.apply(items)
        done = sandbox.wait(900)
        final = {r["metadata"]["name"]: r for r in sandbox.resources()}
        pods = sandbox.cluster.core.list_namespaced_pod(sandbox.namespace).items
    phases = {name: (r.get("status") or {}).get("phase") for name, r in final.items()}
    assert done and set(phases.values()) == {"Succeeded"}, {
        name: (r.get("status") or {}).get("message") for name, r in final.items()
    }
    assert len(final) == len(items) == 5
    # Each pod ran the Job's image, and as the Job's user: every file a stage wrote is its.
    assert {p.status.container_statuses[0].image for p in pods} == {jobs_image}
    written = [Path(r["status"]["outputUri"].removeprefix("file://")) for r in final.values()]
    written.append(Path(final["adult-income"]["status"]["modelUri"].removeprefix("file://")))
    for folder in written:
        owners = {path.stat().st_uid for path in folder.rglob("*")}
        assert owners == {OperatorConfig().run_as_user}, (folder, owners)
    # What the stages found is what the data says, computed here without the image.
    data = pandas.read_csv(root / "data" / "adult.csv")
    status = {name: r["status"] for name, r in final.items()}
    assert status["adult-train"]["rows"] == len(data)
    rate = (data["income"] == ">50K").groupby(data["sex"]).mean()
    women = rate["Female"] / rate["Male"]  # disparate impact, men the privileged group
    assert (
        f"sex=Female: LDI {women:.3f} is below 0.8 (four-fifths rule)"
        in (status["adult-bias"]["findings"])
    )
    assert status["adult-bias"]["minDisparateImpact"] <= women
    run = status["adult-income"]
    assert run["validationPassed"] is True and run["modelDigest"].startswith("sha256:")
    explained = status["adult-income-explained"]
    assert explained["topFeature"] in data.columns
    assert explained["additivityError"] < 1e-3  # SHAP values add up to the model's output


# --- the operator image, as the chart's Deployment runs it -----------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return None


@pytest.mark.slow
def test_the_operator_image_reconciles_a_dataset_with_its_probes_answering(
    engine: None, helm: Path, root: Path, tmp_path: Path
) -> None:
    need(JOBS_IMAGE, "image-jobs")
    (root / "artifacts").mkdir()
    (root / "artifacts").chmod(0o1777)  # the stage pods write there, as another user
    # The chart with its defaults but for where the data and artifacts are, its one namespace,
    # and ports free on this machine (the container shares the host's network, where the
    # emulator listens).
    metrics, health = free_port(), free_port()
    objects = render(
        helm,
        {
            "artifactRoot": f"file://{root}/artifacts",
            "jobs": {"fileRoot": str(root)},
            "metrics": {"port": metrics},
            "health": {"port": health},
            "watch": {"namespaces": ["default"]},
        },
    )
    (deployment,) = by_kind(objects, "Deployment")
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    need(container["image"], "image-operator")
    config_maps = {c["metadata"]["name"]: c["data"] for c in by_kind(objects, "ConfigMap")}
    contents = {
        v["name"]: config_maps[v["configMap"]["name"]]
        for v in pod_spec["volumes"]
        if "configMap" in v
    }
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["readinessProbe"]["httpGet"]
    healthz = f"http://127.0.0.1:{ports[probe['port']]}{probe['path']}"
    metrics_url = f"http://127.0.0.1:{ports['metrics']}/metrics"
    assert get(healthz) is None, "the health port must be free before the operator starts"

    with running_emulator() as url:
        # The kubeconfig stands in for the ServiceAccount a cluster would mount.
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        kubeconfig.chmod(0o644)
        env = {e["name"]: e["value"] for e in container["env"]}
        env["KUBECONFIG"] = "/var/run/fairpilot/kubeconfig"
        name = f"fp-test-operator-{os.getpid()}"
        argv = containers.docker_run_argv(
            pod_spec,
            name=name,
            folders=containers.prepare_folders(pod_spec, tmp_path / "pod", contents),
            env_path=containers.write_env_file(tmp_path, env),
            binds=[
                containers.Bind(kubeconfig, env["KUBECONFIG"]),
                containers.Bind(root, str(root)),  # read: the stages' result.json
            ],
            network="host",
        )
        cluster = Cluster.for_host(url)
        runner = LocalJobRunner(
            Cluster.for_host(url).client, runtime="docker", binds=[root]
        ).start()
        log = (tmp_path / "operator.log").open("w")
        operator = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert eventually(lambda: get(healthz), timeout=120) == (200, "{}"), (
                tmp_path / "operator.log"
            ).read_text()
            cluster.create_resource(
                {
                    "apiVersion": "fairpilot.io/v1alpha1",
                    "kind": "Dataset",
                    "metadata": {"name": "adult", "namespace": "default"},
                    "spec": {"uri": f"file://{root}/data/adult.csv", "target": "income"},
                }
            )

            def phase() -> str | None:
                status = (cluster.get("Dataset", "default", "adult") or {}).get("status") or {}
                return (
                    status.get("phase") if status.get("phase") in ("Succeeded", "Failed") else None
                )

            assert eventually(phase, timeout=300) == "Succeeded", (
                cluster.get("Dataset", "default", "adult"),
                (tmp_path / "operator.log").read_text()[-3000:],
            )
            answer = get(metrics_url)
            assert answer is not None and answer[0] == 200
            assert "fairpilot_" in answer[1]
            assert get(healthz) == (200, "{}")
            # SIGTERM, as Kubernetes stops a pod: the operator ends cleanly.
            subprocess.run(["docker", "stop", name], capture_output=True, timeout=120)
            assert operator.wait(timeout=120) == 0, (tmp_path / "operator.log").read_text()[-3000:]
        finally:
            runner.stop()
            containers.remove(name)
            operator.wait(timeout=60)
            log.close()


# --- the CUDA jobs image, without a GPU ---------------------------------------------------------


def test_the_cuda_jobs_image_holds_a_cuda_torch_and_the_stage_program(engine: None) -> None:
    need(JOBS_CUDA_IMAGE, "image-jobs-cuda")
    script = "import torch, fairpilot_jobs; print(torch.version.cuda, torch.cuda.is_available())"
    locked = ["--network", "none", "--read-only", "--cap-drop", "ALL", "--user", "10001"]
    done = subprocess.run(
        ["docker", "run", "--rm", *locked, "--entrypoint", "python", JOBS_CUDA_IMAGE, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    cuda, available = done.stdout.split()
    assert cuda != "None"  # a CUDA build, whichever CUDA release the base gave it
    assert available == "False"  # no GPU here; the image must still start
    stage = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", JOBS_CUDA_IMAGE, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stage.returncode == 0 and "usage:" in stage.stdout, stage.stderr
