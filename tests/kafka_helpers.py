"""Kafka as the seed's apps use it: produce messages, read the topics back (tests and bench)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import seed_payloads as seed
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from sandbox_helpers import by_name

from fairpilot.sandbox.app import Sandbox

STATUS, DEAD = "fairpilot-status-events", "fairpilot-dead-letter"


async def _produce(
    bootstrap: str, messages: list[tuple[str, bytes | None]], pipelined: bool
) -> None:
    # Tansu has no idempotent producer (sandbox/kafka.py).
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5 if pipelined else 0,
    )
    await producer.start()
    try:
        if pipelined:  # as a busy app would: batches in flight, then wait for them all
            sent = [await producer.send(topic, value, key=b"k") for topic, value in messages]
            await asyncio.gather(*sent)
        else:  # one at a time, so the order on the topic is the order given
            for topic, value in messages:
                await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


def produce(bootstrap: str, messages: list[tuple[str, Any]], *, pipelined: bool = False) -> None:
    """Send (topic, payload) pairs; a dict payload is sent as JSON, bytes/None as they are."""
    encoded = [
        (topic, json.dumps(value).encode() if isinstance(value, dict) else value)
        for topic, value in messages
    ]
    asyncio.run(_produce(bootstrap, encoded, pipelined))


async def read_async(
    bootstrap: str, topics: list[str], settle: float = 1.5
) -> list[ConsumerRecord]:
    """`read` for a test that is already in an event loop."""
    reader = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    got: list[ConsumerRecord] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < settle:
            batch = await reader.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                got += records
                quiet_since = time.monotonic()
    finally:
        await reader.stop()
    return got


def read(bootstrap: str, topics: list[str], settle: float = 1.5) -> list[ConsumerRecord]:
    """Every record on the topics so far (reads until nothing new came for `settle` seconds)."""
    return asyncio.run(read_async(bootstrap, topics, settle))


def read_until(
    bootstrap: str,
    topics: list[str],
    enough: Callable[[list[ConsumerRecord]], bool],
    timeout: float,
) -> list[ConsumerRecord]:
    """The records on the topics once `enough` of them are there (or at `timeout`), for
    events sent a moment after what caused them (the outbox's, dead letters)."""
    deadline = time.monotonic() + timeout
    records = read(bootstrap, topics, settle=1)
    while not enough(records) and time.monotonic() < deadline:
        records = read(bootstrap, topics, settle=1)
    return read(bootstrap, topics, settle=2)  # and whatever (a duplicate, say) came after


def payloads(records: list[ConsumerRecord], topic: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records if r.topic == topic]


def delivered(sandbox: Sandbox, name: str, event: str) -> bool:
    item = by_name(sandbox).get(name) or {}
    return event in ((item.get("status") or {}).get("delivered") or {}).get("kafka", [])


def trigger(dataset_id: str, **extra: Any) -> dict[str, Any]:
    return {**seed.BIAS_TRIGGER, "dataset_id": dataset_id, "sensitive_features": ["sex"], **extra}
