"""`SqlHoldStore`: the gate's statements over the payouts tables (migration 0021): holds, decisions, clearances and
window facts. A store of the payouts' `Books`, on the payouts transaction. Batch-shaped: one statement per step."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.policy import Action
from prizeflow_payouts.adapters.payout_rows import payouts_from
from prizeflow_payouts.application.gate import DecisionRecord, FactsQuery, Hold, WindowFacts
from prizeflow_payouts.domain.gate import Clearance, GateDecision, HoldCode, Stage, SubjectKind
from prizeflow_payouts.domain.payout import Payout
from prizeflow_runtime.db import driver_connection

# Payouts that ended without paying count for nothing in a window.
_COUNTS = "NOT (p.state IN ('cancelled', 'rejected') OR (p.state = 'failed' AND p.finished_at IS NOT NULL))"


def _gate_facts(windows: int) -> TextClause:
    """The window facts of a batch for `windows` windows (their lengths in `:windows`, longest last or not): each
    payout's rows read once whatever the number of windows, summed per window with FILTER (instead of one scan per
    window and sum: ten for the three windows of a day, an hour and thirty days).

    - The player's payouts (any asset) over the longest window, one scan (`payouts_player`): the player's sums and
      counts, and the destination's sums over the player's own rows (this destination, this asset).
    - The other players' payouts to the destination (this asset) over the longest window, by
      `payouts_destination_players` (destination, time, player; migration 0031): `player_id` below and above the
      player's are tested on its entries, so the player's own rows in the window are skipped without a heap visit
      (a destination no other player uses costs no row read). The destination's sums are the two parts added.
    - The player's first use of the destination (any time): the oldest counted row, by `payouts_player_destination`."""
    since = [
        f"CAST(:now AS timestamptz) - make_interval(secs => (CAST(:windows AS int[]))[{n}])"
        for n in range(1, windows + 1)
    ]
    player = ", ".join(
        f"coalesce(sum(p.amount) FILTER (WHERE p.asset = r.asset AND p.created_at > {t}), 0)" for t in since
    )
    counts = ", ".join(f"count(*) FILTER (WHERE p.created_at > {t})" for t in since)
    mine = "p.destination_key = r.dkey AND p.asset = r.asset"  # the player's own rows to this destination
    own = ", ".join(f"coalesce(sum(p.amount) FILTER (WHERE {mine} AND p.created_at > {t}), 0)" for t in since)
    others = ", ".join(f"coalesce(sum(o.amount) FILTER (WHERE o.created_at > {t}), 0)" for t in since)
    destination = ", ".join(f"pl.own[{n}] + de.totals[{n}]" for n in range(1, windows + 1))
    return text(
        f"""
        WITH r AS (
            SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:players AS text[]), CAST(:keys AS text[]),
                                 CAST(:assets AS text[])) AS r(id, player_id, dkey, asset)
        ), m AS (
            SELECT CAST(:now AS timestamptz) - make_interval(secs => coalesce(max(s), 0)) AS since
            FROM unnest(CAST(:windows AS int[])) AS w(s)
        )
        SELECT r.id, pl.totals AS player_totals, pl.counts AS player_counts, ARRAY[{destination}] AS destination_totals,
            (SELECT min(p.created_at) FROM payouts p
              WHERE p.player_id = r.player_id AND p.destination_key = r.dkey AND p.id <> r.id AND {_COUNTS})
                AS first_used_at
        FROM r CROSS JOIN m
        CROSS JOIN LATERAL (
            SELECT ARRAY[{player}] AS totals, ARRAY[{counts}] AS counts, ARRAY[{own}] AS own FROM payouts p
            WHERE p.player_id = r.player_id AND p.id <> r.id AND {_COUNTS} AND p.created_at > m.since
        ) pl
        CROSS JOIN LATERAL (
            SELECT ARRAY[{others}] AS totals FROM (
                SELECT p.amount, p.created_at FROM payouts p
                WHERE p.destination_key = r.dkey AND p.player_id < r.player_id AND p.asset = r.asset AND p.id <> r.id
                  AND {_COUNTS} AND p.created_at > m.since
                UNION ALL
                SELECT p.amount, p.created_at FROM payouts p
                WHERE p.destination_key = r.dkey AND p.player_id > r.player_id AND p.asset = r.asset AND p.id <> r.id
                  AND {_COUNTS} AND p.created_at > m.since
            ) o
        ) de
        """  # noqa: S608 - fixed fragments, no input
    )


