"""Reconciling one resource: references -> Job -> status, and the pipeline's next step.

A plain function of what it reads; Kopf handlers call it on every change of the resource or
of its Job. It is idempotent: the Job's name is derived from the resource's generation, so a
restarted operator finds (adopts) the Job it created before and never creates a second one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fairpilot.api.kinds import DATASET, Kind
from fairpilot.conditions import failure, now, project_result, set_condition, summary_message
from fairpilot.config import OperatorConfig
from fairpilot.controller.cluster import Cluster
from fairpilot.jobs import GpuNotAllowed, build_job, object_name, output_uri, spec_config_map
from fairpilot.pipeline import next_resource
from fairpilot.references import UnresolvedReference, job_spec

log = logging.getLogger(__name__)
TERMINAL = ("Succeeded", "Failed")


@dataclass
class Outcome:
    """What a reconciliation did: the status it wrote and the events to post."""

    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    waiting: bool = False
    # The resource (kind, name, same namespace) it waits for: reconcile it again once that
    # one ends, rather than only when the retry comes round.
    waiting_on: tuple[str, str] | None = None


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


def _lookup(cluster: Cluster, namespace: str):
    return lambda kind, name: cluster.get(kind, namespace, name)


def reconcile(
    kind: Kind,
    resource: dict[str, Any],
    cluster: Cluster,
    config: OperatorConfig,
    job: dict[str, Any] | None = None,
) -> Outcome:
    """Move one resource forward. `job`: its current Job when the caller has it at hand
    (a Job event carries it), which saves reading it back; the name must match."""
    meta = resource["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], int(meta.get("generation") or 1)
    status = dict(resource.get("status") or {})
    conditions = list(status.get("conditions") or [])
    outcome = Outcome()
    if status.get("observedGeneration") == generation and status.get("phase") in TERMINAL:
        return outcome  # this generation is done; a spec change starts the next one

    def write(phase: str, message: str, **fields: Any) -> Outcome:
        patch = {
            "phase": phase,
            "message": message,
            "observedGeneration": generation,
            "conditions": conditions,
            **fields,
        }
        if status.get("phase") != phase:
            outcome.events.append(("Normal" if phase != "Failed" else "Warning", phase, message))
        # A write that changes nothing (the same Pending at every retry of a wait) is skipped:
        # each would cost the API server a write and every watcher an event.
        if not _same_status(status, patch):
            cluster.patch_status(kind, namespace, name, patch)
        outcome.status = patch
        return outcome

    job_name = object_name(kind, name, generation)
    if job is None or job.get("metadata", {}).get("name") != job_name:
        if status.get("jobName") != job_name:
            # About to start this generation's Job, writing Running first. The body may be
            # older than the resource: under load a handler runs on the body of the event that
            # queued it, and Running written from it would overwrite the Succeeded written
            # meanwhile (bench_soak saw it). One read of the resource settles it.
            fresh = cluster.get(kind, namespace, name)
            if fresh is None:
                return outcome
            current = fresh.get("status") or {}
            if current.get("observedGeneration") == generation and current.get("phase") in TERMINAL:
                return outcome
            if current.get("jobName") == job_name:
                status = dict(current)
                conditions = list(status.get("conditions") or [])
        # The status names the Job before the Job is created (below), so only a status that
        # names it can have one to read: a new resource costs no read that would 404.
        job = cluster.get_job(namespace, job_name) if status.get("jobName") == job_name else None
    if job is None:
        try:
            spec = job_spec(kind, resource.get("spec") or {}, _lookup(cluster, namespace), name)
            manifest = build_job(
                kind, {**resource, "metadata": {**meta, "generation": generation}}, config
            )
        except UnresolvedReference as exc:
            conditions = set_condition(
                conditions, "ReferencesResolved", False, exc.reason, exc.message, generation
            )
            if exc.waiting:
                outcome.waiting, outcome.waiting_on = True, exc.on
                return write("Pending", exc.message)
            conditions = set_condition(
                conditions, "Ready", False, exc.reason, exc.message, generation
            )
            return write("Failed", exc.message)
        except GpuNotAllowed as exc:
            conditions = set_condition(
                conditions, "Ready", False, "GpuNotAllowed", str(exc), generation
            )
            return write("Failed", str(exc))
        conditions = set_condition(
            conditions,
            "ReferencesResolved",
            True,
            "Resolved",
            "all references resolved",
            generation,
        )
        conditions = set_condition(
            conditions, "Ready", False, "JobRunning", f"Job {job_name} is running", generation
        )
        # Status first, then the Job: a Job can finish before the create call returns here
        # (its end is reconciled from the Job's own event), and a Running written after that
        # would overwrite Succeeded. If the create fails, Kopf retries and this path runs again.
        running = write(
            "Running",
            f"Job {job_name} started",
            jobName=job_name,
            outputUri=output_uri(config, kind, resource),
            startedAt=now(),
        )
        if cluster.create_job(spec_config_map(kind, resource, spec), manifest):
            return running
        # It was there already (a status written by someone else, or lost): adopt it and go on
        # from wherever it is, since a Job that has already finished sends no further event.
        log.info("%s %s/%s: adopted the existing Job %s", kind.kind, namespace, name, job_name)
        status = {**status, **running.status}
        job = cluster.get_job(namespace, job_name)
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
        conditions = set_condition(
            conditions, "Ready", False, "PreviousJobPresent", message, generation
        )
        outcome.waiting = True
        return write("Pending", message)

    state = job_state(job)
    uri = output_uri(config, kind, resource)

    if state == "running":
        if status.get("phase") != "Running" or status.get("jobName") != job_name:
            conditions = set_condition(
                conditions, "Ready", False, "JobRunning", f"Job {job_name} is running", generation
            )
            return write("Running", f"Job {job_name} running", jobName=job_name, outputUri=uri)
        return outcome
    if state == "failed":
        try:
            error = _read_json(f"{uri}/error.json")
        except ArtifactStoreUnavailable:
            error = None  # the pod's termination message carries the same reason
        reason, message = failure(error, cluster.termination(namespace, job_name), job)
        conditions = set_condition(conditions, "Ready", False, reason, message, generation)
        failed = write(
            "Failed", f"{reason}: {message}", jobName=job_name, outputUri=uri, finishedAt=now()
        )
        _pipeline_failed(kind, resource, f"{kind.kind} {name} failed: {reason}", cluster)
        return failed
    try:
        result = _read_json(f"{uri}/result.json")
    except ArtifactStoreUnavailable as exc:
        # The Job ended but what it wrote cannot be read yet: stay Running and say so; the
        # caller retries. Deciding now would fail a stage that may well have succeeded.
        message = f"Job {job_name} ended; waiting to read its result: {exc}"
        conditions = set_condition(
            conditions, "Ready", False, "ArtifactStoreUnavailable", message, generation
        )
        outcome.waiting = True
        return write("Running", message, jobName=job_name, outputUri=uri)
    if result is None:
        message = f"Job {job_name} succeeded but wrote no result.json under {uri}"
        conditions = set_condition(conditions, "Ready", False, "NoResult", message, generation)
        return write("Failed", message, jobName=job_name, outputUri=uri, finishedAt=now())
    projected = project_result(kind, result)
    conditions = set_condition(
        conditions, "Ready", True, "Succeeded", summary_message(kind, projected), generation
    )
    if kind.kind == "BiasAnalysis":
        detected = bool(projected.get("biasDetected"))
        findings = "; ".join(projected.get("findings") or []) or "no threshold crossed"
        conditions = set_condition(
            conditions,
            "BiasDetected",
            detected,
            "ThresholdCrossed" if detected else "WithinThresholds",
            findings,
            generation,
        )
    if kind.kind == "TrainingRun" and projected.get("validationPassed") is not None:
        passed = bool(projected["validationPassed"])
        conditions = set_condition(
            conditions,
            "ValidationPassed",
            passed,
            "Passed" if passed else "BelowThreshold",
            "validation threshold",
            generation,
        )
    outcome = write(
        "Succeeded",
        summary_message(kind, projected),
        jobName=job_name,
        outputUri=uri,
        finishedAt=now(),
        **projected,
    )
    _advance_pipeline(kind, resource, projected, cluster, outcome)
    return outcome


def _owned_by(job: dict[str, Any], uid: str | None) -> bool:
    owners = (job.get("metadata") or {}).get("ownerReferences") or []
    return uid is None or any(owner.get("uid") == uid for owner in owners)


def _advance_pipeline(
    kind: Kind, resource: dict[str, Any], status: dict[str, Any], cluster: Cluster, outcome: Outcome
) -> None:
    dataset = _pipeline_dataset(kind, resource, cluster)
    if dataset is None or not (dataset.get("spec") or {}).get("pipeline"):
        return
    step = next_resource(dataset, kind, status)
    if isinstance(step, str):
        outcome.events.append(("Warning", "PipelineStopped", step))
        _pipeline_status(dataset, cluster, "Stopped", step)
    elif step is None:
        _pipeline_status(dataset, cluster, "Succeeded", "every stage succeeded")
    else:
        if kind is DATASET:
            _pipeline_status(dataset, cluster, "Running", f"next: {step['kind']}")
        if cluster.create_resource(step):
            created = f"created {step['kind']} {step['metadata']['name']}"
            outcome.events.append(("Normal", "PipelineStep", created))


def _pipeline_dataset(
    kind: Kind, resource: dict[str, Any], cluster: Cluster
) -> dict[str, Any] | None:
    meta = resource["metadata"]
    if kind is DATASET:
        return resource
    owner = (meta.get("labels") or {}).get("fairpilot.io/pipeline")
    return cluster.get(DATASET, meta["namespace"], owner) if owner else None


def _pipeline_status(dataset: dict[str, Any], cluster: Cluster, state: str, message: str) -> None:
    meta = dataset["metadata"]
    patch = {"pipeline": state, "pipelineMessage": message}
    cluster.patch_status(DATASET, meta["namespace"], meta["name"], patch)


def _pipeline_failed(kind: Kind, resource: dict[str, Any], message: str, cluster: Cluster) -> None:
    dataset = _pipeline_dataset(kind, resource, cluster)
    if dataset is not None and (dataset.get("spec") or {}).get("pipeline"):
        _pipeline_status(dataset, cluster, "Failed", message)


class ArtifactStoreUnavailable(Exception):
    """The artifact store (S3) did not answer; reading again later may succeed."""


def _read_json(uri: str) -> dict[str, Any] | None:
    """The stage's JSON file, None when there is none; raises when the store is unreachable."""
    from fairpilot_jobs import artifacts
    from fairpilot_jobs.errors import JobError

    try:
        return artifacts.read_json(uri)
    except JobError as exc:
        if exc.reason in ("NotFound", "InvalidJSON"):
            return None
        raise ArtifactStoreUnavailable(f"{exc.reason}: {exc.message}") from exc
