"""Turning a resource's spec into a job spec: references become the locations they point at.

`datasetRef` -> `dataset: {uri, format}`, `testDatasetRef` -> `testDataset`, `trainingRunRef`
-> `model: {uri, digest}`, `mitigation.biasAnalysisRef` -> `mitigation.reweighing: {uri}`;
every other field keeps its name. The result is validated by the job's own pydantic model, so
the operator can never hand a job a spec the job would refuse.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

from pydantic import ValidationError

from fairpilot import access
from fairpilot.api import JOB_SPECS
from fairpilot.api.kinds import Kind
from fairpilot.api.status import Phase
from fairpilot.api.validation import describe, is_dns1123_subdomain
from fairpilot.conditions import condition_of
from fairpilot.config import OperatorConfig
from fairpilot.jobs import owned_by

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


def references_of(kind: str, spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of every resource a spec refers to."""
    found = []
    for field_name, target in (
        ("datasetRef", "Dataset"),
        ("testDatasetRef", "Dataset"),
        ("trainingRunRef", "TrainingRun"),
    ):
        if isinstance(spec.get(field_name), str):
            found.append((target, spec[field_name]))
    mitigation = spec.get("mitigation")
    if isinstance(mitigation, dict) and isinstance(mitigation.get("biasAnalysisRef"), str):
        found.append(("BiasAnalysis", mitigation["biasAnalysisRef"]))
    return found if kind != "Dataset" else []


def _ready(resource: dict[str, Any], kind: str, name: str, field: str) -> dict[str, Any]:
    status = resource.get("status") or {}
    phase = status.get("phase")
    generation = (resource.get("metadata") or {}).get("generation")
    if phase == Phase.FAILED:
        raise UnresolvedReference(
            "ReferenceFailed", f"{field}: {kind} {name!r} failed", waiting=False
        )
    # Succeeded, of its current spec, with inputs that have not changed under it: what a
    # status describes only once the operator has looked at a changed spec or input.
    current = generation is None or status.get("observedGeneration") == generation
    if phase != Phase.SUCCEEDED or not current or not up_to_date(status):
        now = phase if current and up_to_date(status) else "changing"
        raise UnresolvedReference(
            "ReferenceNotReady",
            f"{field}: waiting for {kind} {name!r} to succeed (now {now or Phase.PENDING})",
            waiting=True,
            on=(kind, name),
        )
    return status


def up_to_date(status: dict[str, Any]) -> bool:
    """False when the status says its inputs changed under it (UpToDate=False)."""
    return (condition_of(status, "UpToDate") or {}).get("status") != "False"


def as_input(field: str, kind: str, resource: dict[str, Any]) -> dict[str, Any]:
    """What a run used of a referenced resource, recorded in its status (`status.inputs`)."""
    meta, status = resource.get("metadata") or {}, resource.get("status") or {}
    entry = {
        "field": field,
        "kind": kind,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "runId": status.get("runId") or f"g{status.get('observedGeneration') or 1}",
        "outputUri": status.get("outputUri"),
    }
    if kind == "TrainingRun":
        entry |= {"modelUri": status.get("modelUri"), "modelVersion": status.get("modelVersion")}
    return {k: v for k, v in entry.items() if v is not None}


@dataclass
class Resolved:
    """A job spec, and the resources (as they are now) that went into it."""

    spec: dict[str, Any]
    inputs: list[dict[str, Any]] = field(default_factory=list)


