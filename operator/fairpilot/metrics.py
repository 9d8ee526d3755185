"""Prometheus metrics of the operator, its Kafka bridge and its outboxes: one registry, one module.

Every layer that counts something imports this; it imports nothing of FairPilot, so it sits at
the bottom with the API client and the artifact store."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

RECONCILIATIONS = Counter(
    "fairpilot_reconciliations_total", "Reconciliations, by kind and outcome", ["kind", "outcome"]
)
PHASE_CHANGES = Counter(
    "fairpilot_phase_transitions_total", "Resources entering a phase, by kind", ["kind", "phase"]
)
JOB_OUTCOMES = Counter("fairpilot_job_outcomes_total", "Finished stage Jobs", ["stage", "outcome"])
STAGE_SECONDS = Histogram(
    "fairpilot_stage_duration_seconds",
    "From Job creation to the stage's end",
    ["stage"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
RECONCILE_SECONDS = Histogram(
    "fairpilot_reconcile_duration_seconds", "Time spent in one reconciliation", ["kind"]
)

CONSUMED = Counter("fairpilot_kafka_consumed_total", "Messages consumed", ["topic"])
CREATED = Counter(
    "fairpilot_kafka_resources_created_total",
    "Resources created from messages (outcome: created, or exists for a redelivery)",
    ["kind", "outcome"],
)
DEAD_LETTERED = Counter(
    "fairpilot_kafka_dead_lettered_total", "Messages sent to the dead-letter topic", ["reason"]
)
PRODUCED = Counter("fairpilot_kafka_produced_total", "Events produced", ["topic"])
FAILED = Counter(
    "fairpilot_kafka_failures_total",
    "Operations that failed and will be retried (create, produce, commit, warehouse)",
    ["operation"],
)
LAG = Gauge(
    "fairpilot_kafka_consumer_lag",
    "Messages not yet consumed (high-water mark minus position)",
    ["topic", "partition"],
)
PENDING = Gauge("fairpilot_outbox_pending", "Resources with deliveries still to make", ["sink"])
DELIVERED = Counter(
    "fairpilot_outbox_delivered_total", "Deliveries made (events sent, documents written)", ["sink"]
)

# Prediction records (a ModelMonitor's spec.kafka) gathered into windows by the bridge; records
# it cannot use count in fairpilot_kafka_dead_lettered_total with the reason.
PREDICTIONS_CONSUMED = Counter(
    "fairpilot_prediction_records_consumed_total", "Prediction records consumed", ["topic"]
)
PREDICTIONS_WINDOWED = Counter(
    "fairpilot_prediction_records_windowed_total",
    "Prediction records written into a monitor's window (a record for two monitors counts twice)",
)
PREDICTION_WINDOWS = Counter(
    "fairpilot_prediction_windows_written_total",
    "Windows of prediction records written, by why they closed (count, time, memory)",
    ["reason"],
)
PREDICTION_WINDOWS_OPEN = Gauge(
    "fairpilot_prediction_windows_open", "Windows of prediction records still collecting"
)
PREDICTION_BUFFERED_BYTES = Gauge(
    "fairpilot_prediction_buffered_bytes", "Bytes of prediction records held in open windows"
)

# A ModelMonitor's last window, per monitor (namespace, name) and feature or metric: what a
# Prometheus alert rule or a Grafana panel watches. Set from the status (observe_monitor).
MONITOR_LABELS = ["namespace", "monitor"]
MONITOR_PSI = Gauge(
    "fairpilot_monitor_feature_psi",
    "Population stability index of a feature in a monitor's last window",
    [*MONITOR_LABELS, "feature"],
)
MONITOR_FAIRNESS = Gauge(
    "fairpilot_monitor_fairness",
    "A sensitive feature's fairness measure in a monitor's last window",
    [*MONITOR_LABELS, "feature", "metric"],
)
MONITOR_VALUE = Gauge(
    "fairpilot_monitor_value",
    "A monitor's last window: rows, maxPsi, predictionPsi, score, window (its number)",
    [*MONITOR_LABELS, "metric"],
)
MONITOR_ALERT = Gauge(
    "fairpilot_monitor_alert",
    "1 while a monitor's condition of this type is True (DriftDetected, BiasDrift, ...)",
    [*MONITOR_LABELS, "type"],
)
MONITOR_DATA_AGE = Gauge(
    "fairpilot_monitor_newest_data_timestamp_seconds",
    "When the newest batch under a monitor's prefix was written (Unix time)",
    MONITOR_LABELS,
)
ALERT_TYPES = ("DriftDetected", "BiasDrift", "PerformanceDegraded", "DataStale")


def observe_monitor(namespace: str, name: str, status: dict[str, Any]) -> None:
    """Set a monitor's gauges from its status (its last window and its conditions)."""
    from datetime import datetime

    labels = (namespace, name)
    for feature, psi in (status.get("featurePsi") or {}).items():
        MONITOR_PSI.labels(*labels, feature).set(psi)
    last = (status.get("windows") or [{}])[-1]
    for metric in ("disparateImpact", "statisticalParityDifference"):
        for feature, value in (last.get(metric) or {}).items():
            if value is not None:
                MONITOR_FAIRNESS.labels(*labels, feature, metric).set(value)
    for metric in ("rows", "maxPsi", "predictionPsi", "score", "window"):
        value = last.get(metric)
        if isinstance(value, int | float):
            MONITOR_VALUE.labels(*labels, metric).set(value)
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    for type_ in ALERT_TYPES:
        if type_ in conditions:
            MONITOR_ALERT.labels(*labels, type_).set(1 if conditions[type_] == "True" else 0)
    newest = status.get("newestDataAt")
    if newest:
        try:
            moment = datetime.fromisoformat(newest.replace("Z", "+00:00"))
        except ValueError:
            return
        MONITOR_DATA_AGE.labels(*labels).set(moment.timestamp())


def forget_monitor(namespace: str, name: str) -> None:
    """Drop a deleted monitor's series."""
    for gauge in (MONITOR_PSI, MONITOR_FAIRNESS, MONITOR_VALUE, MONITOR_ALERT, MONITOR_DATA_AGE):
        for labels in list(gauge._metrics):
            if labels[:2] == (namespace, name):
                gauge.remove(*labels)
