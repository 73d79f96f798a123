"""Kafka entrypoint: a poll of `prizeflow.game.rounds.v1` → ApplyRoundEvents, on the books of the poll's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from prizeflow_contracts.envelope import Envelope, EventPayload
from prizeflow_settlement.application.apply_round_events import ApplyRoundEvents
from prizeflow_settlement.application.books import Books

CONSUMER_NAME = "settlement-rounds"


class RoundEventsHandler:
    """The runtime's batch handler: the inbox rows are claimed, the transaction is open, `books` are bound to it."""

    def __init__(self, apply: ApplyRoundEvents) -> None:
        self.apply = apply

    async def __call__(self, books: Books, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        await self.apply(books, envelopes)


__all__ = ["CONSUMER_NAME", "RoundEventsHandler"]
