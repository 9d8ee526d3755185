"""Turning a resource's spec into a job spec: references become the locations they point at.

`datasetRef` -> `dataset: {uri, format}`, `testDatasetRef` -> `testDataset`, `trainingRunRef`
-> `model: {uri}`, `mitigation.biasAnalysisRef` -> `mitigation.reweighing: {uri}`; every other
field keeps its name. The result is validated by the job's own pydantic model, so the operator
can never hand a job a spec the job would refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from fairpilot.api import JOB_SPECS
from fairpilot.api.kinds import Kind
from fairpilot.api.validation import describe, is_dns1123_subdomain

# (kind, name) -> the resource as a dict, or None when it does not exist.
Lookup = Callable[[str, str], dict[str, Any] | None]


class UnresolvedReference(Exception):
    """A reference that cannot be resolved (yet); `reason` becomes the condition's reason."""

    def __init__(
        self, reason: str, message: str, *, waiting: bool, on: tuple[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.reason, self.message, self.waiting = reason, message, waiting
        self.on = on  # (kind, name) of the resource waited for, when it is one


def _get(lookup: Lookup, kind: str, name: str, field: str) -> dict[str, Any]:
    found = lookup(kind, name)
    if found is None:
        raise UnresolvedReference(
            "ReferenceNotFound",
            f"{field}: {kind} {name!r} does not exist",
            waiting=True,
            on=(kind, name),
        )
    return found


def _ready(resource: dict[str, Any], kind: str, name: str, field: str) -> dict[str, Any]:
    status = resource.get("status") or {}
    phase = status.get("phase")
    if phase == "Failed":
        raise UnresolvedReference(
            "ReferenceFailed", f"{field}: {kind} {name!r} failed", waiting=False
        )
    if phase != "Succeeded":
        raise UnresolvedReference(
            "ReferenceNotReady",
            f"{field}: waiting for {kind} {name!r} to succeed (now {phase or 'Pending'})",
            waiting=True,
            on=(kind, name),
        )
    return status


def _dataset(lookup: Lookup, name: str, field: str) -> dict[str, Any]:
    # A Dataset is ready once its profile succeeded: a stage never starts on data that could
    # not be read, and fails with the Dataset's name when it could not.
    dataset = _get(lookup, "Dataset", name, field)
    _ready(dataset, "Dataset", name, field)
    spec = dataset.get("spec") or {}
    location = {"uri": spec["uri"]}
    if spec.get("format"):
        location["format"] = spec["format"]
    return location


def job_spec(
    kind: Kind, spec: dict[str, Any], lookup: Lookup, name: str | None = None
) -> dict[str, Any]:
    """The job spec for a resource of `kind` with this `spec` (camelCase, as stored).

    `name`: the resource's name, which is a TrainingRun's model id when its spec gives none
    (the registry and the model.uploaded event need one that tells models apart).
    """
    _check_resource(kind, spec, name)
    out = dict(spec)
    if kind.kind == "TrainingRun" and name and not out.get("modelId"):
        out["modelId"] = name
    if kind.kind == "Dataset":
        out.pop("pipeline", None)  # the operator's business, not the profile job's
    if "datasetRef" in out:
        out["dataset"] = _dataset(lookup, out.pop("datasetRef"), "datasetRef")
    if out.get("testDatasetRef"):
        out["testDataset"] = _dataset(lookup, out.pop("testDatasetRef"), "testDatasetRef")
    out.pop("testDatasetRef", None)
    if out.get("trainingRunRef"):
        name = out.pop("trainingRunRef")
        run = _get(lookup, "TrainingRun", name, "trainingRunRef")
        status = _ready(run, "TrainingRun", name, "trainingRunRef")
        if not status.get("modelUri"):
            raise UnresolvedReference(
                "NoModel", f"trainingRunRef: TrainingRun {name!r} reports no modelUri",
                waiting=False,
            )  # fmt: skip
        out["model"] = {"uri": status["modelUri"]}
        if kind.kind == "Explanation" and "dataset" not in out:
            # Explain the rows the model was tested on, else those it learnt from.
            run_spec = run.get("spec") or {}
            ref = run_spec.get("testDatasetRef") or run_spec["datasetRef"]
            out["dataset"] = _dataset(lookup, ref, "trainingRunRef's dataset")
    out.pop("trainingRunRef", None)
    mitigation = out.get("mitigation")
    if mitigation and "biasAnalysisRef" in mitigation:
        name = mitigation["biasAnalysisRef"]
        analysis = _get(lookup, "BiasAnalysis", name, "mitigation.biasAnalysisRef")
        status = _ready(analysis, "BiasAnalysis", name, "mitigation.biasAnalysisRef")
        if not status.get("reweighingUri"):
            raise UnresolvedReference(
                "NoReweighing",
                f"mitigation.biasAnalysisRef: BiasAnalysis {name!r} reports no reweighingUri",
                waiting=False,
            )
        out["mitigation"] = {"reweighing": {"uri": status["reweighingUri"]}}
    try:
        model = JOB_SPECS[kind.stage].model_validate(out)
    except ValidationError as exc:
        raise UnresolvedReference(
            "InvalidSpec", f"job spec is invalid: {describe(exc)}", waiting=False
        ) from exc
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def _check_resource(kind: Kind, spec: Any, name: str | None) -> None:
    """Refuse, for good, a resource the CRD's schema should have refused.

    A real API server checks specs against the CRD, but not with `kubectl apply
    --validate=false` against an older CRD, nor in the sandbox's emulator; and a spec of the
    wrong shape (a string, a number where a name goes) would otherwise make every reconciliation
    raise, which Kopf retries for ever and the user sees as a resource stuck with no status.
    The name becomes part of the artifact path and the Job's name, so it is checked too (the API
    server does that for every object; this guards against one that does not).
    """
    if name is not None and not is_dns1123_subdomain(name):
        raise UnresolvedReference(
            "InvalidName",
            f"metadata.name {name[:80]!r} is not a DNS-1123 subdomain "
            "(lower-case letters, digits, '-' and '.', at most 253 characters)",
            waiting=False,
        )
    if not isinstance(spec, dict):
        raise UnresolvedReference(
            "InvalidSpec",
            f"spec must be a mapping of fields, not {type(spec).__name__}",
            waiting=False,
        )
    try:
        kind.spec.model_validate(spec)
    except ValidationError as exc:
        raise UnresolvedReference(
            "InvalidSpec", f"{kind.kind} spec is invalid: {describe(exc)}", waiting=False
        ) from exc
