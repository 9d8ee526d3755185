"""Loading a model that the train stage stored, once it is proven to be that model."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

from fairpilot_jobs.errors import JobError
from fairpilot_jobs.model_digest import verified_copy

METADATA_FILE = "fairpilot-model.json"


def load_predictor(uri: str, digest: str | None, stack: ExitStack) -> tuple[Any, dict[str, Any]]:
    """The AutoGluon predictor under `uri` (a train stage's `model/`) and its metadata.

    A predictor is a tree of pickles, and unpickling runs code: the whole directory is first
    checked against `digest` (the train stage's `modelDigest`, see fairpilot_jobs.model_digest)
    and copied to a private directory, and only that copy is loaded. No digest, no load.
    `stack` keeps the copy alive for as long as the caller needs the predictor.
    """
    path, _ = verified_copy(uri, digest, stack)
    if not (path / "predictor.pkl").is_file():
        raise JobError(
            "ModelNotFound",
            f"{uri} holds no model (no predictor.pkl); give the model/ directory of a train stage",
        )
    metadata_path = path / METADATA_FILE
    metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
    from autogluon.tabular import TabularPredictor

    try:
        predictor = TabularPredictor.load(str(path), check_packages=False, verbosity=0)
    except Exception as exc:
        raise JobError("ModelNotLoadable", f"the model at {uri} cannot be loaded: {exc}") from exc
    return predictor, metadata
