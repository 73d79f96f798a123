"""A reported result set, reduced to what settlement compares: a canonical digest and a short summary."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prizeflow_contracts.events.game import Placement
from prizeflow_contracts.events.settlement import MAX_DISPUTE_SAMPLE, ResultsSummary


def canonical(placements: Sequence[Placement]) -> list[Placement]:
    return sorted(placements, key=lambda p: (p.rank, p.player_id))


def results_digest(placements: Sequence[Placement]) -> str:
    """SHA-256 of the placements sorted by (rank, player_id) as canonical JSON (the contract's definition:
    `json.dumps(doc, sort_keys=True, separators=(",", ":"))`). Player ids are identifiers, which JSON writes
    as they are, so the document is formatted directly (a third of the time); anything else goes through
    json.dumps. A property test holds the two to the same bytes."""
    ordered = canonical(placements)
    if all(_PLAIN.fullmatch(p.player_id) and type(p.rank) is int and type(p.score) is int for p in ordered):
        text = "[" + ",".join(_PLACEMENT.format(p.player_id, p.rank, p.score) for p in ordered) + "]"
    else:
        doc = [{"player_id": p.player_id, "rank": p.rank, "score": p.score} for p in ordered]
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


_PLAIN = re.compile(r"[A-Za-z0-9:_.\-]+")
_PLACEMENT = '{{"player_id":"{}","rank":{},"score":{}}}'


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
