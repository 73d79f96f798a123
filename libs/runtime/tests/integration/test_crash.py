"""A consumer SIGKILLed after its DB commit but before its offset commit applies the effect once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sample import thing, totals, unique
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_testkit import committed_offsets, read_topic, wait_caught_up

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("crash_app.py")


def start_app(topic: str, group: str, database_url: str, kafka: str, *, crash: bool) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "CRASH_AFTER_COMMIT": "1" if crash else "0",
    }
    return subprocess.Popen(
        [sys.executable, str(APP), topic, group],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def test_sigkill_between_db_commit_and_offset_commit_applies_once(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic_suffix: str
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

    crashing = start_app(topic, group, fresh_database, kafka_bootstrap, crash=True)
    try:
        out, _ = crashing.communicate(timeout=90)
    finally:
        crashing.kill()
    assert crashing.returncode == -signal.SIGKILL, out
    assert "committed-to-db" in out
    assert await totals(engine) == (5, 1)  # the effect committed...
    assert await committed_offsets(kafka_bootstrap, group, topic) == {}  # ...the offset did not

    survivor = start_app(topic, group, fresh_database, kafka_bootstrap, crash=False)
    try:
        await wait_caught_up(kafka_bootstrap, group, topic, timeout=90)
    finally:
        survivor.send_signal(signal.SIGTERM)
        out, _ = survivor.communicate(timeout=30)
    assert survivor.returncode == 0, out
    assert await totals(engine) == (5, 1)
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM effects")) == 1
    # The redelivery was recognised as a duplicate, not forced through (or into the DLQ) by a constraint.
    assert await read_topic(kafka_bootstrap, topic + ".dlq") == []
