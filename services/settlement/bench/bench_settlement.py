"""Settlement benchmark on real Kafka + PostgreSQL, the service running as its own process (issue #3).

1. Throughput: N rounds are opened, entered and closed through Kafka (setup, timed separately), then all
   their RoundResultsReported are published at once; the figure is round results settled per second, from
   the first results record sent until every RoundSettled is committed in the outbox (and, separately,
   until the relay has published them all).
2. Latency: whole rounds (open, entries, close, results) published at half the measured rate;
   closed → settled per round from the database (rounds.settled_at - the round's closed_at), p50/p99.

Run: `uv run python services/settlement/bench/bench_settlement.py [--rounds 20000] [--players 4]`.
Prints a JSON document; `--out FILE` writes it too.
"""

# ruff: noqa: PLR0915, ASYNC210, ASYNC220
# (one linear benchmark script that starts the service as a process and polls its health endpoint)
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.game import EntryRecorded, Placement, RoundClosed, RoundOpened, RoundResultsReported
from prizeflow_contracts.testing import example_payload
from prizeflow_contracts.topics import ALL_TOPICS, GAME_ROUNDS, Topic
from prizeflow_devstack.infra import create_database, drop_database, ensure_infra
from prizeflow_devstack.ports import pick_free_port
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.db import create_engine
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_runtime.outbox import idempotent_producer

ALEMBIC_INI = str(Path(__file__).parents[1] / "alembic.ini")


def ev(round_id: str, payload: EventPayload) -> Envelope[EventPayload]:
    return new_event(payload, source="/game/bench", correlation_id=round_id)


def opening(round_id: str, players: int, at: datetime) -> list[Envelope[EventPayload]]:
    out = [ev(round_id, example_payload(RoundOpened, round_id=round_id, opened_at=at))]
    out += [
        ev(round_id, example_payload(EntryRecorded, round_id=round_id, entry_id=f"{round_id}-e{i}", player_id=f"p{i}"))
        for i in range(players)
    ]
    out.append(ev(round_id, example_payload(RoundClosed, round_id=round_id, entry_count=players, closed_at=at)))
    return out


def results(round_id: str, players: int, at: datetime) -> Envelope[EventPayload]:
    placements = [Placement(player_id=f"p{i}", rank=i + 1, score=1000 - i) for i in range(players)]
    return ev(round_id, RoundResultsReported(round_id=round_id, placements=placements, reported_at=at))


async def count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(sql)) or 0)


async def wait_for(engine: AsyncEngine, sql: str, target: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while (n := await count(engine, sql)) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {n}/{target} for {sql}")
        await asyncio.sleep(0.02)
    return time.monotonic()


SETTLED_STAGED = "SELECT count(*) FROM outbox WHERE event_type = 'prizeflow.settlement.RoundSettled.v1'"
SETTLED_PUBLISHED = SETTLED_STAGED + " AND published_at IS NOT NULL"


async def send_all(producer: Any, topic: str, envelopes: list[Envelope[EventPayload]]) -> None:
    futures = [await producer.send(topic, value=e.encode(), key=e.key, headers=e.headers()) for e in envelopes]
    await asyncio.gather(*futures)


async def run(rounds: int, players: int, latency_seconds: float) -> dict[str, Any]:
    infra = ensure_infra()
    db_name = f"bench_settlement_{uuid.uuid4().hex[:8]}"
    db_url = await create_database(infra, db_name)
    suffix = f".bench-{uuid.uuid4().hex[:8]}"
    topic = GAME_ROUNDS.name + suffix
    await upgrade_to_head(ALEMBIC_INI, db_url)
    await ensure_topics(
        infra.kafka_bootstrap, [Topic(t.name + suffix, t.producer, t.events, t.partitions) for t in ALL_TOPICS]
    )
    engine = create_engine(db_url, pool_size=2)
    port = pick_free_port()
    log = Path(tempfile.gettempdir()) / f"bench-settlement-{port}.log"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "HTTP_PORT": str(port),
        "KAFKA_TOPIC_SUFFIX": suffix,
        "LOG_LEVEL": "WARNING",
        "CONSUMER_BATCH_SIZE": "2000",
        "OUTBOX_BATCH_SIZE": "5000",
        "OUTBOX_POLL_INTERVAL_MS": "20",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prizeflow_settlement"], env=env, stdout=out, stderr=out)
    producer = idempotent_producer(infra.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"service did not start; see {log}")
            await asyncio.sleep(0.2)

        # 1. throughput
        at = datetime.now(UTC)
        ids = [f"bench-{i:07d}" for i in range(rounds)]
        setup_started = time.monotonic()
        await send_all(producer, topic, [e for rid in ids for e in opening(rid, players, at)])
        setup_done = await wait_for(engine, "SELECT count(*) FROM rounds WHERE state = 'closed'", rounds, 600)
        started = time.monotonic()
        await send_all(producer, topic, [results(rid, players, at) for rid in ids])
        staged_at = await wait_for(engine, SETTLED_STAGED, rounds, 600)
        published_at = await wait_for(engine, SETTLED_PUBLISHED, rounds, 600)
        rate = rounds / (staged_at - started)
        setup_events = rounds * (players + 2)

        # 2. latency at half the rate, whole rounds
        half = rate / 2
        total = int(half * latency_seconds)
        lat_ids = [f"lat-{i:07d}" for i in range(total)]
        tick = 0.05
        per_tick = max(1, round(half * tick))
        t0 = time.monotonic()
        for n in range(0, total, per_tick):
            now = datetime.now(UTC)
            batch = [
                e
                for rid in lat_ids[n : n + per_tick]
                for e in [*opening(rid, players, now), results(rid, players, now)]
            ]
            await send_all(producer, topic, batch)
            sleep_for = t0 + (n // per_tick + 1) * tick - time.monotonic()
            if sleep_for > 0:
                await asyncio.sleep(sleep_for)
        sent_seconds = time.monotonic() - t0
        await wait_for(
            engine, "SELECT count(*) FROM rounds WHERE round_id LIKE 'lat-%' AND state = 'settled'", total, 600
        )
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        """
                        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP
                        (ORDER BY ms), max(ms) FROM (SELECT extract(epoch FROM settled_at - closed_at) * 1000 AS ms
                        FROM rounds WHERE round_id LIKE 'lat-%') t
                        """
                    )
                )
            ).one()
        return {
            "benchmark": "settlement",
            "cores": os.cpu_count(),
            "players_per_round": players,
            "throughput": {
                "rounds": rounds,
                "round_results_settled_per_s": round(rate),
                "round_results_published_per_s": round(rounds / (published_at - started)),
                "seconds_to_settle": round(staged_at - started, 3),
                "setup_events": setup_events,
                "setup_events_per_s": round(setup_events / (setup_done - setup_started)),
                "full_rounds_per_s_including_setup": round(rounds / (staged_at - setup_started)),
            },
            "latency_at_half_rate": {
                "rounds_per_s_offered": round(half),
                "rounds": total,
                "seconds": round(sent_seconds, 2),
                "closed_to_settled_ms_p50": round(float(row[0]), 1),
                "closed_to_settled_ms_p99": round(float(row[1]), 1),
                "closed_to_settled_ms_max": round(float(row[2]), 1),
            },
        }
    finally:
        await producer.stop()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await engine.dispose()
        await drop_database(infra, db_name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--players", type=int, default=4)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds, args.players, args.latency_seconds))
    doc = json.dumps(result, indent=2)
    print(doc)
    if args.out:
        Path(args.out).write_text(doc + "\n")


if __name__ == "__main__":
    main()
