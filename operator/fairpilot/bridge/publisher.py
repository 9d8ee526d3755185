"""The outbound half of the bridge: the outbox's Kafka sink."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fairpilot.api.kinds import Kind
from fairpilot.bridge import metrics
from fairpilot.bridge.config import Topics
from fairpilot.bridge.outbound import Event, Get, events_for
from fairpilot.outbox import Delivery

log = logging.getLogger(__name__)
# Every event carries `<resource uid>/<delivery id>` in this header, so that a new operator can
# read what its predecessor sent (see KafkaSink.recover).
DELIVERY_HEADER = "fairpilot-delivery"
# How far back recovery reads each partition of the outbound topics: the events a crashed
# operator sent but had not recorded yet are among its last few; this bounds the start-up read.
RECOVERY_TAIL = 20_000


@dataclass(frozen=True)
class Outgoing:
    event: Event
    uid: str


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
        uid = (resource.get("metadata") or {}).get("uid", "")
        return [
            Delivery(event.id, Outgoing(event, uid))
            for event in events_for(kind, resource, self.topics, self.get, done)
        ]

    async def deliver(self, delivery: Delivery) -> None:
        outgoing: Outgoing = delivery.item
        event = outgoing.event
        if self.connected is not None and not self.connected.is_set():
            raise ConnectionError("not connected to Kafka yet")
        await self.producer.send_and_wait(
            event.topic,
            value=encode(event.payload),
            key=event.key.encode(),
            headers=[(DELIVERY_HEADER, f"{outgoing.uid}/{event.id}".encode())],
        )
        metrics.PRODUCED.labels(event.topic).inc()

    def outbound_topics(self) -> list[str]:
        topics = self.topics
        return [topics.bias, topics.automl, topics.xai, topics.status]

    async def recover(
        self, options: dict[str, Any], tail: int = RECOVERY_TAIL, timeout: float = 60
    ) -> dict[str, set[str]]:
        """What earlier operators sent, by resource uid, read back from the outbound topics.

        The outbox records a delivery on the resource after the broker acknowledged it; an
        operator killed between the two would otherwise send that event again. The log is
        the truth of what was sent, so a new operator reads its tail before sending anything.
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        found: dict[str, set[str]] = {}
        reader = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **options)
        await reader.start()
        try:
            existing = await reader.topics()
            partitions = [
                TopicPartition(topic, partition)
                for topic in self.outbound_topics()
                if topic in existing
                for partition in sorted(reader.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                return found
            reader.assign(partitions)
            ends = await reader.end_offsets(partitions)
            starts = await reader.beginning_offsets(partitions)
            left = set()
            for partition in partitions:
                if ends[partition] > starts[partition]:
                    reader.seek(partition, max(starts[partition], ends[partition] - tail))
                    left.add(partition)
            deadline = time.monotonic() + timeout
            while left and time.monotonic() < deadline:
                batch = await reader.getmany(timeout_ms=500, max_records=5000)
                for partition, records in batch.items():
                    for record in records:
                        for name, value in record.headers or ():
                            if name == DELIVERY_HEADER:
                                uid, _, delivery = value.decode(errors="replace").partition("/")
                                found.setdefault(uid, set()).add(delivery)
                        if record.offset + 1 >= ends[partition]:
                            left.discard(partition)
            if left:
                log.warning(
                    "recovery read stopped after %.0f s; %d partitions unread", timeout, len(left)
                )
        finally:
            await reader.stop()
        return found
