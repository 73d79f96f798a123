"""End-to-end benchmark of the whole platform, with this machine's raw baselines in the same run (issue #7).

Every service runs as its own process (as in production) on the devstack's real PostgreSQL and Kafka.

1. Baselines: pgbench TPS on the same PostgreSQL; Kafka producer and consumer throughput with the perf
   tools shipped in the same Kafka artifacts (kafka-tools: ProducerPerformance, ConsumerPerformance).
2. Allocations: rounds are opened and closed, then all their results are published at once; the figure
   is player allocations credited to wallets (rewards ledger) per second, round results → wallets.
3. Payouts: PayoutRequested for small amounts (auto-approved) to the sandbox provider; payouts per second
   from the first request to the last paid, and requested → paid p50/p99.
4. Latency at half load: rounds at half the goal load (500 allocations/s); round closed → allocated p50/p99.
5. Peak RSS of each service (VmHWM).

Writes .results/bench/e2e.json and .results/bench/e2e.png. Goals: ≥ 1,000 allocations/s, ≥ 500 payouts/s,
p99 closed → allocated < 500 ms at half load, every service < 200 MB RSS.
Run: `uv run prizeflow-dev bench e2e` (or `make bench`); `--rounds`, `--payouts` scale it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from prizeflow_contracts.topics import GAME_ROUNDS, PAYOUT_REQUESTS
from prizeflow_devstack.infra import Infra, ensure_infra
from prizeflow_devstack.kafka import ensure_jars, java_bin, kafka_version
from prizeflow_devstack.paths import find_root
from prizeflow_devstack.platform import Platform
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_testkit import fetch
from prizeflow_testkit.bench import count, p50_p99, print_result, wait_count
from prizeflow_testkit.platform_load import (
    LOAD_ENV,
    PLAYERS_PER_ROUND,
    USDC,
    fund,
    payout_request,
    publish,
    round_events,
)


def pgbench(infra: Infra, seconds: int) -> dict[str, Any]:
    """TPC-B-like pgbench on the same server: the database's own ceiling on this machine."""
    dsn = asyncpg_dsn(infra.postgres_url)
    db = f"pgbench_{uuid.uuid4().hex[:6]}"
    admin = dsn.rsplit("/", 1)[0]
    psql = shutil.which("psql") or "psql"
    subprocess.run([psql, f"{admin}/postgres", "-qc", f"CREATE DATABASE {db}"], check=True)
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", f"{admin}/{db}"], check=True, capture_output=True)
        out = subprocess.run(
            ["pgbench", "-c", "8", "-j", "2", "-T", str(seconds), f"{admin}/{db}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        tps = next(float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("tps"))
    finally:
        subprocess.run([psql, f"{admin}/postgres", "-qc", f"DROP DATABASE {db} WITH (FORCE)"], check=False)
    return {"tps": round(tps), "clients": 8, "scale": 10, "seconds": seconds}


def kafka_perf(infra: Infra, records: int) -> dict[str, Any]:
    """The broker's own ceiling with the perf tools of the same Kafka release (acks=all, 500-byte records)."""
    classpath = f"{ensure_jars()}/*"
    topic = f"bench.kafka-perf-{uuid.uuid4().hex[:6]}"
    producer = subprocess.run(
        [
            java_bin(),
            "-Xmx512m",
            "-cp",
            classpath,
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--record-size",
            "500",
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={infra.kafka_bootstrap}",
            "acks=all",
            "enable.idempotence=true",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    last = [line for line in producer.splitlines() if "records sent" in line][-1]
    produced = float(last.split("(")[0].split(",")[1].split()[0])
    consumer = subprocess.run(
        [
            java_bin(),
            "-Xmx512m",
            "-cp",
            classpath,
            "org.apache.kafka.tools.ConsumerPerformance",
            "--bootstrap-server",
            infra.kafka_bootstrap,
            "--topic",
            topic,
            "--messages",
            str(records),
            "--timeout",
            "60000",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    row = consumer.strip().splitlines()[-1].split(",")
    consumed = float(row[5])  # nMsg.sec
    return {
        "kafka": kafka_version(),
        "records": records,
        "producer_records_per_s": round(produced),
        "consumer_records_per_s": round(consumed),
        "record_bytes": 500,
    }


async def allocations(platform: Platform, infra: Infra, rounds: int) -> dict[str, Any]:
    campaign = f"bench-{uuid.uuid4().hex[:6]}"
    await fund(platform, campaign, rounds * 100 * USDC)
    producer = idempotent_producer(infra.kafka_bootstrap, linger_ms=5)
    await producer.start()
    topic = GAME_ROUNDS.name + platform.suffix
    rewards_db = platform.procs["rewards"].database_url or ""
    settlement_db = platform.procs["settlement"].database_url or ""
    base = await count(rewards_db, "SELECT count(*) FROM ledger_transfers WHERE kind = 'reward'")
    try:
        results = []
        for n in range(rounds):
            rid = f"b{uuid.uuid4().hex[:10]}"
            setup, result = round_events(rid, campaign, [f"p{(n * 7 + i) % 5000}" for i in range(PLAYERS_PER_ROUND)])
            await publish(producer, topic, setup, rid)
            results.append((rid, result))
        await producer.flush()
        await wait_count(settlement_db, "SELECT count(*) FROM rounds WHERE state = 'closed'", rounds, 600)
        started = time.monotonic()
        for rid, result in results:
            await publish(producer, topic, [result], rid)
        await producer.flush()
        target = base + rounds * PLAYERS_PER_ROUND
        done = await wait_count(rewards_db, "SELECT count(*) FROM ledger_transfers WHERE kind = 'reward'", target, 900)
    finally:
        await producer.stop()
    elapsed = done - started
    return {
        "rounds": rounds,
        "allocations": rounds * PLAYERS_PER_ROUND,
        "seconds": round(elapsed, 2),
        "round_results_per_s": round(rounds / elapsed),
        "allocations_per_s": round(rounds * PLAYERS_PER_ROUND / elapsed),
    }


async def latency(platform: Platform, infra: Infra, rounds_per_s: float, seconds: float) -> dict[str, Any]:
    campaign = f"lat-{uuid.uuid4().hex[:6]}"
    total = max(10, int(rounds_per_s * seconds))
    await fund(platform, campaign, total * 100 * USDC)
    producer = idempotent_producer(infra.kafka_bootstrap, linger_ms=1)
    await producer.start()
    topic = GAME_ROUNDS.name + platform.suffix
    closed_at: dict[str, float] = {}
    try:
        started = time.monotonic()
        for n in range(total):
            if (delay := started + n / rounds_per_s - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            rid = f"l{uuid.uuid4().hex[:10]}"
            setup, result = round_events(rid, campaign, [f"q{(n * 5 + i) % 3000}" for i in range(PLAYERS_PER_ROUND)])
            await publish(producer, topic, [*setup, result], rid)
            closed_at[rid] = time.time()
        await producer.flush()
    finally:
        await producer.stop()
    rewards_db = platform.procs["rewards"].database_url or ""
    like = "reward|l%"
    await wait_count(
        rewards_db,
        f"SELECT count(*) FROM ledger_transfers WHERE business_key LIKE '{like}'",
        total * PLAYERS_PER_ROUND,
        300,
    )
    rows = await fetch(
        rewards_db,
        "SELECT split_part(business_key, '|', 2) AS rid, max(created_at) AS at FROM ledger_transfers "
        "WHERE business_key LIKE $1 GROUP BY 1",
        like,
    )
    lat = sorted((r["at"].timestamp() - closed_at[r["rid"]]) * 1000 for r in rows if r["rid"] in closed_at)
    p50, p99 = p50_p99(lat)
    return {
        "rounds_per_s_offered": round(rounds_per_s, 1),
        "rounds": len(lat),
        "closed_to_allocated_ms_p50": round(p50, 1),
        "closed_to_allocated_ms_p99": round(p99, 1),
    }


async def payouts(platform: Platform, infra: Infra, n: int) -> dict[str, Any]:
    producer = idempotent_producer(infra.kafka_bootstrap, linger_ms=5)
    await producer.start()
    topic = PAYOUT_REQUESTS.name + platform.suffix
    payouts_db = platform.procs["payouts"].database_url or ""
    base = await count(payouts_db, "SELECT count(*) FROM payouts WHERE state = 'paid'")
    started = time.monotonic()
    sent_at: dict[str, float] = {}
    try:
        for i in range(n):
            key = f"bench:{uuid.uuid4().hex}"
            sent_at[key] = time.time()
            req = payout_request(key, f"p{i % 997}")
            await publish(producer, topic, [req], key.replace(":", "-"))
        await producer.flush()
        done = await wait_count(payouts_db, "SELECT count(*) FROM payouts WHERE state = 'paid'", base + n, 900)
    finally:
        await producer.stop()
    rows = await fetch(
        payouts_db,
        "SELECT p.idempotency_key AS key, h.at FROM payouts p "
        "JOIN (SELECT payout_id, max(at) AS at FROM payout_history WHERE to_state = 'paid' GROUP BY 1) h "
        "ON h.payout_id = p.id WHERE p.idempotency_key LIKE 'bench:%'",
    )
    lat = sorted((r["at"].timestamp() - sent_at[r["key"]]) * 1000 for r in rows if r["key"] in sent_at)
    p50, p99 = p50_p99(lat)
    elapsed = done - started
    return {
        "payouts": n,
        "seconds": round(elapsed, 2),
        "payouts_per_s": round(n / elapsed),
        "requested_to_paid_ms_p50": round(p50, 1),
        "requested_to_paid_ms_p99": round(p99, 1),
    }


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    a = axes[0]
    names = ["allocations/s", "payouts/s"]
    measured = [doc["allocations"]["allocations_per_s"], doc["payouts"]["payouts_per_s"]]
    goals = [1000, 500]
    a.bar([0, 1], measured, color=["#2b8cbe", "#31a354"], label="measured")
    a.scatter([0, 1], goals, color="red", marker="_", s=2000, label="goal", zorder=3)
    a.set_xticks([0, 1], names)
    a.set_title("Throughput, end to end")
    a.legend()
    b = axes[1]
    lat = doc["latency"]
    b.bar(["p50", "p99"], [lat["closed_to_allocated_ms_p50"], lat["closed_to_allocated_ms_p99"]], color="#756bb1")
    b.axhline(500, color="red", linestyle="--", label="p99 goal")
    b.set_title(f"Round closed → allocated (ms) at {lat['rounds_per_s_offered']} rounds/s")
    b.legend()
    c = axes[2]
    rss = doc["peak_rss_mb"]
    c.bar(list(rss), list(rss.values()), color="#fd8d3c")
    c.axhline(200, color="red", linestyle="--", label="200 MB goal")
    c.set_title("Peak RSS per service (MB)")
    c.legend()
    fig.suptitle(f"Prizeflow end-to-end bench, {doc['cores']} cores — ratios: {json.dumps(doc['ratios'])}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    infra = ensure_infra()
    out_dir = find_root() / ".results" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"benchmark": "e2e", "cores": os.cpu_count()}
    doc["baseline_pgbench"] = await asyncio.to_thread(pgbench, infra, args.baseline_seconds)
    doc["baseline_kafka"] = await asyncio.to_thread(kafka_perf, infra, args.kafka_records)
    platform = Platform(
        infra,
        Path(tempfile.mkdtemp(prefix="prizeflow-bench-")),
        services=("settlement", "rewards", "payouts", "webhooks", "stripe-api"),  # payouts' Stripe rail needs both
        env=LOAD_ENV,
    )
    try:
        await asyncio.to_thread(platform.start)
        doc["allocations"] = await allocations(platform, infra, args.rounds)
        doc["payouts"] = await payouts(platform, infra, args.payouts)
        # "half that load": half the goal of 1,000 allocations/s, i.e. 500 allocations/s.
        half = 500 / PLAYERS_PER_ROUND
        doc["latency"] = await latency(platform, infra, half, args.latency_seconds)
        doc["peak_rss_mb"] = {k: round(v / 1024, 1) for k, v in platform.sample_rss().items()}
    finally:
        await asyncio.to_thread(platform.stop)
    doc["ratios"] = {
        "allocations_per_pgbench_tps": round(
            doc["allocations"]["allocations_per_s"] / doc["baseline_pgbench"]["tps"], 2
        ),
        "payouts_per_pgbench_tps": round(doc["payouts"]["payouts_per_s"] / doc["baseline_pgbench"]["tps"], 2),
        "allocations_per_kafka_producer_record": round(
            doc["allocations"]["allocations_per_s"] / doc["baseline_kafka"]["producer_records_per_s"], 3
        ),
    }
    doc["goals"] = {"allocations_per_s": 1000, "payouts_per_s": 500, "p99_closed_to_allocated_ms": 500, "rss_mb": 200}
    doc["pass"] = (
        doc["allocations"]["allocations_per_s"] >= 1000
        and doc["payouts"]["payouts_per_s"] >= 500
        and doc["latency"]["closed_to_allocated_ms_p99"] < 500
        and all(v < 200 for v in doc["peak_rss_mb"].values())
    )
    chart(doc, out_dir / "e2e.png")
    print_result(doc, out_dir / "e2e.json")
    return doc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1500)
    parser.add_argument("--payouts", type=int, default=5000)
    parser.add_argument("--latency-seconds", type=float, default=15)
    parser.add_argument("--baseline-seconds", type=int, default=10)
    parser.add_argument("--kafka-records", type=int, default=200_000)
    asyncio.run(main(parser.parse_args()))
