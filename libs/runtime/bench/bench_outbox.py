"""Outbox relay benchmark on real PostgreSQL and Kafka (issue #2).

1. Sustained throughput: writers commit 100-event transactions as fast as they can while the relay runs;
   the figure is events published per second over the whole window including the final drain.
2. Latency: events committed at a steady 1,000/s; publish → consume latency (envelope time, stamped
   just before the commit, to the moment a consumer receives the record), p50/p99.

Run: `uv run prizeflow-dev bench` (all benchmarks) or `uv run python libs/runtime/bench/bench_outbox.py`.
Prints a JSON document; `--out FILE` writes it too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import EventPayload, decode, new_event
from prizeflow_contracts.topics import Topic
from prizeflow_devstack.infra import ensure_infra
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.db import create_engine, create_messaging_schema, session_factory
from prizeflow_runtime.outbox import OutboxRelay, add_events, idempotent_producer
from prizeflow_testkit.bench import bench_database, p50_p99, print_result

BENCH_TOPIC = Topic("prizeflow.bench.ticks.v1", "bench", ("TickHappened",), partitions=6)


class TickHappened(EventPayload):
    EVENT_NAME: ClassVar[str] = "TickHappened"
    TOPIC: ClassVar[Topic] = BENCH_TOPIC

    seq: int
    player_id: str
    amount: int


def tick(i: int) -> Any:
    return new_event(
        TickHappened(seq=i, player_id=f"player-{i % 997}", amount=i % 10_000),
        source="/prizeflow/bench",
        correlation_id=f"round-{i % 512}",
    )


async def writer(engine: AsyncEngine, stop_at: float, counter: list[int], batch: int = 100) -> None:
    sessions = session_factory(engine)
    while time.monotonic() < stop_at:
        base = counter[0]
        counter[0] += batch
        async with sessions() as session, session.begin():
            await add_events(session, [tick(base + i) for i in range(batch)], topic=BENCH_TOPIC.name)


async def throughput(db_url: str, bootstrap: str, engine: AsyncEngine, seconds: float) -> dict[str, Any]:
    producer = idempotent_producer(bootstrap)
    await producer.start()
    relay = OutboxRelay(database_url=db_url, producer=producer, batch_size=2000, poll_interval=0.05)
    published = 0
    written = [0]
    started = time.monotonic()
    stop_at = started + seconds
    writers = [asyncio.create_task(writer(engine, stop_at, written)) for _ in range(3)]
    try:
        while True:
            result = await relay.publish_once()
            published += result.published
            if all(w.done() for w in writers) and published >= written[0]:
                break
            if result.published == 0:
                await asyncio.sleep(0.005)
        elapsed = time.monotonic() - started
    finally:
        await relay.stop()
        await producer.stop()
    for w in writers:
        w.result()
    return {"events": published, "seconds": round(elapsed, 3), "events_per_s": round(published / elapsed)}


async def latency(db_url: str, bootstrap: str, engine: AsyncEngine, rate: int, seconds: float) -> dict[str, Any]:
    topic = f"prizeflow.bench.latency-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic], with_dlq=False)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    producer = idempotent_producer(bootstrap)
    await producer.start()
    relay = OutboxRelay(database_url=db_url, producer=producer, batch_size=500, poll_interval=0.5)
    relay_task = asyncio.create_task(relay.run())
    total = int(rate * seconds)
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < total:
            batch = await consumer.getmany(timeout_ms=100)
            now = datetime.now(UTC)
            for records in batch.values():
                latencies.extend((now - decode(r.value).time).total_seconds() * 1000 for r in records)

    consuming = asyncio.create_task(consume())
    sessions = session_factory(engine)
    per_tick = 10  # 10 events per transaction, 100 transactions per second at 1,000/s
    interval = per_tick / rate
    started = time.monotonic()
    for n in range(total // per_tick):
        target = started + n * interval
        if (delay := target - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        async with sessions() as session, session.begin():
            await add_events(session, [tick(n * per_tick + i) for i in range(per_tick)], topic=topic)
    await asyncio.wait_for(consuming, timeout=60)
    achieved = total / (time.monotonic() - started)
    await relay.stop()
    relay_task.cancel()
    await producer.stop()
    await consumer.stop()
    p50, p99 = p50_p99(latencies)
    return {
        "target_rate": rate,
        "achieved_rate": round(achieved),
        "events": len(latencies),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(max(latencies), 2),
    }


async def main(seconds: float, out: Path | None) -> dict[str, Any]:
    infra = ensure_infra()
    async with bench_database(infra, "bench_outbox") as db_url:
        engine = create_engine(db_url, pool_size=4)
        try:
            await create_messaging_schema(engine)
            await ensure_topics(infra.kafka_bootstrap, [BENCH_TOPIC], with_dlq=False)
            tput = await throughput(db_url, infra.kafka_bootstrap, engine, seconds)
            lat = await latency(db_url, infra.kafka_bootstrap, engine, rate=1000, seconds=seconds)
        finally:
            await engine.dispose()
    doc = {
        "benchmark": "outbox_relay",
        "cores": os.cpu_count(),
        "throughput": tput,
        "latency_at_1000_per_s": lat,
        "goals": {"events_per_s": 5000, "p99_ms": 100},
        "pass": tput["events_per_s"] >= 5000 and lat["p99_ms"] < 100,
    }
    print_result(doc, out)
    return doc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.out))
