"""The gift-card rail's statement on the gift-card emulator's own books (`Store`) behind an httpx transport (no
socket): what an order becomes (its card, fee and refund), orders that took no money, the half-open window, and
paging by the provider's offset with a page asked for again giving the same lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    ListsStatement,
    PayoutDestination,
    PayoutInstruction,
    ProviderPayoutStatus,
    StatementLine,
    StatementLineKind,
    StatementPage,
)
from prizeflow_giftcard_emulator.server import json_default
from prizeflow_giftcard_emulator.state import ApiError, Outcome, Store
from prizeflow_payouts.adapters.giftcard import GiftCardPayoutProvider
from prizeflow_payouts.adapters.giftcard.statement import instant, minor_units
from prizeflow_testkit.giftcard_payouts import TEST_API_KEY, build_test_provider

K = StatementLineKind
P = ProviderPayoutStatus


class Books:
    """The emulator's books behind the routes the rail calls; every listing query is kept."""

    def __init__(self) -> None:
        self.store = Store(balances={"USD": Decimal(1_000_000), "INR": Decimal(1_000_000)})
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TEST_API_KEY}"
        path, s = request.url.path.removeprefix("/api/v2"), self.store
        try:
            if request.method == "GET" and path == "/orders":
                self.queries.append(dict(request.url.params))
                status, doc = 200, s.list_orders(dict(request.url.params))
            elif request.method == "POST" and path == "/orders":
                created, order = s.create_order(json.loads(request.content, parse_float=Decimal))
                status, doc = created, {"order": order.to_json()}
            elif request.method == "GET" and path.startswith("/orders/"):
                status, doc = 200, {"order": s.order(path.split("/")[2]).to_json()}
            elif request.method == "POST" and path.startswith("/rewards/") and path.endswith("/cancel"):
                status, doc = 200, {"reward": s.cancel_reward(path.split("/")[2]).to_json()}
            else:
                raise ApiError(404, "Resource not found")
        except ApiError as err:
            status, doc = err.status, err.to_json()
        return httpx.Response(status, content=json.dumps(doc, default=json_default).encode())


@pytest.fixture
def books() -> Books:
    return Books()


@pytest.fixture
def rail(books: Books) -> GiftCardPayoutProvider:
    return build_test_provider(httpx.MockTransport(books))


def instruction(n: int, *, amount: int = 2_510, email: str | None = None) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=f"po-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="USD", amount=amount),
        destination=PayoutDestination(type=DestinationType.EMAIL, address=email or f"player{n}@example.com"),
    )


NOW = datetime.now(UTC).replace(microsecond=0)  # whole milliseconds, as the provider dates orders
SINCE, UNTIL = NOW - timedelta(hours=1), NOW + timedelta(hours=1)


async def everything(rail: GiftCardPayoutProvider) -> list[StatementPage]:
    pages = [await rail.statement(SINCE, UNTIL)]
    while pages[-1].next_cursor is not None:
        pages.append(await rail.statement(SINCE, UNTIL, pages[-1].next_cursor))
    return pages


def lines(pages: list[StatementPage]) -> list[StatementLine]:
    return [line for page in pages for line in page.lines]


async def test_a_delivered_card_is_a_payout_line_to_the_email_under_our_payout_id(
    rail: GiftCardPayoutProvider, books: Books
) -> None:
    assert isinstance(rail, ListsStatement)
    instr = instruction(1)
    result = await rail.create_payout(instr)
    assert result.status is P.PAID
    (line,) = lines(await everything(rail))
    order = books.store.orders[str(result.provider_ref)]
    assert line == StatementLine(
        line_id=order.id,
        kind=K.PAYOUT,
        occurred_at=datetime.fromisoformat(order.created_at),
        asset="USD",
        amount=2_510,
        reference="po-1",
        provider_ref=result.provider_ref,
        destination="player1@example.com",
        raw_type="order:EXECUTED/SUCCEEDED",
    )


