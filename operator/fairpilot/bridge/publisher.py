"""The outbound half of the bridge: the outbox's Kafka sink."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fairpilot import metrics
from fairpilot.api.kinds import Kind
from fairpilot.events.outbound import Event, Get
from fairpilot.events.topics import Topics
from fairpilot.kinds import events_for
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
    """Sends a resource's events (kinds.events_for) with acks=all, one after the other.

    A send that fails may still have reached the broker (its acknowledgement lost with the
    connection, or a request that timed out while the broker wrote it): such an event is
    "unsure", and before it is sent again the tails of the outbound topics are read back, so
    that one that did land is recorded as delivered instead of sent twice. An idempotent
    producer cannot cover this: the outbox's retry is a new send, not the producer's own.
    """

    name = "kafka"

    def __init__(
        self,
        producer: Any,
        topics: Topics,
        get: Get,
        connected: asyncio.Event | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.get = get
        self.connected = connected  # set once the producer has reached the brokers
        self.options = options or {}  # client options (bootstrap, security) for reading back
        self._unsure: dict[str, str] = {}  # delivery header -> topic, of failed sends
        self._landed: set[str] = set()  # unsure ones found in the log, not yet reported
        self._settling = asyncio.Lock()

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
            raise ConnectionError("not connected to Kafka yet")  # nothing was sent
        tag = f"{outgoing.uid}/{event.id}"
        if tag in self._unsure and await self._landed_before(tag):
            log.info("%s was delivered by an attempt that seemed to fail", tag)
            return
        try:
            await self.producer.send_and_wait(
                event.topic,
                value=encode(event.payload),
                key=event.key.encode(),
                headers=[(DELIVERY_HEADER, tag.encode())],
            )
        except Exception:
            self._unsure[tag] = event.topic
            raise
        metrics.PRODUCED.labels(event.topic).inc()

    async def _landed_before(self, tag: str) -> bool:
        """Whether an earlier, failed send of `tag` is in the log; raises when the log cannot
        be read (the event is then retried later, still unsure)."""
        async with self._settling:  # one read-back settles every unsure event at once
            if tag in self._unsure:  # not settled by another worker's read-back meanwhile
                unsure = dict(self._unsure)
                found = await self.recover(topics=sorted(set(unsure.values())))
                for each in unsure:
                    del self._unsure[each]
                    uid, _, delivery_id = each.partition("/")
                    if delivery_id in found.get(uid, ()):
                        self._landed.add(each)
            if tag in self._landed:
                self._landed.discard(tag)
                return True
            return False

    def outbound_topics(self) -> list[str]:
        topics = self.topics
        return [topics.bias, topics.automl, topics.xai, topics.drift, topics.status]

    async def recover(
        self,
        topics: list[str] | None = None,
        tail: int = RECOVERY_TAIL,
        timeout: float = 60,
    ) -> dict[str, set[str]]:
        """What was sent to the outbound topics (or `topics`), by resource uid, read back.

        The outbox records a delivery on the resource after the broker acknowledged it; an
        operator killed between the two would otherwise send that event again. The log is
        the truth of what was sent, so a new operator reads its tail before sending anything.
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        found: dict[str, set[str]] = {}
        reader = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **self.options)
        try:  # stop() also closes a reader whose start failed (the broker is still away)
            await reader.start()
            existing = await reader.topics()
            partitions = [
                TopicPartition(topic, partition)
                for topic in topics or self.outbound_topics()
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
