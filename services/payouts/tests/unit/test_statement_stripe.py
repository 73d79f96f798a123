"""The Stripe rail's statement on the Stripe emulator's own books (`Store`) behind the official library's HTTP
client boundary (no socket): what each balance transaction becomes, the window Stripe is asked for, paging with
Stripe's cursor, and a page asked for again giving the same lines."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    ListsStatement,
    PayoutDestination,
    PayoutInstruction,
    StatementLine,
    StatementLineKind,
    StatementPage,
)
from prizeflow_payouts.adapters.stripe import StripePayoutProvider
from prizeflow_payouts.adapters.stripe.statement import asset_of, lines_of, window
from prizeflow_stripe_emulator.errors import StripeError
from prizeflow_stripe_emulator.forms import parse_form
from prizeflow_stripe_emulator.models import Ctx
from prizeflow_stripe_emulator.state import Store
from prizeflow_testkit.stripe_payouts import build_test_provider

K = StatementLineKind
T0 = 1_750_000_000  # the emulator's clock, in whole seconds as Stripe's `created`


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


class StoreHTTP(stripe.HTTPClient):
    """The emulator's books at the library's HTTP boundary: the two routes the statement and a transfer need."""

    name = "prizeflow-store"

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.queries: list[dict[str, Any]] = []

    def sleep_async(self, secs: float) -> Any:
        async def _no_wait() -> None:
            return None

        return _no_wait()

    async def close_async(self) -> None:
        return None

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        parts = urlsplit(url)
        raw = post_data.decode() if isinstance(post_data, bytes) else (post_data or parts.query or "")
        params = parse_form(parse_qsl(raw, keep_blank_values=True))
        try:
            if method == "get" and parts.path == "/v1/balance_transactions":
                self.queries.append(json.loads(json.dumps(params)))
                doc = self.store.list_balance_transactions(params, None)
            elif method == "post" and parts.path == "/v1/transfers":
                doc = self.store.create_transfer(params, Ctx(idempotency_key=headers.get("Idempotency-Key")))
            else:
                return json.dumps({"error": {"type": "invalid_request_error", "message": "no route"}}).encode(), 404, {}
        except StripeError as err:
            return json.dumps({"error": err.body()}).encode(), err.status, {}
        return json.dumps(doc).encode(), 200, {}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Store:
    s = Store(api_version="2024-06-20", public_url="http://emulator", clock=clock)
    s.fund("usd", 10_000_000)
    s.fund("eur", 10_000_000)
    return s


@pytest.fixture
def http(store: Store) -> StoreHTTP:
    return StoreHTTP(store)


@pytest.fixture
def rail(http: StoreHTTP) -> StripePayoutProvider:
    return build_test_provider(http_client=http, max_network_retries=0)


def instruction(store: Store, n: int, amount: int = 1_000) -> PayoutInstruction:
    account = f"acct_player{n}"
    store.create_account({}, account_id=account)
    return PayoutInstruction(
        payout_id=f"pay-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="USD", amount=amount),
        destination=PayoutDestination(type=DestinationType.STRIPE_ACCOUNT, address=account),
    )


SINCE = datetime.fromtimestamp(T0, UTC)
UNTIL = SINCE + timedelta(hours=1)


async def everything(
    rail: StripePayoutProvider, since: datetime = SINCE, until: datetime = UNTIL
) -> list[StatementPage]:
    pages = [await rail.statement(since, until)]
    while pages[-1].next_cursor is not None:
        pages.append(await rail.statement(since, until, pages[-1].next_cursor))
    return pages


def ours(pages: list[StatementPage]) -> list[StatementLine]:
    """The lines of the pages, without the emulator's funding adjustments."""
    return [line for page in pages for line in page.lines if (line.kind, line.raw_type) != (K.CREDIT, "adjustment")]


async def test_a_transfer_is_a_payout_line_carrying_our_key_its_transfer_and_the_account(
    rail: StripePayoutProvider, store: Store
) -> None:
    assert isinstance(rail, ListsStatement)
    instr = instruction(store, 1, amount=2_510)
    result = await rail.create_payout(instr)
    (line,) = ours(await everything(rail))
    transfer = store.transfers[str(result.provider_ref)]
    assert line == StatementLine(
        line_id=transfer["balance_transaction"],
        kind=K.PAYOUT,
        occurred_at=SINCE,
        asset="USD",
        amount=2_510,
        reference="key-1",
        provider_ref=result.provider_ref,
        destination=instr.destination.address,
        raw_type="transfer",
    )


