"""A pod's container as `docker run`: the Job's own lockdown, enforced by a container engine.

On a cluster the kubelet and the container runtime turn a pod's spec into a container; this
does the same for one machine with a Docker engine, from the pod spec the operator wrote
(`jobs.build_job`) or the chart renders, so that an image runs under what its pod asks for and
not under a hand-copied list of flags that could drift from it:

- the security context (the container's fields over the pod's, as Kubernetes merges them):
  numeric user and group, `runAsNonRoot`, read-only root filesystem, capabilities dropped and
  added, no privilege escalation, the seccomp profile, fsGroup and supplemental groups;
- the volume mounts, each onto a folder the caller made for its volume (a ConfigMap or Secret
  written out, an emptyDir), ConfigMaps and Secrets read-only as the kubelet mounts them;
- the memory limit (swap included, as a kubelet runs pods without swap), a CPU limit, GPUs;
- command and args (over the image's ENTRYPOINT and CMD), working directory, the pull policy,
  the termination message file, the grace period.

A field this cannot honour is refused (`UnsupportedPod`), never dropped: a container that ran
with less isolation than its pod asked for would prove nothing about the pod.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.utils.quantity import parse_quantity

DEFAULT_TERMINATION_PATH = "/dev/termination-log"

# Pod and container fields this maps, or that mean nothing on one machine (scheduling, the
# service account token the pod does not mount, ports of a host or no network).
_POD_FIELDS = {
    "containers", "volumes", "securityContext", "restartPolicy", "automountServiceAccountToken",
    "enableServiceLinks", "terminationGracePeriodSeconds", "serviceAccountName", "nodeSelector",
    "tolerations", "affinity", "runtimeClassName", "priorityClassName",
}  # fmt: skip
_CONTAINER_FIELDS = {
    "name", "image", "imagePullPolicy", "command", "args", "env", "envFrom", "resources",
    "securityContext", "terminationMessagePolicy", "terminationMessagePath", "volumeMounts",
    "workingDir", "ports", "livenessProbe", "readinessProbe", "startupProbe",
}  # fmt: skip
# Pod-level security fields that a container's own securityContext overrides.
_INHERITED = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")
_SECURITY_FIELDS = {
    *_INHERITED, "readOnlyRootFilesystem", "allowPrivilegeEscalation", "privileged",
    "capabilities", "fsGroup", "supplementalGroups",
}  # fmt: skip
_PULL = {"Always": "always", "IfNotPresent": "missing", "Never": "never"}


class UnsupportedPod(ValueError):
    """A pod field that `docker run` here cannot honour; says which."""


@dataclass(frozen=True)
class Bind:
    """A host folder or file mounted into the container at the same or another path (what a
    cluster would reach another way: a file:// data root, an S3 stand-in, a kubeconfig)."""

    source: Path
    target: str
    read_only: bool = True


def security_context(pod_spec: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    """The container's effective security context: its own fields over the pod's."""
    pod = dict(pod_spec.get("securityContext") or {})
    own = dict(container.get("securityContext") or {})
    merged = {k: pod[k] for k in ("fsGroup", "supplementalGroups") if k in pod}
    for key in _INHERITED:
        if key in own:
            merged[key] = own[key]
        elif key in pod:
            merged[key] = pod[key]
    for key, value in own.items():
        merged.setdefault(key, value)
    unknown = (set(pod) | set(own)) - _SECURITY_FIELDS
    if unknown:
        raise UnsupportedPod(f"securityContext: {', '.join(sorted(unknown))} not supported")
    return merged


def _security_flags(context: Mapping[str, Any]) -> list[str]:
    flags: list[str] = []
    user, group = context.get("runAsUser"), context.get("runAsGroup")
    if context.get("runAsNonRoot") and not user:
        # The kubelet would check the image's USER; here the user must be in the spec.
        raise UnsupportedPod("runAsNonRoot needs a numeric, non-zero runAsUser")
    if user is not None:
        flags += ["--user", f"{int(user)}:{int(group)}" if group is not None else str(int(user))]
    for extra in [context.get("fsGroup"), *(context.get("supplementalGroups") or [])]:
        if extra is not None:
            flags += ["--group-add", str(int(extra))]
    if context.get("privileged"):
        raise UnsupportedPod("privileged containers are not run")
    if context.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    capabilities = context.get("capabilities") or {}
    for name in capabilities.get("drop") or []:
        flags += ["--cap-drop", str(name)]
    for name in capabilities.get("add") or []:
        flags += ["--cap-add", str(name)]
    profile = (context.get("seccompProfile") or {}).get("type")
    if profile == "Unconfined":
        flags += ["--security-opt", "seccomp=unconfined"]
    elif profile not in (None, "RuntimeDefault"):  # Docker's default profile is RuntimeDefault
        raise UnsupportedPod(f"seccompProfile {profile} not supported")
    return flags


def _resource_flags(container: Mapping[str, Any], gpu_resource: str) -> list[str]:
    limits = (container.get("resources") or {}).get("limits") or {}
    flags: list[str] = []
    if "memory" in limits:
        memory = str(int(parse_quantity(limits["memory"])))
        flags += ["--memory", memory, "--memory-swap", memory]
    if "cpu" in limits:
        flags += ["--cpus", str(float(parse_quantity(limits["cpu"])))]
    if gpu_resource in limits:
        flags += ["--gpus", str(int(limits[gpu_resource]))]
    unknown = set(limits) - {"memory", "cpu", gpu_resource, "ephemeral-storage"}
    if unknown:
        raise UnsupportedPod(f"resources.limits: {', '.join(sorted(unknown))} not supported")
    return flags


def _mount(source: Path, target: str, read_only: bool) -> list[str]:
    for path in (str(source), target):
        if "," in path or "=" in path:  # --mount's own separators
            raise UnsupportedPod(f"mount path {path!r}: ',' and '=' are not supported")
    return ["--mount", f"type=bind,source={source},target={target}" + (",readonly" * read_only)]


def _volume_flags(
    pod_spec: Mapping[str, Any], container: Mapping[str, Any], folders: Mapping[str, Path]
) -> list[str]:
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    flags: list[str] = []
    for mount in container.get("volumeMounts") or []:
        name = mount["name"]
        volume = volumes.get(name)
        if volume is None:
            raise UnsupportedPod(f"volumeMounts: no volume named {name!r}")
        if mount.get("subPath") or mount.get("subPathExpr"):
            raise UnsupportedPod(f"volumeMounts {name!r}: subPath not supported")
        if not ({"configMap", "secret", "emptyDir"} & set(volume)):
            raise UnsupportedPod(f"volume {name!r}: only configMap, secret and emptyDir")
        if name not in folders:
            raise UnsupportedPod(f"volume {name!r}: no folder made for it")
        # The kubelet mounts ConfigMaps and Secrets read-only whatever the mount says.
        read_only = bool(mount.get("readOnly")) or "emptyDir" not in volume
        flags += _mount(folders[name], mount["mountPath"], read_only)
    return flags


def env_file(env: Mapping[str, str]) -> str:
    """`docker run --env-file` text: the values stay off the command line (which any user of
    the machine can read in `ps`), Secrets' among them."""
    lines = []
    for name, value in env.items():
        if "\n" in value or "\r" in value or "=" in name or not name:
            raise UnsupportedPod(f"env {name!r}: a name with '=' or a value over lines")
        lines.append(f"{name}={value}")
    return "".join(line + "\n" for line in lines)


def docker_run_argv(
    pod_spec: Mapping[str, Any],
    *,
    name: str,
    folders: Mapping[str, Path],
    env_path: Path | None = None,
    termination_log: Path | None = None,
    binds: Sequence[Bind] = (),
    network: str = "none",
    docker: str = "docker",
    gpu_resource: str = "nvidia.com/gpu",
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """`docker run` of the pod's one container, locked down as the pod spec says.

    name: the container's name (and host name: the pod's name, as in a pod).
    folders: a host folder for each volume the container mounts, made by the caller (a
        ConfigMap's keys written into it, an emptyDir empty and writable by the pod's user).
    env_path: an `--env-file` (see `env_file`) with the container's environment, resolved by
        the caller (values, Secrets); None: only the image's.
    termination_log: the host file mounted at the container's terminationMessagePath, where
        the program leaves its termination message, as the kubelet mounts one.
    binds: what the pod would reach by other means on a cluster (data, an artifact store).
    network: `none` (the default: nothing to reach), `host`, or a Docker network.
    """
    extra = set(pod_spec) - _POD_FIELDS
    if extra:
        raise UnsupportedPod(f"pod spec: {', '.join(sorted(extra))} not supported")
    containers = pod_spec.get("containers") or []
    if len(containers) != 1:
        raise UnsupportedPod(f"{len(containers)} containers: exactly one is supported")
    container = containers[0]
    extra = set(container) - _CONTAINER_FIELDS
    if extra:
        raise UnsupportedPod(f"container: {', '.join(sorted(extra))} not supported")
    argv = [docker, "run", "--name", name, "--hostname", name[:63], "--network", network]
    for key, value in (labels or {}).items():
        argv += ["--label", f"{key}={value}"]
    argv += ["--pull", _PULL[container.get("imagePullPolicy") or "IfNotPresent"]]
    argv += _security_flags(security_context(pod_spec, container))
    argv += _resource_flags(container, gpu_resource)
    argv += _volume_flags(pod_spec, container, folders)
    if termination_log is not None:
        path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        argv += _mount(termination_log, path, read_only=False)
    for bind in binds:
        argv += _mount(bind.source, bind.target, bind.read_only)
    if env_path is not None:
        argv += ["--env-file", str(env_path)]
    if "terminationGracePeriodSeconds" in pod_spec:
        argv += ["--stop-timeout", str(int(pod_spec["terminationGracePeriodSeconds"]))]
    if container.get("workingDir"):
        argv += ["--workdir", container["workingDir"]]
    command, args = list(container.get("command") or []), list(container.get("args") or [])
    if command:
        argv += ["--entrypoint", command[0]]
    return [*argv, container["image"], *command[1:], *args]


# --- running one ------------------------------------------------------------------------------

# What the `docker` client itself needs from this process's environment (not the container's).
_CLIENT_ENV = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH",
               "DOCKER_TLS_VERIFY")  # fmt: skip


def client_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in _CLIENT_ENV}


def engine_problem(docker: str = "docker") -> str | None:
    """Why no container can run here (no client, no engine answering), or None."""
    if shutil.which(docker) is None:
        return f"no `{docker}` command on PATH"
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            env=client_env(),
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if done.returncode != 0 or not done.stdout.strip():
        return f"no Docker engine answers: {(done.stderr or done.stdout).strip()[:300]}"
    return None


class ContainersUnavailable(Exception):
    """Pods cannot run as containers here: why, and what to do about it."""


def require_containers(image: str, docker: str = "docker") -> None:
    """Refuse, before anything starts, a container runtime that cannot run `image`: a user
    reads "no engine" or "image not built" rather than a Job failing with docker's exit 125."""
    problem = engine_problem(docker)
    if problem is not None:
        raise ContainersUnavailable(
            f"--runtime docker: {problem} (as root, `bash scripts/start-docker.sh` installs and "
            "starts one)"
        )
    if not image_present(image, docker):
        raise ContainersUnavailable(
            f"--runtime docker: the image {image} is not built here: run `make images`"
        )


def image_present(image: str, docker: str = "docker") -> bool:
    done = subprocess.run(
        [docker, "image", "inspect", image], capture_output=True, timeout=30, env=client_env()
    )
    return done.returncode == 0


def prepare_folders(
    pod_spec: Mapping[str, Any], workdir: Path, contents: Mapping[str, Mapping[str, str]]
) -> dict[str, Path]:
    """A folder per volume of the pod under `workdir`, as the kubelet makes them: a ConfigMap's
    or Secret's keys (`contents`, by volume name) as files the pod's user can read, an emptyDir
    that any user may write (0777, as the kubelet makes one, sticky here since it is a
    folder on a shared machine)."""
    folders: dict[str, Path] = {}
    for volume in pod_spec.get("volumes") or []:
        folder = workdir / "volumes" / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for key, value in (contents.get(volume["name"]) or {}).items():
            (folder / key).write_text(value)
            (folder / key).chmod(0o644)
        folder.chmod(0o1777 if "emptyDir" in volume else 0o755)
        folders[volume["name"]] = folder
    return folders


def termination_file(workdir: Path) -> Path:
    """The file mounted at the container's terminationMessagePath, writable by its user."""
    path = workdir / "termination-log"
    path.write_text("")
    path.chmod(0o666)
    return path


def write_env_file(workdir: Path, env: Mapping[str, str]) -> Path:
    path = workdir / "env"
    path.touch(mode=0o600)  # Secrets' values among them: this user's only
    path.write_text(env_file(env))
    return path


def finish(name: str, docker: str = "docker") -> tuple[int | None, bool]:
    """The container's exit code and whether the kernel killed it for memory (its cgroup's
    OOM kill, which `docker wait` alone does not tell); then removes it. (None, False) for a
    container that is gone or never started."""
    done = subprocess.run(
        [docker, "inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", name],
        capture_output=True,
        text=True,
        timeout=60,
        env=client_env(),
    )
    remove(name, docker)
    if done.returncode != 0:
        return None, False
    code, oom = done.stdout.split()
    return int(code), oom == "true"


def remove(name: str, docker: str = "docker") -> None:
    """Stops (SIGKILL) and removes the container; nothing if there is none by that name."""
    subprocess.run(
        [docker, "rm", "--force", name], capture_output=True, timeout=60, env=client_env()
    )
