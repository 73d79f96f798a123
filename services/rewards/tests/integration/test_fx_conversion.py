"""Currency conversion at claim time on real PostgreSQL (and, through HTTP, Kafka and the Open Exchange Rates-shaped
rates emulator as a process): a quote is locked once by the claim that takes it, in the intake batch's transaction;
an expired or moved quote is refused with problem details naming `quote_id` and carrying a new quote, writing
nothing; a paid conversion books its two legs through the FX accounts with the spread to revenue, the FX accounts
reconcile and show in the ledger CSV; the database holds the invariants whatever the code does."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy.exc
from rewards_sql import bind, sql_uow
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.payouts import PayoutPaid, PayoutRequested, PayoutRoute
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination, ProviderType
from prizeflow_contracts.topics import PAYOUT_REQUESTS
from prizeflow_rewards.adapters.rates_oxr import OxrRatesProvider
from prizeflow_rewards.adapters.routes_pg import publish_routes
from prizeflow_rewards.application.claims import ClaimPolicy, SettlePayout, SubmitClaim
from prizeflow_rewards.application.fx import FxDesk, FxError, IssueQuote, ReconcileFx
from prizeflow_rewards.application.ports import MarketRate, RatesUnavailableError
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.fx import Pair, fx_account, spread_revenue
from prizeflow_rewards.domain.ledger import AccountRef, Transfer, TransferKind
from prizeflow_runtime.auth import Principal, Role
from prizeflow_testkit.events import example_payload
from prizeflow_testkit.rates import RatesEmulator, rates_emulator
from prizeflow_testkit.rewards import ROUTES, routes_event, running_app, settings_for

pytestmark = pytest.mark.integration

PLAYER = Principal("p-1", frozenset({Role.PLAYER}))
DEST = PayoutDestination(type=DestinationType.SANDBOX, address="success:p-1")
INR_SANDBOX = PayoutRoute(asset="INR", destination_type=DestinationType.SANDBOX, provider=ProviderType.SANDBOX)
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
POLICY = ClaimPolicy(
    min_claim={"USD": 1}, daily_limit={}, review_threshold={}, velocity_max_claims=1_000, new_destination_cooldown_s=0
)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RatesEmulator]:
    with rates_emulator(tmp_path / "rates.log", env={"RATES_EMULATOR_RATES": "INR:83.4125"}) as em:
        yield em


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FixedRate:
    """A provider that always publishes 83.4125 INR per USD at T0 (the emulator is the real adapter's, over HTTP)."""

    async def latest(self, base: str, symbol: str) -> MarketRate:
        return MarketRate(base, symbol, Decimal("83.4125"), T0)


async def fund(engine: AsyncEngine, amount: int) -> None:
    async with engine.begin() as conn:
        await bind(conn, strict=True).ledger.apply(
            [
                Transfer.of(
                    accounts.external("stripe", "USD"), accounts.wallet("p-1", "USD"), amount, TransferKind.TOP_UP, "f"
                )
            ]
        )
        await publish_routes(conn, routes_event([*ROUTES, INR_SANDBOX]).data)


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> object:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def posted(engine: AsyncEngine, ref: AccountRef) -> int:
    async with sql_uow(engine)() as books:
        balances = await books.ledger.balances([ref])
    return balances[ref].posted if ref in balances else 0


def world(engine: AsyncEngine) -> tuple[Clock, IssueQuote, SubmitClaim]:
    clock = Clock()
    desk = FxDesk({Pair("USD", "INR"): 150}, quote_ttl_s=60, max_rate_age_s=900, max_move_bps=50)
    return clock, IssueQuote(sql_uow(engine), FixedRate(), desk, clock=clock), SubmitClaim(POLICY, "/t", clock=clock)


async def test_an_expired_quote_is_refused_and_writes_nothing_and_a_quote_is_locked_once(engine: AsyncEngine) -> None:
    await fund(engine, 30_000)
    clock, issue, submit = world(engine)
    uow = sql_uow(engine)

    async def claim(quote_id: str, key: str) -> object:
        return await uow.run(
            lambda books: submit(
                books,
                PLAYER,
                player_id="p-1",
                asset="USD",
                amount=10_000,
                destination=DEST,
                idempotency_key=key,
                quote_id=quote_id,
                market=Decimal("83.4125"),
            )
        )

    late = await issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    clock.now += timedelta(seconds=60)
    with pytest.raises(FxError) as expired:
        await claim(late.id, "k-1")
    assert (expired.value.code, expired.value.extra["errors"][0]["key"]) == ("quote_expired", "quote_id")
    assert await scalar(engine, "SELECT count(*) FROM claims") == 0
    assert await scalar(engine, "SELECT claim_id FROM fx_quotes WHERE id = :q", q=late.id) is None

    quote = await issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    claim_id = (await claim(quote.id, "k-2"))[0].id  # type: ignore[index]
    assert await scalar(engine, "SELECT claim_id FROM fx_quotes WHERE id = :q", q=quote.id) == claim_id
    row = await scalar(
        engine,
        "SELECT row(quote_id, payout_asset, payout_amount, fx_spread, fx_rate)::text FROM claims WHERE id = :c",
        c=claim_id,
    )
    assert row == f"({quote.id},INR,821613,150,83.4125)"
    with pytest.raises(FxError) as used:
        await claim(quote.id, "k-3")
    assert used.value.code == "quote_used"
    assert await scalar(engine, "SELECT count(*) FROM claims") == 1


async def test_a_paid_conversion_books_two_legs_through_the_fx_accounts_and_they_reconcile(engine: AsyncEngine) -> None:
    await fund(engine, 10_000)
    _, issue, submit = world(engine)
    uow = sql_uow(engine)
    quote = await issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    claim, _ = await uow.run(
        lambda books: submit(
            books,
            PLAYER,
            player_id="p-1",
            asset="USD",
            amount=10_000,
            destination=DEST,
            quote_id=quote.id,
            market=Decimal("83.4125"),
        )
    )
    paid = example_payload(
        PayoutPaid,
        claim_id=claim.id,
        payout_request_id=claim.payout_request_id,
        idempotency_key=f"{claim.id}:payout",
        amount=Money(asset="INR", amount=821_613),
        provider=ProviderType.SANDBOX,
    )
    env: Envelope[EventPayload] = new_event(paid, source="/prizeflow/payouts", correlation_id=claim.correlation_id)
    settle = SettlePayout()
    for _ in range(2):  # a redelivery books nothing more
        await uow.run(lambda books: settle.settle_many(books, [env]))
    assert await posted(engine, accounts.wallet("p-1", "USD")) == 0
    assert await posted(engine, fx_account("USD")) == 9_850
    assert await posted(engine, spread_revenue("USD")) == 150
    assert await posted(engine, fx_account("INR")) == -821_613
    assert await posted(engine, accounts.external("sandbox", "INR")) == 821_613
    assert await posted(engine, accounts.clearing("USD")) == 0

    positions = {p.asset: p for p in await ReconcileFx(uow)()}
    assert {a: (p.ledger, p.booked, p.difference) for a, p in positions.items()} == {
        "INR": (-821_613, -821_613, 0),
        "USD": (9_850, 9_850, 0),
    }
    assert await scalar(engine, "SELECT sum(abs(difference)) FROM fx_reconciliations") == 0
    assert await scalar(engine, "SELECT count(*) FROM fx_reconciliations") == 2


async def test_the_database_holds_the_conversion_invariants(engine: AsyncEngine) -> None:
    await fund(engine, 10_000)
    _, issue, submit = world(engine)
    uow = sql_uow(engine)
    quote = await issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    other = await issue(PLAYER, "p-1", source="USD", target="INR", amount=10_000)
    claim, _ = await uow.run(
        lambda books: submit(
            books,
            PLAYER,
            player_id="p-1",
            asset="USD",
            amount=10_000,
            destination=DEST,
            quote_id=quote.id,
            market=Decimal("83.4125"),
        )
    )
    refused = [
        ("UPDATE fx_quotes SET claim_id = 'cl-other' WHERE id = :q", {"q": quote.id}),  # locked once
        ("UPDATE fx_quotes SET target_amount = 1 WHERE id = :q", {"q": other.id}),  # terms immutable
        ("DELETE FROM fx_quotes WHERE id = :q", {"q": quote.id}),  # a locked quote stays
        ("UPDATE fx_quotes SET claim_id = :c, locked_at = now() WHERE id = :q", {"q": other.id, "c": claim.id}),
        ("UPDATE fx_quotes SET claim_id = 'cl-x' WHERE id = :q", {"q": other.id}),  # a lock names its time
        (
            "INSERT INTO fx_quotes (id, player_id, source_asset, target_asset, source_amount, spread_bps, "
            "spread_amount, net_amount, target_amount, rate, rate_timestamp, created_at, expires_at) VALUES "
            "('q-bad', 'p-1', 'USD', 'INR', 100, 150, 2, 99, 8000, 83.4, now(), now(), now() + interval '1 minute')",
            {},
        ),  # the parts do not sum
        (
            "INSERT INTO fx_quotes (id, player_id, source_asset, target_asset, source_amount, spread_bps, "
            "spread_amount, net_amount, target_amount, rate, rate_timestamp, created_at, expires_at) VALUES "
            "('q-bad', 'p-1', 'usd', 'INR', 100, 150, 2, 98, 8000, 83.4, now(), now(), now() + interval '1 minute')",
            {},
        ),  # not a currency code
        ("UPDATE claims SET payout_asset = NULL WHERE id = :c", {"c": claim.id}),  # a conversion is whole
        ("UPDATE claims SET payout_amount = 0 WHERE id = :c", {"c": claim.id}),  # amounts positive
        ("UPDATE claims SET payout_asset = 'USD' WHERE id = :c", {"c": claim.id}),  # another asset
    ]
    for sql, params in refused:
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            async with engine.begin() as conn:
                await conn.execute(text(sql), params)
    # A second claim naming the locked quote: the UNIQUE refuses it whatever wrote it.
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO claims (id, player_id, asset, amount, destination, destination_key, status, "
                    "pending_transfer_id, payout_request_id, correlation_id, created_at, quote_id, payout_asset, "
                    "payout_amount, fx_spread, fx_rate) SELECT 'cl-2', player_id, asset, amount, destination, "
                    "destination_key, status, gen_random_uuid(), 'pr-cl-2', correlation_id, created_at, quote_id, "
                    "payout_asset, payout_amount, fx_spread, fx_rate FROM claims WHERE id = :c"
                ),
                {"c": claim.id},
            )


