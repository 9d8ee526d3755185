"""Kopf handlers: translate events into calls of the plain functions below, nothing more.

`registry()` registers them into a registry of their own (not Kopf's global one); each finds
the operator's Runtime in Kopf's memo. The functions take the Runtime as their first argument,
so tests call them without Kopf. All decisions live in `reconcile.py`.

How a resource is looked at again, in one place:
- its own handlers (create, update, resume) raise kopf.TemporaryError while it waits, and Kopf
  retries them after `runtime.retry.waiting`;
- a stage that ends wakes, through the Scheduler, the resources waiting for it (Waiters) and
  those that used its previous run (Dependents);
- a Job's end is reconciled from the Job's event, which Kopf never retries: if the resource
  still waits, the Scheduler rechecks it after `runtime.retry.recheck`.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from fairpilot import API_GROUP, API_VERSION, metrics
from fairpilot.api import labels as label
from fairpilot.api.kinds import BY_KIND, KINDS, MODEL_MONITOR, Kind
from fairpilot.controller import pipeline_pages
from fairpilot.controller.reconcile import TERMINAL, job_state, reconcile
from fairpilot.controller.runtime import Runtime, configure

log = logging.getLogger(__name__)
Key = tuple[str, str, str]  # kind, namespace, name
LOOK_SECONDS = 10.0  # how often a ModelMonitor's schedule is checked
INDEX_ATTEMPTS = 10  # a pipeline index the store refuses: the next phase change writes it


# -- the plain functions ------------------------------------------------------------------------
def reconcile_resource(
    runtime: Runtime, body: dict[str, Any], job: dict[str, Any] | None = None, retry: int = 0
) -> None:
    """Reconcile one resource and post what it reports; raises kopf.TemporaryError while it
    waits (Kopf retries its own handlers; the other callers schedule a recheck)."""
    kind = BY_KIND[body["kind"]]
    meta = body["metadata"]
    key = (kind.kind, meta["namespace"], meta["name"])
    mark = runtime.waiters.mark()
    with metrics.RECONCILE_SECONDS.labels(kind.kind).time():
        try:
            outcome = reconcile(kind, dict(body), runtime.cluster, runtime.config, job)
        except Exception:
            metrics.RECONCILIATIONS.labels(kind.kind, "error").inc()
            raise
    metrics.RECONCILIATIONS.labels(kind.kind, "ok").inc()
    if kind is MODEL_MONITOR and outcome.status:
        metrics.observe_monitor(meta["namespace"], meta["name"], outcome.status)
    phase: str | None = outcome.status.get("phase")
    changed = phase is not None and phase != (body.get("status") or {}).get("phase")
    if phase is not None and changed:
        _count_phase(kind.kind, kind.stage, phase, body)
    if outcome.phase_change is not None:
        # Judged against the status decide() read, not the body handed over (it may be
        # older); logged once when two reconciliations at once both make the change.
        runtime.lines.phase((*key, meta.get("uid") or ""), outcome.phase_change, outcome.status)
    for event_type, reason, message in outcome.events:
        post = kopf.info if event_type == "Normal" else kopf.warn
        # Kopf posts an event for any mapping of a resource (it reads its kind and metadata);
        # its annotation names only its own Body class.
        post(body, reason=reason, message=message)  # type: ignore[arg-type]
    # A wake-up reconciles once; if the resource still waits, its retry (and its record in
    # the waiters) take it from there.
    if phase in TERMINAL:
        for dependent in runtime.waiters.release(key):
            _soon(runtime, dependent)
    if changed:
        _wake_dependents(runtime, key)  # a new run of an input: its users look again
    if changed or outcome.phase_change is not None:
        refresh_index(runtime, kind, dict(body))
    if outcome.waiting_on:
        upstream = (outcome.waiting_on[0], key[1], outcome.waiting_on[1])
        if not runtime.waiters.add(upstream, key, since=mark):
            _soon(runtime, key)  # it ended while this one was reading it
    if outcome.waiting:
        message = outcome.status.get("message", "waiting")
        raise kopf.TemporaryError(message, delay=runtime.retry.waiting.delay(retry))


def job_changed(runtime: Runtime, body: dict[str, Any], event_type: str | None) -> None:
    """A stage Job changed: when it ended, reconcile the resource that owns it.

    Only the end of a Job matters here: its creation and start are the resource handlers'
    doing (including adoption after a restart), so reacting to them would only re-read what
    is already known, once per Job, which adds up under load.
    """
    if event_type == "DELETED":
        runtime.jobs_seen.forget(body)
        return
    if not runtime.jobs_seen.is_new(body):  # a re-listing: nothing new
        return
    if job_state(body) == "running":
        return
    meta = body.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller") and owner.get("apiVersion") == f"{API_GROUP}/{API_VERSION}":
            key = (owner["kind"], meta["namespace"], owner["name"])
            try:
                resource = runtime.cluster.get(*key)
                if resource is not None and resource["metadata"].get("uid") == owner.get("uid"):
                    reconcile_resource(runtime, resource, dict(body))
            except kopf.TemporaryError:
                _recheck(runtime, key, 0)
            except Exception:
                # Kopf never retries an event handler, and a watch does not list again on its
                # own (only after a 410): the recheck is what retries an API error here.
                log.exception("reconciling %s %s/%s after its Job ended failed", *key)
                _recheck(runtime, key, 0)
    runtime.jobs_seen.handled(body)


def resource_changed(runtime: Runtime, body: dict[str, Any], event_type: str | None) -> None:
    """Every change of a resource, and every resource at start-up: the outboxes work out what
    is still to deliver from its state. A deleted resource waits for nothing any more, and
    what used it learns it is gone."""
    meta = body.get("metadata") or {}
    key = (body.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
    if event_type == "DELETED":
        if key[0] == MODEL_MONITOR.kind:
            metrics.forget_monitor(key[1], key[2])
        runtime.waiters.forget(key)
        runtime.dependents.forget(key)
        _wake_dependents(runtime, key)
    else:
        runtime.dependents.update(body)
    if runtime.bridge is not None:
        runtime.bridge.notify(body, event_type)


def look(runtime: Runtime, body: dict[str, Any]) -> None:
    """A ModelMonitor's tick: it looks for new batches when its schedule says it is time
    (decide() returns at once, without a read, when it is not)."""
    # Waiting for something (a reference) is no error here: the next tick looks again.
    with contextlib.suppress(kopf.TemporaryError):
        reconcile_resource(runtime, body)


def reconcile_now(runtime: Runtime, key: Key) -> bool:
    """Reconcile the resource as the API has it now, outside Kopf's handlers (a wake-up, a
    recheck); whether it is to be looked at again: it still waits, or reconciling it failed."""
    kind, namespace, name = key
    try:
        resource = runtime.cluster.get(kind, namespace, name)
        if resource is not None:
            reconcile_resource(runtime, resource)
        return False
    except kopf.TemporaryError:
        return True
    except Exception:
        log.exception("reconciling %s %s/%s failed", kind, namespace, name)
        return True


def refresh_index(runtime: Runtime, kind: Kind, body: dict[str, Any], attempt: int = 0) -> None:
    """Rewrite the index page of the pipeline `body` is a stage of; tried again later, with
    backoff, while the store cannot take it."""
    # One page at a time: two stages ending at once must not leave the older view last.
    with runtime.pages_lock:
        again = pipeline_pages.refresh(runtime.cluster.get, runtime.config, kind, body)
    if again and runtime.scheduler is not None and attempt < INDEX_ATTEMPTS:
        delay = runtime.retry.recheck.delay(attempt)
        runtime.scheduler.later(delay, lambda: refresh_index(runtime, kind, body, attempt + 1))


def _soon(runtime: Runtime, key: Key) -> None:
    if runtime.scheduler is not None:
        runtime.scheduler.soon(reconcile_now, runtime, key)


def _wake_dependents(runtime: Runtime, key: Key) -> None:
    for dependent in runtime.dependents.of(key):
        _soon(runtime, dependent)


def _recheck(runtime: Runtime, key: Key, attempt: int) -> None:
    """Reconcile the resource after a delay, with backoff, until it stops waiting."""

    def again() -> None:
        if reconcile_now(runtime, key):
            _recheck(runtime, key, attempt + 1)

    if runtime.scheduler is not None:
        runtime.scheduler.later(runtime.retry.recheck.delay(attempt), again)


def _count_phase(kind: str, stage: str, phase: str, body: dict[str, Any]) -> None:
    metrics.PHASE_CHANGES.labels(kind, phase).inc()
    if phase not in TERMINAL:
        return
    metrics.JOB_OUTCOMES.labels(stage, phase.lower()).inc()
    started = (body.get("status") or {}).get("startedAt")
    if started:
        began = datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        metrics.STAGE_SECONDS.labels(stage).observe((datetime.now(UTC) - began).total_seconds())


# -- the Kopf handlers --------------------------------------------------------------------------
def runtime_of(memo: Any) -> Runtime:
    runtime = memo.runtime
    assert isinstance(runtime, Runtime), "operate() puts the Runtime in the memo"
    return runtime


def registry() -> kopf.OperatorRegistry:
    """FairPilot's handlers, in a registry of their own."""
    handlers = kopf.OperatorRegistry()
    on = kopf.on

    @on.startup(registry=handlers)
    async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        configure(settings, runtime)
        runtime.start()
        if runtime.bridge is not None:
            await runtime.bridge.start()

    @on.cleanup(registry=handlers)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        if runtime.bridge is not None:
            await runtime.bridge.stop()
        runtime.stop()

    @on.login(registry=handlers)
    def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
        host = runtime_of(memo).host
        if host:
            return kopf.ConnectionInfo(server=host, insecure=True)
        return kopf.login_via_client(memo=memo, **kwargs)

    def reconcile_handler(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
        reconcile_resource(runtime_of(memo), dict(body), retry=retry)

    # Async, so that it runs on the loop the outboxes live on.
    async def changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
        resource_changed(runtime_of(memo), dict(body), type)

    # A monitor's own clock: each tick asks whether its schedule is due (the finest schedule
    # a monitor may have is every LOOK_SECONDS).
    @on.timer(
        API_GROUP, API_VERSION, MODEL_MONITOR.plural, id="look", interval=LOOK_SECONDS,
        registry=handlers,
    )  # fmt: skip
    def tick(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        look(runtime_of(memo), dict(body))

    for kind in KINDS:  # one registration per kind; the same plain functions serve all five
        resource = (API_GROUP, API_VERSION, kind.plural)
        on.resume(*resource, id="reconcile", registry=handlers)(reconcile_handler)
        on.create(*resource, id="reconcile", registry=handlers)(reconcile_handler)
        on.update(*resource, id="reconcile", field="spec", registry=handlers)(reconcile_handler)
        on.event(*resource, id="deliver", registry=handlers)(changed)

    @on.event("batch", "v1", "jobs", labels={label.MANAGED_BY: label.OPERATOR}, registry=handlers)
    def job_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
        job_changed(runtime_of(memo), dict(body), type)

    return handlers