def _dataset(
    lookup: Lookup, name: str, field_name: str, inputs: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    # A Dataset is ready once its profile succeeded: a stage never starts on data that could
    # not be read, and fails with the Dataset's name when it could not.
    dataset = _get(lookup, "Dataset", name, field_name)
    _ready(dataset, "Dataset", name, field_name)
    inputs.append(as_input(field_name, "Dataset", dataset))
    spec = dataset.get("spec") or {}
    location = {"uri": spec["uri"]}
    if spec.get("format"):
        location["format"] = spec["format"]
    return location, dataset


def job_spec(
    kind: Kind,
    spec: dict[str, Any],
    lookup: Lookup,
    name: str | None = None,
    window: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The job spec for a resource of `kind` with this `spec` (camelCase, as stored); a
    ModelMonitor's needs the `window` it measures (its batches)."""
    return resolve(kind, spec, lookup, name, window=window).spec


def resolve(
    kind: Kind,
    spec: dict[str, Any],
    lookup: Lookup,
    name: str | None = None,
    config: OperatorConfig | None = None,
    *,
    namespace: str = "default",
    window: dict[str, Any] | None = None,
) -> Resolved:
    """The job spec for a resource of `kind` with this `spec` (camelCase, as stored), and the
    inputs it was made from.

    `name`: the resource's name, which is a TrainingRun's model id when its spec gives none
    (the registry and the model.uploaded event need one that tells models apart). What the
    operator can judge from here (a column its Dataset does not have, a URI it may not read)
    is refused here, for good, rather than by a Job half a minute later. With `config`, every
    location the job will read must be one this `namespace` and the spec's user may read
    (`access.readable`): a Dataset of another user, a model outside the namespace's artifacts.
    `window`: a ModelMonitor's next window (batches, window, history), which its job spec gets
    in place of its spec's batch source.
    """
    _check_resource(kind, spec, name)
    out = dict(spec)
    inputs: list[dict[str, Any]] = []
    if kind.kind == "TrainingRun" and name and not out.get("modelId"):
        out["modelId"] = name
    if kind.kind == "Dataset":
        out.pop("pipeline", None)  # the operator's business, not the profile job's
        if config is not None:
            allowed = access.data_locations(config, namespace, spec.get("userId"))
            check_uri(spec.get("uri", ""), config, "uri", allowed)
    if "datasetRef" in out:
        out["dataset"], dataset = _dataset(lookup, out.pop("datasetRef"), "datasetRef", inputs)
        check_columns(kind, spec, dataset, "datasetRef")
        if kind.kind == "TrainingRun":
            out = _measured_on_the_datasets_groups(out, dataset)
    if out.get("testDatasetRef"):
        out["testDataset"], test = _dataset(
            lookup, out.pop("testDatasetRef"), "testDatasetRef", inputs
        )
        if kind.kind == "TrainingRun":
            _require(test, {spec.get("target"): "target"}, "testDatasetRef")
    out.pop("testDatasetRef", None)
    if out.get("trainingRunRef"):
        name = out.pop("trainingRunRef")
        promoted = kind.kind == "ModelMonitor" and bool((window or {}).get("trainingRun"))
        if promoted:
            # A candidate its retraining promoted: that TrainingRun's current model from then on.
            name = (window or {})["trainingRun"]
            out.pop("modelVersion", None)
        run = _get(lookup, "TrainingRun", name, "trainingRunRef")
        if promoted:
            _owned_by_monitor(run, name, (window or {}).get("owner"))
        _ready(run, "TrainingRun", name, "trainingRunRef")
        wanted = out.pop("modelVersion", None)
        model = _model(run, name, wanted)
        # The digest travels with the URI: the stage checks the model's files against it
        # before it unpickles anything (fairpilot_jobs.model_digest).
        out["model"] = {"uri": model["modelUri"], "digest": model["modelDigest"]}
        inputs.append({**as_input("trainingRunRef", "TrainingRun", run), **model})
        if kind.kind == "ModelMonitor":
            out = _monitor_job_spec(out, run, model, lookup, inputs, window or {})
        if kind.kind == "Explanation" and "dataset" not in out:
            # Explain the rows the model was tested on, else those it learnt from.
            run_spec = run.get("spec") or {}
            ref = run_spec.get("testDatasetRef") or run_spec["datasetRef"]
            out["dataset"], _ = _dataset(lookup, ref, "trainingRunRef's dataset", inputs)
    out.pop("trainingRunRef", None)
    out.pop("modelVersion", None)
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
        inputs.append(as_input("mitigation.biasAnalysisRef", "BiasAnalysis", analysis))
        out["mitigation"] = {"reweighing": {"uri": status["reweighingUri"]}}
    source = out.pop("_source", None)
    if config is not None and kind.kind != "Dataset":
        readable = access.readable(config, namespace, spec.get("userId"))
        locations = _read_locations(out)
        if isinstance(source, dict) and isinstance(source.get("uri"), str):
            locations.append(("batches.uri", source["uri"]))
        for field_name, uri in locations:
            check_uri(uri, config, field_name, readable)
    try:
        job_spec = JOB_SPECS[kind.stage].model_validate(out)
    except ValidationError as exc:
        raise UnresolvedReference(
            "InvalidSpec",
            f"job spec is invalid: {describe(exc, model=JOB_SPECS[kind.stage])}",
            waiting=False,
        ) from exc
    return Resolved(job_spec.model_dump(by_alias=True, mode="json", exclude_none=True), inputs)


def _monitor_job_spec(
    out: dict[str, Any],
    run: dict[str, Any],
    model: dict[str, Any],
    lookup: Lookup,
    inputs: list[dict[str, Any]],
    window: dict[str, Any],
) -> dict[str, Any]:
    """A ModelMonitor's window as its job spec has it: the TrainingRun's training data as the
    reference, its target and excluded columns, its model's held-out figures as the baseline
    (those of its current model; a pinned older version's come from its own metadata, in the
    stage), and the window's batches in place of the batch source."""
    run_spec, run_status = run.get("spec") or {}, run.get("status") or {}
    out["reference"], reference = _dataset(
        lookup, run_spec["datasetRef"], "trainingRunRef's dataset", inputs
    )
    named = {column: "sensitiveFeatures" for column in out.get("sensitiveFeatures") or []}
    _require(reference, named, "trainingRunRef's dataset")
    out["target"] = run_spec["target"]
    if run_spec.get("excludedColumns"):
        out["excludedColumns"] = list(run_spec["excludedColumns"])
    current = model.get("modelVersion") == run_status.get("modelVersion")
    fairness = (run_status.get("fairness") or {}) if current else {}
    measured = [f for f in fairness.get("features") or [] if isinstance(f, dict) and f.get("name")]
    if not out.get("sensitiveFeatures"):
        declared = ((run_spec.get("fairness") or {}).get("sensitiveFeatures")) or []
        out["sensitiveFeatures"] = [f["name"] for f in measured] or list(declared)
    if current:
        test = run_status.get("testScore")
        split = "test" if test is not None else "validation"
        accuracy = (run_status.get("accuracy") or {}).get(split)
        baseline = {
            "evalMetric": run_status.get("evalMetric"),
            "score": test if test is not None else run_status.get("validationScore"),
            "split": split,
            "accuracy": accuracy,
            "positiveLabel": fairness.get("positiveLabel"),
            "fairness": [
                {
                    "name": f["name"],
                    "disparateImpact": f.get("disparateImpact"),
                    "statisticalParityDifference": f.get("statisticalParityDifference"),
                    "equalOpportunityDifference": f.get("equalOpportunityDifference"),
                }
                for f in measured
            ],
        }
        out["baseline"] = {k: v for k, v in baseline.items() if v is not None}
    source = out.pop("batches", None) or {}
    # The operator's business, not a window's: when to look, where records come from, when
    # to retrain, how many windows to keep.
    for key in ("history", "kafka", "retraining"):
        out.pop(key, None)
    out["batches"] = window.get("batches") or []
    if window.get("candidate"):
        out["candidate"] = window["candidate"]
    out["window"] = window.get("window") or 1
    out["history"] = window.get("history") or []
    out["_source"] = source  # checked with the other locations below, then dropped
    return out


# FairnessOptions.sensitiveFeatures' own bound: a Dataset may declare more.
MAX_FAIRNESS_FEATURES = 16


def _measured_on_the_datasets_groups(
    out: dict[str, Any], dataset: dict[str, Any]
) -> dict[str, Any]:
    """Every model trained on a Dataset that declares sensitive features is measured on their
    groups: `fairness.sensitiveFeatures` defaults to the Dataset's."""
    declared = (dataset.get("spec") or {}).get("sensitiveFeatures") or []
    fairness = dict(out.get("fairness") or {})
    if not declared or fairness.get("sensitiveFeatures"):
        return out
    fairness["sensitiveFeatures"] = list(declared)[:MAX_FAIRNESS_FEATURES]
    return {**out, "fairness": fairness}


def _owned_by_monitor(run: dict[str, Any], name: str, owner: str | None) -> None:
    """A promoted model is watched only while its TrainingRun is the monitor's own: one
    deleted and made again under its name by anyone who may create TrainingRuns would
    otherwise have its model watched, and judged, in the monitor's name."""
    if owned_by(run, owner or None):
        return
    raise UnresolvedReference(
        "WatchedModelNotOwned",
        f"status.watched.trainingRun: TrainingRun {name!r} is not this monitor's (no owner "
        "reference to it; deleted and made again by someone else?): its model is not watched. "
        "Delete it, or re-create the monitor to watch spec.trainingRunRef again",
        waiting=False,
    )


def _model(run: dict[str, Any], name: str, version: str | None) -> dict[str, Any]:
    """The model of a TrainingRun to use: its current one, or the version asked for, with the
    digest its files must match (status.modelDigest, or that version's record in status.models).

    A model without a digest (trained by a FairPilot that recorded none) is refused for good:
    a model directory is code, and one that cannot be verified is never handed to a stage.
    """
    status = run.get("status") or {}
    if version is None or version == status.get("modelVersion"):
        if not status.get("modelUri"):
            raise UnresolvedReference(
                "NoModel", f"trainingRunRef: TrainingRun {name!r} reports no modelUri",
                waiting=False,
            )  # fmt: skip
        found = {
            "modelUri": status["modelUri"],
            "modelVersion": status.get("modelVersion"),
            "modelDigest": status.get("modelDigest"),
        }
    else:
        records = status.get("models") or []
        record = next(
            (r for r in records if r.get("version") == version and r.get("modelUri")), None
        )
        if record is None:
            known = [r.get("version") for r in records]
            raise UnresolvedReference(
                "ModelVersionNotFound",
                f"modelVersion: TrainingRun {name!r} has no model version {version!r} "
                f"(it has {', '.join(map(str, known)) or 'none'})",
                waiting=False,
            )
        found = {
            "modelUri": record["modelUri"],
            "modelVersion": version,
            "modelDigest": record.get("modelDigest"),
        }
    if not found["modelDigest"]:
        which = f"model version {found['modelVersion']}" if found["modelVersion"] else "model"
        raise UnresolvedReference(
            "ModelNotVerifiable",
            f"trainingRunRef: TrainingRun {name!r} reports no digest for its {which} "
            f"({found['modelUri']}): it was trained by a FairPilot that recorded none, and a "
            "model is code (pickles) that is only loaded once its files are checked against "
            "its digest; train it again (e.g. a new version) to use it",
            waiting=False,
        )
    return found


def _read_locations(out: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, URI) of every location a job spec reads."""
    found = []
    for key in ("dataset", "testDataset", "model", "reference", "candidate"):
        if isinstance(out.get(key), dict) and isinstance(out[key].get("uri"), str):
            found.append((key, out[key]["uri"]))
    for index, batch in enumerate(out.get("batches") or []):
        if isinstance(batch, dict) and isinstance(batch.get("uri"), str):
            found.append((f"batches[{index}]", batch["uri"]))
    reweighing = (out.get("mitigation") or {}).get("reweighing")
    if isinstance(reweighing, dict) and isinstance(reweighing.get("uri"), str):
        found.append(("mitigation.reweighing", reweighing["uri"]))
    return found


def check_uri(
    uri: str, config: OperatorConfig, field_name: str, allowed: list[str] | None = None
) -> None:
    """A URI the stage pods may read, judged as the stage would: its scheme, the file root
    (`FAIRPILOT_FILE_ROOT`) and the locations allowed to the namespace and user (`allowed`,
    None: any; `FAIRPILOT_ALLOWED_LOCATIONS` in the pod), a `file://` path as written and with
    its links resolved."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme not in config.uri_schemes:
        schemes = ", ".join(f"{s}://" for s in config.uri_schemes)
        raise UnresolvedReference(
            "InvalidURI",
            f"{field_name}: {uri[:200]!r} has a scheme this operator does not allow ({schemes})",
            waiting=False,
        )
    if scheme == "file" and config.file_root:
        path = PurePosixPath(unquote(uri[len("file://") :]))
        root = PurePosixPath(config.file_root)
        if not path.is_absolute() or not (path == root or root in path.parents):
            raise UnresolvedReference(
                "InvalidURI",
                f"{field_name}: {uri[:200]!r} is outside the allowed root {config.file_root} "
                "(the only folder stage pods may read file:// URIs from)",
                waiting=False,
            )
    refused = access.problem(uri, allowed) or access.resolved_problem(uri, allowed)
    if refused:
        raise UnresolvedReference("LocationNotAllowed", f"{field_name}: {refused}", waiting=False)


def _named_columns(kind: Kind, spec: dict[str, Any]) -> dict[Any, str]:
    """The columns of its `datasetRef` a spec names, with the field that names each."""
    named: dict[Any, str] = {}
    if kind.kind in ("TrainingRun", "BiasAnalysis") and spec.get("target"):
        named[spec["target"]] = "target"
    for column in spec.get("sensitiveFeatures") or []:
        named.setdefault(column, "sensitiveFeatures")
    fairness = spec.get("fairness")
    if not isinstance(fairness, dict):
        fairness = {}
    for column in fairness.get("sensitiveFeatures") or []:
        named.setdefault(column, "fairness.sensitiveFeatures")
    for constraint in [*(fairness.get("constraints") or []), *(fairness.get("gates") or [])]:
        if isinstance(constraint, dict) and constraint.get("feature"):
            named.setdefault(constraint["feature"], "fairness")
    for column in spec.get("excludedColumns") or []:
        named.setdefault(column, "excludedColumns")
    if spec.get("predictionColumn"):
        named.setdefault(spec["predictionColumn"], "predictionColumn")
    if spec.get("groupVariable"):
        named.setdefault(spec["groupVariable"], "groupVariable")
    return named


def check_columns(
    kind: Kind, spec: dict[str, Any], dataset: dict[str, Any], field_name: str
) -> None:
    _require(dataset, _named_columns(kind, spec), field_name)


def _require(dataset: dict[str, Any], named: dict[Any, str], field_name: str) -> None:
    """Every named column must be one the Dataset's profile found (when it lists them all)."""
    status = dataset.get("status") or {}
    columns = status.get("columnNames") or []
    if not columns or len(columns) != status.get("columns"):
        return  # the profile listed no names (too many to keep): the stage will judge
    known = set(columns)
    missing = [(column, where) for column, where in named.items() if column and column not in known]
    if not missing:
        return
    name = (dataset.get("metadata") or {}).get("name")
    parts = []
    for column, where in missing[:10]:
        close = difflib.get_close_matches(str(column), columns, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{where} {column!r}{hint}")
    raise UnresolvedReference(
        "ColumnNotFound",
        f"{'; '.join(parts)}: not a column of Dataset {name!r} ({field_name}), whose profile "
        f"lists {', '.join(columns[:30])}{' …' if len(columns) > 30 else ''}",
        waiting=False,
    )


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
            "InvalidSpec",
            f"{kind.kind} spec is invalid: {describe(exc, model=kind.spec)}",
            waiting=False,
        ) from exc
