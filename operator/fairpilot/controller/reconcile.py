"""Reconciling one resource: references -> Job -> status, and the pipeline's next step.

Shaped as controllers are: observe, decide, act.
- decide(kind, world, config) is a plain function from what has been read (the World) to a
  plan: the status to write, the Job to create, the pipeline's next resource, the events to
  post. It makes no API call; when it needs a read it has not got, it raises Need, which names
  the read. Tests build Worlds by hand.
- observe: reconcile() makes the read a Need names (Reader: the resource afresh, its Job, its
  references, the model registry, the Job's result, the pod's termination message, the
  pipeline's Dataset), at most once each, and asks again.
- act: the writes, in order, each once; a create that finds its object there already (a Job
  left from before a restart, a pipeline step) is recorded, and decide is asked again.

It is idempotent: the Job's name is derived from the run (`runs.py`: the spec generation, and
a re-run number after an input changed), which the status records before the Job is created,
so a restarted operator finds (adopts) the Job it created before and never creates a second.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import kubernetes

from fairpilot import access, monitoring
from fairpilot.api.kinds import BY_KIND, DATASET, MODEL_MONITOR, TRAINING_RUN, Kind
from fairpilot.api.status import Phase
from fairpilot.artifacts import Listed
from fairpilot.cluster import Cluster
from fairpilot.conditions import (
    InvalidResult,
    condition_of,
    failure,
    parse_result,
    set_condition,
)
from fairpilot.config import OperatorConfig
from fairpilot.controller import monitors

# decide()'s vocabulary lives in world.py (monitors.py shares it); it is named here too, where
# the reconciler's tests and callers have always found it.
from fairpilot.controller.world import (
    ArtifactStoreUnavailable,
    CreateJob,
    CreateResource,
    Need,
    Outcome,
    PatchLabels,
    PatchStatus,
    Reader,
    World,
)
from fairpilot.jobs import GpuNotAllowed, build_job, object_name, spec_config_map
from fairpilot.kinds import project_result, result_conditions, summary_message
from fairpilot.pipeline import dataset_by_reference, dataset_owner, next_resource
from fairpilot.references import UnresolvedReference, check_uri
from fairpilot.runs import (
    current_run,
    model_registry_uri,
    next_version,
    output_uri,
    parse_run,
    pipeline_index_uri,
    records_uri,
    run_id,
)

__all__ = [
    "TERMINAL",
    "ArtifactStoreUnavailable",
    "CreateJob",
    "CreateResource",
    "Need",
    "Outcome",
    "PatchLabels",
    "PatchStatus",
    "Reader",
    "World",
    "act",
    "decide",
    "job_state",
    "reconcile",
]

log = logging.getLogger(__name__)
TERMINAL = (Phase.SUCCEEDED, Phase.FAILED)
MAX_PASSES = 32  # reads and creates one reconciliation may need; more is a bug
MAX_ALERT_EVENTS = 10  # a window's alerts posted as Events; the status lists them all


def job_state(job: dict[str, Any]) -> str:
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in (
            "Complete",
            "SuccessCriteriaMet",
        ):
            return "succeeded"
        if condition.get("status") == "True" and condition.get("type") in (
            "Failed",
            "FailureTarget",
        ):
            return "failed"
    if status.get("succeeded"):
        return "succeeded"
    return "running"


def _same_status(status: dict[str, Any], patch: dict[str, Any]) -> bool:
    """Whether merging `patch` into `status` would leave it as it is."""

    def by_type(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(conditions or [], key=lambda c: str(c.get("type")))

    return all(
        by_type(status.get(key) or []) == by_type(value)
        if key == "conditions"
        else status.get(key) == value
        for key, value in patch.items()
    )


# -- act ----------------------------------------------------------------------------------------
def act(plan: Outcome, world: World, cluster: Cluster) -> None:
    """Apply the writes of `plan` that no earlier pass applied, in order; a create that finds
    its object there already is recorded, and decide() is asked again before anything else."""
    done = len(world.applied)
    if plan.writes[:done] != world.applied:
        raise RuntimeError("decide() gave another plan for the same observations")
    for write in plan.writes[done:]:
        world.applied.append(write)
        if isinstance(write, PatchStatus):
            cluster.patch_status(write.kind, write.namespace, write.name, write.patch)
        elif isinstance(write, PatchLabels):
            try:
                cluster.patch_labels(write.kind, write.namespace, write.name, write.labels)
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:  # deleted meanwhile: nothing left to mark
                    raise
        elif isinstance(write, CreateJob):
            world.created[("Job", write.name)] = cluster.create_job(write.config_map, write.job)
            if not world.created[("Job", write.name)]:
                log.info("adopting the existing Job %s", write.name)
                return
        else:
            key = (write.resource["kind"], write.resource["metadata"]["name"])
            world.created[key] = cluster.create_resource(write.resource)
            if not world.created[key]:
                return


def reconcile(
    kind: Kind,
    resource: dict[str, Any],
    cluster: Cluster,
    config: OperatorConfig,
    job: dict[str, Any] | None = None,
) -> Outcome:
    """Move one resource forward. `job`: its current Job when the caller has it at hand
    (a Job event carries it), which saves reading it back; the name must match.

    Observe, decide, act until the plan holds nothing left to apply: decide() is asked again
    after each read it needed and after each create that found its object there already.
    """
    world = World(resource, job)
    reader = Reader(cluster, resource["metadata"]["namespace"], config)
    for _ in range(MAX_PASSES):
        try:
            plan = decide(kind, world, config)
        except Need as need:
            world.observe(need, reader)
            continue
        if len(plan.writes) == len(world.applied):
            return plan
        act(plan, world, cluster)
    raise RuntimeError(f"{kind.kind} {resource['metadata']['name']}: no plan after {MAX_PASSES}")


# -- decide -------------------------------------------------------------------------------------
def decide(kind: Kind, world: World, config: OperatorConfig) -> Outcome:
    """The plan for one resource, from what `world` holds; raises Need for a read it lacks.

    A plain function of the World: no API calls, no clock, so it is tested with hand-made
    Worlds, and asked again after each read gives the same writes in the same order.
    """
    resource = world.resource
    meta = resource["metadata"]
    name, generation = meta["name"], int(meta.get("generation") or 1)
    namespace = meta["namespace"]
    status = dict(resource.get("status") or {})
    conditions = list(status.get("conditions") or [])
    plan = Outcome()
    run = current_run(status, generation)

    def condition(
        conditions: list[dict[str, Any]], type_: str, value: bool | None, reason: str, message: str
    ) -> list[dict[str, Any]]:
        # The World's one clock reading: the same plan on every pass (act checks it).
        return set_condition(conditions, type_, value, reason, message, generation, at=world.now)

    def this_resource() -> dict[str, Any] | None:
        # Read again (once): the body handed over may be older than the resource.
        return world.need(("get", kind.kind, name), lambda r: r.get(kind, name))

    def write(phase: Phase, message: str, **fields: Any) -> Outcome:
        patch = {
            "phase": phase,
            "message": message,
            "observedGeneration": generation,
            "conditions": conditions,
            **fields,
        }
        if status.get("phase") != phase:
            plan.events.append(("Normal" if phase != Phase.FAILED else "Warning", phase, message))
            plan.phase_change = (status.get("phase"), phase)
        # A write that changes nothing (the same Pending at every retry of a wait) is skipped:
        # each would cost the API server a write and every watcher an event.
        if not _same_status(status, patch):
            plan.writes.append(PatchStatus(kind, namespace, name, patch))
        plan.status = patch
        return plan

    finished = status.get("observedGeneration") == generation and status.get("phase") in TERMINAL
    fresh_start = False
    window: monitoring.Window | None = None  # a ModelMonitor's next window
    window_fields: dict[str, Any] = {}  # the status fields that record taking it
    at = datetime.fromisoformat(world.now.replace("Z", "+00:00"))  # the World's one reading
    spec_of = resource.get("spec") or {}
    if kind is MODEL_MONITOR and monitoring.looks(spec_of, status, generation, at):
        # Judged again on the resource as it is now: a body from before the last window
        # started would start it a second time.
        fresh = this_resource()
        if fresh is None or int(fresh["metadata"].get("generation") or 1) != generation:
            return plan  # deleted, or changed again: its own event comes
        resource, status = fresh, dict(fresh.get("status") or {})
        conditions = list(status.get("conditions") or [])
        run = current_run(status, generation)
    if kind is MODEL_MONITOR and monitoring.idle(status, generation):
        # A monitor is never done: at each look that is due it lists its prefix, judges the
        # data's freshness, and starts a window when there are new batches.
        spec_now = resource.get("spec") or {}
        if not monitoring.looks(spec_now, status, generation, at):
            return plan
        refused = unreadable_source(config, namespace, spec_now)
        if refused is not None:
            # Before any listing: the operator lists with its own credentials, and the names
            # and times under another tenant's prefix are not this monitor's to see.
            conditions = condition(
                conditions, "ReferencesResolved", False, refused.reason, refused.message
            )
            conditions = condition(conditions, "Ready", False, refused.reason, refused.message)
            return write(Phase.FAILED, refused.message)
        new_generation = status.get("observedGeneration") != generation
        records = records_uri(config, resource)
        where = monitoring.prefixes(spec_now, records)
        prefix = " and ".join(where)
        listed: list[Listed] = []
        for each in where:
            found = world.need(("listing", each), monitors.listing_of(each))
            if isinstance(found, ArtifactStoreUnavailable):
                message = f"could not look for new batches under {each}: {found}"
                conditions = condition(
                    conditions, "BatchesListed", False, "ArtifactStoreUnavailable", message
                )
                return _keep_phase(plan, kind, meta, status, conditions, lastCheckedAt=world.now)
            listed.extend(found)
        listed.sort(key=lambda item: (item.modified, item.uri))
        conditions = condition(
            conditions, "BatchesListed", True, "Listed", f"looked under {prefix} at {world.now}"
        )
        created = monitoring.parse_time(meta.get("creationTimestamp"))
        stale = monitoring.staleness(spec_now, listed, created, at, where)
        if stale.stale and (condition_of(status, "DataStale") or {}).get("status") != "True":
            plan.events.append(("Warning", "DataStale", stale.message))
        conditions = condition(conditions, "DataStale", stale.stale, stale.reason, stale.message)
        looked = {
            **({"recordsUri": records} if spec_now.get("kafka") else {}),
            "lastCheckedAt": world.now,
            "newestDataAt": (
                monitoring.format_time(listed[-1].modified)
                if listed
                else status.get("newestDataAt")
            ),
        }
        raised = {"DataStale": stale.message} if stale.stale else {}
        retraining = monitors.retraining_at_look(world, plan, resource, status, raised, at)
        if isinstance(retraining, monitors.Creating):
            return plan  # decided again once the candidate is created
        if retraining is not None:
            looked["retraining"] = retraining
            status = {**status, "retraining": retraining}
        window = monitoring.next_window(spec_now, status, listed, at)
        if not window.batches:
            if status.get("phase") in TERMINAL and not new_generation:
                return _keep_phase(plan, kind, meta, status, conditions, **looked)
            message = f"waiting for new batches under {prefix}"
            conditions = condition(conditions, "Ready", False, "WaitingForData", message)
            return write(Phase.PENDING, message, **looked)
        run = monitoring.next_run(status, generation)
        fresh_start = True
        window_fields = {
            "window": window.number,
            "pending": window.uris,
            "taken": window.taken,
            "windowAttempts": window.attempt,
            **looked,
        }
    if finished and kind is not MODEL_MONITOR:
        if _ready_reason(status) == "ReferenceFailed":
            # Failed because a reference had failed: no Job ran, so look again (this is a
            # wake-up from that reference, or a restart) with the same run.
            pass
        elif not status.get("inputs"):
            return plan  # done, and it used no other resource
        else:
            # This run is done; it is run again only when an input it used changed since.
            fresh = this_resource()
            if fresh is None:
                return plan
            finished_body: dict[str, Any] = fresh
            verdict = world.need(("inputs",), lambda r: r.inputs(finished_body))
            if verdict is None:
                return plan
            status = dict(fresh.get("status") or {})
            conditions = list(status.get("conditions") or [])
            conditions = condition(
                conditions, "UpToDate", verdict.up_to_date, verdict.reason, verdict.message
            )
            plan.waiting_on = verdict.waiting_on
            if not (verdict.rerun and config.follow_inputs):
                patch = {"conditions": conditions}
                if not _same_status(status, patch):
                    plan.writes.append(PatchStatus(kind, namespace, name, patch))
                plan.status = {**status, "conditions": conditions}
                return plan
            _, rerun = parse_run(current_run(status, generation))
            run = run_id(generation, rerun + 1)
            plan.events.append(("Normal", "InputChanged", f"{verdict.message}: re-running"))
            resource = fresh
            fresh_start = True

    job_name = object_name(kind, name, run)
    job = world.job
    if not fresh_start and (job is None or job.get("metadata", {}).get("name") != job_name):
        if status.get("jobName") != job_name:
            # About to start this run's Job, writing Running first. The body may be older
            # than the resource: under load a handler runs on the body of the event that
            # queued it, and Running written from it would overwrite the Succeeded written
            # meanwhile (bench_soak saw it). One read of the resource settles it.
            fresh = this_resource()
            if fresh is None:
                return plan
            current = fresh.get("status") or {}
            if (
                current.get("observedGeneration") == generation
                and current.get("phase") in TERMINAL
                and _ready_reason(current) != "ReferenceFailed"
            ):
                return plan
            if current.get("jobName") == job_name:
                status = dict(current)
                conditions = list(status.get("conditions") or [])
        # The status names the Job before the Job is created (below), so only a status that
        # names it can have one to read: a new resource costs no read that would 404.
        job = (
            world.need(("job", job_name), lambda r: r.job(job_name))
            if status.get("jobName") == job_name
            else None
        )
    elif fresh_start:
        job = None
    if job is None:
        spec_of = resource.get("spec") or {}
        batches = monitors.window_of(kind, spec_of, status, window)
        if batches is not None:
            batches |= monitors.models_of_window(world, meta, status)
        resolved = world.need(
            ("references", run), lambda r: r.references(kind, spec_of, name, batches)
        )
        if isinstance(resolved, UnresolvedReference):
            conditions = condition(
                conditions, "ReferencesResolved", False, resolved.reason, resolved.message
            )
            if resolved.waiting:
                plan.waiting, plan.waiting_on = True, resolved.on
                return write(Phase.PENDING, resolved.message)
            conditions = condition(conditions, "Ready", False, resolved.reason, resolved.message)
            return write(Phase.FAILED, resolved.message)
        versioned: dict[str, Any] = {}
        spec = resolved.spec
        pipeline_dataset = _pipeline_dataset(world, kind, resource)
        if pipeline_dataset is not None and (pipeline_dataset.get("spec") or {}).get("pipeline"):
            # Its report links to the page that lists the pipeline's stages and reports.
            spec = {**spec, "pipelineIndex": pipeline_index_uri(config, pipeline_dataset)}
        try:
            if kind is TRAINING_RUN:
                versioned = _model_version(world, config, namespace, spec, status, run)
                spec = {**spec, "version": versioned["modelVersion"],
                        "modelOutput": {"uri": versioned["modelUri"]}}  # fmt: skip
            manifest = build_job(
                kind,
                {**resource, "metadata": {**meta, "generation": generation}},
                config,
                run,
                model_digest=(spec.get("model") or {}).get("digest"),
                candidate_digest=(spec.get("candidate") or {}).get("digest"),
            )
        except ArtifactStoreUnavailable as exc:
            message = f"waiting for the artifact store to choose the model's version: {exc}"
            conditions = condition(conditions, "Ready", False, "ArtifactStoreUnavailable", message)
            plan.waiting = True
            return write(Phase.PENDING, message)
        except GpuNotAllowed as exc:
            conditions = condition(conditions, "Ready", False, "GpuNotAllowed", str(exc))
            return write(Phase.FAILED, str(exc))
        conditions = condition(
            conditions, "ReferencesResolved", True, "Resolved", "all references resolved"
        )
        conditions = condition(
            conditions, "Ready", False, "JobRunning", f"Job {job_name} is running"
        )
        if resolved.inputs and kind is not MODEL_MONITOR:  # a monitor follows its model anyway
            conditions = condition(
                conditions, "UpToDate", True, "InputsUnchanged",
                "every input is as this run uses it")  # fmt: skip
        # Status first, then the Job: a Job can finish before the create call returns here
        # (its end is reconciled from the Job's own event), and a Running written after that
        # would overwrite Succeeded. If the create fails, Kopf retries and this path runs again.
        running = write(
            Phase.RUNNING,
            f"Job {job_name} started",
            jobName=job_name,
            runId=run,
            inputs=resolved.inputs,
            outputUri=output_uri(config, kind, resource, run),
            startedAt=world.now,
            finishedAt=None,
            **versioned,
            **window_fields,
        )
        config_map = spec_config_map(kind, resource, spec, run)
        plan.writes.append(CreateJob(job_name, config_map, manifest))
        if world.created.get(("Job", job_name)) is not False:
            return running  # created (or about to be): its end comes as the Job's event
        # It was there already (a status written by someone else, or lost): adopt it and go on
        # from wherever it is, since a Job that has already finished sends no further event.
        status = {**status, **running.status}
        job = world.need(("adopted job", job_name), lambda r: r.job(job_name))
        if job is None:
            return running

    if not _owned_by(job, meta.get("uid")):
        # A Job of this name left by an earlier resource of the same name, deleted and created
        # again before the garbage collector (asynchronous on a real cluster) removed the Job:
        # adopting it would report someone else's run. Wait until it is gone.
        message = (
            f"Job {job_name} belongs to an earlier {kind.kind} named {name!r}; "
            "waiting for Kubernetes to delete it"
        )
        conditions = condition(conditions, "Ready", False, "PreviousJobPresent", message)
        plan.waiting = True
        return write(Phase.PENDING, message)

    state = job_state(job)
    # Where this run writes, as recorded when it started (the artifact root may have been
    # configured otherwise since).
    uri = (
        status["outputUri"]
        if status.get("jobName") == job_name and status.get("outputUri")
        else output_uri(config, kind, resource, run)
    )

    def termination() -> dict[str, Any] | None:
        return world.need(("termination", job_name), lambda r: r.termination(job_name))

    if state == "running":
        if status.get("phase") != Phase.RUNNING or status.get("jobName") != job_name:
            conditions = condition(
                conditions, "Ready", False, "JobRunning", f"Job {job_name} is running"
            )
            return write(
                Phase.RUNNING, f"Job {job_name} running", jobName=job_name, runId=run, outputUri=uri
            )
        return plan
    if state == "failed":
        error = world.need(("json", f"{uri}/error.json"), lambda r: r.json(f"{uri}/error.json"))
        if isinstance(error, ArtifactStoreUnavailable):
            error = None  # the pod's termination message carries the same reason
        reason, message = failure(error, termination(), job)
        conditions = condition(conditions, "Ready", False, reason, message)
        failed = write(
            Phase.FAILED,
            f"{reason}: {message}",
            jobName=job_name,
            runId=run,
            outputUri=uri,
            finishedAt=world.now,
            **monitors.failed_window(kind, status, error, reason, message),
        )
        _pipeline_failed(world, plan, kind, resource, f"{kind.kind} {name} failed: {reason}")
        return failed
    result = world.need(("json", f"{uri}/result.json"), lambda r: r.json(f"{uri}/result.json"))
    if isinstance(result, ArtifactStoreUnavailable):
        # The Job ended but what it wrote cannot be read yet: stay Running and say so; the
        # caller retries. Deciding now would fail a stage that may well have succeeded.
        message = f"Job {job_name} ended; waiting to read its result: {result}"
        conditions = condition(conditions, "Ready", False, "ArtifactStoreUnavailable", message)
        plan.waiting = True
        return write(Phase.RUNNING, message, jobName=job_name, runId=run, outputUri=uri)
    if result is None:
        message = (
            f"Job {job_name} succeeded but left no readable result.json under {uri} (none, not "
            "JSON, a link, or larger than 64 MiB)"
        )
        conditions = condition(conditions, "Ready", False, "NoResult", message)
        return write(
            Phase.FAILED, message, jobName=job_name, runId=run, outputUri=uri, finishedAt=world.now,
            **monitors.failed_window(kind, status, None, "NoResult", message),
        )  # fmt: skip
    try:
        parsed = parse_result(kind, result)
    except InvalidResult as exc:
        # The stage says it succeeded, but what it wrote cannot be projected: fail rather
        # than show a status made of guesses, and name the field (api.results).
        message = f"Job {job_name} succeeded, but {exc}"
        conditions = condition(conditions, "Ready", False, InvalidResult.reason, message)
        failed = write(
            Phase.FAILED, message, jobName=job_name, runId=run, outputUri=uri, finishedAt=world.now,
            **monitors.failed_window(kind, status, None, InvalidResult.reason, message),
        )  # fmt: skip
        _pipeline_failed(world, plan, kind, resource, f"{kind.kind} {name} failed: InvalidResult")
        return failed
    projected = project_result(kind, parsed)
    mismatch = (
        _unreported_digest(kind, projected, termination())
        if (kind is TRAINING_RUN and projected.get("modelUri"))
        else None
    )
    if mismatch:
        conditions = condition(conditions, "Ready", False, "ModelDigestMismatch", mismatch)
        failed = write(
            Phase.FAILED, mismatch, jobName=job_name, runId=run, outputUri=uri, finishedAt=world.now
        )
        _pipeline_failed(
            world, plan, kind, resource, f"{kind.kind} {name} failed: ModelDigestMismatch"
        )
        return failed
    conditions = condition(conditions, "Ready", True, "Succeeded", summary_message(kind, projected))
    for type_, value, reason, message in result_conditions(kind, projected, parsed):
        conditions = condition(conditions, type_, value, reason, message)
    if kind is TRAINING_RUN and projected.get("modelUri"):
        projected["models"] = _with_model(status, projected, run, world.now)
    if kind is MODEL_MONITOR:
        projected.update(monitoring.after_success(resource.get("spec") or {}, status, projected))
        alerts = projected.get("alerts") or []
        for alert in alerts[:MAX_ALERT_EVENTS]:
            plan.events.append(("Warning", alert["type"], alert["message"]))
        if len(alerts) > MAX_ALERT_EVENTS:
            more = f"{len(alerts) - MAX_ALERT_EVENTS} more alerts: see status.alerts"
            plan.events.append(("Warning", "MoreAlerts", more))
        decided = monitors.retraining_after_window(
            world, plan, resource, status, projected, parsed, run
        )
        if isinstance(decided, monitors.Creating):
            return plan  # decided again once the candidate is created
        if decided is not None:
            projected.update(decided.pop("_fields", {}))
            for type_, value, reason, message in decided.pop("_conditions", []):
                conditions = condition(conditions, type_, value, reason, message)
            projected["retraining"] = decided
    write(
        Phase.SUCCEEDED,
        summary_message(kind, projected),
        jobName=job_name,
        runId=run,
        outputUri=uri,
        finishedAt=world.now,
        **projected,
    )
    _advance_pipeline(world, plan, kind, resource, projected)
    return plan


def _model_version(
    world: World,
    config: OperatorConfig,
    namespace: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    run: str,
) -> dict[str, Any]:
    """The version this run's model gets, and where it goes: never one given before.

    Chosen before the Job starts and kept in the status, so a restart or a retry of the same
    run keeps it. Taken: every version this TrainingRun trained, and every version folder in
    the registry (models of other resources with the same user and model id, including ones
    deleted since). The stage claims the folder for this run alone, so a race loses cleanly.
    """
    registry = model_registry_uri(config, namespace, spec.get("userId"), spec["modelId"])
    if status.get("runId") == run and status.get("modelVersion") and status.get("modelUri"):
        version = status["modelVersion"]
    else:
        taken = {str(record.get("version")) for record in status.get("models") or []}
        found = world.need(("names", registry), lambda r: r.names(registry))
        if isinstance(found, ArtifactStoreUnavailable):
            raise found
        version = next_version(spec.get("version") or "v1", taken | set(found))
    return {
        "modelId": spec["modelId"],
        "modelVersion": version,
        "modelUri": f"{registry}/{version}",
    }


# -- the pipeline a Dataset runs ---------------------------------------------------------------
def _pipeline_dataset(world: World, kind: Kind, resource: dict[str, Any]) -> dict[str, Any] | None:
    """The Dataset whose pipeline this resource is a step of: the one its owner reference
    names, by uid (`pipeline.dataset_by_reference`)."""
    if kind is DATASET:
        return resource

    def read(name: str) -> dict[str, Any] | None:
        return world.need(("get", DATASET.kind, name), lambda r: r.get(DATASET, name))

    return dataset_by_reference(dataset_owner(resource), read)


def _pipeline_status(plan: Outcome, dataset: dict[str, Any], state: str, message: str) -> None:
    meta = dataset["metadata"]
    patch = {"pipeline": state, "pipelineMessage": message}
    plan.writes.append(PatchStatus(DATASET, meta["namespace"], meta["name"], patch))


def _pipeline_failed(
    world: World, plan: Outcome, kind: Kind, resource: dict[str, Any], message: str
) -> None:
    """What a failed run tells the others: its pipeline failed, its monitor looks."""
    monitors.wake_owner(plan, kind, resource, world.now)
    dataset = _pipeline_dataset(world, kind, resource)
    if dataset is not None and (dataset.get("spec") or {}).get("pipeline"):
        _pipeline_status(plan, dataset, "Failed", message)


def _advance_pipeline(
    world: World, plan: Outcome, kind: Kind, resource: dict[str, Any], status: dict[str, Any]
) -> None:
    """What a run that succeeded tells the others: its pipeline's next step, its monitor."""
    monitors.wake_owner(plan, kind, resource, world.now)
    dataset = _pipeline_dataset(world, kind, resource)
    if dataset is None or not (dataset.get("spec") or {}).get("pipeline"):
        return
    step = next_resource(dataset, kind, status)
    if isinstance(step, str):
        plan.events.append(("Warning", "PipelineStopped", step))
        _pipeline_status(plan, dataset, "Stopped", step)
        return
    if step is None:
        _pipeline_status(plan, dataset, "Succeeded", "every stage succeeded")
        return
    if kind is DATASET:
        _pipeline_status(plan, dataset, "Running", f"next: {step['kind']}")
    step_name = step["metadata"]["name"]
    plan.writes.append(CreateResource(step))
    created = world.created.get((step["kind"], step_name))
    if created is None:
        return  # decided again once it is created
    if created:
        plan.events.append(("Normal", "PipelineStep", f"created {step['kind']} {step_name}"))
        return
    # The name was taken: by this pipeline's own step (a repeated event), or by a resource
    # someone else made, which the pipeline must neither adopt nor be steered by.
    step_kind = BY_KIND[step["kind"]]
    existing = world.need(("get", step_kind.kind, step_name), lambda r: r.get(step_kind, step_name))
    owner = dataset_owner(existing) if existing is not None else None
    if existing is not None and (owner or {}).get("uid") != dataset["metadata"].get("uid"):
        message = (
            f"{step['kind']} {step_name} exists and is not this pipeline's "
            "(no owner reference to this Dataset): delete or rename it, then re-apply"
        )
        plan.events.append(("Warning", "PipelineStopped", message))
        _pipeline_status(plan, dataset, "Failed", message)


