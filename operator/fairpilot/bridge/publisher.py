"""The outbound half of the bridge: the outbox's Kafka sink."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fairpilot.api.kinds import Kind
from fairpilot.bridge import metrics
from fairpilot.bridge.config import Topics
from fairpilot.bridge.outbound import Event, Get, events_for
from fairpilot.outbox import Delivery


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class KafkaSink:
    """Sends a resource's events (outbound.events_for) with acks=all, one after the other."""

    name = "kafka"

    def __init__(
        self, producer: Any, topics: Topics, get: Get, connected: asyncio.Event | None = None
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.get = get
        self.connected = connected  # set once the producer has reached the brokers

    def pending(self, kind: Kind, resource: dict[str, Any], done: set[str]) -> list[Delivery]:
        return [
            Delivery(event.id, event)
            for event in events_for(kind, resource, self.topics, self.get, done)
        ]

    async def deliver(self, delivery: Delivery) -> None:
        event: Event = delivery.item
        if self.connected is not None and not self.connected.is_set():
            raise ConnectionError("not connected to Kafka yet")
        await self.producer.send_and_wait(
            event.topic, value=encode(event.payload), key=event.key.encode()
        )
        metrics.PRODUCED.labels(event.topic).inc()
