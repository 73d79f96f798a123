"""The transactional outbox (`Outbox`): the runtime's, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_contracts.envelope import Envelope, StagedEvent
from prizeflow_runtime.outbox import add_events

Conn = AsyncSession | AsyncConnection


class SqlOutbox:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def stage(self, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        await add_events(self.session, events)


__all__ = ["SqlOutbox"]
