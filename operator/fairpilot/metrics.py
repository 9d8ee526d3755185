"""Prometheus metrics of the operator, its Kafka bridge and its outboxes: one registry, one module.

Every layer that counts something imports this; it imports nothing of FairPilot, so it sits at
the bottom with the API client and the artifact store."""

from __future__ import annotations

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
