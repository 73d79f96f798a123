"""`LedgerExportReader` on PostgreSQL: the ledger's transfers of a period, and a player's wallet movements, read
through a server-side cursor in one read-only snapshot (prizeflow_runtime.snapshot_cursor)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_rewards.application.exports import LedgerExportQuery, LedgerLine, WalletChunk, WalletLine
from prizeflow_rewards.domain.ledger import AccountKind, TransferFlags
from prizeflow_runtime.csv_stream import ExportPeriod
from prizeflow_runtime.snapshot_cursor import fetch_chunks, read_in_chunks, snapshot

# In ledger order (seq, unique and indexed): the order the balances moved in.
_TRANSFERS = """
    SELECT t.seq, t.id, t.created_at, t.kind, t.flags, t.pending_id, t.asset, t.amount, t.correlation_id,
           t.business_key, d.kind AS d_kind, d.owner_id AS d_owner, c.kind AS c_kind, c.owner_id AS c_owner
    FROM ledger_transfers t
    JOIN ledger_accounts d ON d.id = t.debit_account_id
    JOIN ledger_accounts c ON c.id = t.credit_account_id
    WHERE t.created_at >= :since AND t.created_at < :until
      AND (CAST(:asset AS text) IS NULL OR t.asset = CAST(:asset AS text))
    ORDER BY t.seq
"""

# Each side of a player's wallets through its (account, seq) index; a transfer never has a wallet on both sides.
_MOVES = """
    SELECT m.seq, m.id, m.created_at, m.kind, m.flags, m.pending_id, m.asset, m.amount, m.correlation_id,
           m.business_key, m.incoming, o.kind AS o_kind, o.owner_id AS o_owner
    FROM ledger_accounts w
    CROSS JOIN LATERAL (
        SELECT t.*, true AS incoming, t.debit_account_id AS other_id
        FROM ledger_transfers t WHERE t.credit_account_id = w.id
        UNION ALL
        SELECT t.*, false AS incoming, t.credit_account_id AS other_id
        FROM ledger_transfers t WHERE t.debit_account_id = w.id
    ) m
    JOIN ledger_accounts o ON o.id = m.other_id
    WHERE w.kind = :wallet AND w.owner_id = :player
"""
_HISTORY = _MOVES + " AND m.created_at >= :since AND m.created_at < :until ORDER BY m.seq"
# Posted balances at the period's start: the posted movements before it (neither a reservation nor its void).
_OPENING = text(
    "SELECT asset, SUM(CASE WHEN incoming THEN amount ELSE -amount END) AS balance "  # noqa: S608 - fixed SQL
    f"FROM ({_MOVES} AND m.created_at < :since AND m.flags & :unposted = 0) p GROUP BY asset"
)
_UNPOSTED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)


def _ledger_line(r: Any) -> LedgerLine:
    return LedgerLine(
        seq=r.seq,
        transfer_id=r.id,
        created_at=r.created_at,
        kind=r.kind,
        flags=r.flags,
        resolves=r.pending_id,
        debit_kind=r.d_kind,
        debit_owner=r.d_owner,
        credit_kind=r.c_kind,
        credit_owner=r.c_owner,
        asset=r.asset,
        amount=r.amount,
        correlation_id=r.correlation_id,
        reference=r.business_key,
    )


def _wallet_line(r: Any) -> WalletLine:
    return WalletLine(
        seq=r.seq,
        transfer_id=r.id,
        created_at=r.created_at,
        kind=r.kind,
        flags=r.flags,
        resolves=r.pending_id,
        asset=r.asset,
        amount=r.amount,
        incoming=r.incoming,
        counterparty_kind=r.o_kind,
        counterparty_owner=r.o_owner,
        correlation_id=r.correlation_id,
        reference=r.business_key,
    )


class SqlLedgerExportReader:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def transfers(self, query: LedgerExportQuery, *, chunk_rows: int) -> AsyncIterator[Sequence[LedgerLine]]:
        params = {"since": query.period.since, "until": query.period.until, "asset": query.asset}
        async for chunk in read_in_chunks(self.sessions, _TRANSFERS, params, chunk_rows=chunk_rows):
            yield [_ledger_line(r) for r in chunk]

    async def wallet_movements(
        self, player_id: str, period: ExportPeriod, *, chunk_rows: int
    ) -> AsyncIterator[WalletChunk]:
        who = {"wallet": AccountKind.PLAYER_WALLET.value, "player": player_id, "since": period.since}
        async with snapshot(self.sessions) as session:
            opened = await session.execute(_OPENING, {**who, "unposted": _UNPOSTED})
            opening = {r.asset: int(r.balance) for r in opened}
            params = {**who, "until": period.until}
            async for chunk in fetch_chunks(session, _HISTORY, params, chunk_rows=chunk_rows):
                yield WalletChunk(opening, [_wallet_line(r) for r in chunk])


__all__ = ["SqlLedgerExportReader"]
