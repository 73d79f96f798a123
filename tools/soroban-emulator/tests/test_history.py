"""getTransactions (paging by cursor, from a start ledger) and POST /_emulator/discrepancies, over real HTTP."""

from __future__ import annotations

import time

import pytest
from stellar_sdk import Keypair, TransactionEnvelope, xdr

import prizeflow_stellar as ps
from prizeflow_soroban_emulator.client import EmulatorError, Rpc

pytestmark = pytest.mark.integration

PASSPHRASE = "Prizeflow Emulator Tests ; 2025"


def funded(rpc: Rpc, xlm: str = "1000") -> Keypair:
    kp = Keypair.random()
    rpc.admin.create_account(kp.public_key, balances={"XLM": xlm, "USDC": "0"})
    return kp


def pay(rpc: Rpc, src: Keypair, payments: list[tuple[str, int]]) -> str:
    """Send and land one transaction of `payments` (destination, stroops of XLM); its hash."""
    found = rpc.admin.account(src.public_key)
    assert found is not None
    seq = int(found["sequence"]) + 1
    built = ps.build_payments(
        source_account=src.public_key,
        sequence=seq,
        payments=[ps.PaymentInstruction(f"po-{n}", d, "XLM", a) for n, (d, a) in enumerate(payments)],
        network_passphrase=PASSPHRASE,
        valid_until=int(time.time()) + 300,
    )
    env = TransactionEnvelope.from_xdr(built.envelope_xdr, PASSPHRASE)
    env.sign(src)
    assert rpc.call("sendTransaction", {"transaction": env.to_xdr()})["status"] == "PENDING"
    rpc.admin.close_ledger()
    return built.tx_hash


def listed(rpc: Rpc, **params: object) -> dict[str, object]:
    result: dict[str, object] = rpc.call("getTransactions", params)
    return result


def payments_of(entry: dict[str, object]) -> list[tuple[str, int]]:
    env = xdr.TransactionEnvelope.from_xdr(str(entry["envelopeXdr"]))
    assert env.v1 is not None
    out = []
    for op in env.v1.tx.operations:
        if op.body.payment_op is not None:
            from stellar_sdk import MuxedAccount

            out.append((MuxedAccount.from_xdr_object(op.body.payment_op.destination).account_id,
                        op.body.payment_op.amount.int64))  # fmt: skip
    return out


def fee_charged(entry: dict[str, object]) -> int:
    return xdr.TransactionResult.from_xdr(str(entry["resultXdr"])).fee_charged.int64


def test_get_transactions_pages_by_cursor_from_a_start_ledger(emulator: Rpc) -> None:
    src, dest = funded(emulator), funded(emulator, "1")
    start = int(emulator.call("getLatestLedger")["sequence"]) + 1
    hashes = [pay(emulator, src, [(dest.public_key, n + 1)]) for n in range(5)]
    seen: list[str] = []
    page = listed(emulator, startLedger=start, pagination={"limit": 2})
    while True:
        txs = page["transactions"]
        assert isinstance(txs, list)
        seen += [t["txHash"] for t in txs]
        assert all(isinstance(t["createdAt"], int) and t["applicationOrder"] == 1 for t in txs)
        if len(txs) < 2:
            break
        page = listed(emulator, pagination={"cursor": page["cursor"], "limit": 2})
    assert seen == hashes
    latest = int(emulator.call("getLatestLedger")["sequence"])
    with pytest.raises(EmulatorError, match="start ledger must be between"):
        listed(emulator, startLedger=latest + 5)
    with pytest.raises(EmulatorError, match="cannot both be set"):
        listed(emulator, startLedger=start, pagination={"cursor": "1"})
    with pytest.raises(EmulatorError, match="limit"):
        listed(emulator, startLedger=start, pagination={"limit": 201})


def test_discrepancies_change_the_listing_not_what_was_applied(emulator: Rpc) -> None:
    src, a, b = funded(emulator), funded(emulator, "1"), funded(emulator, "1")
    start = int(emulator.call("getLatestLedger")["sequence"]) + 1
    single = pay(emulator, src, [(a.public_key, 10)])
    pair = pay(emulator, src, [(a.public_key, 20), (b.public_key, 30)])

    def by_hash() -> dict[str, dict[str, object]]:
        txs = listed(emulator, startLedger=start, pagination={"limit": 200})["transactions"]
        assert isinstance(txs, list)
        return {str(t["txHash"]): t for t in txs}

    assert emulator.admin.discrepancy({"kind": "amount", "reference": f"{pair}:1", "amount": 31}) == f"{pair}:1"
    assert payments_of(by_hash()[pair]) == [(a.public_key, 20), (b.public_key, 31)]
    assert emulator.admin.discrepancy({"kind": "missing", "reference": f"{pair}:0"}) is None
    assert payments_of(by_hash()[pair]) == [(b.public_key, 31)]  # its place kept by a no-money operation
    assert emulator.admin.discrepancy({"kind": "fee", "reference": single, "amount": 7}) == f"{single}:0:fee"
    assert fee_charged(by_hash()[single]) == 100 + 7
    assert emulator.admin.discrepancy({"kind": "missing", "reference": single}) is None
    assert single not in by_hash()
    # What was applied stands: getTransaction and the movements.
    assert emulator.call("getTransaction", {"hash": single})["status"] == "SUCCESS"
    assert [p["amount"] for p in emulator.admin.payments(tx_hash=pair)] == [20, 30]

    line = emulator.admin.discrepancy({"kind": "unrequested", "amount": 5, "asset": "XLM", "destination": b.public_key})
    assert line is not None
    new = by_hash()[line.split(":")[0]]
    assert payments_of(new) == [(b.public_key, 5)]
    refund = emulator.admin.discrepancy({"kind": "reversal", "reference": f"{pair}:1"})
    assert refund is not None
    env = xdr.TransactionEnvelope.from_xdr(str(by_hash()[refund.split(":")[0]]["envelopeXdr"]))
    assert env.v1 is not None
    assert env.v1.tx.memo.type == xdr.MemoType.MEMO_RETURN
    assert env.v1.tx.memo.ret_hash is not None
    assert env.v1.tx.memo.ret_hash.hash.hex() == pair
    assert payments_of(by_hash()[refund.split(":")[0]]) == [(src.public_key, 30)]  # all of it, as applied

    cases: list[tuple[dict[str, object], str]] = [
        ({"kind": "nope"}, "kind must be"),
        ({"kind": "amount", "reference": pair, "amount": 1}, "holds 2 payouts"),
        ({"kind": "duplicate", "reference": "00" * 32}, "no successful transaction"),
        ({"kind": "fee", "reference": single}, "amount must be"),
        ({"kind": "destination", "reference": f"{pair}:1", "destination": "nope"}, "destination must be"),
    ]
    for bad, why in cases:
        with pytest.raises(EmulatorError, match=why):
            emulator.admin.discrepancy(bad)
