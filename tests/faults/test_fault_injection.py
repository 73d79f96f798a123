"""Fault injection: the platform under crashes and restarts must never pay twice nor lose money.

While simulated game servers publish rounds (with duplicate and malformed records) and players claim,
this SIGKILLs each service at random moments and restarts it, restarts the Kafka broker and PostgreSQL,
replays topics from offset 0, and makes the sandbox provider time out after succeeding. Then it drains
and checks, against each service's own records:

- every settled allocation is credited to a wallet exactly once;
- every payout is paid exactly once at the provider (the sandbox's own books) or sits in an explicit
  state with a reason;
- per asset the ledger sums to zero and no flagged account is negative;
- every event in a DLQ carries a reason.

- every round the simulator published reached its final state in settlement, and was settled (or voided) by
  one event: a redelivered game event never settles a round a second time;
- every consumer group's committed offset is its partitions' end offset (lag zero).

Replicas: settlement, rewards and payouts each run as PRIZEFLOW_FAULTS_REPLICAS processes (default 3, as issue
20 asks) in the same consumer groups on the same database. Instead of restarting each service, the schedule then
SIGKILLs one of its replicas while rounds are being published and consumed (it is not restarted: its partitions,
uncommitted batch and all, move to the survivors), and adds a new replica of each under load (a rebalance).
PRIZEFLOW_FAULTS_REPLICAS=1 runs the former schedule: each service SIGKILLed and restarted.

Size: PRIZEFLOW_FAULTS_ROUNDS (default 60, CI), PRIZEFLOW_FAULTS_REPLICAS and PRIZEFLOW_FAULTS_SEED; e.g.
`PRIZEFLOW_FAULTS_ROUNDS=600 PRIZEFLOW_FAULTS_REPLICAS=5 uv run pytest tests/faults -m faults -s` for a longer run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from support import USDC, Api, events_on, uid, wait_for

from prizeflow_contracts.errors import REFUSAL_REASONS
from prizeflow_contracts.events.settlement import RoundSettled, RoundVoided
from prizeflow_contracts.topics import ALL_TOPICS, GAME_ROUNDS, SETTLEMENT_ROUNDS
from prizeflow_devstack.infra import Infra, restart_kafka, restart_postgres
from prizeflow_devstack.platform import RAIL_EMULATORS, Platform
from prizeflow_runtime.dead_letters import DLQ_REASON
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_simulator.chaos import ChaosConfig
from prizeflow_simulator.runner import Simulator
from prizeflow_simulator.scenarios import RoundKind, RoundPlan, ScenarioConfig
from prizeflow_testkit import consumer_group_lags, fetch, header, read_topic

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.restarts_infra]

ROUNDS = int(os.environ.get("PRIZEFLOW_FAULTS_ROUNDS", "60"))
SEED = int(os.environ.get("PRIZEFLOW_FAULTS_SEED", "20261121"))
REPLICAS = int(os.environ.get("PRIZEFLOW_FAULTS_REPLICAS", "3"))
SERVICES = ("settlement", "rewards", "payouts")
DESTINATIONS = (("success", 0.6), ("timeout_after_success", 0.25), ("pending", 0.15))


@pytest.fixture(scope="module")
def platform(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = Platform(
        infra,
        tmp_path_factory.mktemp("faults"),
        # payouts' rails (deploy/local/providers.yaml) need their emulators, the Stripe rail its webhook path
        services=(*SERVICES, "webhooks", *RAIL_EMULATORS),
        replicas=dict.fromkeys(SERVICES, REPLICAS),
        env={
            "CONSUMER_RETRY_MAX_ATTEMPTS": "5",
            "REWARDS_NEW_DESTINATION_COOLDOWN_S": "0",  # holds are not what this suite is about
            "REWARDS_VELOCITY_MAX_CLAIMS": "1000",
            "PAYOUTS_WORKER_INTERVAL_MS": "100",
        },
    )
    try:
        p.start()
        yield p
    finally:
        p.stop()


class Faults:
    def __init__(self, platform: Platform, infra: Infra, rng: random.Random, sim: Simulator, per_fault: int) -> None:
        self.platform, self.infra, self.rng, self.sim, self.per_fault = platform, infra, rng, sim, per_fault
        self.injected: Counter[str] = Counter()

    async def kill_and_restart(self, service: str) -> None:
        await asyncio.to_thread(self.platform.restart, service)
        self.injected[f"sigkill {service}"] += 1

    async def kill_replica_mid_batch(self, service: str) -> None:
        """SIGKILL one of the service's other replicas (not the one its peers address) while rounds are published
        and consumed, and leave it dead: the group hands its partitions, uncommitted batch and all, to the others."""
        victims = [n for n in self.platform.replica_names(service)[1:] if self.platform.procs[n].alive]
        victim = self.rng.choice(victims)
        publishing = asyncio.create_task(self.sim.run(rate=20, rounds=self.per_fault))
        try:
            published = self.sim.stats.events

            async def records() -> int:
                return self.sim.stats.events

            await wait_for(records, lambda n: n >= published + 3, timeout=60)
            await asyncio.to_thread(self.platform.kill, victim)
        finally:
            await publishing
        self.injected[f"sigkill replica of {service}"] += 1

    async def add_replica(self, service: str) -> None:
        """One more process in the service's groups while rounds are published: a rebalance under load."""
        publishing = asyncio.create_task(self.sim.run(rate=20, rounds=self.per_fault))
        try:
            await asyncio.to_thread(self.platform.add_replica, service)
        finally:
            await publishing
        self.injected[f"add replica of {service}"] += 1

    def _own_infra(self, what: str) -> None:
        """A fault it cannot inject fails the run: a suite that skipped its restarts proved nothing about them."""
        if not self.infra.managed:
            pytest.fail(
                f"cannot restart {what}: DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS point at servers the devstack does "
                "not manage. Run the fault suite on the devstack's own (unset both, or point them at it)."
            )

    async def restart_kafka(self) -> None:
        self._own_infra("the Kafka broker")
        await asyncio.to_thread(restart_kafka)
        self.injected["kafka restart"] += 1

    async def restart_postgres(self) -> None:
        self._own_infra("PostgreSQL")
        await asyncio.to_thread(restart_postgres)
        self.injected["postgres restart"] += 1

    async def replay(self, topic: str) -> None:
        """Re-publish every record of `topic` from offset 0: every consumer sees it all again."""
        bootstrap = self.infra.kafka_bootstrap
        records = await read_topic(bootstrap, topic)
        producer = idempotent_producer(bootstrap, client_id="faults-replay")
        await producer.start()
        try:
            for r in records:
                await producer.send(topic, r.value, key=r.key, headers=list(r.headers or ()))
            await producer.flush()
        finally:
            await producer.stop()
        self.injected[f"replay {topic.split('.')[1]} ({len(records)} records)"] += 1


