"""A ModelMonitor's clock and windows: when to look, which batches are new, whether the data
has gone stale, and what a window that failed leaves for the next one.

Plain functions of the monitor's spec and status, a listing of its prefix and the time; the
reconciler (controller/reconcile.py) reads the listing and writes what these decide.

Which batches are new. The status keeps a mark, `taken`: the (time, URI) of the newest batch a
window has taken. A batch listed after it, by time and then by URI, is new. A batch younger
than SETTLE_SECONDS waits for the next look: S3 lists times to the second, so a batch written
in the same second as the mark but sorting before it would otherwise be passed over for good,
and a file still being copied would be read half-written (write batches under a name starting
with '.' and rename them, or upload them to S3, where an object appears whole).

Nothing is lost. Every batch either lands in a window, whose result lists it (measured or
rejected with the reason), or, when its window failed because of the batches themselves (an
input error), in `status.rejected` with that window's reason. A window that failed for any
other reason (the store was down, the pod ran out of memory) is tried again with the same
batches at the next look, MAX_ATTEMPTS times in all, and only then recorded as rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fairpilot.api.monitor import MAX_HISTORY
from fairpilot.api.status import Phase
from fairpilot.artifacts import Listed
from fairpilot.runs import parse_run, run_id

SETTLE_SECONDS = 5.0
KAFKA_LOOK_SECONDS = 60
MAX_ATTEMPTS = 3
MAX_REJECTED = 200
# The stage's exit code for an input error (fairpilot_jobs.cli): trying again cannot help.
INPUT_ERROR = 2


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time as the status writes it (`2026-12-02T07:30:00Z`, with or without
    fractions of a second)."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, to the microsecond: a batch's time must survive the status unchanged,
    or the mark would fall before the batch it marks and take it twice."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def idle(status: dict[str, Any], generation: int) -> bool:
    """No window of this generation is running (one of an older spec may be: its result is
    not this generation's, and the new spec starts windows of its own)."""
    return status.get("observedGeneration") != generation or status.get("phase") != Phase.RUNNING


def looks(spec: dict[str, Any], status: dict[str, Any], generation: int, now: datetime) -> bool:
    """Whether to look for new batches now: no window is running and it is due, or the spec
    changed (a new generation starts with a look)."""
    if not idle(status, generation):
        return False
    return status.get("observedGeneration") != generation or due(spec, status, now)


def prefixes(spec: dict[str, Any], records: str) -> list[str]:
    """Where a monitor's new data is: its batch prefix, and (spec.kafka) the folder the bridge
    writes its windows of prediction records to."""
    found = [spec["batches"]["uri"]] if (spec.get("batches") or {}).get("uri") else []
    return found + ([records] if spec.get("kafka") else [])


def next_look(source: dict[str, Any] | None, last_checked: datetime | None) -> datetime | None:
    """When to look for new batches next; None: now (it never looked). A monitor of Kafka
    records alone looks every KAFKA_LOOK_SECONDS (the bridge also wakes it when it writes a
    window)."""
    if last_checked is None:
        return None
    if source is None:
        return last_checked + timedelta(seconds=KAFKA_LOOK_SECONDS)
    schedule = source.get("schedule")
    if schedule:
        from croniter import croniter

        return croniter(schedule, last_checked).get_next(datetime).astimezone(UTC)
    return last_checked + timedelta(seconds=int(source.get("intervalSeconds") or 300))


def due(spec: dict[str, Any], status: dict[str, Any], now: datetime) -> bool:
    """Whether it is time to look: always when it never looked (or failed to), when its
    schedule says so, and when a look was asked for since the last (`wakeRequestedAt`)."""
    last = parse_time(status.get("lastCheckedAt"))
    wake = parse_time(status.get("wakeRequestedAt"))
    # Times are to the second: a look in the same second as the request may have come before
    # it, so that one looks again (once: that look's own time is later).
    if wake is not None and wake <= now and (last is None or wake >= last):
        return True
    after = next_look(spec.get("batches"), last)
    return after is None or after <= now


@dataclass(frozen=True)
class Window:
    """The batches of the next window, and the status fields that record taking them."""

    number: int
    batches: list[dict[str, Any]] = field(default_factory=list)  # api.monitor.Batch, camelCase
    taken: dict[str, str] | None = None  # the new mark
    attempt: int = 1

    @property
    def uris(self) -> list[str]:
        return [batch["uri"] for batch in self.batches]


def mark(status: dict[str, Any]) -> tuple[datetime, str] | None:
    taken = status.get("taken") or {}
    moment = parse_time(taken.get("modifiedAt"))
    return None if moment is None else (moment, str(taken.get("uri") or ""))


def next_window(
    spec: dict[str, Any], status: dict[str, Any], listed: list[Listed], now: datetime
) -> Window:
    """The next window: a failed window's batches to try again (first), then the new ones,
    at most `batches.maxBatchesPerWindow` in all. Empty when there is nothing to measure."""
    source = spec.get("batches") or {}
    limit = int(source.get("maxBatchesPerWindow") or 100)
    prefix = str(source.get("uri") or "\0")

    def fmt(uri: str) -> dict[str, str]:
        # The batch source's format is its batches'; the bridge's record windows are JSON lines.
        return (
            {"format": source["format"]} if source.get("format") and uri.startswith(prefix) else {}
        )

    retry = [{"uri": uri, **fmt(uri)} for uri in status.get("pending") or []][:limit]
    since = mark(status)
    fresh = [
        item
        for item in listed
        if (now - item.modified).total_seconds() >= SETTLE_SECONDS
        and (since is None or (item.modified, item.uri) > since)
        and item.uri not in status.get("pending", [])
    ][: limit - len(retry)]
    batches = retry + [
        {"uri": item.uri, "modifiedAt": format_time(item.modified), **fmt(item.uri)}
        for item in fresh
    ]
    taken = (
        {"modifiedAt": format_time(fresh[-1].modified), "uri": fresh[-1].uri}
        if fresh
        else status.get("taken")
    )
    number = int(status.get("window") or 0) + (0 if retry else 1)
    attempt = int(status.get("windowAttempts") or 1) + 1 if retry else 1
    return Window(max(number, 1), batches, taken, attempt)


def next_run(status: dict[str, Any], generation: int) -> str:
    """The run id of the next window: g<generation> for a generation's first, then g<g>r<n>."""
    current = status.get("runId")
    if status.get("observedGeneration") != generation or not isinstance(current, str):
        return run_id(generation)
    try:
        ran, rerun = parse_run(current)
    except ValueError:
        return run_id(generation)
    return run_id(generation, rerun + 1) if ran == generation else run_id(generation)


@dataclass(frozen=True)
class Staleness:
    stale: bool
    reason: str
    message: str


def staleness(
    spec: dict[str, Any],
    listed: list[Listed],
    created: datetime | None,
    now: datetime,
    where: list[str],
) -> Staleness:
    """DataStale: the newest batch under the prefixes (or, before the first, the monitor's
    creation) is older than `thresholds.staleAfterSeconds`."""
    limit = int((spec.get("thresholds") or {}).get("staleAfterSeconds") or 7 * 24 * 3600)
    prefix = " and ".join(where)
    newest = listed[-1].modified if listed else None
    since = newest or created or now
    age = (now - since).total_seconds()
    if newest is None:
        what = f"no batch has arrived under {prefix} since the monitor was created"
    else:
        what = (
            f"the newest batch under {prefix} ({listed[-1].uri}) was written {format_age(age)} ago"
        )
    if age > limit:
        return Staleness(True, "NoNewData", f"{what}, more than {format_age(limit)}")
    return Staleness(
        False, "Fresh" if newest else "NoDataYet", f"{what} (limit {format_age(limit)})"
    )


def format_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds} s"


