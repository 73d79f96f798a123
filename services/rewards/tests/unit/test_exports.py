"""The ledger exports' rules on a fake reader: what a row's status is, the running balance (posted rows move it,
reservations and their voids do not), and a bad request refused before the reader is asked anything."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from prizeflow_rewards.application.exports import (
    HISTORY_COLUMNS,
    ExportLedger,
    LedgerExportQuery,
    LedgerLine,
    WalletChunk,
    WalletLine,
    transfer_status,
)
from prizeflow_rewards.domain.ledger import TransferFlags
from prizeflow_runtime.csv_stream import ExportPeriod
from prizeflow_runtime.errors import UseCaseError

AT = datetime(2026, 3, 1, tzinfo=UTC)


def move(amount: int, *, incoming: bool, flags: TransferFlags = TransferFlags.NONE, asset: str = "USDC") -> WalletLine:
    return WalletLine(
        seq=0,
        transfer_id=uuid.uuid4(),
        created_at=AT,
        kind="reward" if incoming else "claim_reserve",
        flags=int(flags),
        resolves=None,
        asset=asset,
        amount=amount,
        incoming=incoming,
        counterparty_kind="campaign_pool",
        counterparty_owner="=c",
        correlation_id=None,
        reference="reward|r|p",
    )


@dataclass
class FakeReader:
    chunks: list[WalletChunk] = field(default_factory=list)
    asked: list[object] = field(default_factory=list)

    async def transfers(self, query: LedgerExportQuery, *, chunk_rows: int) -> AsyncIterator[Sequence[LedgerLine]]:
        self.asked.append(query)
        for _ in ():
            yield []

    async def wallet_movements(
        self, player_id: str, period: ExportPeriod, *, chunk_rows: int
    ) -> AsyncIterator[WalletChunk]:
        self.asked.append((player_id, period, chunk_rows))
        for chunk in self.chunks:
            yield chunk


def test_a_rows_status_is_what_it_did_to_posted_balances() -> None:
    flags = [TransferFlags.NONE, TransferFlags.PENDING, TransferFlags.POST_PENDING, TransferFlags.VOID_PENDING]
    assert [transfer_status(int(f)) for f in flags] == ["posted", "pending", "posted", "voided"]
    assert transfer_status(int(TransferFlags.LINKED)) == "posted"
    assert transfer_status(int(TransferFlags.PENDING | TransferFlags.LINKED)) == "pending"


async def test_the_running_balance_starts_at_the_opening_and_moves_on_posted_rows_only() -> None:
    opening = {"USDC": 1_000}
    reader = FakeReader(
        [
            WalletChunk(opening, [move(500, incoming=True), move(200, incoming=False, flags=TransferFlags.PENDING)]),
            WalletChunk(
                opening,
                [
                    move(200, incoming=False, flags=TransferFlags.POST_PENDING),
                    move(7, incoming=True, asset="XLM"),
                    move(50, incoming=False, flags=TransferFlags.VOID_PENDING),
                ],
            ),
        ]
    )
    exports = ExportLedger(reader, chunk_rows=2)
    period = exports.history_period(since="2026-03-01", until="2026-04-01")
    body = b"".join([piece async for piece in exports.history_csv("p-1", period)]).decode()
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert [(r["status"], r["asset"], r["amount"], r["running_balance"]) for r in rows] == [
        ("posted", "USDC", "500", "1500"),
        ("pending", "USDC", "-200", "1500"),
        ("posted", "USDC", "-200", "1300"),
        ("posted", "XLM", "7", "7"),
        ("voided", "USDC", "-50", "1300"),
    ]
    assert {r["counterparty_owner"] for r in rows} == {"'=c"}
    assert reader.asked == [("p-1", period, 2)]


@pytest.mark.parametrize(
    ("since", "until", "asset", "code"),
    [
        ("2026-03-02", "2026-03-01", None, "invalid_period"),
        ("2025-01-01", "2026-03-01", None, "invalid_period"),
        ("2026-03-01", "2026-03-02", "DOGE", "unknown_asset"),
    ],
)
def test_a_bad_request_is_refused_before_the_reader_is_asked(
    since: str, until: str, asset: str | None, code: str
) -> None:
    reader = FakeReader()
    with pytest.raises(UseCaseError) as refused:
        ExportLedger(reader).ledger_query(since=since, until=until, asset=asset)
    assert (refused.value.status, refused.value.code) == (400, code)
    assert reader.asked == []


async def test_an_export_holds_one_of_the_processs_few_slots_while_it_streams() -> None:
    reader = FakeReader([WalletChunk({}, [move(1, incoming=True)]), WalletChunk({}, [move(2, incoming=True)])])
    exports = ExportLedger(reader, concurrent=1)
    period = exports.history_period(since="2026-03-01", until="2026-04-01")
    stream = exports.history_csv("p-1", period)
    assert (await anext(stream)).startswith(b"transfer_id,")  # the header: no slot taken yet
    assert not exports._slots.locked()
    await anext(stream)
    assert exports._slots.locked()  # a second export would wait here, not take a second connection
    assert [piece async for piece in stream]
    assert not exports._slots.locked()
