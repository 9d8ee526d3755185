"""The test kit for FairPilot in the sandbox, as `kopf.testing` is Kopf's.

For tests and benchmarks that drive a `Sandbox` (sandbox/app.py): build resources, wait for
their states, send Kafka messages as the seed's apps do and read the topics back. Import it as
a library (`from fairpilot.sandbox.testing import resource, wait_for`); it needs nothing from
the repository's `tests/` folder.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from fairpilot import API_GROUP, API_VERSION
from fairpilot.events.topics import Topics
from fairpilot.sandbox.app import Sandbox

# Six rows, a binary label and one sensitive feature: every stage on it takes a second or two.
TINY_CSV = "age,sex,income\n25,F,no\n38,M,yes\n52,M,yes\n41,F,no\n30,F,yes\n45,M,no\n"
# The topics FairPilot adds to the seed's, as the bridge names them by default.
STATUS, DEAD = Topics().status, Topics().dead_letter


# -- resources ----------------------------------------------------------------------------------
def resource(
    kind: str, name: str, spec: dict[str, Any], namespace: str | None = None
) -> dict[str, Any]:
    """A FairPilot resource; without a namespace, `Sandbox.apply` puts it in its own."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": kind,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "spec": spec,
    }


def by_name(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in sandbox.resources()}


def wait_for(
    sandbox: Sandbox, name: str, check: Callable[[dict[str, Any]], Any], timeout: float = 60
) -> dict[str, Any]:
    """The resource once `check(status)` holds; fails with its last status otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = by_name(sandbox).get(name)
        if item is not None and check(item.get("status") or {}):
            return item
        time.sleep(0.2)
    raise AssertionError(f"{name}: {by_name(sandbox).get(name, {}).get('status')}")


def eventually(condition: Callable[[], Any], timeout: float = 20) -> Any:
    """The first truthy value of `condition()` within `timeout`, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def delivered(sandbox: Sandbox, name: str, event: str) -> bool:
    """Whether the resource records `event` as sent to Kafka (its outbox's `delivered`)."""
    item = by_name(sandbox).get(name) or {}
    return event in ((item.get("status") or {}).get("delivered") or {}).get("kafka", [])


# -- Kafka, as the seed's apps use it ----------------------------------------------------------
def bias_trigger(dataset_id: str, **fields: Any) -> dict[str, Any]:
    """A bias-trigger message as the seed's apps send it (seed 001's example, docs/seeds.md),
    for `dataset_id`, measured on `sex`; `fields` change or add fields."""
    return {
        "event_type": "bias-trigger.reported",
        "dataset_id": dataset_id,
        "user_id": "user123",
        "target_column_name": "target",
        "task_type": "classification",
        "timestamp": "2025-10-10T12:00:00.000000",
        "metadata": {},
        "record_count": 1000,
        "sensitive_features": ["sex"],
        **fields,
    }


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
    try:  # a start that fails (no broker) leaves a producer to stop too
        await producer.start()
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
    """`read` for a caller that is already in an event loop."""
    reader = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    got: list[ConsumerRecord] = []
    try:  # a start that fails leaves a consumer to stop too
        await reader.start()
        quiet_since = time.monotonic()
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
