"""The Stellar statement against the Soroban emulator: real payouts (signer, payouts, emulator as processes), then
each kind of discrepancy injected through `POST /_emulator/discrepancies` and seen in the statement, page by page."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from stellar_sdk import Keypair

from prizeflow_contracts.providers import ListsStatement, StatementLine, StatementLineKind
from prizeflow_devstack.infra import Infra
from prizeflow_payouts.adapters.stellar import StellarPayoutProvider
from prizeflow_testkit.payouts import fetch, unique
from prizeflow_testkit.stellar import Stack, destinations, stellar_stack

pytestmark = pytest.mark.integration

PAYOUT, FEE, REVERSAL = StatementLineKind.PAYOUT, StatementLineKind.FEE, StatementLineKind.REVERSAL


async def _all(provider: ListsStatement, since: datetime, until: datetime) -> tuple[list[StatementLine], int]:
    lines: list[StatementLine] = []
    pages, cursor = 0, None
    while True:
        page = await provider.statement(since, until, cursor)
        pages += 1
        lines.extend(page.lines)
        again = await provider.statement(since, until, cursor)
        assert again == page  # the same window and cursor give the same page
        if page.next_cursor is None:
            return lines, pages
        cursor = page.next_cursor


async def test_statement_lists_payouts_fees_and_each_injected_discrepancy(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    async with stellar_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        options={"max_ops_per_tx": 2},  # batches of two: places 0 and 1 of a transaction
        topic_suffix=topic_suffix,
    ) as s:
        dests = destinations(s.rpc, 7)
        requests = [
            (d, 10_000_000 + n, "XLM" if n % 3 else "USDC", unique(f"st-stmt-{n}")) for n, d in enumerate(dests)
        ]
        outcomes = await s.create_together(requests)
        assert all(o.kind == "payout" for o in outcomes), outcomes
        final = await s.wait_final([k for *_, k in requests], timeout=90)
        assert set(final.values()) == {"paid"}, final
        served = s.parts.config.registry.get("stellar").provider
        assert isinstance(served, StellarPayoutProvider)
        # The service runs on its own event loop: the test reads through a provider of its own on the same books.
        provider = StellarPayoutProvider(served.o, database_url=db)
        assert isinstance(provider, ListsStatement)
        provider.statements.page_limit = 2  # several pages
        try:
            await _check(s, provider, db, since, dests)
        finally:
            await provider.close()


def _network_now(s: Stack) -> datetime:
    """The emulated network's clock: ledgers close at least a second apart, so at a fast ledger pace it runs ahead."""
    return datetime.fromtimestamp(int(s.rpc.call("getLatestLedger")["closeTime"]), UTC)


