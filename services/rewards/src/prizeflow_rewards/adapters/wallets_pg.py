"""Wallet reads on PostgreSQL (`WalletQueries`): balances and history straight from the ledger's tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.application.ports import WalletMovement
from prizeflow_rewards.domain.ledger import AccountKind, Balance, TransferFlags, TransferKind

Conn = AsyncSession | AsyncConnection

_HISTORY = """
SELECT t.seq, t.id, t.kind, t.asset, t.amount, t.flags, t.pending_id, t.business_key, t.created_at,
       (t.credit_account_id = ANY(CAST(:ids AS uuid[]))) AS incoming
FROM ledger_transfers t
WHERE (t.debit_account_id = ANY(CAST(:ids AS uuid[])) OR t.credit_account_id = ANY(CAST(:ids AS uuid[])))
  {filters}
ORDER BY t.seq DESC
LIMIT :limit
"""


class SqlWalletQueries:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def balances(self, player_id: str) -> list[tuple[str, Balance]]:
        rows = await self.session.execute(
            text(
                "SELECT asset, debits_posted, credits_posted, debits_pending, credits_pending FROM ledger_accounts "
                "WHERE kind = :k AND owner_id = :p "
                "AND (debits_posted, credits_posted, debits_pending, credits_pending) <> (0, 0, 0, 0) ORDER BY asset"
            ),
            {"k": AccountKind.PLAYER_WALLET.value, "p": player_id},
        )
        return [
            (r.asset, Balance(r.debits_posted, r.credits_posted, r.debits_pending, r.credits_pending)) for r in rows
        ]

    async def wallet_ids(self, player_id: str, *, asset: str | None) -> list[uuid.UUID]:
        rows = await self.session.execute(
            text(
                "SELECT id FROM ledger_accounts WHERE kind = :k AND owner_id = :p "
                "AND (CAST(:a AS text) IS NULL OR asset = CAST(:a AS text))"
            ),
            {"k": AccountKind.PLAYER_WALLET.value, "p": player_id, "a": asset},
        )
        return [r.id for r in rows]

    async def movements(
        self,
        wallet_ids: Sequence[uuid.UUID],
        *,
        kind: TransferKind | None,
        before_seq: int | None,
        limit: int,
    ) -> list[WalletMovement]:
        filters: list[str] = []
        params: dict[str, Any] = {"ids": list(wallet_ids), "limit": limit}
        if kind is not None:
            filters.append("AND t.kind = :kind")
            params["kind"] = kind.value
        if before_seq is not None:
            filters.append("AND t.seq < :before")
            params["before"] = before_seq
        rows = await self.session.execute(text(_HISTORY.format(filters=" ".join(filters))), params)
        return [
            WalletMovement(
                seq=r.seq,
                transfer_id=r.id,
                kind=r.kind,
                asset=r.asset,
                amount=r.amount,
                incoming=r.incoming,
                pending=bool(r.flags & TransferFlags.PENDING),
                resolves=r.pending_id,
                business_key=r.business_key,
                created_at=r.created_at,
            )
            for r in rows
        ]


__all__ = ["SqlWalletQueries"]
