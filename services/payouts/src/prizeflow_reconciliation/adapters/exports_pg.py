"""`PayoutExportReader` on PostgreSQL: payouts created in a period, read through a server-side cursor.

Ordered by (created_at, id); without an index on `payouts (created_at)` PostgreSQL sorts the period's rows on its
side (on disk past work_mem) in the first FETCH, never in this process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_reconciliation.application.exports import PayoutExportQuery, PayoutExportRow
from prizeflow_runtime.snapshot_cursor import read_in_chunks

# The destination's address and memo are never selected: they are personal data.
_SELECT = """
    SELECT id, created_at, state, provider_name, provider_type, asset, amount, fee_asset, fee_amount,
           destination_type, paid_at, provider_ref, idempotency_key, claim_id, player_id, correlation_id
    FROM payout_facts
    WHERE created_at >= :since AND created_at < :until
      AND (CAST(:provider AS text) IS NULL OR provider_name = CAST(:provider AS text))
      AND (CAST(:asset AS text) IS NULL OR asset = CAST(:asset AS text))
    ORDER BY created_at, id
"""


def _row(r: Any) -> PayoutExportRow:
    return PayoutExportRow(
        payout_id=r.id,
        created_at=r.created_at,
        state=r.state,
        provider=r.provider_name,
        provider_type=r.provider_type,
        asset=r.asset,
        amount=r.amount,
        fee_asset=r.fee_asset,
        fee_amount=r.fee_amount,
        destination_type=r.destination_type,
        paid_at=r.paid_at,
        provider_ref=r.provider_ref,
        idempotency_key=r.idempotency_key,
        claim_id=r.claim_id,
        player_id=r.player_id,
        correlation_id=r.correlation_id,
    )


class PgPayoutExportReader:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def payouts(self, query: PayoutExportQuery, *, chunk_rows: int) -> AsyncIterator[Sequence[PayoutExportRow]]:
        params = {
            "since": query.period.since,
            "until": query.period.until,
            "provider": query.provider,
            "asset": query.asset,
        }
        async for chunk in read_in_chunks(self.sessions, _SELECT, params, chunk_rows=chunk_rows):
            yield [_row(r) for r in chunk]


__all__ = ["PgPayoutExportReader"]
