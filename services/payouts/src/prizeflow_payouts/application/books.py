"""Payouts' books: every store of the deployable, bound to one transaction (`prizeflow_runtime.uow`).

    async with uow() as books:          # or `await uow.run(work)`: run again, whole, after a deadlock
        payout = await books.payouts.get(payout_id, for_update=True)
        await books.holds.hold(...)     # the gate's rows: a hold is a payout state
        policy = await books.compliance.facts.active_policy()

Built by `adapters.books.bind(session)`; use cases and Kafka handlers receive `books`, never a session. A context
other than the payout lifecycle reaches this transaction only through its own stores here (`compliance`:
`ComplianceStores`; `postings`: what the ledger booked, kept for reconciliation).
"""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_compliance.facts import ComplianceStores
from prizeflow_payouts.application.gate import GateStore
from prizeflow_payouts.application.ports import Disagreements, PayoutGauges, PayoutRepository, SignerResults
from prizeflow_reconciliation.statements import LedgerPostings


@dataclass(frozen=True, slots=True)
class Books:
    """What a payouts use case or Kafka handler reads, locks, writes and stages in its one transaction."""

    payouts: PayoutRepository  # requests, claims, guarded changes, history, attempts, approvals, the outbox
    holds: GateStore  # the gate's holds, decisions, clearances and window facts (on the payouts rows)
    disagreements: Disagreements
    gauges: PayoutGauges
    compliance: ComplianceStores  # verification records, policy versions, re-screen claims, the gate's facts
    postings: LedgerPostings  # what the ledger booked on the rails' accounts (reconciliation's input)
    signer_results: SignerResults  # the signer's answers, applied by the rails that sign through it


__all__ = ["Books"]
