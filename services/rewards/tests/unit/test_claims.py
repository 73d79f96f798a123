"""The claim use cases on in-memory ports: limits, holds and their release or rejection, Season Points, payout
outcomes. The rules, not the SQL (the integration tests run the same use cases on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rewards_fakes import Fakes

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.payouts import PayoutPaid, PayoutRequested, PayoutReturned
from prizeflow_contracts.events.rewards import ClaimApproved, ClaimHeld, ClaimRejected
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_rewards.application.claims import Claim, ClaimError, ClaimPolicy, ReviewHold, SettlePayout, SubmitClaim
from prizeflow_rewards.application.claims.batch import ClaimRequest
from prizeflow_rewards.application.claims.submit import Deferred
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import ClaimStatus
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_testkit.events import AT, example_payload

KEY = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
DEST = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=KEY)
PLAYER = Principal("p-1", frozenset({Role.PLAYER}))
OPS = Principal("ops-1", frozenset({Role.OPS}))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class World:
    """A player with a funded wallet, payouts' routes known, and the claim use cases on fakes."""

    def __init__(self, **policy: Any) -> None:
        self.f = Fakes()
        self.f.routes.routes = {("USDC", "stellar_account", "stellar"), ("SP", "stellar_account", "stellar")}
        self.clock = Clock()
        limits: dict[str, Any] = {
            "min_claim": {"USDC": 100},
            "daily_limit": {"USDC": 5_000},
            "review_threshold": {"USDC": 2_000},
            "velocity_max_claims": 10,
            "new_destination_cooldown_s": 0,
            **policy,
        }
        self.submit = SubmitClaim(ClaimPolicy(**limits), "/test", clock=self.clock)
        self.review = ReviewHold(self.f.uow, "/test", clock=self.clock)
        self.settle = SettlePayout()

    async def top_up(self, amount: int, asset: str = "USDC", player: str = "p-1") -> None:
        t = Transfer.of(
            accounts.external("stripe", asset),
            accounts.wallet(player, asset),
            amount,
            TransferKind.TOP_UP,
            "stripe",
            f"ref-{len(self.f.ledger.transfers)}",
        )
        await self.f.ledger.apply([t])

    async def claim(self, amount: int, asset: str = "USDC", key: str | None = None) -> Claim:
        claim, _ = await self.submit(
            self.f.books, PLAYER, player_id="p-1", asset=asset, amount=amount, destination=DEST, idempotency_key=key
        )
        return claim

    def wallet(self, asset: str = "USDC") -> tuple[int, int]:
        """(posted, reserved) of the player's wallet."""
        b = self.f.ledger.of(accounts.wallet("p-1", asset))
        return b.posted, b.debits_pending


async def test_a_claim_within_the_limits_reserves_its_amount_and_requests_its_payout() -> None:
    w = World()
    await w.top_up(10_000)
    claim = await w.claim(1_500)
    assert claim.status is ClaimStatus.APPROVED
    assert w.wallet() == (10_000, 1_500)
    assert w.f.ledger.of(accounts.clearing("USDC")).credits_pending == 1_500
    [requested] = w.f.outbox.of(PayoutRequested)
    assert (requested.claim_id, requested.amount.amount, requested.idempotency_key) == (
        claim.id,
        1_500,
        f"{claim.id}:payout",
    )
    assert [a.approved_by for a in w.f.outbox.of(ClaimApproved)] == [None]


async def test_one_idempotency_key_is_one_claim_and_never_another_request() -> None:
    w = World()
    await w.top_up(10_000)
    first = await w.claim(500, key="k-1")
    again, created = await w.submit(
        w.f.books, PLAYER, player_id="p-1", asset="USDC", amount=500, destination=DEST, idempotency_key="k-1"
    )
    assert (again.id, created) == (first.id, False)
    with pytest.raises(ClaimError) as err:
        await w.claim(600, key="k-1")
    assert (err.value.kind, err.value.code) == (ErrorKind.CONFLICT, "idempotency_key_reused")
    assert w.wallet() == (10_000, 500)


