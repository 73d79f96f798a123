"""`bind(session) -> Books`: every payouts store on the one session the unit of work (or the consumer) opened."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_compliance.facts import ComplianceStores
from prizeflow_payouts.adapters.disagreements_pg import SqlDisagreements
from prizeflow_payouts.adapters.gauges_pg import SqlPayoutGauges
from prizeflow_payouts.adapters.holds_pg import SqlHoldStore
from prizeflow_payouts.adapters.payouts_pg import SqlPayoutRepository
from prizeflow_payouts.adapters.signer_results import SqlSignerResults
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.rail import SignerSink
from prizeflow_reconciliation.statements import LedgerPostings


def bind(
    session: AsyncSession,
    *,
    compliance: Callable[[AsyncSession], ComplianceStores],
    postings: Callable[[AsyncSession], LedgerPostings],
    signer_sinks: Sequence[SignerSink] = (),
) -> Books:
    """`compliance`: compliance's own `bind` (its stores on this session: `prizeflow_compliance.adapters.books`);
    `postings`: reconciliation's `LedgerPostings` on this session (its `bootstrap.ledger_postings`);
    `signer_sinks`: the rails that sign through the signer service. The composition root passes them with
    `functools.partial` (`prizeflow_payouts.bootstrap.bind_books`)."""
    return Books(
        payouts=SqlPayoutRepository(session),
        holds=SqlHoldStore(session),
        disagreements=SqlDisagreements(session),
        gauges=SqlPayoutGauges(session),
        compliance=compliance(session),
        postings=postings(session),
        signer_results=SqlSignerResults(session, signer_sinks),
    )


__all__ = ["bind"]
