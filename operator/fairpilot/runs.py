"""Runs: each execution of a resource's stage, and the places a run writes to.

A resource runs its stage once per spec generation, and again when an input it used changed
(a TrainingRun retrained under its Explanation): run `g3` is generation 3's first run, `g3r1`
its first re-run. The run id names the Job and the output location, so that

- a restarted operator finds the Job of the run it started (the id is in the status before the
  Job exists), and
- every run writes where no other run can: the output path holds the resource's uid (a
  resource deleted and created again under the same name is another resource) and the run id.
  The stage refuses a location another run already wrote to (`fairpilot-job --run-id`).

Every namespace writes under its own prefix (`access.artifact_root`), and ids chosen by users
become folder names one to one (`access.folder_name`): two users never share a folder.
Models are kept apart the way seed 004's registry keeps them: per user, model id and version
(`<namespace root>/<user>/models/<model id>/<version>/`), and a version is never given twice.
"""

from __future__ import annotations

import re
from typing import Any

from fairpilot.access import artifact_root, folder_name
from fairpilot.api.kinds import Kind
from fairpilot.config import OperatorConfig

_RUN = re.compile(r"^g(\d+)(?:r(\d+))?$")


def run_id(generation: int, rerun: int = 0) -> str:
    return f"g{generation}" if rerun == 0 else f"g{generation}r{rerun}"


def parse_run(run: str) -> tuple[int, int]:
    """(generation, re-run number) of a run id."""
    found = _RUN.match(run)
    if found is None:
        raise ValueError(f"not a run id: {run!r}")
    return int(found.group(1)), int(found.group(2) or 0)


def current_run(status: dict[str, Any], generation: int) -> str:
    """The run the status describes if it is about this generation, else the generation's
    first run (a new spec generation starts afresh)."""
    run = status.get("runId")
    if status.get("observedGeneration") == generation and isinstance(run, str) and _RUN.match(run):
        return run
    return run_id(generation)


def output_uri(config: OperatorConfig, kind: Kind, resource: dict[str, Any], run: str) -> str:
    """Where one run writes: under its namespace's prefix, per user, kind, resource (name and
    uid) and run."""
    meta, spec = resource["metadata"], resource.get("spec") or {}
    root = artifact_root(config, meta["namespace"])
    user = folder_name(spec.get("userId"))
    uid = folder_name(meta.get("uid") or "no-uid")
    return f"{root}/{user}/{kind.plural}/{meta['name']}/{uid}/{run}"


def pipeline_index_uri(config: OperatorConfig, dataset: dict[str, Any]) -> str:
    """Where the index page of a Dataset's pipeline lies: in the Dataset's own folder (by uid),
    beside its runs and outside every run's claimed location, so the operator may rewrite it."""
    meta, spec = dataset["metadata"], dataset.get("spec") or {}
    root = artifact_root(config, meta["namespace"])
    user = folder_name(spec.get("userId"))
    uid = folder_name(meta.get("uid") or "no-uid")
    return f"{root}/{user}/datasets/{meta['name']}/{uid}/index.html"


def records_uri(config: OperatorConfig, resource: dict[str, Any]) -> str:
    """Where the Kafka bridge writes a ModelMonitor's windows of prediction records: its own
    folder (by uid), beside its runs, never another monitor's."""
    meta, spec = resource["metadata"], resource.get("spec") or {}
    root = artifact_root(config, meta["namespace"])
    user = folder_name(spec.get("userId"))
    uid = folder_name(meta.get("uid") or "no-uid")
    return f"{root}/{user}/modelmonitors/{meta['name']}/{uid}/records"


def model_registry_uri(
    config: OperatorConfig, namespace: str, user: str | None, model_id: str
) -> str:
    """The folder of one model's versions (seed 004: models/<user>/<model id>/<version>/),
    under the namespace's prefix: a team's models are its own."""
    root = artifact_root(config, namespace)
    return f"{root}/{folder_name(user)}/models/{folder_name(model_id)}"


_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def next_version(version: str, taken: set[str]) -> str:
    """`version` if it is free, else the next free one: v1 -> v2, 1.4 -> 1.5, beta -> beta-2."""
    candidate = version
    while candidate in taken:
        found = _TRAILING_NUMBER.match(candidate)
        if found:
            head, number = found.groups()
            candidate = f"{head}{int(number) + 1}"
        else:
            candidate = f"{version}-2"
            version = candidate  # from here on the trailing number counts up
    return candidate


def model_id_of(run: dict[str, Any]) -> str:
    """A TrainingRun's model id: its spec's, else its name (what the train stage records)."""
    return (run.get("spec") or {}).get("modelId") or run["metadata"]["name"]
