"""What payouts publishes about who may be paid, on PostgreSQL (`Compliance`): the active risk policy and each
player's verification status, with the per-player lock that orders claims against verification changes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_contracts.events.payouts import PlayerVerificationChanged, RiskPolicyActivated
from prizeflow_contracts.policy import EMPTY_POLICY, RiskPolicy, VerificationStatus
from prizeflow_runtime.db import driver_connection

Conn = AsyncSession | AsyncConnection

# One advisory lock per player (a claim batch takes it shared, a verification change exclusively), in one order.
_LOCK = """
    SELECT count({fn}(k)) FROM (
        SELECT DISTINCT hashtextextended('prizeflow:verification:' || p, 0) AS k FROM unnest($1::text[]) AS p ORDER BY 1
    ) AS keys
"""
_LOCK_SHARED = _LOCK.format(fn="pg_advisory_xact_lock_shared")
# The same locks taken shared without waiting: the players whose lock a verification change holds, which a claim
# batch does not wait for (one stuck change would hold up every claim of the batch).
_TRY_SHARED = """
    SELECT coalesce(array_agg(p ORDER BY p), '{}') FROM (
        SELECT p, hashtextextended('prizeflow:verification:' || p, 0) AS k FROM unnest($1::text[]) AS p ORDER BY 2
    ) AS keys
    WHERE NOT pg_try_advisory_xact_lock_shared(k)
"""
_LOCK_EXCLUSIVE = _LOCK.format(fn="pg_advisory_xact_lock")
# The policy (NULL before any) and the players' statuses, in one read.
_INTAKE = """
    SELECT (SELECT document FROM risk_policy) AS policy, v.players, v.statuses
    FROM (SELECT coalesce(array_agg(player_id ORDER BY player_id), '{}') AS players,
                 coalesce(array_agg(status ORDER BY player_id), '{}') AS statuses
          FROM player_verifications WHERE player_id = ANY($1::text[])) AS v
"""
_ACTIVATE = text(
    "INSERT INTO risk_policy (id, version, document, proposed_by, approved_by, activated_at) "
    "VALUES (true, :v, CAST(:doc AS jsonb), :by, :ok, :at) "
    "ON CONFLICT (id) DO UPDATE SET version = excluded.version, document = excluded.document, "
    "proposed_by = excluded.proposed_by, approved_by = excluded.approved_by, activated_at = excluded.activated_at, "
    "received_at = now() WHERE risk_policy.version < excluded.version RETURNING version"
)
_RECORD = text(
    "INSERT INTO player_verifications (player_id, status, reference, sequence, changed_at) "
    "VALUES (:p, :s, :ref, :seq, :at) "
    "ON CONFLICT (player_id) DO UPDATE SET status = excluded.status, reference = excluded.reference, "
    "sequence = excluded.sequence, changed_at = excluded.changed_at, received_at = now() "
    "WHERE player_verifications.sequence < excluded.sequence RETURNING sequence"
)


class SqlCompliance:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def intake(self, player_ids: Sequence[str]) -> tuple[RiskPolicy, dict[str, VerificationStatus]]:
        raw = await driver_connection(self.session)
        players = sorted(set(player_ids))
        await raw.fetchval(_LOCK_SHARED, players)
        return await self._read(players)

    async def intake_unless_busy(
        self, player_ids: Sequence[str]
    ) -> tuple[RiskPolicy, dict[str, VerificationStatus], set[str]]:
        raw = await driver_connection(self.session)
        players = sorted(set(player_ids))
        busy = set(await raw.fetchval(_TRY_SHARED, players))
        policy, statuses = await self._read([p for p in players if p not in busy])
        return policy, statuses, busy

    async def _read(self, players: list[str]) -> tuple[RiskPolicy, dict[str, VerificationStatus]]:
        """The active policy and these players' statuses, in one read."""
        raw = await driver_connection(self.session)
        row = await raw.fetchrow(_INTAKE, players)
        assert row is not None
        document = row["policy"]
        if document is None:
            policy = EMPTY_POLICY
        elif isinstance(document, str):
            policy = RiskPolicy.model_validate_json(document)
        else:
            policy = RiskPolicy.model_validate(document)
        statuses = dict(zip(row["players"], row["statuses"], strict=True))
        return policy, {p: VerificationStatus(statuses.get(p, VerificationStatus.NOT_STARTED)) for p in players}

    async def lock_players(self, player_ids: Sequence[str]) -> None:
        if player_ids:
            raw = await driver_connection(self.session)
            await raw.fetchval(_LOCK_EXCLUSIVE, sorted(set(player_ids)))

    async def activate(self, event: RiskPolicyActivated) -> bool:
        applied = await self.session.execute(
            _ACTIVATE,
            {
                "v": event.policy.version,
                "doc": event.policy.model_dump_json(),
                "by": event.proposed_by,
                "ok": event.approved_by,
                "at": event.activated_at,
            },
        )
        return applied.first() is not None

    async def record_verification(self, event: PlayerVerificationChanged) -> bool:
        applied = await self.session.execute(
            _RECORD,
            {
                "p": event.player_id,
                "s": event.status.value,
                "ref": event.reference,
                "seq": event.sequence,
                "at": event.changed_at,
            },
        )
        return applied.first() is not None


__all__ = ["SqlCompliance"]
