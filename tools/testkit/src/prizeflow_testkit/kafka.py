"""Helpers for tests against real Kafka: provision a test's topics, read a topic to its end, wait until a group
has consumed up to the end offsets.

They poll with a deadline; nothing here sleeps for a fixed time and hopes.
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from prizeflow_runtime.kafka_settings import KafkaSecurity
from prizeflow_runtime.settings import TopicSettings
from prizeflow_runtime.topics import provision_topics, topic_plan
from prizeflow_testkit.waits import eventually

# What a production-profile process needs besides its own settings: authenticated Kafka over TLS (that profile
# refuses PLAINTEXT and SASL_PLAINTEXT). For tests that build production settings and never connect.
PRODUCTION_KAFKA_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SSL_SYSTEM_TRUST": "true",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "prizeflow-test",
    "KAFKA_SASL_PASSWORD": "not-a-real-password",
}


def production_kafka() -> KafkaSecurity:
    """`PRODUCTION_KAFKA_ENV` as settings (`kafka_security=`), whatever the environment says."""
    return KafkaSecurity.model_validate({k.removeprefix("KAFKA_").lower(): v for k, v in PRODUCTION_KAFKA_ENV.items()})


async def provision_test_topics(bootstrap: str, suffix: str, settings: TopicSettings | None = None) -> None:
    """Every contract topic and DLQ under `suffix`, as the provisioning Job creates them before a service starts
    (services only verify). Deleting them is the `topic_suffix` fixture's job."""
    report = await provision_topics(bootstrap, topic_plan(settings or TopicSettings(), suffix=suffix))
    if not report.ok:
        raise AssertionError(f"test topics under {suffix} are short: {report.short}")


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str, *, timeout: float = 30.0) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in `topic`, from offset 0 to the end offsets taken at call time."""
    ends = await end_offsets(bootstrap, topic)
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        positions = dict.fromkeys(wanted, 0)
        deadline = time.monotonic() + timeout
        while any(positions[tp] < end for tp, end in wanted.items()):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout}s: {positions} of {wanted}")
            batch = await consumer.getmany(timeout_ms=200)
            for tp, recs in batch.items():
                for r in recs:
                    if r.offset < wanted[tp]:
                        records.append(r)
                    positions[tp] = max(positions[tp], r.offset + 1)
    finally:
        await consumer.stop()
    return records


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of `topic` (missing partitions: nothing committed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets: dict[TopicPartition, Any] = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def wait_caught_up(bootstrap: str, group: str, topic: str, *, timeout: float = 60.0) -> None:
    """Wait until `group` has committed the end offset of every non-empty partition of `topic`."""
    ends = {tp.partition: end for tp, end in (await end_offsets(bootstrap, topic)).items() if end > 0}

    async def probe() -> dict[int, int]:
        return await committed_offsets(bootstrap, group, topic)

    await eventually(probe, lambda c: all(c.get(p, 0) >= end for p, end in ends.items()), timeout=timeout)


async def consumer_group_lags(bootstrap: str, group_suffix: str) -> dict[str, dict[TopicPartition, int]]:
    """For every consumer group whose name ends with `group_suffix`: end offset minus committed offset for every
    partition of every topic the group committed on (a partition it never committed on counts from 0)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        listed = await admin.list_consumer_groups()
        groups = sorted({str(g[0]) for g in listed if str(g[0]).endswith(group_suffix)})
        committed = {group: await admin.list_consumer_group_offsets(group) for group in groups}
    finally:
        await admin.close()
    ends: dict[TopicPartition, int] = {}
    for topic in sorted({tp.topic for offsets in committed.values() for tp in offsets}):
        ends.update(await end_offsets(bootstrap, topic))
    lags: dict[str, dict[TopicPartition, int]] = {}
    for group, offsets in committed.items():
        done = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        topics = {tp.topic for tp in offsets}
        lags[group] = {tp: end - done.get(tp, 0) for tp, end in ends.items() if tp.topic in topics}
    return lags


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


__all__ = [
    "committed_offsets",
    "end_offsets",
    "header",
    "provision_test_topics",
    "read_topic",
    "wait_caught_up",
]
