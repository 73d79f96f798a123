"""Every PostgreSQL store but the ledger, as the use cases' `Stores` (the composition root builds it once)."""

from __future__ import annotations

from prizeflow_rewards.adapters.allocations_pg import PgRoundAllocations
from prizeflow_rewards.adapters.campaigns_pg import PgCampaignRepository
from prizeflow_rewards.adapters.claims_pg import PgClaimRepository, PgPlayers
from prizeflow_rewards.adapters.compliance_pg import PgCompliance
from prizeflow_rewards.adapters.contradictions_pg import PgContradictions
from prizeflow_rewards.adapters.outbox_pg import PgOutbox
from prizeflow_rewards.adapters.routes_pg import PgPayoutRoutes
from prizeflow_rewards.adapters.topups_pg import PgTopUpRepository
from prizeflow_rewards.adapters.wallets_pg import PgWalletQueries
from prizeflow_rewards.application.ports import Stores


def pg_stores() -> Stores:
    return Stores(
        claims=PgClaimRepository(),
        campaigns=PgCampaignRepository(),
        allocations=PgRoundAllocations(),
        routes=PgPayoutRoutes(),
        players=PgPlayers(),
        wallets=PgWalletQueries(),
        outbox=PgOutbox(),
        top_ups=PgTopUpRepository(),
        contradictions=PgContradictions(),
        compliance=PgCompliance(),
    )


__all__ = ["pg_stores"]