async def _check(s: Stack, provider: StellarPayoutProvider, db: str, since: datetime, dests: list[str]) -> None:
    ours = {
        r["id"]: r
        for r in await fetch(
            db, "SELECT id, asset, amount, destination_address, fee_asset, fee_amount, provider_ref FROM payouts"
        )
    }
    place: dict[str, tuple[str, int]] = {}
    tx_payouts: dict[str, list[str]] = {}
    for t in await fetch(db, "SELECT tx_hash, payout_ids FROM stellar_txs WHERE state = 'success'"):
        tx_payouts[t["tx_hash"]] = list(t["payout_ids"])
        for n, payout_id in enumerate(t["payout_ids"]):
            place[payout_id] = (t["tx_hash"], n)
    assert set(place) == set(ours)

    # A clean statement: one payout line per payout, as our books hold it; its fees, booked on the payout.
    until = _network_now(s) + timedelta(seconds=5)
    lines, pages = await _all(provider, since, until)
    assert pages > 1
    paid = [line for line in lines if line.kind is PAYOUT]
    assert sorted(line.reference or "" for line in paid) == sorted(ours)
    for line in paid:
        assert line.reference is not None
        p = ours[line.reference]
        assert (line.asset, line.amount, line.destination) == (p["asset"], p["amount"], p["destination_address"])
        assert line.provider_ref == p["provider_ref"]
        assert line.line_id == "{}:{}".format(*place[line.reference])
    fees: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.kind is FEE:
            assert line.asset == "XLM"
            fees[line.reference or ""] += line.amount
    assert fees == {k: p["fee_amount"] for k, p in ours.items()}
    assert all(p["fee_asset"] == "XLM" and p["fee_amount"] > 0 for p in ours.values())
    assert not [line for line in lines if line.kind not in (PAYOUT, FEE)]
    assert len({line.line_id for line in lines}) == len(lines)

    # Each kind, on a payout of its own.
    ids = sorted(ours)
    missing, amount, destination, duplicate, reversal, fee = ids[:6]

    def ref(payout_id: str) -> str:
        return "{}:{}".format(*place[payout_id])

    elsewhere = Keypair.random().public_key
    stranger = dests[-1]
    got = {
        "missing": s.rpc.admin.discrepancy({"kind": "missing", "reference": ref(missing)}),
        "amount": s.rpc.admin.discrepancy({"kind": "amount", "reference": ref(amount), "amount": 123}),
        "destination": s.rpc.admin.discrepancy(
            {"kind": "destination", "reference": ref(destination), "destination": elsewhere}
        ),
        "duplicate": s.rpc.admin.discrepancy({"kind": "duplicate", "reference": ref(duplicate)}),
        "reversal": s.rpc.admin.discrepancy({"kind": "reversal", "reference": ref(reversal)}),
        "fee": s.rpc.admin.discrepancy({"kind": "fee", "reference": ref(fee), "amount": 5_000}),
        "unrequested": s.rpc.admin.discrepancy(
            {"kind": "unrequested", "amount": 777, "asset": "XLM", "destination": stranger}
        ),
    }
    assert got["missing"] is None
    until = _network_now(s) + timedelta(seconds=5)
    lines, pages = await _all(provider, since, until)
    assert pages > 1
    by_id = {line.line_id: line for line in lines}
    assert len(by_id) == len(lines)
    paid_of: dict[str | None, list[StatementLine]] = defaultdict(list)
    for line in lines:
        if line.kind is PAYOUT:
            paid_of[line.reference].append(line)

    assert missing not in paid_of
    assert [line.line_id for line in paid_of[amount]] == [got["amount"]]
    assert by_id[str(got["amount"])].amount == 123
    assert [line.line_id for line in paid_of[destination]] == [got["destination"]]
    assert by_id[str(got["destination"])].destination == elsewhere
    assert len(paid_of[duplicate]) == 2
    assert got["duplicate"] in {line.line_id for line in paid_of[duplicate]}
    assert {(line.amount, line.destination) for line in paid_of[duplicate]} == {
        (ours[duplicate]["amount"], ours[duplicate]["destination_address"])
    }
    back = by_id[str(got["reversal"])]
    assert (back.kind, back.reference, back.amount, back.asset) == (
        REVERSAL,
        reversal,
        ours[reversal]["amount"],
        ours[reversal]["asset"],
    )
    assert back.provider_ref == ours[reversal]["provider_ref"]
    fee_tx = place[fee][0]
    charged = sum(line.amount for line in lines if line.kind is FEE and line.line_id.startswith(fee_tx))
    assert charged == sum(ours[p]["fee_amount"] for p in tx_payouts[fee_tx]) + 5_000
    first = tx_payouts[fee_tx][0]  # a fee is the transaction's: a charge above the envelope's shows on place 0
    assert got["fee"] == f"{fee_tx}:0:fee"
    assert by_id[f"{fee_tx}:0:fee"].reference == first
    assert by_id[f"{fee_tx}:0:fee"].amount == ours[first]["fee_amount"] + 5_000
    stray = by_id[str(got["unrequested"])]
    assert (stray.kind, stray.reference, stray.amount, stray.asset, stray.destination) == (
        PAYOUT,
        None,
        777,
        "XLM",
        stranger,
    )
    assert None in paid_of
    assert len(paid_of[None]) == 1
    # Nothing else moved: every other payout still has exactly its one line.
    for payout_id in set(ids) - {missing, amount, destination, duplicate}:
        assert len(paid_of[payout_id]) == 1, payout_id
    # The window is honoured: a window that ends before the first payout lists nothing.
    empty, _ = await _all(provider, since - timedelta(hours=1), since - timedelta(minutes=30))
    assert empty == []
