"""Player top-ups on in-memory ports: what may be topped up, idempotent sessions, the provider down, credit once
whoever reports the payment first (webhook or verify), out-of-order and repeated webhooks, refunds and disputes
a wallet can no longer cover (receivables, never a negative balance), and the money rules property-tested."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rewards_fakes import FakeCheckout, Fakes

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.rewards import TopUpAdjusted, TopUpCredited
from prizeflow_contracts.events.webhooks import PaymentEventReceived, ProviderEventReceived, VerificationEventReceived
from prizeflow_contracts.money import ASSETS
from prizeflow_rewards.application.topups import (
    ApplyPaymentEvents,
    CheckoutProviders,
    CreateTopUpSession,
    TopUpMoney,
    VerifyTopUpSession,
)
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountKind, Transfer, TransferKind
from prizeflow_rewards.domain.topups import (
    REVERSES,
    TRANSITIONS,
    Adjustment,
    AdjustmentKind,
    Refusal,
    TopUpLimits,
    TopUpRefusalCode,
    TopUpStatus,
    check_amount,
    debit_split,
    reinstate_split,
    top_up_id_for,
    topupable,
)
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_testkit.events import example_payload

PLAYER = Principal("p-1", frozenset({Role.PLAYER}))
OTHER = Principal("p-2", frozenset({Role.PLAYER}))
LIMITS = TopUpLimits(minimum={"USD": 500}, maximum={"USD": 50_000, "INR": 10_000}, daily={"USD": 60_000, "INR": 1})
WEBHOOKS = "/prizeflow/webhooks"


class World:
    def __init__(self) -> None:
        self.f = Fakes()
        self.stripe = FakeCheckout("stripe")
        providers = CheckoutProviders(default="stripe", providers={"stripe": self.stripe})
        self.create = CreateTopUpSession(self.f.uow, providers, LIMITS)
        self.money = TopUpMoney("/prizeflow/rewards")
        self.verify = VerifyTopUpSession(self.f.uow, self.money, providers)
        self.apply = ApplyPaymentEvents(self.money)
        self.n = 0

    async def top_up(self, amount: int = 10_000, key: str | None = "k-1", player: Principal = PLAYER) -> Any:
        top_up, _ = await self.create(
            player, player_id=player.user_id, asset="USD", amount=amount, provider=None, request_key=key
        )
        return top_up

    def event(self, status: str, top_up: Any, *, source: str = WEBHOOKS, **extra: Any) -> Envelope[Any]:
        self.n += 1
        data: dict[str, Any] = {
            "provider": "stripe",
            "provider_event_id": f"evt_{self.n}",
            "kind": "checkout.session.completed",
            "verified": True,
            "status": status,
            "top_up_id": top_up.id,
            "session_ref": top_up.session_ref,
            "payment_ref": "pi_1",
            "adjustment_ref": None,
            "amount": {"asset": "USD", "amount": top_up.amount},
            **extra,
        }
        return new_event(example_payload(PaymentEventReceived, **data), source=source, correlation_id=top_up.id)

    async def deliver(self, *envs: Envelope[Any]) -> list[str]:
        """One poll: prepare, then each event in order (as the consumer's batch handler does)."""
        await self.apply.prepare(self.f.books, envs)
        return [await self.apply.handle(self.f.books, env) for env in envs]

    def wallet(self, player: str = "p-1") -> int:
        return self.f.ledger.of(accounts.wallet(player, "USD")).posted

    def owed(self, player: str = "p-1") -> int:
        return -self.f.ledger.of(accounts.receivable(player, "USD")).posted

    async def spend(self, amount: int, player: str = "p-1") -> None:
        """The player pays an entry fee: money leaves the wallet for a round's escrow."""
        self.n += 1
        t = Transfer.of(
            accounts.wallet(player, "USD"),
            accounts.escrow(f"r-{self.n}", "USD"),
            amount,
            TransferKind.ENTRY_FEE,
            self.n,
        )
        await self.f.ledger.apply([t])


# ---- domain -------------------------------------------------------------------------------------------------


def test_state_machine_transition_by_transition() -> None:
    allowed = set(TRANSITIONS)
    assert allowed == {
        (TopUpStatus.CREATED, TopUpStatus.CREDITED),
        (TopUpStatus.CREATED, TopUpStatus.FAILED),
        (TopUpStatus.CREATED, TopUpStatus.EXPIRED),
    }
    for a in TopUpStatus:
        for b in TopUpStatus:
            assert TRANSITIONS.allows(a, b) == ((a, b) in allowed)


@pytest.mark.parametrize(
    ("asset", "provider_scheme", "expected"),
    [
        ("USD", "stripe", "usd"),
        ("INR", "stripe", "inr"),
        ("SP", "stripe", TopUpRefusalCode.ASSET_NOT_TOP_UPABLE),  # Season Points are never bought
        ("XLM", "stripe", TopUpRefusalCode.ASSET_NOT_TOP_UPABLE),  # crypto: not through a card checkout
        ("USD", "nowhere", TopUpRefusalCode.NO_PROVIDER_CURRENCY),
    ],
)
def test_only_redeemable_fiat_with_a_provider_currency_is_topped_up(
    asset: str, provider_scheme: str, expected: Any
) -> None:
    got = topupable(ASSETS[asset], "p", provider_scheme)
    assert (got.code if isinstance(got, Refusal) else got) == expected


def test_amount_limits() -> None:
    assert check_amount("USD", 500, 0, LIMITS) is None
    codes = {
        (0, 0): TopUpRefusalCode.INVALID_AMOUNT,
        (499, 0): TopUpRefusalCode.BELOW_MINIMUM,
        (50_001, 0): TopUpRefusalCode.ABOVE_MAXIMUM,
        (20_000, 40_001): TopUpRefusalCode.DAILY_LIMIT_EXCEEDED,
    }
    for (amount, today), code in codes.items():
        refusal = check_amount("USD", amount, today, LIMITS)
        assert refusal is not None
        assert refusal.code is code
    refusal = check_amount("EUR", 1000, 0, LIMITS)  # no maximum configured: not offered
    assert refusal is not None
    assert refusal.code is TopUpRefusalCode.ASSET_NOT_TOP_UPABLE


def test_splits() -> None:
    assert debit_split(100, 250) == (100, 0)
    assert debit_split(100, 30) == (30, 70)
    assert debit_split(100, 0) == (0, 100)
    dispute = Adjustment("tu-1", AdjustmentKind.DISPUTE, "dp_1", 100, debited=30, receivable=70)
    assert reinstate_split(100, dispute) == (30, 70)  # what the player was made to owe first
    assert reinstate_split(50, dispute) == (0, 50)


# ---- sessions -----------------------------------------------------------------------------------------------


async def test_the_same_request_key_returns_the_same_session_and_asks_the_provider_once() -> None:
    w = World()
    first = await w.top_up(key="k-1")
    again, created = await w.create(
        PLAYER, player_id="p-1", asset="USD", amount=10_000, provider=None, request_key="k-1"
    )
    assert (again, created) == (first, False)
    assert len(w.stripe.requests) == 1
    req = w.stripe.requests[0]
    assert (req.top_up_id, req.currency, req.amount, req.correlation_id) == (first.id, "usd", 10_000, first.id)
    assert first.status is TopUpStatus.CREATED
    assert first.url == f"https://checkout.test/{first.session_ref}"
    assert w.wallet() == 0  # a session moves no money


async def test_a_key_reused_for_another_request_is_a_conflict() -> None:
    w = World()
    await w.top_up(key="k-1")
    with pytest.raises(UseCaseError) as err:
        await w.top_up(amount=20_000, key="k-1")
    assert (err.value.kind, err.value.code) == (ErrorKind.CONFLICT, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("asset", "amount", "provider", "code"),
    [
        ("SP", 1000, None, "asset_not_top_upable"),
        ("XLM", 10_000_000, None, "asset_not_top_upable"),
        ("DOGE", 1000, None, "unknown_asset"),
        ("USD", 100, None, "below_minimum"),
        ("USD", 50_001, None, "above_maximum"),
        ("USD", 0, None, "invalid_amount"),
        ("USD", -500, None, "invalid_amount"),
        ("USD", 2**64, None, "above_maximum"),
        ("USD", 1000, "sandbox", "provider_not_available"),
    ],
)
async def test_refusals_write_nothing_and_ask_no_provider(
    asset: str, amount: int, provider: str | None, code: str
) -> None:
    w = World()
    with pytest.raises(UseCaseError) as err:
        await w.create(PLAYER, player_id="p-1", asset=asset, amount=amount, provider=provider, request_key="k")
    assert (err.value.kind, err.value.code) == (ErrorKind.INVALID, code)
    assert w.stripe.requests == []
    assert w.f.top_ups.rows == {}


async def test_the_daily_cap_counts_open_and_credited_top_ups() -> None:
    w = World()
    await w.top_up(40_000, key="a")
    await w.top_up(20_000, key="b")
    with pytest.raises(UseCaseError) as err:
        await w.top_up(1_000, key="c")
    assert err.value.code == "daily_limit_exceeded"
    assert w.f.top_ups.player_locks == ["p-1", "p-1"]  # recorded under the player's lock


async def test_provider_unreachable_is_503_and_nothing_is_half_created_then_a_retry_succeeds() -> None:
    w = World()
    w.stripe.down = True
    with pytest.raises(UseCaseError) as err:
        await w.top_up(key="k-1")
    assert (err.value.kind, err.value.code) == (ErrorKind.UNAVAILABLE, "provider_unavailable")
    assert w.f.top_ups.rows == {}
    w.stripe.down = False
    top_up = await w.top_up(key="k-1")
    assert w.f.top_ups.rows == {top_up.id: top_up}
    assert {r.top_up_id for r in w.stripe.requests} == {top_up.id}  # the same idempotency key both times


async def test_provider_refusal_is_422() -> None:
    w = World()
    w.stripe.refuse = "parameter_invalid_integer"
    with pytest.raises(UseCaseError) as err:
        await w.top_up()
    assert (err.value.kind, err.value.code) == (ErrorKind.INVALID, "provider_refused")
    assert w.f.top_ups.rows == {}


# ---- credit once ----------------------------------------------------------------------------------------------


async def test_webhook_three_times_out_of_order_credits_once() -> None:
    w = World()
    top_up = await w.top_up()
    paid = w.event("paid", top_up)
    refund = w.event("refunded", top_up, adjustment_ref="re_1", amount={"asset": "USD", "amount": 4_000})
    # The refund first, then the payment delivered three times (three provider deliveries of one event).
    again = [w.event("paid", top_up, provider_event_id=paid.data.provider_event_id) for _ in range(2)]
    outcomes = await w.deliver(refund, paid, *again)
    assert outcomes == ["recorded", "applied", "duplicate", "duplicate"]
    assert w.wallet() == 6_000
    assert [e.amount.amount for e in w.f.outbox.of(TopUpCredited)] == [10_000]
    [adjusted] = w.f.outbox.of(TopUpAdjusted)
    assert (adjusted.debited, adjusted.receivable) == (4_000, 0)
    assert all(e.correlationid == top_up.id for e in w.f.outbox.events)
    credited = next(e for e in w.f.outbox.events if isinstance(e.data, TopUpCredited))
    assert credited.causationid == str(paid.id)
    clearing = w.f.ledger.of(accounts.provider_clearing("stripe", "USD"))
    assert (clearing.debits_posted, clearing.credits_posted) == (10_000, 4_000)
    assert await w.deliver(refund) == ["duplicate"]  # the refund's own redelivery


async def test_verify_credits_through_the_same_path_and_the_webhook_then_finds_it_credited() -> None:
    w = World()
    top_up = await w.top_up()
    assert (await w.verify(PLAYER, player_id="p-1", top_up_id=top_up.id)).status is TopUpStatus.CREATED
    w.stripe.pay(top_up.session_ref)
    verified = await w.verify(PLAYER, player_id="p-1", top_up_id=top_up.id)
    assert (verified.status, verified.payment_ref) == (TopUpStatus.CREDITED, "pi_test_1")
    assert await w.verify(PLAYER, player_id="p-1", top_up_id=top_up.id) == verified
    assert await w.deliver(w.event("paid", top_up, payment_ref="pi_test_1")) == ["duplicate"]
    assert w.wallet() == 10_000
    assert len(w.f.outbox.of(TopUpCredited)) == 1


async def test_webhook_first_then_verify_changes_nothing() -> None:
    w = World()
    top_up = await w.top_up()
    assert await w.deliver(w.event("paid", top_up)) == ["applied"]
    w.stripe.pay(top_up.session_ref)
    await w.verify(PLAYER, player_id="p-1", top_up_id=top_up.id)
    assert w.wallet() == 10_000
    assert len(w.f.outbox.of(TopUpCredited)) == 1


async def test_verify_of_another_players_top_up_is_not_found() -> None:
    w = World()
    top_up = await w.top_up()
    with pytest.raises(UseCaseError) as err:
        await w.verify(OTHER, player_id="p-1", top_up_id=top_up.id)
    assert err.value.code == "top_up_not_found"


async def test_an_expired_session_is_never_credited() -> None:
    w = World()
    top_up = await w.top_up()
    w.stripe.expire(top_up.session_ref)
    assert (await w.verify(PLAYER, player_id="p-1", top_up_id=top_up.id)).status is TopUpStatus.EXPIRED
    paid = w.event("paid", top_up)
    # Recorded for a person, once however often it is delivered; never credited, never a dead letter.
    assert await w.deliver(paid, paid) == ["contradiction", "contradiction"]
    assert w.wallet() == 0
    assert w.f.top_ups.rows[top_up.id].status is TopUpStatus.EXPIRED
    (kept,) = w.f.contradictions.rows
    assert (kept.subject, kept.aggregate_id, kept.state, kept.reported) == ("topup", top_up.id, "expired", "paid")


async def test_failed_then_expired_reports_are_stale_once_the_session_ended() -> None:
    w = World()
    top_up = await w.top_up()
    assert await w.deliver(w.event("failed", top_up, amount=None), w.event("expired", top_up, amount=None)) == [
        "applied",
        "stale",
    ]
    assert w.f.top_ups.rows[top_up.id].status is TopUpStatus.FAILED


# ---- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "verified"), [(WEBHOOKS, False), ("/prizeflow/payouts", True), ("/attacker", True)])
async def test_forged_or_unverified_events_are_refused_before_anything_is_recorded(source: str, verified: bool) -> None:
    w = World()
    top_up = await w.top_up()
    env = w.event("paid", top_up, source=source, verified=verified)
    with pytest.raises(EventRefusal) as err:
        await w.deliver(env)
    assert err.value.reason == "unverified_provider_event"
    assert w.f.top_ups.rows[top_up.id].status is TopUpStatus.CREATED
    assert w.wallet() == 0
    assert w.f.outbox.events == []


async def test_amount_or_currency_mismatch_is_refused() -> None:
    w = World()
    top_up = await w.top_up()
    for amount in ({"asset": "USD", "amount": 9_999}, {"asset": "INR", "amount": 10_000}):
        with pytest.raises(EventRefusal) as err:
            await w.deliver(w.event("paid", top_up, amount=amount))
        assert err.value.reason == "amount_mismatch"
    assert w.wallet() == 0


async def test_refunds_can_never_take_back_more_than_was_paid() -> None:
    w = World()
    top_up = await w.top_up()
    await w.deliver(w.event("paid", top_up))
    await w.deliver(w.event("refunded", top_up, adjustment_ref="re_1", amount={"asset": "USD", "amount": 6_000}))
    with pytest.raises(EventRefusal) as err:
        await w.deliver(w.event("disputed", top_up, adjustment_ref="dp_1", amount={"asset": "USD", "amount": 5_000}))
    assert err.value.reason == "amount_mismatch"


async def test_unknown_payment_is_refused_for_a_redrive() -> None:
    w = World()
    top_up = await w.top_up()
    env = w.event(
        "refunded",
        top_up,
        top_up_id=None,
        session_ref=None,
        payment_ref="pi_unknown",
        adjustment_ref="re_9",
        amount={"asset": "USD", "amount": 1},
    )
    with pytest.raises(EventRefusal) as err:
        await w.deliver(env)
    assert err.value.reason == "unknown_aggregate"


async def test_payouts_provider_events_are_ignored() -> None:
    w = World()
    env = new_event(example_payload(ProviderEventReceived), source=WEBHOOKS, correlation_id="c-1")
    assert await w.deliver(env) == ["ignored"]
    assert w.f.outbox.events == []


async def test_payouts_verification_events_are_ignored() -> None:
    w = World()
    env = new_event(example_payload(VerificationEventReceived), source=WEBHOOKS, correlation_id="c-1")
    assert await w.deliver(env) == ["ignored"]
    assert w.f.outbox.events == []


# ---- refunds and disputes -------------------------------------------------------------------------------------


async def test_a_refund_the_wallet_cannot_cover_becomes_a_receivable_never_a_negative_balance() -> None:
    w = World()
    top_up = await w.top_up()
    await w.deliver(w.event("paid", top_up))
    await w.spend(7_000)  # entry fees: 3_000 left
    refund = w.event("refunded", top_up, adjustment_ref="re_1", amount={"asset": "USD", "amount": 10_000})
    assert await w.deliver(refund) == ["applied"]
    assert (w.wallet(), w.owed()) == (0, 7_000)
    [adjusted] = w.f.outbox.of(TopUpAdjusted)
    assert (adjusted.debited, adjusted.receivable, adjusted.credited) == (3_000, 7_000, 0)


async def test_a_dispute_won_gives_back_first_what_the_player_was_made_to_owe() -> None:
    w = World()
    top_up = await w.top_up()
    await w.deliver(w.event("paid", top_up))
    await w.spend(6_000)
    dispute: dict[str, Any] = {"adjustment_ref": "dp_1", "amount": {"asset": "USD", "amount": 10_000}}
    assert await w.deliver(w.event("disputed", top_up, **dispute)) == ["applied"]
    assert (w.wallet(), w.owed()) == (0, 6_000)
    assert await w.deliver(w.event("dispute_won", top_up, **dispute)) == ["applied"]
    assert (w.wallet(), w.owed()) == (4_000, 0)
    won = w.f.outbox.of(TopUpAdjusted)[-1]
    assert (won.kind.value, won.debited, won.receivable, won.credited) == ("dispute_won", 0, 6_000, 4_000)


async def test_a_dispute_won_reported_before_its_dispute_waits_for_it() -> None:
    w = World()
    top_up = await w.top_up()
    dispute: dict[str, Any] = {"adjustment_ref": "dp_1", "amount": {"asset": "USD", "amount": 10_000}}
    outcomes = await w.deliver(
        w.event("dispute_won", top_up, **dispute), w.event("disputed", top_up, **dispute), w.event("paid", top_up)
    )
    assert outcomes == ["recorded", "recorded", "applied"]
    assert (w.wallet(), w.owed()) == (10_000, 0)
    kinds = [(a.kind.value, a.debited, a.receivable, a.credited) for a in w.f.outbox.of(TopUpAdjusted)]
    assert kinds == [("dispute", 10_000, 0, 0), ("dispute_won", 0, 0, 10_000)]


async def test_a_refund_that_fails_gives_back_what_it_took_once() -> None:
    """A refund Stripe reported pending debited the wallet; it then failed, so the money never left: the player
    gets back exactly what the refund took (first what it made them owe, then the wallet), once."""
    w = World()
    top_up = await w.top_up()
    await w.deliver(w.event("paid", top_up))
    await w.spend(6_000)
    refund: dict[str, Any] = {"adjustment_ref": "re_1", "amount": {"asset": "USD", "amount": 10_000}}
    assert await w.deliver(w.event("refunded", top_up, **refund)) == ["applied"]
    assert (w.wallet(), w.owed()) == (0, 6_000)
    failed = w.event("refund_failed", top_up, **refund)
    assert await w.deliver(failed, failed) == ["applied", "duplicate"]
    assert (w.wallet(), w.owed()) == (4_000, 0)
    undone = w.f.outbox.of(TopUpAdjusted)[-1]
    assert (undone.kind.value, undone.debited, undone.receivable, undone.credited) == ("refund_failed", 0, 6_000, 4_000)
    # and the top-up can be refunded again for real: the failed refund no longer counts as taken back
    again = w.event("refunded", top_up, adjustment_ref="re_2", amount={"asset": "USD", "amount": 10_000})
    assert await w.deliver(again) == ["applied"]


async def test_a_refund_failure_reported_first_waits_and_never_gives_back_more_than_the_refund() -> None:
    w = World()
    top_up = await w.top_up()
    refund: dict[str, Any] = {"adjustment_ref": "re_1", "amount": {"asset": "USD", "amount": 3_000}}
    outcomes = await w.deliver(
        w.event("refund_failed", top_up, **refund), w.event("paid", top_up), w.event("refunded", top_up, **refund)
    )
    assert outcomes == ["recorded", "applied", "applied"]
    assert (w.wallet(), w.owed()) == (10_000, 0)
    kinds = [(a.kind.value, a.debited, a.receivable, a.credited) for a in w.f.outbox.of(TopUpAdjusted)]
    assert kinds == [("refund", 3_000, 0, 0), ("refund_failed", 0, 0, 3_000)]
    bigger = w.event("refund_failed", top_up, adjustment_ref="re_9", amount={"asset": "USD", "amount": 500})
    assert await w.deliver(bigger) == ["recorded"]  # no refund re_9: nothing given back, nothing made room for
    assert w.wallet() == 10_000
    with pytest.raises(EventRefusal):  # a refund smaller than the failure already recorded for it
        await w.deliver(w.event("refunded", top_up, adjustment_ref="re_9", amount={"asset": "USD", "amount": 400}))
    assert w.wallet() == 10_000


# ---- the money rules, property-tested -------------------------------------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("paid"), st.just(0)),
        st.tuples(st.sampled_from(["refunded", "disputed"]), st.integers(1, 6_000)),
        st.tuples(st.sampled_from(["dispute_won", "refund_failed"]), st.integers(0, 5)),
        st.tuples(st.just("spend"), st.integers(1, 8_000)),
        st.tuples(st.just("redeliver"), st.integers(0, 10)),
    ),
    max_size=14,
)


