"""Inbox: a consumer records `(consumer, event_id)` in the same transaction as its effects.

A redelivered event finds its row already there and is skipped, so its effects apply once however many
times Kafka hands it over (duplicate publish, offset reset, a crash before the offset commit). The row also
keeps a digest of the record's bytes: the same event id arriving with different bytes is not a duplicate
but a reused id, which the consumer refuses (`event_id_reused`) instead of letting it vanish. A refused
event's row says so (`outcome = 'refused'`): a replay of it is a no-op too, until an operator redrives it.

The key is `(consumer, event_id, occurred_hour)`, the hour being the event's own CloudEvents `time` floored to the
UTC hour: the table is partitioned by it, and partitions past the dedup horizon are dropped whole
(`inbox_retention`, ADR 0008). A redelivery carries the same bytes, hence the same hour and partition; the same id
with other bytes is caught as reused when its time falls in the same hour as the first one's (ADR 0008 says why
no further). The claim also consults `inbox_legacy`, the table as it was before it was partitioned, until the
maintenance empties it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

APPLIED = "applied"
REFUSED = "refused"


_HOUR_S = 3600


def hour_of(at: datetime) -> datetime:
    """An event's inbox key: its time floored to the UTC hour (independent of any session's time zone)."""
    return datetime.fromtimestamp(at.timestamp() // _HOUR_S * _HOUR_S, UTC)


def digest_of(value: bytes) -> bytes:
    """What the inbox remembers of a record's body: its SHA-256."""
    return hashlib.sha256(value).digest()


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: uuid.UUID
    topic: str
    partition: int
    offset: int
    occurred_at: datetime  # the envelope's `time`: its UTC hour is the inbox partition key
    digest: bytes | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a claim found: the events seen for the first time, and those seen before with other bytes."""

    fresh: set[uuid.UUID] = field(default_factory=set)
    reused: set[uuid.UUID] = field(default_factory=set)


_CLAIM = text(
    """
    INSERT INTO inbox (consumer, event_id, occurred_hour, topic, partition, "offset", digest, outcome)
    SELECT CAST(:consumer AS varchar), d.event_id, d.occurred_hour, d.topic, d.partition, d.off, d.digest, :outcome
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:hours AS timestamptz[]), CAST(:topics AS text[]), CAST(:partitions AS int[]),
        CAST(:offsets AS bigint[]), CAST(:digests AS bytea[])
    ) AS d(event_id, occurred_hour, topic, partition, off, digest)
    WHERE NOT EXISTS (
        SELECT 1 FROM inbox_legacy l WHERE l.consumer = CAST(:consumer AS varchar) AND l.event_id = d.event_id
    )
    ON CONFLICT (consumer, event_id, occurred_hour) DO NOTHING
    RETURNING event_id
    """
)
# Only run for the deliveries the insert did not claim (duplicates are rare): which of them carry bytes other
# than those first recorded under their id. Rows from before digests were kept (NULL) are given the benefit.
_REUSED = text(
    """
    SELECT i.event_id FROM (
        SELECT consumer, event_id, digest FROM inbox WHERE consumer = :consumer AND event_id = ANY(CAST(:ids AS uuid[]))
        UNION ALL
        SELECT consumer, event_id, digest FROM inbox_legacy
        WHERE consumer = :consumer AND event_id = ANY(CAST(:ids AS uuid[]))
    ) i
    JOIN unnest(CAST(:ids AS uuid[]), CAST(:digests AS bytea[])) AS d(event_id, digest) ON i.event_id = d.event_id
    WHERE i.digest IS NOT NULL AND d.digest IS NOT NULL AND i.digest <> d.digest
    """
)


async def claim(session: AsyncSession | AsyncConnection, consumer: str, delivery: Delivery) -> bool:
    """True when this delivery is the first of its event for `consumer`; False for a duplicate."""
    return delivery.event_id in (await claim_many(session, consumer, [delivery])).fresh


async def claim_many(
    session: AsyncSession | AsyncConnection,
    consumer: str,
    deliveries: Sequence[Delivery],
    *,
    outcome: str = APPLIED,
) -> Claimed:
    """Claim a batch in one statement; returns the ids seen for the first time and the reused ones."""
    if not deliveries:
        return Claimed()
    result = await session.execute(
        _CLAIM,
        {
            "consumer": consumer,
            "outcome": outcome,
            "ids": [d.event_id for d in deliveries],
            "hours": [hour_of(d.occurred_at) for d in deliveries],
            "topics": [d.topic for d in deliveries],
            "partitions": [d.partition for d in deliveries],
            "offsets": [d.offset for d in deliveries],
            "digests": [d.digest for d in deliveries],
        },
    )
    fresh = {row[0] for row in result}
    seen = [d for d in deliveries if d.event_id not in fresh]
    if not seen:
        return Claimed(fresh)
    rows = await session.execute(
        _REUSED, {"consumer": consumer, "ids": [d.event_id for d in seen], "digests": [d.digest for d in seen]}
    )
    return Claimed(fresh, {row[0] for row in rows})