async def test_a_fee_on_a_transfer_is_its_own_line_and_a_dashboard_reversal_still_names_our_payout(
    rail: StripePayoutProvider, store: Store
) -> None:
    instr = instruction(store, 1)
    ref = str((await rail.create_payout(instr)).provider_ref)
    assert store.inject_discrepancy("fee", reference="key-1", amount=25, asset=None, destination=None)
    store.create_reversal(ref, {"amount": "400"}, Ctx())  # no metadata of ours: only the transfer it reverses
    lines = {line.kind: line for line in ours(await everything(rail))}
    assert set(lines) == {K.PAYOUT, K.FEE, K.REVERSAL}
    fee, reversal = lines[K.FEE], lines[K.REVERSAL]
    assert (fee.amount, fee.reference, fee.provider_ref, fee.line_id) == (
        25,
        "key-1",
        ref,
        f"{lines[K.PAYOUT].line_id}:fee",
    )
    assert (reversal.amount, reversal.reference, reversal.provider_ref, reversal.destination) == (
        400,
        "key-1",
        ref,
        instr.destination.address,
    )
    assert reversal.raw_type == "transfer_refund"


def test_other_movements_keep_their_word_and_an_unknown_currency_is_never_called_ours() -> None:
    currencies = {"USD": "usd", "INR": "inr"}
    withdrawn = {"id": "txn_1", "type": "adjustment", "amount": -700, "currency": "eur", "created": T0, "source": None}
    (line,) = lines_of(withdrawn, currencies)
    assert (line.kind, line.amount, line.asset, line.raw_type, line.reference) == (
        K.DEBIT,
        700,
        "EUR",
        "adjustment",
        None,
    )
    topup = {**withdrawn, "type": "topup", "amount": 700}
    assert [(x.kind, x.amount) for x in lines_of(topup, currencies)] == [(K.CREDIT, 700)]
    assert asset_of("INR", currencies) == "INR"
    assert asset_of("usd", currencies) == "USD"
    stripe_fee = {"id": "txn_2", "type": "stripe_fee", "amount": -99, "currency": "usd", "created": T0, "source": None}
    (fee,) = lines_of(stripe_fee, currencies)
    assert (fee.kind, fee.amount, fee.asset, fee.reference) == (K.FEE, 99, "USD", None)


def test_the_window_is_whole_seconds_half_open() -> None:
    since = datetime.fromtimestamp(T0 + 0.5, UTC)
    assert window(since, since + timedelta(seconds=10)) == {"gte": T0 + 1, "lt": T0 + 11}
    assert window(SINCE, UNTIL) == {"gte": T0, "lt": T0 + 3600}


async def test_lines_outside_the_window_are_not_listed(rail: StripePayoutProvider, store: Store, clock: Clock) -> None:
    await rail.create_payout(instruction(store, 1))
    clock.now = T0 + 3600  # exactly `until`: the next window's
    await rail.create_payout(instruction(store, 2))
    assert [line.reference for line in ours(await everything(rail))] == ["key-1"]
    later = await everything(rail, UNTIL, UNTIL + timedelta(hours=1))
    assert [line.reference for line in ours(later)] == ["key-2"]
    assert await rail.statement(UNTIL, SINCE) == StatementPage(lines=())


async def test_pages_follow_stripes_cursor_and_a_page_asked_again_is_the_same(
    rail: StripePayoutProvider, store: Store, http: StoreHTTP, clock: Clock
) -> None:
    clock.now = T0 + 60  # after the funding adjustments
    for n in range(5):
        await rail.create_payout(instruction(store, n, amount=100 + n))
    rail.statement_page_size = 2
    since = SINCE + timedelta(seconds=60)
    pages = await everything(rail, since)
    assert [len(p.lines) for p in pages] == [2, 2, 1]
    assert [line.reference for p in pages for line in p.lines] == [f"key-{n}" for n in (4, 3, 2, 1, 0)]  # newest first
    assert pages[-1].next_cursor is None
    assert pages[0].next_cursor is not None
    assert await rail.statement(since, UNTIL, pages[0].next_cursor) == pages[1]
    first = http.queries[0]
    assert first["created"] == {"gte": str(T0 + 60), "lt": str(T0 + 3600)}
    assert first["limit"] == "2"
    assert sorted(first["expand"]) == ["data.source", "data.source.transfer"]
    assert http.queries[1]["starting_after"] == pages[0].next_cursor


async def test_a_cursor_that_is_not_stripes_is_refused_before_any_call(
    rail: StripePayoutProvider, http: StoreHTTP
) -> None:
    with pytest.raises(PayoutProviderError) as info:
        await rail.statement(SINCE, UNTIL, "1 OR 1=1")
    assert info.value.code is PayoutErrorCode.INVALID_REQUEST
    assert http.queries == []
