"""`bind(session) -> Books`: every payouts store on the one session the unit of work (or the consumer) opened."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_payouts.adapters.compliance_books import bind_compliance
from prizeflow_payouts.adapters.disagreements_pg import SqlDisagreements
from prizeflow_payouts.adapters.gauges_pg import SqlPayoutGauges
from prizeflow_payouts.adapters.holds_pg import SqlHoldStore
from prizeflow_payouts.adapters.payouts_pg import SqlPayoutRepository
from prizeflow_payouts.adapters.reconciliation_pg import SqlLedgerPostings
from prizeflow_payouts.adapters.signer_results import SignerResultsSink, SqlSignerResults
from prizeflow_payouts.application.books import Books


def bind(session: AsyncSession, *, signer_sinks: Sequence[SignerResultsSink] = ()) -> Books:
    """`signer_sinks`: the rails that sign through the signer service (bootstrap passes them with
    `functools.partial`)."""
    return Books(
        payouts=SqlPayoutRepository(session),
        holds=SqlHoldStore(session),
        disagreements=SqlDisagreements(session),
        gauges=SqlPayoutGauges(session),
        compliance=bind_compliance(session),
        postings=SqlLedgerPostings(session),
        signer_results=SqlSignerResults(session, signer_sinks),
    )


__all__ = ["bind"]
