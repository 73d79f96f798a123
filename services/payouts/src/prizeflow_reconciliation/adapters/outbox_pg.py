"""`Outbox` on PostgreSQL: events staged in the unit of work's transaction (the runtime's outbox table)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_runtime.outbox import add_events


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        await add_events(self.session, events)


__all__ = ["SqlOutbox"]
