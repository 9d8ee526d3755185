"""The sandbox: API server emulator, the real operator, and the local Job runner, together.

The API emulator runs in a child process (as an API server would, and so that it does not share
the operator's interpreter lock); the operator and the runner are threads of this process.
`fairpilot sandbox run DIR` applies manifests and follows them to the end; `fairpilot sandbox
up` keeps it running for other programs; tests use the same class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

from fairpilot import __version__
from fairpilot.api.kinds import BY_KIND, DATASET, KINDS, MODEL_MONITOR
from fairpilot.api.monitor import KafkaSource
from fairpilot.bridge.config import BridgeConfig
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.controller.runtime import Retry, Runtime, build_runtime, operate
from fairpilot.controller.seen import SeenVersions
from fairpilot.controller.waiters import Waiters
from fairpilot.sandbox import containers
from fairpilot.sandbox.emulator import running_emulator
from fairpilot.sandbox.kafka import SEED_TOPICS, create_topics, running_broker
from fairpilot.sandbox.process import OperatorProcess
from fairpilot.sandbox.runner import LocalJobRunner
from fairpilot.warehouse.store import Warehouse

log = logging.getLogger(__name__)
TERMINAL = ("Succeeded", "Failed")
# What the sandbox does as the cluster's user (apply, list, delete) goes to the API server under
# this name, so that its audit log tells it from the operator's own calls.
USER_AGENT = f"fairpilot-sandbox/{__version__}"


def documents(path: Path) -> list[dict[str, Any]]:
    """Every resource in a manifest file, or in the *.yaml files of a directory (sorted).

    Raises ValueError naming the file for YAML that is not a list of resources, or that is a
    bomb (aliases of aliases, deep nesting, a huge file): see api/safe_yaml.py.
    """
    from fairpilot.api import safe_yaml

    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    found = []
    for file in files:
        try:
            loaded = safe_yaml.load_all(file.read_bytes())
        except safe_yaml.UnsafeYaml as exc:
            raise ValueError(f"{file}: {exc}") from None
        for number, doc in enumerate(loaded, 1):
            if doc and not isinstance(doc, dict):
                raise ValueError(
                    f"{file}: document {number} is a {type(doc).__name__}, not a resource"
                )
            if doc:
                found.append(doc)
    return found


def sandbox_config(artifacts: Path, file_root: Path | None = None, **fields: Any) -> OperatorConfig:
    """The operator's configuration in the sandbox: local images (the runner runs the stage's
    command itself), artifacts under `artifacts`; `fields` change or add settings."""
    defaults: dict[str, Any] = {
        "artifact_root": f"file://{artifacts.resolve()}",
        "jobs_image": "local",
        "jobs_cuda_image": "local",
        # The operator judges file:// URIs as the pods will (they get FAIRPILOT_FILE_ROOT).
        "file_root": str(file_root.resolve()) if file_root else None,
    }
    return OperatorConfig(**{**defaults, **fields})


class Sandbox:
    def __init__(
        self,
        artifacts: Path,
        *,
        namespace: str = "default",
        parallelism: int = 2,
        noop_jobs: bool = False,
        kafka: bool | str = True,
        bridge: bool = True,
        warehouse: Warehouse | None = None,
        data_uri_template: str | None = None,
        config: OperatorConfig | None = None,
        file_root: Path | None = None,
        kafka_port: int | None = None,
        operator_process: bool = False,
        replicas: int = 1,
        peering_lifetime: int = 60,
        runner_options: dict[str, Any] | None = None,
        audit_log: Path | None = None,
        bridge_settings: dict[str, Any] | None = None,
        retry: Retry | None = None,
        waiters: Waiters | None = None,
        jobs_seen: SeenVersions | None = None,
        pod_logs: Path | None = None,
        runtime: str = "process",
    ) -> None:
        # noop_jobs: Jobs finish at once with a minimal result (for load benchmarks).
        # kafka: start a Tansu broker (`self.kafka` is its bootstrap address, else None), or
        # the bootstrap address of a broker that runs already.
        # bridge: run the Kafka bridge (consume the trigger topics, produce events) when there
        # is a broker. warehouse: where the outbox records datasets, reports, models, audit.
        # data_uri_template: where a message's dataset is when it carries no `uri`; default
        # file://<artifacts' parent>/data/{user_id}/{dataset_id}.csv.
        # config: the operator's configuration; default: local images, artifacts under
        # `artifacts`.
        # file_root: the one directory the jobs may read and write through file:// URIs
        # (FAIRPILOT_FILE_ROOT); it must hold the data and the artifacts.
        # operator_process: run `fairpilot operator` as child processes (sandbox/process.py)
        # instead of a thread, `replicas` of them with Kopf peering when more than one, so
        # that tests can SIGKILL an operator; the warehouse then needs a MongoDB URI.
        # runner_options: more keyword arguments for the LocalJobRunner (faults, retry delay).
        # audit_log: where the API server writes its audit log (sandbox/emulator.py).
        # bridge_settings: more BridgeConfig fields (principals, allowed_namespaces, ...).
        # retry, waiters, jobs_seen: the operator thread's (controller/runtime.py); default:
        # the operator's own. Given ones are kept across restart_operator().
        # pod_logs: where the runner keeps its pods' logs and the API server reads them
        # (`kubectl logs`); default: `pod-logs` beside the artifacts.
        # runtime: how the runner runs a Job's pod: "process" (its command, here) or "docker"
        # (its image, locked down as the Job says; needs `file_root`, the one folder mounted
        # into the containers, and by default the operator's own image names).
        if operator_process and warehouse is not None:
            raise ValueError("an operator process reaches the warehouse only through MONGO_URI")
        if replicas > 1 and not operator_process:
            raise ValueError("replicas need operator_process=True")
        self.operator_process = operator_process
        self.replicas = replicas
        self.peering_lifetime = peering_lifetime
        self.runner_options = dict(runner_options or {})
        self.operators: list[OperatorProcess] = []
        self.audit_log = audit_log
        self.bridge_settings = dict(bridge_settings or {})
        # `is not None`: Waiters and SeenVersions have a length, so an empty one is falsy.
        given = (retry, waiters, jobs_seen)
        if operator_process and any(each is not None for each in given):
            raise ValueError("retry, waiters and jobs_seen apply to the operator thread only")
        self.retry, self.waiters, self.jobs_seen = retry, waiters, jobs_seen
        self.runtime: Runtime | None = None  # the operator thread's
        self.noop_jobs = noop_jobs
        self.artifacts = artifacts.resolve()
        self.pod_logs = (pod_logs or self.artifacts.parent / "pod-logs").resolve()
        self.namespace = namespace
        self.parallelism = parallelism
        self.with_kafka = kafka
        self.kafka_port = kafka_port  # None: a free port
        self.with_bridge = bridge
        self.warehouse = warehouse
        self.data_uri_template = data_uri_template or (
            f"file://{self.artifacts.parent}/data/{{user_id}}/{{dataset_id}}.csv"
        )
        self.file_root = file_root.resolve() if file_root else None
        self.kafka: str | None = None
        if runtime == "docker" and self.file_root is None:
            raise ValueError("runtime docker needs a file_root to mount into the containers")
        self.pod_runtime = runtime  # not self.runtime: that is the operator thread's Runtime
        images: dict[str, Any] = {}
        if runtime == "docker":  # the images `make images` builds, not the process's "local"
            images = {
                field: OperatorConfig.model_fields[field].default
                for field in ("jobs_image", "jobs_cuda_image")
            }
        self.config = config or sandbox_config(self.artifacts, self.file_root, **images)
        if runtime == "docker":
            containers.require_containers(self.config.jobs_image)
        self._stack = contextlib.ExitStack()
        self._stop = threading.Event()

    def __enter__(self) -> Sandbox:
        try:
            self._start()
        except BaseException:
            # A half-started sandbox must not leave its child processes behind.
            self._stop.set()
            self._stack.close()
            raise
        return self

    def _start(self) -> None:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        if self.pod_runtime == "docker":
            self._open_to_pods()
            # The operator (this process's user) and the pods (the Jobs' user) write into the
            # same folders: the operator's pipeline index goes into a Dataset's folder, where
            # its pod then makes its run's folder. On a cluster both are the same user; here
            # what this process makes is opened to the pods while the sandbox runs.
            self._stack.callback(os.umask, os.umask(0))
        self.pod_logs.mkdir(parents=True, exist_ok=True)
        self.url = self._stack.enter_context(running_emulator(self.audit_log, self.pod_logs))
        if isinstance(self.with_kafka, str):
            self.kafka = self.with_kafka
        elif self.with_kafka:
            broker = running_broker(self.kafka_port, log=self.artifacts / "kafka.log")
            self.kafka = self._stack.enter_context(broker)
        self.bridge_config = self._bridge_config() if self.kafka else None
        # Our own broker, not one given by its address: create its topics.
        if self.kafka and self.bridge_config and not isinstance(self.with_kafka, str):
            topics = self.bridge_config.topics
            inbound = self.bridge_config.routes()  # the principals' own topics too
            # ModelMonitors name their own prediction topic; the default one is made here with
            # one partition (one model's records in one order), others as Tansu makes them.
            predictions = KafkaSource().topic
            create_topics(
                self.kafka,
                [*SEED_TOPICS, *inbound, topics.drift, topics.status, topics.dead_letter,
                 predictions],
            )  # fmt: skip
        self.cluster = Cluster.for_host(self.url)  # the user's client, not the operator's
        self.cluster.client.user_agent = USER_AGENT
        if self.operator_process:
            self._start_operator_processes()
        else:
            self._start_operator_thread()
        self.runner = LocalJobRunner(
            Cluster.for_host(self.url).client,
            parallelism=self.parallelism,
            noop=self.noop_jobs,
            env={"FAIRPILOT_FILE_ROOT": str(self.file_root)} if self.file_root else None,
            runtime=self.pod_runtime,
            binds=[self.file_root] if self.file_root and self.pod_runtime == "docker" else [],
            **{"pod_logs": self.pod_logs, **self.runner_options},
        ).start()
        self._stack.callback(self.runner.stop)

    def _open_to_pods(self) -> None:
        """Containers run as the Jobs' user (runAsUser), not as this process's: they must
        open the file root (readable and searchable by others, its parents searchable: checked,
        not changed, since it is the user's; the stages open each folder of a path on their
        way down) and write artifacts (the sandbox's own folder: made so, sticky as /tmp is)."""
        assert self.file_root is not None  # __init__ refuses docker without one
        for folder in [self.file_root, *self.file_root.parents]:
            needed = 0o005 if folder == self.file_root else 0o001
            mode = folder.stat().st_mode
            if mode & needed != needed:
                raise ValueError(
                    f"runtime docker: {folder} (mode {mode & 0o777:o}) is closed to other "
                    f"users, so the pods' user {self.config.run_as_user} cannot open the file "
                    f"root {self.file_root}"
                )
        self.artifacts.chmod(0o1777)
        # Folders an earlier run made as this process's user (`--runtime process`, or the
        # operator's own index pages) hold the new runs' folders too: opened the same way, so
        # that switching runtimes on one artifacts folder works. Links are not followed.
        for top, folders, _ in os.walk(self.artifacts):
            for name in folders:
                folder = Path(top) / name
                info = folder.lstat()
                if stat.S_ISDIR(info.st_mode) and info.st_uid != self.config.run_as_user:
                    folder.chmod(0o1777)

    def _start_operator_thread(self) -> None:
        # As `fairpilot operator` builds it (controller/main.py), logged in to the emulator.
        self.runtime = build_runtime(
            self.config,
            host=self.url,
            kafka=self.bridge_config if self.with_bridge else None,
            warehouse=self.warehouse,
            retry=self.retry,
            waiters=self.waiters,
            jobs_seen=self.jobs_seen,
        )
        self.bridge = self.runtime.bridge
        self._operator = threading.Thread(target=self._run_operator, name="operator", daemon=True)
        self._operator.start()

    def _start_operator_processes(self) -> None:
        self.bridge = None  # it lives in the operator processes
        peering = None
        if self.replicas > 1:
            peering = "fairpilot"
            # The chart creates this object with the operator; Kopf refuses to start without it.
            self.cluster.custom.create_cluster_custom_object(
                "kopf.dev",
                "v1",
                "clusterkopfpeerings",
                {
                    "apiVersion": "kopf.dev/v1",
                    "kind": "ClusterKopfPeering",
                    "metadata": {"name": peering},
                },
            )
        env = self.bridge_config.to_env() if self.bridge_config and self.with_bridge else {}
        for index in range(self.replicas):
            replica = OperatorProcess(
                self.artifacts.parent / "operators",
                self.url,
                self.config,
                env=env,
                peering=peering,
                peering_lifetime=self.peering_lifetime,
                name=f"operator-{index}",
            )
            self.operators.append(replica)
            self._stack.callback(replica.stop)
        for replica in self.operators:
            replica.start()

    def kill_operator(self, index: int = 0) -> None:
        """SIGKILL one operator process: it does nothing more, cleans nothing up."""
        self.operators[index].kill()

    def start_operator(self, index: int = 0) -> None:
        """Start a killed or stopped operator process again (a new pod of the Deployment)."""
        self.operators[index].start()

    def _bridge_config(self) -> BridgeConfig:
        assert self.kafka is not None
        return BridgeConfig(
            bootstrap_servers=self.kafka,
            namespace=self.namespace,
            data_uri_template=self.data_uri_template,
            # Tansu's group joins wait out these timeouts; Kafka's defaults make each one
            # take 5-18 s (sandbox/kafka.py).
            session_timeout_ms=2000,
            heartbeat_interval_ms=300,
            max_poll_interval_ms=5000,
            # Small batches finish well within that interval on a busy two-core machine.
            batch_size=100,
            fetch_max_wait_ms=100,
            **self.bridge_settings,
        )

    def restart_api_server(self) -> None:
        """Restart the API server as a control plane upgrade or crash does, its objects kept
        (etcd's): every watch ends, and one resuming from an older resourceVersion is 410
        Expired, so every client, the operator and the runner too, lists everything again.
        Returns once the server has restarted (the clients re-list in the next moments)."""
        self.url.restart()

    def restart_operator(self) -> None:
        """Stop the operator and start a fresh one, as a crash and a new pod would."""
        if self.operator_process:
            for index, replica in enumerate(self.operators):
                replica.kill()
                self.start_operator(index)
            return
        self._stop.set()
        self._operator.join(30)
        self._stop = threading.Event()
        self._start_operator_thread()  # a new pod: a new Runtime, nothing kept in memory

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if not self.operator_process:
            self._operator.join(10)
        self._stack.close()

    def _run_operator(self) -> None:
        # The same Kopf settings as `fairpilot operator`: every namespace, no /healthz port.
        assert self.runtime is not None
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(operate(self.runtime, [], None, stop_flag=self._stop))
        finally:
            loop.close()

    def apply(self, items: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
        applied = []
        for document in items:
            document = dict(document)
            document["metadata"] = {**document.get("metadata", {}), "namespace": self.namespace}
            if document.get("kind") not in BY_KIND:
                raise ValueError(f"{document.get('kind')} is not a FairPilot resource")
            self.cluster.create_resource(document)
            applied.append((document["kind"], document["metadata"]["name"]))
        return applied

    def resources(self) -> list[dict[str, Any]]:
        found = []
        for kind in KINDS:
            # The client types a custom-object listing as `object`: it is the JSON object.
            listing = cast(
                "dict[str, Any]",
                self.cluster.custom.list_namespaced_custom_object(
                    "fairpilot.io", "v1alpha1", self.namespace, kind.plural
                ),
            )
            found += listing.get("items", [])
        return found

    def finished(self) -> bool:
        """Every resource terminal, and no pipeline still about to create a next stage. A
        ModelMonitor is never done: it counts once it has looked (and no window runs), so that
        `sandbox run` of a model and its monitor ends when the model is trained and watched."""
        items = self.resources()
        if not items:
            return False
        for item in items:
            status = item.get("status") or {}
            if item["kind"] == MODEL_MONITOR.kind:
                if status.get("phase") == "Running" or not status.get("lastCheckedAt"):
                    return False
                continue
            if status.get("phase") not in TERMINAL:
                return False
            in_pipeline = item["kind"] == DATASET.kind and (item.get("spec") or {}).get("pipeline")
            if (
                in_pipeline
                and status.get("phase") == "Succeeded"
                and status.get("pipeline")
                in (
                    None,
                    "Running",
                )
            ):
                return False
        return True

    def wait(self, timeout: float, on_change: Any = None) -> bool:
        deadline = time.monotonic() + timeout
        seen: dict[tuple[str, str], str] = {}
        while time.monotonic() < deadline:
            for item in self.resources():
                key = (item["kind"], item["metadata"]["name"])
                status = item.get("status") or {}
                line = f"{status.get('phase', 'Pending')}: {status.get('message', '')}"
                if seen.get(key) != line:
                    seen[key] = line
                    if on_change:
                        on_change(key, status)
            if self.finished():
                return True
            time.sleep(0.5)
        return False


def summary(items: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"kind": i["kind"], "name": i["metadata"]["name"], "status": i.get("status") or {}}
        for i in items
    ]