@settings(max_examples=150, deadline=None)
@given(_OPS)
def test_wallet_never_negative_and_every_movement_balances(ops: list[tuple[str, int]]) -> None:
    asyncio.run(_scenario(ops))


async def _scenario(ops: list[tuple[str, int]]) -> None:
    w = World()
    top_up = await w.top_up(10_000)
    delivered: list[Envelope[Any]] = []
    disputes: list[tuple[str, int]] = []
    refunds: list[tuple[str, int]] = []
    for op, n in ops:
        env: Envelope[Any] | None = None
        if op == "paid":
            env = w.event("paid", top_up)
        elif op in {"refunded", "disputed"}:
            ref = f"{'re' if op == 'refunded' else 'dp'}_{uuid.uuid4().hex[:8]}"
            env = w.event(op, top_up, adjustment_ref=ref, amount={"asset": "USD", "amount": n})
            (disputes if op == "disputed" else refunds).append((ref, n))
        elif op in {"dispute_won", "refund_failed"} and (reversible := disputes if op == "dispute_won" else refunds):
            ref, amount = reversible[n % len(reversible)]
            env = w.event(op, top_up, adjustment_ref=ref, amount={"asset": "USD", "amount": amount})
        elif op == "spend":
            if 0 < n <= w.wallet():
                await w.spend(n)
        elif op == "redeliver" and delivered:
            env = delivered[n % len(delivered)]
        if env is None:
            continue
        try:
            await w.deliver(env)
        except EventRefusal as refusal:  # more taken back than was paid: refused whole, nothing moved
            refused = refusal.reason
            assert refused == "amount_mismatch"
            continue
        delivered.append(env)
        assert w.wallet() >= 0
        assert w.owed() >= 0
    ledger = w.f.ledger
    credited = sum(t.amount for t in ledger.transfers.values() if t.kind is TransferKind.TOP_UP_CREDIT)
    debited = sum(t.amount for t in ledger.transfers.values() if t.kind is TransferKind.TOP_UP_DEBIT)
    receivable = sum(t.amount for t in ledger.transfers.values() if t.kind is TransferKind.TOP_UP_RECEIVABLE)
    reinstated = sum(t.amount for t in ledger.transfers.values() if t.kind is TransferKind.TOP_UP_REINSTATE)
    spent = sum(t.amount for t in ledger.transfers.values() if t.kind is TransferKind.ENTRY_FEE)
    clearing = ledger.of(accounts.provider_clearing("stripe", "USD"))
    # What the provider holds for us = credited - debited - receivable (+ what disputes won brought back).
    assert clearing.debits_posted - clearing.credits_posted == credited - debited - receivable + reinstated
    assert credited in {0, 10_000}
    assert w.wallet() == credited - debited - spent + sum(
        t.amount
        for t in ledger.transfers.values()
        if t.kind is TransferKind.TOP_UP_REINSTATE and t.credit.kind is AccountKind.PLAYER_WALLET
    )
    adjustments = list(await w.f.top_ups.adjustments(top_up.id))
    applied = [a for a in adjustments if a.status.value == "applied"]
    assert all(a.debited + a.receivable + a.credited == a.amount for a in applied)
    assert sum(a.debited for a in applied) == debited
    assert sum(a.receivable for a in applied if a.kind not in REVERSES) == receivable
    assert w.owed() == receivable - sum(a.receivable for a in applied if a.kind in REVERSES)
    if credited == 0:  # nothing applied before the payment: recorded, waiting
        assert applied == []
    total = sum(b.posted for b in ledger.balance.values())
    assert total == 0  # double entry: every account's balances sum to zero


