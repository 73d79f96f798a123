"""Everything one service knows of one flow, in time order: what `GET /admin/timeline/{correlation_id}` answers.

The runtime contributes what every service has (its persisted admin audit, its dead letters); each service adds
its own domain entries through a `TimelineSource` its composition root hands to `ServiceRuntime.http_app`
(settlement's round transitions, rewards' ledger transfers and claims, payouts' state history, webhooks'
deliveries). An entry's summary is one line for an operator: codes, states, amounts, kinds; never personal data,
a secret, a free-text reason or a full destination. Pure: no I/O here (the sources do it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol

# What one source may contribute to one answer: a flow with more than this is cut (and says so).
MAX_ENTRIES_PER_SOURCE: Final = 1000
MAX_SUMMARY_CHARS: Final = 240


class EntryKind(StrEnum):
    STATE = "state"  # a state machine moved (round, claim, payout)
    EVENT = "event"  # something happened to it (an attempt, a provider's report)
    AUDIT = "audit"  # an operator acted on it
    DEAD_LETTER = "dead_letter"  # a consumer refused a record of the flow
    LEDGER = "ledger"  # money moved
    DELIVERY = "delivery"  # a provider's callback arrived


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: EntryKind
    type: str  # e.g. RoundSettled, payout.approve, reward
    subject: str  # the round, claim, payout, ... it is about
    summary: str
    service: str = ""  # set by `Timeline` (a source need not know which service it runs in)

    def view(self) -> dict[str, str]:
        return {
            "at": rfc3339(self.at),
            "service": self.service,
            "kind": self.kind.value,
            "type": self.type,
            "subject": self.subject,
            "summary": one_line(self.summary),
        }


class TimelineSource(Protocol):
    """A service's entries for one correlation id (at most `MAX_ENTRIES_PER_SOURCE`, any order)."""

    async def entries(self, correlation_id: str) -> Sequence[TimelineEntry]: ...


class Timeline:
    """Merges the sources' entries of one flow, sorted by time (ties keep the sources' order)."""

    def __init__(self, service: str, sources: Sequence[TimelineSource]) -> None:
        self.service = service
        self.sources = tuple(sources)

    async def __call__(self, correlation_id: str) -> dict[str, Any]:
        found = await asyncio.gather(*(s.entries(correlation_id) for s in self.sources))
        truncated = any(len(entries) >= MAX_ENTRIES_PER_SOURCE for entries in found)
        merged = sorted(
            (replace(e, service=self.service) for entries in found for e in entries), key=lambda e: _utc(e.at)
        )
        return {
            "correlation_id": correlation_id,
            "service": self.service,
            "entries": [e.view() for e in merged],
            "truncated": truncated,
        }


def rfc3339(at: datetime) -> str:
    """UTC, with a `Z` (a naive time is taken as UTC)."""
    return _utc(at).isoformat().replace("+00:00", "Z")


def one_line(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def short_event_type(event_type: str | None) -> str:
    """`prizeflow.settlement.RoundSettled.v1` → `RoundSettled`; anything else as it is (or `unreadable`)."""
    if not event_type:
        return "unreadable"
    parts = event_type.split(".")
    return parts[2] if len(parts) == 4 and parts[0] == "prizeflow" else event_type


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


__all__ = [
    "MAX_ENTRIES_PER_SOURCE",
    "EntryKind",
    "Timeline",
    "TimelineEntry",
    "TimelineSource",
    "one_line",
    "rfc3339",
    "short_event_type",
]
