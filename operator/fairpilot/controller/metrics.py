"""Prometheus metrics of the operator, served on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