async def claimer(api: Api, sim: Simulator, rng: random.Random, stop: asyncio.Event, outcomes: Counter[str]) -> None:
    """Players claim most of what they hold, to sandbox destinations that succeed, time out after success, or pend.
    `outcomes["passes"]` counts its rounds over the players."""
    while not stop.is_set():
        players = list(set(sim.recent_players))
        for player in rng.sample(players, k=min(4, len(players))):
            try:
                available = await api.available(player)
                if available < USDC:
                    continue
                scenario = rng.choices([d for d, _ in DESTINATIONS], weights=[w for _, w in DESTINATIONS])[0]
                response = await api.call(
                    "POST",
                    "rewards",
                    "/claims/",
                    user=player,
                    roles=["player"],
                    json={
                        "asset": "USDC",
                        "amount": available * 3 // 4,
                        "destination": {"type": "sandbox", "address": f"{scenario}:{player}"},
                    },
                )
                outcomes[f"claim {response.status_code}"] += 1
            except Exception as err:  # noqa: BLE001 - services are being killed on purpose; try again later
                outcomes[f"claim error {type(err).__name__}"] += 1
        outcomes["passes"] += 1
        await asyncio.sleep(0.5)  # pacing of the workload, not synchronisation


@pytest.mark.timeout(900)  # its phases carry their own deadlines (the drain alone may take 300 s on 2 busy cores)
async def test_never_pays_twice_never_loses_money_under_faults(platform: Platform, infra: Infra) -> None:
    rng = random.Random(SEED)
    api = Api(platform)
    campaign = uid("faults")
    await api.funded_campaign(campaign, 10_000_000 * USDC)
    sim = Simulator(
        bootstrap=infra.kafka_bootstrap,
        topic_suffix=platform.suffix,
        scenario=ScenarioConfig(campaign_id=campaign, players=40, entry_fee_units=(0, 0)),
        chaos=ChaosConfig(duplicate_rate=0.05, malformed_rate=0.05),
        seed=SEED,
        keep_plans=True,
    )
    await sim.start()
    # Rounds are published before each fault, and while each replica fault runs: ROUNDS in all.
    phases = 8 + (3 * len(SERVICES) if REPLICAS > 1 else 0)
    faults = Faults(platform, infra, rng, sim, per_fault=max(1, ROUNDS // phases))
    stop = asyncio.Event()
    claims: Counter[str] = Counter()
    started = time.monotonic()
    claiming = asyncio.create_task(claimer(api, sim, rng, stop, claims))
    try:
        # With replicas, a killed replica is replaced by a new one instead of restarted: as many process starts.
        schedule = [faults.kill_and_restart(s) for s in SERVICES if REPLICAS == 1] + [
            faults.restart_kafka(),
            faults.restart_postgres(),
            faults.replay(GAME_ROUNDS.name + platform.suffix),
            faults.replay(SETTLEMENT_ROUNDS.name + platform.suffix),
        ]
        if REPLICAS > 1:
            schedule += [faults.kill_replica_mid_batch(s) for s in SERVICES]
            schedule += [faults.add_replica(s) for s in SERVICES]
        rng.shuffle(schedule)
        for fault in schedule:
            await sim.run(rate=20, rounds=faults.per_fault)
            await fault
        await sim.run(rate=20, rounds=max(0, ROUNDS - sim.stats.rounds.total()))
        # Players claim what the last rounds paid them: three more passes over them while everything runs.
        passes = claims["passes"]

        async def claimer_passes() -> int:
            return claims["passes"]

        await wait_for(claimer_passes, lambda n: n >= passes + 3, timeout=120)
    finally:
        stop.set()
        await claiming
        await sim.stop()

    summary = await drain_and_check(platform, api, infra, sim.stats.plans)
    summary.update(
        faults=dict(faults.injected),
        rounds_published=dict(sim.stats.rounds),
        records_published=sim.stats.events,
        chaos=dict(sim.stats.chaos),
        claims=dict(claims),
        seconds=round(time.monotonic() - started, 1),
        restarts={name: proc.starts - 1 for name, proc in platform.procs.items()},
        replicas={s: sum(platform.procs[n].alive for n in platform.replica_names(s)) for s in SERVICES},
    )
    await api.close()
    print("\nfault injection summary:")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    # Real work happened under the faults, or the invariants below prove nothing.
    assert faults.injected.total() == len(schedule), faults.injected
    assert summary["allocations"] > 0, "no round settled with allocations"
    assert claims["claim 201"] > 0, f"no claim was accepted: {dict(claims)}"
    for provider, states in summary["payouts by provider"].items():
        assert states.get("paid", 0) > 0, f"provider {provider} paid nothing: {states}"
    assert summary["payouts by provider"], "no payout was made"
    assert summary["invariant checks passed"] == summary["invariant checks"], summary["failed checks"]


async def why_stuck(platform: Platform, db: dict[str, str]) -> str:
    """What a drain that never reached its fixpoint leaves to read: each database's open transactions and outbox
    writers, and every process's log lines about its relay and its errors."""
    lines: list[str] = []
    for service, url in db.items():
        open_transactions = await fetch(
            url,
            "SELECT pid, state, now() - xact_start AS open_for, wait_event_type, wait_event, left(query, 160) AS q "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND xact_start IS NOT NULL ORDER BY xact_start",
        )
        writers = await fetch(
            url,
            "SELECT l.pid, l.virtualtransaction, a.state FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'relation' AND l.relation = 'outbox'::regclass AND l.mode = 'RowExclusiveLock'",
        )
        lines += [f"{service} db: {dict(r)}" for r in open_transactions]
        lines += [f"{service} outbox writer: {dict(r)}" for r in writers]
    for name in platform.procs:
        noted = [
            line
            for line in platform.logs(name, 4000).splitlines()
            if "relay" in line or '"ERROR"' in line or '"CRITICAL"' in line
        ]
        lines += [f"{name}: {line[:400]}" for line in noted[-15:]]
    return "\n".join(lines)


async def drain_and_check(platform: Platform, api: Api, infra: Infra, plans: list[RoundPlan]) -> dict[str, Any]:
    db = {name: platform.procs[name].database_url or "" for name in SERVICES}

    suffix = platform.suffix
    fed = [  # the consumer groups the workload feeds: each must have committed, whatever else is in the platform
        group + suffix for group in ("settlement-rounds", "rewards-rounds", "rewards-payouts", "payouts-requests")
    ]

    async def unquiet() -> str:
        """What keeps the platform from a fixpoint ("" at one): every consumer group of the platform has committed
        its topics' end offsets, no outbox holds an event, no payout is in flight, and the end offsets did not move
        meanwhile. Consumers commit after their transaction (and its outbox rows) commits, so nothing can still be
        on its way. A timeout names what was still moving."""
        before = await consumer_group_lags(infra.kafka_bootstrap, suffix)
        if missing := [group for group in fed if group not in before]:
            return f"no committed offsets yet for {missing}"
        if lagging := {g: {t: n for t, n in lags.items() if n} for g, lags in before.items() if any(lags.values())}:
            return f"consumer lag {lagging}"
        for s in SERVICES:
            if n := int((await fetch(db[s], "SELECT count(*) AS n FROM outbox"))[0]["n"]):
                return f"{s}'s outbox holds {n} events"
        in_flight = await fetch(
            db["payouts"],
            "SELECT state, provider_name, last_error_code, count(*) AS n FROM payouts "
            "WHERE state NOT IN ('paid', 'failed', 'cancelled', 'rejected', 'returned') GROUP BY 1, 2, 3",
        )
        if in_flight:
            return "payouts in flight " + ", ".join(
                f"{r['n']} {r['state']} on {r['provider_name']} ({r['last_error_code']})" for r in in_flight
            )
        if await consumer_group_lags(infra.kafka_bootstrap, suffix) != before:
            return "end offsets moved"
        return ""

    try:
        await wait_for(unquiet, lambda why: why == "", timeout=300)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{await why_stuck(platform, db)}") from None

    checks: dict[str, bool] = {}
    # 1. Every settled allocation is in a wallet exactly once, for its amount.
    allocations = {
        (r["round_id"], r["player_id"]): int(r["amount"])
        for r in await fetch(
            db["settlement"],
            "SELECT a.round_id, a.player_id, a.amount FROM round_allocations a JOIN rounds r USING (round_id) "
            "WHERE r.state = 'settled' AND a.source = 'pool'",
        )
    }
    credited: Counter[tuple[str, str]] = Counter()
    credited_amount: dict[tuple[str, str], int] = {}
    for r in await fetch(db["rewards"], "SELECT business_key, amount FROM ledger_transfers WHERE kind = 'reward'"):
        _, round_id, player = r["business_key"].split("|", 2)
        credited[(round_id, player)] += 1
        credited_amount[(round_id, player)] = int(r["amount"])
    held = {r["round_id"] for r in await fetch(db["rewards"], "SELECT round_id FROM held_allocations")}
    checks["every settled allocation credited exactly once"] = (
        all(credited[k] == 1 and credited_amount[k] == v for k, v in allocations.items() if k[0] not in held)
        and all(n == 1 for n in credited.values())
        and set(credited) <= set(allocations)
    )
    # 2. Every payout paid exactly once at the provider, or in an explicit state with a reason.
    payouts = await fetch(
        db["payouts"], "SELECT id, idempotency_key, provider_name, state, last_error_code FROM payouts"
    )
    transfers = Counter(
        r["idempotency_key"] for r in await fetch(db["payouts"], "SELECT idempotency_key FROM sandbox.transfers")
    )
    paid = [p for p in payouts if p["state"] == "paid"]
    checks["every paid payout executed exactly once by the provider"] = all(
        transfers[p["idempotency_key"]] == 1 for p in paid
    )
    checks["no provider execution without a paid payout"] = set(transfers) <= {p["idempotency_key"] for p in paid}
    # The state is never NULL or unknown (payouts_state_known); its reason is only code, so this can fail.
    checks["every unpaid payout has an explicit state and reason"] = all(
        p["state"] in ("failed", "cancelled", "rejected") and p["last_error_code"]
        for p in payouts
        if p["state"] != "paid"
    )
    # 3. The rewards ledger balances and nothing is overdrawn; claims agree with payouts.
    sums = await fetch(
        db["rewards"], "SELECT asset, sum(credits_posted - debits_posted) AS s FROM ledger_accounts GROUP BY asset"
    )
    checks["per asset the ledger sums to zero"] = all(r["s"] == 0 for r in sums)
    # Not checked here because the database makes them unfailable: no flagged account is overdrawn
    # (CHECK debits_must_not_exceed_credits), no transfer is between one account and itself
    # (ledger_transfers_distinct_accounts), a pending transfer resolves once (ledger_transfers_resolves_once),
    # a claim binds one payout (claims_one_per_payout), a claim pays one payout request (payouts_request_unique).
    claim_states = Counter(r["status"] for r in await fetch(db["rewards"], "SELECT status FROM claims"))
    checks["paid claims match paid payouts"] = claim_states.get("paid", 0) == len(paid)
    # 4. Nothing in a DLQ without a reason.
    dead = []
    for topic in ALL_TOPICS:
        dead += await read_topic(infra.kafka_bootstrap, topic.dlq.replace(topic.name, topic.name + platform.suffix))
    reasons = Counter(header(r, DLQ_REASON) for r in dead)
    checks["every DLQ record carries a known reason"] = all(reason in REFUSAL_REASONS for reason in reasons)
    checks["nothing dead-lettered as handler_failed"] = "handler_failed" not in reasons

    # 5. Every round reached its end in settlement, by one settling (or voiding) event: whatever replica handled
    #    it, however often its game events came (duplicates, replays, redelivery after a kill or a rebalance).
    states = {r["round_id"]: r["state"] for r in await fetch(db["settlement"], "SELECT round_id, state FROM rounds")}
    expected = {p.round_id: "voided" if p.kind is RoundKind.VOIDED else "settled" for p in plans}
    outcomes: dict[str, set[str]] = {}
    for envelope in await events_on(infra.kafka_bootstrap, SETTLEMENT_ROUNDS.name + suffix):
        if envelope.type in (RoundSettled.event_type(), RoundVoided.event_type()):
            round_id = envelope.data.round_id
            outcomes.setdefault(round_id, set()).add(f"{envelope.type}:{envelope.id}")
    checks["every round settled (or voided) exactly once"] = all(
        states.get(round_id) == state and len(outcomes.get(round_id, ())) == 1 for round_id, state in expected.items()
    ) and set(outcomes) <= set(expected)
    # 6. Every consumer group of the platform has consumed everything: lag zero on every partition.
    lags = await consumer_group_lags(infra.kafka_bootstrap, suffix)
    checks["every partition's lag is zero in every consumer group"] = bool(lags) and not any(
        lag for per_group in lags.values() for lag in per_group.values()
    )

    failed = [name for name, ok in checks.items() if not ok]
    return {
        "invariant checks": len(checks),
        "invariant checks passed": len(checks) - len(failed),
        "failed checks": failed,
        "allocations": len(allocations),
        "payouts": dict(Counter(p["state"] for p in payouts)),
        "payouts by provider": {
            name: dict(Counter(p["state"] for p in payouts if p["provider_name"] == name))
            for name in sorted({p["provider_name"] for p in payouts})
        },
        "provider executions": sum(transfers.values()),
        "claims by status": dict(claim_states),
        "dead-lettered by reason": dict(reasons),
        "rounds by state": dict(Counter(states.values())),
        "consumer groups": len(lags),
    }