# ---- adversarial (issue 16 review) ------------------------------------------------------------------------------


async def test_a_payment_of_another_checkout_session_naming_our_top_up_credits_nothing() -> None:
    """A paid checkout the player ran elsewhere (their own Stripe account, paying themselves) whose
    client_reference_id names their open Prizeflow top-up: the top-up's own session was never paid."""
    w = World()
    top_up = await w.top_up()
    with pytest.raises(EventRefusal) as err:
        await w.deliver(w.event("paid", top_up, session_ref="cs_elsewhere", payment_ref="pi_elsewhere"))
    assert err.value.reason == "conflicting_event"
    assert w.wallet() == 0
    assert w.f.outbox.of(TopUpCredited) == []


async def test_a_refund_of_another_payment_naming_a_credited_top_up_debits_nothing() -> None:
    w = World()
    victim = await w.top_up()
    await w.deliver(w.event("paid", victim))  # paid with pi_1
    refund = w.event(
        "refunded",
        victim,
        session_ref=None,
        payment_ref="pi_of_someone_else",
        adjustment_ref="re_x",
        amount={"asset": "USD", "amount": 10_000},
    )
    with pytest.raises(EventRefusal) as err:
        await w.deliver(refund)
    assert err.value.reason == "conflicting_event"
    assert w.wallet() == 10_000


