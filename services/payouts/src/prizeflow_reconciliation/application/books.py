"""`ReconciliationStores`: every store reconciliation's use cases touch, bound to one transaction
(`adapters/books.py: bind(session)`), opened by the unit of work (`async with uow() as books:`)."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_reconciliation.application.ports import ExceptionStore, Outbox, RunStore
from prizeflow_reconciliation.statements import LedgerPostings, PayoutReturns
from prizeflow_runtime.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class ReconciliationStores:
    runs: RunStore
    exceptions: ExceptionStore
    outbox: Outbox
    postings: LedgerPostings  # what the ledger booked on the rails' accounts (the lifecycle's consumer writes them)
    payouts: PayoutReturns  # the payout lifecycle's side of a payout returned by two people's decision


ReconciliationUnitOfWork = UnitOfWork[ReconciliationStores]

__all__ = ["ReconciliationStores", "ReconciliationUnitOfWork"]
