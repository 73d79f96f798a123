"""Currency conversion at claim time (ADR 0015): the rounding rule, the legs a paid or returned conversion books, when
a quote holds, and the claim use cases with a quote on fakes. The rule is property-tested: every conversion's legs
sum to zero per currency, the spread lands in revenue exactly as the rule says, a whole return gives the wallet back
exactly what it gave."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from rewards_fakes import Fakes

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.payouts import PayoutPaid, PayoutRequested, PayoutReturned
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination, ProviderType
from prizeflow_rewards.application.claims import Claim, ClaimPolicy, SettlePayout, SubmitClaim
from prizeflow_rewards.application.fx import FxDesk, FxError, IssueQuote, ReconcileFx, WatchRates, requotes
from prizeflow_rewards.application.ports import FxPosition, MarketRate, RatesUnavailableError
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import ClaimStatus, reservation
from prizeflow_rewards.domain.fx import (
    Conversion,
    Pair,
    Quote,
    QuoteRefusal,
    check,
    convert,
    fx_account,
    paid_legs,
    returned_legs,
    spread_revenue,
)
from prizeflow_rewards.domain.ledger import Transfer, TransferKind, deltas, post_of
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.errors import ErrorKind
from prizeflow_testkit.events import example_payload

USD_INR = Pair("USD", "INR")
USDC_INR = Pair("USDC", "INR")
PLAYER = Principal("p-1", frozenset({Role.PLAYER}))
DEST = PayoutDestination(type=DestinationType.SANDBOX, address="success:p-1")
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


# -- the rule ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pair", "amount", "bps", "rate", "spread", "net", "target"),
    [
        # 100.00 USD at 83.4125 less 1.5 %: 1.50 USD to revenue, 98.50 USD sold, 8216.13125 INR floored to paise.
        (USD_INR, 10_000, 150, "83.4125", 150, 9_850, 821_613),
        # The same in USDC (7 places): the shift is 10^-5, the rupees the same.
        (USDC_INR, 1_000_000_000, 150, "83.4125", 15_000_000, 985_000_000, 821_613),
        # The spread rounds up: 1.01 USD at 1 bp is a whole cent of spread, not 0.0101 of one.
        (USD_INR, 101, 1, "83.4125", 1, 100, 8_341),
        (USD_INR, 10_000, 0, "83.4125", 0, 10_000, 834_125),
        (Pair("INR", "USD"), 834_125, 150, "0.011989", 12_512, 821_613, 9_850),
    ],
)
def test_a_conversion_follows_the_stated_rule(
    pair: Pair, amount: int, bps: int, rate: str, spread: int, net: int, target: int
) -> None:
    terms = convert(pair, amount, Decimal(rate), bps)
    assert (terms.spread, terms.net, terms.target_amount) == (spread, net, target)


@pytest.mark.parametrize(
    ("amount", "bps", "rate"),
    [(0, 150, "83.4"), (1, 9_999, "83.4"), (1, 0, "0.001"), (100, 10_000, "83.4"), (100, 0, "0"), (100, 0, "1e-13")],
)
def test_a_conversion_that_pays_nothing_or_is_out_of_range_is_refused(amount: int, bps: int, rate: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        convert(USD_INR, amount, Decimal(rate), bps)


rates = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(100_000), places=6)
pairs = st.sampled_from([USD_INR, USDC_INR, Pair("INR", "USD"), Pair("USDC", "USD"), Pair("USD", "XTR")])


def per_asset(transfers: list[Transfer]) -> dict[str, int]:
    """Each asset's sum of every account's posted balance change: zero for a balanced booking."""
    out: dict[str, int] = defaultdict(int)
    accounts_of = {t.debit.id: t.debit for t in transfers} | {t.credit.id: t.credit for t in transfers}
    for account_id, d in deltas(transfers).items():
        out[accounts_of[account_id].asset] += (d.credits_posted - d.debits_posted) + (
            d.credits_pending - d.debits_pending
        )
    return dict(out)


def moved(transfers: list[Transfer]) -> dict[object, int]:
    """Each account's posted balance change (credits - debits)."""
    out: dict[object, int] = defaultdict(int)
    for t in transfers:
        if t.flags & 1:  # pending: no posted move
            continue
        out[t.credit] += t.amount
        out[t.debit] -= t.amount
    return {k: v for k, v in out.items() if v}