async def test_a_dispute_won_without_its_dispute_does_not_make_room_for_more_refunds() -> None:
    """Refunds and disputes never take back more than was paid; a dispute won that waits for a dispute which never
    came has given nothing back yet, so it cannot offset a refund."""
    w = World()
    top_up = await w.top_up()
    await w.deliver(w.event("paid", top_up))
    won: dict[str, Any] = {"adjustment_ref": "dp_never", "amount": {"asset": "USD", "amount": 10_000}}
    assert await w.deliver(w.event("dispute_won", top_up, **won)) == ["recorded"]
    full: dict[str, Any] = {"amount": {"asset": "USD", "amount": 10_000}}
    assert await w.deliver(w.event("refunded", top_up, adjustment_ref="re_1", **full)) == ["applied"]
    with pytest.raises(EventRefusal) as err:
        await w.deliver(w.event("refunded", top_up, adjustment_ref="re_2", **full))
    assert err.value.reason == "amount_mismatch"
    assert (w.wallet(), w.owed()) == (0, 0)


async def test_one_players_request_key_never_names_another_players_top_up() -> None:
    """Player ids and request keys may both hold `:`: ("p-1", "x:k") and ("p-1:x", "k") are two requests, not
    one id (which answered the second player 409 idempotency_key_reused, telling them the other's key exists)."""
    w = World()
    colon = Principal("p-1:x", frozenset({Role.PLAYER}))
    theirs = await w.top_up(key="k", player=colon)
    mine = await w.top_up(key="x:k")
    assert mine.id != theirs.id
    assert (mine.player_id, theirs.player_id) == ("p-1", "p-1:x")
    # Ids of players without `:` are what they always were: a retry across the change finds its session.
    assert top_up_id_for("p-1", "x:k") == "tu-" + str(uuid.uuid5(uuid.NAMESPACE_URL, "prizeflow:top-up:p-1:x:k"))
