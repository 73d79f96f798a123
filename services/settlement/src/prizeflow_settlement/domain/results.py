"""A reported result set, reduced to what settlement compares: a canonical digest and a short summary."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prizeflow_contracts.events.game import Placement
from prizeflow_contracts.events.settlement import MAX_DISPUTE_SAMPLE, ResultsSummary


def canonical(placements: Sequence[Placement]) -> list[Placement]:
    return sorted(placements, key=lambda p: (p.rank, p.player_id))


def results_digest(placements: Sequence[Placement]) -> str:
    """SHA-256 of the placements sorted by (rank, player_id) as canonical JSON (the contract's definition)."""
    doc = [{"player_id": p.player_id, "rank": p.rank, "score": p.score} for p in canonical(placements)]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ResultSet:
    placements: tuple[Placement, ...]
    digest: str
    reported_at: datetime
    event_id: str | None

    @classmethod
    def of(cls, placements: Sequence[Placement], *, reported_at: datetime, event_id: str | None) -> ResultSet:
        ordered = tuple(canonical(placements))
        return cls(placements=ordered, digest=results_digest(ordered), reported_at=reported_at, event_id=event_id)

    def summary(self) -> ResultsSummary:
        return ResultsSummary(
            results_event_id=self.event_id,
            reported_at=self.reported_at,
            placement_count=len(self.placements),
            digest=self.digest,
            top=list(self.placements[:MAX_DISPUTE_SAMPLE]),
        )


__all__ = ["ResultSet", "canonical", "results_digest"]
