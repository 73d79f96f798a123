"""The webhooks service's books: its stores, bound to one transaction (`prizeflow_runtime.uow`)."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_webhooks.application.ports import Deliveries, Outbox


@dataclass(frozen=True, slots=True)
class Books:
    """What a use case reads, locks, writes and stages in its one transaction."""

    deliveries: Deliveries
    outbox: Outbox


__all__ = ["Books"]