@settings(max_examples=400, deadline=None)
@given(
    pair=pairs,
    amount=st.integers(min_value=1, max_value=10**15),
    bps=st.integers(min_value=0, max_value=9_999),
    rate=rates,
    returned_share=st.integers(min_value=1, max_value=100),
)
def test_every_conversion_balances_per_currency_with_the_spread_where_the_rule_puts_it(
    pair: Pair, amount: int, bps: int, rate: Decimal, returned_share: int
) -> None:
    try:
        terms = convert(pair, amount, rate, bps)
    except ValueError:
        return  # pays nothing: no quote, nothing booked
    # The rule, exactly: the spread is the ceiling of the stated share, the target the floor of the net's worth.
    assert terms.spread * 10_000 >= amount * bps > (terms.spread - 1) * 10_000
    assert terms.spread + terms.net == amount
    exact = Decimal(terms.net) * rate * Decimal(10) ** (ASSETS[pair.target].scale - ASSETS[pair.source].scale)
    assert terms.target_amount <= exact < terms.target_amount + 1
    assert terms.target_amount > 0

    conversion = Conversion("fxq-1", pair.source, pair.target, terms.target_amount, terms.spread, rate)
    pending = reservation("cl-1", "p-1", pair.source, amount)
    paid = [
        post_of(pending),
        *paid_legs("cl-1", amount, conversion, "sandbox", correlation_id=None, clearing=pending.credit),
    ]
    assert set(per_asset([pending, *paid]).values()) == {0}
    wallet, rail = accounts.wallet("p-1", pair.source), accounts.external("sandbox", pair.target)
    assert moved(paid) == {
        wallet: -amount,
        fx_account(pair.source): terms.net,
        **({spread_revenue(pair.source): terms.spread} if terms.spread else {}),
        fx_account(pair.target): -terms.target_amount,
        rail: terms.target_amount,
    }

    whole = returned_legs(
        "cl-1",
        player_id="p-1",
        source_amount=amount,
        conversion=conversion,
        returned=terms.target_amount,
        provider="sandbox",
        correlation_id=None,
    )
    assert set(per_asset(whole).values()) == {0}
    assert moved(paid + whole) == {}  # a whole return undoes the conversion: the wallet has all it gave back

    returned = max(1, terms.target_amount * returned_share // 100)
    part = returned_legs(
        "cl-1",
        player_id="p-1",
        source_amount=amount,
        conversion=conversion,
        returned=returned,
        provider="sandbox",
        correlation_id=None,
    )
    assert set(per_asset(part).values()) == {0}
    back = moved(paid + part).get(wallet, 0) + amount
    expected = amount if returned == terms.target_amount else terms.net * returned // terms.target_amount
    assert back == expected


# -- when a quote holds -----------------------------------------------------------------------------------------------
def a_quote(*, claim_id: str | None = None, player: str = "p-1", amount: int = 10_000) -> Quote:
    terms = convert(USD_INR, amount, Decimal("83.4125"), 150)
    return Quote("fxq-1", player, terms, T0, T0, T0 + timedelta(seconds=60), claim_id)


@pytest.mark.parametrize(
    ("quote", "kw", "refusal"),
    [
        (None, {}, QuoteRefusal.QUOTE_UNKNOWN),
        (a_quote(player="p-2"), {}, QuoteRefusal.QUOTE_UNKNOWN),
        (a_quote(claim_id="cl-other"), {}, QuoteRefusal.QUOTE_USED),
        (a_quote(), {"amount": 9_999}, QuoteRefusal.QUOTE_MISMATCH),
        (a_quote(), {"asset": "USDC"}, QuoteRefusal.QUOTE_MISMATCH),
        (a_quote(), {"now": T0 + timedelta(seconds=60)}, QuoteRefusal.QUOTE_EXPIRED),
        (a_quote(), {"market": Decimal("83.8300")}, QuoteRefusal.QUOTE_MOVED),  # 50.05 bp
        (a_quote(), {"market": None}, QuoteRefusal.QUOTE_MOVED),  # no market rate: fail closed
        (a_quote(), {"market": Decimal("83.8295")}, None),  # 49.99 bp
        (a_quote(), {"now": T0 + timedelta(seconds=59)}, None),
        (a_quote(claim_id="cl-1"), {"now": T0 + timedelta(hours=1)}, None),  # its own claim again
    ],
)
def test_a_quote_holds_for_its_player_asset_and_amount_until_it_expires_or_the_market_moves(
    quote: Quote | None, kw: dict[str, object], refusal: QuoteRefusal | None
) -> None:
    args: dict[str, object] = {
        "claim_id": "cl-1",
        "player_id": "p-1",
        "asset": "USD",
        "amount": 10_000,
        "market": Decimal("83.4125"),
        "max_move_bps": 50,
        "now": T0,
    } | kw
    assert check(quote, **args) is refusal  # type: ignore[arg-type]


# -- the use cases on fakes -------------------------------------------------------------------------------------------
def outcome(payload: EventPayload) -> Envelope[EventPayload]:
    return new_event(payload, source="/payouts", correlation_id="c")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Rates:
    def __init__(self, rate: str = "83.4125") -> None:
        self.rate, self.published, self.down = Decimal(rate), T0, False

    async def latest(self, base: str, symbol: str) -> MarketRate:
        if self.down:
            raise RatesUnavailableError("HTTP 502")
        assert (base, symbol) == ("USD", "INR")
        return MarketRate(base, symbol, self.rate, self.published)


class World:
    def __init__(self) -> None:
        self.f = Fakes()
        self.f.routes.routes = {("INR", "sandbox", "sandbox")}
        self.clock, self.rates = Clock(), Rates()
        desk = FxDesk({USD_INR: 150, USDC_INR: 150}, quote_ttl_s=60, max_rate_age_s=900, max_move_bps=50)
        self.issue = IssueQuote(self.f.uow, self.rates, desk, clock=self.clock)
        policy = ClaimPolicy(min_claim={"USD": 1}, daily_limit={}, review_threshold={}, new_destination_cooldown_s=0)
        self.submit = SubmitClaim(policy, "/test", clock=self.clock)

    async def fund(self, amount: int) -> None:
        t = Transfer.of(
            accounts.external("stripe", "USD"), accounts.wallet("p-1", "USD"), amount, TransferKind.TOP_UP, "fund"
        )
        await self.f.ledger.apply([t])

    async def claim(self, quote_id: str, *, amount: int = 10_000, key: str = "k-1") -> tuple[Claim, bool]:
        return await self.submit(
            self.f.books,
            PLAYER,
            player_id="p-1",
            asset="USD",
            amount=amount,
            destination=DEST,
            idempotency_key=key,
            quote_id=quote_id,
            market=self.rates.rate,
        )


async def test_a_claim_with_a_quote_locks_it_and_asks_payouts_for_rupees() -> None:
    w = World()
    await w.fund(20_000)
    quote = await w.issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    assert (quote.terms.target_amount, quote.terms.spread, quote.expires_at) == (
        821_613,
        150,
        T0 + timedelta(seconds=60),
    )
    claim, created = await w.claim(quote.id)
    assert created
    assert w.f.fx.quotes[quote.id].claim_id == claim.id
    [requested] = w.f.outbox.of(PayoutRequested)
    assert requested.amount == Money(asset="INR", amount=821_613)
    assert requested.conversion is not None
    assert (requested.conversion.source, requested.conversion.spread, requested.conversion.rate) == (
        Money(asset="USD", amount=10_000),
        Money(asset="USD", amount=150),
        "83.4125",
    )
    # The reservation is in dollars, as any claim's: the wallet gave 100.00 USD, nothing converted yet.
    assert w.f.ledger.of(accounts.wallet("p-1", "USD")).debits_pending == 10_000
    again, created = await w.claim(quote.id)  # the same request again: the same claim, the quote still its
    assert (again, created) == (claim, False)


async def test_a_quote_backs_one_claim_and_an_expired_or_moved_one_is_refused_naming_the_field() -> None:
    w = World()
    await w.fund(50_000)
    quote = await w.issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    await w.claim(quote.id)
    with pytest.raises(FxError) as used:
        await w.claim(quote.id, key="k-2")
    assert (used.value.kind, used.value.code) == (ErrorKind.CONFLICT, "quote_used")
    assert used.value.extra["errors"][0]["key"] == "quote_id"

    late = await w.issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    w.clock.now += timedelta(seconds=60)
    with pytest.raises(FxError) as expired:
        await w.claim(late.id, key="k-3")
    assert (expired.value.code, requotes(expired.value)) == ("quote_expired", True)

    fresh = await w.issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    w.rates.rate = Decimal("84.0000")  # 70 bp
    with pytest.raises(FxError) as moved_:
        await w.claim(fresh.id, key="k-4")
    assert (moved_.value.code, requotes(moved_.value)) == ("quote_moved", True)
    assert w.f.ledger.of(accounts.wallet("p-1", "USD")).debits_pending == 10_000  # only the first claim reserved


async def test_no_quote_from_a_stale_or_unreachable_provider_or_for_a_pair_not_enabled() -> None:
    w = World()
    with pytest.raises(FxError) as pair:
        await w.issue(PLAYER, "p-1", source="USD", target="XLM", amount=100)
    assert (pair.value.code, pair.value.extra["errors"][0]["key"]) == ("pair_not_enabled", "target_asset")
    w.clock.now += timedelta(seconds=901)
    with pytest.raises(FxError) as stale:
        await w.issue(PLAYER, "p-1", source="USD", target="INR", amount=100)
    assert (stale.value.kind, stale.value.code) == (ErrorKind.UNAVAILABLE, "rate_stale")
    w.rates.down = True
    with pytest.raises(FxError) as down:
        await w.issue(PLAYER, "p-1", source="USD", target="INR", amount=100)
    assert (down.value.kind, down.value.code) == (ErrorKind.UNAVAILABLE, "rates_unavailable")
    assert w.f.fx.quotes == {}


async def test_a_paid_converted_claim_books_both_legs_and_a_whole_return_gives_the_dollars_back_once() -> None:
    w = World()
    await w.fund(10_000)
    quote = await w.issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    claim, _ = await w.claim(quote.id)
    settle = SettlePayout()
    common = {
        "claim_id": claim.id,
        "payout_request_id": claim.payout_request_id,
        "idempotency_key": f"{claim.id}:payout",
        "amount": Money(asset="INR", amount=821_613),
        "provider": ProviderType.SANDBOX,
    }
    paid = outcome(example_payload(PayoutPaid, **common))
    await settle.handle(w.f.books, paid)
    ledger = w.f.ledger
    assert ledger.of(accounts.wallet("p-1", "USD")).posted == 0
    assert ledger.of(fx_account("USD")).posted == 9_850
    assert ledger.of(spread_revenue("USD")).posted == 150
    assert ledger.of(fx_account("INR")).posted == -821_613
    assert ledger.of(accounts.external("sandbox", "INR")).posted == 821_613
    assert ledger.of(accounts.clearing("USD")).posted == 0
    assert w.f.claims.rows[claim.id].claim.status is ClaimStatus.PAID

    back = example_payload(PayoutReturned, **common, returned_amount=Money(asset="INR", amount=821_613))
    returned = outcome(back)
    await settle.handle(w.f.books, returned)
    await settle.handle(w.f.books, returned)  # a redelivery moves nothing
    assert ledger.of(accounts.wallet("p-1", "USD")).posted == 10_000
    assert [ledger.of(a).posted for a in (fx_account("USD"), fx_account("INR"), spread_revenue("USD"))] == [0, 0, 0]


async def test_a_payout_event_in_the_source_asset_does_not_settle_a_converted_claim() -> None:
    w = World()
    await w.fund(10_000)
    quote = await w.issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    claim, _ = await w.claim(quote.id)
    paid = example_payload(
        PayoutPaid,
        claim_id=claim.id,
        amount=Money(asset="USD", amount=10_000),
        provider=ProviderType.SANDBOX,
    )
    with pytest.raises(Exception, match="does not match"):
        await SettlePayout().handle(w.f.books, outcome(paid))


async def test_the_daily_reconciliation_records_each_position_and_its_difference() -> None:
    w = World()
    w.f.fx.positions_now = [FxPosition("INR", -821_613, -821_613, 0), FxPosition("USD", 9_851, 9_850, 0)]
    positions = await ReconcileFx(w.f.uow, clock=lambda: T0)()
    assert [p.difference for p in positions] == [0, 1]
    runs = await w.f.fx.reconciliations(limit=10)
    assert [(r.day, r.asset, r.difference) for r in runs] == [(T0.date(), "USD", 1), (T0.date(), "INR", 0)]


async def test_the_rates_watch_shows_each_pairs_publication_time_and_counts_failures() -> None:
    w = World()
    metrics = RewardsMetrics.create(CollectorRegistry())
    desk = FxDesk({USD_INR: 150})
    watch = WatchRates(w.rates, desk, metrics, clock=w.clock)
    assert await watch.tick()
    assert metrics.fx_rate_timestamp.labels("USD/INR")._value.get() == T0.timestamp()
    w.rates.down = True
    assert await watch.tick()  # a failure is counted and logged, never raised out of the job
    assert metrics.fx_rate_failures._value.get() == 1
    assert metrics.fx_rate_timestamp.labels("USD/INR")._value.get() == T0.timestamp()  # stays: the alert sees it age


def test_a_tiny_rate_is_written_as_a_plain_decimal_in_the_payout_request() -> None:
    terms = convert(Pair("XTR", "USDC"), 10**9, Decimal("1E-7"), 0)
    quote = Quote("fxq-1", "p-1", terms, T0, T0, T0 + timedelta(seconds=60))
    assert quote.view()["rate"] == "0.0000001"
