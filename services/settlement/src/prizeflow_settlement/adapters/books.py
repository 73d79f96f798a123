"""`bind(session) -> Books`: every settlement store on the one session the unit of work (or the consumer) opened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_settlement.adapters.outbox_pg import SqlOutbox
from prizeflow_settlement.adapters.rounds_pg import SqlRoundStore
from prizeflow_settlement.adapters.spec_cache import SpecCache
from prizeflow_settlement.application.books import Books


def bind(session: AsyncSession, *, specs: SpecCache | None = None) -> Books:
    """The rounds share the process's `SpecCache` (bootstrap passes it with `functools.partial`)."""
    return Books(rounds=SqlRoundStore(session, specs), outbox=SqlOutbox(session))


__all__ = ["bind"]
