"""The inbox's dedup horizon (ADR 0008): which events a consumer may still apply, and the partitions that go.

Two rules make dropping whole partitions safe:

1. A consumer never applies an event whose own time (`Envelope.time`, the inbox's partition key) is older than the
   horizon: it is refused as `beyond_dedup_horizon`, whatever the inbox says. Partitions are dropped only once
   their upper bound is older than the horizon plus a grace, so a partition that could hold an event a consumer
   still accepts is never gone. Hence a dropped partition can never let an event apply twice.
2. Start-up refuses a horizon shorter than a consumed topic's `retention.ms` plus `INBOX_MAX_REPLAY_DAYS`
   (`horizon_problems`), so rule 1 never refuses an event Kafka may still redeliver in ordinary operation.

An event further ahead of this clock than `INBOX_MAX_CLOCK_SKEW_S` is refused too (`beyond_clock_skew`): its
partition may not exist yet, and a producer that far ahead would shorten its own dedup window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from prizeflow_contracts.errors import EventRefusal
from prizeflow_runtime.settings import DAY_MS, InboxSettings

log = logging.getLogger(__name__)

BEYOND_DEDUP_HORIZON = "beyond_dedup_horizon"
BEYOND_CLOCK_SKEW = "beyond_clock_skew"
# A partition is dropped this long after it left the horizon: the inbox key is the event's hour (up to an hour
# before its time), plus longer than any transaction between its horizon check and its commit, so a claim accepted
# as within the horizon always finds its partition.
DROP_GRACE = timedelta(hours=2)
# Partitions are kept created this many widths beyond the skew the consumers accept.
PARTITIONS_AHEAD = 2


class InboxHorizonError(RuntimeError):
    """The dedup horizon is shorter than what Kafka may still deliver: the service refuses to start."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("inbox dedup horizon too short: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class InboxRetention:
    """The horizon a consumer dedups over, and the clock skew it tolerates ahead."""

    horizon: timedelta = timedelta(days=10)
    max_skew: timedelta = timedelta(minutes=10)
    partition_width: timedelta = timedelta(days=1)

    @classmethod
    def from_settings(cls, settings: InboxSettings) -> InboxRetention:
        return cls(
            horizon=timedelta(days=settings.dedup_horizon_days),
            max_skew=timedelta(seconds=settings.max_clock_skew_s),
            partition_width=timedelta(hours=settings.partition_hours),
        )

    def refusal(self, occurred_at: datetime, now: datetime) -> EventRefusal | None:
        """Why an event of this time may not be applied now (None: it may)."""
        if occurred_at < now - self.horizon:
            return EventRefusal(
                BEYOND_DEDUP_HORIZON,
                f"event time {occurred_at.isoformat()} is older than the dedup horizon "
                f"(INBOX_DEDUP_HORIZON_DAYS={self.horizon / timedelta(days=1):g})",
            )
        if occurred_at > now + self.max_skew:
            return EventRefusal(
                BEYOND_CLOCK_SKEW,
                f"event time {occurred_at.isoformat()} is ahead of this clock by more than "
                f"INBOX_MAX_CLOCK_SKEW_S={self.max_skew.total_seconds():g}",
            )
        return None

    def keep_from(self, now: datetime) -> datetime:
        """Partitions wholly older than this are dropped."""
        return now - self.horizon - DROP_GRACE

    def cover_until(self, now: datetime) -> datetime:
        """Partitions are created up to here."""
        return now + self.max_skew + PARTITIONS_AHEAD * self.partition_width


def horizon_problems(retention_ms: Mapping[str, int], settings: InboxSettings) -> list[str]:
    """For each consumed topic (physical name → how long it may keep a record: `retention.ms` + `segment.ms`, as
    `topic_retention_ms` reads it), why the horizon does not cover it.

    A topic keeping records for `retention.ms` may deliver an event that old, plus however late it was appended
    (`INBOX_MAX_REPLAY_DAYS` also covers the relay's backlog and an operator's replay). -1 (for ever) never fits,
    unless INBOX_ACCEPT_INFINITE_RETENTION says such replays may be dead-lettered."""
    horizon_ms = settings.dedup_horizon_days * DAY_MS
    replay_ms = settings.max_replay_days * DAY_MS
    problems: list[str] = []
    for topic, retention in sorted(retention_ms.items()):
        if retention < 0:
            if not settings.accept_infinite_retention:
                problems.append(
                    f"topic {topic} keeps records for ever (retention.ms={retention}): INBOX_DEDUP_HORIZON_DAYS "
                    f"({settings.dedup_horizon_days:g}) cannot cover it; set a retention, or "
                    "INBOX_ACCEPT_INFINITE_RETENTION=true to dead-letter replays older than the horizon"
                )
            continue
        if retention + replay_ms > horizon_ms:
            needed = math.ceil((retention + replay_ms) / DAY_MS * 100) / 100
            problems.append(
                f"topic {topic} keeps a record up to {retention} ms ({retention / DAY_MS:g} days: retention.ms + "
                f"segment.ms) plus INBOX_MAX_REPLAY_DAYS "
                f"({settings.max_replay_days:g}) exceeds INBOX_DEDUP_HORIZON_DAYS ({settings.dedup_horizon_days:g}):"
                f" raise it to at least {needed:g}, or shorten the topic's retention.ms or segment.ms"
            )
    return problems


_MAINTAIN = text("SELECT action FROM prizeflow_inbox_maintain(:keep_from, :cover_until, :width) AS action")


async def maintain_inbox(db: AsyncEngine | AsyncConnection, retention: InboxRetention, now: datetime) -> list[str]:
    """Create the partitions ahead, drop those past the horizon (and empty the pre-partitioning table once it is
    past it too); returns what was done. Idempotent; concurrent callers (replicas) queue on an advisory lock, and
    the later ones find nothing left to do."""
    params = {
        "keep_from": retention.keep_from(now),
        "cover_until": retention.cover_until(now),
        "width": retention.partition_width,
    }
    if isinstance(db, AsyncConnection):
        return list((await db.execute(_MAINTAIN, params)).scalars())
    async with db.begin() as conn:
        actions = list((await conn.execute(_MAINTAIN, params)).scalars())
    if any(a.startswith("drops postponed") for a in actions):
        log.warning(
            "inbox partitions not dropped this time (locks held too long); tried again next run",
            extra={"actions": actions},
        )
    elif actions:
        log.info("inbox partitions maintained", extra={"actions": actions})
    return actions


__all__ = [
    "BEYOND_CLOCK_SKEW",
    "BEYOND_DEDUP_HORIZON",
    "DROP_GRACE",
    "InboxHorizonError",
    "InboxRetention",
    "horizon_problems",
    "maintain_inbox",
]
