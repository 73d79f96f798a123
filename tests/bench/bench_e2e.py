"""End-to-end benchmark of the whole platform under a sustained load, with this machine's raw baselines in the same
run (issues 7, 20, 46).

Every service runs as its own process (as in production) on the devstack's real PostgreSQL and Kafka, with the
compliance gate on: a risk policy in force (`BENCH_POLICY`, activated by two admins: rewards evaluates it before a
claim, payouts at request and again at send) and the sanctions lists loaded (the sanctions emulator's four).

1. Baselines: pgbench TPS on the same PostgreSQL; Kafka producer and consumer throughput with the perf tools of the
   same Kafka release. Every figure is reported beside its ratio to this run's pgbench TPS (`figures`).
2. The idle platform (CPU-ms/s of each service, of its PostgreSQL backends and of the broker).
3. Allocations: rounds opened and closed (`round_setup`, a burst), then their results offered at a fixed rate for
   `--seconds` (`round_results`, an open loop); round results → credited in rewards' ledger.
4. Claims: players credited enough to claim many times claim through rewards' API (as game clients do), offered at
   a fixed rate for `--seconds` (an open loop, `claims`), accepted → paid by the sandbox provider → settled in
   rewards; then again at half the rate it achieved (`claims_half`), for the latency goals.
5. Paced rounds at 500 allocations/s: round closed → allocated (`paced_rounds`).
6. Settlement alone (rewards stopped: it would otherwise take the results' allocations): rounds opened and closed
   (`settlement_setup`), then their results offered at a fixed rate for `--seconds` (`settlement`); results → round
   settled (RoundSettled received from Kafka).
7. Payouts alone (rewards stopped: it never asked for them), gate on: PayoutRequested offered at a fixed rate for
   `--seconds` (`payouts`), requested → paid; the gate's decisions are read back (`payouts.gate`: every payout
   decided at request and at send under the bench's policy, against every list).

A phase at a fixed rate holds at most `--backlog-seconds` of its rate in flight: a platform slower than the rate is
measured at its own saturated rate (`held_back_s` says how long it was behind), and no phase runs for longer than
`--seconds` plus its drain. Each phase is measured (`prizeflow_testkit.capacity`) until every consumer group has
caught up and every outbox is empty: the CPU of every service, of each service's PostgreSQL backends, of the Kafka
broker and of the load generator (this process: the HTTP client, the producer, the watchers), WAL bytes,
transactions and Kafka bytes in; `capacity` gives them per round, allocation, claim, settled result and payout.
`BENCH_PROFILE=1` (or `--profile`) samples every service and the load generator with py-spy in each phase
(.results/bench/profile/<phase>/; the CPU figures of such a run include py-spy's cost).

Writes .results/bench/e2e.json and .results/bench/e2e.png. `uv run prizeflow-dev bench e2e` (or `make bench`);
`--seconds` sets every sustained phase's length (60 by default: the goals are "sustained >= 60 s"), `--*-per-s` the
rates offered (the goals' by default, so that each phase measures a saturated platform on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaProducer
from rich.console import Console

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.payouts import PayoutPaid
from prizeflow_contracts.events.rewards import RewardAllocated
from prizeflow_contracts.events.settlement import RoundSettled
from prizeflow_contracts.topics import GAME_ROUNDS, PAYOUT_EVENTS, PAYOUT_REQUESTS, REWARDS_EVENTS, SETTLEMENT_ROUNDS
from prizeflow_devstack.bench import figures_table
from prizeflow_devstack.infra import Infra, ensure_infra
from prizeflow_devstack.kafka import ensure_jars, java_bin, kafka_version
from prizeflow_devstack.paths import find_root
from prizeflow_devstack.platform import RAIL_EMULATORS, Platform
from prizeflow_devstack.topics import delete_suffixed
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_testkit import fetch
from prizeflow_testkit.bench import (
    Encoded,
    EventWatcher,
    OpenLoop,
    QueueBound,
    count,
    host,
    latency_ms,
    open_loop,
    per_pgbench,
    print_result,
    wait_count,
)
from prizeflow_testkit.capacity import CostMeter, Phases
from prizeflow_testkit.platform_load import (
    BENCH_POLICY,
    CLAIMS_ENV,
    LOAD_ENV,
    PLAYERS_PER_ROUND,
    PRIZE_PER_ROUND,
    USDC,
    ClaimLoad,
    activate_policy,
    fund,
    payout_request,
    publish,
    round_events,
)
from prizeflow_testkit.soak_probes import LagProbe

# Issue 46's goals (docs/capacity.md): what each figure is judged against, and which way is better.
GOALS: dict[str, tuple[float, str]] = {
    "claims_paid_per_s": (1000, ">="),
    "claims_half_accepted_ms_p99": (100, "<="),
    "claims_half_accepted_to_paid_ms_p99": (500, "<="),
    "claim_postgres_xacts": (0.5, "<="),
    "claim_cpu_us_everything": (2000, "<="),
    "payouts_per_s": (4000, ">="),
    "settlement_round_results_per_s": (6000, ">="),
    "allocations_per_s": (10_000, ">="),
    "allocation_cpu_us_prizeflow": (120, "<="),
    "sustained_s": (60, ">="),
}
IDLE_GOAL_MS_PER_S = 10
# Prizeflow's own services: what "Prizeflow CPU" sums. The platform also runs every rail's provider emulator (and the
# Stellar RPC's), reported by name and as `cpu_us_emulators`, never in Prizeflow's figures.
PRIZEFLOW = ("settlement", "rewards", "payouts", "signer", "webhooks")
SANCTIONS_LISTS = ("ofac_sdn", "ofac_consolidated", "eu", "un")  # what the sanctions emulator serves


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
    try:
        return _kafka_perf(infra, classpath, topic, records)
    finally:
        # Every run's 100 MB of perf records would otherwise stay on the broker's disk for its retention (a week):
        # run after run, they filled this machine's disk and the broker stopped mid-bench.
        delete_suffixed(infra.kafka_bootstrap, topic)


def _kafka_perf(infra: Infra, classpath: str, topic: str, records: int) -> dict[str, Any]:
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


def say(message: str) -> None:
    """Progress on stderr (stdout ends with the JSON document): a long run shows where it is."""
    print(f"{time.strftime('%H:%M:%S')} bench e2e: {message}", file=sys.stderr, flush=True)


def round_players(n: int) -> list[str]:
    """The players of the `n`-th round: 5,000 players, eight a round."""
    return [f"p{(n * 7 + i) % 5000}" for i in range(PLAYERS_PER_ROUND)]


class Bench:
    """The platform under test, its producer, and how a phase at a fixed rate is driven and waited for."""

    def __init__(self, platform: Platform, infra: Infra, phases: Phases, args: argparse.Namespace) -> None:
        self.platform, self.infra, self.phases, self.args = platform, infra, phases, args
        self.producer: AIOKafkaProducer = idempotent_producer(infra.kafka_bootstrap, linger_ms=5)
        self.wall_offset = time.time() - time.monotonic()  # monotonic -> wall clock (the services' timestamps)

    def db(self, service: str) -> str:
        return self.platform.procs[service].database_url or ""

    def topic(self, name: str) -> str:
        return name + self.platform.suffix

    async def watcher(self, topic: str, event: Any, *, per_key: int = 1) -> EventWatcher:
        w = EventWatcher(self.infra.kafka_bootstrap, self.topic(topic), event, from_end=True, per_key=per_key)
        await w.start()
        return w

    async def burst(self, topic: str, events: Sequence[tuple[str, list[Any]]]) -> None:
        """Every (key, payloads) handed to the producer as fast as it takes them, then flushed."""
        for key, payloads in events:
            await publish(self.producer, self.topic(topic), payloads, key)
        await self.producer.flush()

    async def offer(
        self, topic: str, records: Sequence[tuple[str, Encoded]], per_s: float, watcher: EventWatcher
    ) -> tuple[OpenLoop, list[float]]:
        """`records` (key, encoded) offered at `per_s` for `--seconds` at most, held while the platform is more than
        `--backlog-seconds` behind (`QueueBound`); returns when every key sent is done (and each one's due time)."""
        name = self.topic(topic)
        due_at: list[float] = []
        bound = QueueBound(self.args.backlog_seconds, per_s)

        async def send(i: int, due: float) -> None:
            _, (value, key, headers) = records[i]
            due_at.append(due)
            await self.producer.send(name, value=value, key=key, headers=headers)

        def behind() -> bool:
            return bound.behind(due_at, lambda i: records[i][0] in watcher.done_at, watcher.done, time.monotonic())

        paced = await open_loop(len(records), per_s, send, behind=behind, seconds=self.args.seconds)
        await self.producer.flush()
        await watcher.wait([k for k, _ in records[: paced.sent]], 900)
        return paced, due_at


def encode(correlation: str, payload: Any) -> Encoded:
    """`payload` as a record of flow `correlation` (its Kafka key), encoded ahead of the phase that sends it."""
    env = new_event(payload, source="/bench", correlation_id=correlation)
    return env.encode(), env.key, env.headers()


def rate_phase(paced: OpenLoop, done: float, units: int) -> dict[str, Any]:
    """A fixed-rate phase's figures: what was offered, what was completed per second (first due → last done)."""
    elapsed = done - paced.started
    return {
        **paced.summary(),
        "completed": units,
        "seconds": round(elapsed, 2),
        "drain_s": round(max(0.0, done - (paced.started + paced.seconds)), 2),
    }


async def allocations(b: Bench) -> dict[str, Any]:
    """Rounds opened and closed in a burst, then their results offered at `--allocations-per-s`: round results →
    credited in rewards' ledger (eight RewardAllocated per round, from rewards' outbox)."""
    per_s = b.args.allocations_per_s / PLAYERS_PER_ROUND  # rounds a second
    rounds = max(1, math.ceil(per_s * b.args.seconds))
    campaign = f"bench-{uuid.uuid4().hex[:6]}"
    await fund(b.platform, campaign, rounds * PRIZE_PER_ROUND)
    ids = [f"b{uuid.uuid4().hex[:10]}" for _ in range(rounds)]
    built = [round_events(rid, campaign, round_players(n)) for n, rid in enumerate(ids)]
    say(f"round_setup: {rounds} rounds")
    begun = await b.phases.begin("round_setup")
    await b.burst(GAME_ROUNDS.name, [(rid, setup) for rid, (setup, _) in zip(ids, built, strict=True)])
    setup = await b.phases.end("round_setup", begun, {"round": rounds})
    setup_s = float(setup["seconds"])  # from the first event sent until settlement had every round closed
    records = [(rid, encode(rid, result)) for rid, (_, result) in zip(ids, built, strict=True)]
    del built
    watcher = await b.watcher(REWARDS_EVENTS.name, RewardAllocated, per_key=PLAYERS_PER_ROUND)
    try:
        say(f"round_results: {per_s:.0f} round results/s for {b.args.seconds:.0f} s")
        begun = await b.phases.begin("round_results")
        paced, due_at = await b.offer(GAME_ROUNDS.name, records, per_s, watcher)
        sent = paced.sent
        done = max(watcher.done_at[rid] for rid, _ in records[:sent])
        await b.phases.end("round_results", begun, {"round": sent, "allocation": sent * PLAYERS_PER_ROUND})
        lat = sorted((watcher.done_at[rid] - due) * 1000 for (rid, _), due in zip(records, due_at, strict=False))
    finally:
        await watcher.stop()
    figures = rate_phase(paced, done, sent * PLAYERS_PER_ROUND)
    return {
        "rounds_set_up": rounds,
        "setup_seconds": round(setup_s, 2),
        "setup_events_per_s": round(rounds * (PLAYERS_PER_ROUND + 2) / setup_s),
        "rounds": sent,
        "allocations": sent * PLAYERS_PER_ROUND,
        **figures,
        "round_results_per_s": round(sent / figures["seconds"]),
        "allocations_per_s": round(sent * PLAYERS_PER_ROUND / figures["seconds"]),
        **_latency("results_to_allocated_on_kafka", lat),
    }


async def credit_claimants(b: Bench, players: list[str], claims_each: int) -> dict[str, Any]:
    """Enough in every claimant's wallet for `claims_each` claims (and two more): rounds of eight claimants whose
    last place still wins that much (TOP10 pays the 8th 5 %), published and allocated before the claims phases.
    Not a measured phase: its cost is no claim's."""
    need = (claims_each + 2) * USDC
    say(f"crediting {len(players)} claimants with {need // USDC} USDC at least")
    prize = 20 * need
    ids = [f"cr{uuid.uuid4().hex[:10]}" for _ in range(math.ceil(len(players) / PLAYERS_PER_ROUND))]
    campaign = f"credit-{uuid.uuid4().hex[:6]}"
    await fund(b.platform, campaign, len(ids) * prize)
    watcher = await b.watcher(REWARDS_EVENTS.name, RewardAllocated, per_key=PLAYERS_PER_ROUND)
    try:
        rounds = []
        for n, rid in enumerate(ids):
            group = players[n * PLAYERS_PER_ROUND : (n + 1) * PLAYERS_PER_ROUND]
            group += players[: PLAYERS_PER_ROUND - len(group)]  # the last round made up to eight
            setup, result = round_events(rid, campaign, group, prize=prize)
            rounds.append((rid, [*setup, result]))
        await b.burst(GAME_ROUNDS.name, rounds)
        await watcher.wait(ids, 600)
    finally:
        await watcher.stop()
    if b.phases.quiesce is not None:
        await b.phases.quiesce()
    return {"players": len(players), "credited_each_usdc_at_least": need // USDC, "rounds": len(ids)}


async def claims(b: Bench, load: ClaimLoad, players: list[str], per_s: float, name: str) -> dict[str, Any]:
    """Players claim through rewards' API at `per_s` for `--seconds` (taking turns: each claims every
    len(players)/per_s seconds); measured until rewards has settled every approved claim (paid by the sandbox
    provider through payouts, the outcome back in rewards). Accepted: the API's answer, from when the claim was due;
    accepted → paid: that answer to the payout paid in payouts; created → settled: rewards' own timestamps."""
    plan = load.plan(players, max(1, math.ceil(per_s * b.args.seconds)), tag=name)
    paid_sql = "SELECT count(*) FROM claims WHERE status = 'paid'"
    base = await count(b.db("rewards"), paid_sql)
    say(f"{name}: {per_s:.0f} claims/s for {b.args.seconds:.0f} s by {len(players)} players")
    begun = await b.phases.begin(name)
    paced, answers = await load.run(plan, per_s, seconds=b.args.seconds)
    approved = [a for a in answers if a.outcome == "approved"]
    # Rewards' own count, read only once the claims are sent (a watcher of the payouts' events would read every one
    # of them through the whole phase, on the load generator's CPU).
    await wait_count(b.db("rewards"), paid_sql, base + len(approved), 900, interval=0.25)
    await b.phases.end(name, begun, {"claim": len(approved)})
    outcomes: dict[str, int] = {}
    for a in answers:
        outcomes[a.outcome] = outcomes.get(a.outcome, 0) + 1
    ids = [a.claim_id for a in approved]
    settled = await fetch(
        b.db("rewards"),
        "SELECT id, created_at, settled_at FROM claims WHERE id = ANY($1::text[]) AND status = 'paid'",
        ids,
    )
    paid = await fetch(
        b.db("payouts"),
        "SELECT p.claim_id, min(h.at) AS at FROM payouts p JOIN payout_history h ON h.payout_id = p.id "
        "AND h.to_state = 'paid' WHERE p.claim_id = ANY($1::text[]) GROUP BY 1",
        ids,
    )
    paid_at = {r["claim_id"]: r["at"].timestamp() for r in paid}
    answered_wall = {a.claim_id: a.answered + b.wall_offset for a in approved}
    accepted = sorted(a.accepted_ms for a in answers if a.status == 201)
    to_paid = sorted((paid_at[c] - answered_wall[c]) * 1000 for c in ids if c in paid_at)
    to_settled = sorted((r["settled_at"] - r["created_at"]).total_seconds() * 1000 for r in settled)
    first_due = paced.started
    last_answer = max((a.answered for a in answers), default=first_due)
    last_settled = max((r["settled_at"].timestamp() - b.wall_offset for r in settled), default=last_answer)
    return {
        "players": len(players),
        "claims_each": round(paced.sent / len(players), 1),
        **paced.summary(),
        "max_in_flight": load.max_in_flight,
        "outcomes": outcomes,
        "approved": len(approved),
        "settled_in_rewards": len(settled),
        "seconds": round(last_settled - first_due, 2),
        "drain_s": round(max(0.0, last_settled - (first_due + paced.seconds)), 2),
        "claims_answered_per_s": round(len(answers) / max(last_answer - first_due, 1e-3)),
        "claims_paid_per_s": round(len(settled) / max(last_settled - first_due, 1e-3)),
        **_latency("accepted", accepted),
        **_latency("accepted_to_paid", to_paid),
        **_latency("created_to_settled", to_settled),
        "gate": await claims_gate(b, ids),
    }


def _latency(name: str, sorted_ms: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of `name` (ms), nothing when there is no sample."""
    if not sorted_ms:
        return {}
    p95 = sorted_ms[min(len(sorted_ms) - 1, max(0, round(0.95 * len(sorted_ms)) - 1))]
    figures = latency_ms(name, sorted_ms)
    return {f"{name}_ms_p50": figures[f"{name}_ms_p50"], f"{name}_ms_p95": round(p95, 1), **figures}


async def paced_rounds(b: Bench) -> dict[str, Any]:
    """Whole rounds at 500 allocations/s (issue 7's "half load"): round closed → allocated in rewards."""
    per_s = 500 / PLAYERS_PER_ROUND
    total = max(10, int(per_s * b.args.latency_seconds))
    campaign = f"lat-{uuid.uuid4().hex[:6]}"
    await fund(b.platform, campaign, total * PRIZE_PER_ROUND)
    ids = [f"l{uuid.uuid4().hex[:10]}" for _ in range(total)]
    records = []
    for n, rid in enumerate(ids):
        players = [f"q{(n * 5 + i) % 3000}" for i in range(PLAYERS_PER_ROUND)]
        setup, result = round_events(rid, campaign, players)
        records.append([(rid, encode(rid, p)) for p in [*setup, result]])
    watcher = await b.watcher(REWARDS_EVENTS.name, RewardAllocated, per_key=PLAYERS_PER_ROUND)
    name = b.topic(GAME_ROUNDS.name)
    closed_at: dict[str, float] = {}

    async def send(i: int, due: float) -> None:
        for _, (value, key, headers) in records[i]:
            await b.producer.send(name, value=value, key=key, headers=headers)
        closed_at[records[i][0][0]] = due + b.wall_offset

    try:
        say(f"paced_rounds: {per_s:.1f} rounds/s for {b.args.latency_seconds:.0f} s")
        begun = await b.phases.begin("paced_rounds")
        paced = await open_loop(total, per_s, send)
        await b.producer.flush()
        await watcher.wait(ids, 300)
        await b.phases.end("paced_rounds", begun, {"round": total, "allocation": total * PLAYERS_PER_ROUND})
    finally:
        await watcher.stop()
    rows = await fetch(
        b.db("rewards"),
        "SELECT correlation_id AS rid, max(created_at) AS at FROM ledger_transfers "
        "WHERE correlation_id = ANY($1::text[]) AND kind = 'reward' GROUP BY 1",
        ids,
    )
    lat = sorted((r["at"].timestamp() - closed_at[r["rid"]]) * 1000 for r in rows if r["rid"] in closed_at)
    return {
        "rounds_per_s_offered": round(paced.offered_per_s, 1),
        "rounds": len(lat),
        **_latency("closed_to_allocated", lat),
    }


async def settlement(b: Bench) -> dict[str, Any]:
    """Settlement alone (rewards is stopped): rounds opened and closed in a burst, then their results offered at
    `--settlement-per-s`; a result counts once its RoundSettled is received from Kafka."""
    per_s = b.args.settlement_per_s
    players = b.args.settlement_players
    rounds = b.args.settlement_rounds or max(1, math.ceil(per_s * b.args.seconds))
    ids = [f"s{uuid.uuid4().hex[:10]}" for _ in range(rounds)]
    names = [f"s{i}" for i in range(players)]
    say(f"settlement_setup: {rounds} rounds (rewards stopped)")
    begun = await b.phases.begin("settlement_setup")
    results: list[tuple[str, Encoded]] = []
    chunk = 5000
    for n in range(0, rounds, chunk):  # built as sent: the setup of a long phase does not sit in memory
        batch = []
        for rid in ids[n : n + chunk]:
            opening, result = round_events(rid, "settle-only", names)
            batch.append((rid, opening))
            results.append((rid, encode(rid, result)))
        for key, payloads in batch:
            await publish(b.producer, b.topic(GAME_ROUNDS.name), payloads, key)
    await b.producer.flush()
    setup = await b.phases.end("settlement_setup", begun, {"round": rounds})
    setup_s = float(setup["seconds"])  # from the first event sent until settlement had every round closed
    watcher = await b.watcher(SETTLEMENT_ROUNDS.name, RoundSettled)
    try:
        say(f"settlement: {per_s:.0f} round results/s for {b.args.seconds:.0f} s")
        begun = await b.phases.begin("settlement")
        paced, due_at = await b.offer(GAME_ROUNDS.name, results, per_s, watcher)
        sent = paced.sent
        done = max(watcher.done_at[rid] for rid, _ in results[:sent])
        await b.phases.end("settlement", begun, {"round_result": sent})
        lat = sorted((watcher.done_at[rid] - due) * 1000 for (rid, _), due in zip(results, due_at, strict=False))
    finally:
        await watcher.stop()
    figures = rate_phase(paced, done, sent)
    return {
        "players_per_round": players,
        "rounds_set_up": rounds,
        "setup_seconds": round(setup_s, 2),
        "setup_events_per_s": round(rounds * (players + 2) / setup_s),
        **figures,
        "round_results_per_s": round(sent / figures["seconds"]),
        **_latency("results_to_settled_on_kafka", lat),
    }


async def payouts(b: Bench, policy_version: int) -> dict[str, Any]:
    """Payouts alone (rewards stopped), the gate on: PayoutRequested offered at `--payouts-per-s`, requested →
    paid; then the gate's own record of them (`gate`)."""
    per_s = b.args.payouts_per_s
    n = max(1, math.ceil(per_s * b.args.seconds))
    run = uuid.uuid4().hex[:8]
    records = []
    for i in range(n):
        key = f"bench:{run}{i:08d}"
        corr = key.replace(":", "-")
        records.append((corr, encode(corr, payout_request(key, f"bp{i % 997}"))))
    watcher = await b.watcher(PAYOUT_EVENTS.name, PayoutPaid)
    try:
        say(f"payouts: {per_s:.0f} PayoutRequested/s for {b.args.seconds:.0f} s (gate on, rewards stopped)")
        begun = await b.phases.begin("payouts")
        paced, due_at = await b.offer(PAYOUT_REQUESTS.name, records, per_s, watcher)
        sent = paced.sent
        done = max(watcher.done_at[k] for k, _ in records[:sent])
        await b.phases.end("payouts", begun, {"payout": sent})
    finally:
        await watcher.stop()
    rows = await fetch(
        b.db("payouts"),
        "SELECT p.idempotency_key AS key, min(h.at) AS at FROM payouts p JOIN payout_history h "
        "ON h.payout_id = p.id AND h.to_state = 'paid' WHERE p.idempotency_key LIKE $1 GROUP BY 1",
        f"bench:{run}%",
    )
    requested = {k.replace("-", ":", 1): due + b.wall_offset for (k, _), due in zip(records, due_at, strict=False)}
    lat = sorted((r["at"].timestamp() - requested[r["key"]]) * 1000 for r in rows if r["key"] in requested)
    figures = rate_phase(paced, done, sent)
    return {
        **figures,
        "payouts_per_s": round(sent / figures["seconds"]),
        **_latency("requested_to_paid", lat),
        "gate": await payouts_gate(b, f"cl-{run}%", sent, policy_version),
    }


_GATE_DECISIONS = """
SELECT stage, action, policy_version, list_versions ?& $2::text[] AS every_list, count(*) AS n
FROM compliance_decisions WHERE claim_id LIKE $1 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""


async def payouts_gate(b: Bench, claim_like: str, payouts_n: int, policy_version: int) -> dict[str, Any]:
    """The gate's decisions on the phase's payouts, as payouts recorded them: the gate was on if every payout was
    allowed at request and at send under the bench's policy version, screened against every list."""
    rows = await fetch(b.db("payouts"), _GATE_DECISIONS, claim_like, list(SANCTIONS_LISTS))
    decisions = [
        {
            "stage": r["stage"],
            "action": r["action"],
            "policy_version": r["policy_version"],
            "every_list": r["every_list"],
            "n": r["n"],
        }
        for r in rows
    ]

    def allowed(stage: str) -> int:
        return sum(
            d["n"]
            for d in decisions
            if d["stage"] == stage
            and d["action"] == "allow"
            and d["policy_version"] == policy_version
            and d["every_list"]
        )

    on = allowed("request") >= payouts_n and allowed("send") >= payouts_n
    return {
        "on": on,
        "policy_version": policy_version,
        "sanctions_lists": list(SANCTIONS_LISTS),
        "allowed_at_request": allowed("request"),
        "allowed_at_send": allowed("send"),
        "decisions": decisions,
    }


async def claims_gate(b: Bench, claim_ids: list[str | None]) -> dict[str, Any]:
    """The payouts gate's decisions on the claims' payouts (rewards evaluated the same policy before each claim:
    `activate_policy` waited until it had it)."""
    conn = await asyncpg.connect(asyncpg_dsn(b.db("payouts")))
    try:
        rows = await conn.fetch(
            "SELECT stage, action, policy_version, list_versions ?& $2::text[] AS every_list, count(*) AS n "
            "FROM compliance_decisions WHERE claim_id = ANY($1::text[]) GROUP BY 1, 2, 3, 4",
            [c for c in claim_ids if c],
            list(SANCTIONS_LISTS),
        )
    finally:
        await conn.close()
    lists = {True: "every list", False: "NOT every list"}
    return {f"{r['stage']} {r['action']}, v{r['policy_version']}, {lists[r['every_list']]}": r["n"] for r in rows}


def capacity(phases: Phases, idle: dict[str, Any], profiled: bool) -> dict[str, Any]:
    """The capacity model's inputs (docs/capacity.md): CPU-µs of each service per round, allocation, claim, settled
    result and payout (a setup burst's cost in the share of its rounds that had results), PostgreSQL's and Kafka's
    cost per event, and the load generator's."""
    r = phases.results

    def add(a: dict[str, float], b: dict[str, float], w: float = 1.0) -> dict[str, float]:
        return {k: a.get(k, 0.0) + w * b.get(k, 0.0) for k in a.keys() | b.keys()}

    def weighted(setup: str, main: str, unit: str) -> tuple[list[tuple[dict[str, Any], float]], int] | None:
        if main not in r or not r[main]["units"].get(unit):
            return None
        parts = [(r[main], 1.0)]
        if setup in r:
            used = r[main]["units"].get("round", r[main]["units"].get("round_result", 0))
            parts.append((r[setup], min(1.0, used / max(1, r[setup]["units"]["round"]))))
        return parts, r[main]["units"][unit]

    def cpu(parts: list[tuple[dict[str, Any], float]], n: int, key: str = "cpu_s") -> dict[str, float]:
        total: dict[str, float] = {}
        for d, w in parts:
            total = add(total, d[key], w)
        return {s: round(v * 1e6 / n, 1) for s, v in sorted(total.items()) if key != "cpu_s" or s in PRIZEFLOW}

    def pg_kafka(parts: list[tuple[dict[str, Any], float]], n: int) -> dict[str, Any]:
        def total_of(values: list[tuple[float | None, float]]) -> float | None:
            return None if any(v is None for v, _ in values) else sum(v * w for v, w in values if v is not None)

        backends = total_of([(d["postgres"]["cpu_s_platform_backends"], w) for d, w in parts])
        server = total_of([(d["postgres"]["cpu_s_server"], w) for d, w in parts])
        wal = total_of([(d["postgres"]["wal_bytes_platform"], w) for d, w in parts])
        broker = total_of([(d["kafka"]["cpu_s_broker"], w) for d, w in parts])
        xacts: dict[str, float] = {}
        pg_by: dict[str, float] = {}
        for d, w in parts:
            xacts = add(xacts, {s: float(v["xacts"]) for s, v in d["postgres"]["by_service"].items()}, w)
            pg_by = add(pg_by, d["postgres"].get("cpu_s_by_service", {}), w)
        prizeflow = sum(sum(v for s, v in d["cpu_s"].items() if s in PRIZEFLOW) * w for d, w in parts)
        emulators = sum(sum(v for s, v in d["cpu_s"].items() if s not in PRIZEFLOW) * w for d, w in parts)
        return {
            "postgres_cpu_us_platform_backends": None if backends is None else round(backends * 1e6 / n, 1),
            "postgres_cpu_us_by_service": {s: round(v * 1e6 / n, 1) for s, v in sorted(pg_by.items())},
            "postgres_cpu_us_server": None if server is None else round(server * 1e6 / n, 1),
            "postgres_wal_bytes": None if wal is None else round(wal / n),
            "postgres_xacts": round(sum(xacts.values()) / n, 4),
            "postgres_xacts_by_service": {s: round(v / n, 4) for s, v in sorted(xacts.items())},
            "kafka_broker_cpu_us": None if broker is None else round(broker * 1e6 / n, 1),
            "kafka_bytes_in": round(sum(d["kafka"]["bytes_in_platform"] * w for d, w in parts) / n),
            "prizeflow_cpu_us": round(prizeflow * 1e6 / n, 1),
            "emulators_cpu_us": round(emulators * 1e6 / n, 1),
            "cpu_us_everything": None
            if backends is None or broker is None
            else round((prizeflow + backends + broker) * 1e6 / n, 1),
            "load_generator_cpu_us": cpu(parts, n, "cpu_s_load"),
        }

    events = {
        "allocation": weighted("round_setup", "round_results", "allocation"),
        "allocation_paced": weighted("", "paced_rounds", "allocation"),
        "claim": weighted("", "claims", "claim"),
        "claim_half": weighted("", "claims_half", "claim"),
        "settled_result": weighted("settlement_setup", "settlement", "round_result"),
        "payout": weighted("", "payouts", "payout"),
    }
    cpu_us = {f"per_{e}": cpu(*w) if w else {} for e, w in events.items()}
    if events["allocation"] is not None:
        parts, _ = events["allocation"]
        cpu_us["per_round"] = cpu(parts, r["round_results"]["units"]["round"])
    per = {f"per_{e}": pg_kafka(*w) if w else None for e, w in events.items()}

    def total(e: str) -> float | None:
        figures = per[f"per_{e}"]
        return None if figures is None else figures["prizeflow_cpu_us"]

    return {
        "method": (
            "utime+stime of each service's process group (/proc/<pid>/stat) before and after each phase, of the load "
            "generator (this process) apart; per allocation and per settled result a setup burst's cost counts in "
            "the share of its rounds whose results were sent; PostgreSQL: its processes' CPU (each service's "
            "backends; the server's, other tenants included), WAL apportioned by the platform's share of tuples "
            "written, commits from pg_stat_database; Kafka: the broker's CPU (shared) and the bytes appended to the "
            "platform's topics"
        ),
        "profiled": profiled,  # py-spy sampling adds CPU: a profiled run's figures are not the capacity model's
        "host": host(),
        "load_average_by_phase": {n: d["load_average_after"] for n, d in r.items()},
        "idle": idle,
        "cpu_us": cpu_us,
        **{f"prizeflow_cpu_us_per_{e}": total(e) for e in events},
        "goal_cpu_us_per_allocation": GOALS["allocation_cpu_us_prizeflow"][0],
        "cpu_goal_met": (t := total("allocation")) is not None and t <= GOALS["allocation_cpu_us_prizeflow"][0],
        **per,
        "phases": r,
    }


def _get(doc: dict[str, Any], *path: str) -> Any:
    node: Any = doc
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


# (figure, where it is in the document, unit; `per_pgbench` says how each unit is put against pgbench's TPS).
FIGURES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("allocations_per_s", ("allocations", "allocations_per_s"), "/s"),
    ("allocations_results_to_allocated_ms_p99", ("allocations", "results_to_allocated_on_kafka_ms_p99"), "ms"),
    ("allocation_cpu_us_prizeflow", ("capacity", "per_allocation", "prizeflow_cpu_us"), "µs"),
    ("allocation_cpu_us_everything", ("capacity", "per_allocation", "cpu_us_everything"), "µs"),
    ("allocation_postgres_xacts", ("capacity", "per_allocation", "postgres_xacts"), "count"),
    ("claims_offered_per_s", ("claims", "offered_per_s"), "/s"),
    ("claims_answered_per_s", ("claims", "claims_answered_per_s"), "/s"),
    ("claims_paid_per_s", ("claims", "claims_paid_per_s"), "/s"),
    ("claims_accepted_ms_p99", ("claims", "accepted_ms_p99"), "ms"),
    ("claims_accepted_to_paid_ms_p99", ("claims", "accepted_to_paid_ms_p99"), "ms"),
    ("claims_created_to_settled_ms_p99", ("claims", "created_to_settled_ms_p99"), "ms"),
    ("claim_cpu_us_prizeflow", ("capacity", "per_claim", "prizeflow_cpu_us"), "µs"),
    ("claim_cpu_us_everything", ("capacity", "per_claim", "cpu_us_everything"), "µs"),
    ("claim_postgres_xacts", ("capacity", "per_claim", "postgres_xacts"), "count"),
    ("claims_half_offered_per_s", ("claims_half", "offered_per_s"), "/s"),
    ("claims_half_paid_per_s", ("claims_half", "claims_paid_per_s"), "/s"),
    ("claims_half_accepted_ms_p50", ("claims_half", "accepted_ms_p50"), "ms"),
    ("claims_half_accepted_ms_p95", ("claims_half", "accepted_ms_p95"), "ms"),
    ("claims_half_accepted_ms_p99", ("claims_half", "accepted_ms_p99"), "ms"),
    ("claims_half_accepted_to_paid_ms_p50", ("claims_half", "accepted_to_paid_ms_p50"), "ms"),
    ("claims_half_accepted_to_paid_ms_p95", ("claims_half", "accepted_to_paid_ms_p95"), "ms"),
    ("claims_half_accepted_to_paid_ms_p99", ("claims_half", "accepted_to_paid_ms_p99"), "ms"),
    ("claims_half_created_to_settled_ms_p99", ("claims_half", "created_to_settled_ms_p99"), "ms"),
    ("paced_closed_to_allocated_ms_p99", ("latency", "closed_to_allocated_ms_p99"), "ms"),
    ("settlement_round_results_per_s", ("settlement", "round_results_per_s"), "/s"),
    ("settlement_results_to_settled_ms_p99", ("settlement", "results_to_settled_on_kafka_ms_p99"), "ms"),
    ("settled_result_cpu_us_prizeflow", ("capacity", "per_settled_result", "prizeflow_cpu_us"), "µs"),
    ("payouts_per_s", ("payouts", "payouts_per_s"), "/s"),
    ("payouts_requested_to_paid_ms_p99", ("payouts", "requested_to_paid_ms_p99"), "ms"),
    ("payout_cpu_us_prizeflow", ("capacity", "per_payout", "prizeflow_cpu_us"), "µs"),
    ("payout_postgres_xacts", ("capacity", "per_payout", "postgres_xacts"), "count"),
)


def idle_goal(figure: dict[str, Any], value: float) -> None:
    figure.update(goal=f"<= {IDLE_GOAL_MS_PER_S}", goal_met=value <= IDLE_GOAL_MS_PER_S)


def figures(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every headline figure with its unit, its ratio to this run's pgbench TPS and the goal it is judged by."""
    tps = float(doc["baseline_pgbench"]["tps"])
    out: dict[str, dict[str, Any]] = {}

    def put(name: str, value: Any, unit: str) -> None:
        if not isinstance(value, int | float):
            return
        fig: dict[str, Any] = {"value": value, "unit": unit, "per_pgbench": per_pgbench(value, unit, tps)}
        if name in GOALS:
            goal, way = GOALS[name]
            fig["goal"] = f"{way} {goal:g}"
            fig["goal_met"] = value >= goal if way == ">=" else value <= goal
        out[name] = fig

    for name, path, unit in FIGURES:
        put(name, _get(doc, *path), unit)
    phases = [p for p in ("allocations", "claims", "settlement", "payouts") if isinstance(doc.get(p), dict)]
    sustained = [doc[p]["send_seconds"] for p in phases if "send_seconds" in doc[p]]
    if sustained:
        put("sustained_s", min(sustained), "s")
    idle = _get(doc, "capacity", "idle") or {}
    for service, value in sorted((idle.get("cpu_ms_per_s") or {}).items()):
        if service not in PRIZEFLOW:
            continue
        put(f"idle_cpu_ms_per_s_{service}", value, "ms")
        idle_goal(out[f"idle_cpu_ms_per_s_{service}"], value)
    pg_idle = idle.get("postgres_cpu_ms_per_s_platform_backends")
    if isinstance(pg_idle, int | float):
        put("idle_cpu_ms_per_s_postgres", pg_idle, "ms")
        idle_goal(out["idle_cpu_ms_per_s_postgres"], pg_idle)
    return out


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = doc["figures"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    a = axes[0]
    rates = ("allocations_per_s", "settlement_round_results_per_s", "payouts_per_s", "claims_paid_per_s")
    shown = [n for n in rates if n in figs]
    a.bar(range(len(shown)), [figs[n]["value"] for n in shown], color="#2b8cbe", label="measured")
    a.scatter(range(len(shown)), [GOALS[n][0] for n in shown], color="red", marker="_", s=2000, label="goal", zorder=3)
    a.set_xticks(range(len(shown)), [n.removesuffix("_per_s").replace("_", " ") for n in shown], fontsize=8)
    a.set_title("Sustained throughput (per s)")
    a.legend()
    b = axes[1]
    labels = {
        "claims_half_accepted_ms_p99": "accepted p99",
        "claims_half_accepted_to_paid_ms_p99": "accepted → paid p99",
    }
    lat = [n for n in labels if n in figs]
    b.bar(range(len(lat)), [figs[n]["value"] for n in lat], color="#756bb1")
    b.scatter(range(len(lat)), [GOALS[n][0] for n in lat], color="red", marker="_", s=2000, zorder=3)
    b.set_xticks(range(len(lat)), [labels[n] for n in lat])
    b.set_title("Claims at half the rate achieved (ms)")
    c = axes[2]
    rss = doc["peak_rss_mb"]
    c.bar(list(rss), list(rss.values()), color="#fd8d3c")
    c.axhline(200, color="red", linestyle="--", label="200 MB goal")
    c.tick_params(axis="x", labelrotation=60, labelsize=7)
    c.set_title("Peak RSS per service (MB)")
    c.legend()
    fig.suptitle(f"Prizeflow end-to-end bench, {doc['cores']} cores, pgbench {doc['baseline_pgbench']['tps']} tps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def outboxes_empty(conns: Sequence[asyncpg.Connection]) -> bool:
    """No event staged and not yet published in any of these databases (a relay's backlog is its phase's)."""
    for conn in conns:
        with contextlib.suppress(asyncpg.UndefinedTableError):
            if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox)"):
                return False
    return True


async def main(args: argparse.Namespace) -> dict[str, Any]:
    infra = ensure_infra()
    out_dir = find_root() / ".results" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = set(args.phases.split(","))
    doc: dict[str, Any] = {"benchmark": "e2e", "cores": os.cpu_count(), "arguments": vars(args)}
    say("baselines: pgbench, Kafka's perf tools")
    doc["baseline_pgbench"] = await asyncio.to_thread(pgbench, infra, args.baseline_seconds)
    doc["baseline_kafka"] = await asyncio.to_thread(kafka_perf, infra, args.kafka_records)
    platform = Platform(
        infra,
        Path(tempfile.mkdtemp(prefix="prizeflow-bench-")),
        # Every rail of payouts' local providers file has what it dials: the emulators, the Stellar RPC and the
        # signer (no rail retrying against a closed port in the figures), the ingress, the KYC vendor and the
        # sanctions lists' publisher (the gate screens against its four lists).
        services=("settlement", "rewards", "payouts", "signer", "soroban-rpc", "webhooks", *RAIL_EMULATORS),
        env=LOAD_ENV,
        service_env={"rewards": CLAIMS_ENV},  # the claims phases: a player claiming many times is approved
    )
    meter = CostMeter(infra.postgres_url, infra.kafka_bootstrap)
    stack = contextlib.AsyncExitStack()
    try:
        say("starting the platform")
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
            """Every consumer group of the platform has consumed all there is and every outbox is published (a
            phase's backlog is its own)."""
            deadline = time.monotonic() + 600
            while any((behind := await behind_now()).values()):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"consumers still behind after 600 s: {behind}")
                await asyncio.sleep(0.2)
            # Then the relays: one connection to each live service's database for the whole wait (a connection a
            # poll would start a backend each time, on the platform's databases, in the phase's figures).
            urls = [p.database_url for p in platform.procs.values() if p.database_url and p.alive]
            conns = [await asyncpg.connect(asyncpg_dsn(u)) for u in dict.fromkeys(urls)]
            try:
                while not await outboxes_empty(conns) or any((behind := await behind_now()).values()):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"relays or consumers still behind after 600 s: {behind}")
                    await asyncio.sleep(0.2)
            finally:
                for conn in conns:
                    await conn.close()

        async def checkpoint() -> None:
            """A checkpoint before each phase: the phases share one PostgreSQL, and the WAL of the ones before would
            otherwise trigger checkpoints inside the next (their dirty pages written, and every page's first change
            after them logged whole, in the next phase's figures). A phase's own WAL still checkpoints within it
            when it writes enough (a 60 s phase does). Not a VACUUM (ANALYZE): statistics taken of a phase's tables
            while they are still empty (the payouts phase alone) plan its statements for empty tables while they
            grow (measured: payouts at half their rate)."""
            conn = await asyncpg.connect(asyncpg_dsn(infra.postgres_url))
            try:
                await conn.execute("CHECKPOINT")
            finally:
                await conn.close()

        phases = Phases(
            meter,
            leaders,
            platform.suffix,
            dbs,
            settle_s=args.settle_seconds,
            quiesce=caught_up,
            profile_to=out_dir / "profile" if args.profile else None,
            load={"load-generator": os.getpid()},
            prizeflow=PRIZEFLOW,
            before=checkpoint,
        )
        version = await activate_policy(platform, BENCH_POLICY, "bench: every window rule, limits not reached")
        doc["policy"] = {"version": version, "rules": BENCH_POLICY}
        say(f"risk policy version {version} in force; the idle platform")
        idle = await phases.idle(args.idle_seconds)
        b = Bench(platform, infra, phases, args)
        await b.producer.start()
        stack.push_async_callback(b.producer.stop)
        if "allocations" in wanted:
            doc["allocations"] = await allocations(b)
        if "claims" in wanted:
            players = [f"c{i}" for i in range(args.claim_players)]
            full = math.ceil(args.claims_per_s * args.seconds)
            each = math.ceil(full * 1.5 / len(players))  # the full rate, then at most half of it
            doc["claims_credit"] = await credit_claimants(b, players, each)
            load = ClaimLoad(platform, max_in_flight=args.claims_in_flight)
            await load.start()
            stack.push_async_callback(load.stop)
            doc["claims"] = await claims(b, load, players, args.claims_per_s, "claims")
            if "claims_half" in wanted:
                achieved = min(doc["claims"]["claims_paid_per_s"], doc["claims"]["claims_answered_per_s"])
                half = (achieved if args.half_of == "achieved" else args.claims_per_s) / 2
                half_run = await claims(b, load, players, max(half, 1), "claims_half")
                doc["claims_half"] = {"rate_of": args.half_of, **half_run}
        if "paced_rounds" in wanted:
            doc["latency"] = await paced_rounds(b)
        # Settlement and payouts alone, last: rewards would take the settled rounds' allocations (not settlement's
        # cost) and dead-letter every outcome of a payout it never asked for, so it is stopped first and its consumer
        # groups are left out of "caught up".
        if wanted & {"settlement", "payouts"}:
            platform.kill("rewards")
            without.add("rewards-")
        if "settlement" in wanted:
            doc["settlement"] = await settlement(b)
        if "payouts" in wanted:
            doc["payouts"] = await payouts(b, version)
        if args.profile:
            doc["profile"] = {n: r["profile"] for n, r in phases.results.items() if "profile" in r}
        doc["peak_rss_mb"] = {k: round(v / 1024, 1) for k, v in platform.sample_rss().items()}
        doc["capacity"] = capacity(phases, idle, profiled=args.profile)
    finally:
        await stack.aclose()
        await meter.stop()
        await asyncio.to_thread(platform.stop)
    doc["figures"] = figures(doc)
    doc["ratios"] = {n: f["per_pgbench"] for n, f in doc["figures"].items() if f["per_pgbench"] is not None}
    doc["gate_on"] = bool(_get(doc, "payouts", "gate", "on")) if "payouts" in doc else None
    judged = [f for f in doc["figures"].values() if "goal_met" in f]
    doc["goal_at_scale"] = {
        "issue": 46,
        "goals": {n: f["goal"] for n, f in doc["figures"].items() if "goal" in f},
        "short_of": sorted(n for n, f in doc["figures"].items() if f.get("goal_met") is False),
        "met": bool(judged) and all(f["goal_met"] for f in judged),
    }
    doc["pass"] = doc["goal_at_scale"]["met"] and doc["gate_on"] is not False
    Console(width=150).print(figures_table(doc))
    print_result(doc, out_dir / "e2e.json")
    chart(doc, out_dir / "e2e.png")
    return doc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="each fixed-rate phase's sending time (60)")
    parser.add_argument("--allocations-per-s", type=float, default=10_000, help="allocations offered (8 a result)")
    parser.add_argument("--claims-per-s", type=float, default=1000, help="claims offered through rewards' API")
    parser.add_argument("--half-of", choices=["achieved", "target"], default="achieved", help="claims_half's rate")
    parser.add_argument("--settlement-per-s", type=float, default=6000, help="round results offered to settlement")
    parser.add_argument("--settlement-players", type=int, default=4, help="players a round in the settlement phase")
    parser.add_argument(
        "--settlement-rounds",
        type=int,
        default=0,
        help="rounds set up for the settlement phase (default: its rate x --seconds, every result it may offer; fewer "
        "shortens the setup, and a platform faster than rounds / --seconds then runs out before --seconds)",
    )
    parser.add_argument("--payouts-per-s", type=float, default=4000, help="PayoutRequested offered")
    parser.add_argument("--claim-players", type=int, default=5000, help="players who claim, in turns")
    parser.add_argument("--claims-in-flight", type=int, default=512, help="claims awaiting an answer at most")
    parser.add_argument(
        "--backlog-seconds",
        type=float,
        default=5,
        help="a Kafka-fed phase holds back while the platform is this many seconds behind (QueueBound)",
    )
    parser.add_argument("--latency-seconds", type=float, default=15, help="paced rounds at 500 allocations/s")
    parser.add_argument("--baseline-seconds", type=int, default=10)
    parser.add_argument("--kafka-records", type=int, default=200_000)
    parser.add_argument(
        "--phases",
        default="allocations,claims,claims_half,paced_rounds,settlement,payouts",
        help="which phases run (comma-separated; all by default; claims_half runs after claims only)",
    )
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
        help="py-spy every service and the load generator in each phase (BENCH_PROFILE=1); .results/bench/profile/",
    )
    # uvloop: the load generator shares the machine with the platform, and takes less of it on uvloop.
    uvloop.run(main(parser.parse_args()))
