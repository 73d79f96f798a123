"""End-to-end benchmark of the whole platform, with this machine's raw baselines in the same run (issue #7).

Every service runs as its own process (as in production) on the devstack's real PostgreSQL and Kafka.

1. Baselines: pgbench TPS on the same PostgreSQL; Kafka producer and consumer throughput with the perf
   tools shipped in the same Kafka artifacts (kafka-tools: ProducerPerformance, ConsumerPerformance).
2. Allocations: rounds are opened and closed, then all their results are published at once; the figure
   is player allocations credited to wallets (rewards ledger) per second, round results → wallets.
3. Claims: players credited in 2. claim through rewards' API (as a game client does), until rewards has settled
   every approved claim (payouts paid it through the sandbox provider).
4. Latency at half load: rounds at half the goal load (500 allocations/s); round closed → allocated p50/p99.
5. Payouts, last, with rewards stopped (it never asked for them): PayoutRequested for small amounts
   (auto-approved) to the sandbox provider; payouts per second from the first request to the last paid, and
   requested → paid p50/p99.
6. Peak RSS of each service (VmHWM).

Each phase is measured (`prizeflow_testkit.capacity`) until every consumer group has caught up: the CPU of every
service process, of PostgreSQL and of the Kafka broker, WAL bytes, transactions and Kafka bytes in; `capacity` in
the result gives CPU-µs per round, per allocation, per claim and per payout for each service, and PostgreSQL's
and Kafka's cost per event (the inputs of docs/capacity.md). The idle platform is measured first, and each phase
is followed by `--settle-seconds` of quiet. `BENCH_PROFILE=1` (or `--profile`) samples every service with py-spy
in each phase (.results/bench/profile/<phase>/; the CPU figures of such a run include py-spy's cost).

Writes .results/bench/e2e.json and .results/bench/e2e.png. Goals: ≥ 1,000 allocations/s, ≥ 500 payouts/s,
p99 closed → allocated < 500 ms at half load, every service < 200 MB RSS.
Run: `uv run prizeflow-dev bench e2e` (or `make bench`); `--rounds`, `--payouts` scale it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from prizeflow_devstack.platform import RAIL_EMULATORS, Platform
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_testkit import fetch
from prizeflow_testkit.bench import count, host, p50_p99, print_result, wait_count
from prizeflow_testkit.capacity import CostMeter, Phases
from prizeflow_testkit.platform_load import (
    CLAIMS_ENV,
    LOAD_ENV,
    PLAYERS_PER_ROUND,
    USDC,
    Claimant,
    fund,
    payout_request,
    publish,
    round_events,
)
from prizeflow_testkit.soak_probes import LagProbe


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


def round_players(n: int) -> list[str]:
    """The players of the `n`-th round: 5,000 players, eight a round."""
    return [f"p{(n * 7 + i) % 5000}" for i in range(PLAYERS_PER_ROUND)]


async def allocations(platform: Platform, infra: Infra, rounds: int, phases: Phases) -> dict[str, Any]:
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
        begun = await phases.begin("round_setup")
        for n in range(rounds):
            rid = f"b{uuid.uuid4().hex[:10]}"
            setup, result = round_events(rid, campaign, round_players(n))
            await publish(producer, topic, setup, rid)
            results.append((rid, result))
        await producer.flush()
        await wait_count(settlement_db, "SELECT count(*) FROM rounds WHERE state = 'closed'", rounds, 600)
        await phases.end("round_setup", begun, {"round": rounds})
        begun = await phases.begin("round_results")
        started = time.monotonic()
        for rid, result in results:
            await publish(producer, topic, [result], rid)
        await producer.flush()
        target = base + rounds * PLAYERS_PER_ROUND
        done = await wait_count(rewards_db, "SELECT count(*) FROM ledger_transfers WHERE kind = 'reward'", target, 900)
        await phases.end("round_results", begun, {"round": rounds, "allocation": rounds * PLAYERS_PER_ROUND})
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


async def latency(
    platform: Platform, infra: Infra, rounds_per_s: float, seconds: float, phases: Phases
) -> dict[str, Any]:
    campaign = f"lat-{uuid.uuid4().hex[:6]}"
    total = max(10, int(rounds_per_s * seconds))
    await fund(platform, campaign, total * 100 * USDC)
    producer = idempotent_producer(infra.kafka_bootstrap, linger_ms=1)
    await producer.start()
    topic = GAME_ROUNDS.name + platform.suffix
    closed_at: dict[str, float] = {}
    begun = await phases.begin("paced_rounds")
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
    await phases.end("paced_rounds", begun, {"round": total, "allocation": total * PLAYERS_PER_ROUND})
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


async def payouts(platform: Platform, infra: Infra, n: int, phases: Phases) -> dict[str, Any]:
    producer = idempotent_producer(infra.kafka_bootstrap, linger_ms=5)
    await producer.start()
    topic = PAYOUT_REQUESTS.name + platform.suffix
    payouts_db = platform.procs["payouts"].database_url or ""
    base = await count(payouts_db, "SELECT count(*) FROM payouts WHERE state = 'paid'")
    begun = await phases.begin("payouts")
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
        await phases.end("payouts", begun, {"payout": n})
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


async def claims(platform: Platform, players: list[str], concurrency: int, phases: Phases) -> dict[str, Any]:
    """Players claim through rewards' API (as a game client does), each once; measured until rewards has settled
    every approved claim (paid by the sandbox provider through payouts, the outcome back in rewards)."""
    rewards_db = platform.procs["rewards"].database_url or ""
    base = await count(rewards_db, "SELECT count(*) FROM claims WHERE status = 'paid'")
    claimant = Claimant(platform, concurrency=concurrency)
    await claimant.start()
    outcomes: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(player: str) -> None:
        async with gate:
            _, status = await claimant.claim(player)
        outcomes[status] = outcomes.get(status, 0) + 1

    begun = await phases.begin("claims")
    started = time.monotonic()
    try:
        await asyncio.gather(*(one(p) for p in players))
        answered = time.monotonic()
        approved = outcomes.get("approved", 0)
        done = await wait_count(rewards_db, "SELECT count(*) FROM claims WHERE status = 'paid'", base + approved, 900)
        await phases.end("claims", begun, {"claim": approved})
    finally:
        await claimant.stop()
    rows = await fetch(
        rewards_db,
        "SELECT extract(epoch FROM settled_at - created_at) * 1000 AS ms FROM claims WHERE status = 'paid'",
    )
    p50, p99 = p50_p99(sorted(float(r["ms"]) for r in rows))
    return {
        "claims": len(players),
        "outcomes": outcomes,
        "concurrency": concurrency,
        "seconds": round(done - started, 2),
        "claims_answered_per_s": round(len(players) / (answered - started)),
        "claims_paid_per_s": round(approved / (done - started)),
        "claimed_to_settled_ms_p50": round(p50, 1),
        "claimed_to_settled_ms_p99": round(p99, 1),
    }


CPU_GOAL_US_PER_ALLOCATION = 150


def capacity(phases: Phases, idle: dict[str, Any], profiled: bool) -> dict[str, Any]:
    """The capacity model's inputs (docs/capacity.md): CPU-µs of each service per round, allocation, claim and
    payout, and PostgreSQL's and Kafka's cost per event, from the phases' counters."""
    r = phases.results
    setup, results = r["round_setup"], r["round_results"]
    rounds, allocations = results["units"]["round"], results["units"]["allocation"]

    def add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in a.keys() | b.keys()}

    round_cpu = add(setup["cpu_s"], results["cpu_s"])  # a round: opened, 8 entries, closed, results, 8 allocations
    per_round = {s: round(v * 1e6 / rounds, 1) for s, v in sorted(round_cpu.items())}
    per_allocation = {s: round(v * 1e6 / allocations, 1) for s, v in sorted(round_cpu.items())}
    total = round(sum(round_cpu.values()) * 1e6 / allocations, 1)

    def pg_kafka(deltas: list[dict[str, Any]], n: int) -> dict[str, Any]:
        pg = [d["postgres"] for d in deltas]
        kafka = [d["kafka"] for d in deltas]

        def total_of(values: list[float | None]) -> float | None:
            return None if any(v is None for v in values) else sum(v for v in values if v is not None)

        backends, server = (
            total_of([p["cpu_s_platform_backends"] for p in pg]),
            total_of([p["cpu_s_server"] for p in pg]),
        )
        wal, broker = total_of([p["wal_bytes_platform"] for p in pg]), total_of([k["cpu_s_broker"] for k in kafka])
        xacts: dict[str, float] = {}
        for p in pg:
            xacts = add(xacts, {s: float(v["xacts"]) for s, v in p["by_service"].items()})
        return {
            "postgres_cpu_us_platform_backends": None if backends is None else round(backends * 1e6 / n, 1),
            "postgres_cpu_us_server": None if server is None else round(server * 1e6 / n, 1),
            "postgres_wal_bytes": None if wal is None else round(wal / n),
            "postgres_xacts": round(sum(xacts.values()) / n, 4),
            "postgres_xacts_by_service": {s: round(v / n, 4) for s, v in sorted(xacts.items())},
            "kafka_broker_cpu_us": None if broker is None else round(broker * 1e6 / n, 1),
            "kafka_bytes_in": round(sum(k["bytes_in_platform"] for k in kafka) / n),
        }

    def cpu_per(name: str, unit: str) -> dict[str, float]:
        per = r.get(name, {}).get("per", {})
        return dict(sorted(per[unit]["cpu_us_by_service"].items())) if unit in per else {}

    cpu_us = {
        "per_round": per_round,
        "per_allocation": per_allocation,
        "per_allocation_paced": cpu_per("paced_rounds", "allocation"),
        "per_claim": cpu_per("claims", "claim"),
        "per_payout": cpu_per("payouts", "payout"),
    }
    return {
        "method": (
            "utime+stime of each service's process group (/proc/<pid>/stat) before and after each phase; per round "
            "and per allocation over the rounds' setup (opened, entries, closed) and results phases together; "
            "PostgreSQL: its processes' CPU (the platform's backends; the server's, other tenants included), WAL "
            "apportioned by the platform's share of tuples written, commits from pg_stat_database; Kafka: the "
            "broker's CPU (shared) and the bytes appended to the platform's topics"
        ),
        "profiled": profiled,  # py-spy sampling adds CPU: a profiled run's figures are not the capacity model's
        "host": host(),
        "load_average_by_phase": {n: d["load_average_after"] for n, d in r.items()},
        "idle": idle,
        "cpu_us": cpu_us,
        "prizeflow_cpu_us_per_allocation": total,
        "prizeflow_cpu_us_per_allocation_paced": r["paced_rounds"]["per"]["allocation"]["cpu_us_prizeflow"]
        if "paced_rounds" in r
        else None,
        "prizeflow_cpu_us_per_claim": r["claims"]["per"]["claim"]["cpu_us_prizeflow"]
        if "claim" in r.get("claims", {}).get("per", {})
        else None,
        "prizeflow_cpu_us_per_payout": r["payouts"]["per"]["payout"]["cpu_us_prizeflow"] if "payouts" in r else None,
        "goal_cpu_us_per_allocation": CPU_GOAL_US_PER_ALLOCATION,
        "cpu_goal_met": total <= CPU_GOAL_US_PER_ALLOCATION,
        "per_allocation": pg_kafka([setup, results], allocations),
        "per_claim": pg_kafka([r["claims"]], r["claims"]["units"]["claim"])
        if r.get("claims", {}).get("units", {}).get("claim")
        else None,
        "per_payout": pg_kafka([r["payouts"]], r["payouts"]["units"]["payout"]) if "payouts" in r else None,
        "phases": r,
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
        # Every rail of payouts' local providers file has what it dials: the emulators, the Stellar RPC and the
        # signer (no rail retrying against a closed port in the figures), and the ingress.
        services=("settlement", "rewards", "payouts", "signer", "soroban-rpc", "webhooks", *RAIL_EMULATORS),
        env=LOAD_ENV,
        service_env={"rewards": CLAIMS_ENV},  # the claims phase: every claim approved and paid
    )
    meter = CostMeter(infra.postgres_url, infra.kafka_bootstrap)
    stack = contextlib.AsyncExitStack()
    try:
        await asyncio.to_thread(platform.start)
        await meter.start()

        def leaders() -> dict[str, int]:
            return {n: p.popen.pid for n, p in platform.procs.items() if p.popen is not None and p.alive}

        dbs = {n: platform.database_name(n) for n, p in platform.procs.items() if p.database_url}
        lag = LagProbe(infra.kafka_bootstrap, platform.suffix)
        await lag.start()
        stack.push_async_callback(lag.stop)

        without: set[str] = set()  # consumer groups of a stopped service (by prefix)

        async def behind_now() -> dict[str, int]:
            return {g: n for g, n in (await lag.lag()).items() if not any(g.startswith(w) for w in without)}

        async def caught_up() -> None:
            """Every consumer group of the platform has consumed all there is (a phase's backlog is its own)."""
            deadline = time.monotonic() + 600
            while any((behind := await behind_now()).values()):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"consumers still behind after 600 s: {behind}")
                await asyncio.sleep(0.2)

        phases = Phases(
            meter,
            leaders,
            platform.suffix,
            dbs,
            settle_s=args.settle_seconds,
            quiesce=caught_up,
            profile_to=out_dir / "profile" if args.profile else None,
        )
        idle = await phases.idle(args.idle_seconds)
        doc["allocations"] = await allocations(platform, infra, args.rounds, phases)
        credited = sorted({p for n in range(args.rounds) for p in round_players(n)}, key=lambda p: int(p[1:]))
        if args.claims:
            doc["claims"] = await claims(platform, credited[: args.claims], args.claims_in_flight, phases)
        # "half that load": half the goal of 1,000 allocations/s, i.e. 500 allocations/s.
        half = 500 / PLAYERS_PER_ROUND
        doc["latency"] = await latency(platform, infra, half, args.latency_seconds, phases)
        # Bare requests, last: payouts alone. Rewards never requested them and would dead-letter every outcome
        # (its cost, not payouts'), so it is stopped first and its consumer groups are left out of "caught up".
        platform.kill("rewards")
        without.add("rewards-")
        doc["payouts"] = await payouts(platform, infra, args.payouts, phases)
        if args.profile:
            doc["profile"] = {n: r["profile"] for n, r in phases.results.items() if "profile" in r}
        doc["peak_rss_mb"] = {k: round(v / 1024, 1) for k, v in platform.sample_rss().items()}
        doc["capacity"] = capacity(phases, idle, profiled=args.profile)
    finally:
        await stack.aclose()
        await meter.stop()
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
    doc["goal_at_scale"] = scale_goal(doc)
    chart(doc, out_dir / "e2e.png")
    print_result(doc, out_dir / "e2e.json")
    return doc


