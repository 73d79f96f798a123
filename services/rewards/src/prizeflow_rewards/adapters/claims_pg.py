"""Claims, payout destinations and risk flags on PostgreSQL (`ClaimRepository`, `Players`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.application.ports import ClaimDecision, ClaimHistory
from prizeflow_rewards.domain.claims import Claim, ClaimStatus

Conn = AsyncSession | AsyncConnection

_SELECT_CLAIM = (
    "SELECT id, player_id, asset, amount, destination, status, hold_code, hold_detail, rejection_code, "
    "payout_request_id, correlation_id, created_at, destination_key, payout_id FROM claims "
)
_GET = text(_SELECT_CLAIM + "WHERE id = :id")
_GET_LOCKED = text(_SELECT_CLAIM + "WHERE id = :id FOR NO KEY UPDATE")
# A consumer poll's claims, in id order (before any account): claims are always locked before accounts.
_LOCK_MANY = text(
    "SELECT id, player_id, asset FROM claims WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR NO KEY UPDATE"
)
_HELD = text(_SELECT_CLAIM + "WHERE status = 'held' ORDER BY created_at LIMIT :n")
_OF_PLAYER = text(_SELECT_CLAIM + "WHERE player_id = :p ORDER BY created_at DESC, id DESC LIMIT :n")
_HISTORY = text(
    """
    SELECT
      coalesce(sum(amount) FILTER (WHERE asset = :asset AND created_at > :day
                                   AND status IN ('held', 'approved', 'paid')), 0) AS claimed_today,
      count(*) FILTER (WHERE created_at > :velocity) AS recent,
      count(*) FILTER (WHERE created_at > :window AND status IN ('paid', 'rejected', 'voided', 'returned')) AS decided,
      count(*) FILTER (WHERE created_at > :window AND status IN ('rejected', 'voided', 'returned')) AS failed
    FROM claims WHERE player_id = :player AND created_at > least(:day, :velocity, :window)
    """
)
_INSERT = text(
    "INSERT INTO claims (id, player_id, asset, amount, destination, destination_key, status, hold_code, "
    "hold_detail, pending_transfer_id, payout_request_id, correlation_id, created_at, decided_at) "
    "VALUES (:id, :p, :a, :amt, CAST(:d AS jsonb), :k, :s, :hc, :hd, :t, :pr, :c, :now, :decided)"
)
_DECIDE = text("UPDATE claims SET status = :s, decided_at = :t, decided_by = :by, rejection_code = :rc WHERE id = :id")
_BIND = text("UPDATE claims SET payout_id = :p WHERE id = :id")
_SETTLE = text("UPDATE claims SET status = :s, settled_at = now() WHERE id = :id")
_STATS = text(
    "SELECT count(*) FILTER (WHERE status = 'held') AS held, "
    "count(*) FILTER (WHERE decided_at > now() - interval '1 day' "
    "  AND status IN ('paid', 'rejected', 'voided', 'returned')) AS decided, "
    "count(*) FILTER (WHERE decided_at > now() - interval '1 day' "
    "  AND status IN ('rejected', 'voided', 'returned')) AS failed FROM claims"
)


def _claim(row: Any) -> Claim:
    return Claim(
        row.id,
        row.player_id,
        row.asset,
        row.amount,
        row.destination,
        ClaimStatus(row.status),
        row.hold_code,
        row.hold_detail,
        row.rejection_code,
        row.payout_request_id,
        row.correlation_id,
        row.created_at,
        row.destination_key,
        row.payout_id,
    )


class PgClaimRepository:
    async def get(self, tx: Conn, claim_id: str, *, lock: bool = False) -> Claim | None:
        row = (await tx.execute(_GET_LOCKED if lock else _GET, {"id": claim_id})).first()
        return _claim(row) if row is not None else None

    async def held(self, tx: Conn, *, limit: int) -> list[Claim]:
        return [_claim(r) for r in await tx.execute(_HELD, {"n": limit})]

    async def of_player(self, tx: Conn, player_id: str, *, limit: int) -> list[Claim]:
        return [_claim(r) for r in await tx.execute(_OF_PLAYER, {"p": player_id, "n": limit})]

    async def lock_many(self, tx: Conn, claim_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        rows = await tx.execute(_LOCK_MANY, {"ids": list(claim_ids)})
        return {r.id: (r.player_id, r.asset) for r in rows}

    async def history(
        self, tx: Conn, player_id: str, asset: str, *, day: datetime, velocity: datetime, window: datetime
    ) -> ClaimHistory:
        row = (
            await tx.execute(
                _HISTORY, {"player": player_id, "asset": asset, "day": day, "velocity": velocity, "window": window}
            )
        ).one()
        return ClaimHistory(int(row.claimed_today), int(row.recent), int(row.decided), int(row.failed))

    async def add(self, tx: Conn, claim: Claim) -> None:
        held = claim.status is ClaimStatus.HELD
        await tx.execute(
            _INSERT,
            {
                "id": claim.id,
                "p": claim.player_id,
                "a": claim.asset,
                "amt": claim.amount,
                "d": json.dumps(claim.destination),
                "k": claim.destination_key,
                "s": claim.status.value,
                "hc": claim.hold_code,
                "hd": claim.hold_detail,
                "t": claim.pending.id,
                "pr": claim.payout_request_id,
                "c": claim.correlation_id,
                "now": claim.created_at,
                "decided": None if held else claim.created_at,
            },
        )

    async def decide(self, tx: Conn, claim_id: str, decision: ClaimDecision) -> None:
        await tx.execute(
            _DECIDE,
            {
                "s": decision.status.value,
                "t": decision.at,
                "by": decision.by,
                "rc": decision.rejection_code,
                "id": claim_id,
            },
        )

    async def bind_payout(self, tx: Conn, claim_id: str, payout_id: str) -> None:
        await tx.execute(_BIND, {"p": payout_id, "id": claim_id})

    async def settle(self, tx: Conn, claim_id: str, status: ClaimStatus) -> None:
        await tx.execute(_SETTLE, {"s": status.value, "id": claim_id})

    async def stats(self, tx: Conn) -> tuple[int, int, int]:
        """(held now, decided in the last day, of which failed): the metrics refresher's figures."""
        row = (await tx.execute(_STATS)).one()
        return int(row.held), int(row.decided), int(row.failed)


