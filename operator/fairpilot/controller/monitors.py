"""A ModelMonitor's part of a reconciliation: its window's batches and models, what a failed
window leaves, and its gated retraining. The rules are plain functions in fairpilot.monitoring;
these turn them into reads (Need) and writes on the plan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fairpilot import API_GROUP, API_VERSION, monitoring
from fairpilot.api.kinds import MODEL_MONITOR, TRAINING_RUN, Kind
from fairpilot.artifacts import Listed
from fairpilot.controller.world import (
    ArtifactStoreUnavailable,
    CreateResource,
    Outcome,
    PatchLabels,
    PatchStatus,
    Reader,
    World,
)
from fairpilot.jobs import owned_by

ARCHIVED = "fairpilot.io/archived"  # the label of a candidate a monitor archived


# -- a ModelMonitor's gated retraining (monitoring.py holds the rules) ---------------------------
class Creating:
    """A candidate is being created: decide() is asked again once it is."""


CREATING = Creating()


def start_candidate(
    world: World,
    plan: Outcome,
    resource: dict[str, Any],
    status: dict[str, Any],
    reason: str,
) -> dict[str, Any] | Creating | None:
    """Create the next candidate TrainingRun; its status.retraining once it exists, CREATING
    while the create is to be made, None when it cannot be (the watched TrainingRun is gone,
    or a resource of another owner holds the name).

    The create is the plan's first write (nothing before it in this pass): act() applies it and
    decide() runs again with it recorded, so the status write that follows names a candidate
    that exists; a crash in between leaves a candidate that the next look adopts by name."""
    spec, meta = resource.get("spec") or {}, resource["metadata"]
    watched_name = monitoring.watched_run(spec, status)
    watched = world.need(
        ("get", TRAINING_RUN.kind, watched_name), lambda r: r.get(TRAINING_RUN, watched_name)
    )
    if watched is None:
        plan.events.append(("Warning", "RetrainingNotStarted", f"{watched_name} is gone"))
        return None
    number = int((status.get("retraining") or {}).get("started") or 0) + 1
    candidate = monitoring.candidate_resource(resource, watched, number)
    name = candidate["metadata"]["name"]
    plan.writes.append(CreateResource(candidate))
    created = world.created.get((TRAINING_RUN.kind, name))
    if created is None:
        return CREATING
    if created is False:
        existing = world.need(("get", TRAINING_RUN.kind, name), lambda r: r.get(TRAINING_RUN, name))
        if existing is None or not owned_by(existing, meta.get("uid")):
            message = f"TrainingRun {name} exists and is not this monitor's: rename or delete it"
            plan.events.append(("Warning", "RetrainingNotStarted", message))
            return None
    plan.events.append(("Normal", "RetrainingStarted", f"TrainingRun {name}: {reason}"))
    return monitoring.started(status, name, reason, world.now)


def retraining_at_look(
    world: World,
    plan: Outcome,
    resource: dict[str, Any],
    status: dict[str, Any],
    raised: dict[str, str],
    at: datetime,
) -> dict[str, Any] | Creating | None:
    """At a look: follow a training candidate (Comparing once it trained, Refused if it
    failed), and start one when DataStale or the schedule calls for it. The new
    status.retraining, None when nothing changed, or CREATING."""
    spec = resource.get("spec") or {}
    if not spec.get("retraining"):
        return None
    retraining = status.get("retraining") or {}
    candidate = retraining.get("candidate") or {}
    meta = resource["metadata"]
    if candidate.get("state") == "Comparing" and own_run(world, meta, candidate["name"]) is None:
        refused = monitoring.decided(
            retraining, candidate | {"state": "Refused", "decidedAt": world.now,
                                     "message": monitoring.GONE})  # fmt: skip
        plan.events.append(
            ("Warning", "CandidateRefused", f"{candidate['name']}: {monitoring.GONE}")
        )
        return refused
    if candidate.get("state") == "Training":
        name = candidate["name"]
        run = own_run(world, meta, name)
        followed = monitoring.trained(status, run, world.now)
        if followed is not None:
            verdict = (followed.get("candidate") or {}).get("state") or "Refused"
            said = (followed.get("candidate") or {}).get("message") or (
                followed["candidates"][-1].get("message")
            )
            severity = "Normal" if verdict == "Comparing" else "Warning"
            plan.events.append((severity, f"Candidate{verdict}", f"{name}: {said}"))
            return followed
        return None
    created = monitoring.parse_time(resource["metadata"].get("creationTimestamp"))
    reason = monitoring.retrain_reason(spec, status, raised, at, created)
    if reason is None:
        return None
    return start_candidate(world, plan, resource, status, reason)


def retraining_after_window(
    world: World,
    plan: Outcome,
    resource: dict[str, Any],
    status: dict[str, Any],
    projected: dict[str, Any],
    parsed: Any,
    run: str,
) -> dict[str, Any] | Creating | None:
    """After a measured window: decide a compared candidate (promote or refuse), or start one
    when the window raised a trigger. The new status.retraining (with `_fields`, more status
    fields, and `_conditions` to set), None when nothing changed, or CREATING."""
    spec = resource.get("spec") or {}
    if not spec.get("retraining"):
        return None
    retraining = dict(status.get("retraining") or {})
    candidate = dict(retraining.get("candidate") or {})
    score = getattr(parsed, "candidate", None)
    if candidate.get("state") == "Comparing" and score is not None and score.measured:
        scored = score.model_dump(by_alias=True, mode="json")
        window = int(projected.get("window") or 0)
        promoted, message = monitoring.verdict(spec, candidate, scored, window)
        candidate |= {
            "state": "Promoted" if promoted else "Refused",
            "decidedAt": world.now,
            "decidedBy": run,
            "metric": scored.get("metric"),
            "score": scored.get("score"),
            "currentScore": scored.get("currentScore"),
            "rows": scored.get("rows"),
            "window": window,
            "message": message,
        }
        fields: dict[str, Any] = {}
        if promoted:
            fields["watched"] = {
                "trainingRun": candidate["name"],
                "modelVersion": candidate.get("modelVersion"),
                "promotedAt": world.now,
            }
        watched = candidate["name"] if promoted else monitoring.watched_run(spec, status)
        after = monitoring.archived(spec, monitoring.decided(retraining, candidate), watched)
        before = {
            c["name"] for c in retraining.get("candidates") or [] if c.get("state") == "Archived"
        }
        for each in after["candidates"]:
            if each.get("state") == "Archived" and each["name"] not in before:
                plan.writes.append(PatchLabels(TRAINING_RUN, resource["metadata"]["namespace"],
                                               each["name"], {ARCHIVED: "true"}))  # fmt: skip
        said = f"{candidate['name']}: {message}"
        outcome = "CandidatePromoted" if promoted else "CandidateRefused"
        plan.events.append(("Normal" if promoted else "Warning", outcome, said))
        return {**after, "_fields": fields, "_conditions": [("Promoted", promoted, outcome, said)]}
    raised = {str(a["type"]): str(a["message"]) for a in projected.get("alerts") or []}
    created = monitoring.parse_time(resource["metadata"].get("creationTimestamp"))
    at = datetime.fromisoformat(world.now.replace("Z", "+00:00"))
    why = monitoring.retrain_reason(spec, status, raised, at, created)
    if why is None:
        return None
    return start_candidate(
        world, plan, resource, status, f"window {projected.get('window')}: {why}"
    )


def models_of_window(world: World, meta: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """What a ModelMonitor's window scores besides its batches: the promoted TrainingRun (if
    retraining promoted one; references checks it is still the monitor's, `owner`) and a
    trained candidate to compare with it, if that is still the monitor's own."""
    found: dict[str, Any] = {}
    watched = (status.get("watched") or {}).get("trainingRun")
    if watched:
        found |= {"trainingRun": watched, "owner": meta.get("uid")}
    candidate = ((status.get("retraining") or {}).get("candidate")) or {}
    if candidate.get("state") == "Comparing":
        run = own_run(world, meta, candidate["name"])
        run_status = (run or {}).get("status") or {}
        if run_status.get("modelUri") and run_status.get("modelDigest"):
            found["candidate"] = {
                "uri": run_status["modelUri"],
                "digest": run_status["modelDigest"],
            }
    return found