# Issue #20's goals, reported beside the first ones. This bench's allocations are a burst of a few seconds and its
# paced phase runs at 500/s, so it cannot show "sustained for 60 s" or the p99s at 4,000/s: those stay unmet here
# and are named, never claimed (the soak, `make soak`, is the sustained measurement).
SCALE_GOAL = {
    "allocations_per_s_sustained_60s": 8000,
    "payouts_per_s_sustained_60s": 2000,
    "p99_closed_to_allocated_ms_at_4000_per_s": 150,
    "p99_requested_to_paid_ms_at_1000_per_s": 300,
    "cpu_us_per_allocation": CPU_GOAL_US_PER_ALLOCATION,
}


def scale_goal(doc: dict[str, Any]) -> dict[str, Any]:
    cpu = doc.get("capacity", {}).get("prizeflow_cpu_us_per_allocation")
    measured = {
        "allocations_per_s_burst": doc["allocations"]["allocations_per_s"],
        "allocations_burst_seconds": doc["allocations"]["seconds"],
        "payouts_per_s_burst": doc["payouts"]["payouts_per_s"],
        "cpu_us_per_allocation": cpu,
    }
    short = [
        name
        for name, ok in (
            ("allocations_per_s", measured["allocations_per_s_burst"] >= 8000),
            ("payouts_per_s", measured["payouts_per_s_burst"] >= 2000),
            ("cpu_us_per_allocation", cpu is not None and cpu <= CPU_GOAL_US_PER_ALLOCATION),
        )
        if not ok
    ]
    not_measured = ["60 s sustained (the allocations phase is a burst)", "p99s at half the scale goal's rates"]
    return {
        "goal": SCALE_GOAL,
        "measured": measured,
        "short_of": short,
        "not_measured_here": not_measured,
        "met": False,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1500)
    parser.add_argument("--payouts", type=int, default=5000)
    parser.add_argument("--latency-seconds", type=float, default=15)
    parser.add_argument("--baseline-seconds", type=int, default=10)
    parser.add_argument("--kafka-records", type=int, default=200_000)
    # 3,500 claims: a claims phase of about a minute at today's ~55 claims/s (issue 32 asks for >= 60 s sustained).
    parser.add_argument("--claims", type=int, default=3500, help="players' claims through rewards' API (0: none)")
    parser.add_argument("--claims-in-flight", type=int, default=64)
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=11,
        help="quiet after each phase before PostgreSQL's statistics are read (backends flush them 10 s after idling)",
    )
    parser.add_argument("--idle-seconds", type=float, default=10, help="the idle platform, measured first")
    parser.add_argument(
        "--profile",
        action="store_true",
        default=os.environ.get("BENCH_PROFILE", "") not in {"", "0"},
        help="py-spy every service in each phase (BENCH_PROFILE=1); .results/bench/profile/<phase>/",
    )
    asyncio.run(main(parser.parse_args()))
