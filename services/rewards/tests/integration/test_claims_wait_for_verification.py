"""Claims that wait for the player's identity verification, on the whole rewards process with real Kafka and
PostgreSQL: a claim over the policy's threshold is held with its reservation; `verified` releases it once (one
PayoutRequested, however often the event arrives); `failed` rejects it and gives the amount back; a new policy
version decides the very next claim, an older one arriving late changes nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from rewards_sql import bind, sql_uow
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.payouts import PlayerVerificationChanged, RiskPolicyActivated
from prizeflow_contracts.policy import PLAYER_MESSAGE, AmountInWindow, Finding, PolicyRule, RiskPolicy
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_contracts.topics import PAYOUT_EVENTS, PAYOUT_REQUESTS, REWARDS_EVENTS
from prizeflow_rewards.adapters.routes_pg import publish_routes
from prizeflow_rewards.application.claims import ApplyComplianceEvents, SettlePayout, SubmitClaim
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_rewards.entrypoints.kafka import PayoutEventsHandler
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.db import create_engine
from prizeflow_testkit import eventually
from prizeflow_testkit.events import AT
from prizeflow_testkit.rewards import OPEN_CLAIM_POLICY, STELLAR_KEY, Running, routes_event, running_app, settings_for

pytestmark = pytest.mark.integration

PAYOUTS = "/prizeflow/payouts"
DAY = 86_400
DESTINATION = {"type": "stellar_account", "address": STELLAR_KEY}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


def activated(version: int, rule: PolicyRule, *, correlation_id: str = "risk-policy") -> Envelope[Any]:
    event = RiskPolicyActivated(
        policy=RiskPolicy(version=version, rules=[rule]),
        proposed_by="admin-1",
        approved_by="admin-2",
        activated_at=AT,
    )
    return new_event(event, source=PAYOUTS, correlation_id=correlation_id)


def verification(player: str, status: str, sequence: int) -> Envelope[Any]:
    event = PlayerVerificationChanged(
        player_id=player, reference=f"ver-{player}", status=status, sequence=sequence, changed_at=AT
    )
    return new_event(event, source=PAYOUTS, correlation_id=f"verification-{player}")


async def scalar(db: AsyncEngine, sql: str, **params: Any) -> Any:
    async with db.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def policy_version(db: AsyncEngine) -> int | None:
    return await scalar(db, "SELECT version FROM risk_policy")  # type: ignore[no-any-return]


async def verification_sequence(db: AsyncEngine, player: str) -> int | None:
    return await scalar(db, "SELECT sequence FROM player_verifications WHERE player_id = :p", p=player)  # type: ignore[no-any-return]


async def activate(app: Running, db: AsyncEngine, version: int, rule: PolicyRule) -> None:
    await app.publish(PAYOUT_EVENTS.name, [activated(version, rule)])
    await eventually(lambda: policy_version(db), lambda v: v == version, timeout=60)


async def fund(app: Running, player: str, amount: int) -> None:
    r = await app.client.post(
        f"/wallets/{player}/top-ups",
        json={"asset": "USDC", "amount": amount, "provider": "stripe", "reference": f"ch-{player}"},
        headers=app.admin,
    )
    assert r.status_code == 200, r.text


async def claim(app: Running, player: str, amount: int) -> Any:
    return await app.client.post(
        "/claims/", json={"asset": "USDC", "amount": amount, "destination": DESTINATION}, headers=app.player(player)
    )


async def claim_of(app: Running, claim_id: str, headers: dict[str, str]) -> dict[str, Any]:
    r = await app.client.get(f"/claims/{claim_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def no_rule_numbers(view: dict[str, Any]) -> None:
    """What the player sees names no threshold, window or count (only their own amounts and ids carry digits)."""
    assert "hold_detail" not in view
    assert "policy_version" not in view
    for key in ("status", "hold_code", "rejection_code", "next_step"):
        assert not re.search(r"\d", str(view.get(key) or "")), (key, view)


async def test_a_claim_over_the_threshold_waits_and_is_paid_once_when_verified(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, db: AsyncEngine
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        await activate(app, db, 1, PolicyRule(kyc_above=AmountInWindow(amount=1_000, window_s=DAY)))
        await fund(app, "p-kyc", 10_000)
        r = await claim(app, "p-kyc", 3_000)
        assert r.status_code == 201, r.text
        held = r.json()
        assert (held["status"], held["hold_code"]) == ("held", "kyc_required")
        assert held["next_step"] == PLAYER_MESSAGE[Finding.KYC_REQUIRED]
        no_rule_numbers(held)
        no_rule_numbers(await claim_of(app, held["claim_id"], app.player("p-kyc")))
        staff = await claim_of(app, held["claim_id"], app.ops)
        assert "1000" in staff["hold_detail"]
        assert staff["policy_version"] == 1
        assert (await app.balances("p-kyc"))["USDC"]["available"] == 7_000  # reserved while it waits

        verified = verification("p-kyc", "verified", 1)
        again = new_event(verified.data, source=PAYOUTS, correlation_id=verified.correlationid)  # re-emitted
        # A later word on the same key (same partition): once it is kept, every delivery before it was consumed.
        later = verification("p-kyc", "verified", 2)
        await app.publish(PAYOUT_EVENTS.name, [verified, verified, again, later])
        await eventually(lambda: verification_sequence(db, "p-kyc"), lambda s: s == 2, timeout=60)

        approved = await claim_of(app, held["claim_id"], app.player("p-kyc"))
        assert approved["status"] == "approved"
        no_rule_numbers(approved)

        async def requested() -> list[Envelope[Any]]:
            return [e for e in await app.events(PAYOUT_REQUESTS.name) if e.data.claim_id == held["claim_id"]]

        [request] = await eventually(requested, lambda es: len(es) >= 1, timeout=60)
        assert request.data.amount.amount == 3_000
        rewards = await app.events(REWARDS_EVENTS.name)
        approvals = [e for e in rewards if e.type.endswith("ClaimApproved.v1") and e.subject == held["claim_id"]]
        assert [e.data.approved_by for e in approvals] == ["system:verification"]
        assert await scalar(db, "SELECT decided_by FROM claims WHERE id = :c", c=held["claim_id"]) == (
            "system:verification"
        )
        assert (await app.balances("p-kyc"))["USDC"]["available"] == 7_000  # reserved now for its payout
        assert len(await requested()) == 1


async def test_failed_verification_voids_and_a_new_policy_decides_the_next_claim(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, db: AsyncEngine
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        await activate(app, db, 1, PolicyRule(kyc_above=AmountInWindow(amount=1_000, window_s=DAY)))
        await fund(app, "p-fail", 10_000)
        r = await claim(app, "p-fail", 3_000)
        assert r.status_code == 201, r.text
        held = r.json()
        assert held["hold_code"] == "kyc_required"

        await app.publish(PAYOUT_EVENTS.name, [verification("p-fail", "failed", 1)])

        async def state() -> dict[str, Any]:
            return await claim_of(app, held["claim_id"], app.player("p-fail"))

        rejected = await eventually(state, lambda c: c["status"] == "rejected", timeout=60)
        assert rejected["rejection_code"] == "kyc_failed"
        assert rejected["next_step"] == PLAYER_MESSAGE[Finding.KYC_FAILED]
        no_rule_numbers(rejected)
        assert (await app.balances("p-fail"))["USDC"] | {} == {
            "asset": "USDC",
            "balance": 10_000,
            "reserved": 0,
            "available": 10_000,
            "incoming_pending": 0,
        }
        events = await app.events(REWARDS_EVENTS.name)
        assert [e.data.code for e in events if e.type.endswith("ClaimRejected.v1")] == ["kyc_failed"]
        # Over the threshold again: refused outright now, nothing reserved.
        r = await claim(app, "p-fail", 2_000)
        assert (r.status_code, r.json()["code"]) == (422, "kyc_failed")
        assert not re.search(r"\d", r.json()["detail"])
        assert (await app.balances("p-fail"))["USDC"]["available"] == 10_000

        # A new version takes effect on the very next claim, without a restart.
        await fund(app, "p-next", 10_000)
        assert (await claim(app, "p-next", 600)).json()["status"] == "approved"
        await activate(app, db, 2, PolicyRule(player_limit=AmountInWindow(amount=1_000, window_s=DAY)))
        r = await claim(app, "p-next", 600)
        assert (r.status_code, r.json()["code"]) == (422, "player_limit_exceeded")
        assert "1000" not in r.json()["detail"]

        # An older version arriving late changes nothing (a later word on its key proves it was consumed).
        late = activated(1, PolicyRule(kyc_above=AmountInWindow(amount=1, window_s=DAY)), correlation_id="late")
        marker = new_event(
            PlayerVerificationChanged(
                player_id="p-mark", reference="ver-m", status="pending", sequence=1, changed_at=AT
            ),
            source=PAYOUTS,
            correlation_id="late",
        )
        await app.publish(PAYOUT_EVENTS.name, [late, marker])
        await eventually(lambda: verification_sequence(db, "p-mark"), lambda s: s == 1, timeout=60)
        assert await policy_version(db) == 2
        r = await claim(app, "p-next", 300)
        assert r.status_code == 201, r.text
        assert (await claim_of(app, r.json()["claim_id"], app.ops))["policy_version"] == 2


async def test_a_claim_racing_the_players_verification_never_waits_for_it(engine: AsyncEngine) -> None:
    """Claims and `verified` for the same players at the same moment, each in its own transaction: whichever
    commits first, no claim is left waiting for a verification that already happened, and none is paid twice."""
    players = [f"racer-{i}" for i in range(12)]
    async with engine.begin() as conn:
        books = bind(conn, strict=True)
        await books.ledger.apply(
            [
                Transfer.of(
                    accounts.external("stripe", "USDC"), accounts.wallet(p, "USDC"), 10_000, TransferKind.TOP_UP, p
                )
                for p in players
            ],
        )
        await publish_routes(conn, routes_event().data)
        await books.compliance.activate(
            activated(1, PolicyRule(kyc_above=AmountInWindow(amount=1_000, window_s=DAY))).data
        )
    submit = SubmitClaim(OPEN_CLAIM_POLICY, "/test")
    handler = PayoutEventsHandler(SettlePayout(), compliance=ApplyComplianceEvents("/test"))
    uow = sql_uow(engine)
    destination = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=STELLAR_KEY)
    gate = asyncio.Event()

    async def claim(player: str) -> None:
        who = Principal(player, frozenset({Role.PLAYER}))
        await gate.wait()
        async with uow() as books:
            await submit(books, who, player_id=player, asset="USDC", amount=3_000, destination=destination)

    async def verify(player: str) -> None:
        await gate.wait()
        async with uow() as books:
            await handler(books, [verification(player, "verified", 1)])

    tasks = [asyncio.create_task(f(p)) for p in players for f in (claim, verify)]
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(*tasks)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT player_id, status, hold_code FROM claims ORDER BY player_id"))).all()
        requested = (
            await conn.execute(text("SELECT count(*) FROM outbox WHERE event_type LIKE '%PayoutRequested%'"))
        ).scalar()
    assert [(r.player_id, r.status) for r in rows] == [(p, "approved") for p in sorted(players)]
    assert requested == len(players)


async def test_the_database_keeps_only_newer_policies_and_verifications(engine: AsyncEngine) -> None:
    """The projections' rule is the database's too: no write puts an older version or sequence back."""
    async with engine.begin() as conn:
        compliance = bind(conn).compliance
        await compliance.activate(activated(3, PolicyRule(velocity={"count": 2, "window_s": 60})).data)
        await compliance.record_verification(verification("p-db", "verified", 5).data)
    for sql in (
        "UPDATE risk_policy SET version = 2",
        "UPDATE risk_policy SET version = 3",
        "UPDATE player_verifications SET sequence = 4, status = 'failed'",
        "INSERT INTO risk_policy (id, version, document, proposed_by, approved_by, activated_at) "
        "VALUES (false, 9, '{}', 'a', 'b', now())",
        "UPDATE risk_policy SET approved_by = proposed_by, version = 4",
    ):
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text(sql))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT version FROM risk_policy"))).scalar() == 3
        assert (await conn.execute(text("SELECT status FROM player_verifications"))).scalar() == "verified"
