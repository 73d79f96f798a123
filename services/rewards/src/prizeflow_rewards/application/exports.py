"""Finance exports of the ledger, as CSV streamed chunk by chunk: every transfer of a period, and one player's
wallet movements with their running balance.

The request is checked before the first byte (a refusal is problem details, never a cut CSV). Amounts are integers
in minor units of the row's asset. A row's `status` says what it did to the posted balances: `posted` (a transfer,
or the posting of a pending one) moved them; `pending` (a reservation) and `voided` (its release) did not. So the
posted rows of an account, summed from the first transfer, are its balance, to the minor unit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from prizeflow_contracts.money import ASSETS
from prizeflow_rewards.domain.ledger import TransferFlags
from prizeflow_runtime.csv_stream import ExportPeriod, Row, csv_stream
from prizeflow_runtime.errors import ErrorKind, UseCaseError

DEFAULT_CHUNK_ROWS: Final = 5_000
# Each export holds a pooled connection for as long as it streams: at most this many at once per process, the
# others wait (their header row already sent) instead of starving the service's pool.
DEFAULT_CONCURRENT_EXPORTS: Final = 2

LEDGER_COLUMNS: Final = (
    "transfer_id",
    "seq",
    "created_at",
    "kind",
    "status",
    "resolves_transfer_id",
    "debit_account_kind",
    "debit_account_owner",
    "credit_account_kind",
    "credit_account_owner",
    "asset",
    "amount",
    "correlation_id",
    "reference",
)
HISTORY_COLUMNS: Final = (
    "transfer_id",
    "created_at",
    "kind",
    "status",
    "asset",
    "amount",
    "running_balance",
    "counterparty_kind",
    "counterparty_owner",
    "resolves_transfer_id",
    "correlation_id",
    "reference",
)


def transfer_status(flags: int) -> str:
    """What a transfer did to posted balances (the module's docstring)."""
    if flags & TransferFlags.PENDING:
        return "pending"
    if flags & TransferFlags.VOID_PENDING:
        return "voided"
    return "posted"


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One ledger transfer; `reference` is its business key (`<kind>|<claim, round, top-up...>|...`)."""

    seq: int
    transfer_id: uuid.UUID
    created_at: datetime
    kind: str
    flags: int
    resolves: uuid.UUID | None
    debit_kind: str
    debit_owner: str
    credit_kind: str
    credit_owner: str
    asset: str
    amount: int
    correlation_id: str | None
    reference: str

    def cells(self) -> Row:
        return (
            str(self.transfer_id),
            self.seq,
            self.created_at,
            self.kind,
            transfer_status(self.flags),
            _text(self.resolves),
            self.debit_kind,
            self.debit_owner,
            self.credit_kind,
            self.credit_owner,
            self.asset,
            self.amount,
            self.correlation_id,
            self.reference,
        )


@dataclass(frozen=True, slots=True)
class WalletLine:
    """A transfer touching one of the player's wallets, seen from the wallet (`incoming`: the wallet is credited)."""

    seq: int
    transfer_id: uuid.UUID
    created_at: datetime
    kind: str
    flags: int
    resolves: uuid.UUID | None
    asset: str
    amount: int
    incoming: bool
    counterparty_kind: str
    counterparty_owner: str
    correlation_id: str | None
    reference: str

    @property
    def signed(self) -> int:
        return self.amount if self.incoming else -self.amount


@dataclass(frozen=True, slots=True)
class WalletChunk:
    """Movements in ledger order, with the wallets' posted balances at the period's start (the same in every
    chunk of one export: one snapshot)."""

    opening: Mapping[str, int]
    lines: Sequence[WalletLine]


@dataclass(frozen=True, slots=True)
class LedgerExportQuery:
    period: ExportPeriod
    asset: str | None = None


class LedgerExportReader(Protocol):
    """The ledger read in one consistent snapshot, `chunk_rows` rows per fetch, in ledger order (seq)."""

    def transfers(self, query: LedgerExportQuery, *, chunk_rows: int) -> AsyncIterator[Sequence[LedgerLine]]: ...

    def wallet_movements(
        self, player_id: str, period: ExportPeriod, *, chunk_rows: int
    ) -> AsyncIterator[WalletChunk]: ...


def running_balances(chunks: AsyncIterator[WalletChunk]) -> AsyncIterator[list[Row]]:
    """Each movement with its signed amount and the wallet's posted balance after it (per asset)."""

    async def rows() -> AsyncIterator[list[Row]]:
        balance: dict[str, int] | None = None
        async for chunk in chunks:
            if balance is None:
                balance = dict(chunk.opening)
            out: list[Row] = []
            for m in chunk.lines:
                if transfer_status(m.flags) == "posted":
                    balance[m.asset] = balance.get(m.asset, 0) + m.signed
                out.append(
                    (
                        str(m.transfer_id),
                        m.created_at,
                        m.kind,
                        transfer_status(m.flags),
                        m.asset,
                        m.signed,
                        balance.get(m.asset, 0),
                        m.counterparty_kind,
                        m.counterparty_owner,
                        _text(m.resolves),
                        m.correlation_id,
                        m.reference,
                    )
                )
            yield out

    return rows()


@dataclass
class ExportLedger:
    """`GET /v1/admin/exports/ledger.csv` and the players' histories: refuse a bad request up front, then stream."""

    reader: LedgerExportReader
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    concurrent: int = DEFAULT_CONCURRENT_EXPORTS
    _slots: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrent)

    def ledger_query(self, *, since: str | None, until: str | None, asset: str | None) -> LedgerExportQuery:
        period = ExportPeriod.parse(since, until)
        if asset is not None and asset not in ASSETS:
            raise UseCaseError(
                ErrorKind.BAD_REQUEST,
                "unknown_asset",
                f"unknown asset {asset[:16]!r}; known: {', '.join(sorted(ASSETS))}",
            )
        return LedgerExportQuery(period, asset)

    def ledger_csv(self, query: LedgerExportQuery) -> AsyncIterator[bytes]:
        return csv_stream(LEDGER_COLUMNS, self._ledger_rows(query))

    async def _ledger_rows(self, query: LedgerExportQuery) -> AsyncIterator[list[Row]]:
        async with self._slots:
            async for chunk in self.reader.transfers(query, chunk_rows=self.chunk_rows):
                yield [line.cells() for line in chunk]

    @staticmethod
    def history_period(*, since: str | None, until: str | None) -> ExportPeriod:
        return ExportPeriod.parse(since, until)

    def history_csv(self, player_id: str, period: ExportPeriod) -> AsyncIterator[bytes]:
        return csv_stream(HISTORY_COLUMNS, running_balances(self._movements(player_id, period)))

    async def _movements(self, player_id: str, period: ExportPeriod) -> AsyncIterator[WalletChunk]:
        async with self._slots:
            async for chunk in self.reader.wallet_movements(player_id, period, chunk_rows=self.chunk_rows):
                yield chunk


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_CONCURRENT_EXPORTS",
    "HISTORY_COLUMNS",
    "LEDGER_COLUMNS",
    "ExportLedger",
    "LedgerExportQuery",
    "LedgerExportReader",
    "LedgerLine",
    "WalletChunk",
    "WalletLine",
    "running_balances",
    "transfer_status",
]
