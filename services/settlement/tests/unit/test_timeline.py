"""Settlement's timeline entries: transitions, settlement and disputes, with codes but never an admin's free text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prizeflow_runtime.timeline import EntryKind
from prizeflow_settlement.application.ports import DisputeTrail, RoundTrail, TransitionTrail
from prizeflow_settlement.application.timeline import SettlementTimeline

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


class Rounds:
    def __init__(self, *trails: RoundTrail) -> None:
        self.trails = list(trails)

    async def rounds_of(self, correlation_id: str, *, limit: int) -> list[RoundTrail]:
        return self.trails if correlation_id == "flow-1" else []


TRAIL = RoundTrail(
    round_id="r-1",
    state="settled",
    asset="USDC",
    prize_source="sponsored",
    settled_at=at(9),
    allocations=3,
    allocated=400,
    transitions=[
        TransitionTrail(None, "open", None, None, at(0)),
        TransitionTrail("open", "closed", "entries_complete", None, at(5)),
        TransitionTrail("closed", "voided", "admin: the player Jane Doe cheated", "admin-7", at(8)),
    ],
    disputes=[DisputeTrail("resolved", at(6), at(7))],
)


async def test_a_rounds_milestones_with_codes_but_no_free_text() -> None:
    entries = await SettlementTimeline(Rounds(TRAIL)).entries("flow-1")
    assert [(e.kind, e.type) for e in entries] == [
        (EntryKind.STATE, "round.open"),
        (EntryKind.STATE, "round.closed"),
        (EntryKind.STATE, "round.voided"),
        (EntryKind.EVENT, "RoundSettled"),
        (EntryKind.EVENT, "round.dispute_opened"),
        (EntryKind.EVENT, "round.dispute_resolved"),
    ]
    assert entries[1].summary == "round r-1: open → closed (entries_complete)"
    assert entries[2].summary == "round r-1: closed → voided by an admin"
    assert entries[3].summary == "round r-1 settled: 3 allocations, 400 USDC (sponsored)"
    assert all("Jane" not in e.summary for e in entries)
    assert await SettlementTimeline(Rounds(TRAIL)).entries("other") == []
