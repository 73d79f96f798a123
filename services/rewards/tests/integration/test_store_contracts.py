"""The stores' contract: each test runs against the in-memory fakes the unit tests use (`tests/support`) and against
the PostgreSQL stores on a migrated database, through the same unit of work (pyeventsourcing's abstract recorder
tests: one body of tests, one fixture per implementation). A fake that drifts from its SQL store fails here."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rewards_fakes import Fakes
from rewards_sql import sql_uow
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, decode, new_event, stage_event
from prizeflow_contracts.events.payouts import (
    PayoutRoute,
    PayoutRoutesPublished,
    PlayerVerificationChanged,
    RiskPolicyActivated,
)
from prizeflow_contracts.events.settlement import RoundSettled
from prizeflow_contracts.policy import EMPTY_POLICY, AmountInWindow, PolicyRule, RiskPolicy, VerificationStatus
from prizeflow_contracts.providers import DestinationType, PayoutDestination, ProviderType, destination_key
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.ports import ClaimDecision, FirstUse, HeldRound, IntakeQuery
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import Campaign, CampaignStatus
from prizeflow_rewards.domain.claims import Claim, ClaimStatus
from prizeflow_rewards.domain.contradictions import Contradiction
from prizeflow_rewards.domain.corrections import Correction, CorrectionStatus
from prizeflow_rewards.domain.ledger import (
    Balance,
    LedgerError,
    Transfer,
    TransferFlags,
    TransferKind,
    post_of,
    void_of,
)
from prizeflow_rewards.domain.topups import Adjustment, AdjustmentKind, AdjustmentStatus, TopUp, TopUpStatus
from prizeflow_rewards.domain.topups import credit_transfer as top_up_credit
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_testkit.events import AT, example_payload
from prizeflow_testkit.rewards import STELLAR_KEY

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
DEST = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=STELLAR_KEY)
KEY = destination_key(DEST)
EXTERNAL = accounts.external("stripe", "USDC")


@dataclass
class Harness:
    """One implementation of the books: its unit of work, and what its outbox holds (in order)."""

    uow: UnitOfWork[Books]
    staged: Callable[[], Awaitable[list[Envelope[Any]]]]


@pytest.fixture(params=["fake", "sql"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """Synchronous, so that only the SQL case asks for a database (`getfixturevalue`)."""
    if request.param == "fake":
        fakes = Fakes()

        async def fake_staged() -> list[Envelope[Any]]:
            return list(fakes.outbox.events)

        return Harness(fakes.uow, fake_staged)
    engine: AsyncEngine = request.getfixturevalue("engine")

    async def sql_staged() -> list[Envelope[Any]]:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT payload FROM outbox ORDER BY seq"))).scalars().all()
        return [decode(bytes(r)) for r in rows]

    # Not strict: the order of locks is the SQL ledger's own business (test_ledger_locks.py).
    return Harness(sql_uow(engine, strict=False), sql_staged)


async def fund(h: Harness, player: str, amount: int, asset: str = "USDC") -> None:
    top_up = Transfer.of(
        accounts.external("stripe", asset), accounts.wallet(player, asset), amount, TransferKind.TOP_UP, player, asset
    )
    async with h.uow() as books:
        await books.ledger.apply([top_up])


# ---- ledger ------------------------------------------------------------------------------------------------------


async def test_a_transfer_applies_once_and_its_id_with_another_body_is_a_conflict(harness: Harness) -> None:
    t = Transfer.of(EXTERNAL, accounts.wallet("p", "USDC"), 500, TransferKind.TOP_UP, "stripe", "ref-1")
    async with harness.uow() as books:
        first = await books.ledger.apply([t])
        again = await books.ledger.apply([t])
    assert ([x.id for x in first.applied], first.duplicates) == ([t.id], [])
    assert ([x.id for x in again.applied], [x.id for x in again.duplicates]) == ([], [t.id])
    other = replace(t, amount=600)
    with pytest.raises(LedgerError) as err:
        async with harness.uow() as books:
            await books.ledger.apply([other])
    assert err.value.code == "transfer_conflict"
    async with harness.uow() as books:
        balances = await books.ledger.balances([accounts.wallet("p", "USDC"), EXTERNAL])
        assert await books.ledger.recorded([t.id, uuid.uuid4()]) == {t.id: 500}
    assert (balances[accounts.wallet("p", "USDC")].posted, balances[EXTERNAL].posted) == (500, -500)


async def test_a_pending_transfer_is_posted_or_voided_once(harness: Harness) -> None:
    await fund(harness, "p", 1_000)
    pending = Transfer.of(
        accounts.wallet("p", "USDC"), accounts.clearing("USDC"), 300, TransferKind.CLAIM_RESERVE, "c-1",
        flags=TransferFlags.PENDING,
    )  # fmt: skip
    async with harness.uow() as books:
        await books.ledger.apply([pending])
        reserved = (await books.ledger.balances([pending.debit]))[pending.debit]
    assert (reserved.posted, reserved.debits_pending, reserved.available) == (1_000, 300, 700)
    posted = post_of(pending)
    async with harness.uow() as books:
        assert [t.id for t in (await books.ledger.apply([posted])).applied] == [posted.id]
        assert not (await books.ledger.apply([posted])).applied  # a retry: nothing more
        assert await books.ledger.resolved_by([pending.id]) == {posted.id}
    with pytest.raises(LedgerError) as err:
        async with harness.uow() as books:
            await books.ledger.apply([void_of(pending)])
    assert err.value.code == "pending_already_resolved"
    async with harness.uow() as books:
        after = await books.ledger.balances([pending.debit, pending.credit])
    assert (after[pending.debit].posted, after[pending.debit].debits_pending) == (700, 0)
    assert after[pending.credit].credits_posted == 300


async def test_a_batch_that_would_overdraw_a_wallet_applies_nothing(harness: Harness) -> None:
    await fund(harness, "p", 100)
    escrow = accounts.escrow("r-1", "USDC")
    fine = Transfer.of(EXTERNAL, accounts.wallet("q", "USDC"), 50, TransferKind.TOP_UP, "q")
    too_much = Transfer.of(accounts.wallet("p", "USDC"), escrow, 101, TransferKind.ENTRY_FEE, "r-1", "e-1")
    with pytest.raises(LedgerError) as err:
        async with harness.uow() as books:
            await books.ledger.apply([fine, too_much])
    assert err.value.code == "exceeds_credits"
    async with harness.uow() as books:
        assert await books.ledger.recorded([fine.id, too_much.id]) == {}


async def test_locks_read_the_counters_and_create_what_they_lock(harness: Harness) -> None:
    await fund(harness, "p", 100)
    wallet, fresh, missing = accounts.wallet("p", "USDC"), accounts.wallet("new", "USDC"), accounts.wallet("m", "USDC")
    async with harness.uow() as books:
        assert (await books.ledger.balances([missing]))[missing] == Balance(flags=int(missing.flags))
        await books.ledger.wait_free([wallet])  # nobody holds it: no wait
        locked = await books.ledger.lock([wallet, fresh])
    async with harness.uow() as books:  # the transaction's first lock
        balances, busy = await books.ledger.lock_unless_busy([accounts.clearing("USDC")], unless_busy=[missing])
    assert (locked[wallet].available, locked[fresh]) == (100, Balance(flags=int(fresh.flags)))
    assert busy == set()
    assert balances[missing] == Balance(flags=int(missing.flags))
    async with harness.uow() as books:  # locked accounts exist; an account only looked at does not
        assert await books.ledger_book.existing([wallet, fresh, missing]) == {wallet.id, fresh.id}


async def test_a_rolled_back_transaction_leaves_no_money_moved(harness: Harness) -> None:
    t = Transfer.of(EXTERNAL, accounts.wallet("p", "USDC"), 500, TransferKind.TOP_UP, "stripe", "ref-1")
    with pytest.raises(RuntimeError, match="boom"):
        async with harness.uow() as books:
            await books.ledger.apply([t])
            raise RuntimeError("boom")
    async with harness.uow() as books:
        assert await books.ledger.recorded([t.id]) == {}
        assert await books.wallets.balances("p") == []


async def test_the_book_lists_transfers_by_flow_and_account_newest_first(harness: Harness) -> None:
    wallet = accounts.wallet("p", "USDC")
    first = Transfer.of(EXTERNAL, wallet, 500, TransferKind.TOP_UP, "stripe", "1", correlation_id="flow-1")
    second = Transfer.of(
        wallet, accounts.escrow("r", "USDC"), 200, TransferKind.ENTRY_FEE, "r", "e", correlation_id="flow-1"
    )
    third = Transfer.of(
        EXTERNAL, accounts.wallet("q", "USDC"), 50, TransferKind.TOP_UP, "stripe", "2", correlation_id="x"
    )
    for t in (first, second, third):
        async with harness.uow() as books:
            await books.ledger.apply([t])
    batch = [
        Transfer.of(EXTERNAL, accounts.wallet("q", "USDC"), 1, TransferKind.TOP_UP, "batch", n, correlation_id="batch")
        for n in range(4)
    ]
    async with harness.uow() as books:  # a batch is written in id order, whatever order it was given in
        await books.ledger.apply(sorted(batch, key=lambda t: t.id.int, reverse=True))
        in_batch = await books.ledger_book.transfers(correlation_id="batch", account=None, before_seq=None, limit=10)
    assert [t.id for t in in_batch] == [t.id for t in sorted(batch, key=lambda t: t.id.int, reverse=True)]
    async with harness.uow() as books:
        by_flow = await books.ledger_book.transfers(correlation_id="flow-1", account=None, before_seq=None, limit=10)
        by_account = await books.ledger_book.transfers(
            correlation_id=None, account=(wallet.kind, "p"), before_seq=None, limit=10
        )
        page = await books.ledger_book.transfers(correlation_id=None, account=None, before_seq=by_flow[0].seq, limit=10)
        one = await books.ledger_book.transfer(second.id)
        assert await books.ledger_book.transfer(uuid.uuid4()) is None
    assert [t.id for t in by_flow] == [second.id, first.id]
    assert [t.id for t in by_account] == [second.id, first.id]
    assert [t.id for t in page] == [first.id]
    assert one is not None
    assert (one.kind, one.debit, one.credit, one.amount, one.asset) == ("entry_fee", wallet, second.credit, 200, "USDC")
    assert (one.flags, one.pending_id, one.business_key, one.correlation_id) == (0, None, second.business_key, "flow-1")


async def test_a_players_wallets_show_what_moved_them(harness: Harness) -> None:
    await fund(harness, "p", 1_000)
    await fund(harness, "p", 70, asset="XLM")
    reserve = Transfer.of(
        accounts.wallet("p", "USDC"), accounts.clearing("USDC"), 300, TransferKind.CLAIM_RESERVE, "c-1",
        flags=TransferFlags.PENDING,
    )  # fmt: skip
    async with harness.uow() as books:
        await books.ledger.apply([reserve])
        await books.ledger.lock([accounts.wallet("p", "SP")])  # locked, never moved: no balance
        balances = await books.wallets.balances("p")
        every = set(await books.wallets.wallet_ids("p", asset=None))
        usdc = await books.wallets.wallet_ids("p", asset="USDC")
        moved = await books.wallets.movements(usdc, kind=None, before_seq=None, limit=10)
        fees = await books.wallets.movements(usdc, kind=TransferKind.ENTRY_FEE, before_seq=None, limit=10)
    assert balances == [("USDC", Balance(0, 1_000, 300, 0)), ("XLM", Balance(0, 70, 0, 0))]
    assert every == {accounts.wallet("p", a).id for a in ("USDC", "XLM", "SP")}
    assert usdc == [accounts.wallet("p", "USDC").id]
    assert [(m.kind, m.amount, m.incoming, m.pending, m.resolves) for m in moved] == [
        ("claim_reserve", 300, False, True, None),
        ("top_up", 1_000, True, False, None),
    ]
    assert fees == []


# ---- claims ------------------------------------------------------------------------------------------------------


def claim(claim_id: str, player: str, amount: int, *, at: datetime, **changes: Any) -> Claim:
    made = Claim(
        id=claim_id,
        player_id=player,
        asset="USDC",
        amount=amount,
        destination=DEST.model_dump(mode="json"),
        status=ClaimStatus.APPROVED,
        hold_code=None,
        hold_detail=None,
        rejection_code=None,
        payout_request_id=f"pr-{claim_id}",
        correlation_id=f"flow-{claim_id}",
        created_at=at,
        destination_key=KEY,
    )
    return replace(made, **changes)


async def claims_made(h: Harness) -> list[Claim]:
    """p's approved claim (2h ago) and claim held for KYC (1h ago), q's claim held for velocity (30 min ago)."""
    await fund(h, "p", 1_000)
    await fund(h, "q", 1_000)
    made = [
        claim("c-1", "p", 100, at=NOW - timedelta(hours=2)),
        claim("c-2", "p", 200, at=NOW - timedelta(hours=1), status=ClaimStatus.HELD, hold_code="kyc_required",
              hold_detail="policy v1"),
        claim("c-3", "q", 300, at=NOW - timedelta(minutes=30), status=ClaimStatus.HELD, hold_code="velocity",
              hold_detail="3 claims"),
    ]  # fmt: skip
    async with h.uow() as books:
        await books.ledger.apply([c.pending for c in made])
        await books.claims.add_many(made, [FirstUse("p", KEY, NOW - timedelta(hours=2))])
    return made


async def test_claims_come_back_as_they_were_written(harness: Harness) -> None:
    c1, c2, c3 = await claims_made(harness)
    async with harness.uow() as books:
        assert await books.claims.get("c-1") == c1
        assert await books.claims.get("nope") is None
        assert await books.claims.find(["c-1", "nope"]) == {"c-1": c1}
        assert await books.claims.of_player("p", limit=10) == [c2, c1]
        assert await books.claims.of_player("p", limit=1) == [c2]
        assert await books.claims.held(limit=10) == [c2, c3]
        assert await books.claims.lock_many(["c-3", "c-1", "nope"]) == {"c-1": c1, "c-3": c3}
        assert await books.claims.waiting_for_verification(["p", "q"]) == [c2]


async def test_decisions_holds_and_payout_outcomes_change_claims(harness: Harness) -> None:
    _, c2, c3 = await claims_made(harness)
    async with harness.uow() as books:
        await books.claims.rehold("c-2", code="velocity", detail="still 3 claims", policy_version=3)
        await books.claims.decide("c-3", ClaimDecision(ClaimStatus.REJECTED, NOW, "ops-1", "rejected_by_reviewer"))
        await books.claims.record_outcomes([("c-1", "po-1")], [("c-1", ClaimStatus.PAID)])
    async with harness.uow() as books:
        assert await books.claims.get("c-2") == replace(
            c2, hold_code="velocity", hold_detail="still 3 claims", policy_version=3
        )
        assert await books.claims.get("c-3") == replace(
            c3, status=ClaimStatus.REJECTED, rejection_code="rejected_by_reviewer"
        )
        paid = await books.claims.get("c-1")
        assert paid is not None
        assert (paid.payout_id, paid.status) == ("po-1", ClaimStatus.PAID)
        assert await books.claims.waiting_for_verification(["p"]) == []
        assert await books.claims.stats() == (1, 2, 1)  # c-2 held; c-1 paid and c-3 rejected in the last day


async def test_the_intake_reads_every_fact_of_a_request_at_once(harness: Harness) -> None:
    await claims_made(harness)
    routes = PayoutRoutesPublished(
        sequence=1,
        routes=[
            PayoutRoute(asset="USDC", destination_type=DestinationType.STELLAR_ACCOUNT, provider=ProviderType.STELLAR)
        ],
        published_at=AT,
    )
    async with harness.uow() as books:
        await books.routes.publish(routes)
        await books.players.set_risk_flag("q", flagged=True, reason="bot", by="ops-1")
    queries = [
        IntakeQuery("c-1", "p", "USDC", 100, "stellar_account", KEY),
        IntakeQuery("c-new", "q", "USDC", 50, "stellar_account", KEY),
        IntakeQuery("c-xlm", "p", "XLM", 50, "stellar_account", "other-key"),
    ]
    async with harness.uow() as books:
        p, q, xlm = await books.claims.intake_facts(
            queries,
            day=NOW - timedelta(days=1),
            velocity=NOW - timedelta(minutes=90),
            window=NOW - timedelta(days=7),
            now=NOW,
            windows=[3_600, 86_400],
        )
    assert p.existing is not None
    assert (p.existing.id, p.risk_flagged, p.routable) == ("c-1", False, True)
    assert (p.history.claimed_today, p.history.recent, p.history.decided, p.history.failed) == (300, 1, 0, 0)
    assert p.destination_first_seen == NOW - timedelta(hours=2)
    assert (dict(p.player_totals), dict(p.player_counts)) == ({3_600: 0, 86_400: 300}, {3_600: 0, 86_400: 2})
    assert dict(p.destination_totals) == {3_600: 300, 86_400: 600}  # q's claim 30 minutes ago too
    assert (q.existing, q.risk_flagged, q.destination_first_seen) == (None, True, None)
    assert (q.history.claimed_today, q.history.recent) == (300, 1)
    assert (xlm.routable, xlm.history.claimed_today, xlm.destination_first_seen) == (False, 0, None)


# ---- compliance, players and routes ------------------------------------------------------------------------------


def activated(version: int) -> RiskPolicyActivated:
    rule = PolicyRule(kyc_above=AmountInWindow(amount=1_000, window_s=86_400))
    return RiskPolicyActivated(
        policy=RiskPolicy(version=version, rules=[rule]), proposed_by="a-1", approved_by="a-2", activated_at=AT
    )


def verification(player: str, status: str, sequence: int) -> PlayerVerificationChanged:
    return PlayerVerificationChanged(
        player_id=player, reference=f"ver-{player}", status=status, sequence=sequence, changed_at=AT
    )


async def test_only_newer_policies_and_verifications_are_kept(harness: Harness) -> None:
    async with harness.uow() as books:
        assert await books.compliance.intake(["p"]) == (EMPTY_POLICY, {"p": VerificationStatus.NOT_STARTED})
        assert await books.compliance.activate(activated(2))
        assert not await books.compliance.activate(activated(2))
        assert not await books.compliance.activate(activated(1))
        assert await books.compliance.record_verification(verification("p", "verified", 5))
        assert not await books.compliance.record_verification(verification("p", "failed", 4))
        await books.compliance.lock_players(["p", "q"])
    async with harness.uow() as books:
        policy, statuses = await books.compliance.intake(["p", "q"])
        unbusy = await books.compliance.intake_unless_busy(["q", "p"])
    assert (policy.version, statuses) == (2, {"p": VerificationStatus.VERIFIED, "q": VerificationStatus.NOT_STARTED})
    assert unbusy == (policy, statuses, set())


async def test_routes_are_replaced_by_a_newer_announcement_only(harness: Harness) -> None:
    def announced(sequence: int, *assets: str, amounts: tuple[int, ...] | None = None) -> PayoutRoutesPublished:
        routes = [
            PayoutRoute(
                asset=a,
                destination_type=DestinationType.STELLAR_ACCOUNT,
                provider=ProviderType.STELLAR,
                amounts=amounts,
            )
            for a in assets
        ]
        return PayoutRoutesPublished(sequence=sequence, routes=routes, published_at=AT + timedelta(minutes=sequence))

    async with harness.uow() as books:
        assert await books.routes.all() == []
        await books.routes.lock()
        await books.routes.publish(announced(2, "USDC", "XLM"))
        await books.routes.publish(announced(1, "SP"))  # older: changes nothing
        await books.routes.publish(announced(3, "USDC", amounts=(500, 1_000)))
    async with harness.uow() as books:
        assert await books.routes.all() == [
            {
                "asset": "USDC",
                "destination_type": "stellar_account",
                "provider": "stellar",
                "published_at": AT + timedelta(minutes=3),
                "amounts": [500, 1_000],
            }
        ]
        facts = await books.claims.intake_facts(
            [IntakeQuery(f"c-{n}", "p", "USDC", n, "stellar_account", KEY) for n in (500, 600)],
            day=NOW,
            velocity=NOW,
            window=NOW,
            now=NOW,
        )
    assert [f.routable for f in facts] == [True, False]  # fixed amounts only


# ---- campaigns and held rounds -----------------------------------------------------------------------------------


async def test_a_campaign_is_created_once_and_moves_between_statuses(harness: Harness) -> None:
    a = Campaign("camp-a", "A", "USDC", CampaignStatus.ACTIVE, None)
    b = Campaign("camp-b", "B", "XLM", CampaignStatus.ACTIVE, 500)
    async with harness.uow() as books:
        assert await books.campaigns.create(a, created_by="admin-1")
    async with harness.uow() as books:
        assert await books.campaigns.create(b, created_by="admin-1")
        assert not await books.campaigns.create(replace(a, name="again"), created_by="admin-2")
        await books.campaigns.set_status("camp-a", CampaignStatus.PAUSED)
    async with harness.uow() as books:
        assert await books.campaigns.get("camp-a", lock=True) == replace(a, status=CampaignStatus.PAUSED)
        assert await books.campaigns.get("nope") is None
        assert await books.campaigns.all() == [replace(a, status=CampaignStatus.PAUSED), b]


def settled(round_id: str, total: int) -> Envelope[Any]:
    payload = example_payload(
        RoundSettled,
        round_id=round_id,
        asset="USDC",
        prize_source="sponsored",
        campaign_id="camp-a",
        distributable=total,
        allocations=[{"player_id": "p", "rank": 1, "amount": total, "source": "pool"}],
        remainder=0,
        fees=[],
    )
    return new_event(payload, source="/settlement", correlation_id=f"flow-{round_id}")


async def test_rounds_keep_their_first_outcome_and_held_rounds_wait_until_released(harness: Harness) -> None:
    async with harness.uow() as books:
        await books.campaigns.create(Campaign("camp-a", "A", "USDC", CampaignStatus.ACTIVE, None), created_by="a")
        await books.allocations.record_outcomes([("r-1", "voided"), ("r-2", "settled")])
        await books.allocations.record_outcomes([("r-1", "settled")])
        assert (await books.allocations.voided("r-1"), await books.allocations.voided("r-2")) == (True, False)
    envs = {r: settled(r, n) for r, n in (("r-3", 300), ("r-4", 400))}
    for round_id, env in envs.items():  # one after the other: held in that order
        async with harness.uow() as books:
            held = HeldRound(round_id, "camp-a", "USDC", env.data.distributable, "pool_exhausted", env)
            await books.allocations.hold(held)
            await books.allocations.hold(replace(held, reason="again"))  # a round held stays as it is
    async with harness.uow() as books:
        assert await books.allocations.is_held("r-3")
        assert await books.allocations.held_among(["r-1", "r-3", "r-4"]) == {"r-3", "r-4"}
        assert await books.allocations.held_totals() == {"camp-a": (2, 700)}
        locked = await books.allocations.lock_held("camp-a")
        assert [(h.round_id, h.total, h.reason, h.event.id) for h in locked] == [
            ("r-3", 300, "pool_exhausted", envs["r-3"].id),
            ("r-4", 400, "pool_exhausted", envs["r-4"].id),
        ]
        await books.allocations.mark_released("r-3", by="admin-1")
    async with harness.uow() as books:
        assert [h.round_id for h in await books.allocations.lock_held("camp-a")] == ["r-4"]
        assert await books.allocations.held_totals() == {"camp-a": (1, 400)}
        assert await books.allocations.is_held("r-3")  # ever held
        trail = await books.flows.held_rounds_of("flow-r-3", limit=10)
    assert [(t.round_id, t.total, t.reason, t.released_at is not None) for t in trail] == [
        ("r-3", 300, "pool_exhausted", True)
    ]


# ---- top-ups -----------------------------------------------------------------------------------------------------


def top_up(top_up_id: str, session_ref: str, *, amount: int = 1_000, expires: timedelta = timedelta(days=1)) -> TopUp:
    return TopUp(
        id=top_up_id,
        player_id="p",
        asset="USD",
        amount=amount,
        provider="stripe",
        status=TopUpStatus.CREATED,
        session_ref=session_ref,
        url=f"https://checkout.test/{session_ref}",
        expires_at=NOW + expires,
        correlation_id=f"flow-{top_up_id}",
        created_at=NOW,
    )


async def test_top_ups_are_found_by_any_of_their_names_and_credited_once(harness: Harness) -> None:
    one, two, gone = top_up("tu-1", "cs_1"), top_up("tu-2", "cs_2", amount=2_000), top_up("tu-3", "cs_3", amount=400)
    lapsed = top_up("tu-4", "cs_4", amount=800, expires=-timedelta(minutes=1))  # created, its session expired since
    async with harness.uow() as books:
        for t in (one, two, gone, lapsed):
            assert await books.top_ups.add(t)
        assert not await books.top_ups.add(one)
        await books.top_ups.lock_player("p")
        await books.top_ups.set_status("tu-3", TopUpStatus.EXPIRED)
    credit = top_up_credit(one)
    async with harness.uow() as books:
        await books.ledger.apply([credit])
        await books.top_ups.mark_credited("tu-1", payment_ref="pi_1", transfer_id=credit.id, at=NOW)
    credited = replace(
        one, status=TopUpStatus.CREDITED, payment_ref="pi_1", credit_transfer_id=credit.id, credited_at=NOW
    )
    async with harness.uow() as books:
        assert await books.top_ups.get("tu-1", lock=True) == credited
        assert await books.top_ups.get("nope") is None
        assert await books.top_ups.find(top_up_id="tu-2", session_ref="cs_1", payment_ref=None) == two  # id first
        assert await books.top_ups.find(top_up_id="nope", session_ref="cs_2", payment_ref="pi_1") == two
        assert await books.top_ups.find(top_up_id=None, session_ref=None, payment_ref="pi_1") == credited
        assert await books.top_ups.find(top_up_id=None, session_ref="cs_9", payment_ref=None) is None
        matching = await books.top_ups.lock_matching(top_up_ids=["tu-2"], session_refs=["cs_3"], payment_refs=["pi_1"])
        assert [t.id for t in matching] == ["tu-1", "tu-2", "tu-3"]
        # Credited or still payable (its session not expired now), made after `since`: not tu-3 nor tu-4.
        assert await books.top_ups.open_or_credited_since("p", "USD", since=NOW - timedelta(hours=1)) == 3_000
        assert await books.top_ups.open_or_credited_since("p", "USD", since=NOW) == 0
        assert [t.id for t in await books.flows.top_ups_of("flow-tu-2", limit=10)] == ["tu-2"]


async def test_an_adjustment_is_recorded_once_and_applied_once(harness: Harness) -> None:
    one = top_up("tu-1", "cs_1")
    credit = top_up_credit(one)
    async with harness.uow() as books:
        await books.top_ups.add(one)
        await books.ledger.apply([credit])
        await books.top_ups.mark_credited("tu-1", payment_ref="pi_1", transfer_id=credit.id, at=NOW)
        await books.top_ups.record_adjustment(
            "stripe", Adjustment("tu-1", AdjustmentKind.REFUND, "re_1", 300), provider_event_id="evt_1"
        )
        await books.top_ups.record_adjustment(
            "stripe", Adjustment("tu-1", AdjustmentKind.DISPUTE, "dp_1", 200), provider_event_id="evt_2"
        )
    async with harness.uow() as books:
        refund = await books.top_ups.find_adjustment("stripe", "refund", "re_1")
        assert await books.top_ups.find_adjustment("stripe", "refund", "re_9") is None
        assert refund is not None
        assert (refund.kind, refund.amount, refund.status) == (AdjustmentKind.REFUND, 300, AdjustmentStatus.PENDING)
        await books.top_ups.mark_applied(replace(refund, status=AdjustmentStatus.APPLIED, debited=300, applied_at=NOW))
    async with harness.uow() as books:
        recorded = await books.top_ups.adjustments("tu-1")
    assert [(a.kind, a.adjustment_ref, a.status, a.debited) for a in recorded] == [
        (AdjustmentKind.REFUND, "re_1", AdjustmentStatus.APPLIED, 300),
        (AdjustmentKind.DISPUTE, "dp_1", AdjustmentStatus.PENDING, 0),
    ]
    assert recorded[0].seq < recorded[1].seq


# ---- corrections, contradictions, the outbox, flows --------------------------------------------------------------


def correction(correction_id: str, reference: str, at: datetime) -> Correction:
    return Correction(
        id=correction_id,
        reference=reference,
        debit=accounts.wallet("p", "USDC"),
        credit=accounts.treasury("USDC"),
        amount=10,
        reason="paid twice",
        corrects_transfer_id=None,
        correlation_id=f"flow-{correction_id}",
        proposed_by="ops-1",
        proposed_at=at,
    )


async def test_a_correction_is_proposed_once_per_reference_and_decided(harness: Harness) -> None:
    first, second = correction("lc-1", "fix-1", NOW - timedelta(minutes=2)), correction("lc-2", "fix-2", NOW)
    async with harness.uow() as books:
        await books.ledger.declare([first.debit, first.credit])  # a correction names accounts that exist
        assert await books.corrections.add(first)
        assert await books.corrections.add(second)
        assert not await books.corrections.add(replace(first, id="lc-3"))
    applied = replace(
        first, status=CorrectionStatus.REJECTED, rejected_by="ap-1", rejected_at=NOW, decision_reason="no"
    )
    async with harness.uow() as books:
        await books.corrections.decide(applied)
    async with harness.uow() as books:
        assert await books.corrections.get("lc-1", lock=True) == applied
        assert await books.corrections.get("nope") is None
        assert await books.corrections.by_reference("fix-2") == second
        assert await books.corrections.list(status=None, limit=10) == [second, applied]
        assert await books.corrections.list(status=CorrectionStatus.PROPOSED, limit=10) == [second]


async def test_a_contradiction_is_kept_once_per_source(harness: Harness) -> None:
    said = Contradiction("topup", "tu-1", "expired", "paid", "evt_1", "paid after it expired")
    async with harness.uow() as books:
        assert await books.contradictions.record(said)
        assert not await books.contradictions.record(replace(said, detail="again"))
        assert await books.contradictions.record(replace(said, source_ref="evt_2"))
    async with harness.uow() as books:
        recent = await books.contradictions.recent(limit=10)
    assert [(r["source_ref"], r["detail"], r["state"], r["reported"]) for r in recent] == [
        ("evt_2", "paid after it expired", "expired", "paid"),
        ("evt_1", "paid after it expired", "expired", "paid"),
    ]
    assert recent[0]["id"] > recent[1]["id"]


async def test_events_are_staged_in_order_and_only_if_the_transaction_commits(harness: Harness) -> None:
    first = new_event(example_payload(RoundSettled, round_id="r-1"), source="/t", correlation_id="r-1")
    second = stage_event(example_payload(RoundSettled, round_id="r-2"), source="/t", correlation_id="r-2")
    async with harness.uow() as books:
        await books.outbox.stage([first, second])
    with pytest.raises(RuntimeError, match="boom"):
        async with harness.uow() as books:
            await books.outbox.stage([new_event(example_payload(RoundSettled), source="/t", correlation_id="x")])
            raise RuntimeError("boom")
    staged = await harness.staged()
    assert [e.correlationid for e in staged] == ["r-1", "r-2"]
    assert staged[0].id == first.id


async def test_a_flows_claims_show_their_milestones(harness: Harness) -> None:
    await claims_made(harness)
    async with harness.uow() as books:
        await books.claims.record_outcomes([("c-1", "po-1")], [("c-1", ClaimStatus.PAID)])
    async with harness.uow() as books:
        [paid] = await books.flows.claims_of("flow-c-1", limit=10)
        [held] = await books.flows.claims_of("flow-c-2", limit=10)
        assert await books.flows.claims_of("flow-none", limit=10) == []
        pid = await books.backend.pid()
        assert await books.backend.pid() == pid  # one transaction, one backend
    assert (paid.status, paid.payout_id, paid.created_at, paid.decided_at) == (
        "paid",
        "po-1",
        NOW - timedelta(hours=2),
        NOW - timedelta(hours=2),
    )
    assert paid.settled_at is not None
    assert (held.status, held.hold_code, held.decided_at, held.settled_at) == ("held", "kyc_required", None, None)
