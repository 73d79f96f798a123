"""The compliance gate on real PostgreSQL and Kafka with the sandbox rail: requests arrive as PayoutRequested, the
gate runs at request time (in the insert's transaction), at send time (in the worker's claim) and when people or
a verification release a hold. A sanctioned destination or player is never paid, under replays and races.

The gate's collaborators owned by other parts of the work (the sanctions screen, the compliance facts) are fakes
here; the worker is driven by the test (`payouts_worker_enabled=False`) so "between request and send" is a place.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from compliance_fakes import FakeScreen
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_compliance.adapters.sanctions import SqlSanctionsLists
from prizeflow_compliance.application.ports import (
    Identity,
    PlayerCompliance,
)
from prizeflow_compliance.application.rescreen import RescreenVerifiedPlayers
from prizeflow_compliance.application.sanctions import ListsScreen, RefreshSanctionsLists
from prizeflow_contracts.policy import (
    EMPTY_POLICY,
    AmountInWindow,
    Finding,
    Hit,
    PolicyRule,
    RiskPolicy,
    Verdict,
    VerificationStatus,
)
from prizeflow_contracts.providers import PayoutDestination, destination_key
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.gate import PayoutGate
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_payouts.application.resume import ResumeVerifiedPayouts
from prizeflow_payouts.application.worker import PayoutWorker
from prizeflow_payouts.bootstrap import Payouts, bind_books, build, compose
from prizeflow_payouts.domain.gate import policy_findings
from prizeflow_payouts.entrypoints.kafka import request_command
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.db import asyncpg_dsn, create_engine, session_factory
from prizeflow_runtime.migrations import migrate, upgrade_to_head
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_sanctions_emulator.server import PATHS, Emulator
from prizeflow_testkit import eventually, provision_test_topics, wait_ready
from prizeflow_testkit.payouts import (
    ALEMBIC_INI,
    books,
    fetch,
    payout_events,
    providers_file,
    publish,
    request,
    settings_for,
    state_of,
    token,
    wait_state,
)

pytestmark = pytest.mark.integration

REQUESTS = "prizeflow.payouts.requests.v1"
LISTED = "success:listed-wallet"


@dataclass
class FakeFacts:
    policy: RiskPolicy = EMPTY_POLICY
    players_: dict[str, PlayerCompliance] = field(default_factory=dict)

    async def active_policy(self) -> RiskPolicy:
        return self.policy

    async def players(self, player_ids: list[str]) -> Mapping[str, PlayerCompliance]:
        return {p: self.players_.get(p) or PlayerCompliance(p, VerificationStatus.NOT_STARTED) for p in player_ids}


@dataclass
class Rig:
    parts: Payouts  # the service under test (HTTP, consumers, relay: in the test client's own event loop)
    local: Payouts  # the same wiring on this test's event loop: the worker passes and transactions the test drives
    client: AsyncTestClient[Any]
    screen: FakeScreen
    facts: FakeFacts
    gate: PayoutGate
    settings: PayoutsSettings

    async def send(self, worker: PayoutWorker | None = None) -> None:
        """One worker pass: the send-time gate, then the provider calls."""
        await (worker or self.local.worker).run_once()

    async def publish(self, *envs: Any) -> None:
        await publish(self.settings.kafka_bootstrap_servers, REQUESTS + self.settings.kafka_topic_suffix, list(envs))


def _facts_from(parts: Payouts, facts: FakeFacts) -> None:
    """The gate reads the fake's compliance facts: bound in every transaction of `parts` (its unit of work and its
    consumers), where `bind` binds the SQL ones."""
    sql = parts.runtime.uow.bind

    def with_fake(session: AsyncSession) -> Books:
        bound: Books = sql(session)
        return replace(bound, compliance=replace(bound.compliance, facts=facts))

    parts.runtime.uow.bind = with_fake
    parts.runtime.bind = with_fake


@asynccontextmanager
async def gated(settings: PayoutsSettings, *, sql_facts: bool = False) -> AsyncIterator[Rig]:
    """The API process (HTTP, consumers, relay) with the gate wired as bootstrap will wire it; no worker loop.
    `sql_facts`: the compliance facts from the database (risk_policies, kyc_verifications), not the fake."""
    await provision_test_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_suffix, settings.kafka_topics)
    parts = compose(settings)
    screen, facts = FakeScreen(), FakeFacts()
    gate = PayoutGate(screen=screen, sources=("ofac_sdn",))
    if not sql_facts:
        _facts_from(parts, facts)
    parts.create.gate = gate
    parts.worker.gate = gate
    parts.admin.gate = gate
    app = build(settings, parts=parts)
    local = compose(settings)
    if not sql_facts:
        _facts_from(local, facts)
    local.create.gate = gate
    local.worker.gate = gate
    local.admin.gate = gate
    await local.start_providers()
    try:
        async with AsyncTestClient(app) as client:
            await wait_ready(client)
            yield Rig(parts, local, client, screen, facts, gate, settings)
    finally:
        await local.close_providers()
        await local.runtime.engine.dispose()


async def _value(metric: Any) -> float:
    return float(metric._value.get())


def _settings(db: str, kafka: str, tmp_path: Path, topic_suffix: str, **overrides: Any) -> PayoutsSettings:
    return settings_for(
        db, kafka, providers_file(tmp_path), topic_suffix=topic_suffix, payouts_worker_enabled=False, **overrides
    )


async def _row(db: str, key: str) -> dict[str, Any]:
    rows = await fetch(
        db,
        "SELECT id, state, hold_code, hold_detail, approval_policy, next_attempt_at, finished_at, max_attempts "
        "FROM payouts WHERE idempotency_key = $1",
        key,
    )
    return dict(rows[0])


async def _decisions(db: str, payout_id: str) -> list[tuple[str, str, str | None]]:
    rows = await fetch(
        db, "SELECT stage, action, hold_code FROM compliance_decisions WHERE payout_id = $1 ORDER BY id", payout_id
    )
    return [(r["stage"], r["action"], r["hold_code"]) for r in rows]


async def test_a_listed_destination_is_held_replays_change_nothing_and_two_approvers_clear_it(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        rig.screen.addresses[LISTED] = ["SDN-1"]
        env = request(address=LISTED, player_id="player-s", requested_by="player-s")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "pending_approval") == "pending_approval"
        row = await _row(db, key)
        assert (row["hold_code"], row["approval_policy"]) == ("screening_hit", "dual")
        assert "SDN-1" in row["hold_detail"]
        pid = row["id"]
        # The same request again (redelivered, and re-published under a new envelope), and the worker: nothing
        # moves, nothing is sent, one decision.
        replays = rig.parts.metrics.duplicates_replayed.labels("kafka")
        before = replays._value.get()
        await rig.publish(env, request(key, address=LISTED, player_id="player-s", requested_by="player-s"))
        await eventually(lambda: _value(replays), lambda v: v > before, timeout=30)
        await rig.send()
        assert await _row(db, key) == row
        assert await _decisions(db, pid) == [("request", "hold", "screening_hit")]
        assert (await books(db, key))["create_calls"] == 0

        bob, carol = token(settings, "bob", "approver"), token(settings, "carol", "approver")
        first = await rig.client.post(f"/payouts/{pid}/approve", json={"reason": "false positive"}, headers=bob)
        assert first.json()["state"] == "pending_approval"
        again = await rig.client.post(f"/payouts/{pid}/approve", json={}, headers=bob)
        assert again.json()["code"] == "already_approved"
        second = await rig.client.post(f"/payouts/{pid}/approve", json={"reason": "agreed"}, headers=carol)
        assert second.status_code == 200, second.text
        assert second.json()["state"] == "approved"
        clearance = await fetch(db, "SELECT subject_kind, source, entry_uid, cleared_by FROM screening_clearances")
        assert [dict(c) for c in clearance] == [
            {"subject_kind": "destination", "source": "ofac_sdn", "entry_uid": "SDN-1", "cleared_by": ["bob", "carol"]}
        ]
        await rig.send()
        assert await wait_state(db, key, "paid") == "paid"
        assert (await books(db, key))["transfers"] == 1
        assert [d[:2] for d in await _decisions(db, pid)] == [
            ("request", "hold"),
            ("approval", "allow"),
            ("send", "allow"),
        ]

        # The same false positive is not asked about again for this destination.
        env2 = request(address=LISTED, player_id="player-s", requested_by="player-s")
        await rig.publish(env2)
        assert await wait_state(db, env2.data.idempotency_key, "approved") == "approved"
        await rig.send()
        assert await wait_state(db, env2.data.idempotency_key, "paid") == "paid"


async def test_a_hold_of_a_kind_this_build_does_not_know_is_never_released_by_people(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """A newer release added a hold kind (its reference row, migration-style: an expand step stays on a rollback) and
    held a payout with it; the approval lands on a pod of the previous release (a rolling deploy, a rollback). That
    build cannot know whether people may release the kind (`refused_with`) nor evaluate it: fail closed."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        rig.screen.addresses[LISTED] = ["SDN-1"]
        env = request(address=LISTED, player_id="player-n", requested_by="player-n")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "pending_approval") == "pending_approval"
        pid = (await _row(db, key))["id"]
        conn = await asyncpg.connect(asyncpg_dsn(db))
        try:
            await conn.execute("INSERT INTO payout_hold_kinds (code) VALUES ('newer_review') ON CONFLICT DO NOTHING")
            await conn.execute("UPDATE payouts SET hold_code = 'newer_review' WHERE id = $1", pid)
        finally:
            await conn.close()
        rig.screen.addresses.clear()  # what this build's gate can see allows it
        for who in ("bob", "carol"):
            answer = await rig.client.post(
                f"/payouts/{pid}/approve", json={"reason": "looks fine"}, headers=token(settings, who, "approver")
            )
            assert (answer.status_code, answer.json()["code"]) == (409, "unknown_hold"), answer.text
        await rig.send()
        assert (await _row(db, key))["state"] == "pending_approval"
        assert (await books(db, key))["create_calls"] == 0


