"""Claims, payout destinations and risk flags on PostgreSQL (`ClaimRepository`, `Players`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.application.ports import ClaimDecision, ClaimHistory, FirstUse, IntakeFacts, IntakeQuery
from prizeflow_rewards.domain.claims import RESUMED_BY_VERIFICATION, Claim, ClaimStatus
from prizeflow_rewards.domain.fx import Conversion
from prizeflow_runtime.db import driver_connection

Conn = AsyncSession | AsyncConnection

_SELECT_CLAIM = (
    "SELECT id, player_id, asset, amount, destination, status, hold_code, hold_detail, rejection_code, "
    "payout_request_id, correlation_id, created_at, destination_key, payout_id, policy_version, "
    "quote_id, payout_asset, payout_amount, fx_spread, fx_rate, clearing_shard FROM claims "
)
_GET = text(_SELECT_CLAIM + "WHERE id = :id")
_FIND = text(_SELECT_CLAIM + "WHERE id = ANY(CAST(:ids AS text[]))")
_GET_LOCKED = text(_SELECT_CLAIM + "WHERE id = :id FOR NO KEY UPDATE")
# A consumer poll's claims, in id order (before any account): claims are always locked before accounts.
_LOCK_MANY = text(_SELECT_CLAIM + "WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR NO KEY UPDATE")
_HELD = text(_SELECT_CLAIM + "WHERE status = 'held' ORDER BY created_at LIMIT :n")
_OF_PLAYER = text(_SELECT_CLAIM + "WHERE player_id = :p ORDER BY created_at DESC, id DESC LIMIT :n")
# Held for a kind the player's verification resumes (`CLAIM_HOLD_KINDS`), in id order. The codes are the table's,
# written into the statement (not a parameter) so the planner can use `claims_waiting_verification`, the partial
# index on them.
_RESUMED = ", ".join(f"'{code}'" for code in sorted(RESUMED_BY_VERIFICATION))
_WAITING = text(
    _SELECT_CLAIM + "WHERE player_id = ANY(CAST(:p AS text[])) AND status = 'held' "
    f"AND hold_code IN ({_RESUMED}) ORDER BY id"
)
_REHOLD = text(
    "UPDATE claims SET hold_code = :code, hold_detail = :detail, policy_version = :v WHERE id = :id AND status = 'held'"
)
# Everything the claim rules read for an intake batch, one row per request in the batch's order: the claim its
# id names, the player's history (claims created after the oldest of the three windows), the destination's first
# use, the risk flag, whether a route pays it, and the risk policy's sums over each window it names ($11, seconds,
# up to $10): the player's amounts in the asset and claims in any, the destination's amounts in the asset across
# players (index-only scans of claims_player_asset_time, claims_player_time and claims_destination_time; a claim
# that exists is in its own sums). Prepared once per connection (asyncpg), arrays in.
_INTAKE_FACTS = """
    SELECT q.i, c.id, c.player_id, c.asset, c.amount, c.destination, c.status, c.hold_code, c.hold_detail,
           c.rejection_code, c.payout_request_id, c.correlation_id, c.created_at, c.destination_key, c.payout_id,
           c.policy_version, c.quote_id, c.payout_asset, c.payout_amount, c.fx_spread, c.fx_rate, c.clearing_shard,
           h.claimed_today, h.recent, h.decided, h.failed, d.first_seen_at, coalesce(f.flagged, false) AS flagged,
           EXISTS (SELECT 1 FROM payout_routes r WHERE r.asset = q.passet AND r.destination_type = q.dtype
                   AND (r.amounts IS NULL OR q.pamount = ANY(r.amounts))) AS routable,
           pw.player_totals, pw.player_counts, pw.destination_totals
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $12::text[], $13::bigint[])
         WITH ORDINALITY AS q(claim_id, player, asset, amount, dtype, dkey, passet, pamount, i)
    LEFT JOIN claims c ON c.id = q.claim_id
    LEFT JOIN payout_destinations d ON d.player_id = q.player AND d.destination_key = q.dkey
    LEFT JOIN player_risk_flags f ON f.player_id = q.player
    CROSS JOIN LATERAL (
        SELECT
          coalesce(sum(k.amount) FILTER (WHERE k.asset = q.asset AND k.created_at > $7
                                         AND k.status IN ('held', 'approved', 'paid')), 0) AS claimed_today,
          count(*) FILTER (WHERE k.created_at > $8) AS recent,
          count(*) FILTER (WHERE k.created_at > $9
                           AND k.status IN ('paid', 'rejected', 'voided', 'returned')) AS decided,
          count(*) FILTER (WHERE k.created_at > $9 AND k.status IN ('rejected', 'voided', 'returned')) AS failed
        FROM claims k WHERE k.player_id = q.player AND k.created_at > least($7, $8, $9)
    ) AS h
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(t.player_total ORDER BY w.i), '{}') AS player_totals,
               coalesce(array_agg(t.player_count ORDER BY w.i), '{}') AS player_counts,
               coalesce(array_agg(t.destination_total ORDER BY w.i), '{}') AS destination_totals
        FROM (SELECT i, $10::timestamptz - s * interval '1 second' AS since
              FROM unnest($11::bigint[]) WITH ORDINALITY AS u(s, i)) AS w
        CROSS JOIN LATERAL (
            SELECT
              (SELECT coalesce(sum(k.amount), 0) FROM claims k
               WHERE k.player_id = q.player AND k.asset = q.asset AND k.created_at > w.since
                 AND k.status IN ('held', 'approved', 'paid')) AS player_total,
              (SELECT count(*) FROM claims k
               WHERE k.player_id = q.player AND k.created_at > w.since) AS player_count,
              (SELECT coalesce(sum(k.amount), 0) FROM claims k
               WHERE k.destination_key = q.dkey AND k.asset = q.asset AND k.created_at > w.since
                 AND k.status IN ('held', 'approved', 'paid')) AS destination_total
        ) AS t
    ) AS pw
    ORDER BY q.i