async def test_a_player_claims_rupees_at_a_quote_from_the_rates_provider_over_http(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, emulator: RatesEmulator
) -> None:
    settings = settings_for(
        database_url,
        kafka_bootstrap,
        topic_suffix=topic_suffix,
        rewards_fx_pairs={"USD/INR": 150},
        rates_api_url=emulator.url,
        rates_app_id=emulator.app_id,
        rates_cache_s=0,  # the market moves below: every read asks the emulator
        rewards_min_claim={"USD": 1},
        rewards_new_destination_cooldown_s=0,
    )
    async with running_app(settings, routes=[*ROUTES, INR_SANDBOX]) as app:
        r = await app.client.post(
            "/wallets/p-1/top-ups",
            json={"asset": "USD", "amount": 30_000, "provider": "stripe", "reference": "ref-1"},
            headers=app.admin,
        )
        assert r.status_code == 200, r.text
        body = {"source_asset": "USD", "target_asset": "INR", "amount": 10_000}
        r = await app.client.post("/fx/quotes", json=body, headers=app.player("p-1"))
        assert r.status_code == 201, r.text
        quote = r.json()
        assert (quote["rate"], quote["spread_bps"], quote["spread_amount"], quote["target_amount"]) == (
            "83.4125",
            150,
            150,
            821_613,
        )
        claim_body = {"asset": "USD", "amount": 10_000, "destination": DEST.model_dump(mode="json")}
        r = await app.client.post(
            "/claims/",
            json={**claim_body, "quote_id": quote["quote_id"]},
            headers={**app.player("p-1"), "Idempotency-Key": "k-1"},
        )
        assert r.status_code == 201, r.text
        claim = r.json()
        assert claim["conversion"]["target_amount"] == 821_613

        # The market moves 1 %: a quote taken before is refused, naming the field, with a new quote at the new rate.
        r = await app.client.post("/fx/quotes", json=body, headers=app.player("p-1"))
        stale_quote = r.json()["quote_id"]
        async with emulator.admin() as admin:
            await admin.move("INR", by_bps=100)
        claims_before = await app.client.get("/wallets/p-1", headers=app.player("p-1"))
        r = await app.client.post(
            "/claims/",
            json={**claim_body, "quote_id": stale_quote},
            headers={**app.player("p-1"), "Idempotency-Key": "k-2"},
        )
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert (problem["code"], problem["errors"][0]["key"]) == ("quote_moved", "quote_id")
        assert problem["new_quote"]["rate"] == "84.246625"
        assert problem["new_quote"]["quote_id"] != stale_quote
        assert (await app.client.get("/wallets/p-1", headers=app.player("p-1"))).json() == claims_before.json()
        r = await app.client.post(
            "/claims/",
            json={**claim_body, "quote_id": problem["new_quote"]["quote_id"]},
            headers={**app.player("p-1"), "Idempotency-Key": "k-2"},
        )
        assert r.status_code == 201, r.text

        requested = [e.data for e in await app.events(PAYOUT_REQUESTS.name) if isinstance(e.data, PayoutRequested)]
        first = next(p for p in requested if p.claim_id == claim["claim_id"])
        assert first.amount == Money(asset="INR", amount=821_613)
        assert first.conversion is not None
        assert first.conversion.source == Money(asset="USD", amount=10_000)

        r = await app.client.get("/admin/fx/positions", headers=app.ops)
        assert r.status_code == 200, r.text
        committed = {p["asset"]: p["committed"] for p in r.json()["positions"]}
        assert committed["USD"] == 2 * 9_850
        assert (await app.client.get("/admin/fx/positions", headers=app.player("p-1"))).status_code == 403