async def test_a_list_refreshed_between_request_and_send_holds_at_send(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        env = request(address="success:late-listed", player_id="player-l", requested_by="player-l")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "approved") == "approved"
        rig.screen.addresses["success:late-listed"] = ["SDN-7"]  # the list refresh
        rig.screen.loaded["ofac_sdn"] = "2026-11-25"
        await rig.send()
        row = await _row(db, key)
        assert (row["state"], row["hold_code"], row["approval_policy"]) == (
            "pending_approval",
            "screening_hit",
            "dual",
        )
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}
        versions = await fetch(
            db,
            "SELECT stage, list_versions->>'ofac_sdn' AS v FROM compliance_decisions WHERE payout_id = $1 ORDER BY id",
            row["id"],
        )
        assert [(v["stage"], v["v"]) for v in versions] == [("request", "2026-11-20"), ("send", "2026-11-25")]
        history = await fetch(
            db, "SELECT from_state, to_state FROM payout_history WHERE payout_id = $1 ORDER BY id", row["id"]
        )
        assert [(h["from_state"], h["to_state"]) for h in history][-1] == ("approved", "pending_approval")
        await rig.send()
        assert await state_of(db, key) == "pending_approval"
        async with rig.local.uow() as tx:
            assert await rig.gate.refresh_held(tx) == {"screening_hit": 1}


async def test_two_workers_racing_never_send_a_held_payout(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        envs = [request(address=f"success:race-{n}", player_id="player-r", requested_by="player-r") for n in range(20)]
        await rig.publish(*envs)
        for e in envs:
            assert await wait_state(db, e.data.idempotency_key, "approved") == "approved"
        for n in range(20):
            rig.screen.addresses[f"success:race-{n}"] = [f"SDN-R{n}"]
        rig.screen.loaded["ofac_sdn"] = "2026-11-25"  # the list refresh that names them (a new version)
        other = PayoutWorker(
            uow=rig.local.uow,
            registry=rig.local.config.registry,
            builder=rig.local.builder,
            config=rig.local.worker.config,
            worker_id="worker-2",
            gate=rig.gate,
        )
        await asyncio.gather(rig.send(), rig.send(other), rig.send(), rig.send(other))
        states = await fetch(
            db,
            "SELECT state, hold_code, count(*) AS n FROM payouts WHERE player_id = 'player-r' GROUP BY 1, 2",
        )
        assert [dict(s) for s in states] == [{"state": "pending_approval", "hold_code": "screening_hit", "n": 20}]
        sent = await fetch(
            db,
            "SELECT count(*) AS n FROM sandbox.calls c JOIN payouts p ON p.idempotency_key = c.idempotency_key "
            "WHERE p.player_id = 'player-r'",
        )
        assert sent[0]["n"] == 0
        decisions = await fetch(
            db,
            "SELECT count(*) AS n FROM compliance_decisions d JOIN payouts p ON p.id = d.payout_id "
            "WHERE p.player_id = 'player-r' AND d.stage = 'send'",
        )
        assert decisions[0]["n"] == 20  # each decided once, by whichever worker locked it


async def test_an_approval_racing_a_new_hit_still_holds(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        rig.screen.addresses["success:twice"] = ["SDN-A"]
        env = request(address="success:twice", player_id="player-t", requested_by="player-t")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "pending_approval") == "pending_approval"
        pid = (await _row(db, key))["id"]
        ok = await rig.client.post(f"/payouts/{pid}/approve", json={}, headers=token(settings, "bob", "approver"))
        assert ok.status_code == 200
        rig.screen.addresses["success:twice"] = ["SDN-A", "SDN-B"]  # a new entry lands between the two approvals
        last = await rig.client.post(f"/payouts/{pid}/approve", json={}, headers=token(settings, "carol", "approver"))
        assert last.status_code == 200, last.text
        assert last.json()["state"] == "pending_approval"
        row = await _row(db, key)
        assert row["hold_code"] == "screening_hit"
        assert "SDN-B" in row["hold_detail"]
        assert "SDN-A" not in row["hold_detail"]  # cleared by bob and carol
        # Approvals of the hold before count nothing for the new one: one more approver is not enough.
        third = await rig.client.post(f"/payouts/{pid}/approve", json={}, headers=token(settings, "dave", "approver"))
        assert third.json()["state"] == "pending_approval"
        await rig.send()
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}


async def test_a_policy_tightened_between_request_and_send_is_honoured_at_send(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        env = request(address="success:limit", player_id="player-p", requested_by="player-p", amount=50 * 10**7)
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "approved") == "approved"
        rig.facts.policy = RiskPolicy(
            version=2, rules=[PolicyRule(player_limit=AmountInWindow(amount=10 * 10**7, window_s=86_400))]
        )
        await rig.send()
        row = await _row(db, key)
        assert (row["state"], row["hold_code"]) == ("pending_approval", "policy")
        assert "player_limit" in row["hold_detail"]
        policy = await fetch(db, "SELECT policy_version FROM compliance_decisions WHERE payout_id = $1", row["id"])
        assert [p["policy_version"] for p in policy] == [0, 2]
        # A person decides: released, and the next send does not hold it again for the same policy.
        ok = await rig.client.post(
            f"/payouts/{row['id']}/approve", json={"reason": "known player"}, headers=token(settings, "bob", "approver")
        )
        assert ok.json()["state"] == "approved"
        await rig.send()
        assert await wait_state(db, key, "paid") == "paid"


