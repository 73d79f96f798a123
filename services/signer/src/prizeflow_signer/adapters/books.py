"""`bind(session) -> Books`: every signer store on the one session the consumer opened for a request."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_signer.adapters.sql import SqlAuditStore, SqlOutbox, SqlResultStore, SqlSignatureStore, SqlSpendStore
from prizeflow_signer.application.books import Books


def bind(session: AsyncSession) -> Books:
    return Books(
        results=SqlResultStore(session),
        spend=SqlSpendStore(session),
        signatures=SqlSignatureStore(session),
        audit=SqlAuditStore(session),
        outbox=SqlOutbox(session),
    )


__all__ = ["bind"]