class PgPlayers:
    async def destination_first_seen(self, tx: Conn, player_id: str, destination_key: str) -> datetime | None:
        seen: datetime | None = (
            await tx.execute(
                text("SELECT first_seen_at FROM payout_destinations WHERE player_id = :p AND destination_key = :k"),
                {"p": player_id, "k": destination_key},
            )
        ).scalar_one_or_none()
        return seen

    async def remember_destination(self, tx: Conn, player_id: str, destination_key: str, at: datetime) -> None:
        await tx.execute(
            text(
                "INSERT INTO payout_destinations (player_id, destination_key, first_seen_at) VALUES (:p, :k, :t) "
                "ON CONFLICT DO NOTHING"
            ),
            {"p": player_id, "k": destination_key, "t": at},
        )

    async def risk_flagged(self, tx: Conn, player_id: str) -> bool:
        flagged = (
            await tx.execute(text("SELECT flagged FROM player_risk_flags WHERE player_id = :p"), {"p": player_id})
        ).scalar_one_or_none()
        return bool(flagged)

    async def set_risk_flag(self, tx: Conn, player_id: str, *, flagged: bool, reason: str | None, by: str) -> None:
        await tx.execute(
            text(
                "INSERT INTO player_risk_flags (player_id, flagged, reason, updated_by) VALUES (:p, :f, :r, :by) "
                "ON CONFLICT (player_id) DO UPDATE SET flagged = excluded.flagged, reason = excluded.reason, "
                "updated_by = excluded.updated_by, updated_at = now()"
            ),
            {"p": player_id, "f": flagged, "r": reason, "by": by},
        )


__all__ = ["PgClaimRepository", "PgPlayers"]
