"""Kopf handlers: translate events into `reconcile()` calls and post what it reports.

Kept thin on purpose: all decisions live in `reconcile.py`, which is tested without Kopf.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf

from fairpilot import API_GROUP, API_VERSION, metrics
from fairpilot.api import labels as label
from fairpilot.api.kinds import BY_KIND, KINDS
from fairpilot.bridge.service import Bridge
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.controller.dependents import Dependents
from fairpilot.controller.reconcile import TERMINAL, job_state, reconcile
from fairpilot.controller.seen import SeenVersions
from fairpilot.controller.waiters import Waiters

RETRY_SECONDS = 2.0
RECHECK_MAX_SECONDS = 60.0
# A waiting resource is retried after 2, 4, 8, then every 15 s: a stage it waits for wakes it
# when it ends (WAITERS), so the retry only catches what no wake-up covers.
WAIT_MAX_SECONDS = 15.0
WAITERS = Waiters()
DEPENDENTS = Dependents()  # who uses whom, to re-run what an input's new run leaves stale
JOBS_SEEN = SeenVersions()  # the versions of Jobs already acted on (controller/seen.py)
# Wake-ups run here, not in the thread of the reconciliation that ended a stage.
_WAKE_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fairpilot-wake")
log = logging.getLogger(__name__)
# Reconciliations wait on the API server most of the time: more threads than Kopf's default
# (cores + 4) keep a burst of new resources moving instead of queueing behind a few calls.
HANDLER_THREADS = 16


@dataclass
class Runtime:
    """What the handlers need; set by whoever starts the operator."""

    cluster: Cluster | None = None
    config: OperatorConfig | None = None
    host: str | None = None
    bridge: Bridge | None = None  # Kafka and warehouse deliveries, when configured
    # On a cluster: discover the CRDs once at start-up instead of watching CRDs and namespaces,
    # which the chart's least-privilege RBAC does not grant (it installs the CRDs first).
    scanning_disabled: bool = False
    # With peering: how long a silent replica's record holds the others on standby.
    peering_lifetime: int = 60


RUNTIME = Runtime()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = 20  # INFO and above become Kubernetes Events
    settings.execution.max_workers = HANDLER_THREADS
    settings.watching.server_timeout = 60
    settings.scanning.disabled = RUNTIME.scanning_disabled
    settings.peering.lifetime = RUNTIME.peering_lifetime
    settings.persistence.finalizer = label.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=label.RECORDS)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=label.RECORDS)


@kopf.on.startup()
async def start_bridge(**_: Any) -> None:
    if RUNTIME.bridge is not None:
        await RUNTIME.bridge.start()


@kopf.on.cleanup()
async def stop_bridge(**_: Any) -> None:
    if RUNTIME.bridge is not None:
        await RUNTIME.bridge.stop()


async def _changed(body: kopf.Body, type: str | None, **_: Any) -> None:
    # Every change of a resource, and every resource at start-up: the outboxes work out
    # what is still to deliver from its state. Async, so it runs on the outboxes' loop.
    # A deleted resource waits for nothing any more, and what used it learns it is gone.
    meta = body.get("metadata") or {}
    key = (body.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
    if type == "DELETED":
        WAITERS.forget(key)
        DEPENDENTS.forget(key)
        _wake_dependents(key)
    else:
        DEPENDENTS.update(dict(body))
    if RUNTIME.bridge is not None:
        RUNTIME.bridge.notify(dict(body), type)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    if RUNTIME.host:
        return kopf.ConnectionInfo(server=RUNTIME.host, insecure=True)
    return kopf.login_via_client(**kwargs)


def _reconcile(
    body: kopf.Body | dict[str, Any], job: dict[str, Any] | None = None, retry: int = 0
) -> None:
    assert RUNTIME.cluster is not None and RUNTIME.config is not None
    kind = BY_KIND[body["kind"]]
    meta = body["metadata"]
    key = (kind.kind, meta["namespace"], meta["name"])
    mark = WAITERS.mark()
    with metrics.RECONCILE_SECONDS.labels(kind.kind).time():
        try:
            outcome = reconcile(kind, dict(body), RUNTIME.cluster, RUNTIME.config, job)
        except Exception:
            metrics.RECONCILIATIONS.labels(kind.kind, "error").inc()
            raise
    metrics.RECONCILIATIONS.labels(kind.kind, "ok").inc()
    phase = outcome.status.get("phase")
    if phase and phase != (body.get("status") or {}).get("phase"):
        metrics.PHASE_CHANGES.labels(kind.kind, phase).inc()
        if phase in ("Succeeded", "Failed"):
            metrics.JOB_OUTCOMES.labels(kind.stage, phase.lower()).inc()
            started = (body.get("status") or {}).get("startedAt")
            if started:
                from datetime import UTC, datetime

                began = datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                seconds = (datetime.now(UTC) - began).total_seconds()
                metrics.STAGE_SECONDS.labels(kind.stage).observe(seconds)
    for event_type, reason, message in outcome.events:
        (kopf.info if event_type == "Normal" else kopf.warn)(
            dict(body), reason=reason, message=message
        )
    # A wake-up reconciles once; if the resource still waits, its retry (and its record in
    # WAITERS) take it from there.
    if phase in TERMINAL:
        for dependent in WAITERS.release(key):
            _soon(_reconcile_now, *dependent)
    if phase and phase != (body.get("status") or {}).get("phase"):
        _wake_dependents(key)  # a new run of an input: those that used the last one look again
    if outcome.waiting_on:
        upstream = (outcome.waiting_on[0], key[1], outcome.waiting_on[1])
        if not WAITERS.add(upstream, key, since=mark):
            _soon(_reconcile_now, *key)  # it ended while this one was reading it
    if outcome.waiting:
        delay = min(RETRY_SECONDS * 2**retry, WAIT_MAX_SECONDS)
        raise kopf.TemporaryError(outcome.status.get("message", "waiting"), delay=delay)


def _wake_dependents(key: tuple[str, str, str]) -> None:
    for dependent in DEPENDENTS.of(key):
        _soon(_reconcile_now, *dependent)


def _soon(function: Callable[..., object], *args: Any) -> None:
    # In Kopf's context (its settings), which kopf.info() needs to post the events.
    _WAKE_POOL.submit(contextvars.copy_context().run, function, *args)


def _reconcile_now(kind: str, namespace: str, name: str) -> bool:
    """Reconcile the resource as the API has it now, outside Kopf's handlers (a wake-up, a
    recheck); whether it is to be looked at again: it still waits, or reconciling it failed."""
    if RUNTIME.cluster is None:
        return False
    try:
        resource = RUNTIME.cluster.get(kind, namespace, name)
        if resource is not None:
            _reconcile(resource)
        return False
    except kopf.TemporaryError:
        return True
    except Exception:
        log.exception("reconciling %s %s/%s failed", kind, namespace, name)
        return True


for _kind in KINDS:
    # One registration per kind; the same plain function serves all four.
    kopf.on.resume(API_GROUP, API_VERSION, _kind.plural, id="reconcile")(
        lambda body, retry, **_: _reconcile(body, retry=retry)
    )
    kopf.on.create(API_GROUP, API_VERSION, _kind.plural, id="reconcile")(
        lambda body, retry, **_: _reconcile(body, retry=retry)
    )
    kopf.on.update(API_GROUP, API_VERSION, _kind.plural, id="reconcile", field="spec")(
        lambda body, retry, **_: _reconcile(body, retry=retry)
    )
    kopf.on.event(API_GROUP, API_VERSION, _kind.plural, id="deliver")(_changed)


@kopf.on.event("batch", "v1", "jobs", labels={label.MANAGED_BY: label.OPERATOR})
def job_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
    """A stage Job finished: reconcile the resource that owns it.

    Only the end of a Job matters here: its creation and start are the resource handlers'
    doing (including adoption after a restart), so reacting to them would only re-read what
    is already known, once per Job, which adds up under load.
    """
    if type == "DELETED":
        JOBS_SEEN.forget(body)
        return
    if RUNTIME.cluster is None or not JOBS_SEEN.is_new(body):  # a re-listing: nothing new
        return
    job = dict(body)
    if job_state(job) == "running":
        return
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("controller") and owner.get("apiVersion") == f"{API_GROUP}/{API_VERSION}":
            resource = RUNTIME.cluster.get(
                owner["kind"], body["metadata"]["namespace"], owner["name"]
            )
            if resource is not None and resource["metadata"].get("uid") == owner.get("uid"):
                try:
                    _reconcile(resource, job)
                except kopf.TemporaryError:
                    # Kopf does not retry event handlers; the resource's own handlers have
                    # finished, so nothing else would look at it again.
                    _recheck_later(owner["kind"], body["metadata"]["namespace"], owner["name"])
    JOBS_SEEN.handled(body)  # not reached when reconciling raised: the next listing retries


def _recheck_later(kind: str, namespace: str, name: str, delay: float = RETRY_SECONDS) -> None:
    """Reconcile the resource again after `delay`, with backoff, until it stops waiting.

    A restarted operator reconciles every resource anyway (Kopf's resume handlers), so losing
    these timers with the process loses nothing.
    """

    def again() -> None:
        if _reconcile_now(kind, namespace, name):
            _recheck_later(kind, namespace, name, min(delay * 2, RECHECK_MAX_SECONDS))

    # In Kopf's context (its settings), which kopf.info() needs to post the events.
    timer = threading.Timer(delay, contextvars.copy_context().run, args=(again,))
    timer.daemon = True
    timer.start()
