"""Whether what a finished run used is still what its inputs hold.

A run records its inputs in `status.inputs` (the Dataset, BiasAnalysis or TrainingRun it used,
as they were: uid, run, output location, model). When one of them runs again (a TrainingRun
patched and retrained, a Dataset profiled again), the result is out of date: an Explanation
would go on explaining a model that is no longer the TrainingRun's. This module compares the
record with the inputs as they are now; the reconciler re-runs the resource, or says so in its
`UpToDate` condition.

An input counts as settled only when it is itself up to date, checked down the chain (an
Explanation's TrainingRun whose Dataset changed is about to retrain): so a Dataset profiled
again re-runs its BiasAnalysis first, then the TrainingRun that uses both, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fairpilot.api.status import Phase
from fairpilot.references import up_to_date

Lookup = Callable[[str, str], dict[str, Any] | None]
MAX_DEPTH = 4  # Explanation -> TrainingRun -> BiasAnalysis -> Dataset


@dataclass(frozen=True)
class Freshness:
    """The verdict on a finished run's inputs."""

    up_to_date: bool
    reason: str  # UpToDate condition's reason
    message: str
    rerun: bool = False  # every input settled and one changed: run again
    waiting_on: tuple[str, str] | None = None  # an input that is running: look again then


def settled(resource: dict[str, Any], lookup: Lookup, depth: int = 0) -> bool:
    """Succeeded for its current spec, and nothing it used has changed since."""
    status = resource.get("status") or {}
    generation = (resource.get("metadata") or {}).get("generation")
    if status.get("phase") != Phase.SUCCEEDED or not up_to_date(status):
        return False
    if generation is not None and status.get("observedGeneration") != generation:
        return False
    if depth >= MAX_DEPTH:
        return True
    for record in status.get("inputs") or []:
        current = lookup(record.get("kind", ""), record.get("name", ""))
        if current is None or _changed(record, current) or not settled(current, lookup, depth + 1):
            return False
    return True


def _changed(record: dict[str, Any], current: dict[str, Any]) -> bool:
    meta, status = current.get("metadata") or {}, current.get("status") or {}
    if record.get("uid") and meta.get("uid") != record["uid"]:
        return True  # deleted and created again: another resource under the same name
    return status.get("outputUri") != record.get("outputUri")


def check(resource: dict[str, Any], lookup: Lookup) -> Freshness | None:
    """The state of a finished run's inputs; None when it recorded none (nothing to follow)."""
    status = resource.get("status") or {}
    spec = resource.get("spec") or {}
    records = status.get("inputs") or []
    if not records:
        return None
    waiting: list[tuple[str, str, tuple[str, str]]] = []
    failed: list[str] = []
    changed: list[str] = []
    for record in records:
        kind, name = record.get("kind", ""), record.get("name", "")
        label = f"{kind} {name!r} ({record.get('field')})"
        current = lookup(kind, name)
        if current is None:
            return Freshness(False, "InputMissing", f"{label} no longer exists")
        pinned = record.get("field") == "trainingRunRef" and spec.get("modelVersion")
        if pinned and current["metadata"].get("uid") == record.get("uid"):
            continue  # a pinned model version never changes; the TrainingRun may train others
        now = current.get("status") or {}
        if not settled(current, lookup):
            if now.get("phase") == Phase.FAILED:
                failed.append(f"{label} failed: {now.get('message') or ''}".strip())
            else:
                run = now.get("runId") or "a new run"
                waiting.append((label, f"{label} is changing ({run}, {now.get('phase')})",
                                (kind, name)))  # fmt: skip
            continue
        if _changed(record, current):
            changed.append(f"{label} ran again: {record.get('runId')} -> {now.get('runId')}")
    if failed:
        return Freshness(False, "InputFailed", "; ".join(failed))
    if waiting:
        return Freshness(
            False, "InputChanging", "; ".join(m for _, m, _ in waiting), waiting_on=waiting[0][2]
        )
    if changed:
        return Freshness(False, "InputChanged", "; ".join(changed), rerun=True)
    return Freshness(True, "InputsUnchanged", "every input is as this run used it")
