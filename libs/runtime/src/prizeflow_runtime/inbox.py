"""Inbox: a consumer records `(consumer, event_id)` in the same transaction as its effects.

A redelivered event finds its row already there and is skipped, so its effects apply once however many
times Kafka hands it over (duplicate publish, offset reset, a crash before the offset commit).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: uuid.UUID
    topic: str
    partition: int
    offset: int


_CLAIM = text(
    """
    INSERT INTO inbox (consumer, event_id, topic, partition, "offset")
    SELECT :consumer, d.event_id, d.topic, d.partition, d.off
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:topics AS text[]), CAST(:partitions AS int[]), CAST(:offsets AS bigint[])
    ) AS d(event_id, topic, partition, off)
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING event_id
    """
)


async def claim(session: AsyncSession | AsyncConnection, consumer: str, delivery: Delivery) -> bool:
    """True when this delivery is the first of its event for `consumer`; False for a duplicate."""
    return delivery.event_id in await claim_many(session, consumer, [delivery])


async def claim_many(
    session: AsyncSession | AsyncConnection, consumer: str, deliveries: Sequence[Delivery]
) -> set[uuid.UUID]:
    """Claim a batch in one statement; returns the ids seen for the first time."""
    if not deliveries:
        return set()
    result = await session.execute(
        _CLAIM,
        {
            "consumer": consumer,
            "ids": [d.event_id for d in deliveries],
            "topics": [d.topic for d in deliveries],
            "partitions": [d.partition for d in deliveries],
            "offsets": [d.offset for d in deliveries],
        },
    )
    return {row[0] for row in result}