def after_failure(
    status: dict[str, Any], error: dict[str, Any] | None, reason: str, message: str
) -> dict[str, Any]:
    """The status fields a failed window leaves: its batches to try again, or, after an input
    error or MAX_ATTEMPTS tries, recorded as rejected with the window's reason."""
    pending = list(status.get("pending") or [])
    attempts = int(status.get("windowAttempts") or 1)
    input_error = (error or {}).get("exitCode") == INPUT_ERROR
    if not input_error and attempts < MAX_ATTEMPTS:
        return {"pending": pending, "windowAttempts": attempts}
    tried = "" if input_error else f" (after {attempts} attempts)"
    rejected = [
        {
            "uri": uri,
            "reason": reason,
            "message": f"window {status.get('window')}{tried}: {message}"[:2000],
        }
        for uri in pending
    ]
    return {
        "pending": [],
        "windowAttempts": 0,
        "rejected": [*(status.get("rejected") or []), *rejected][-MAX_REJECTED:],
    }


def after_success(
    spec: dict[str, Any], status: dict[str, Any], projected: dict[str, Any]
) -> dict[str, Any]:
    """The status fields a measured window leaves: no batch pending, its rejected batches
    added to the record, and the last `spec.history` windows kept."""
    rejected = [*(status.get("rejected") or []), *(projected.get("rejected") or [])]
    keep = min(int(spec.get("history") or 30), MAX_HISTORY)
    return {
        "pending": [],
        "windowAttempts": 0,
        "rejected": rejected[-MAX_REJECTED:],
        "windows": list(projected.get("windows") or [])[-keep:],
    }