async def test_an_allow_stands_at_send_until_the_players_facts_change(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """Issue 46: an allow at request is recorded again at send (`request_decision_stands`) while the policy version,
    the lists and the player's facts are what it was made with, and the payout is paid; the same player's next
    payout, whose verification failed between its request and its send, is decided again at send and held."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        rig.facts.policy = RiskPolicy(version=6, rules=[PolicyRule(kyc_above=AmountInWindow(amount=1, window_s=3600))])
        screened = dict(rig.screen.loaded)  # screened against the loaded lists (not stale)
        rig.facts.players_["player-st"] = PlayerCompliance(
            "player-st", VerificationStatus.VERIFIED, "GB", screening_versions=screened
        )
        first = request(address="success:stands-1", player_id="player-st", requested_by="player-st")
        await rig.publish(first)
        assert await wait_state(db, first.data.idempotency_key, "approved") == "approved"
        row = await _row(db, first.data.idempotency_key)
        [stamped] = await fetch(db, "SELECT gate_stamp FROM payouts WHERE id = $1", row["id"])
        assert stamped["gate_stamp"].startswith("v6:")
        await rig.send()
        assert await state_of(db, first.data.idempotency_key) == "paid"
        found = await fetch(
            db,
            "SELECT stage, action, policy_version, reasons -> 0 ->> 'finding' AS finding FROM compliance_decisions "
            "WHERE payout_id = $1 ORDER BY id",
            row["id"],
        )
        assert [tuple(f) for f in found] == [
            ("request", "allow", 6, None),
            ("send", "allow", 6, "request_decision_stands"),
        ]

        second = request(address="success:stands-2", player_id="player-st", requested_by="player-st")
        await rig.publish(second)
        assert await wait_state(db, second.data.idempotency_key, "approved") == "approved"
        rig.facts.players_["player-st"] = PlayerCompliance(
            "player-st", VerificationStatus.FAILED, "GB", screening_versions=screened
        )
        await rig.send()
        row = await _row(db, second.data.idempotency_key)
        assert (row["state"], row["hold_code"]) == ("pending_approval", "policy")
        assert [d[:2] for d in await _decisions(db, row["id"])] == [("request", "allow"), ("send", "hold")]
        [cleared] = await fetch(db, "SELECT gate_stamp FROM payouts WHERE id = $1", row["id"])
        assert cleared["gate_stamp"] is None  # held: a release is decided again at the next send
        assert await books(db, second.data.idempotency_key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}


async def test_a_destination_made_old_by_a_payout_rejected_since_is_held_at_send_as_new(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """Issue 46's standing allow, attacked: a request to a destination the player first used (a payout still waiting
    for people) longer ago than the cooldown is allowed and stamped; people then reject that first payout, which now
    counts for nothing: the destination was never paid and is new again. The send stage decides the stamped payout
    again and holds it (new destination), as it did before issue 46; it is never sent."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        rig.facts.policy = RiskPolicy(version=9, rules=[PolicyRule(new_destination_cooldown_s=3600)])
        first = request(address="success:cool", player_id="player-cool", requested_by="player-cool")
        await rig.publish(first)
        assert await wait_state(db, first.data.idempotency_key, "pending_approval") == "pending_approval"
        held = await _row(db, first.data.idempotency_key)
        conn = await asyncpg.connect(asyncpg_dsn(db))
        try:  # the first use two hours ago (the cooldown is one)
            await conn.execute("UPDATE payouts SET created_at = now() - interval '2 hours' WHERE id = $1", held["id"])
        finally:
            await conn.close()
        second = request(address="success:cool", player_id="player-cool", requested_by="player-cool")
        await rig.publish(second)
        assert await wait_state(db, second.data.idempotency_key, "approved") == "approved"
        [stamped] = await fetch(
            db, "SELECT gate_stamp FROM payouts WHERE idempotency_key = $1", second.data.idempotency_key
        )
        assert stamped["gate_stamp"] is not None
        no = await rig.client.post(
            f"/payouts/{held['id']}/reject", json={"reason": "not theirs"}, headers=token(settings, "bob", "approver")
        )
        assert no.json()["state"] == "rejected", no.text
        await rig.send()
        row = await _row(db, second.data.idempotency_key)
        assert (row["state"], row["hold_code"]) == ("pending_approval", "policy")
        assert "new_destination" in row["hold_detail"]
        assert await books(db, second.data.idempotency_key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}


