"""Seed 001's Kafka payloads (summarised in docs/seeds.md), copied verbatim from the seed file.

The seed is the compatibility contract with the apps that already exist: these are its example
payloads, and FairPilot's must carry every field they show. A test checks this copy against
the seed file when the file is there (it lives outside the repository).
"""

from __future__ import annotations

from pathlib import Path

SEED_FILE = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "001_b867c2549261a355.txt"
BIAS_TRIGGER = {
    "event_type": "bias-trigger.reported",
    "dataset_id": "dataset123",
    "user_id": "user123",
    "target_column_name": "target",
    "task_type": "classification",
    "timestamp": "2025-10-10T12:00:00.000000",
    "metadata": {},
    "record_count": 1000,
}
BIAS_REPORTED = {
    "event_type": "bias.reported",
    "dataset_id": "dataset123",
    "user_id": "user123",
    "bias_report_id": "report_id",
    "has_transformation_report": False,
    "target_column_name": "target",
    "task_type": "classification",
    "timestamp": "2025-10-10T12:00:00.000000",
}
AUTOML_TRIGGER = {
    "event_type": "automl-trigger.reported",
    "dataset_id": "dataset123",
    "user_id": "user123",
    "target_column_name": "target",
    "task_type": "classification",
    "time_budget": "10",
    "timestamp": "2025-10-10T12:00:00.000000",
}
MODEL_UPLOADED = {
    "event_type": "model.uploaded",
    "event_id": "model_uploaded_model123_1728561234",
    "timestamp": "2025-10-10T12:00:00.000000",
    "user_id": "user123",
    "model_id": "model123",
    "dataset_id": "dataset123",
    "version": "v1",
    "framework": "sklearn",
    "model_type": "classification",
    "algorithm": "RandomForest",
    "model_size_mb": 25.5,
    "training_accuracy": 0.95,
    "validation_accuracy": 0.93,
    "test_accuracy": 0.92,
}
XAI_TRIGGER = {
    "event_type": "xai-trigger.reported",
    "user_id": "user123",
    "dataset_id": "dataset123",
    "model_id": "model123",
    "version": "v1",
    "level": "beginner",
    "timestamp": "2025-10-10T12:00:00.000000",
}
XAI_REPORTED = {
    "event_type": "xai.reported",
    "event_id": "xai_reported_model123_1728561234",
    "timestamp": "2025-10-10T12:00:00.000000",
    "user_id": "user123",
    "dataset_id": "dataset123",
    "model_id": "model123",
    "report_type": "model_explanation",
    "level": "beginner",
    "xai_report_id": "report_id",
}
# Outbound topic -> the seed's example of what is produced there.
OUTBOUND = {
    "bias-events": BIAS_REPORTED,
    "automl-events": MODEL_UPLOADED,
    "xai-events": XAI_REPORTED,
}
INBOUND = {
    "bias-trigger-events": BIAS_TRIGGER,
    "automl-trigger-events": AUTOML_TRIGGER,
    "xai-trigger-events": XAI_TRIGGER,
}


def check_against_seed(produced: dict, topic: str, *, nullable: tuple[str, ...] = ()) -> None:
    """Every field of the seed's example is there, filled, with the seed's JSON type."""
    example = OUTBOUND[topic]
    missing = sorted(set(example) - set(produced))
    assert not missing, f"{topic}: missing {missing}"
    for field, value in example.items():
        if produced[field] is None:
            assert field in nullable, f"{topic}: {field} is null"
            continue
        expected = float if isinstance(value, float) else type(value)
        got = produced[field]
        assert isinstance(got, expected) or (expected is float and isinstance(got, int)), (
            f"{topic}: {field} is {type(got).__name__}, the seed has {expected.__name__}"
        )
        if isinstance(value, str):
            assert got != "", f"{topic}: {field} is empty"
    assert produced["event_type"] == example["event_type"]
