"""`bind(session) -> Books`: every webhooks store on the one session the unit of work opened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_webhooks.adapters.deliveries_pg import SqlDeliveries
from prizeflow_webhooks.adapters.outbox_pg import SqlOutbox
from prizeflow_webhooks.application.books import Books


def bind(session: AsyncSession) -> Books:
    return Books(deliveries=SqlDeliveries(session), outbox=SqlOutbox(session))


__all__ = ["bind"]
