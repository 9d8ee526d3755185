"""The outbox's Kafka sink against a real broker (Tansu): a send that seemed to fail is read back
before it is sent again, so that one that did land is not sent twice.

What cannot be timed from outside (the connection dropping after the broker wrote a batch and
before its acknowledgement came back) is made by a producer that passes each send to the real
producer and then reports a failure, as aiokafka does when the connection is lost.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaConnectionError

from fairpilot.bridge.publisher import DELIVERY_HEADER, KafkaSink, Outgoing
from fairpilot.events.outbound import Event
from fairpilot.events.topics import Topics
from fairpilot.outbox import Delivery
from fairpilot.sandbox.kafka import create_topics, free_port, running_broker
from fairpilot.sandbox.testing import read, read_async

TOPIC = Topics().status


class LosesAcks:
    """The real producer, except that the first `failing` sends report a lost connection:
    after the broker has them (`reached=True`) or before it does."""

    def __init__(self, producer: AIOKafkaProducer, failing: int, *, reached: bool) -> None:
        self.producer = producer
        self.failing = failing
        self.reached = reached

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            self.failing -= 1
            if self.reached:
                await self.producer.send_and_wait(*args, **kwargs)
            raise KafkaConnectionError("connection lost before the acknowledgement")
        return await self.producer.send_and_wait(*args, **kwargs)


@pytest.fixture
def bootstrap() -> Iterator[str]:
    with running_broker() as address:
        create_topics(address, [TOPIC], partitions=2)
        yield address


def sink_over(producer: LosesAcks, bootstrap: str) -> KafkaSink:
    return KafkaSink(
        producer, Topics(), get=lambda *_: None, options={"bootstrap_servers": bootstrap}
    )


def delivery(uid: str, n: int) -> Delivery:
    event = Event(f"status/g1/{n}", TOPIC, uid, {"event_id": f"{uid}-{n}"})
    return Delivery(event.id, Outgoing(event, uid))


def headers(records: list[ConsumerRecord]) -> Counter[str]:
    """How often each delivery is on the topic."""
    return Counter(
        value.decode() for record in records for name, value in record.headers
        if name == DELIVERY_HEADER
    )  # fmt: skip


async def deliver_with_retries(sink: KafkaSink, items: list[Delivery]) -> int:
    """Deliver each as the outbox does (again after a failure); the number of failures."""
    failures = 0
    for item in items:
        while True:
            try:
                await sink.deliver(item)
                break
            except KafkaConnectionError:
                failures += 1
    return failures


@pytest.mark.parametrize("reached", [True, False], ids=["ack-lost", "request-lost"])
def test_a_send_that_seemed_to_fail_is_in_the_log_once(bootstrap: str, reached: bool) -> None:
    async def scenario() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
        try:  # a start that fails leaves a producer to stop too
            await producer.start()
            sink = sink_over(LosesAcks(producer, failing=3, reached=reached), bootstrap)
            return await deliver_with_retries(sink, [delivery("u1", n) for n in range(5)])
        finally:
            await producer.stop()

    failures = asyncio.run(scenario())
    on_topic = headers(read(bootstrap, [TOPIC]))
    assert failures == 3
    assert on_topic == Counter({f"u1/status/g1/{n}": 1 for n in range(5)}), on_topic


def test_an_unsure_send_waits_out_the_broker_and_is_not_repeated(s3_client: Any) -> None:
    """The ack is lost and the broker goes away: nothing is sent again until the read-back
    can say whether the event landed, and once the broker is back it is found there."""
    s3_client.create_bucket(Bucket="tansu-sink")  # the log survives the broker's restart
    port, storage = free_port(), "s3://tansu-sink/"
    tag = "u2/status/g1/0"

    async def scenario() -> Counter[str]:
        broker = running_broker(port, storage=storage)
        address = broker.__enter__()
        create_topics(address, [TOPIC], partitions=2)
        producer = AIOKafkaProducer(bootstrap_servers=address, enable_idempotence=False)
        try:
            await producer.start()
            sink = sink_over(LosesAcks(producer, failing=1, reached=True), address)
            with pytest.raises(KafkaConnectionError):
                await sink.deliver(delivery("u2", 0))
            broker.__exit__(None, None, None)
            with pytest.raises(KafkaConnectionError):  # the read-back cannot run
                await sink.deliver(delivery("u2", 0))
            broker = running_broker(port, storage=storage)
            broker.__enter__()
            await sink.deliver(delivery("u2", 0))  # found in the log: delivered, not sent
            return headers(await read_async(address, [TOPIC]))
        finally:
            await producer.stop()
            broker.__exit__(None, None, None)

    assert asyncio.run(scenario()) == Counter({tag: 1})