async def test_a_payout_decided_again_at_send_waits_for_a_request_to_its_destination_still_open(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """Review of the destination lock (0522c5a), attacked: player A's request under a destination limit locks its
    player and destination, reads the destination's sum and is allowed, its transaction still open. Player B's
    request to that destination, decided under the policy before (the empty one, which reads no history and locks
    nothing: the first policy with a limit is being activated), is stored after A's facts were read, so A never
    counts it. B's stamp names the old version: the send stage decides B again. Deciding it while A is still
    uncommitted, without A's locks, it would count nothing of A, allow B and pay it; A's allow then stands at send
    on its stamp and is paid too, past the limit a send-stage recomputation of either holds. The send stage waits
    for A's commit instead, counts A and holds B; A is paid alone."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    limited = RiskPolicy(
        version=11, rules=[PolicyRule(destination_limit=AmountInWindow(amount=100 * 10**7, window_s=86_400))]
    )
    async with gated(settings) as rig:
        a = request(address="success:one-wallet", player_id="player-da", requested_by="player-da", amount=60 * 10**7)
        b = request(address="success:one-wallet", player_id="player-db", requested_by="player-db", amount=60 * 10**7)
        rig.facts.policy = limited
        decided, commit = asyncio.Event(), asyncio.Event()

        async def request_a() -> None:
            async with rig.local.runtime.uow() as open_books:
                await rig.local.create.execute(open_books, [request_command(a)])
                decided.set()
                await commit.wait()

        a_task = asyncio.create_task(request_a())
        try:
            await asyncio.wait_for(decided.wait(), 30)
            rig.facts.policy = EMPTY_POLICY  # what B's request read (before the limit was active)
            async with rig.local.runtime.uow() as b_books:
                await rig.local.create.execute(b_books, [request_command(b)])
            assert await state_of(db, b.data.idempotency_key) == "approved"
            rig.facts.policy = limited
            send = asyncio.create_task(rig.send())

            async def settled() -> bool:
                waits = await fetch(db, "SELECT count(*) AS n FROM pg_locks WHERE locktype='advisory' AND NOT granted")
                return send.done() or waits[0]["n"] > 0  # the send stage waits for A (or, unfixed, paid B already)

            assert await eventually(settled, bool, timeout=30, interval=0.05)
            commit.set()
            await asyncio.wait_for(a_task, 30)
            await asyncio.wait_for(send, 30)
        finally:
            commit.set()
            await asyncio.gather(a_task, return_exceptions=True)
        held = await _row(db, b.data.idempotency_key)
        assert (held["state"], held["hold_code"]) == ("pending_approval", "policy"), held
        assert "to this destination" in held["hold_detail"]
        assert await books(db, b.data.idempotency_key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}
        assert await state_of(db, a.data.idempotency_key) == "approved"
        await rig.send()
        assert await wait_state(db, a.data.idempotency_key, "paid") == "paid"
        row = await _row(db, a.data.idempotency_key)
        assert [d[:2] for d in await _decisions(db, row["id"])] == [("request", "allow"), ("send", "allow")]


async def test_held_for_verification_resumes_once_verified_and_is_rejected_when_it_fails(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        rig.facts.policy = RiskPolicy(
            version=3, rules=[PolicyRule(kyc_above=AmountInWindow(amount=1, window_s=86_400))]
        )
        good = request(address="success:kyc-good", player_id="player-v", requested_by="player-v")
        bad = request(address="success:kyc-bad", player_id="player-f", requested_by="player-f")
        await rig.publish(good, bad)
        for e in (good, bad):
            assert await wait_state(db, e.data.idempotency_key, "pending_approval") == "pending_approval"
            assert (await _row(db, e.data.idempotency_key))["hold_code"] == "kyc_required"
        gid = (await _row(db, good.data.idempotency_key))["id"]
        nope = await rig.client.post(f"/payouts/{gid}/approve", json={}, headers=token(settings, "bob", "approver"))
        assert (nope.status_code, nope.json()["code"]) == (409, "awaiting_verification")

        resume = ResumeVerifiedPayouts(uow=rig.local.uow, gate=rig.gate, source=settings.source)
        assert await resume.sweep() == 0  # still not verified: nothing moves
        rig.facts.players_["player-v"] = PlayerCompliance(
            "player-v", VerificationStatus.VERIFIED, country="DE", screening_versions=dict(rig.screen.loaded)
        )
        async with rig.local.uow() as tx:  # as the verification use case calls it, in its transaction
            assert await resume.on_verification_changed(tx, ["player-v"]) == 1
        assert await state_of(db, good.data.idempotency_key) == "approved"
        await rig.send()
        assert await wait_state(db, good.data.idempotency_key, "paid") == "paid"
        assert (await books(db, good.data.idempotency_key))["transfers"] == 1

        rig.facts.players_["player-f"] = PlayerCompliance("player-f", VerificationStatus.FAILED)
        assert await resume.sweep() == 1  # the missed call is caught by the sweep
        assert await state_of(db, bad.data.idempotency_key) == "rejected"
        names = await payout_events(
            kafka_bootstrap, settings, bad.data.idempotency_key, expect=2, last="PayoutRejected"
        )
        assert names == ["PayoutCreated", "PayoutRejected"]
        assert (await books(db, bad.data.idempotency_key))["create_calls"] == 0


async def test_a_failed_verification_refuses_the_request(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        rig.facts.policy = RiskPolicy(version=4, rules=[PolicyRule(kyc_above=AmountInWindow(amount=1, window_s=3600))])
        rig.facts.players_["player-x"] = PlayerCompliance("player-x", VerificationStatus.FAILED)
        env = request(address="success:x", player_id="player-x", requested_by="player-x")
        await rig.publish(env, env)

        async def refused() -> list[Any]:
            return await fetch(
                db, "SELECT code, detail FROM payout_request_refusals WHERE claim_id = $1", env.data.claim_id
            )

        rows = await eventually(refused, lambda r: len(r) == 1, timeout=30)
        assert rows[0]["code"] == "compliance_rejected"
        assert "1" not in rows[0]["detail"]  # the player's words: no threshold
        assert await state_of(db, env.data.idempotency_key) is None
        decisions = await fetch(
            db, "SELECT stage, action FROM compliance_decisions WHERE claim_id = $1", env.data.claim_id
        )
        assert [(d["stage"], d["action"]) for d in decisions] == [("request", "refuse")]


async def test_screening_unavailable_holds_everything(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        rig.screen.loaded.clear()  # the configured list was never loaded
        env = request(address="success:unscreened", player_id="player-u", requested_by="player-u")
        await rig.publish(env)
        assert await wait_state(db, env.data.idempotency_key, "pending_approval") == "pending_approval"
        row = await _row(db, env.data.idempotency_key)
        assert (row["hold_code"], row["approval_policy"]) == ("screening_hit", "dual")
        assert "unavailable" in row["hold_detail"]


async def test_the_sql_facts_and_the_verification_hook_release_a_held_payout(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """As bootstrap wires it: the active policy and the player's verification read from the compliance tables in the
    gate's transaction; the verification use case's transaction calls the hook, which releases the hold."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    policy = RiskPolicy(version=1, rules=[PolicyRule(kyc_above=AmountInWindow(amount=1, window_s=86_400))])
    await fetch(
        db,
        "INSERT INTO risk_policies (version, document, status, base_version, proposed_by, proposed_at, reason, "
        "decided_by, decided_at) VALUES (1, $1::jsonb, 'active', 0, 'ann', now(), 'test', 'ben', now())",
        policy.model_dump_json(),
    )
    await fetch(
        db,
        "INSERT INTO kyc_verifications (player_id, reference, vendor, vendor_ref, status, sequence, updated_at) "
        "VALUES ('player-k', 'ref-k', 'sumsub', 'app-k', 'pending', 1, now())",
    )
    async with gated(settings, sql_facts=True) as rig:
        env = request(address="success:sql-kyc", player_id="player-k", requested_by="player-k")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "pending_approval") == "pending_approval"
        row = await _row(db, key)
        assert row["hold_code"] == "kyc_required"
        # The stored key is the one the code computes (destination_key v2; migration 0023 rewrote the older ones).
        stored = (
            await fetch(
                db,
                "SELECT destination_key, destination_type, destination_address, destination_memo FROM payouts "
                "WHERE id = $1",
                row["id"],
            )
        )[0]
        assert stored["destination_key"] == destination_key(
            PayoutDestination(
                type=stored["destination_type"],
                address=stored["destination_address"],
                memo=stored["destination_memo"],
            )
        )
        assert [
            p["policy_version"]
            for p in await fetch(db, "SELECT policy_version FROM compliance_decisions WHERE payout_id = $1", row["id"])
        ] == [1]
        hook = ResumeVerifiedPayouts(uow=rig.local.uow, gate=rig.gate, source="t").on_verification_changed
        async with rig.local.runtime.sessions() as session, session.begin():
            await session.execute(
                text(
                    "UPDATE kyc_verifications SET status = 'verified', country = 'DE', sequence = 2, "
                    "screening_outcome = 'clear', screening_versions = '{\"ofac_sdn\": \"2026-11-20\"}', "
                    "updated_at = now() WHERE player_id = 'player-k'"
                )
            )
            assert await hook(bind_books()(session), ["player-k"]) == 1
        assert await state_of(db, key) == "approved"
        await rig.send()
        assert await wait_state(db, key, "paid") == "paid"


