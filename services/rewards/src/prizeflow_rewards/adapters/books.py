"""`bind(session) -> Books`: every rewards store on the one session the unit of work (or the consumer) opened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.adapters.allocations_pg import SqlRoundAllocations
from prizeflow_rewards.adapters.backend_pg import SqlBackend
from prizeflow_rewards.adapters.campaigns_pg import SqlCampaignRepository
from prizeflow_rewards.adapters.claims_pg import SqlClaimRepository, SqlPlayers
from prizeflow_rewards.adapters.compliance_pg import SqlCompliance
from prizeflow_rewards.adapters.contradictions_pg import SqlContradictions
from prizeflow_rewards.adapters.corrections_pg import SqlLedgerCorrections
from prizeflow_rewards.adapters.flows_pg import SqlFlowQueries
from prizeflow_rewards.adapters.fx_pg import SqlFxQuotes
from prizeflow_rewards.adapters.ledger_book_pg import SqlLedgerBook
from prizeflow_rewards.adapters.ledger_pg import SqlLedger
from prizeflow_rewards.adapters.outbox_pg import SqlOutbox
from prizeflow_rewards.adapters.routes_pg import SqlPayoutRoutes
from prizeflow_rewards.adapters.topups_pg import SqlTopUpRepository
from prizeflow_rewards.adapters.wallets_pg import SqlWalletQueries
from prizeflow_rewards.application.books import Books


def bind(session: AsyncSession | AsyncConnection, *, strict: bool = False) -> Books:
    """`strict`: the ledger refuses any account a transaction did not lock up front (REWARDS_LEDGER_STRICT_LOCKS;
    bootstrap passes it with `functools.partial`). A connection serves as well as a session (tools and tests)."""
    return Books(
        ledger=SqlLedger(session, strict=strict),
        claims=SqlClaimRepository(session),
        players=SqlPlayers(session),
        compliance=SqlCompliance(session),
        routes=SqlPayoutRoutes(session),
        campaigns=SqlCampaignRepository(session),
        allocations=SqlRoundAllocations(session),
        top_ups=SqlTopUpRepository(session),
        corrections=SqlLedgerCorrections(session),
        ledger_book=SqlLedgerBook(session),
        wallets=SqlWalletQueries(session),
        flows=SqlFlowQueries(session),
        contradictions=SqlContradictions(session),
        backend=SqlBackend(session),
        outbox=SqlOutbox(session),
        fx=SqlFxQuotes(session),
    )


__all__ = ["bind"]
