"""`bind(session) -> ReconciliationStores`: every reconciliation store on the one session the unit of work (or the
consumer) opened. The payout lifecycle's side (`PayoutReturns`) is the lifecycle's own, bound to the same session by
the factory the composition root hands in (`functools.partial(bind, returns=...)`)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_reconciliation.adapters.exceptions_pg import SqlExceptionStore
from prizeflow_reconciliation.adapters.outbox_pg import SqlOutbox
from prizeflow_reconciliation.adapters.postings_pg import SqlLedgerPostings
from prizeflow_reconciliation.adapters.runs_pg import SqlRunStore
from prizeflow_reconciliation.application.books import ReconciliationStores
from prizeflow_reconciliation.statements import PayoutReturns


def bind(session: AsyncSession, *, returns: Callable[[AsyncSession], PayoutReturns]) -> ReconciliationStores:
    return ReconciliationStores(
        runs=SqlRunStore(session),
        exceptions=SqlExceptionStore(session),
        outbox=SqlOutbox(session),
        postings=SqlLedgerPostings(session),
        payouts=returns(session),
    )


__all__ = ["bind"]
