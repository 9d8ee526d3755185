"""Loading a model that the train stage stored."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

from fairpilot_jobs import artifacts
from fairpilot_jobs.errors import JobError

METADATA_FILE = "fairpilot-model.json"


def load_predictor(uri: str, stack: ExitStack) -> tuple[Any, dict[str, Any]]:
    """The AutoGluon predictor under `uri` (a train stage's `model/`) and its metadata.

    `stack` keeps a downloaded copy alive for as long as the caller needs the predictor.
    """
    from autogluon.tabular import TabularPredictor

    try:
        path = stack.enter_context(artifacts.local_dir(uri))
    except JobError as exc:
        raise JobError("ModelNotFound", f"no model at {uri}: {exc.message}") from exc
    if not (path / "predictor.pkl").is_file():
        raise JobError(
            "ModelNotFound",
            f"{uri} holds no model (no predictor.pkl); give the model/ directory of a train stage",
        )
    metadata_path = path / METADATA_FILE
    metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
    try:
        predictor = TabularPredictor.load(str(path), check_packages=False, verbosity=0)
    except Exception as exc:
        raise JobError("ModelNotLoadable", f"the model at {uri} cannot be loaded: {exc}") from exc
    return predictor, metadata
