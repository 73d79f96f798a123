"""A consumer SIGKILLed after its DB commit but before its offset commit applies the effect once."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from sample import thing, totals, unique
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_testkit import Process, committed_offsets, read_topic, wait_caught_up

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("crash_app.py")


def start_app(topic: str, group: str, database_url: str, kafka: str, log: Path, *, crash: bool) -> Process:
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka, "CRASH_AFTER_COMMIT": "1" if crash else "0"}
    return Process([sys.executable, str(APP), topic, group], env, log).spawn()


async def test_sigkill_between_db_commit_and_offset_commit_applies_once(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    topic = "prizeflow.crash" + topic_suffix
    group = unique("crash-consumer")
    await ensure_topics(kafka_bootstrap, [topic])
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    event = thing("crash-once", 5, correlation_id="crash-key")
    try:
        await producer.send_and_wait(topic, event.encode(), key=event.key, headers=event.headers())
    finally:
        await producer.stop()

    crashing = start_app(topic, group, fresh_database, kafka_bootstrap, tmp_path / "crashing.log", crash=True)
    try:
        code = crashing.wait(timeout=90)  # it kills itself between the two commits
    finally:
        crashing.kill()
    assert code == -signal.SIGKILL, crashing.output()
    assert "committed-to-db" in crashing.output()
    assert await totals(engine) == (5, 1)  # the effect committed...
    assert await committed_offsets(kafka_bootstrap, group, topic) == {}  # ...the offset did not

    survivor = start_app(topic, group, fresh_database, kafka_bootstrap, tmp_path / "survivor.log", crash=False)
    try:
        await wait_caught_up(kafka_bootstrap, group, topic, timeout=90)
    finally:
        stopped = survivor.stop()
    assert stopped == 0, survivor.output()
    assert await totals(engine) == (5, 1)
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM effects")) == 1
    # The redelivery was recognised as a duplicate, not forced through (or into the DLQ) by a constraint.
    assert await read_topic(kafka_bootstrap, topic + ".dlq") == []
