"""Reconciling one resource: references -> Job -> status, and the pipeline's next step.

A plain function of what it reads; Kopf handlers call it on every change of the resource or
of its Job, and of an input it used. It is idempotent: the Job's name is derived from the
run (`runs.py`: the spec generation, and a re-run number after an input changed), which the
status records before the Job is created, so a restarted operator finds (adopts) the Job it
created before and never creates a second one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fairpilot.api.kinds import BY_KIND, DATASET, TRAINING_RUN, Kind
from fairpilot.cluster import Cluster
from fairpilot.conditions import (
    condition_of,
    failure,
    now,
    project_result,
    result_conditions,
    set_condition,
    summary_message,
)
from fairpilot.config import OperatorConfig
from fairpilot.freshness import check
from fairpilot.jobs import GpuNotAllowed, build_job, object_name, spec_config_map
from fairpilot.pipeline import next_resource
from fairpilot.references import UnresolvedReference, resolve
from fairpilot.runs import (
    current_run,
    model_registry_uri,
    next_version,
    output_uri,
    parse_run,
    run_id,
)

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
    run = current_run(status, generation)
    lookup = _lookup(cluster, namespace)

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

    finished = status.get("observedGeneration") == generation and status.get("phase") in TERMINAL
    fresh_start = False
    if finished:
        if _ready_reason(status) == "ReferenceFailed":
            # Failed because a reference had failed: no Job ran, so look again (this is a
            # wake-up from that reference, or a restart) with the same run.
            pass
        elif not status.get("inputs"):
            return outcome  # done, and it used no other resource
        else:
            # This run is done; it is run again only when an input it used changed since.
            fresh = cluster.get(kind, namespace, name)
            if fresh is None:
                return outcome
            verdict = check(fresh, lookup)
            if verdict is None:
                return outcome
            status = dict(fresh.get("status") or {})
            conditions = list(status.get("conditions") or [])
            conditions = set_condition(
                conditions, "UpToDate", verdict.up_to_date, verdict.reason, verdict.message,
                generation,
            )  # fmt: skip
            outcome.waiting_on = verdict.waiting_on
            if not (verdict.rerun and config.follow_inputs):
                if not _same_status(status, {"conditions": conditions}):
                    cluster.patch_status(kind, namespace, name, {"conditions": conditions})
                outcome.status = {**status, "conditions": conditions}
                return outcome
            _, rerun = parse_run(current_run(status, generation))
            run = run_id(generation, rerun + 1)
            outcome.events.append(("Normal", "InputChanged", f"{verdict.message}: re-running"))
            resource = fresh
            fresh_start = True

    job_name = object_name(kind, name, run)
    if not fresh_start and (job is None or job.get("metadata", {}).get("name") != job_name):
        if status.get("jobName") != job_name:
            # About to start this run's Job, writing Running first. The body may be older
            # than the resource: under load a handler runs on the body of the event that
            # queued it, and Running written from it would overwrite the Succeeded written
            # meanwhile (bench_soak saw it). One read of the resource settles it.
            fresh = cluster.get(kind, namespace, name)
            if fresh is None:
                return outcome
            current = fresh.get("status") or {}
            if (
                current.get("observedGeneration") == generation
                and current.get("phase") in TERMINAL
                and _ready_reason(current) != "ReferenceFailed"
            ):
                return outcome
            if current.get("jobName") == job_name:
                status = dict(current)
                conditions = list(status.get("conditions") or [])
        # The status names the Job before the Job is created (below), so only a status that
        # names it can have one to read: a new resource costs no read that would 404.
        job = cluster.get_job(namespace, job_name) if status.get("jobName") == job_name else None
    elif fresh_start:
        job = None
    if job is None:
        versioned: dict[str, Any] = {}
        try:
            resolved = resolve(
                kind, resource.get("spec") or {}, lookup, name, config, namespace=namespace
            )
            spec = resolved.spec
            if kind is TRAINING_RUN:
                versioned = _model_version(config, namespace, spec, status, run)
                spec = {**spec, "version": versioned["modelVersion"],
                        "modelOutput": {"uri": versioned["modelUri"]}}  # fmt: skip
            manifest = build_job(
                kind,
                {**resource, "metadata": {**meta, "generation": generation}},
                config,
                run,
                model_digest=(spec.get("model") or {}).get("digest"),
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
        except ArtifactStoreUnavailable as exc:
            message = f"waiting for the artifact store to choose the model's version: {exc}"
            conditions = set_condition(
                conditions, "Ready", False, "ArtifactStoreUnavailable", message, generation
            )
            outcome.waiting = True
            return write("Pending", message)
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
        if resolved.inputs:
            conditions = set_condition(
                conditions, "UpToDate", True, "InputsUnchanged",
                "every input is as this run uses it", generation,
            )  # fmt: skip
        # Status first, then the Job: a Job can finish before the create call returns here
        # (its end is reconciled from the Job's own event), and a Running written after that
        # would overwrite Succeeded. If the create fails, Kopf retries and this path runs again.
        running = write(
            "Running",
            f"Job {job_name} started",
            jobName=job_name,
            runId=run,
            inputs=resolved.inputs,
            outputUri=output_uri(config, kind, resource, run),
            startedAt=now(),
            finishedAt=None,
            **versioned,
        )
        if cluster.create_job(spec_config_map(kind, resource, spec, run), manifest):
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
    # Where this run writes, as recorded when it started (the artifact root may have been
    # configured otherwise since).
    uri = (
        status["outputUri"]
        if status.get("jobName") == job_name and status.get("outputUri")
        else output_uri(config, kind, resource, run)
    )

    if state == "running":
        if status.get("phase") != "Running" or status.get("jobName") != job_name:
            conditions = set_condition(
                conditions, "Ready", False, "JobRunning", f"Job {job_name} is running", generation
            )
            return write(
                "Running", f"Job {job_name} running", jobName=job_name, runId=run, outputUri=uri
            )
        return outcome
    if state == "failed":
        try:
            error = _read_json(f"{uri}/error.json")
        except ArtifactStoreUnavailable:
            error = None  # the pod's termination message carries the same reason
        reason, message = failure(error, cluster.termination(namespace, job_name), job)
        conditions = set_condition(conditions, "Ready", False, reason, message, generation)
        failed = write(
            "Failed",
            f"{reason}: {message}",
            jobName=job_name,
            runId=run,
            outputUri=uri,
            finishedAt=now(),
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
        return write("Running", message, jobName=job_name, runId=run, outputUri=uri)
    if result is None:
        message = f"Job {job_name} succeeded but wrote no result.json under {uri}"
        conditions = set_condition(conditions, "Ready", False, "NoResult", message, generation)
        return write(
            "Failed", message, jobName=job_name, runId=run, outputUri=uri, finishedAt=now()
        )
    projected = project_result(kind, result)
    mismatch = (
        _unreported_digest(kind, projected, cluster.termination(namespace, job_name))
        if (kind is TRAINING_RUN and projected.get("modelUri"))
        else None
    )
    if mismatch:
        conditions = set_condition(
            conditions, "Ready", False, "ModelDigestMismatch", mismatch, generation
        )
        failed = write(
            "Failed", mismatch, jobName=job_name, runId=run, outputUri=uri, finishedAt=now()
        )
        _pipeline_failed(kind, resource, f"{kind.kind} {name} failed: ModelDigestMismatch", cluster)
        return failed
    finished_at = now()
    conditions = set_condition(
        conditions, "Ready", True, "Succeeded", summary_message(kind, projected), generation
    )
    for type_, value, reason, message in result_conditions(kind, projected, result):
        conditions = set_condition(conditions, type_, value, reason, message, generation)
    if kind is TRAINING_RUN and projected.get("modelUri"):
        projected["models"] = _with_model(status, projected, run, finished_at)
    outcome = write(
        "Succeeded",
        summary_message(kind, projected),
        jobName=job_name,
        runId=run,
        outputUri=uri,
        finishedAt=finished_at,
        **projected,
    )
    _advance_pipeline(kind, resource, projected, cluster, outcome)
    return outcome


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


def _ready_reason(status: dict[str, Any]) -> str | None:
    return (condition_of(status, "Ready") or {}).get("reason")


def _model_version(
    config: OperatorConfig, namespace: str, spec: dict[str, Any], status: dict[str, Any], run: str
) -> dict[str, Any]:
    """The version this run's model gets, and where it goes: never one given before.

    Chosen before the Job starts and kept in the status, so a restart or a retry of the same
    run keeps it. Taken: every version this TrainingRun trained, and every version folder in
    the registry (models of other resources with the same user and model id, including ones
    deleted since). The stage claims the folder for this run alone, so a race loses cleanly.
    """
    from fairpilot import artifacts
    from fairpilot.errors import JobError

    registry = model_registry_uri(config, namespace, spec.get("userId"), spec["modelId"])
    if status.get("runId") == run and status.get("modelVersion") and status.get("modelUri"):
        version = status["modelVersion"]
    else:
        taken = {str(record.get("version")) for record in status.get("models") or []}
        try:
            taken |= set(artifacts.names(registry))
        except JobError as exc:
            raise ArtifactStoreUnavailable(f"{exc.reason}: {exc.message}") from exc
        version = next_version(spec.get("version") or "v1", taken)
    return {
        "modelId": spec["modelId"],
        "modelVersion": version,
        "modelUri": f"{registry}/{version}",
    }


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
            return
        # The name was taken: by this pipeline's own step (a repeated event), or by a resource
        # someone else made, which the pipeline must neither adopt nor be steered by.
        step_kind = BY_KIND[step["kind"]]
        existing = cluster.get(step_kind, step["metadata"]["namespace"], step["metadata"]["name"])
        owner = _dataset_owner(existing) if existing is not None else None
        if existing is not None and (owner or {}).get("uid") != dataset["metadata"].get("uid"):
            message = (
                f"{step['kind']} {step['metadata']['name']} exists and is not this pipeline's "
                "(no owner reference to this Dataset): delete or rename it, then re-apply"
            )
            outcome.events.append(("Warning", "PipelineStopped", message))
            _pipeline_status(dataset, cluster, "Failed", message)


def _pipeline_dataset(
    kind: Kind, resource: dict[str, Any], cluster: Cluster
) -> dict[str, Any] | None:
    """The Dataset whose pipeline this resource is a step of: the one its owner reference
    names, by uid. A label says nothing here: anyone who can create a resource can give it
    any label, and so could finish, fail or steer another's pipeline."""
    meta = resource["metadata"]
    if kind is DATASET:
        return resource
    owner = _dataset_owner(resource)
    if owner is None or not owner.get("name"):
        return None
    dataset = cluster.get(DATASET, meta["namespace"], owner["name"])
    if dataset is None or dataset["metadata"].get("uid") != owner.get("uid"):
        return None  # deleted, or re-created: another Dataset under the same name
    return dataset


def _dataset_owner(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The owner reference to a Dataset, if `resource` has one."""
    for ref in (resource.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == DATASET.kind and ref.get("apiVersion") == DATASET.api_version:
            return ref
    return None


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
    from fairpilot import artifacts
    from fairpilot.errors import JobError

    try:
        return artifacts.read_json(uri)
    except JobError as exc:
        if exc.reason in ("NotFound", "InvalidJSON", "UnsafePath"):  # a planted link: no result
            return None
        raise ArtifactStoreUnavailable(f"{exc.reason}: {exc.message}") from exc