def wake_owner(plan: Outcome, kind: Kind, resource: dict[str, Any], now: str) -> None:
    """A retraining candidate that ended asks its monitor to look (`wakeRequestedAt`): it
    follows the candidate at its next tick rather than at its next scheduled look."""
    if kind is not TRAINING_RUN:
        return
    meta = resource["metadata"]
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == MODEL_MONITOR.kind and owner.get("apiVersion") == (
            f"{API_GROUP}/{API_VERSION}"
        ):
            patch = {"wakeRequestedAt": now}
            plan.writes.append(PatchStatus(MODEL_MONITOR, meta["namespace"], owner["name"], patch))


def listing_of(prefix: str) -> Callable[[Reader], list[Listed] | ArtifactStoreUnavailable]:
    return lambda reader: reader.listing(prefix)


def window_of(
    kind: Kind, spec: dict[str, Any], status: dict[str, Any], window: monitoring.Window | None
) -> dict[str, Any] | None:
    """A ModelMonitor's window as its job spec gets it: the one just chosen, or (a restart
    before its Job was created) the one its status records."""
    if kind is not MODEL_MONITOR:
        return None
    if window is not None:
        batches, number = window.batches, window.number
    else:
        batches = [{"uri": uri} for uri in status.get("pending") or []]
        number = int(status.get("window") or 1)
    return {"batches": batches, "window": number, "history": monitoring.history(spec, status)}


def failed_window(
    kind: Kind, status: dict[str, Any], error: Any, reason: str, message: str
) -> dict[str, Any]:
    """What a ModelMonitor's failed window leaves for the next (monitoring.after_failure)."""
    if kind is not MODEL_MONITOR:
        return {}
    return monitoring.after_failure(
        status, error if isinstance(error, dict) else None, reason, message
    )


def own_run(world: World, meta: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The TrainingRun `name` if it is this monitor's (an owner reference with its uid); None
    when it is gone or someone else's. A candidate deleted and made again under its name by
    anyone who may create TrainingRuns is never followed, scored or promoted."""
    run = world.need(("get", TRAINING_RUN.kind, name), lambda r: r.get(TRAINING_RUN, name))
    return run if run is not None and owned_by(run, meta.get("uid")) else None