async def test_a_bounced_card_comes_back_as_a_reversal_and_a_fee_is_its_own_line(
    rail: GiftCardPayoutProvider, books: Books
) -> None:
    books.store.recipients["bounce@example.com"] = Outcome.DELIVERY_FAILED
    bounced = await rail.create_payout(instruction(1, email="bounce@example.com"))
    assert bounced.status is P.FAILED  # the adapter cancelled the card first: its value is back
    paid = await rail.create_payout(instruction(2, amount=1_000))
    assert books.store.inject_discrepancy("fee", reference="po-2", amount=75, asset=None, destination=None)
    got = {(line.reference, line.kind): line for line in lines(await everything(rail))}
    assert set(got) == {("po-1", K.PAYOUT), ("po-1", K.REVERSAL), ("po-2", K.PAYOUT), ("po-2", K.FEE)}
    assert got["po-1", K.REVERSAL].amount == got["po-1", K.PAYOUT].amount == 2_510
    assert got["po-1", K.REVERSAL].line_id == f"{bounced.provider_ref}:refund"
    fee = got["po-2", K.FEE]
    assert (fee.amount, fee.line_id, fee.provider_ref) == (75, f"{paid.provider_ref}:fee", paid.provider_ref)


async def test_orders_that_took_no_money_have_no_line(rail: GiftCardPayoutProvider, books: Books) -> None:
    books.store.recipients["wait@example.com"] = Outcome.APPROVAL
    books.store.recipients["broken@example.com"] = Outcome.ORDER_FAILED
    assert (await rail.create_payout(instruction(1, email="wait@example.com"))).status is P.PENDING
    assert (await rail.create_payout(instruction(2, email="broken@example.com"))).status is P.FAILED
    assert len(books.store.orders) == 2
    assert lines(await everything(rail)) == []


async def test_the_window_is_half_open(rail: GiftCardPayoutProvider, books: Books) -> None:
    for n in range(3):
        await rail.create_payout(instruction(n))
    first, second, third = books.store.orders.values()
    first.created_at = instant(UNTIL)  # the next window's
    second.created_at = instant(SINCE - timedelta(milliseconds=1))  # the previous window's
    third.created_at = instant(SINCE)
    assert [line.reference for line in lines(await everything(rail))] == ["po-2"]
    assert books.queries[0]["created_at[gte]"] == instant(SINCE)
    assert books.queries[0]["created_at[lte]"] == instant(UNTIL)
    assert await rail.statement(UNTIL, SINCE) == StatementPage(lines=())


async def test_pages_follow_the_offset_and_a_page_asked_again_is_the_same(
    rail: GiftCardPayoutProvider, books: Books
) -> None:
    for n in range(5):
        await rail.create_payout(instruction(n, amount=100 + n))
    rail.statement_page_size = 2
    pages = await everything(rail)
    assert [len(p.lines) for p in pages] == [2, 2, 1]
    assert [line.reference for line in lines(pages)] == [f"po-{n}" for n in (4, 3, 2, 1, 0)]  # newest first
    assert [p.next_cursor for p in pages] == ["2", "4", None]
    assert await rail.statement(SINCE, UNTIL, "2") == pages[1]
    assert [(q["offset"], q["limit"]) for q in books.queries[:3]] == [("0", "2"), ("2", "2"), ("4", "2")]


async def test_a_cursor_that_is_not_an_offset_is_refused_before_any_call(
    rail: GiftCardPayoutProvider, books: Books
) -> None:
    with pytest.raises(PayoutProviderError) as info:
        await rail.statement(SINCE, UNTIL, "-1")
    assert info.value.code is PayoutErrorCode.INVALID_REQUEST
    assert books.queries == []


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [(Decimal("25.1"), "USD", 2_510), (25, "USD", 2_500), ("0.01", "INR", 1), (Decimal("7"), "XYZ", 700)],
)
def test_amounts_are_minor_units_exactly(value: Any, currency: str, minor: int) -> None:
    assert minor_units(value, currency) == minor


@pytest.mark.parametrize("value", [Decimal("0.001"), "-1", "abc"])
def test_an_amount_that_is_not_whole_minor_units_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        minor_units(value, "USD")
