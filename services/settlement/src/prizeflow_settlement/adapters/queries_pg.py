"""SqlRoundQueries: the admin API's and the timeline's reads of the rounds (each its own short read)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_contracts.events.settlement import RoundState
from prizeflow_settlement.adapters.tables import (
    round_allocations,
    round_disputes,
    round_fees,
    round_transitions,
    rounds,
)
from prizeflow_settlement.application.cursor import encode_cursor
from prizeflow_settlement.application.ports import DisputeTrail, RoundPage, RoundTrail, TransitionTrail

_SUMMARY_COLS = (
    rounds.c.round_id,
    rounds.c.competition_id,
    rounds.c.game_id,
    rounds.c.state,
    rounds.c.prize_source,
    rounds.c.asset,
    rounds.c.entries_seen,
    rounds.c.entries_expected,
    rounds.c.pot,
    rounds.c.disputed,
    rounds.c.hold_reason,
    rounds.c.opened_at,
    rounds.c.closed_at,
    rounds.c.settled_at,
    rounds.c.voided_at,
    rounds.c.version,
)


class SqlRoundQueries:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def list_rounds(
        self,
        *,
        state: RoundState | None,
        competition_id: str | None,
        disputed: bool | None,
        after: str | None,
        limit: int,
    ) -> RoundPage:
        q = select(*_SUMMARY_COLS).order_by(rounds.c.round_id).limit(limit + 1)
        if state is not None:
            q = q.where(rounds.c.state == state.value)
        if competition_id is not None:
            q = q.where(rounds.c.competition_id == competition_id)
        if disputed is not None:
            q = q.where(rounds.c.disputed.is_(disputed))
        if after is not None:
            q = q.where(rounds.c.round_id > after)
        async with self.sessions() as s:
            rows = [dict(row._mapping) for row in await s.execute(q)]
        more = len(rows) > limit
        items = rows[:limit]
        return RoundPage(items=items, next_cursor=encode_cursor(items[-1]["round_id"]) if more else None)

    async def rounds_of(self, correlation_id: str, *, limit: int) -> list[RoundTrail]:
        """`RoundTimelineQueries`: the rounds of one flow, with their transitions and disputes (three reads)."""
        async with self.sessions() as s:
            found = (
                await s.execute(
                    select(
                        rounds.c.round_id, rounds.c.state, rounds.c.asset, rounds.c.prize_source, rounds.c.settled_at
                    )
                    .where(rounds.c.correlation_id == correlation_id)
                    .order_by(rounds.c.opened_at, rounds.c.round_id)
                    .limit(limit)
                )
            ).all()
            ids = [r.round_id for r in found]
            if not ids:
                return []
            moves = await s.execute(
                select(
                    round_transitions.c.round_id,
                    round_transitions.c.from_state,
                    round_transitions.c.to_state,
                    round_transitions.c.reason,
                    round_transitions.c.actor,
                    round_transitions.c.at,
                )
                .where(round_transitions.c.round_id.in_(ids))
                .order_by(round_transitions.c.id)
            )
            paid = await s.execute(
                select(
                    round_allocations.c.round_id, func.count(), func.coalesce(func.sum(round_allocations.c.amount), 0)
                )
                .where(round_allocations.c.round_id.in_(ids))
                .group_by(round_allocations.c.round_id)
            )
            disputes = await s.execute(
                select(
                    round_disputes.c.round_id,
                    round_disputes.c.status,
                    round_disputes.c.opened_at,
                    round_disputes.c.resolved_at,
                )
                .where(round_disputes.c.round_id.in_(ids))
                .order_by(round_disputes.c.id)
            )
            transitions: dict[str, list[TransitionTrail]] = {i: [] for i in ids}
            for m in moves:
                transitions[m.round_id].append(TransitionTrail(m.from_state, m.to_state, m.reason, m.actor, m.at))
            totals = {p[0]: (int(p[1]), int(p[2])) for p in paid}
            opened: dict[str, list[DisputeTrail]] = {i: [] for i in ids}
            for d in disputes:
                opened[d.round_id].append(DisputeTrail(d.status, d.opened_at, d.resolved_at))
        return [
            RoundTrail(
                round_id=r.round_id,
                state=r.state,
                asset=r.asset,
                prize_source=r.prize_source,
                settled_at=r.settled_at,
                allocations=totals.get(r.round_id, (0, 0))[0],
                allocated=totals.get(r.round_id, (0, 0))[1],
                transitions=transitions[r.round_id],
                disputes=opened[r.round_id],
            )
            for r in found
        ]

    async def get_round(self, round_id: str) -> dict[str, Any] | None:
        async with self.sessions() as s:
            row = (
                await s.execute(
                    select(*_SUMMARY_COLS, rounds.c.spec, rounds.c.correlation_id, rounds.c.void_reason,
                           rounds.c.results_summary).where(rounds.c.round_id == round_id)
                )
            ).first()  # fmt: skip
            if row is None:
                return None
            out = dict(row._mapping)

            async def rows(q: Any) -> list[dict[str, Any]]:
                return [dict(r._mapping) for r in await s.execute(q)]

            out["history"] = await rows(
                select(
                    round_transitions.c.from_state,
                    round_transitions.c.to_state,
                    round_transitions.c.reason,
                    round_transitions.c.actor,
                    round_transitions.c.cause_id,
                    round_transitions.c.at,
                )
                .where(round_transitions.c.round_id == round_id)
                .order_by(round_transitions.c.id)
            )
            out["allocations"] = await rows(
                select(
                    round_allocations.c.player_id,
                    round_allocations.c.rank,
                    round_allocations.c.asset,
                    round_allocations.c.amount,
                    round_allocations.c.source,
                )
                .where(round_allocations.c.round_id == round_id)
                .order_by(round_allocations.c.rank, round_allocations.c.player_id)
            )
            out["fees"] = await rows(
                select(round_fees.c.party, round_fees.c.account_id, round_fees.c.asset, round_fees.c.amount).where(
                    round_fees.c.round_id == round_id
                )
            )
            out["disputes"] = await rows(
                select(
                    round_disputes.c.existing_digest,
                    round_disputes.c.conflicting_digest,
                    round_disputes.c.status,
                    round_disputes.c.opened_at,
                    round_disputes.c.resolved_at,
                    round_disputes.c.resolved_by,
                )
                .where(round_disputes.c.round_id == round_id)
                .order_by(round_disputes.c.id)
            )
        return out

    async def count_by_state(self) -> dict[str, int]:
        async with self.sessions() as s:
            result = await s.execute(select(rounds.c.state, func.count()).group_by(rounds.c.state))
            return {str(row[0]): int(row[1]) for row in result}


__all__ = ["SqlRoundQueries"]