async def test_releasing_a_screening_hit_does_not_waive_the_policy(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """Two approvers who clear a screening match decided the match, not a limit they were never shown: the policy's
    findings still hold the payout, at the release and at send."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        limit = RiskPolicy(
            version=5, rules=[PolicyRule(player_limit=AmountInWindow(amount=10 * 10**7, window_s=86_400))]
        )
        rig.facts.policy = limit
        rig.screen.addresses["success:both"] = ["SDN-9"]
        env = request(address="success:both", player_id="player-b", requested_by="player-b", amount=50 * 10**7)
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "pending_approval") == "pending_approval"
        row = await _row(db, key)
        assert row["hold_code"] == "screening_hit"
        assert "player_limit" not in row["hold_detail"]  # what the approvers are shown: the match alone
        bob, carol = token(settings, "bob", "approver"), token(settings, "carol", "approver")
        assert (await rig.client.post(f"/payouts/{row['id']}/approve", json={}, headers=bob)).status_code == 200
        last = await rig.client.post(f"/payouts/{row['id']}/approve", json={"reason": "not them"}, headers=carol)
        assert last.status_code == 200, last.text
        assert last.json()["state"] == "pending_approval"
        row = await _row(db, key)
        assert row["hold_code"] == "policy"
        assert "player_limit" in row["hold_detail"]
        await rig.send()
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}

        # Released from a screening hold with nothing else against it, then the policy tightens before send: the
        # send-time gate honours it (the approvers never decided it).
        rig.facts.policy = EMPTY_POLICY
        rig.screen.addresses["success:later"] = ["SDN-10"]
        env2 = request(address="success:later", player_id="player-c", requested_by="player-c", amount=5 * 10**7)
        key2 = env2.data.idempotency_key
        await rig.publish(env2)
        assert await wait_state(db, key2, "pending_approval") == "pending_approval"
        pid2 = (await _row(db, key2))["id"]
        assert (await rig.client.post(f"/payouts/{pid2}/approve", json={}, headers=bob)).status_code == 200
        ok = await rig.client.post(f"/payouts/{pid2}/approve", json={}, headers=carol)
        assert ok.json()["state"] == "approved"
        rig.facts.policy = RiskPolicy(
            version=6, rules=[PolicyRule(player_limit=AmountInWindow(amount=1 * 10**7, window_s=86_400))]
        )
        await rig.send()
        row2 = await _row(db, key2)
        assert (row2["state"], row2["hold_code"]) == ("pending_approval", "policy")
        assert await books(db, key2) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}


async def test_a_destination_listed_between_two_attempts_is_not_paid_by_the_retry(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings) as rig:
        address = "flaky:listed-later"  # provider_unavailable for the first two creates (nothing created), then paid
        env = request(address=address, player_id="player-y", requested_by="player-y")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "approved") == "approved"
        await rig.send()
        assert await state_of(db, key) == "failed"  # retryable: the worker tries again after its backoff
        rig.screen.addresses[address] = ["SDN-LATE"]  # the list refresh lands between the attempts
        rig.screen.loaded["ofac_sdn"] = "2026-11-26"
        for _ in range(3):  # the retries, due at once (a payout failed for good has no next attempt)
            await fetch(
                db,
                "UPDATE payouts SET next_attempt_at = now() WHERE idempotency_key = $1 AND finished_at IS NULL",
                key,
            )
            await rig.send()
        assert await state_of(db, key) == "failed"  # for good: blocked before its create, never held in doubt
        assert (await books(db, key))["transfers"] == 0
        decided = await fetch(
            db,
            "SELECT d.stage, d.action FROM compliance_decisions d JOIN payouts p ON p.id = d.payout_id "
            "WHERE p.idempotency_key = $1 ORDER BY d.decided_at",
            key,
        )
        assert ("send", "hold") in [(r["stage"], r["action"]) for r in decided]


@dataclass
class IdentityVendor:
    """The KYC vendor's identity call (what the re-screen asks): one verified identity per applicant, counted."""

    name: str = "sumsub"
    names: dict[str, str] = field(default_factory=dict)  # applicant → full name
    fetched: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set, each call waits for it (a slow vendor)

    async def start(self, player_id: str) -> Any:
        raise AssertionError("not started here")

    async def review(self, reference: str) -> Any:
        raise AssertionError("not reviewed here")

    async def identity(self, reference: str) -> Identity:
        self.fetched.append(reference)
        if self.gate is not None:
            await self.gate.wait()
        return Identity(full_name=self.names.get(reference, "Nobody Listed"), country="DE")


async def _verified(db: str, player: str, versions: Mapping[str, str]) -> None:
    await fetch(
        db,
        "INSERT INTO kyc_verifications (player_id, reference, vendor, vendor_ref, status, country, sequence, "
        "screening_outcome, screening_versions, updated_at) "
        "VALUES ($1, $2, 'sumsub', $3, 'verified', 'DE', 2, 'clear', $4::jsonb, now())",
        player,
        f"kyc-{player}",
        f"app-{player}",
        json.dumps(dict(versions)),
    )


def _rescreen(rig: Rig, vendor: IdentityVendor, *, batch: int = 100) -> RescreenVerifiedPlayers[Books]:
    resume = ResumeVerifiedPayouts(uow=rig.local.uow, gate=rig.gate, source=rig.settings.source)
    return RescreenVerifiedPlayers(
        uow=rig.local.uow,
        kyc=vendor,
        screen=rig.screen,
        sources=("ofac_sdn",),
        batch=batch,
        on_changed=resume.on_verification_changed,
    )


async def test_a_verified_player_listed_later_is_not_paid_and_the_rescreen_holds_them_for_two(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """A verified player screened clear; their payout is approved; a new list version naming them loads: the worker
    does not send it (screening_pending), and the re-screen turns the wait into a screening hit for two approvers."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    await _verified(db, "player-rs", {"ofac_sdn": "2026-11-20"})
    async with gated(settings, sql_facts=True) as rig:
        env = request(address="success:rescreen", player_id="player-rs", requested_by="player-rs")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "approved") == "approved"
        rig.screen.loaded["ofac_sdn"] = "2026-11-27"  # a new version, naming the player, is loaded
        rig.screen.persons["Ivy Listed"] = ["SDN-P1"]
        await rig.send()
        row = await _row(db, key)
        assert (row["state"], row["hold_code"]) == ("pending_approval", "screening_pending")
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}
        approve = await rig.client.post(
            f"/payouts/{row['id']}/approve", json={}, headers=token(settings, "bob", "approver")
        )
        assert (approve.status_code, approve.json()["code"]) == (409, "awaiting_screening")

        vendor = IdentityVendor(names={"app-player-rs": "Ivy Listed"})
        report = await _rescreen(rig, vendor).execute()
        assert (report.claimed, report.hit, report.stale) == (1, 1, 0)
        row = await _row(db, key)
        assert (row["state"], row["hold_code"], row["approval_policy"]) == ("pending_approval", "screening_hit", "dual")
        assert "SDN-P1" in row["hold_detail"]
        record = (
            await fetch(
                db,
                "SELECT sequence, screening_outcome, screening_versions, rescreen_lease_until FROM kyc_verifications "
                "WHERE player_id = 'player-rs'",
            )
        )[0]
        assert (record["sequence"], record["screening_outcome"], record["rescreen_lease_until"]) == (3, "hit", None)
        assert json.loads(record["screening_versions"]) == {"ofac_sdn": "2026-11-27"}
        history = await fetch(
            db, "SELECT sequence, status, detail FROM kyc_verification_history WHERE player_id = 'player-rs'"
        )
        assert [tuple(h) for h in history] == [(3, "verified", "re-screened: hit against ofac_sdn 2026-11-27")]
        assert "Ivy" not in str(dict(record)) + str([dict(h) for h in history])
        assert [d[2] for d in await _decisions(db, row["id"])][-2:] == ["screening_pending", "screening_hit"]
        await rig.send()
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}

        # Two approvers clear the entry; a later version names the player under another entry: held again.
        bob, carol = token(settings, "bob", "approver"), token(settings, "carol", "approver")
        assert (await rig.client.post(f"/payouts/{row['id']}/approve", json={}, headers=bob)).status_code == 200
        released = await rig.client.post(f"/payouts/{row['id']}/approve", json={}, headers=carol)
        assert released.json()["state"] == "approved", released.text
        cleared = await fetch(db, "SELECT subject_kind, source, entry_uid FROM screening_clearances")
        assert [tuple(c) for c in cleared] == [("player", "ofac_sdn", "SDN-P1")]
        rig.screen.loaded["ofac_sdn"] = "2026-11-28"
        rig.screen.persons["Ivy Listed"] = ["SDN-P1", "SDN-P2"]
        assert (await _rescreen(rig, vendor).execute()).hit == 1
        await rig.send()
        row = await _row(db, key)
        assert (row["state"], row["hold_code"]) == ("pending_approval", "screening_hit")
        assert "SDN-P2" in row["hold_detail"]
        assert "SDN-P1" not in row["hold_detail"]
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}


async def test_a_clear_rescreen_releases_the_wait_and_the_payout_is_paid(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    await _verified(db, "player-rc", {"ofac_sdn": "2026-11-20"})
    async with gated(settings, sql_facts=True) as rig:
        rig.screen.loaded["ofac_sdn"] = "2026-11-27"  # loaded before the request: held at request time
        env = request(address="success:rescreen-clear", player_id="player-rc", requested_by="player-rc")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "pending_approval") == "pending_approval"
        assert (await _row(db, key))["hold_code"] == "screening_pending"
        async with rig.local.uow() as tx:
            assert (await rig.gate.refresh_held(tx))["screening_pending"] == 1
        report = await _rescreen(rig, IdentityVendor()).execute()
        assert (report.claimed, report.clear) == (1, 1)
        assert await state_of(db, key) == "approved"
        await rig.send()
        assert await wait_state(db, key, "paid") == "paid"


async def test_two_claimers_never_claim_one_player(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """Each stale verified player is claimed by one run at a time (FOR UPDATE SKIP LOCKED, then the lease): two
    replicas re-screening together fetch each identity once."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    players = [f"player-c{n:02d}" for n in range(12)]
    for p in players:
        await _verified(db, p, {"ofac_sdn": "2026-11-20"})
    await _verified(db, "player-current", {"ofac_sdn": "2026-11-27"})  # already screened against the new version
    async with gated(settings, sql_facts=True) as rig:
        current = {"ofac_sdn": "2026-11-27"}
        later = datetime.now(UTC) + timedelta(minutes=10)
        stores = rig.local.uow
        # A claim in flight (not committed) locks its rows: a concurrent claim skips them.
        async with stores() as first:
            mine = await first.compliance.rescreen.claim_stale(
                current, limit=5, lease_until=later, now=datetime.now(UTC)
            )
            async with stores() as second:
                theirs = await second.compliance.rescreen.claim_stale(
                    current, limit=100, lease_until=later, now=datetime.now(UTC)
                )
        assert len(mine) == 5
        assert len(theirs) == 7
        assert not {c.player_id for c in mine} & {c.player_id for c in theirs}
        assert "player-current" not in {c.player_id for c in [*mine, *theirs]}
        async with stores() as third:  # committed: the leases keep them theirs
            assert (
                await third.compliance.rescreen.claim_stale(
                    current, limit=100, lease_until=later, now=datetime.now(UTC)
                )
                == []
            )
            assert await third.compliance.rescreen.count_stale(current) == 12
        # Past the leases, two whole runs at once (a slow vendor keeps both in flight): each identity fetched once.
        await fetch(db, "UPDATE kyc_verifications SET rescreen_lease_until = NULL")
        rig.screen.loaded["ofac_sdn"] = "2026-11-27"
        slow = asyncio.Event()
        vendor = IdentityVendor(gate=slow)
        one, two = _rescreen(rig, vendor, batch=8), _rescreen(rig, vendor, batch=8)
        runs = asyncio.gather(one.execute(), two.execute())
        # Both runs claimed and wait in their first vendor call (each run calls the vendor one player at a time).
        await eventually(lambda: _fetched(vendor), lambda n: n == 2, timeout=30)
        slow.set()
        reports = await runs
        # How the twelve split is timing: 8 + 4 when one claim commits before the other starts, any split of at most
        # 8 each when the two statements overlap (each skips the rows the other has locked). Never a player twice:
        claimed = [r.claimed for r in reports]
        assert sum(claimed) == len(players), claimed
        assert max(claimed) <= 8, claimed
        assert sorted(vendor.fetched) == sorted(f"app-{p}" for p in players)
        left = await fetch(
            db, "SELECT count(*) AS n FROM kyc_verifications WHERE screening_versions ->> 'ofac_sdn' <> '2026-11-27'"
        )
        assert left[0]["n"] == 0


async def _fetched(vendor: IdentityVendor) -> int:
    return len(vendor.fetched)


async def test_players_whose_payouts_wait_are_rescreened_first(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    await _verified(db, "player-a-idle", {"ofac_sdn": "2026-11-20"})  # first by id and by age, nothing waiting
    await _verified(db, "player-z-waits", {"ofac_sdn": "2026-11-20"})
    async with gated(settings, sql_facts=True) as rig:
        rig.screen.loaded["ofac_sdn"] = "2026-11-27"
        env = request(address="success:waits", player_id="player-z-waits", requested_by="player-z-waits")
        await rig.publish(env)
        assert await wait_state(db, env.data.idempotency_key, "pending_approval") == "pending_approval"
        assert (await _row(db, env.data.idempotency_key))["hold_code"] == "screening_pending"
        vendor = IdentityVendor()
        first = await _rescreen(rig, vendor, batch=1).execute()
        assert (first.claimed, first.stale, vendor.fetched) == (1, 1, ["app-player-z-waits"])
        assert await state_of(db, env.data.idempotency_key) == "approved"
        assert (await _rescreen(rig, vendor, batch=1).execute()).stale == 0
        assert vendor.fetched == ["app-player-z-waits", "app-player-a-idle"]


async def test_a_retry_of_a_stale_verified_player_waits_for_the_rescreen_and_is_not_created(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """A verified player's first create fails (retryable); a list version naming them loads; the retry asks the
    provider first (its earlier answer would stand) but creates nothing while the player's screening is stale: it
    waits, recorded, as a retryable failure not due every pass (its backoff), the attempt given back; the re-screen
    takes this player first, finds the hit, and the next retry ends it for good. Nothing ever reaches the rail."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    await _verified(db, "player-a-idle", {"ofac_sdn": "2026-11-20"})  # first by id and by age, nothing waiting
    await _verified(db, "player-rt", {"ofac_sdn": "2026-11-20"})
    async with gated(settings, sql_facts=True) as rig:
        env = request(address="flaky:rescreen-retry", player_id="player-rt", requested_by="player-rt")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "approved") == "approved"
        await rig.send()
        assert await state_of(db, key) == "failed"  # retryable: provider_unavailable, nothing created
        assert (await books(db, key))["transfers"] == 0
        before = await _row(db, key)
        rig.screen.loaded["ofac_sdn"] = "2026-11-27"  # a new version naming the player loads between the attempts
        rig.screen.persons["Rex Listed"] = ["SDN-R1"]
        due_now = "UPDATE payouts SET next_attempt_at = now() WHERE idempotency_key = $1 AND finished_at IS NULL"
        await fetch(db, due_now, key)
        due_at = (await _row(db, key))["next_attempt_at"]
        await rig.send()
        assert await books(db, key) == {"transfers": 0, "create_calls": 1, "sync_calls": 1}  # asked, not created
        row = await _row(db, key)
        assert (row["state"], row["finished_at"]) == ("failed", None)
        # Not due every pass (it cannot fill the batches): the wait set a backoff after the time it was due. Compared
        # with the database's own times, not with the wall clock (a busy machine may reach the backoff's end).
        assert row["next_attempt_at"] is not None
        assert row["next_attempt_at"] > due_at
        assert row["max_attempts"] == before["max_attempts"] + 1  # waiting takes no attempt
        assert [d[2] for d in await _decisions(db, row["id"])][-1] == "screening_pending"

        vendor = IdentityVendor(names={"app-player-rt": "Rex Listed"})
        first = await _rescreen(rig, vendor, batch=1).execute()
        assert (first.claimed, first.hit, vendor.fetched) == (1, 1, ["app-player-rt"])  # the waiting player first
        await fetch(db, due_now, key)
        await rig.send()
        row = await _row(db, key)
        assert row["state"] == "failed"
        assert row["finished_at"] is not None  # for good: blocked before its create
        assert (await books(db, key))["create_calls"] == 1
        assert [d[2] for d in await _decisions(db, row["id"])][-1] == "screening_hit"


class Publisher:
    """The OFAC SDN file as the emulator serves it (`ListSource`)."""

    def __init__(self) -> None:
        self.emulator = Emulator()

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        return self.emulator.lists["ofac_sdn"].body.encode()


def _lists(sessions: Any, publisher: Publisher) -> RefreshSanctionsLists:
    """One process's lists: its own screen, the shared store."""
    return RefreshSanctionsLists(
        urls={"ofac_sdn": f"http://lists.test{PATHS['ofac_sdn']}"},
        source=publisher,
        store=SqlSanctionsLists(sessions),
        screen=ListsScreen(("ofac_sdn",), threshold=920),
    )


async def test_a_process_behind_on_its_lists_loads_the_newest_before_it_gates_and_holds_the_stale_player(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """This process loaded D1; another replica stored D2 since (this one's hourly refresh is not due): before its
    worker gates, it loads D2, so a player screened against D1 is stale and held (never paid against older lists)."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    async with gated(settings, sql_facts=True) as rig:
        sessions = rig.local.runtime.sessions
        publisher = Publisher()
        here = _lists(sessions, publisher)
        assert [o.outcome for o in await here.run()] == ["loaded"]
        d1 = here.screen.versions()["ofac_sdn"]
        await _verified(db, "player-lag", {"ofac_sdn": d1})
        rig.screen.loaded["ofac_sdn"] = d1  # the request gate (the API process) is current: approved
        env = request(address="success:lagging-replica", player_id="player-lag", requested_by="player-lag")
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "approved") == "approved"

        publisher.emulator.publish("ofac_sdn", {"name": "Someone Else Entirely"})
        elsewhere = _lists(sessions, publisher)
        assert [o.outcome for o in await elsewhere.run()] == ["loaded"]  # another replica stores D2
        d2 = elsewhere.screen.versions()["ofac_sdn"]
        assert d2 != d1
        assert here.screen.versions()["ofac_sdn"] == d1  # this process is behind
        rig.local.worker.gate = PayoutGate(screen=here.screen, sources=("ofac_sdn",), catch_up=here.catch_up)
        await rig.send()
        assert here.screen.versions()["ofac_sdn"] == d2  # loaded before gating
        row = await _row(db, key)
        assert (row["state"], row["hold_code"]) == ("pending_approval", "screening_pending")
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}


async def test_stale_in_python_and_in_sql_are_one_rule(db: str) -> None:
    """`PlayerCompliance.screening_stale` (the gate) and `SqlRescreenStore.count_stale`/`claim_stale` (the re-screen)
    judge the same stored rows alike: any configured source whose stored version is not the loaded one, a later
    one included."""
    current = {"ofac_sdn": "2026-11-25+aaaaaaaaaaaa", "eu": "2026-11-20+bbbbbbbbbbbb"}
    rows: dict[str, Mapping[str, str]] = {
        "p-current": dict(current),
        "p-current-plus-unconfigured": {**current, "un": "2026-01-01+cccccccccccc"},
        "p-older": {**current, "ofac_sdn": "2026-11-24+dddddddddddd"},
        "p-later": {**current, "ofac_sdn": "2026-11-26+eeeeeeeeeeee"},  # a version loaded nowhere (removed)
        "p-same-day": {**current, "ofac_sdn": "2026-11-25+ffffffffffff"},
        "p-missing-source": {"ofac_sdn": current["ofac_sdn"]},
        "p-unreadable": {**current, "ofac_sdn": "v7"},
        "p-never": {},  # never screened against any list
    }
    for player, versions in rows.items():
        await _verified(db, player, versions)
    python = {
        p
        for p, v in rows.items()
        if PlayerCompliance(p, VerificationStatus.VERIFIED, screening_versions=v).screening_stale(current)
    }
    assert python == set(rows) - {"p-current", "p-current-plus-unconfigured"}
    engine = create_engine(db)
    try:
        stores = SqlUnitOfWork(session_factory(engine), bind_books())
        async with stores() as store:
            assert await store.compliance.rescreen.count_stale(current) == len(python)
            later = datetime.now(UTC) + timedelta(minutes=5)
            claimed = await store.compliance.rescreen.claim_stale(
                current, limit=100, lease_until=later, now=datetime.now(UTC)
            )
            assert {c.player_id for c in claimed} == python
    finally:
        await engine.dispose()


async def test_a_release_answers_the_policy_version_it_was_shown(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """Issue 43. A person releases a policy hold under version N; two admins then activate N+1, which refuses the
    payout again (the same rule tightened, then a rail no longer allowed): the next worker pass holds it again for
    people, never sends it. A version activated while the hold waits is met by the approval itself. A release
    under the version in force sends it."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix)
    admins = {name: token(settings, name, "admin") for name in ("ann", "ben")}

    async with gated(settings, sql_facts=True) as rig:

        async def activate(rules: list[dict[str, Any]], note: str) -> int:
            """A version proposed by one admin and approved by another, through the compliance API."""
            made = await rig.client.post(
                "/v1/admin/compliance/policy/proposals",
                json={"policy": {"rules": rules, "note": note}, "reason": note},
                headers=admins["ann"],
            )
            assert made.status_code == 201, made.text
            done = await rig.client.post(
                f"/v1/admin/compliance/policy/proposals/{made.json()['id']}/approve", json={}, headers=admins["ben"]
            )
            assert (done.status_code, done.json()["status"]) == (200, "active"), done.text
            return int(made.json()["version"])

        async def release(pid: str, approver: str) -> str:
            answer = await rig.client.post(
                f"/payouts/{pid}/approve", json={"reason": "checked"}, headers=token(settings, approver, "approver")
            )
            assert answer.status_code == 200, answer.text
            return str(answer.json()["state"])

        async def held_under(key: str) -> tuple[str, str | None, str]:
            row = await _row(db, key)
            return row["state"], row["hold_code"], (row["hold_detail"] or "").partition(":")[0]

        limit = {"scope": {"asset": "USDC"}, "player_limit": {"amount": 10 * 10**7, "window_s": 86_400}}
        v1 = await activate([limit], "ten a day")
        env = request(address="success:released", player_id="player-rel", requested_by="player-rel", amount=50 * 10**7)
        key = env.data.idempotency_key
        await rig.publish(env)
        assert await wait_state(db, key, "pending_approval") == "pending_approval"
        assert await held_under(key) == ("pending_approval", "policy", f"policy v{v1}")
        pid = (await _row(db, key))["id"]
        assert await release(pid, "eve") == "approved"  # eve decided the limit of v1

        tighter = {**limit, "player_limit": {"amount": 5 * 10**7, "window_s": 86_400}}
        v2 = await activate([tighter], "five a day")  # the same rule, tightened
        await rig.send()
        assert await held_under(key) == ("pending_approval", "policy", f"policy v{v2}")
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}

        # While it waits for a decision on v2, v3 also stops allowing its rail: the approval that answers v2 is met
        # by v3 and holds it again (the approvals before count nothing for the new hold).
        v3 = await activate([{**tighter, "allowed_rails": ["manual"]}], "no sandbox")
        assert await release(pid, "gus") == "pending_approval"
        assert await held_under(key) == ("pending_approval", "policy", f"policy v{v3}")
        assert "rail_not_allowed" in (await _row(db, key))["hold_detail"]
        await rig.send()
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}

        assert await release(pid, "fay") == "approved"  # fay decided v3's findings: sent
        await rig.send()
        assert await wait_state(db, key, "paid") == "paid"
        stored = await fetch(
            db,
            "SELECT stage, action, hold_code, policy_version FROM compliance_decisions WHERE payout_id = $1 "
            "ORDER BY id",
            pid,
        )
        assert [tuple(d) for d in stored] == [
            ("request", "hold", "policy", v1),
            ("approval", "allow", None, v1),
            ("send", "hold", "policy", v2),
            ("approval", "hold", "policy", v3),
            ("approval", "allow", None, v3),
            ("send", "allow", None, v3),
        ]


_HELD = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, created_at, updated_at, hold_code, hold_detail, held_at) "
    "VALUES ($1, $1, $1, 'h', $1, 'p-up', 'p-up', 'USDC', 10000000, 'sandbox', 'success:up', 'sandbox', 'sandbox', "
    "$2, 'single', $1, 0, 3, now(), now(), $3, 'held', now())"
)
_DECIDED = (
    "INSERT INTO compliance_decisions (payout_id, claim_id, player_id, stage, action, hold_code, reasons, "
    "policy_version, list_versions, decided_at) VALUES ($1, $1, 'p-up', $2, $3, $4, $5::jsonb, $6, '{}', now())"
)


async def test_the_upgrade_records_what_the_open_policy_holds_showed(db: str) -> None:
    """Migration 0025 gives each policy hold the version and findings of the decision that made it (a hold made
    before the upgrade is released as it was shown); any other hold, or one whose newest decision is not a policy
    hold, gets nothing (a release of it decides nothing: people are asked again)."""
    await migrate(ALEMBIC_INI, db, "0024", downgrade=True)
    reasons = json.dumps(
        [
            {"finding": "player_limit", "rule": 0, "detail": "50 > 10"},
            {"finding": "velocity", "rule": 2, "detail": "3 requests"},
            {"finding": "undecided", "detail": "rule 3: allowed_countries; rule 4: scoped to rail stellar"},
        ]
    )
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        for payout, state, code in (
            ("po-policy", "pending_approval", "policy"),
            ("po-released", "approved", "policy"),
            ("po-rehit", "pending_approval", "policy"),
            ("po-screened", "pending_approval", "screening_hit"),
            ("po-none", "pending_approval", "policy"),
        ):
            await conn.execute(_HELD, payout, state, code)
        for payout in ("po-policy", "po-released", "po-rehit"):
            await conn.execute(_DECIDED, payout, "request", "hold", "policy", reasons, 4)
        await conn.execute(_DECIDED, "po-released", "approval", "allow", None, "[]", 4)
        await conn.execute(_DECIDED, "po-rehit", "send", "hold", "screening_hit", "[]", 5)  # newest: not policy
        await conn.execute(_DECIDED, "po-screened", "request", "hold", "screening_hit", "[]", 4)
        await upgrade_to_head(ALEMBIC_INI, db)
        rows = {
            r["id"]: (r["hold_policy_version"], json.loads(r["hold_findings"]) if r["hold_findings"] else None)
            for r in await conn.fetch("SELECT id, hold_policy_version, hold_findings FROM payouts")
        }
        shown = [
            "player_limit@0",
            "undecided@rule 3: allowed_countries",
            "undecided@rule 4: scoped to rail stellar",
            "velocity@2",
        ]
        assert rows == {
            "po-policy": (4, shown),
            "po-released": (4, shown),
            "po-rehit": (None, None),
            "po-screened": (None, None),
            "po-none": (None, None),
        }
        # What the code records for the same verdict is what the upgrade recorded.
        verdict = Verdict(
            4,
            (Hit(Finding.PLAYER_LIMIT, 0, "50 > 10"), Hit(Finding.VELOCITY, 2, "3 requests")),
            ("rule 3: allowed_countries", "rule 4: scoped to rail stellar"),
        )
        assert list(policy_findings(verdict)) == shown
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE payouts SET hold_findings = NULL WHERE id = 'po-policy'")
        await migrate(ALEMBIC_INI, db, "0024", downgrade=True)
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'payouts' "
            "AND column_name LIKE 'hold_%' ORDER BY 1"
        )
        assert [c["column_name"] for c in columns] == ["hold_code", "hold_detail"]
    finally:
        await conn.close()