def _unreported_digest(
    kind: Kind, projected: dict[str, Any], terminated: dict[str, Any] | None
) -> str | None:
    """Why the model's digest in result.json cannot be trusted, or None.

    result.json lives in the artifact store, and so does the model: whoever can write there
    could put in a model of theirs and its digest together. The train stage also reports the
    digest in its termination message, which only the kubelet writes into the pod's status.
    """
    try:
        reported = json.loads((terminated or {}).get("message") or "{}").get("modelDigest")
    except (ValueError, AttributeError):
        reported = None
    recorded = projected.get("modelDigest")
    if reported and reported == recorded:
        return None
    return (
        f"the model digest in result.json ({recorded}) is not the one the {kind.stage} pod "
        f"reported ({reported}): the artifact store was changed after the stage wrote it; "
        "the model is not used"
    )


def _keep_phase(
    plan: Outcome,
    kind: Kind,
    meta: dict[str, Any],
    status: dict[str, Any],
    conditions: list[dict[str, Any]],
    **fields: Any,
) -> Outcome:
    """Record a look that started nothing (conditions and times), the phase as it was."""
    patch = {"conditions": conditions, **fields}
    if not _same_status(status, patch):
        plan.writes.append(PatchStatus(kind, meta["namespace"], meta["name"], patch))
    plan.status = {**status, **patch}
    return plan


