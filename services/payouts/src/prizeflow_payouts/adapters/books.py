"""`bind(session) -> Books`: every payouts store on the one session the unit of work (or the consumer) opened."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prizeflow_compliance.facts import ComplianceStores
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_payouts.adapters.disagreements_pg import SqlDisagreements
from prizeflow_payouts.adapters.gauges_pg import SqlPayoutGauges
from prizeflow_payouts.adapters.holds_pg import SqlHoldStore
from prizeflow_payouts.adapters.payouts_pg import SqlPayoutRepository
from prizeflow_payouts.adapters.reconciliation_pg import SqlLedgerPostings
from prizeflow_payouts.adapters.signer_results import SignerResultsSink, SqlSignerResults
from prizeflow_payouts.application.books import Books


def bind(
    session: AsyncSession,
    *,
    compliance: Callable[[AsyncSession], ComplianceStores],
    signer_sinks: Sequence[SignerResultsSink] = (),
) -> Books:
    """`compliance`: compliance's own `bind` (its stores on this session: `prizeflow_compliance.adapters.books`);
    `signer_sinks`: the rails that sign through the signer service. The composition root passes both with
    `functools.partial` (`prizeflow_payouts.bootstrap.bind_books`)."""
    return Books(
        payouts=SqlPayoutRepository(session),
        holds=SqlHoldStore(session),
        disagreements=SqlDisagreements(session),
        gauges=SqlPayoutGauges(session),
        compliance=compliance(session),
        postings=SqlLedgerPostings(session),
        signer_results=SqlSignerResults(session, signer_sinks),
    )


__all__ = ["bind"]
