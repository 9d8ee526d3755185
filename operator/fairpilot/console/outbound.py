"""The Kafka events FairPilot sends for a resource, as the console shows them.

They are computed by `fairpilot.kinds.events_for`, the function the Kafka sink's `pending`
calls (bridge/publisher.py), from the resource as the API server has it and, through the
getter, the resources it references, read with the console's own read access. So the page
shows what the sink sends, with the same topics, keys and payloads, and the console needs no
access to Kafka. An event is delivered once its id is among those the outbox recorded under
`status.delivered.kafka` (after the broker acknowledged it); until then it is pending (Kafka
away, or no Kafka configured for the operator: nothing is then ever recorded).

An event that an earlier state called for (its Pending status event, once it runs; an earlier
run's, once the spec changed; an earlier window's alerts) is no longer called for by the
resource's state: its payload cannot be recomputed, so only the id the outbox recorded for it
is listed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fairpilot import settings
from fairpilot.api.kinds import Kind
from fairpilot.bridge.config import ENV_PREFIX
from fairpilot.bridge.publisher import KafkaSink
from fairpilot.console.data import Console, Resource
from fairpilot.events.outbound import Event
from fairpilot.events.topics import Topics
from fairpilot.kinds import events_for

# The payload fields that say what an event is about, shown beside it (all are in the JSON).
KEY_FIELDS = (
    "event_id",
    "user_id",
    "dataset_id",
    "model_id",
    "version",
    "phase",
    "alert_type",
    "feature",
    "window",
)


def topics_from_env(env: dict[str, str] | None = None) -> Topics:
    """The topic names as the operator reads them (FAIRPILOT_KAFKA_TOPIC_*): the console needs
    the names only, not the brokers."""
    return Topics.model_validate(settings.from_env(Topics, f"{ENV_PREFIX}TOPIC_", env))


@dataclass(frozen=True)
class KafkaEvent:
    """One event the resource's state calls for, and whether the outbox recorded it sent."""

    resource: Resource
    event: Event
    delivered: bool

    @property
    def event_type(self) -> str:
        return str(self.event.payload.get("event_type") or "")

    @property
    def fields(self) -> dict[str, Any]:
        payload = self.event.payload
        return {name: payload[name] for name in KEY_FIELDS if payload.get(name) is not None}

    @property
    def payload_json(self) -> str:
        """The payload as JSON (what the sink encodes, laid out to be read)."""
        return json.dumps(self.event.payload, indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class EarlierDelivery:
    """A delivery the outbox recorded that the resource's state no longer calls for (see the
    module's docstring)."""

    resource: Resource
    id: str


@dataclass(frozen=True)
class KafkaEvents:
    events: list[KafkaEvent]
    earlier: list[EarlierDelivery]
    # Resources whose events could not be computed, and why (the sink would fail on them too).
    failed: list[tuple[Resource, str]]


def delivered_ids(resource: Resource) -> list[str]:
    """What the outbox recorded as sent to Kafka for the resource."""
    recorded = (resource.status.get("delivered") or {}).get(KafkaSink.name) or []
    return [str(each) for each in recorded]


def kafka_events(console: Console, resources: Iterable[Resource]) -> KafkaEvents:
    """The Kafka events of `resources` (a resource, or a pipeline's stages), each resource's in
    the order the sink sends them."""

    def get(kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        # As the bridge's getter (Bridge._get), within the namespaces the console serves.
        if not name or not console.serves(namespace):
            return None
        return console.cluster.get(kind, namespace, name)

    events: list[KafkaEvent] = []
    earlier: list[EarlierDelivery] = []
    failed: list[tuple[Resource, str]] = []
    for resource in resources:
        if not resource.uid:
            continue  # not made by an API server: no event can name it
        done = delivered_ids(resource)
        try:
            called_for = events_for(resource.kind, resource.obj, console.topics, get)
        except Exception as exc:  # one resource's odd status must not hide the page
            failed.append((resource, f"{type(exc).__name__}: {exc}"))
            continue
        events += [KafkaEvent(resource, event, event.id in done) for event in called_for]
        current = {event.id for event in called_for}
        earlier += [EarlierDelivery(resource, each) for each in done if each not in current]
    return KafkaEvents(events, earlier, failed)