def _ready_reason(status: dict[str, Any]) -> str | None:
    return (condition_of(status, "Ready") or {}).get("reason")


def _with_model(
    status: dict[str, Any], projected: dict[str, Any], run: str, finished_at: str
) -> list[dict[str, Any]]:
    """The TrainingRun's model history with this run's model added (the last 100)."""
    history = [r for r in status.get("models") or [] if r.get("runId") != run]
    record = {
        "version": projected.get("modelVersion"),
        "modelUri": projected.get("modelUri"),
        "runId": run,
        "finishedAt": finished_at,
    }
    if projected.get("modelDigest"):
        # Each version keeps its own digest: an Explanation that pins it is checked against it.
        record["modelDigest"] = projected["modelDigest"]
    history.append(record)
    return history[-100:]


def _owned_by(job: dict[str, Any], uid: str | None) -> bool:
    owners = (job.get("metadata") or {}).get("ownerReferences") or []
    return uid is None or any(owner.get("uid") == uid for owner in owners)


def unreadable_source(
    config: OperatorConfig, namespace: str, spec: dict[str, Any]
) -> UnresolvedReference | None:
    """Why a ModelMonitor's batch prefix (`batches.uri`) may not be read by its namespace and
    user (as `references.check_uri` judges every location a job reads, links resolved), or
    None. Judged before the prefix is listed, not only once a window's batches are resolved:
    an empty prefix of another tenant would otherwise leave the monitor waiting for data, and
    a full one show that tenant's object names and times in its status."""
    uri = (spec.get("batches") or {}).get("uri")
    if not isinstance(uri, str):
        return None
    try:
        allowed = access.readable(config, namespace, spec.get("userId"))
        check_uri(uri, config, "batches.uri", allowed)
    except UnresolvedReference as refused:
        return refused
    return None
