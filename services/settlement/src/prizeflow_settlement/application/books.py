"""Settlement's books: its stores, bound to one transaction (`prizeflow_runtime.uow`)."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_settlement.application.ports import Outbox, RoundStore


@dataclass(frozen=True, slots=True)
class Books:
    """What a use case or a Kafka handler reads, locks, writes and stages in its one transaction."""

    rounds: RoundStore
    outbox: Outbox


__all__ = ["Books"]
