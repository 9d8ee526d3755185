"""A stage Job's pod as `docker run` flags (sandbox/containers.py), from the Job the builder
writes: each lockdown field becomes its flag, and a field that cannot be honoured is refused."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fairpilot.api.kinds import DATASET, TRAINING_RUN
from fairpilot.config import OperatorConfig
from fairpilot.jobs import build_job
from fairpilot.sandbox import containers
from fairpilot.sandbox.containers import (
    Bind,
    UnsupportedPod,
    docker_run_argv,
    env_file,
    security_context,
)

CONFIG = OperatorConfig(artifact_root="file:///artifacts")


def resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "adult", "namespace": "ml", "uid": "uid-1", "generation": 1},
        "spec": spec,
    }


def pod(kind=DATASET, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    job = build_job(kind, resource(kind.kind, spec or {"uri": "file:///d.csv"}), CONFIG, "g1")
    return job["spec"]["template"]["spec"]


def argv_of(pod_spec: dict[str, Any], **options: Any) -> list[str]:
    folders = {v["name"]: Path(f"/w/{v['name']}") for v in pod_spec["volumes"]}
    return docker_run_argv(pod_spec, name="fp-pod", folders=folders, **options)


def pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == flag]


def test_the_stage_pod_becomes_its_lockdown_flags() -> None:
    pod_spec = pod()
    (container,) = pod_spec["containers"]
    context = security_context(pod_spec, container)
    argv = argv_of(pod_spec, termination_log=Path("/w/termination-log"))

    user = context["runAsUser"]
    assert user == CONFIG.run_as_user
    assert pairs(argv, "--user") == [f"{user}:{context['runAsGroup']}"]
    assert pairs(argv, "--group-add") == [str(pod_spec["securityContext"]["fsGroup"])]
    assert "--read-only" in argv
    assert pairs(argv, "--cap-drop") == ["ALL"]
    assert pairs(argv, "--security-opt") == ["no-new-privileges"]
    assert "--privileged" not in argv
    memory = str(4 * 1024**3)  # the config's default "4Gi"
    assert pairs(argv, "--memory") == [memory] and pairs(argv, "--memory-swap") == [memory]
    assert pairs(argv, "--mount") == [
        "type=bind,source=/w/spec,target=/etc/fairpilot,readonly",
        "type=bind,source=/w/tmp,target=/tmp",
        "type=bind,source=/w/termination-log,target=/dev/termination-log",
    ]
    assert pairs(argv, "--network") == ["none"]
    assert pairs(argv, "--pull") == ["missing"]  # IfNotPresent
    # The command replaces the image's ENTRYPOINT; the rest follows the image, as in a pod.
    image = argv.index(container["image"])
    assert pairs(argv, "--entrypoint") == [container["command"][0]]
    assert argv[image + 1 :] == [*container["command"][1:], *container["args"]]


def test_the_resources_of_a_training_run_set_the_limits() -> None:
    argv = argv_of(pod(TRAINING_RUN, {"resources": {"memory": "512Mi", "cpu": "2", "gpu": 1}}))
    assert pairs(argv, "--memory") == [str(512 * 1024**2)]
    assert pairs(argv, "--gpus") == ["1"]
    # cpu is a request in the Job, not a limit: no --cpus.
    assert pairs(argv, "--cpus") == []


def test_the_containers_own_fields_win_over_the_pods() -> None:
    pod_spec = pod()
    pod_spec["containers"][0]["securityContext"]["runAsUser"] = 4242
    assert pairs(argv_of(pod_spec), "--user") == [f"4242:{CONFIG.run_as_user}"]


def test_binds_env_file_and_network_are_the_callers() -> None:
    argv = argv_of(
        pod(),
        binds=[Bind(Path("/data"), "/data"), Bind(Path("/out"), "/out", read_only=False)],
        env_path=Path("/w/env"),
        network="host",
    )
    assert "type=bind,source=/data,target=/data,readonly" in pairs(argv, "--mount")
    assert "type=bind,source=/out,target=/out" in pairs(argv, "--mount")
    assert pairs(argv, "--env-file") == ["/w/env"]
    assert pairs(argv, "--network") == ["host"]


def test_env_file_keeps_values_whole() -> None:
    assert env_file({"A": "x=y", "B": '["s3://b/"]'}) == 'A=x=y\nB=["s3://b/"]\n'
    with pytest.raises(UnsupportedPod):
        env_file({"A": "two\nlines"})


def _no_user(p: dict[str, Any]) -> None:
    p["securityContext"].pop("runAsUser")
    p["containers"][0]["securityContext"].pop("runAsUser")


def _host_path(p: dict[str, Any]) -> None:
    p["volumes"].append({"name": "h", "hostPath": {"path": "/"}})
    p["containers"][0]["volumeMounts"].append({"name": "h", "mountPath": "/h"})


def _security(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda p: p["containers"][0]["securityContext"].update(fields)


# A change to the builder's pod, and the words of the refusal it must meet.
REFUSED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "privileged": (_security(privileged=True), "privileged"),
    "pod sysctls": (lambda p: p["securityContext"].update(sysctls=[]), "sysctls"),
    "no user": (_no_user, "runAsUser"),
    "seccomp Localhost": (_security(seccompProfile={"type": "Localhost"}), "seccompProfile"),
    "host network": (lambda p: p.update(hostNetwork=True), "hostNetwork"),
    "init containers": (lambda p: p.update(initContainers=[{}]), "initContainers"),
    "two containers": (lambda p: p["containers"].append(p["containers"][0]), "2 containers"),
    "subPath": (lambda p: p["containers"][0]["volumeMounts"][0].update(subPath="x"), "subPath"),
    "hostPath": (_host_path, "only configMap"),
    "lifecycle hooks": (lambda p: p["containers"][0].update(lifecycle={}), "lifecycle"),
    "extended resource": (
        lambda p: p["containers"][0]["resources"]["limits"].update({"example.com/x": 1}),
        "example.com/x",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_cannot_be_honoured_is_refused(case: str) -> None:
    change, words = REFUSED[case]
    pod_spec = copy.deepcopy(pod())
    change(pod_spec)
    with pytest.raises(UnsupportedPod, match=words):
        argv_of(pod_spec)


def test_a_volume_without_its_folder_is_refused() -> None:
    with pytest.raises(UnsupportedPod, match="no folder"):
        docker_run_argv(pod(), name="fp-pod", folders={"spec": Path("/w/spec")})


def test_a_runtime_that_cannot_run_containers_is_refused_up_front(tmp_path: Path) -> None:
    """`--runtime docker` without an engine (or without the image) says so before anything
    starts, instead of each Job failing with docker's exit code 125."""
    with pytest.raises(containers.ContainersUnavailable, match="no `no-such-docker` command"):
        containers.require_containers("ghcr.io/fairpilot/jobs:0.1.0", docker="no-such-docker")
    fake = tmp_path / "docker"  # a client whose engine does not answer, as docker says it
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(containers.ContainersUnavailable, match=r"start-docker\.sh") as refused:
        containers.require_containers("ghcr.io/fairpilot/jobs:0.1.0", docker=str(fake))
    assert "Cannot connect to the Docker daemon" in str(refused.value)
    if containers.engine_problem() is None:  # an engine here: an image nobody built
        with pytest.raises(containers.ContainersUnavailable, match="make images"):
            containers.require_containers("fairpilot-local/never-built:0")
