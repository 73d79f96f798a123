"""Ports the use cases need; adapters implement them (PostgreSQL in production, in-memory fakes in unit tests).
The ports a rail's reader asks its provider back through are the rail's (`prizeflow_contracts.rails.<rail>`).

The stores (`Deliveries`, `Outbox`) are bound to one transaction and reached through `Books`
(`application/books.py`); the read side (`DeliveryQueries`) opens its own reads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from prizeflow_contracts.envelope import StagedEvent


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One accepted callback as it is stored: never its headers (only the verified signature timestamp)."""

    provider: str
    provider_type: str
    provider_event_id: str
    kind: str
    outcome: str  # published | ignored
    ignored_reason: str | None
    event_type: str | None
    event_json: str | None  # the CloudEvent published (None when ignored)
    published_event_id: uuid.UUID | None
    correlation_id: str
    correlation_generated: bool
    confirmed: bool
    body: bytes
    body_sha256: str
    signature_timestamp: int
    received_at: datetime


class DeliveryWriter(Protocol):
    """Stores deliveries, deduplicated by (provider, provider event id), each with its event staged in the
    outbox in the same transaction (`application/intake.py`: `DeliveryIntake`, a group commit)."""

    async def write(self, delivery: NewDelivery, event: StagedEvent | None) -> bool:
        """True once the delivery (and its event) committed; False if (provider, provider event id) was already
        stored (nothing written). Returns only after the commit."""
        ...

    async def seen(self, provider: str, provider_event_id: str) -> bool:
        """Whether that delivery is stored already (a cheap check before asking the provider about it)."""
        ...


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    id: int
    provider: str
    provider_event_id: str
    outcome: str
    event_json: str | None
    correlation_id: str
    republished: int


class Deliveries(Protocol):
    """The stored deliveries, in one transaction: taken by their dedup key, locked and marked by an operator's
    action, deleted past their retention."""

    async def insert_new(self, deliveries: Sequence[NewDelivery]) -> set[tuple[str, str]]:
        """Store each delivery whose (provider, provider event id) is not stored yet (within the batch, the first
        of a key); the keys stored. One statement, whatever the batch's size."""
        ...

    async def lock(self, delivery_id: int) -> StoredDelivery | None: ...

    async def mark_republished(self, delivery_id: int, *, at: datetime) -> None: ...

    async def delete_received_before(self, cutoff: datetime, *, limit: int) -> int:
        """Delete at most `limit` deliveries received before `cutoff` (skipping rows another transaction holds,
        waiting briefly for a lock: pruning yields to the ingress); how many went."""
        ...


class Outbox(Protocol):
    async def stage(self, events: Sequence[StagedEvent]) -> None:
        """Stage events in the transaction, in order: published only if it commits."""
        ...


class DeliveryLookup(Protocol):
    async def seen(self, provider: str, provider_event_id: str) -> bool:
        """Whether that delivery is stored already (committed), read outside any transaction of the caller."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class DeliveryTrail:
    """A stored delivery as a flow's timeline shows it (never its body)."""

    id: int
    provider: str
    provider_event_id: str
    kind: str
    outcome: str
    ignored_reason: str | None
    event_type: str | None
    subject: str  # what it is about: our top-up id or payout key when the event names one, else the provider's id
    confirmed: bool
    received_at: datetime
    republished: int
    last_republished_at: datetime | None


class DeliveryTimelineQueries(Protocol):
    async def deliveries_of(self, correlation_id: str, *, limit: int) -> list[DeliveryTrail]:
        """The deliveries of one flow (a correlation id), oldest first."""
        ...


class DeliveryQueries(DeliveryTimelineQueries, DeliveryLookup, Protocol):
    """Read side for operators. Lists never carry bodies; `get` does (provider data, never a secret)."""

    async def list_deliveries(
        self, *, provider: str | None, outcome: str | None, before_id: int | None, limit: int
    ) -> DeliveryPage: ...

    async def get_delivery(self, delivery_id: int) -> dict[str, Any] | None: ...


__all__ = [
    "Deliveries",
    "DeliveryLookup",
    "DeliveryPage",
    "DeliveryQueries",
    "DeliveryTimelineQueries",
    "DeliveryTrail",
    "DeliveryWriter",
    "NewDelivery",
    "Outbox",
    "StoredDelivery",
]
