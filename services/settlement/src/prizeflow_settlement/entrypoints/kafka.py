"""Kafka entrypoint: a poll of `prizeflow.game.rounds.v1` → ApplyRoundEvents, in the runtime's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload
from prizeflow_settlement.adapters.sql import SpecCache, SqlRoundStore
from prizeflow_settlement.application.apply_round_events import ApplyRoundEvents

CONSUMER_NAME = "settlement-rounds"


class RoundEventsHandler:
    """The runtime's batch handler: the inbox rows are claimed, the transaction is open."""

    def __init__(self, apply: ApplyRoundEvents, specs: SpecCache | None = None) -> None:
        self.apply = apply
        self.specs = specs

    async def __call__(self, session: AsyncSession, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        await self.apply(SqlRoundStore(session, self.specs), envelopes)


__all__ = ["CONSUMER_NAME", "RoundEventsHandler"]