def history(spec: dict[str, Any], status: dict[str, Any]) -> list[dict[str, Any]]:
    """The windows before the next one, as its job spec gets them (oldest first)."""
    keep = min(int(spec.get("history") or 30), MAX_HISTORY)
    return list(status.get("windows") or [])[-keep:]


# -- gated retraining ---------------------------------------------------------------------------
MAX_CANDIDATES = 50


def watched_run(spec: dict[str, Any], status: dict[str, Any]) -> str:
    """The TrainingRun whose model the monitor watches: a promoted candidate, else its own."""
    return str((status.get("watched") or {}).get("trainingRun") or spec.get("trainingRunRef"))


def retrain_reason(
    spec: dict[str, Any],
    status: dict[str, Any],
    raised: dict[str, str],
    now: datetime,
    created: datetime | None,
) -> str | None:
    """Why to train a candidate now, or None: a trigger of the policy among the conditions
    `raised` (type -> message) or its schedule due, no candidate in progress, and the cooldown
    over since the last one started."""
    policy = spec.get("retraining") or {}
    triggers = set(policy.get("triggers") or [])
    retraining = status.get("retraining") or {}
    if not triggers or retraining.get("candidate"):
        return None
    last = parse_time(retraining.get("lastStartedAt"))
    cooldown = timedelta(seconds=int(policy.get("cooldownSeconds", 3600)))
    if last is not None and now < last + cooldown:
        return None
    for trigger in ("PerformanceDegraded", "BiasDrift", "DriftDetected", "DataStale"):
        if trigger in triggers and trigger in raised:
            return f"{trigger}: {raised[trigger]}"[:1000]
    if "Schedule" in triggers and policy.get("schedule"):
        from croniter import croniter

        since = last or created or now
        due_at = croniter(policy["schedule"], since).get_next(datetime).astimezone(UTC)
        if due_at <= now:
            return f"Schedule: {policy['schedule']} (due at {format_time(due_at)})"
    return None


def candidate_name(monitor: str, number: int) -> str:
    """`<monitor>-r<n>`, cut so that it stays a valid name (and a Job name after its stage's
    prefix: jobs.object_name shortens long names with a hash)."""
    return f"{monitor[:200]}-r{number}"


