"""The index page of a Dataset's pipeline, kept current by the operator.

The operator is the one part that sees every stage of a pipeline, its phase and its reports,
so it writes the page (`fairpilot.pipeline_index`) into the Dataset's folder whenever one of
them changes phase; each stage's report links to it (the job spec's `pipelineIndex`). A page
that cannot be written now (the store is down) is tried again later: it never holds a
reconciliation up, and the next change writes it afresh anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fairpilot import access
from fairpilot.api.kinds import BIAS_ANALYSIS, DATASET, EXPLANATION, TRAINING_RUN, Kind
from fairpilot.artifacts import ArtifactStore
from fairpilot.config import OperatorConfig
from fairpilot.pipeline import child_name, dataset_by_reference, dataset_owner
from fairpilot.pipeline_index import INDEX_FILE, index_page, stages_of
from fairpilot.runs import pipeline_index_uri

log = logging.getLogger(__name__)
# How resources are read (Cluster.get): kind, namespace, name -> the resource or None.
Get = Callable[[Kind, str, str], dict[str, Any] | None]

# A pipeline block's key for each stage it may run after the Dataset's profile.
_STAGES: dict[str, Kind] = {
    "bias": BIAS_ANALYSIS,
    "training": TRAINING_RUN,
    "explanation": EXPLANATION,
}
PIPELINE_KINDS = (DATASET, *_STAGES.values())


def pipeline_of(get: Get, kind: Kind, resource: dict[str, Any]) -> dict[str, Any] | None:
    """The Dataset whose pipeline `resource` is a stage of (itself for a Dataset), as the API
    has it now (a stage's end has just updated its `status.pipeline`); None when `resource` is
    no pipeline's, or its Dataset is gone or was made again (another uid)."""
    meta = resource["metadata"]
    owner = {"name": meta["name"], "uid": meta.get("uid")} if kind is DATASET else None
    dataset = dataset_by_reference(
        owner or dataset_owner(resource), lambda name: get(DATASET, meta["namespace"], name)
    )
    if dataset is None or not (dataset.get("spec") or {}).get("pipeline"):
        return None
    return dataset


def _children(get: Get, dataset: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The pipeline's stage resources by kind (None: not made yet), for the stages its block
    runs. One of another owner under the stage's name is not this pipeline's: not shown."""
    meta, block = dataset["metadata"], (dataset.get("spec") or {}).get("pipeline") or {}
    found: dict[str, dict[str, Any] | None] = {}
    for key, kind in _STAGES.items():
        if block.get(key) is None:
            continue
        child = get(kind, meta["namespace"], child_name(meta["name"], kind))
        owner = dataset_owner(child) if child is not None else None
        found[kind.kind] = child if (owner or {}).get("uid") == meta.get("uid") else None
    return found


def write_index(get: Get, config: OperatorConfig, dataset: dict[str, Any]) -> str:
    """Write the pipeline's index page as the resources are now; its URI."""
    meta = dataset["metadata"]
    uri = pipeline_index_uri(config, dataset)
    page = index_page(
        meta["name"],
        meta["namespace"],
        stages_of(dataset, _children(get, dataset)),
        index_uri=uri,
        pipeline_phase=(dataset.get("status") or {}).get("pipeline"),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
    folder = uri.rsplit("/", 1)[0]
    store = ArtifactStore(folder, trusted=access.artifact_root(config, meta["namespace"]))
    return store.write_bytes(INDEX_FILE, page.encode("utf-8"), "text/html; charset=utf-8")


def refresh(get: Get, config: OperatorConfig, kind: Kind, resource: dict[str, Any]) -> bool:
    """Rewrite the index of the pipeline `resource` is a stage of (nothing for other resources);
    whether to try again later (it could not be written now)."""
    if kind not in PIPELINE_KINDS:
        return False
    meta = resource["metadata"]
    try:
        dataset = pipeline_of(get, kind, resource)
        if dataset is None:
            return False
        write_index(get, config, dataset)
    except Exception as exc:  # the store or the API server: the page waits, the stage does not
        log.warning(
            "the pipeline index of %s %s/%s could not be written now: %s",
            kind.kind, meta["namespace"], meta["name"], exc,
        )  # fmt: skip
        return True
    return False
