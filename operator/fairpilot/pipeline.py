"""A Dataset's pipeline: which resource comes next when a stage succeeds.

The seed's "agentic core" chained stages over Kafka; here the Dataset's `pipeline` block
says what to chain, and each new resource is owned by the Dataset, so deleting it removes
the whole run.
"""

from __future__ import annotations

from typing import Any

from fairpilot import API_GROUP
from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET, EXPLANATION, TRAINING_RUN, Kind


def child_name(dataset: str, kind: Kind) -> str:
    suffix = {BIAS_ANALYSIS: "bias", TRAINING_RUN: "train", EXPLANATION: "explain"}[kind]
    return f"{dataset}-{suffix}"[:253]


# Who and what a resource is about (set by the Kafka bridge on a Dataset it made): the stages
# carry them on, so their events name the seed's user_id and dataset_id.
INHERITED = (f"{API_GROUP}/user-id", f"{API_GROUP}/dataset-id")


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
            "labels": {**labels, f"{API_GROUP}/pipeline": meta["name"][:63]},
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

    `status` is the finished resource's status (BiasDetected decides whether to go on).
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
        options = {k: v for k, v in training.items() if k != "mitigate"}
        run = {**options, **owner, "target": spec.get("target"), "datasetRef": name}
        if spec.get("taskType"):
            run["taskType"] = spec["taskType"]
        if training.get("mitigate"):
            run["mitigation"] = {"biasAnalysisRef": child_name(name, BIAS_ANALYSIS)}
        return _owned(TRAINING_RUN, dataset, run)
    if finished is TRAINING_RUN and explanation is not None:
        return _owned(
            EXPLANATION,
            dataset,
            {**explanation, **owner, "trainingRunRef": child_name(name, TRAINING_RUN)},
        )
    return None