async def test_the_fx_legs_are_in_the_ledger_csv(
    engine: AsyncEngine, database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    await test_a_paid_conversion_books_two_legs_through_the_fx_accounts_and_they_reconcile(engine)
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings, routes=[*ROUTES, INR_SANDBOX]) as app:
        now = datetime.now(UTC)
        period = {
            "since": (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "until": (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        }
        r = await app.client.get("/v1/admin/exports/ledger.csv", params=period, headers=app.admin)
        assert r.status_code == 200, r.text
        rows = list(csv.DictReader(io.StringIO(r.text)))
    fx_rows = {row["kind"]: row for row in rows if row["kind"].startswith("fx_")}
    assert {
        k: (r["debit_account_kind"], r["credit_account_kind"], r["asset"], r["amount"]) for k, r in fx_rows.items()
    } == {
        "fx_source": ("payout_clearing", "fx_position", "USD", "9850"),
        "fx_spread": ("payout_clearing", "platform_revenue", "USD", "150"),
        "fx_target": ("fx_position", "provider_external", "INR", "821613"),
    }


async def test_the_oxr_adapter_reads_the_exact_rate_and_fails_closed(emulator: RatesEmulator) -> None:
    oxr = OxrRatesProvider(base_url=emulator.url, app_id=emulator.app_id)
    wrong = OxrRatesProvider(base_url=emulator.url, app_id="not-the-key")
    try:
        rate = await oxr.latest("USD", "INR")
        assert rate.rate == Decimal("83.4125")
        assert abs(rate.timestamp - datetime.now(UTC)) < timedelta(minutes=5)
        with pytest.raises(RatesUnavailableError, match="401 invalid_app_id"):
            await wrong.latest("USD", "INR")
        with pytest.raises(RatesUnavailableError, match="no NGNX rate"):
            await oxr.latest("USD", "NGNX")
    finally:
        await oxr.aclose()
        await wrong.aclose()
