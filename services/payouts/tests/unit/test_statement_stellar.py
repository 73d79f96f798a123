"""The Stellar statement without I/O: envelopes mapped to lines by the provider's books, the fee split the payout
books, and paging over a getTransactions fake (start ledger found by binary search, the window cut, cursors)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from stellar_sdk import Account, Asset, Keypair, StrKey, TransactionBuilder, xdr
from stellar_sdk.memo import HashMemo, ReturnHashMemo

import prizeflow_stellar as ps
from prizeflow_contracts.providers import StatementLineKind
from prizeflow_payouts.adapters.stellar.books import StellarBooks
from prizeflow_payouts.adapters.stellar.statement import (
    BookedPayout,
    Books,
    ListedTx,
    StellarStatement,
    fee_share,
    lines_of,
)

NETWORK = "Prizeflow Statement Unit ; 2025"
FUNDING, CHANNEL = Keypair.random().public_key, Keypair.random().public_key
ACCOUNTS = frozenset({FUNDING, CHANNEL})
A, B, OTHER = (Keypair.random().public_key for _ in range(3))
USDC = ps.stellar_asset("USDC")
T0 = 1_700_000_000
PAYOUT, FEE, REVERSAL = StatementLineKind.PAYOUT, StatementLineKind.FEE, StatementLineKind.REVERSAL
CREDIT = StatementLineKind.CREDIT


def batch(fee_per_op: int = 101) -> ListedTx:
    """Our channel transaction paying A 5 XLM and B 7 USDC from the funding account."""
    built = ps.build_payments(
        source_account=CHANNEL,
        sequence=10,
        payments=[ps.PaymentInstruction("po-a", A, "XLM", 50_000_000), ps.PaymentInstruction("po-b", B, "USDC", 70)],
        network_passphrase=NETWORK,
        valid_until=T0 + 60,
        base_fee=fee_per_op,
        operation_source=FUNDING,
    )
    return listed(built.envelope_xdr, fee=2 * fee_per_op + 1, tx_hash=built.tx_hash)


def other_tx(
    source: str, payments: list[tuple[str, str, Asset, int]], memo: Any = None, *, fee: int = 100, ok: bool = True
) -> ListedTx:
    builder = TransactionBuilder(Account(source, 1), NETWORK, base_fee=100).add_time_bounds(0, 0)
    if memo is not None:
        builder.add_memo(memo)
    for spender, dest, asset, amount in payments:
        builder.append_payment_op(dest, asset, ps.from_stroops(amount), source=spender)
    env = builder.build()
    return listed(env.to_xdr(), fee=fee, tx_hash=env.hash_hex(), ok=ok)


def listed(envelope_xdr: str, *, fee: int, tx_hash: str, ok: bool = True, at: int = T0) -> ListedTx:
    env = xdr.TransactionEnvelope.from_xdr(envelope_xdr)
    assert env.v1 is not None
    return ListedTx(tx_hash, ok, datetime.fromtimestamp(at, UTC), env.v1.tx, fee)


def books_for(*txs: tuple[ListedTx, tuple[str, ...]]) -> Books:
    payouts = {
        "po-a": BookedPayout("po-a", A, "XLM", 50_000_000),
        "po-b": BookedPayout("po-b", B, "USDC", 70),
    }
    return Books({t.tx_hash: ids for t, ids in txs}, payouts)


def test_a_batch_is_one_payout_line_per_payment_and_its_fee_split_over_them() -> None:
    tx = batch()
    lines = lines_of([tx], books_for((tx, ("po-a", "po-b"))), accounts=ACCOUNTS, contract_asset="XLM")
    paid = [
        (line.line_id, line.reference, line.asset, line.amount, line.destination)
        for line in lines
        if line.kind is PAYOUT
    ]
    assert paid == [
        (f"{tx.tx_hash}:0", "po-a", "XLM", 50_000_000, A),
        (f"{tx.tx_hash}:1", "po-b", "USDC", 70, B),
    ]
    fees = [(line.line_id, line.reference, line.asset, line.amount) for line in lines if line.kind is FEE]
    assert fees == [(f"{tx.tx_hash}:0:fee", "po-a", "XLM", 102), (f"{tx.tx_hash}:1:fee", "po-b", "XLM", 101)]
    assert {line.provider_ref for line in lines} == {"stellar:po-a", "stellar:po-b"}


def test_links_by_memo_unknown_payments_and_what_is_left_out() -> None:
    ours = batch()
    books = books_for((ours, ("po-a", "po-b")))
    memo = bytes.fromhex(ours.tx_hash)
    again = other_tx(OTHER, [(FUNDING, A, Asset.native(), 50_000_000)], HashMemo(memo))  # a re-sent payout
    refund = other_tx(B, [(B, FUNDING, USDC, 30)], ReturnHashMemo(memo))  # B returns part of its payout
    stray = other_tx(OTHER, [(FUNDING, OTHER, Asset.native(), 9)])  # nobody asked for it
    topup = other_tx(OTHER, [(OTHER, FUNDING, Asset.native(), 1_000)])  # a float top-up: money in, no payout's
    internal = other_tx(FUNDING, [(FUNDING, CHANNEL, Asset.native(), 5)])  # between our own accounts
    failed = other_tx(CHANNEL, [(FUNDING, A, Asset.native(), 1)], fee=300, ok=False)
    lines = lines_of([again, refund, stray, topup, internal, failed], books, accounts=ACCOUNTS, contract_asset="XLM")
    got = [(line.line_id, line.kind, line.reference, line.amount) for line in lines]
    assert got == [
        (f"{again.tx_hash}:0", PAYOUT, "po-a", 50_000_000),
        (f"{refund.tx_hash}:0", REVERSAL, "po-b", 30),
        (f"{stray.tx_hash}:0", PAYOUT, None, 9),
        (f"{topup.tx_hash}:0", CREDIT, None, 1_000),
        (f"{internal.tx_hash}:fee", FEE, None, 100),  # our account paid it, for no payout
        (f"{failed.tx_hash}:fee", FEE, None, 300),  # a failed transaction moves nothing but its fee
    ]
    assert lines[1].destination == B  # a reversal names who sent it back


def test_a_contract_call_is_one_line_per_winner_and_a_zero_winner_is_none() -> None:
    winners = [ps.Winner("po-a", A, 5), ps.Winner("po-b", B, 7)]
    built = ps.build_contract_invoke(
        source_account=FUNDING,
        sequence=3,
        contract_id=StrKey.encode_contract(b"\x05" * 32),
        winners=winners,
        network_passphrase=NETWORK,
        valid_until=T0 + 60,
        asset_code="USDC",
    )
    tx = listed(built.envelope_xdr, fee=100, tx_hash=built.tx_hash)
    lines = lines_of([tx], books_for((tx, ("po-a", "po-b"))), accounts=ACCOUNTS, contract_asset="USDC")
    assert [(line.line_id, line.reference, line.asset, line.amount) for line in lines if line.kind is PAYOUT] == [
        (f"{tx.tx_hash}:0", "po-a", "USDC", 5),
        (f"{tx.tx_hash}:1", "po-b", "USDC", 7),
    ]


@given(st.integers(0, 10**12), st.integers(1, 100))
def test_fee_shares_add_up_to_the_fee(fee: int, payouts: int) -> None:
    shares = [fee_share(fee, payouts, n) for n in range(payouts)]
    assert sum(shares) == fee
    assert max(shares) - min(shares) <= fee % payouts


# -- paging over a getTransactions fake ------------------------------------------------------------------------


@dataclass
class FakeRpc:
    """getHealth + getTransactions over (ledger, close time, entry), the cursor being the index."""

    rows: list[tuple[int, int, dict[str, Any]]]
    latest: int
    calls: int = 0

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.calls += 1
        if method == "getHealth":
            return {"oldestLedger": 1, "latestLedger": self.latest}
        assert method == "getTransactions"
        assert params is not None
        limit = params["pagination"]["limit"]
        if "cursor" in params["pagination"]:
            first = int(params["pagination"]["cursor"]) + 1
        else:
            first = next((n for n, r in enumerate(self.rows) if r[0] >= params["startLedger"]), len(self.rows))
        page = self.rows[first : first + limit]
        return {
            "transactions": [r[2] for r in page],
            "cursor": str(first + len(page) - 1),
            "oldestLedger": 1,
            "oldestLedgerCloseTimestamp": T0 - 10_000,
        }


class BooksOf(StellarStatement):
    async def books(self, listed: Any) -> Books:
        return Books({}, {})


def no_books() -> AbstractAsyncContextManager[StellarBooks]:
    raise AssertionError("the books are not read here")


def payment_entry(ledger: int, at: int, amount: int) -> dict[str, Any]:
    t = other_tx(OTHER, [(FUNDING, A, Asset.native(), amount)])
    result = xdr.TransactionResult(
        fee_charged=xdr.Int64(0),
        result=xdr.TransactionResultResult(code=xdr.TransactionResultCode.txSUCCESS, results=[]),
        ext=xdr.TransactionResultExt(0),
    )
    env = xdr.TransactionEnvelope(
        type=xdr.EnvelopeType.ENVELOPE_TYPE_TX, v1=xdr.TransactionV1Envelope(tx=t.tx, signatures=[])
    )
    return {
        "status": "SUCCESS",
        "txHash": f"{ledger:032x}{amount:032x}",
        "ledger": ledger,
        "createdAt": at,
        "envelopeXdr": env.to_xdr(),
        "resultXdr": result.to_xdr(),
    }


async def test_pages_from_the_first_ledger_of_the_window_to_its_end() -> None:
    # Ledger n closes at T0 + 5n; one payment of n stroops in every third ledger.
    rows = [(n, T0 + 5 * n, payment_entry(n, T0 + 5 * n, n)) for n in range(1, 200) if n % 3 == 0]
    rpc = FakeRpc(rows, latest=200)
    statement = BooksOf(name="stellar", accounts=ACCOUNTS, contract_asset="XLM", rpc=rpc, uow=no_books, page_limit=4)
    since, until = datetime.fromtimestamp(T0 + 100, UTC), datetime.fromtimestamp(T0 + 400, UTC)
    assert await statement.start_ledger(since) == 19  # ledger 20 closes at T0 + 100: the first at or after
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
    assert amounts == [n for n in range(20, 80) if n % 3 == 0]  # closed in [T0 + 100, T0 + 400)
    assert pages > 1
    # A window after the last transaction: nothing, at once.
    late = datetime.fromtimestamp(T0 + 10_000, UTC)
    assert (await statement.statement(late, late.replace(year=late.year + 1))).lines == ()
