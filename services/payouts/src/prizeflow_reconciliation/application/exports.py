"""The payouts export for finance: every payout created in a period, as CSV, streamed chunk by chunk.

No destination leaves the service this way (personal data): a payout's destination type only. The period, the
provider and the asset are checked before the first byte, so a refusal is problem details, never a cut CSV.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from prizeflow_contracts.money import ASSETS
from prizeflow_runtime.csv_stream import ExportPeriod, Row, csv_stream
from prizeflow_runtime.errors import ErrorKind, UseCaseError

DEFAULT_CHUNK_ROWS: Final = 5_000
# Each export holds a pooled connection for as long as it streams: at most this many at once per process, the
# others wait (their header row already sent) instead of starving the service's pool.
DEFAULT_CONCURRENT_EXPORTS: Final = 2

PAYOUT_COLUMNS: Final = (
    "payout_id",
    "created_at",
    "state",
    "provider",
    "provider_type",
    "asset",
    "amount",
    "fee_asset",
    "fee_amount",
    "destination_type",
    "paid_at",
    "provider_ref",
    "idempotency_key",
    "claim_id",
    "player_id",
    "correlation_id",
)


@dataclass(frozen=True, slots=True)
class PayoutExportQuery:
    period: ExportPeriod
    provider: str | None = None
    asset: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutExportRow:
    """One payout as finance reads it; amounts in minor units of `asset` (the fee in `fee_asset`'s)."""

    payout_id: str
    created_at: datetime
    state: str
    provider: str
    provider_type: str
    asset: str
    amount: int
    fee_asset: str | None
    fee_amount: int | None
    destination_type: str
    paid_at: datetime | None
    provider_ref: str | None
    idempotency_key: str
    claim_id: str
    player_id: str
    correlation_id: str

    def cells(self) -> Row:
        return (
            self.payout_id,
            self.created_at,
            self.state,
            self.provider,
            self.provider_type,
            self.asset,
            self.amount,
            self.fee_asset,
            self.fee_amount,
            self.destination_type,
            self.paid_at,
            self.provider_ref,
            self.idempotency_key,
            self.claim_id,
            self.player_id,
            self.correlation_id,
        )


class PayoutExportReader(Protocol):
    """Payouts created in the period (oldest first), `chunk_rows` at a time, from one consistent snapshot."""

    def payouts(self, query: PayoutExportQuery, *, chunk_rows: int) -> AsyncIterator[Sequence[PayoutExportRow]]: ...


def _unknown(code: str, detail: str) -> UseCaseError:
    return UseCaseError(ErrorKind.BAD_REQUEST, code, detail)


@dataclass
class ExportPayouts:
    """`GET /v1/admin/exports/payouts.csv`: refuses a bad request up front, then streams."""

    reader: PayoutExportReader
    providers: Collection[str]
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    concurrent: int = DEFAULT_CONCURRENT_EXPORTS
    _slots: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrent)

    def query(
        self, *, since: str | None, until: str | None, provider: str | None, asset: str | None
    ) -> PayoutExportQuery:
        period = ExportPeriod.parse(since, until)
        if provider is not None and provider not in self.providers:
            raise _unknown("unknown_provider", f"no provider {provider[:64]!r} is configured")
        if asset is not None and asset not in ASSETS:
            raise _unknown("unknown_asset", f"unknown asset {asset[:16]!r}; known: {', '.join(sorted(ASSETS))}")
        return PayoutExportQuery(period, provider, asset)

    def csv(self, query: PayoutExportQuery) -> AsyncIterator[bytes]:
        return csv_stream(PAYOUT_COLUMNS, self._rows(query))

    async def _rows(self, query: PayoutExportQuery) -> AsyncIterator[list[Row]]:
        async with self._slots:
            async for chunk in self.reader.payouts(query, chunk_rows=self.chunk_rows):
                yield [p.cells() for p in chunk]


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_CONCURRENT_EXPORTS",
    "PAYOUT_COLUMNS",
    "ExportPayouts",
    "PayoutExportQuery",
    "PayoutExportReader",
    "PayoutExportRow",
]
