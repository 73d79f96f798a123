"""SqlOutbox: the runtime's transactional outbox, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope, StagedEvent
from prizeflow_runtime.outbox import add_events


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def stage(self, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        await add_events(self.session, events)


__all__ = ["SqlOutbox"]
