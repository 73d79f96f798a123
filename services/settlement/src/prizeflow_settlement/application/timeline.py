"""Settlement's part of a flow's timeline: its rounds' state transitions, settlement and disputes. Summaries say
states, stable codes and totals; an admin's free-text reason and who played or won stay out (the audit entry of
an admin action says who acted)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prizeflow_runtime.timeline import MAX_ENTRIES_PER_SOURCE, EntryKind, TimelineEntry
from prizeflow_settlement.application.ports import RoundTimelineQueries, RoundTrail

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ROUNDS = 50


@dataclass
class SettlementTimeline:
    """A `TimelineSource`: what settlement recorded of one correlation id."""

    queries: RoundTimelineQueries

    async def entries(self, correlation_id: str) -> list[TimelineEntry]:
        out = [e for r in await self.queries.rounds_of(correlation_id, limit=_ROUNDS) for e in round_entries(r)]
        return out[:MAX_ENTRIES_PER_SOURCE]


def round_entries(r: RoundTrail) -> list[TimelineEntry]:
    out: list[TimelineEntry] = []
    for t in r.transitions:
        why = f" ({t.reason})" if t.reason and _CODE.match(t.reason) else ""
        by = " by an admin" if t.reason and t.reason.startswith("admin:") else ""
        out.append(
            TimelineEntry(
                t.at,
                EntryKind.STATE,
                f"round.{t.to_state}",
                r.round_id,
                f"round {r.round_id}: {t.from_state or 'new'} → {t.to_state}{why}{by}",
            )
        )
    if r.settled_at is not None:
        out.append(
            TimelineEntry(
                r.settled_at,
                EntryKind.EVENT,
                "RoundSettled",
                r.round_id,
                f"round {r.round_id} settled: {r.allocations} allocations, {r.allocated} {r.asset} ({r.prize_source})",
            )
        )
    for d in r.disputes:
        out.append(
            TimelineEntry(
                d.opened_at,
                EntryKind.EVENT,
                "round.dispute_opened",
                r.round_id,
                f"round {r.round_id}: results disputed",
            )
        )
        if d.resolved_at is not None:
            out.append(
                TimelineEntry(
                    d.resolved_at,
                    EntryKind.EVENT,
                    "round.dispute_resolved",
                    r.round_id,
                    f"round {r.round_id}: dispute {d.status}",
                )
            )
    return out


__all__ = ["SettlementTimeline", "round_entries"]