@dataclass
class LostHandover:
    """A process that claimed payouts at their creation (`DirectSends`) and stopped before sending them."""

    owner: str = "worker-gone"
    lease_s: float = 4.0
    taken: list[Any] = field(default_factory=list)

    def room(self) -> int:
        return 10

    def accept(self, payouts: Any) -> None:
        self.taken.extend(payouts)


async def _history(db: str, payout_id: str) -> list[dict[str, Any]]:
    rows = await fetch(
        db,
        "SELECT from_state, to_state, actor, reason, at FROM payout_history WHERE payout_id = $1 ORDER BY id",
        payout_id,
    )
    return [dict(r) for r in rows]


async def test_an_allowed_payout_goes_straight_to_its_worker_and_a_lost_handover_waits_for_its_lease(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """Direct sends (`CreatePayouts.direct`): a payout whose request-time allow stands at send is stored claimed for
    the worker of the process that created it, with its send-stage decision, in the creation's transaction, and is
    handed over only once that transaction commits: sent once, with no claim of a worker pass. One the process
    never sent (it stopped) waits for its lease to end and is then claimed again, asking its provider first, and
    paid once. A held payout, and a transaction that rolls back, hand nothing over."""
    settings = _settings(db, kafka_bootstrap, tmp_path, topic_suffix, payouts_lease_seconds=4.0)
    async with gated(settings) as rig:
        local = rig.local
        local.create.direct = local.worker.handed
        env = request(player_id="player-d", requested_by="player-d")
        key = env.data.idempotency_key
        async with local.uow() as tx:
            await local.create.execute(tx, [request_command(env)])
            # Not handed over before the commit: a worker pass now would send a payout that may never be stored.
            assert (
                local.worker.handed.room() == 2 * local.worker.config.sends_in_flight * local.worker.config.batch_size
            )
        row = await fetch(db, "SELECT id, state, lease_owner, attempts FROM payouts WHERE idempotency_key = $1", key)
        pid = row[0]["id"]
        assert (row[0]["state"], row[0]["lease_owner"], row[0]["attempts"]) == (
            "submitting",
            local.worker.worker_id,
            1,
        )
        await local.worker.run_pass()
        assert await wait_state(db, key, "paid") == "paid"
        assert (await books(db, key))["create_calls"] == 1
        history = await _history(db, pid)
        assert [(h["from_state"], h["to_state"]) for h in history[:2]] == [
            ("requested", "approved"),
            ("approved", "submitting"),
        ]
        assert history[1]["actor"] == local.worker.worker_id
        assert history[1]["at"] == history[0]["at"]  # claimed by its creation, not by a later pass
        assert sum(h["to_state"] == "submitting" for h in history) == 1
        assert await _decisions(db, pid) == [("request", "allow", None), ("send", "allow", None)]

        # The process that claimed it stops before sending: the payout waits out the lease, then a pass claims it
        # again, asks the provider first, and pays it once.
        gone = LostHandover()
        local.create.direct = gone
        env2 = request(player_id="player-e", requested_by="player-e")
        key2 = env2.data.idempotency_key
        async with local.uow() as tx:
            await local.create.execute(tx, [request_command(env2)])
        assert [p.idempotency_key for p in gone.taken] == [key2]
        await local.worker.run_pass()
        assert await state_of(db, key2) == "submitting"
        assert (await books(db, key2))["create_calls"] == 0

        async def paid_after_lease() -> str | None:
            await local.worker.run_pass()
            return await state_of(db, key2)

        assert await eventually(paid_after_lease, lambda s: s == "paid", timeout=30, interval=0.5) == "paid"
        counts = await books(db, key2)
        assert (counts["create_calls"], counts["sync_calls"], counts["transfers"]) == (1, 1, 1)
        pid2 = (await fetch(db, "SELECT id FROM payouts WHERE idempotency_key = $1", key2))[0]["id"]
        resumed = [h for h in await _history(db, pid2) if h["from_state"] == h["to_state"] == "submitting"]
        assert [h["reason"] for h in resumed] == ["lease expired: resumed, sync first"]

        # A held payout is not claimed, and a transaction that rolls back hands nothing over.
        gone.taken.clear()
        rig.screen.addresses[LISTED] = ["SDN-9"]
        held = request(address=LISTED, player_id="player-f", requested_by="player-f")
        async with local.uow() as tx:
            await local.create.execute(tx, [request_command(held)])
        assert await state_of(db, held.data.idempotency_key) == "pending_approval"
        rolled = request(player_id="player-g", requested_by="player-g")
        with pytest.raises(RuntimeError):
            async with local.uow() as tx:
                await local.create.execute(tx, [request_command(rolled)])
                inside = await tx.payouts.get(payout_id_for(rolled.data.idempotency_key))
                assert inside is not None
                assert inside.state.value == "submitting"  # claimed for the worker, had it committed
                raise RuntimeError("the transaction fails after the insert")
        assert gone.taken == []
        assert await fetch(db, "SELECT id FROM payouts WHERE idempotency_key = $1", rolled.data.idempotency_key) == []

        # A worker stopping with payouts handed over and not sent takes no more, and ends their leases: a pass
        # claims them at once, asks the provider first, and pays them once.
        local.create.direct = local.worker.handed
        env3 = request(player_id="player-h", requested_by="player-h")
        key3 = env3.data.idempotency_key
        async with local.uow() as tx:
            await local.create.execute(tx, [request_command(env3)])
        local.worker.handed.stop_taking()
        assert local.worker.handed.room() == 0
        assert await local.worker.release_handed() == 1
        await local.worker.run_pass()
        assert await wait_state(db, key3, "paid") == "paid"
        counts = await books(db, key3)
        assert (counts["create_calls"], counts["sync_calls"], counts["transfers"]) == (1, 1, 1)
        after = request(player_id="player-i", requested_by="player-i")
        async with local.uow() as tx:
            await local.create.execute(tx, [request_command(after)])
        assert await state_of(db, after.data.idempotency_key) == "approved"  # stored for any worker's pass
