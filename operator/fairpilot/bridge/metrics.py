"""Prometheus metrics of the Kafka bridge and the outbox (served with the operator's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