# By number of windows: a policy has one to a few distinct window lengths.
_FACTS: dict[int, TextClause] = {}
_FIRST_USES = text(
    f"""
    SELECT r.id, (SELECT min(p.created_at) FROM payouts p
                  WHERE p.player_id = r.player_id AND p.destination_key = r.dkey AND p.id <> r.id AND {_COUNTS})
                  AS first_used_at
    FROM unnest(CAST(:ids AS text[]), CAST(:players AS text[]), CAST(:keys AS text[])) AS r(id, player_id, dkey)
    """  # noqa: S608 - a fixed fragment, no input
)

# The request's locks: each player of the batch and each destination, in one sorted order whoever takes them (so two
# batches wait, never deadlock). A player's requests, and any players' requests to one destination, are decided one
# transaction after another, each counting the ones before it.
_LOCK_SUBJECTS = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(u.k, 0))) FROM ("
    "SELECT DISTINCT k FROM (SELECT 'payout-gate:' || p FROM unnest(CAST(:players AS text[])) AS t(p) "
    "UNION ALL SELECT 'payout-gate-destination:' || d FROM unnest(CAST(:keys AS text[])) AS t(d)) AS s(k) "
    "ORDER BY k) AS u"
)

_DUE_WHERE = """
    (state = 'approved' AND available_at <= now())
    OR (state = 'failed' AND next_attempt_at <= now())
    OR (state = 'submitting' AND lease_until < now())
"""
_LOCK_DUE = text(
    f"""
    SELECT * FROM payouts WHERE {_DUE_WHERE}
    ORDER BY coalesce(lease_until, next_attempt_at, available_at)
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """  # noqa: S608 - fixed text
)
# The same update as `_CLAIM_SUBMIT` (repository), for rows this transaction has locked (`_LOCK_DUE`) and still
# finds due: driven by their ids, each looked up by primary key. Each row's state when locked comes with its id, so
# the due test needs no second look at the due rows, and it is written per state (not as `_DUE_WHERE`) so that no
# plan can start from the due rows' partial indexes and compare every due row with every id: a plan PostgreSQL chose
# when its statistics were taken with no payout due (after a quiet spell, then a burst) costs rows x ids — 1.2 s for
# 500 ids among 20,000 due rows instead of a few milliseconds (docs/capacity.md).
_CLAIM_LOCKED = text(
    """
    UPDATE payouts p SET
        state = 'submitting',
        attempts = CASE WHEN u.previous_state = 'submitting' THEN p.attempts ELSE p.attempts + 1 END,
        sync_first = p.sync_first OR u.previous_state = 'submitting' OR p.attempts > 0,
        next_attempt_at = NULL,
        lease_owner = :owner,
        lease_token = gen_random_uuid(),
        lease_until = now() + make_interval(secs => :lease_s),
        updated_at = now()
    FROM unnest(CAST(:ids AS text[]), CAST(:states AS text[])) AS u(id, previous_state)
    WHERE p.id = u.id AND p.state = u.previous_state
      AND CASE u.previous_state
            WHEN 'approved' THEN p.available_at <= now()
            WHEN 'failed' THEN p.next_attempt_at <= now()
            WHEN 'submitting' THEN p.lease_until < now()
            ELSE false
          END
    RETURNING p.*, u.previous_state
    """
)

# Driven by the ids (primary key). The state test is a CASE so that it is no index condition and proves no partial
# index: written `state = 'pending_approval'`, a plan PostgreSQL chose when its statistics were taken with no payout
# held (a quiet spell, then a burst of holds) scanned every held payout for the state and compared each with every
# id (`id = ANY(...)` as a filter) — 117 ms for 500 ids among 20,000 held payouts instead of under a millisecond.
_RELEASE_HOLDS = text(
    "UPDATE payouts SET hold_code = NULL, hold_detail = NULL, held_at = NULL, hold_policy_version = NULL, "
    "hold_findings = NULL, updated_at = now() "
    "WHERE id = ANY(CAST(:ids AS text[])) AND CASE WHEN state = 'pending_approval' THEN true ELSE false END"
)

# Decisions are appended by COPY (no conflict to skip, nothing to return): rows sent as they are.
_DECISION_COLUMNS = (
    "payout_id", "claim_id", "player_id", "stage", "action", "hold_code", "reasons", "policy_version",
    "list_versions", "decided_at",
)  # fmt: skip