@pytest.mark.parametrize(
    ("asset", "amount", "code"),
    [
        ("USDC", 99, "below_minimum"),
        ("USDC", 10_001, "insufficient_balance"),
        ("USDC", 0, "invalid_amount"),
        ("DOGE", 100, "unknown_asset"),
        ("XLM", 100, "no_payout_route"),
    ],
)
async def test_a_refused_claim_writes_nothing(asset: str, amount: int, code: str) -> None:
    w = World()
    await w.top_up(10_000)
    with pytest.raises(ClaimError) as err:
        await w.claim(amount, asset=asset)
    assert isinstance(err.value, UseCaseError)
    assert (err.value.kind, err.value.status, err.value.code) == (ErrorKind.INVALID, 422, code)
    assert w.wallet() == (10_000, 0)
    assert (w.f.claims.rows, w.f.outbox.events) == ({}, [])


async def test_the_daily_limit_counts_the_last_24_hours_of_live_claims() -> None:
    w = World()
    await w.top_up(20_000)
    await w.claim(2_000)
    await w.claim(2_000)
    with pytest.raises(ClaimError) as err:
        await w.claim(1_001)  # 4_000 + 1_001 > 5_000
    assert err.value.code == "daily_limit_exceeded"
    await w.claim(1_000)  # exactly the limit
    w.clock.now += timedelta(days=1, seconds=1)
    assert (await w.claim(2_000)).status is ClaimStatus.APPROVED


async def test_a_claim_over_the_review_threshold_is_held_and_reserved_without_a_payout_request() -> None:
    w = World()
    await w.top_up(10_000)
    claim = await w.claim(2_001)
    assert (claim.status, claim.hold_code) == (ClaimStatus.HELD, "amount_over_threshold")
    assert w.wallet() == (10_000, 2_001)  # reserved while a person decides: it cannot be claimed twice
    assert [h.code for h in w.f.outbox.of(ClaimHeld)] == ["amount_over_threshold"]
    assert w.f.outbox.of(PayoutRequested) == []


@pytest.mark.parametrize(
    ("setup", "code"),
    [("flag", "risk_score"), ("velocity", "velocity"), ("cooldown", "new_destination")],
)
async def test_suspicious_claims_are_held(setup: str, code: str) -> None:
    policy = {"velocity_max_claims": 2} if setup == "velocity" else {}
    if setup == "cooldown":
        policy = {"new_destination_cooldown_s": 3_600}
    w = World(**policy)
    await w.top_up(10_000)
    if setup == "flag":
        w.f.players.flags["p-1"] = True
    if setup == "velocity":
        await w.claim(100)
        await w.claim(100)
    claim = await w.claim(100)
    assert (claim.status, claim.hold_code) == (ClaimStatus.HELD, code)


async def test_a_released_hold_is_approved_and_requests_its_payout_audited() -> None:
    w = World()
    await w.top_up(10_000)
    held = await w.claim(3_000)
    released = await w.review.release(OPS, held.id, reason="known player")
    assert released.status is ClaimStatus.APPROVED
    assert w.wallet() == (10_000, 3_000)  # the same reservation, now on its way to payouts
    assert [a.approved_by for a in w.f.outbox.of(ClaimApproved)] == ["ops-1"]
    assert [r.claim_id for r in w.f.outbox.of(PayoutRequested)] == [held.id]
    [audit] = w.f.outbox.of(AdminActionRecorded)
    assert (audit.action, audit.before["status"], audit.after["status"]) == ("claim.release", "held", "approved")


