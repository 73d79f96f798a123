"""The ledger's read side on PostgreSQL (`LedgerBook`): transfers by flow or by account, which accounts exist."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.application.ports import TransferRecord
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef

Conn = AsyncSession | AsyncConnection

_SELECT = """
    SELECT t.seq, t.id, t.kind, t.amount, t.flags, t.pending_id, t.business_key, t.correlation_id, t.created_at,
           d.kind AS d_kind, d.owner_id AS d_owner, d.asset AS d_asset,
           c.kind AS c_kind, c.owner_id AS c_owner, c.asset AS c_asset
    FROM ledger_transfers t
    JOIN ledger_accounts d ON d.id = t.debit_account_id
    JOIN ledger_accounts c ON c.id = t.credit_account_id
"""
_ONE = text(_SELECT + "WHERE t.id = :id")
_EXISTING = text("SELECT id FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[]))")
# An account's transfers in any asset: its ids (one per asset), then each side's (account, seq) index.
_ACCOUNT_IDS = "SELECT id FROM ledger_accounts WHERE kind = :kind AND owner_id = :owner"


def _record(r: Any) -> TransferRecord:
    return TransferRecord(
        seq=r.seq,
        id=r.id,
        kind=r.kind,
        debit=AccountRef(AccountKind(r.d_kind), r.d_owner, r.d_asset),
        credit=AccountRef(AccountKind(r.c_kind), r.c_owner, r.c_asset),
        amount=r.amount,
        flags=r.flags,
        pending_id=r.pending_id,
        business_key=r.business_key,
        correlation_id=r.correlation_id,
        created_at=r.created_at,
    )


class SqlLedgerBook:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def transfers(
        self,
        *,
        correlation_id: str | None,
        account: tuple[AccountKind, str] | None,
        before_seq: int | None,
        limit: int,
    ) -> list[TransferRecord]:
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if correlation_id is not None:
            where.append("t.correlation_id = :cid")
            params["cid"] = correlation_id
        if account is not None:
            where.append(f"(t.debit_account_id IN ({_ACCOUNT_IDS}) OR t.credit_account_id IN ({_ACCOUNT_IDS}))")
            params.update(kind=account[0].value, owner=account[1])
        if before_seq is not None:
            where.append("t.seq < :before")
            params["before"] = before_seq
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        # Fixed fragments; every value is bound.
        rows = await self.session.execute(text(_SELECT + clause + "ORDER BY t.seq DESC LIMIT :limit"), params)
        return [_record(r) for r in rows]

    async def transfer(self, transfer_id: uuid.UUID) -> TransferRecord | None:
        row = (await self.session.execute(_ONE, {"id": transfer_id})).first()
        return _record(row) if row is not None else None

    async def existing(self, refs: Iterable[AccountRef]) -> set[uuid.UUID]:
        rows = await self.session.execute(_EXISTING, {"ids": [r.id for r in refs]})
        return {r[0] for r in rows}


__all__ = ["SqlLedgerBook"]
