"""The FX desk's quotes, positions and reconciliations on PostgreSQL (`FxQuotes`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.application.stores.fx import FxPosition, FxReconciliation
from prizeflow_rewards.domain.fx import Pair, Quote, Terms
from prizeflow_rewards.domain.ledger import AccountKind
from prizeflow_runtime.db import driver_connection

Conn = AsyncSession | AsyncConnection

_SELECT_QUOTE = (
    "SELECT id, player_id, source_asset, target_asset, source_amount, spread_bps, spread_amount, net_amount, "
    "target_amount, rate, rate_timestamp, created_at, expires_at, claim_id FROM fx_quotes "
)
_INSERT = text(
    "INSERT INTO fx_quotes (id, player_id, source_asset, target_asset, source_amount, spread_bps, spread_amount, "
    "net_amount, target_amount, rate, rate_timestamp, created_at, expires_at) VALUES (:id, :player_id, "
    ":source_asset, :target_asset, :source_amount, :spread_bps, :spread_amount, :net_amount, :target_amount, :rate, "
    ":rate_timestamp, :created_at, :expires_at)"
)
_GET = text(_SELECT_QUOTE + "WHERE id = :id")
_LOCK_MANY = text(_SELECT_QUOTE + "WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR UPDATE")
_BIND_MANY = """
    UPDATE fx_quotes AS q SET claim_id = b.claim_id, locked_at = $3
    FROM unnest($1::text[], $2::text[]) AS b(id, claim_id) WHERE q.id = b.id
"""
# Per asset with an FX account or a committed conversion: the account's posted balance, what the desk's posted
# transfers on it add up to (a pending one moves nothing yet, a void nothing ever), and what converted claims
# still held or approved will move once paid (+net in their source asset, -target in their target asset).
_POSITIONS = text(
    """
    WITH desk AS (
        SELECT id, asset, credits_posted - debits_posted AS ledger FROM ledger_accounts WHERE kind = :kind
    ), booked AS (
        SELECT d.asset, coalesce(sum(CASE WHEN t.credit_account_id = d.id THEN t.amount ELSE -t.amount END), 0) AS b
        FROM desk d JOIN ledger_transfers t ON (t.credit_account_id = d.id OR t.debit_account_id = d.id)
        WHERE (t.flags & 5) = 0
        GROUP BY d.asset
    ), committed AS (
        SELECT asset, sum(amount - fx_spread) AS c FROM claims
        WHERE quote_id IS NOT NULL AND status IN ('held', 'approved') GROUP BY asset
        UNION ALL
        SELECT payout_asset, -sum(payout_amount) FROM claims
        WHERE quote_id IS NOT NULL AND status IN ('held', 'approved') GROUP BY payout_asset
    ), assets AS (SELECT asset FROM desk UNION SELECT asset FROM committed)
    SELECT a.asset, coalesce(d.ledger, 0) AS ledger, coalesce(b.b, 0) AS booked,
           coalesce((SELECT sum(c) FROM committed c WHERE c.asset = a.asset), 0) AS committed
    FROM assets a LEFT JOIN desk d ON d.asset = a.asset LEFT JOIN booked b ON b.asset = a.asset
    ORDER BY a.asset
    """
)
_RECORD = """
    INSERT INTO fx_reconciliations (day, asset, ledger_position, booked_position, difference, checked_at)
    SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::timestamptz[])
    ON CONFLICT (day, asset) DO UPDATE SET ledger_position = excluded.ledger_position,
        booked_position = excluded.booked_position, difference = excluded.difference, checked_at = excluded.checked_at
"""
_RECONCILIATIONS = text(
    "SELECT day, asset, ledger_position, booked_position, difference, checked_at FROM fx_reconciliations "
    "ORDER BY day DESC, asset LIMIT :n"
)


def _quote(r: Any) -> Quote:
    terms = Terms(
        Pair(r.source_asset, r.target_asset),
        r.source_amount,
        Decimal(r.rate),
        r.spread_bps,
        r.spread_amount,
        r.net_amount,
        r.target_amount,
    )
    return Quote(r.id, r.player_id, terms, r.rate_timestamp, r.created_at, r.expires_at, r.claim_id)


class SqlFxQuotes:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def add(self, quote: Quote) -> None:
        t = quote.terms
        await self.session.execute(
            _INSERT,
            {
                "id": quote.id,
                "player_id": quote.player_id,
                "source_asset": t.pair.source,
                "target_asset": t.pair.target,
                "source_amount": t.source_amount,
                "spread_bps": t.spread_bps,
                "spread_amount": t.spread,
                "net_amount": t.net,
                "target_amount": t.target_amount,
                "rate": t.rate,
                "rate_timestamp": quote.rate_timestamp,
                "created_at": quote.created_at,
                "expires_at": quote.expires_at,
            },
        )

    async def get(self, quote_id: str) -> Quote | None:
        row = (await self.session.execute(_GET, {"id": quote_id})).first()
        return _quote(row) if row is not None else None

    async def lock_many(self, quote_ids: Iterable[str]) -> dict[str, Quote]:
        ids = sorted(set(quote_ids))
        if not ids:
            return {}
        return {r.id: _quote(r) for r in await self.session.execute(_LOCK_MANY, {"ids": ids})}

    async def bind_many(self, locks: Sequence[tuple[str, str]], *, at: datetime) -> None:
        if not locks:
            return
        raw = await driver_connection(self.session)
        await raw.execute(_BIND_MANY, [q for q, _ in locks], [c for _, c in locks], at)

    async def positions(self) -> list[FxPosition]:
        rows = await self.session.execute(_POSITIONS, {"kind": AccountKind.FX_POSITION.value})
        return [FxPosition(r.asset, int(r.ledger), int(r.booked), int(r.committed)) for r in rows]

    async def record_reconciliation(self, day: date, positions: Sequence[FxPosition], *, at: datetime) -> None:
        if not positions:
            return
        raw = await driver_connection(self.session)
        await raw.execute(
            _RECORD,
            day,
            [p.asset for p in positions],
            [p.ledger for p in positions],
            [p.booked for p in positions],
            [p.difference for p in positions],
            [at] * len(positions),
        )

    async def reconciliations(self, *, limit: int) -> list[FxReconciliation]:
        rows = await self.session.execute(_RECONCILIATIONS, {"n": limit})
        return [
            FxReconciliation(r.day, r.asset, r.ledger_position, r.booked_position, r.difference, r.checked_at)
            for r in rows
        ]


__all__ = ["SqlFxQuotes"]