async def test_a_rejected_hold_gives_the_reservation_back_and_is_final() -> None:
    w = World()
    await w.top_up(10_000)
    held = await w.claim(3_000)
    rejected = await w.review.reject(OPS, held.id, reason="fraud")
    assert (rejected.status, rejected.rejection_code) == (ClaimStatus.REJECTED, "rejected_by_reviewer")
    assert w.wallet() == (10_000, 0)
    assert [r.detail for r in w.f.outbox.of(ClaimRejected)] == ["fraud"]
    assert w.f.outbox.of(PayoutRequested) == []
    for decide in (w.review.release(OPS, held.id, reason=None), w.review.reject(OPS, held.id, reason="x")):
        with pytest.raises(ClaimError) as err:
            await decide
        assert (err.value.kind, err.value.code) == (ErrorKind.CONFLICT, "illegal_transition")
    assert w.wallet() == (10_000, 0)  # voided once


async def test_only_a_held_claim_can_be_reviewed() -> None:
    w = World()
    await w.top_up(10_000)
    approved = await w.claim(500)
    with pytest.raises(ClaimError) as err:
        await w.review.reject(OPS, approved.id, reason="late")
    assert (err.value.status, err.value.code) == (409, "illegal_transition")
    with pytest.raises(ClaimError) as err:
        await w.review.release(OPS, "cl-none", reason=None)
    assert (err.value.status, err.value.code) == (404, "claim_not_found")


@pytest.mark.parametrize("amount", [1, 500, 10_000])
async def test_season_points_are_never_redeemable_whatever_the_balance(amount: int) -> None:
    w = World(min_claim={"SP": 1}, review_threshold={"SP": 10**9}, daily_limit={"SP": 10**9})
    await w.top_up(10_000, asset="SP")
    with pytest.raises(ClaimError) as err:
        await w.claim(amount, asset="SP")
    assert (err.value.kind, err.value.code) == (ErrorKind.INVALID, "asset_not_redeemable")
    assert w.wallet("SP") == (10_000, 0)
    assert (w.f.claims.rows, w.f.outbox.events) == ({}, [])


def outcome(cls: type[Any], claim: Claim, **extra: Any) -> Envelope[EventPayload]:
    payload = example_payload(
        cls,
        payout_id=f"po-{claim.id}",
        payout_request_id=claim.payout_request_id,
        claim_id=claim.id,
        player_id=claim.player_id,
        amount={"asset": claim.asset, "amount": claim.amount},
        provider="stellar",
        idempotency_key=f"{claim.id}:payout",
        **extra,
    )
    return new_event(payload, source="/payouts", correlation_id=claim.id)


async def test_a_paid_claim_is_posted_once_and_a_return_credits_the_wallet_back() -> None:
    w = World()
    await w.top_up(10_000)
    claim = await w.claim(1_000)
    paid = outcome(PayoutPaid, claim, paid_at=AT)
    for env in (paid, paid):  # a redelivery changes nothing
        await w.settle.prepare(w.f.books, [env])
        await w.settle.handle(w.f.books, env)
    assert w.wallet() == (9_000, 0)
    assert w.f.ledger.of(accounts.external("stellar", "USDC")).credits_posted == 1_000
    returned = outcome(
        PayoutReturned, claim, returned_amount={"asset": "USDC", "amount": 1_000}, reason="bounced", returned_at=AT
    )
    await w.settle.handle(w.f.books, returned)
    assert w.wallet() == (10_000, 0)
    assert (await w.f.claims.get(claim.id)).status is ClaimStatus.RETURNED  # type: ignore[union-attr]


