"""A Dataset's pipeline: which resource comes next when a stage succeeds.

The seed's "agentic core" chained stages over Kafka; here the Dataset's `pipeline` block
says what to chain, and each new resource is owned by the Dataset, so deleting it removes
the whole run.

Every model a pipeline trains is measured for fairness: the training stage gets the Dataset's
sensitive features as `fairness.sensitiveFeatures` (and the bias stage's positive label),
unless the pipeline's training block names its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fairpilot.api import labels as label
from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET, EXPLANATION, TRAINING_RUN, Kind
from fairpilot.api.pipeline import MAX_FAIRNESS_FEATURES


def child_name(dataset: str, kind: Kind) -> str:
    suffix = {BIAS_ANALYSIS: "bias", TRAINING_RUN: "train", EXPLANATION: "explain"}[kind]
    return f"{dataset}-{suffix}"[:253]


def dataset_owner(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The owner reference to a Dataset, if `resource` has one (a pipeline's stage)."""
    for ref in (resource.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == DATASET.kind and ref.get("apiVersion") == DATASET.api_version:
            return ref
    return None


def dataset_by_reference(
    owner: Mapping[str, Any] | None, read: Callable[[str], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """The Dataset a reference (name and uid, as an owner reference has them) names: read by
    name, and taken only when its uid is the reference's; None when it was deleted or made
    again under the same name. A label says nothing here: anyone who can create a resource can
    give it any label, and so could finish, fail or steer another's pipeline."""
    if owner is None or not owner.get("name"):
        return None
    dataset = read(str(owner["name"]))
    if dataset is None or dataset["metadata"].get("uid") != owner.get("uid"):
        return None
    return dataset


# Who and what a resource is about (set by the Kafka bridge on a Dataset it made): the stages
# carry them on, so their events name the seed's user_id and dataset_id.
INHERITED = (label.USER_ID, label.DATASET_ID)


# Fields of a pipeline's training block that steer the pipeline, not the TrainingRun.
PIPELINE_ONLY = ("mitigate", "mitigateIfBiasDetected")


def fairness_for(
    fairness: dict[str, Any] | None,
    sensitive: list[Any] | None,
    positive_label: Any = None,
) -> dict[str, Any] | None:
    """A TrainingRun's `fairness`: the one given, its empty sensitiveFeatures (the first
    MAX_FAIRNESS_FEATURES) and unset positiveLabel filled in from what the data declares;
    None when there is nothing to measure the model on and nothing was asked.
    (DatasetSpec checks that a pipeline's block still holds once filled in.)"""
    out = dict(fairness or {})
    if not out.get("sensitiveFeatures") and sensitive:
        out["sensitiveFeatures"] = list(sensitive)[:MAX_FAIRNESS_FEATURES]
    if out.get("positiveLabel") is None and positive_label is not None:
        out["positiveLabel"] = positive_label
    if fairness is None and not out.get("sensitiveFeatures"):
        return None
    return out


def _owned(kind: Kind, dataset: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    meta = dataset["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k in INHERITED}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k in INHERITED}
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {
            "name": child_name(meta["name"], kind),
            "namespace": meta["namespace"],
            "labels": {**labels, label.PIPELINE: meta["name"][:63]},
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": DATASET.api_version,
                    "kind": DATASET.kind,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": False,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def next_resource(
    dataset: dict[str, Any], finished: Kind, status: dict[str, Any]
) -> dict[str, Any] | str | None:
    """The resource to create after `finished` succeeded, a reason to stop, or None (done).

    `status` is the finished resource's status: a bias stage's BiasDetected decides whether to
    go on (stopIfBiasDetected) and whether to train with its weights (mitigateIfBiasDetected).
    """
    spec = dataset.get("spec") or {}
    pipeline = spec.get("pipeline") or {}
    name = dataset["metadata"]["name"]
    # Every stage belongs to the Dataset's owner, so its artifacts land in that user's folder.
    owner = {"userId": spec["userId"]} if spec.get("userId") else {}
    bias, training, explanation = (
        pipeline.get("bias"),
        pipeline.get("training"),
        pipeline.get("explanation"),
    )
    if finished is DATASET and bias is not None:
        options = {k: v for k, v in bias.items() if k != "stopIfBiasDetected"}
        return _owned(
            BIAS_ANALYSIS,
            dataset,
            {
                **options,
                **owner,
                "datasetRef": name,
                "target": spec.get("target"),
                "sensitiveFeatures": spec.get("sensitiveFeatures"),
            },
        )
    if (
        finished is BIAS_ANALYSIS
        and bias
        and bias.get("stopIfBiasDetected")
        and status.get("biasDetected")
    ):
        return "stopped: bias detected and pipeline.bias.stopIfBiasDetected is set"
    if finished in (DATASET, BIAS_ANALYSIS) and training is not None:
        options = {k: v for k, v in training.items() if k not in PIPELINE_ONLY}
        run = {**options, **owner, "target": spec.get("target"), "datasetRef": name}
        if spec.get("taskType"):
            run["taskType"] = spec["taskType"]
        fairness = fairness_for(
            training.get("fairness"),
            spec.get("sensitiveFeatures"),
            (bias or {}).get("positiveLabel"),
        )
        if fairness is not None:
            run["fairness"] = fairness
        # mitigateIfBiasDetected: only when the bias stage (which ran just before: the
        # Dataset's validation requires it) set BiasDetected; `status` is its status.
        detected = finished is BIAS_ANALYSIS and bool(status.get("biasDetected"))
        if training.get("mitigate") or (training.get("mitigateIfBiasDetected") and detected):
            run["mitigation"] = {"biasAnalysisRef": child_name(name, BIAS_ANALYSIS)}
        return _owned(TRAINING_RUN, dataset, run)
    if finished is TRAINING_RUN and explanation is not None:
        return _owned(
            EXPLANATION,
            dataset,
            {**explanation, **owner, "trainingRunRef": child_name(name, TRAINING_RUN)},
        )
    return None
