"""Real PostgreSQL and Kafka, provisioned by the devstack plugin: database, produce/consume, restart."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from prizeflow_devstack.infra import Infra, asyncpg_dsn, restart_kafka

pytestmark = pytest.mark.integration


async def _roundtrip(bootstrap: str, topic: str, payload: bytes) -> bytes:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, payload, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"devstack-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        if record.value == payload:
                            return payload
    finally:
        await consumer.stop()


@pytest.mark.restarts_infra
async def test_real_postgres_and_kafka(
    infra: Infra, fresh_database: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    assert fresh_database.startswith("postgresql+asyncpg://")
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") == fresh_database.rsplit("/", 1)[1]
    finally:
        await conn.close()

    topic = "prizeflow.devstack.test.v1" + topic_suffix  # deleted after the test, with the suffix
    assert await _roundtrip(kafka_bootstrap, topic, b"before-restart") == b"before-restart"

    if not infra.managed:  # servers from the environment: restarting them is their owner's business
        return
    await asyncio.to_thread(restart_kafka)
    assert infra.kafka_bootstrap == kafka_bootstrap  # same port after the restart
    assert await _roundtrip(kafka_bootstrap, topic, b"after-restart") == b"after-restart"


def test_the_bench_check_reference_is_a_commit_of_this_repository() -> None:
    """`make bench-check` checks the reference out beside this checkout: docs/capacity.md must name a real commit."""
    import subprocess

    from prizeflow_devstack.bench_check import CAPACITY, committed
    from prizeflow_devstack.paths import find_root

    root = find_root()
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"], check=False, cwd=root, capture_output=True, text=True
    )
    if shallow.returncode != 0 or shallow.stdout.strip() == "true":
        pytest.skip("a checkout without its history (a shallow clone or none): bench-check cannot run here either")
    reference = committed((root / CAPACITY).read_text())["reference"]
    subprocess.run(["git", "cat-file", "-e", f"{reference}^{{commit}}"], cwd=root, check=True)