async def test_a_claim_reserves_on_a_clearing_shard_no_one_holds_and_its_outcome_settles_that_one() -> None:
    """Issue 56: the asset's clearing account held elsewhere (a poll, an operator) no longer holds up the claim."""
    w = World()
    await w.top_up(10_000)
    first, second = accounts.clearing("USDC"), accounts.clearing("USDC", 1)
    w.f.ledger.busy = {first}
    claim = await w.claim(1_000)
    assert (claim.clearing_shard, claim.clearing, claim.pending.credit) == (1, second, second)
    assert (w.f.ledger.of(first).credits_pending, w.f.ledger.of(second).credits_pending) == (0, 1_000)
    w.f.ledger.busy = set()
    paid = outcome(PayoutPaid, claim, paid_at=AT)
    await w.settle.prepare(w.f.books, [paid])
    await w.settle.handle(w.f.books, paid)
    after = w.f.ledger.of(second)
    assert (after.credits_pending, after.credits_posted, after.debits_posted) == (0, 1_000, 1_000)
    assert w.f.ledger.of(first).credits_posted == 0
    assert w.wallet() == (9_000, 0)


async def test_with_one_clearing_shard_configured_a_held_clearing_account_sets_the_claim_aside() -> None:
    """`REWARDS_CLEARING_SHARDS=1` (a rollout from a release before shards): shard 0 only, never another."""
    w = World(clearing_shards=1)
    await w.top_up(10_000)
    assert w.submit.policy.shards("USDC") == [accounts.clearing("USDC")]
    assert (await w.claim(500)).clearing_shard == 0
    w.f.ledger.busy = {accounts.clearing("USDC")}
    [outcome_] = await w.submit.decide(
        w.f.books,
        [ClaimRequest(PLAYER, "p-1", "USDC", 500, DEST, "k-2")],
    )
    assert isinstance(outcome_, Deferred)


@pytest.mark.parametrize("roles", [{Role.OPS}, {Role.ADMIN}])
async def test_nobody_reviews_their_own_held_claim(roles: set[Role]) -> None:
    """A member of staff who also plays would release their own claim past its hold (risk flag, KYC required,
    velocity, new destination) and, below the approval threshold, be paid with nobody else looking: as with payout
    approvals (ADR 0005), the player a claim pays never decides it."""
    w = World()
    await w.top_up(10_000)
    w.f.players.flags["p-1"] = True
    held = await w.claim(500)
    assert held.status is ClaimStatus.HELD
    staff_player = Principal("p-1", frozenset({Role.PLAYER, *roles}))
    with pytest.raises(ClaimError) as err:
        await w.review.release(staff_player, held.id, reason="looks fine to me")
    assert (err.value.kind, err.value.code) == (ErrorKind.FORBIDDEN, "self_review")
    with pytest.raises(ClaimError) as err:
        await w.review.reject(staff_player, held.id, reason="changed my mind")
    assert (err.value.kind, err.value.code) == (ErrorKind.FORBIDDEN, "self_review")
    assert w.f.outbox.of(PayoutRequested) == []
    assert w.wallet() == (10_000, 500)  # still held, still reserved
    released = await w.review.release(OPS, held.id, reason="someone else looked")
    assert released.status is ClaimStatus.APPROVED


async def test_a_claim_of_an_amount_a_fixed_price_rail_does_not_pay_is_refused_before_anything_is_reserved() -> None:
    """Telegram pays Stars only as gifts of listed prices: payouts announces them, rewards refuses the rest."""
    w = World()
    w.f.routes.routes.add(("XTR", "telegram_user", "telegram_if_supported"))
    w.f.routes.amounts[("XTR", "telegram_user", "telegram_if_supported")] = (15, 25)
    await w.top_up(100, asset="XTR")
    telegram = PayoutDestination(type=DestinationType.TELEGRAM_USER, address="4242")

    async def claim(stars: int) -> Claim:
        made, _ = await w.submit(
            w.f.books, PLAYER, player_id="p-1", asset="XTR", amount=stars, destination=telegram, idempotency_key=None
        )
        return made

    with pytest.raises(ClaimError) as err:
        await claim(16)
    assert err.value.code == "no_payout_route"
    assert w.wallet("XTR") == (100, 0)
    assert (await claim(25)).status is ClaimStatus.APPROVED
    assert w.wallet("XTR") == (100, 25)
