"""The TON statement without I/O: wallet transactions mapped to lines by the provider's books (v4r2 messages,
highload batch items, jetton transfers, refunds naming a payout), and paging back by (lt, hash) over a fake API."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from prizeflow_contracts.providers import StatementLineKind
from prizeflow_payouts.adapters.ton.options import TonAsset, TonOptions
from prizeflow_payouts.adapters.ton.statement import (
    Books,
    TonStatement,
    _batch_books,
    fee_share,
    lines_of,
    shares_of,
    tx_fee_share,
)
from prizeflow_payouts.adapters.ton.toncenter import ChainMessage, ChainTx
from prizeflow_ton.addresses import TonAddress
from prizeflow_ton.messages import Transfer, TransferKind, jetton_transfer_body, to_b64

PAYOUT, FEE, REVERSAL = StatementLineKind.PAYOUT, StatementLineKind.FEE, StatementLineKind.REVERSAL
CREDIT = StatementLineKind.CREDIT
T0 = 1_700_000_000


def raw_address() -> str:
    return "0:" + os.urandom(32).hex()


def friendly(raw: str) -> str:
    wc, hex_part = raw.split(":")
    return TonAddress(int(wc), bytes.fromhex(hex_part), None).friendly(bounceable=False, test_only=False)


WALLET, JETTON_WALLET, MASTER = raw_address(), raw_address(), raw_address()
A, B, STRANGER = raw_address(), raw_address(), raw_address()
OPTIONS = TonOptions(
    name="ton",
    network="testnet",
    api_url="http://127.0.0.1:1",
    api_key=None,
    wallet=WALLET,
    subwallet_id=698983191,
    public_key=None,
    validity_s=60,
    expiry_margin_s=5,
    max_messages=3,
    poll_s=1.0,
    resign_after_s=2.0,
    timeout_s=1.0,
    assets={
        "TON": TonAsset("TON", 9, None, None, 0),
        "USDT": TonAsset("USDT", 6, MASTER, JETTON_WALLET, 50_000_000),
    },
    source="/prizeflow/payouts",
)


def h() -> str:
    return os.urandom(32).hex()


def msg(source: str, destination: str, value: int, *, body: str = "", comment: str = "") -> ChainMessage:
    return ChainMessage(h(), friendly(source) if source else "", friendly(destination), value, body, comment=comment)


def tx(
    in_msg: ChainMessage | None, outs: list[ChainMessage], *, fee: int = 3_000_000, lt: int = 1, at: int = T0
) -> ChainTx:
    return ChainTx(lt, h(), at, in_msg, tuple(outs), fee=fee)


def jetton(destination: str, amount: int) -> str:
    body = jetton_transfer_body(
        Transfer(
            kind=TransferKind.JETTON,
            destination=destination,
            amount=amount,
            bounce=True,
            response_destination=WALLET,
            query_id=7,
        )
    )
    return to_b64(body)


def test_a_v4r2_message_is_its_payout_and_its_fee() -> None:
    ext = msg("", WALLET, 0)
    t = tx(ext, [msg(WALLET, A, 5_000_000_000)])
    books = Books(by_message={ext.hash: "po-a"}, refs={"po-a": ext.hash}, shown={"po-a": friendly(A)})
    lines = lines_of([t], books, OPTIONS)
    assert [(x.kind, x.line_id, x.reference, x.asset, x.amount, x.destination, x.provider_ref) for x in lines] == [
        (PAYOUT, t.out_msgs[0].hash, "po-a", "TON", 5_000_000_000, friendly(A), ext.hash),
        (FEE, f"{t.hash}:fee", "po-a", "TON", 3_000_000, None, ext.hash),
    ]


def test_a_batch_names_each_item_by_its_out_message_and_splits_its_fee() -> None:
    ton_out, jetton_out = msg(WALLET, A, 7), msg(WALLET, JETTON_WALLET, 50_000_000, body=jetton(B, 1_500_000))
    to_self = msg(WALLET, WALLET, 1)
    internal = tx(msg(WALLET, WALLET, 100), [ton_out, jetton_out], fee=3_000_001)
    external = tx(msg("", WALLET, 0), [to_self])
    books = Books(
        by_out={ton_out.hash: "po-a", jetton_out.hash: "po-b"},
        by_tx={internal.hash: ("po-a", "po-b"), external.hash: ("po-a", "po-b")},
        shown={"po-a": friendly(A), "po-b": friendly(B)},
    )
    lines = lines_of([external, internal], books, OPTIONS)
    got = [(x.kind, x.reference, x.asset, x.amount, x.destination) for x in lines]
    assert got == [
        (FEE, "po-a", "TON", 1_500_000, None),  # the external transaction's fee: the batch's
        (FEE, "po-b", "TON", 1_500_000, None),
        (PAYOUT, "po-a", "TON", 7, friendly(A)),
        (PAYOUT, "po-b", "USDT", 1_500_000, friendly(B)),  # the jetton transfer's body: amount and owner
        (FEE, "po-a", "TON", 1_500_001, None),
        (FEE, "po-b", "TON", 1_500_000, None),
    ]
    assert lines[3].raw_type == "jetton_transfer"


def test_refunds_strays_and_what_is_left_out() -> None:
    ext = msg("", WALLET, 0)
    books = Books(by_message={ext.hash: "po-a"}, shown={"po-a": friendly(A)})
    refund = tx(msg(A, WALLET, 4, comment=ext.hash), [], fee=0)
    topup = tx(msg(STRANGER, WALLET, 10**12), [], fee=0)  # no comment naming a payout: money in, no payout's
    excess = tx(msg(STRANGER, WALLET, 40_000_000, body="te6cckEBAQEADgAAGNUydtsAAAAAAAAAAPfBmNw="), [], fee=0)
    stray = tx(msg("", WALLET, 0), [msg(WALLET, STRANGER, 9)], fee=0)
    moved = tx(ext, [msg(WALLET, STRANGER, 5)], fee=0)  # our payout's message, paid elsewhere
    lines = lines_of([refund, topup, excess, stray, moved], books, OPTIONS)  # a jetton excess: machinery, no line
    assert [(x.kind, x.reference, x.amount, x.destination) for x in lines] == [
        (REVERSAL, "po-a", 4, friendly(A)),
        (CREDIT, None, 10**12, None),
        (PAYOUT, None, 9, STRANGER),
        (PAYOUT, "po-a", 5, STRANGER),  # not the payout's account: the raw form, never the payout's
    ]


# -- fees: what the driver records is what the statement lists ---------------------------------------------------


@given(
    fees=st.lists(st.integers(min_value=0, max_value=10**15), min_size=1, max_size=3),
    payouts=st.integers(min_value=1, max_value=254),
)
def test_a_batch_items_recorded_fees_sum_to_its_transactions_fees(fees: list[int], payouts: int) -> None:
    shares = shares_of(fees, payouts)
    assert len(shares) == payouts
    assert sum(shares) == sum(fees)
    assert all(isinstance(x, int) and x >= 0 for x in shares)
    # each is what the statement lists for that payout, transaction by transaction
    assert shares == [sum(fee_share(f, payouts, place) for f in fees) for place in range(payouts)]
    assert shares == [
        sum(tx_fee_share(f, f, payouts, place) for f in fees) for place in range(payouts)
    ]  # charged as recorded: the same split


@given(
    recorded=st.integers(min_value=0, max_value=10**12),
    extra=st.integers(min_value=0, max_value=10**9),
    payouts=st.integers(min_value=1, max_value=254),
)
def test_a_fee_charged_above_the_recorded_one_is_on_the_first_payout(recorded: int, extra: int, payouts: int) -> None:
    lines = [tx_fee_share(recorded + extra, recorded, payouts, place) for place in range(payouts)]
    assert sum(lines) == recorded + extra
    assert [line - fee_share(recorded, payouts, place) for place, line in enumerate(lines)] == [extra] + [0] * (
        payouts - 1
    )


def test_a_batch_fee_above_what_was_recorded_is_one_difference() -> None:
    outs = [msg(WALLET, x, 7) for x in (A, B, STRANGER)]
    internal = tx(msg(WALLET, WALLET, 100), outs, fee=3_000_007)  # 7 more than the driver read when it landed
    books = Books(
        by_out={o.hash: f"po-{n}" for n, o in enumerate(outs)},
        by_tx={internal.hash: ("po-0", "po-1", "po-2")},
        tx_fees={internal.hash: 3_000_000},
    )
    fees = [(x.reference, x.amount) for x in lines_of([internal], books, OPTIONS) if x.kind is FEE]
    assert fees == [("po-0", 1_000_007), ("po-1", 1_000_000), ("po-2", 1_000_000)]


def test_a_v4r2_message_that_paid_nothing_still_cost_its_payout_the_fee() -> None:
    ext = msg("", WALLET, 0)
    t = tx(ext, [])
    lines = lines_of([t], Books(by_message={ext.hash: "po-a"}), OPTIONS)
    assert [(x.kind, x.reference, x.amount) for x in lines] == [(FEE, "po-a", 3_000_000)]


def _item(
    request: str, payout: str, state: str, fee: int | None, *, ext_fee: int | None = 3, int_fee: int | None = 5
) -> SimpleNamespace:
    return SimpleNamespace(
        request_id=request,
        external_tx_hash=f"{request}-ext",
        internal_tx_hash=f"{request}-int",
        external_fee=ext_fee,
        internal_fee=int_fee,
        payout_id=payout,
        state=state,
        fee=fee,
    )


def test_the_books_split_a_batch_over_the_items_it_carried_else_over_its_paid_ones() -> None:
    rows = [
        # carried (a fee share recorded): paid, still in flight (a jetton's hop), failed after it was sent
        _item("b1", "po-1", "paid", 3),
        _item("b1", "po-2", "in_flight", 3),
        _item("b1", "po-3", "failed", 2),
        # a batch recorded before fee shares (migration 0018): its paid items, no recorded fee
        _item("b2", "po-4", "paid", None, ext_fee=None, int_fee=None),
        _item("b2", "po-5", "paid", None, ext_fee=None, int_fee=None),
    ]
    by_tx, tx_fees = _batch_books(rows, ["b1-ext", "b1-int", "b2-int"])
    assert by_tx == {
        "b1-ext": ("po-1", "po-2", "po-3"),
        "b1-int": ("po-1", "po-2", "po-3"),
        "b2-int": ("po-4", "po-5"),
    }
    assert tx_fees == {"b1-ext": 3, "b1-int": 5}


# -- paging back over a getTransactions fake ---------------------------------------------------------------------


@dataclass
class FakeClient:
    """Newest first; `lt` + `tx_hash`: from that transaction (inclusive) back, as toncenter v2 pages."""

    txs: list[ChainTx]
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def transactions(
        self, address: str, *, limit: int = 20, lt: int | None = None, tx_hash: str | None = None
    ) -> list[ChainTx]:
        self.calls.append({"limit": limit, "lt": lt, "hash": tx_hash})
        newest_first = sorted(self.txs, key=lambda t: -t.lt)
        if lt is not None:
            start = next(n for n, t in enumerate(newest_first) if (t.lt, t.hash) == (lt, tx_hash))
            newest_first = newest_first[start:]
        return newest_first[:limit]


class NoBooks(TonStatement):
    async def books(self, txs: Any) -> Books:
        return Books()


async def test_pages_back_from_the_newest_to_the_window_start() -> None:
    # One payout of n nanotons every 10 s, lt 1000 n.
    txs = [tx(msg("", WALLET, 0), [msg(WALLET, A, n)], fee=0, lt=1000 * n, at=T0 + 10 * n) for n in range(1, 40)]
    client = FakeClient(txs)
    statement = NoBooks(OPTIONS, client, lambda: None, page_limit=4)  # type: ignore[arg-type,return-value]
    since, until = datetime.fromtimestamp(T0 + 50, UTC), datetime.fromtimestamp(T0 + 250, UTC)
    amounts: list[int] = []
    cursor, pages = None, 0
    while True:
        page = await statement.statement(since, until, cursor)
        assert await statement.statement(since, until, cursor) == page
        pages += 1
        amounts += [line.amount for line in page.lines]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert amounts == list(range(24, 4, -1))  # utime in [T0 + 50, T0 + 250), newest first, none twice
    assert pages > 1
    assert all(c["limit"] == 5 for c in client.calls if c["lt"] is not None)  # the cursor's own one more