def candidate_resource(
    monitor: dict[str, Any], watched: dict[str, Any], number: int
) -> dict[str, Any]:
    """The candidate TrainingRun: the watched one's spec (target, mitigation, validation
    threshold, fairness gates, model id: the next free version) on the policy's Dataset, owned
    by the monitor (deleting the monitor deletes its candidates)."""
    meta, spec = monitor["metadata"], monitor.get("spec") or {}
    policy = spec.get("retraining") or {}
    train = dict(watched.get("spec") or {})
    train.pop("version", None)  # the next free version of the same model id
    train.setdefault("modelId", watched["metadata"]["name"])
    if policy.get("datasetRef"):
        train["datasetRef"] = policy["datasetRef"]
    return {
        "apiVersion": monitor["apiVersion"],
        "kind": "TrainingRun",
        "metadata": {
            "name": candidate_name(meta["name"], number),
            "namespace": meta["namespace"],
            # A label value ends in a letter or digit; a name cut at 63 may not.
            "labels": {"fairpilot.io/monitor": meta["name"][:63].rstrip("-.")},
            "ownerReferences": [
                {
                    "apiVersion": monitor["apiVersion"],
                    "kind": "ModelMonitor",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": train,
    }


def started(status: dict[str, Any], name: str, reason: str, now: str) -> dict[str, Any]:
    """status.retraining once a candidate is created."""
    retraining = dict(status.get("retraining") or {})
    return {
        **retraining,
        "candidate": {"name": name, "reason": reason, "state": "Training", "startedAt": now},
        "started": int(retraining.get("started") or 0) + 1,
        "lastStartedAt": now,
    }


GONE = (
    "its TrainingRun is gone, or is no longer this monitor's (deleted, or made again under its "
    "name by someone else)"
)


def trained(status: dict[str, Any], run: dict[str, Any] | None, now: str) -> dict[str, Any] | None:
    """status.retraining once the candidate's TrainingRun ended (None: still training).

    Succeeded: Comparing (it waits for a window with labelled rows). Failed or gone: Refused.
    """
    retraining = dict(status.get("retraining") or {})
    candidate = dict(retraining.get("candidate") or {})
    run_status = (run or {}).get("status") or {}
    phase = run_status.get("phase")
    generation = ((run or {}).get("metadata") or {}).get("generation")
    if run is not None and (
        phase not in (Phase.SUCCEEDED, Phase.FAILED)
        or run_status.get("observedGeneration") != generation
    ):
        return None
    if run is not None and phase == Phase.SUCCEEDED:
        candidate |= {
            "state": "Comparing",
            "modelVersion": run_status.get("modelVersion"),
            "productionReady": run_status.get("productionReady"),
            "message": "trained; scored beside the watched model on the next labelled window",
        }
        return {**retraining, "candidate": candidate}
    if run is None:
        return decided(retraining, candidate | {"state": "Refused", "decidedAt": now,
                                                "message": GONE})  # fmt: skip
    why = run_status.get("message")
    return decided(retraining, candidate | {"state": "Refused", "decidedAt": now,
                                            "message": f"training failed: {why}"})  # fmt: skip


def decided(retraining: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    return {
        **retraining,
        "candidate": None,
        "candidates": [*(retraining.get("candidates") or []), candidate][-MAX_CANDIDATES:],
    }


def verdict(
    spec: dict[str, Any], candidate: dict[str, Any], score: dict[str, Any], window: int
) -> tuple[bool, str]:
    """Whether a candidate that has been scored is promoted, and why, in words: it must be
    production-ready (every gate it has was checked and passed) and score at least the watched
    model's score minus `tolerance` on the same labelled rows."""
    tolerance = float((spec.get("retraining") or {}).get("tolerance") or 0.0)
    metric, rows = score.get("metric"), score.get("rows")
    ours, theirs = score.get("score"), score.get("currentScore")
    on = f"{metric} on the {rows} labelled rows of window {window}"
    if candidate.get("productionReady") is not True:
        return False, (
            f"refused: {candidate['name']} is not production-ready (a gate failed or none was "
            f"configured; see its TrainingRun's status)"
        )
    if ours is None or theirs is None:
        return False, f"refused: the two models could not be compared ({score.get('message')})"
    greater = score.get("greaterIsBetter") is not False
    margin = (ours - theirs) if greater else (theirs - ours)
    if margin + tolerance < 0:
        return False, (
            f"refused: {on}: {ours:.4g} against the watched model's {theirs:.4g}, worse by more "
            f"than the tolerance {tolerance:g}"
        )
    return True, (
        f"promoted: production-ready, and {on}: {ours:.4g} against the watched model's "
        f"{theirs:.4g} (tolerance {tolerance:g})"
    )


def archived(spec: dict[str, Any], retraining: dict[str, Any], watched: str) -> dict[str, Any]:
    """Candidates beyond `keepVersions` (oldest first, never the watched one) marked Archived:
    their TrainingRuns and models stay where they are, for whoever wants them back."""
    keep = int((spec.get("retraining") or {}).get("keepVersions") or 3)
    candidates = [dict(c) for c in retraining.get("candidates") or []]
    live = [c for c in candidates if c.get("state") != "Archived" and c.get("name") != watched]
    for candidate in live[: max(0, len(live) - keep)]:
        candidate["state"] = "Archived"
    return {**retraining, "candidates": candidates}