_HOLD = text(
    """
    UPDATE payouts p SET hold_code = u.code, hold_detail = u.detail, held_at = CAST(:at AS timestamptz),
        approval_policy = u.policy, hold_policy_version = u.version, hold_findings = CAST(u.findings AS jsonb),
        gate_stamp = NULL, updated_at = now()
    FROM unnest(CAST(:ids AS text[]), CAST(:codes AS text[]), CAST(:details AS text[]), CAST(:policies AS text[]),
                CAST(:versions AS bigint[]), CAST(:findings AS text[]))
        AS u(id, code, detail, policy, version, findings)
    WHERE p.id = u.id AND p.state = 'pending_approval'
    """
)


def _reasons_json(reasons: Any) -> str:
    return json.dumps(list(reasons), default=str)


def _versions_json(versions: Any) -> str:
    return json.dumps(dict(versions))


class SqlHoldStore:
    """`GateStore` in the transaction of `session`."""

    __slots__ = ("session",)

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def gate_facts(
        self, queries: Sequence[FactsQuery], windows: Sequence[int], *, now: datetime, lock: bool
    ) -> dict[str, WindowFacts]:
        if not queries:
            return {}
        if lock:
            await self.session.execute(
                _LOCK_SUBJECTS,
                {"players": [q.player_id for q in queries], "keys": [q.destination_key for q in queries]},
            )
        if not windows:
            firsts = await self.session.execute(
                _FIRST_USES,
                {
                    "ids": [q.payout_id for q in queries],
                    "players": [q.player_id for q in queries],
                    "keys": [q.destination_key for q in queries],
                },
            )
            first = {r.id: r.first_used_at for r in firsts}
            return {q.payout_id: WindowFacts(first_used_at=first.get(q.payout_id)) for q in queries}
        statement = _FACTS.get(len(windows))
        if statement is None:
            statement = _FACTS.setdefault(len(windows), _gate_facts(len(windows)))
        rows = list(
            await self.session.execute(
                statement,
                {
                    "ids": [q.payout_id for q in queries],
                    "players": [q.player_id for q in queries],
                    "keys": [q.destination_key for q in queries],
                    "assets": [q.asset for q in queries],
                    "windows": list(windows),
                    "now": now,
                },
            )
        )
        out: dict[str, WindowFacts] = {}
        for r in rows:
            out[r.id] = WindowFacts(
                dict(zip(windows, map(int, r.player_totals), strict=True)),
                dict(zip(windows, map(int, r.player_counts), strict=True)),
                dict(zip(windows, map(int, r.destination_totals), strict=True)),
                r.first_used_at,
            )
        return {q.payout_id: out.get(q.payout_id, WindowFacts()) for q in queries}

    async def clearances(self, subjects: Sequence[tuple[SubjectKind, str]]) -> list[Clearance]:
        if not subjects:
            return []
        rows = await self.session.execute(
            text(
                "SELECT c.subject_kind, c.subject_key, c.source, c.entry_uid FROM screening_clearances c "
                "JOIN unnest(CAST(:kinds AS text[]), CAST(:keys AS text[])) AS s(kind, key) "
                "ON c.subject_kind = s.kind AND c.subject_key = s.key"
            ),
            {"kinds": [k.value for k, _ in subjects], "keys": [k for _, k in subjects]},
        )
        return [Clearance(SubjectKind(r.subject_kind), r.subject_key, r.source, r.entry_uid) for r in rows]

    async def add_clearances(
        self, clearances: Sequence[Clearance], *, cleared_by: tuple[str, str], payout_id: str, at: datetime
    ) -> None:
        if not clearances:
            return
        await self.session.execute(
            text(
                "INSERT INTO screening_clearances "
                "(subject_kind, subject_key, source, entry_uid, cleared_by, payout_id, cleared_at) "
                "SELECT u.kind, u.key, u.source, u.uid, CAST(:by AS text[]), :payout_id, :at FROM unnest("
                "CAST(:kinds AS text[]), CAST(:keys AS text[]), CAST(:sources AS text[]), CAST(:uids AS text[])"
                ") AS u(kind, key, source, uid) ON CONFLICT DO NOTHING"
            ),
            {
                "kinds": [c.kind.value for c in clearances],
                "keys": [c.key for c in clearances],
                "sources": [c.source for c in clearances],
                "uids": [c.entry_uid for c in clearances],
                "by": list(cleared_by),
                "payout_id": payout_id,
                "at": at,
            },
        )

    async def record_decisions(self, records: Sequence[DecisionRecord]) -> None:
        if not records:
            return
        dumped: dict[int, str] = {}  # one encoding per object: a batch's decisions share their reasons and versions

        def dump(value: Any, encode: Callable[[Any], str]) -> str:
            key = id(value)
            if key not in dumped:
                dumped[key] = encode(value)
            return dumped[key]

        raw = await driver_connection(self.session)
        await raw.copy_records_to_table(
            "compliance_decisions",
            records=[
                (
                    r.payout_id,
                    r.claim_id,
                    r.player_id,
                    r.stage.value,
                    r.decision.action.value,
                    r.decision.hold.value if r.decision.hold else None,
                    dump(r.decision.reasons, _reasons_json),
                    r.decision.policy_version,
                    dump(r.decision.list_versions, _versions_json),
                    r.decided_at,
                )
                for r in records
            ],
            columns=_DECISION_COLUMNS,
        )

    async def hold(self, holds: Sequence[Hold], *, at: datetime) -> None:
        if not holds:
            return
        await self.session.execute(
            _HOLD,
            {
                "ids": [h.payout_id for h in holds],
                "codes": [h.code.value for h in holds],
                "details": [h.detail[:2000] for h in holds],
                "policies": [h.approval_policy for h in holds],
                "versions": [h.policy_version for h in holds],
                "findings": [json.dumps(list(h.findings)) for h in holds],
                "at": at,
            },
        )

    async def latest_decision(self, payout_id: str) -> DecisionRecord | None:
        row = (
            (
                await self.session.execute(
                    text(
                        "SELECT * FROM compliance_decisions WHERE payout_id = :id AND action = 'hold' "
                        "ORDER BY id DESC LIMIT 1"
                    ),
                    {"id": payout_id},
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        decision = GateDecision(
            Action(row["action"]),
            HoldCode(row["hold_code"]) if row["hold_code"] else None,
            reasons=tuple(row["reasons"]),
            list_versions=dict(row["list_versions"]),
            policy_version=int(row["policy_version"]),
        )
        return DecisionRecord(
            row["payout_id"], row["claim_id"], row["player_id"], Stage(row["stage"]), decision, row["decided_at"]
        )

    async def release_holds(self, payout_ids: Sequence[str]) -> None:
        if not payout_ids:
            return
        await self.session.execute(_RELEASE_HOLDS, {"ids": list(payout_ids)})

    async def approvals_of(self, payout_ids: Sequence[str]) -> dict[str, list[str]]:
        if not payout_ids:
            return {}
        rows = await self.session.execute(
            text(
                "SELECT payout_id, approver_id FROM payout_approvals WHERE payout_id = ANY(CAST(:ids AS text[])) "
                "ORDER BY decided_at, approver_id"
            ),
            {"ids": list(payout_ids)},
        )
        out: dict[str, list[str]] = {}
        for r in rows:
            out.setdefault(r.payout_id, []).append(r.approver_id)
        return out

    async def held_payouts(self, player_ids: Sequence[str], code: HoldCode, *, limit: int) -> list[Payout]:
        rows = await self.session.execute(
            text(
                "SELECT * FROM payouts WHERE state = 'pending_approval' AND hold_code = :code "
                "AND (cardinality(CAST(:players AS text[])) = 0 OR player_id = ANY(CAST(:players AS text[]))) "
                "ORDER BY created_at, id LIMIT :limit FOR UPDATE SKIP LOCKED"
            ),
            {"code": code.value, "players": list(player_ids), "limit": limit},
        )
        return payouts_from(rows)

    async def players_with_holds(self, code: HoldCode, *, limit: int) -> list[str]:
        rows = await self.session.execute(
            text(
                "SELECT DISTINCT player_id FROM payouts WHERE state = 'pending_approval' AND hold_code = :code "
                "ORDER BY player_id LIMIT :limit"
            ),
            {"code": code.value, "limit": limit},
        )
        return [r[0] for r in rows]

    async def held_counts(self) -> dict[str, int]:
        rows = await self.session.execute(
            text(
                "SELECT hold_code, count(*) FROM payouts WHERE state = 'pending_approval' AND hold_code IS NOT NULL "
                "GROUP BY hold_code"
            )
        )
        return {r[0]: int(r[1]) for r in rows}

    async def lock_due_for_submit(self, *, limit: int) -> list[Payout]:
        rows = await self.session.execute(_LOCK_DUE, {"limit": limit})
        return payouts_from(rows)

    async def claim_locked(self, locked: Sequence[Payout], *, owner: str, lease_s: float) -> list[Payout]:
        if not locked:
            return []
        rows = await self.session.execute(
            _CLAIM_LOCKED,
            {
                "ids": [p.id for p in locked],
                "states": [p.state.value for p in locked],
                "owner": owner,
                "lease_s": lease_s,
            },
        )
        return payouts_from(rows)


__all__ = ["SqlHoldStore"]
