"""Wallet reads (balances, history with cursor pagination), top-ups and the game's risk flag."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from prizeflow_rewards.application.common import audit, count_transfers
from prizeflow_rewards.application.ports import Conn, Ledger
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountKind, Transfer, TransferKind
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.auth import Principal


class CursorError(ValueError):
    pass


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, seq = raw.partition(":")
        if prefix != "seq":
            raise CursorError("not a history cursor")
        return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise CursorError(f"invalid cursor: {err}") from err


async def wallet_balances(conn: Conn, player_id: str) -> list[dict[str, Any]]:
    """Balances per asset. A wallet no transfer ever moved is no balance: the ledger creates accounts when it
    locks them, before it knows whether money will move (a held round locks its winners' wallets)."""
    rows = await conn.execute(
        text(
            "SELECT asset, debits_posted, credits_posted, debits_pending, credits_pending FROM ledger_accounts "
            "WHERE kind = :k AND owner_id = :p "
            "AND (debits_posted, credits_posted, debits_pending, credits_pending) <> (0, 0, 0, 0) ORDER BY asset"
        ),
        {"k": AccountKind.PLAYER_WALLET.value, "p": player_id},
    )
    return [
        {
            "asset": r.asset,
            "balance": r.credits_posted - r.debits_posted,
            "reserved": r.debits_pending,
            "available": r.credits_posted - r.debits_posted - r.debits_pending,
            "incoming_pending": r.credits_pending,
        }
        for r in rows
    ]


_HISTORY = """
SELECT t.seq, t.id, t.kind, t.asset, t.amount, t.flags, t.pending_id, t.business_key, t.created_at,
       (t.credit_account_id = ANY(CAST(:ids AS uuid[]))) AS incoming
FROM ledger_transfers t
WHERE (t.debit_account_id = ANY(CAST(:ids AS uuid[])) OR t.credit_account_id = ANY(CAST(:ids AS uuid[])))
  {filters}
ORDER BY t.seq DESC
LIMIT :limit
"""


async def wallet_history(
    conn: Conn,
    player_id: str,
    *,
    asset: str | None,
    kind: TransferKind | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """Newest first; `next_cursor` continues after the last item (stable under concurrent inserts)."""
    rows = await conn.execute(
        text(
            "SELECT id FROM ledger_accounts WHERE kind = :k AND owner_id = :p "
            "AND (CAST(:a AS text) IS NULL OR asset = CAST(:a AS text))"
        ),
        {"k": AccountKind.PLAYER_WALLET.value, "p": player_id, "a": asset},
    )
    ids = [r.id for r in rows]
    if not ids:
        return {"items": [], "next_cursor": None}
    filters, params = [], {"ids": ids, "limit": limit + 1}
    if kind is not None:
        filters.append("AND t.kind = :kind")
        params["kind"] = kind.value
    if cursor is not None:
        filters.append("AND t.seq < :before")
        params["before"] = decode_cursor(cursor)
    result = list(await conn.execute(text(_HISTORY.format(filters=" ".join(filters))), params))
    page = result[:limit]
    items = [
        {
            "transfer_id": str(r.id),
            "kind": r.kind,
            "asset": r.asset,
            "amount": r.amount,
            "direction": "in" if r.incoming else "out",
            "pending": bool(r.flags & 1),
            "resolves": str(r.pending_id) if r.pending_id else None,
            "business_key": r.business_key,
            "created_at": r.created_at.isoformat(),
        }
        for r in page
    ]
    return {"items": items, "next_cursor": encode_cursor(page[-1].seq) if len(result) > limit else None}


@dataclass
class TopUp:
    """provider external → wallet, keyed by the provider's reference (one reference credits once)."""

    ledger: Ledger
    source: str
    metrics: RewardsMetrics | None = None

    async def __call__(
        self,
        conn: Conn,
        actor: Principal,
        *,
        player_id: str,
        asset: str,
        amount: int,
        provider: str,
        reference: str,
        correlation_id: str,
    ) -> tuple[str, bool]:
        t = Transfer.of(
            accounts.external(provider, asset),
            accounts.wallet(player_id, asset),
            amount,
            TransferKind.TOP_UP,
            provider,
            reference,
        )
        result = await self.ledger.apply(conn, [t])
        count_transfers(self.metrics, result)
        if result.applied:
            await audit(
                conn,
                source=self.source,
                actor=actor,
                action="wallet.top_up",
                target_type="wallet",
                target_id=player_id,
                correlation_id=correlation_id,
                after={"asset": asset, "amount": amount, "provider": provider, "reference": reference},
            )
        return str(t.id), bool(result.applied)


async def set_risk_flag(
    conn: Conn, actor: Principal, *, source: str, player_id: str, flagged: bool, reason: str | None, correlation_id: str
) -> None:
    await conn.execute(
        text(
            "INSERT INTO player_risk_flags (player_id, flagged, reason, updated_by) VALUES (:p, :f, :r, :by) "
            "ON CONFLICT (player_id) DO UPDATE SET flagged = excluded.flagged, reason = excluded.reason, "
            "updated_by = excluded.updated_by, updated_at = now()"
        ),
        {"p": player_id, "f": flagged, "r": reason, "by": actor.user_id},
    )
    await audit(
        conn,
        source=source,
        actor=actor,
        action="player.risk_flag",
        target_type="player",
        target_id=player_id,
        correlation_id=correlation_id,
        reason=reason,
        after={"flagged": str(flagged).lower()},
    )