"""
_INSERT_MANY = """
    INSERT INTO claims (id, player_id, asset, amount, destination, destination_key, status, hold_code, hold_detail,
                        pending_transfer_id, payout_request_id, correlation_id, created_at, decided_at,
                        policy_version, quote_id, payout_asset, payout_amount, fx_spread, fx_rate, clearing_shard)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::jsonb[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::uuid[], $11::text[], $12::text[], $13::timestamptz[],
                         $14::timestamptz[], $15::bigint[], $16::text[], $17::text[], $18::bigint[], $19::bigint[],
                         $20::numeric[], $21::smallint[])
"""
_REMEMBER_MANY = """
    INSERT INTO payout_destinations (player_id, destination_key, first_seen_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
    ON CONFLICT DO NOTHING
"""
_DECIDE = text("UPDATE claims SET status = :s, decided_at = :t, decided_by = :by, rejection_code = :rc WHERE id = :id")
_BIND_MANY = """
    UPDATE claims AS c SET payout_id = b.payout_id
    FROM unnest($1::text[], $2::text[]) AS b(id, payout_id) WHERE c.id = b.id
"""
_SETTLE_MANY = """
    UPDATE claims AS c SET status = s.status, settled_at = now()
    FROM unnest($1::text[], $2::text[]) AS s(id, status) WHERE c.id = s.id
"""
_STATS = text(
    "SELECT count(*) FILTER (WHERE status = 'held') AS held, "
    "count(*) FILTER (WHERE decided_at > now() - interval '1 day' "
    "  AND status IN ('paid', 'rejected', 'voided', 'returned')) AS decided, "
    "count(*) FILTER (WHERE decided_at > now() - interval '1 day' "
    "  AND status IN ('rejected', 'voided', 'returned')) AS failed FROM claims"
)


def _claim_of_record(r: Any) -> Claim:
    """A claim from an asyncpg record of `_INTAKE_FACTS` (jsonb arrives as its text)."""
    destination = r["destination"]
    return Claim(
        r["id"],
        r["player_id"],
        r["asset"],
        r["amount"],
        json.loads(destination) if isinstance(destination, str) else destination,
        ClaimStatus(r["status"]),
        r["hold_code"],
        r["hold_detail"],
        r["rejection_code"],
        r["payout_request_id"],
        r["correlation_id"],
        r["created_at"],
        r["destination_key"],
        r["payout_id"],
        r["policy_version"],
        _conversion(r["quote_id"], r["asset"], r["payout_asset"], r["payout_amount"], r["fx_spread"], r["fx_rate"]),
        r["clearing_shard"],
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
        row.policy_version,
        _conversion(row.quote_id, row.asset, row.payout_asset, row.payout_amount, row.fx_spread, row.fx_rate),
        row.clearing_shard,
    )


def _conversion(  # noqa: PLR0917 - the claim's conversion columns, all set or none (CHECK)
    quote_id: str | None, asset: str, target: str | None, amount: int | None, spread: int | None, rate: Any
) -> Conversion | None:
    if quote_id is None:
        return None
    assert target is not None
    assert amount is not None
    assert spread is not None
    assert rate is not None
    return Conversion(quote_id, asset, target, amount, spread, Decimal(rate))


def _by_window(windows: Sequence[int], values: Sequence[Any]) -> dict[int, int]:
    return {w: int(v) for w, v in zip(windows, values, strict=True)}


class SqlClaimRepository:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def get(self, claim_id: str, *, lock: bool = False) -> Claim | None:
        row = (await self.session.execute(_GET_LOCKED if lock else _GET, {"id": claim_id})).first()
        return _claim(row) if row is not None else None

    async def held(self, *, limit: int) -> list[Claim]:
        return [_claim(r) for r in await self.session.execute(_HELD, {"n": limit})]

    async def of_player(self, player_id: str, *, limit: int) -> list[Claim]:
        return [_claim(r) for r in await self.session.execute(_OF_PLAYER, {"p": player_id, "n": limit})]

    async def find(self, claim_ids: Iterable[str]) -> dict[str, Claim]:
        ids = list(claim_ids)
        if not ids:
            return {}
        return {r.id: _claim(r) for r in await self.session.execute(_FIND, {"ids": ids})}

    async def lock_many(self, claim_ids: Iterable[str]) -> dict[str, Claim]:
        rows = await self.session.execute(_LOCK_MANY, {"ids": list(claim_ids)})
        return {r.id: _claim(r) for r in rows}

    async def intake_facts(
        self,
        queries: Sequence[IntakeQuery],
        *,
        day: datetime,
        velocity: datetime,
        window: datetime,
        now: datetime,
        windows: Sequence[int] = (),
    ) -> list[IntakeFacts]:
        if not queries:
            return []
        raw = await driver_connection(self.session)
        rows = await raw.fetch(
            _INTAKE_FACTS,
            [q.claim_id for q in queries],
            [q.player_id for q in queries],
            [q.asset for q in queries],
            [q.amount for q in queries],
            [q.destination_type for q in queries],
            [q.destination_key for q in queries],
            day,
            velocity,
            window,
            now,
            list(windows),
            [q.payout_asset or q.asset for q in queries],
            [q.payout_amount or q.amount for q in queries],
        )
        return [
            IntakeFacts(
                existing=_claim_of_record(r) if r["id"] is not None else None,
                history=ClaimHistory(int(r["claimed_today"]), int(r["recent"]), int(r["decided"]), int(r["failed"])),
                destination_first_seen=r["first_seen_at"],
                risk_flagged=bool(r["flagged"]),
                routable=bool(r["routable"]),
                player_totals=_by_window(windows, r["player_totals"]),
                player_counts=_by_window(windows, r["player_counts"]),
                destination_totals=_by_window(windows, r["destination_totals"]),
            )
            for r in rows
        ]

    async def waiting_for_verification(self, player_ids: Sequence[str]) -> list[Claim]:
        if not player_ids:
            return []
        return [_claim(r) for r in await self.session.execute(_WAITING, {"p": list(player_ids)})]

    async def rehold(self, claim_id: str, *, code: str, detail: str, policy_version: int) -> None:
        await self.session.execute(_REHOLD, {"code": code, "detail": detail, "v": policy_version, "id": claim_id})

    async def add_many(self, claims: Sequence[Claim], destinations: Sequence[FirstUse]) -> None:
        raw = await driver_connection(self.session)
        if claims:
            await raw.execute(
                _INSERT_MANY,
                [c.id for c in claims],
                [c.player_id for c in claims],
                [c.asset for c in claims],
                [c.amount for c in claims],
                [json.dumps(c.destination) for c in claims],
                [c.destination_key for c in claims],
                [c.status.value for c in claims],
                [c.hold_code for c in claims],
                [c.hold_detail for c in claims],
                [c.pending.id for c in claims],
                [c.payout_request_id for c in claims],
                [c.correlation_id for c in claims],
                [c.created_at for c in claims],
                [None if c.status is ClaimStatus.HELD else c.created_at for c in claims],
                [c.policy_version for c in claims],
                [c.conversion.quote_id if c.conversion else None for c in claims],
                [c.conversion.target_asset if c.conversion else None for c in claims],
                [c.conversion.target_amount if c.conversion else None for c in claims],
                [c.conversion.spread if c.conversion else None for c in claims],
                [c.conversion.rate if c.conversion else None for c in claims],
                [c.clearing_shard for c in claims],
            )
        if destinations:
            await raw.execute(
                _REMEMBER_MANY,
                [d.player_id for d in destinations],
                [d.destination_key for d in destinations],
                [d.at for d in destinations],
            )

    async def decide(self, claim_id: str, decision: ClaimDecision) -> None:
        await self.session.execute(
            _DECIDE,
            {
                "s": decision.status.value,
                "t": decision.at,
                "by": decision.by,
                "rc": decision.rejection_code,
                "id": claim_id,
            },
        )

    async def record_outcomes(
        self, bound: Sequence[tuple[str, str]], settled: Sequence[tuple[str, ClaimStatus]]
    ) -> None:
        if not bound and not settled:
            return
        raw = await driver_connection(self.session)
        if bound:
            await raw.execute(_BIND_MANY, [c for c, _ in bound], [p for _, p in bound])
        if settled:
            await raw.execute(_SETTLE_MANY, [c for c, _ in settled], [s.value for _, s in settled])

    async def stats(self) -> tuple[int, int, int]:
        """(held now, decided in the last day, of which failed): the metrics refresher's figures."""
        row = (await self.session.execute(_STATS)).one()
        return int(row.held), int(row.decided), int(row.failed)


class SqlPlayers:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def set_risk_flag(self, player_id: str, *, flagged: bool, reason: str | None, by: str) -> None:
        await self.session.execute(
            text(
                "INSERT INTO player_risk_flags (player_id, flagged, reason, updated_by) VALUES (:p, :f, :r, :by) "
                "ON CONFLICT (player_id) DO UPDATE SET flagged = excluded.flagged, reason = excluded.reason, "
                "updated_by = excluded.updated_by, updated_at = now()"
            ),
            {"p": player_id, "f": flagged, "r": reason, "by": by},
        )


__all__ = ["SqlClaimRepository", "SqlPlayers"]
