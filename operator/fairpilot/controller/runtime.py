"""Everything the operator's handlers need while it runs, built in one place.

`fairpilot operator` (controller/main.py) and the sandbox both call `build_runtime` and then
`operate`, so the sandbox runs Kopf with exactly the settings a cluster gets. The handlers find
the Runtime in Kopf's memo (`memo.runtime`); nothing of it lives in module globals, so two
operators in one process (a test's) do not share their waits, their pools or their client.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import kopf
import kubernetes

from fairpilot import monitoring
from fairpilot.api import labels as label
from fairpilot.api.kinds import MODEL_MONITOR
from fairpilot.backoff import Backoff
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.service import Bridge
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.controller import logs
from fairpilot.controller.dependents import Dependents
from fairpilot.controller.scheduler import Scheduler
from fairpilot.controller.seen import SeenVersions
from fairpilot.controller.waiters import Waiters
from fairpilot.warehouse.store import Warehouse


@dataclass(frozen=True)
class Pools:
    """Threads that call the API server at once; the client pools that many connections."""

    # Reconciliations wait on the API server most of the time: more threads than Kopf's
    # default (cores + 4) keep a burst of new resources moving instead of queueing.
    handlers: int = 16
    wakeups: int = 4  # the Scheduler's: wake-ups and rechecks
    # The bridge's blocking calls (API requests, MongoDB writes): its own threads, so that a
    # burst of reconciliations does not hold up every message and event.
    bridge: int = 48

    @property
    def connections(self) -> int:
        return self.handlers + self.wakeups + self.bridge


@dataclass(frozen=True)
class Retry:
    """How a resource that cannot go on yet is looked at again.

    A waiting resource's handler raises kopf.TemporaryError with `waiting.delay(retry)`: 2, 4,
    8, then every 15 s (a stage it waits for wakes it when it ends, so the retry only catches
    what no wake-up covers). A resource whose Job's end was reconciled from the Job's event is
    rechecked by the Scheduler with `recheck` (Kopf never retries event handlers).
    """

    waiting: Backoff = field(default_factory=lambda: Backoff(first=2.0, limit=15.0))
    recheck: Backoff = field(default_factory=lambda: Backoff(first=2.0, limit=60.0))


@dataclass(frozen=True)
class KopfOptions:
    """The Kopf settings `fairpilot operator` runs with (and so the sandbox too)."""

    # A watch is closed by the API server after this long and resumed from its last version.
    server_timeout: int = 60
    # Discover the CRDs once at start-up instead of watching CRDs and namespaces, which the
    # chart's least-privilege RBAC does not grant (it installs the CRDs first).
    scanning_disabled: bool = True
    # With peering: how long a silent replica's record holds the others on standby.
    peering_lifetime: int = 60
    posting_level: int = logging.INFO  # INFO and above become Kubernetes Events


@dataclass
class Runtime:
    cluster: Cluster
    config: OperatorConfig
    bridge: Bridge | None = None  # Kafka and warehouse deliveries, when configured
    host: str | None = None  # a plain-HTTP API server to log in to (the sandbox's)
    pools: Pools = Pools()
    retry: Retry = Retry()
    kopf: KopfOptions = KopfOptions()
    waiters: Waiters = field(default_factory=Waiters)
    dependents: Dependents = field(default_factory=Dependents)  # who uses whom (re-runs)
    jobs_seen: SeenVersions = field(default_factory=SeenVersions)  # controller/seen.py
    lines: logs.ResourceLines = field(default_factory=logs.ResourceLines)  # each logged once
    kopf_records: logs.KopfRecords | None = None  # on Kopf's logger while the operator runs
    scheduler: Scheduler | None = None  # started with the operator, stopped at its cleanup
    pages_lock: threading.Lock = field(default_factory=threading.Lock)  # pipeline index pages

    def start(self) -> None:
        if self.scheduler is None:
            self.scheduler = Scheduler(self.pools.wakeups)

    def stop(self) -> None:
        logs.uninstall(self.kopf_records)
        self.kopf_records = None
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None


class MonitorWaker:
    """Wakes a ModelMonitor whose window of Kafka records the bridge has just written, so that
    the window is measured now rather than at the monitor's next look (every minute).

    A look takes only files at least `monitoring.SETTLE_SECONDS` old, so the wake-up comes
    that long after the write (plus a margin); windows written within WAKE_MARGIN of each other
    share one. It makes the look due by asking for it (`status.wakeRequestedAt`,
    monitoring.due), then reconciles the monitor. A window Job already running is not
    disturbed: the request makes the look after it due at once (the next tick, 10 s), and
    survives a restart of the operator.
    The bridge calls it in the context of Kopf's handlers (Bridge._wake), which the
    reconciliation needs to post its Events; the Scheduler runs it in that context.
    """

    WAKE_MARGIN = 1.0

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._due: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def __call__(self, namespace: str, name: str) -> None:
        scheduler = self.runtime.scheduler
        if scheduler is None:  # stopped: the monitor's own look finds the window
            return
        delay = monitoring.SETTLE_SECONDS + 2 * self.WAKE_MARGIN
        due = time.monotonic() + delay
        with self._lock:
            # One pending that comes late enough for this window too (>= its settling time).
            if self._due.get((namespace, name), 0.0) >= due - self.WAKE_MARGIN:
                return
            self._due[(namespace, name)] = due
        scheduler.later(delay, self._look, namespace, name, due)

    def _look(self, namespace: str, name: str, due: float) -> None:
        from fairpilot.controller.handlers import reconcile_now

        with self._lock:
            if self._due.get((namespace, name)) == due:
                del self._due[(namespace, name)]
        try:
            now = monitoring.format_time(datetime.now(UTC))
            self.runtime.cluster.patch_status(
                MODEL_MONITOR, namespace, name, {"wakeRequestedAt": now}
            )
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to wake
                logging.getLogger(__name__).warning(
                    "waking ModelMonitor %s/%s failed: %s", namespace, name, exc
                )
            return
        reconcile_now(self.runtime, (MODEL_MONITOR.kind, namespace, name))


def build_runtime(
    config: OperatorConfig,
    *,
    host: str | None = None,
    kafka: BridgeConfig | None = None,
    warehouse: Warehouse | None = None,
    pools: Pools | None = None,
    retry: Retry | None = None,
    kopf_options: KopfOptions | None = None,
    waiters: Waiters | None = None,
    jobs_seen: SeenVersions | None = None,
) -> Runtime:
    """The operator's Runtime: a client for `host` (else the loaded kubeconfig or in-cluster
    configuration), and the bridge when Kafka or the warehouse is configured.

    waiters, jobs_seen: the operator's own by default; a benchmark passes others (one that
    wakes nobody, one that remembers nothing) to measure what they save."""
    pools = pools or Pools()

    def client() -> Cluster:
        if host is not None:
            return Cluster.for_host(host, connections=pools.connections)
        return Cluster.connect(connections=pools.connections)

    bridge = None
    if kafka is not None or warehouse is not None:
        bridge = Bridge(client(), kafka, warehouse, operator=config, threads=pools.bridge)
    runtime = Runtime(
        cluster=client(),
        config=config,
        bridge=bridge,
        host=host,
        pools=pools,
        retry=retry or Retry(),
        kopf=kopf_options or KopfOptions(),
        # Not `or`: both have a length, and an empty one given (a benchmark's) is falsy.
        waiters=waiters if waiters is not None else Waiters(),
        jobs_seen=jobs_seen if jobs_seen is not None else SeenVersions(),
    )
    if bridge is not None:
        bridge.wake = MonitorWaker(runtime)  # the bridge is below the controller: a callback
    return runtime


def configure(settings: kopf.OperatorSettings, runtime: Runtime) -> None:
    """Kopf's settings from the Runtime (called by the startup handler), and its log lines
    as FairPilot wants them (controller/logs.py: a wait is one INFO line, not an ERROR at
    every retry)."""
    logs.uninstall(runtime.kopf_records)
    runtime.kopf_records = logs.install(settings, runtime.lines)
    options = runtime.kopf
    settings.posting.level = options.posting_level
    settings.execution.max_workers = runtime.pools.handlers
    settings.watching.server_timeout = options.server_timeout
    settings.scanning.disabled = options.scanning_disabled
    settings.peering.lifetime = options.peering_lifetime
    settings.persistence.finalizer = label.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=label.RECORDS)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=label.RECORDS)


def liveness_endpoint(port: int) -> str:
    """Where Kopf serves /healthz: on all interfaces, as the kubelet probes the pod's IP.

    Kopf (1.45) answers GET on exactly this path with 200 and a JSON object of the `@kopf.on.probe`
    results (`{}`: FairPilot registers none, so the probe says the event loop is alive without
    depending on the API server, whose outage must not restart every operator pod). It starts
    serving once the startup handlers have run, so the probe needs an initial delay.
    """
    return f"http://0.0.0.0:{port}/healthz"


async def operate(
    runtime: Runtime,
    namespaces: list[str],
    health_port: int | None,
    *,
    stop_flag: threading.Event | None = None,
    peering: str | None = None,
) -> None:
    """Run Kopf with FairPilot's handlers and this Runtime until `stop_flag` is set.

    namespaces: the ones to watch; none: the whole cluster. health_port: where /healthz is
    served; None: nowhere (a sandbox in a test).
    peering: the name of a KopfPeering (ClusterKopfPeering when watching every namespace) for
    running more than one replica. Kopf pauses every operator that sees a peer of higher
    priority, and freezes all of them when two share one; each replica draws its priority at
    random, so exactly one works and the others stand by until its peering record expires.
    """
    from fairpilot.controller.handlers import registry

    await kopf.operator(
        registry=registry(),
        memo=kopf.Memo(runtime=runtime),
        standalone=not peering,
        peering_name=peering,
        priority=random.randint(1, 2**31 - 1) if peering else None,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness_endpoint(health_port) if health_port is not None else None,
        stop_flag=stop_flag,
    )


def load_kubeconfig() -> None:
    """The in-cluster service account, else the kubeconfig (a developer's machine)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
