"""The sandbox's kubelet and Job controller in one: runs each Job's container as a subprocess,
or (runtime "docker") as a container of the Job's image.

For every Job it has not seen, it creates a Pod object, runs the container's command with the
container's env (the ConfigMap volume written to a temporary directory, `/tmp` an empty one),
retries up to `backoffLimit` with a growing delay, enforces `activeDeadlineSeconds` and the
container's memory limit (killed as `OOMKilled`, exit code 137, as the kubelet reports a cgroup
OOM kill), and writes back what the real controllers would: the Job's status and conditions,
and the Pod's termination state and message. Each pod's output is kept as the kubelet keeps
it, in a log file per container that the API emulator serves (`kubectl logs`).

With runtime "docker" the pod becomes `docker run` of its image under its own security context,
volumes, environment and memory limit (sandbox/containers.py), with the host's network and the
folders given as `binds` (the file:// root) mounted at their own paths; the engine enforces the
memory limit and reports its OOM kill.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import kubernetes
from kubernetes.utils.quantity import parse_quantity
from kubernetes.watch.watch import iter_resp_lines

from fairpilot import __version__
from fairpilot.api import labels as label
from fairpilot.api.kinds import KINDS
from fairpilot.cluster import release
from fairpilot.conditions import now
from fairpilot.sandbox import containers
from fairpilot.sandbox.children import run_container
from fairpilot.sandbox.kubectl_views import pod_log_path

if TYPE_CHECKING:
    import urllib3

log = logging.getLogger(__name__)
# The kubelet's and the Job controller's calls, told apart from the operator's in the API
# server's audit log (they come from other components on a cluster, with their own RBAC).
USER_AGENT = f"fairpilot-sandbox-runner/{__version__}"
RUNTIMES = ("process", "docker")
# Host variables the process runtime hands every container (the docker runtime: all but PATH
# and LANG/LC_ALL, which are the image's): a node's AWS credentials and region, the file root.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "AWS_REGION", "AWS_DEFAULT_REGION", "FAIRPILOT_FILE_ROOT")  # fmt: skip


class LocalJobRunner:
    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        *,
        parallelism: int = 2,
        poll: float = 0.2,
        idle: float = 2.0,
        noop: bool = False,
        env: dict[str, str] | None = None,
        retry_delay: float = 1.0,
        crash: Callable[[dict[str, Any]], bool] | None = None,
        hang: Callable[[dict[str, Any]], bool] | None = None,
        pod_logs: Path | None = None,
        log_limit: int = 10 * 1024 * 1024,
        runtime: str = "process",
        binds: Sequence[Path] = (),
        docker: str = "docker",
    ) -> None:
        # noop: finish every Job at once with a minimal result.json (for load benchmarks).
        # env: added to every container's environment (what a node would add, e.g. the
        # directory file:// URIs are confined to).
        # retry_delay: before the second attempt, doubled for each one after (the Job
        # controller waits 10 s, 20 s, 40 s...; a sandbox has no reason to wait that long).
        # crash: Jobs for which it answers True crash at start: the container exits 1 with a
        # line on stderr and writes nothing, as a broken image or a segfault would look to
        # the operator (fault injection for tests).
        # hang: Jobs for which it answers True never finish on their own, as a read from a
        # hung network mount would not (fault injection: deadlines).
        # pod_logs: where each pod's output goes, as a kubelet keeps it
        # (`{namespace}/{pod}/{container}.log`, which the API emulator serves as the pod's
        # log), each kept to about twice `log_limit` bytes; None: discarded once the pod ends.
        # runtime: "process" (the container's command, here) or "docker" (its image, with the
        # `docker` client named): binds are then the host folders mounted into every
        # container at their own paths (read-write), where its file:// URIs point.
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
        self.runtime, self.binds, self.docker = runtime, tuple(binds), docker
        self.pod_logs, self.log_limit = pod_logs, log_limit
        self.noop = noop
        self.hang = hang
        self.env = dict(env or {})
        self.retry_delay = retry_delay
        self.crash = crash
        client.user_agent = USER_AGENT  # the client is the runner's own (Sandbox makes one)
        self.batch = kubernetes.client.BatchV1Api(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self.poll, self.idle = poll, idle
        self.pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="job")
        self.seen: set[str] = set()
        self.stopping = threading.Event()
        self.reporting = threading.Event()  # cleared: finished pods wait to report (held())
        self.reporting.set()
        self.holding: set[str] = set()  # Jobs whose pod ended and waits to report (held())
        self.thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)

    def start(self) -> LocalJobRunner:
        self.thread.start()
        return self

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Jobs that finish inside this block report it only when it ends.

        To the operator this is a Job that runs longer, which lets a test do something (restart
        the operator, say) while a Job certainly runs, however fast its machine.
        """
        self.reporting.clear()
        try:
            yield
        finally:
            self.reporting.set()

    def stop(self) -> None:
        self.stopping.set()
        self.reporting.set()
        self.thread.join(5)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        # List once, then watch from the list's resourceVersion and resume each watch from the
        # last version it showed (bookmarks included), as an informer does: a poll that lists
        # every Job a few times a second costs the API server and this process more than the
        # Jobs themselves once there are hundreds. The Jobs are listed again only when the API
        # server answers 410 Expired (its history no longer reaches that version: a restart).
        version: str | None = None
        while not self.stopping.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._watch(version)
            except Exception as exc:  # the API server restarting, a broken stream
                log.debug("runner watch ended: %s", exc)
                self.stopping.wait(self.poll)

    def _list(self) -> str:
        """Consider every Job; the list's resourceVersion, to watch from."""
        # With _preload_content=False the client returns urllib3's response, not the
        # V1JobList its signature names.
        listing = cast(
            "urllib3.BaseHTTPResponse",
            self.batch.list_job_for_all_namespaces(_preload_content=False),
        )
        found = json.loads(listing.data)
        for job in found.get("items") or []:
            self._consider(job)
        return str(found["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str | None:
        """One watch from `version`, which the server ends after `idle` seconds (so that stop()
        is quick): the last version it showed, or None when `version` has expired (410)."""
        seconds = max(1, round(self.idle))
        response = cast(
            "urllib3.BaseHTTPResponse",
            self.batch.list_job_for_all_namespaces(
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _preload_content=False,
                _request_timeout=(5, seconds + 5),
            ),
        )
        try:
            if response.status == 410:
                return None
            if not 200 <= response.status < 300:
                raise RuntimeError(f"watching Jobs: HTTP {response.status}")
            for line in iter_resp_lines(response):
                if self.stopping.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                found = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if found.get("code") == 410:
                        return None
                    raise RuntimeError(f"watching Jobs: {found.get('message')}")
                version = str(found["metadata"]["resourceVersion"])
                if event.get("type") in ("ADDED", "MODIFIED"):
                    self._consider(found)
        finally:
            response.close()
            response.release_conn()
        return version

    def _consider(self, job: dict[str, Any]) -> None:
        uid = job["metadata"].get("uid")
        if uid in self.seen or (job.get("status") or {}).get("completionTime"):
            return
        self.seen.add(uid)
        self.pool.submit(self._run_job_logged, job)

    def _patch_job(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        meta = job["metadata"]
        release(
            self.batch.patch_namespaced_job_status(
                meta["name"], meta["namespace"], {"status": status}, _preload_content=False
            )
        )

    def _run_job_logged(self, job: dict[str, Any]) -> None:
        try:
            self._run_job(job)
        except Exception:  # a runner bug must be visible, not a silently stuck Job
            log.exception("running Job %s failed", job["metadata"]["name"])

    def _run_job(self, job: dict[str, Any]) -> None:
        spec = job["spec"]
        attempts = int(spec.get("backoffLimit") or 0) + 1
        deadline = spec.get("activeDeadlineSeconds")
        started = time.monotonic()
        self._patch_job(job, {"startTime": now(), "active": 1})
        if self.noop:
            self._finish_noop(job)
            return
        failed = 0
        for attempt in range(attempts):
            if attempt:
                delay = self.retry_delay * 2 ** (attempt - 1)
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline - (time.monotonic() - started)))
                if self.stopping.wait(delay):
                    return
            remaining = (
                None if deadline is None else max(0.0, deadline - (time.monotonic() - started))
            )
            code, message, reason = self._run_pod(job, attempt, remaining)
            if code == 0:
                self._patch_job(
                    job,
                    {
                        "active": 0,
                        "succeeded": 1,
                        "completionTime": now(),
                        "conditions": [
                            {"type": "Complete", "status": "True", "lastTransitionTime": now()}
                        ],
                    },
                )
                return
            failed += 1
            if reason == "DeadlineExceeded":
                break
            rule = failing_rule(spec, job_container(job)["name"], code)
            if rule is not None:
                # The Job controller's podFailurePolicy: this exit code ends the Job at once.
                reason = "PodFailurePolicy"
                message = (
                    f"Container {job_container(job)['name']} for pod "
                    f"{job['metadata']['namespace']}/{job['metadata']['name']}-{attempt} failed "
                    f"with exit code {code} matching FailJob rule at index {rule}"
                )
                break
        condition = {
            "type": "Failed",
            "status": "True",
            "reason": reason or "BackoffLimitExceeded",
            "message": message or f"failed {failed} time(s)",
            "lastTransitionTime": now(),
        }
        self._patch_job(job, {"active": 0, "failed": failed, "conditions": [condition]})

    def _finish_noop(self, job: dict[str, Any]) -> None:
        """The stage's smallest valid result, at once, without running anything. A train
        Job's pod reports the model's digest in its termination message, as the real stage
        does (the operator refuses a model the pod did not vouch for)."""
        from fairpilot.artifacts import ArtifactStore

        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        output = args[args.index("--output") + 1]
        stage = (job["metadata"].get("labels") or {}).get(label.STAGE, "")
        result = noop_result(stage, output)
        ArtifactStore(output).write_json("result.json", result)
        self._wait_to_report(job["metadata"]["name"])
        if result.get("modelDigest"):
            pod_name = self._create_pod(job, 0)
            message = json.dumps({"modelDigest": result["modelDigest"]})
            self._report_pod(job, pod_name, 0, "Completed", message)
        done = {"type": "Complete", "status": "True", "lastTransitionTime": now()}
        status = {"active": 0, "succeeded": 1, "completionTime": now(), "conditions": [done]}
        self._patch_job(job, status)

    def _wait_to_report(self, job_name: str) -> None:
        """Inside `held()`: the Job has finished but says so only when the block ends."""
        if not self.reporting.is_set():
            self.holding.add(job_name)
            self.reporting.wait()
            self.holding.discard(job_name)

    def _run_pod(
        self, job: dict[str, Any], attempt: int, timeout: float | None
    ) -> tuple[int, str, str]:
        meta = job["metadata"]
        template = job["spec"]["template"]
        pod_name = self._create_pod(job, attempt)
        container = template["spec"]["containers"][0]
        workdir = Path(tempfile.mkdtemp(prefix=f"fairpilot-{meta['name']}-"))
        # The engine's name for the container: unique per attempt and runner, so that a
        # sandbox started again beside an old container never meets it.
        engine_name = f"fairpilot-{pod_name}-{os.getpid()}"[:120]
        docker = self.runtime == "docker" and not (self.crash and self.crash(job))
        docker = docker and not (self.hang and self.hang(job))
        try:
            try:
                if docker:
                    argv, env = self._containerise(
                        meta["namespace"], template["spec"], container, workdir, engine_name
                    )
                else:
                    argv, env = self._materialise(
                        meta["namespace"], template["spec"], container, workdir
                    )
            except MissingSecret as exc:
                docker = False
                # A kubelet keeps such a pod waiting (CreateContainerConfigError); here the
                # pod fails with the same words, so that a test or a user sees them at once.
                argv = [sys.executable, "-c", f"import sys; sys.exit({str(exc)!r})"]
                env = {"PATH": os.environ.get("PATH", "")}
            if self.crash and self.crash(job):
                argv = [sys.executable, "-c", _CRASH]
            elif self.hang and self.hang(job):
                argv = [sys.executable, "-c", _HANG]
            log.info("running %s: %s", meta["name"], " ".join(argv))
            limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
            pod_log = (
                None
                if self.pod_logs is None
                else pod_log_path(self.pod_logs, meta["namespace"], pod_name, container["name"])
            )
            self._pod_started(job, pod_name)
            code, reason, logs = run_container(
                argv,
                env,
                workdir,
                timeout,
                # The engine holds the container to its limit (--memory); the client is small.
                int(parse_quantity(limit)) if limit and not docker else None,
                log=pod_log,
                log_limit=self.log_limit,
            )
            if docker:
                # A deadline killed the client, not the container: finish() removes it too.
                exit_code, oom = containers.finish(engine_name, self.docker)
                if oom and reason != "DeadlineExceeded":
                    code, reason = 137, "OOMKilled"
                elif exit_code is not None and not reason:
                    code = exit_code
            self._wait_to_report(meta["name"])
            termination = workdir / "termination-log"
            message = termination.read_text() if termination.exists() else ""
            if not message and code != 0:
                message = (logs.strip().splitlines() or [reason])[-1]
            self._report_pod(job, pod_name, code, reason or "Completed", message)
            return code, message, reason
        finally:
            if docker:
                containers.remove(engine_name, self.docker)
            shutil.rmtree(workdir, ignore_errors=True)

    def _create_pod(self, job: dict[str, Any], attempt: int) -> str:
        meta = job["metadata"]
        template = job["spec"]["template"]
        pod_name = f"{meta['name']}-{attempt}"[:63]
        labels = {**(template.get("metadata", {}).get("labels") or {}), "job-name": meta["name"]}
        pod = {
            "metadata": {
                "name": pod_name,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
        # The client's validate_call turns the dict into the V1Pod its signature names.
        release(
            self.core.create_namespaced_pod(
                meta["namespace"],
                pod,  # type: ignore[arg-type]
                _preload_content=False,
            )
        )
        return pod_name

    def _pod_started(self, job: dict[str, Any], pod_name: str) -> None:
        """The pod's container runs, as the kubelet reports it (`kubectl get pods`)."""
        container = job_container(job)
        started = now()
        state = {"running": {"startedAt": started}}
        status = {
            "phase": "Running",
            "startTime": started,
            "containerStatuses": [
                {
                    "name": container["name"],
                    "state": state,
                    "ready": True,
                    "restartCount": 0,
                    "image": container.get("image", ""),
                    "imageID": "",
                }
            ],
        }
        release(
            self.core.patch_namespaced_pod_status(
                pod_name, job["metadata"]["namespace"], {"status": status}, _preload_content=False
            )
        )

    def _report_pod(
        self, job: dict[str, Any], pod_name: str, code: int, reason: str, message: str
    ) -> None:
        """The pod's end as the kubelet writes it: exit code, reason, termination message."""
        container = job["spec"]["template"]["spec"]["containers"][0]
        state = {"terminated": {"exitCode": code, "reason": reason, "message": message[:4096]}}
        self.core.patch_namespaced_pod_status(
            pod_name,
            job["metadata"]["namespace"],
            {
                "status": {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "containerStatuses": [
                        {
                            "name": container["name"],
                            "state": state,
                            "ready": False,
                            "restartCount": 0,
                            "image": container.get("image", ""),
                            "imageID": "",
                        }
                    ],
                }
            },
        )

    def _materialise(
        self, namespace: str, pod_spec: dict[str, Any], container: dict[str, Any], workdir: Path
    ) -> tuple[list[str], dict[str, str]]:
        """Volumes as local directories, mount paths rewritten in the argv, env as given."""
        mounts: dict[str, Path] = {}
        volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            local = workdir / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                config_map = self.core.read_namespaced_config_map(
                    volume["configMap"]["name"], namespace
                )
                for key, value in (config_map.data or {}).items():
                    (local / key).write_text(value)
            mounts[mount["mountPath"]] = local

        def local_path(arg: str) -> str:
            for mount_path, local in mounts.items():
                if arg == mount_path or arg.startswith(mount_path.rstrip("/") + "/"):
                    return str(local) + arg[len(mount_path.rstrip("/")) :]
            return arg

        command = [*container.get("command", []), *container.get("args", [])]
        executable = Path(sys.executable).parent / command[0]
        argv = [
            str(executable) if executable.exists() else command[0],
            *map(local_path, command[1:]),
        ]
        env = {k: v for k, v in os.environ.items() if k in PASSED_ENV}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = local_path(str(item["value"]))
        env.update(self._secret_env(namespace, container))
        env.update(self.env)
        env["FAIRPILOT_TERMINATION_LOG"] = str(workdir / "termination-log")
        env["TMPDIR"] = str(mounts.get("/tmp", workdir))
        return argv, env

    def _containerise(
        self,
        namespace: str,
        pod_spec: dict[str, Any],
        container: dict[str, Any],
        workdir: Path,
        name: str,
    ) -> tuple[list[str], dict[str, str]]:
        """`docker run` of the pod (the `docker` client's argv and environment): its volumes
        as folders, its environment in an env file, the termination log mounted where the
        kubelet mounts it."""
        contents: dict[str, dict[str, str]] = {}
        for volume in pod_spec.get("volumes") or []:
            if "configMap" in volume:
                config_map = self.core.read_namespaced_config_map(
                    volume["configMap"]["name"], namespace
                )
                contents[volume["name"]] = dict(config_map.data or {})
        env = {
            k: v
            for k, v in os.environ.items()
            if k in PASSED_ENV and k not in ("PATH", "LANG", "LC_ALL")
        }
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
        env.update(self._secret_env(namespace, container))
        env.update(self.env)
        argv = containers.docker_run_argv(
            pod_spec,
            name=name,
            folders=containers.prepare_folders(pod_spec, workdir, contents),
            env_path=containers.write_env_file(workdir, env),
            termination_log=containers.termination_file(workdir),
            binds=[containers.Bind(path, str(path), read_only=False) for path in self.binds],
            network="host",  # what the sandbox serves (S3, Kafka) is on this host's loopback
            docker=self.docker,
        )
        return argv, containers.client_env()

    def _secret_env(self, namespace: str, container: dict[str, Any]) -> dict[str, str]:
        """`envFrom` Secrets, as the kubelet resolves them: from the pod's own namespace only
        (a Secret of another namespace cannot be named), base64-decoded."""
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            ref = source.get("secretRef")
            if not ref:
                continue
            try:
                secret = self.core.read_namespaced_secret(ref["name"], namespace)
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:
                    raise
                if ref.get("optional"):
                    continue
                raise MissingSecret(
                    f"CreateContainerConfigError: secret {ref['name']!r} not found in "
                    f"namespace {namespace!r}"
                ) from None
            for key, value in (secret.data or {}).items():
                env[f"{source.get('prefix', '')}{key}"] = base64.b64decode(value).decode()
        return env


class MissingSecret(Exception):
    """A Secret the pod's envFrom names does not exist in its namespace."""


def job_container(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]["containers"][0]


def failing_rule(spec: dict[str, Any], container: str, exit_code: int) -> int | None:
    """The index of the podFailurePolicy rule whose action is FailJob and whose onExitCodes
    match this container's exit code, as the Job controller evaluates them (first match wins:
    a matching Ignore or Count rule before it keeps the usual backoff)."""
    for index, rule in enumerate((spec.get("podFailurePolicy") or {}).get("rules") or []):
        codes = rule.get("onExitCodes")
        if not codes or exit_code == 0:
            continue
        if codes.get("containerName") not in (None, container):
            continue
        listed = exit_code in (codes.get("values") or [])
        if listed == (codes.get("operator") == "In"):
            return index if rule.get("action") == "FailJob" else None
    return None


_HANG = "import time\nwhile True: time.sleep(60)"
_CRASH = "import sys; sys.stderr.write('Segmentation fault (core dumped)\\n'); sys.exit(1)"


def noop_result(stage: str, output: str) -> dict[str, Any]:
    """The smallest result.json each stage's contract (api/results.py) accepts, for Jobs that
    finish at once (load benchmarks): checked against the model, so the two cannot drift."""
    digest = "sha256:" + "0" * 64
    results: dict[str, dict[str, Any]] = {
        "profile": {"rows": 0, "columns": 0},
        "bias": {"biasDetected": False, "findings": [], "summary": {}},
        "train": {
            "evalMetric": "accuracy",
            "metrics": {},
            "bestModel": {"name": "noop"},
            "validation": {"checked": False},
            "model": {"uri": f"{output}/model", "digest": digest},
            "modelDigest": digest,
        },
        "explain": {
            "method": "noop",
            "topFeature": "",
            "model": {"uri": f"{output}/model"},
            "localAccuracy": {"maxAbsError": 0.0},
        },
        "monitor": {
            "window": 1,
            "rows": 0,
            "judged": False,
            "summary": {"window": 1},
            "model": {"uri": f"{output}/model"},
        },
    }
    result = {"stage": stage or "noop", "reports": {}, **results.get(stage, {})}
    kind = next((k for k in KINDS if k.stage == stage), None)
    if kind is not None:
        kind.result.model_validate(result)
    return result
