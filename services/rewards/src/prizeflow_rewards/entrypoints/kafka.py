"""Kafka handlers: decode → use case. Each runs inside the consumer's transaction (inbox row claimed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload
from prizeflow_rewards.application.claims import SettlePayout
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_runtime.logging import log_context


@dataclass
class RoundEventsHandler:
    """prizeflow.settlement.rounds.v1 (RoundSettled, RoundVoided) and prizeflow.game.rounds.v1 (EntryRecorded)."""

    rounds: RoundMoney

    async def __call__(self, session: AsyncSession, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        for env in envelopes:
            with log_context(correlation_id=env.correlationid, event_id=str(env.id)):
                await self.rounds.handle(session, env)


@dataclass
class PayoutEventsHandler:
    """prizeflow.payouts.events.v1: post or void claim reservations."""

    settle: SettlePayout

    async def __call__(self, session: AsyncSession, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        for env in envelopes:
            with log_context(correlation_id=env.correlationid, event_id=str(env.id)):
                await self.settle.handle(session, env)
