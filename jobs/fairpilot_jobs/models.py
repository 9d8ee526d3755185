"""Loading a model that the train stage stored, once it is proven to be that model."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

from fairpilot.errors import JobError
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


def predict(predictor: Any, metadata: dict[str, Any], frame: Any) -> Any:
    """The model's decisions on `frame`, as FairPilot measured them.

    A model trained with `fairness.method: thresholds` carries one decision threshold on
    P(positive) per group of a sensitive feature (`decision_thresholds` in its metadata); the
    row's group is read from `frame[feature]`, which must be there. Any other model decides as
    AutoGluon does. Use this, not `predictor.predict`, for the decisions whose fairness the
    training report shows:

        with ExitStack() as stack:
            predictor, metadata = load_predictor(uri, digest, stack)
            decisions = predict(predictor, metadata, rows)
    """
    import numpy as np
    import pandas as pd

    from fairpilot_jobs.thresholds import decide, group_labels

    rule = metadata.get("decision_thresholds")
    if not rule:
        return predictor.predict(frame)
    feature = rule["feature"]
    if feature not in frame.columns:
        raise JobError(
            "SensitiveFeatureNotFound",
            f"this model decides with a threshold per group of {feature!r}: give that column",
        )
    classes = list(predictor.class_labels)
    positive = classes[[str(c) for c in classes].index(str(rule["positiveLabel"]))]
    negative = next(c for c in classes if c != positive)
    probability = predictor.predict_proba(frame)[positive].to_numpy()
    chosen = decide(probability, group_labels(frame[feature]), rule["thresholds"])
    return pd.Series(np.where(chosen, positive, negative), index=frame.index, name=predictor.label)
