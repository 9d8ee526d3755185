"""Status conditions in Kubernetes API conventions, a stage's result parsed by its kind's
model, and the reason a stage failed.

Pure functions: the operator calls them with what it read and patches what they return. What
each kind projects from its parsed result is its behaviour's (`fairpilot.kinds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from fairpilot.api.kinds import Kind
from fairpilot.api.results import StageError, StageResult
from fairpilot.api.validation import describe


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_of(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of that type in a status, if it has one."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == type_:
            return condition
    return None


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    at: str | None = None,
) -> list[dict[str, Any]]:
    """A new list with `type_` set; its transition time changes only when its status does."""
    value = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.get("type") == type_), None)
    transition: str | None
    if previous is None or previous.get("status") != value:
        transition = at or now()
    else:
        transition = previous.get("lastTransitionTime")
    condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:4096],
        "lastTransitionTime": transition,
        "observedGeneration": generation,
    }
    return [c for c in conditions if c.get("type") != type_] + [condition]


class InvalidResult(ValueError):
    """A stage's result.json that its kind's model (api.results) refuses: the operator cannot
    project it, and says which field is wrong rather than guess."""

    reason = "InvalidResult"


def parse_result(kind: Kind, result: StageResult | Mapping[str, Any]) -> StageResult:
    """`result` as its kind's result model; InvalidResult, naming the field, if it is not one."""
    if isinstance(result, kind.result):
        return result
    if not isinstance(result, Mapping):
        raise InvalidResult(
            f"the {kind.stage} stage's result.json holds a JSON {type(result).__name__}, "
            "not an object"
        )
    try:
        return kind.result.model_validate(result)
    except ValidationError as exc:
        raise InvalidResult(
            f"the {kind.stage} stage's result.json is not what this operator reads: {describe(exc)}"
        ) from exc


def stage_error(document: StageError | Mapping[str, Any] | None) -> StageError | None:
    """A stage's error.json (or the JSON of its termination message) as StageError; None when
    there is none or it says no usable reason: the caller then looks at the next source."""
    if document is None or isinstance(document, StageError):
        return document
    try:
        return StageError.model_validate(document)
    except ValidationError:
        return None


def failure(
    error: StageError | Mapping[str, Any] | None,
    terminated: dict[str, Any] | None,
    job: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """(reason, message) of a failed stage, from the most specific source that says.

    error: the stage's error.json. terminated: the last pod's `state.terminated` (exitCode,
    reason, message). job: the Job, whose own Failed condition says when Kubernetes stopped it.
    A stage that was killed (deadline, out of memory, a crash) writes no error.json, and the
    user must still learn which of these it was and what to change.
    """
    spec = (job or {}).get("spec") or {}
    for condition in ((job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("reason") == "DeadlineExceeded":
            seconds = spec.get("activeDeadlineSeconds")
            limit = f" of {seconds} s" if seconds else ""
            return "DeadlineExceeded", (
                f"the stage ran longer than its deadline{limit} and was stopped; a TrainingRun's "
                "deadline follows its timeLimitSeconds, other stages' the operator's "
                "jobs.activeDeadlineSeconds"
            )
    said_by_stage = stage_error(error)
    if said_by_stage is not None:
        return said_by_stage.reason, said_by_stage.message
    terminated = terminated or {}
    if terminated.get("reason") == "OOMKilled":
        containers = (((spec.get("template") or {}).get("spec") or {}).get("containers")) or [{}]
        memory = ((containers[0].get("resources") or {}).get("limits") or {}).get("memory")
        shown = f" ({memory})" if memory else ""
        return "OOMKilled", (
            f"the stage used more memory than its limit{shown} and was killed; "
            "give it more with spec.resources.memory or use a sample of the data"
        )
    message = str(terminated.get("message") or "").strip()
    if message:
        import json

        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        # The stage writes the same StageError there (reason and message) for the kubelet.
        said_by_pod = stage_error(parsed) if isinstance(parsed, dict) else None
        if said_by_pod is not None:
            return said_by_pod.reason, said_by_pod.message
    code = terminated.get("exitCode")
    said = message.splitlines()[-1][:1000] if message else ""
    if code is not None:
        return "JobFailed", f"the stage exited with code {code}" + (f": {said}" if said else "")
    return "JobFailed", said or "the stage's Job failed without saying why"
