"""`LedgerPostings` on PostgreSQL: what the ledger booked on the rails' accounts, kept once per ledger transfer in
the transaction of the consumer that read it (the lifecycle's payout-requests handler)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.events.payouts import LedgerPosted

_RECORD_POSTINGS = text(
    """
    INSERT INTO ledger_postings (transfer_id, kind, provider_type, asset, amount, claim_id, payout_id, adjustment_id,
                                 posted_at)
    SELECT * FROM unnest(CAST(:transfer_id AS text[]), CAST(:kind AS text[]), CAST(:provider AS text[]),
                         CAST(:asset AS text[]), CAST(:amount AS bigint[]), CAST(:claim_id AS text[]),
                         CAST(:payout_id AS text[]), CAST(:adjustment_id AS text[]), CAST(:posted_at AS timestamptz[]))
    ON CONFLICT (transfer_id) DO NOTHING
    """
)


class SqlLedgerPostings:
    """`LedgerPostings` in the transaction of `session` (the consumer's inbox transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, postings: Sequence[LedgerPosted]) -> None:
        if not postings:
            return
        await self.session.execute(
            _RECORD_POSTINGS,
            {
                "transfer_id": [p.transfer_id for p in postings],
                "kind": [p.kind.value for p in postings],
                "provider": [p.provider.value for p in postings],
                "asset": [p.amount.asset for p in postings],
                "amount": [p.amount.amount for p in postings],
                "claim_id": [p.claim_id for p in postings],
                "payout_id": [p.payout_id for p in postings],
                "adjustment_id": [p.adjustment_id for p in postings],
                "posted_at": [p.posted_at for p in postings],
            },
        )


__all__ = ["SqlLedgerPostings"]
