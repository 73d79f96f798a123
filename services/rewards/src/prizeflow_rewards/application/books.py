"""Rewards' books: its stores, bound to one transaction (`prizeflow_runtime.uow`)."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_rewards.application.ports import (
    Backend,
    CampaignRepository,
    ClaimRepository,
    Compliance,
    Contradictions,
    FlowQueries,
    FxQuotes,
    Ledger,
    LedgerBook,
    LedgerCorrections,
    Outbox,
    PayoutRoutes,
    Players,
    RoundAllocations,
    TopUpRepository,
    WalletQueries,
)


@dataclass(frozen=True, slots=True)
class Books:
    """What a use case or a Kafka handler reads, locks, writes and stages in its one transaction. The ledger's
    accounts are taken in one order per transaction (`Ledger`): rows of the other stores before them."""

    ledger: Ledger
    claims: ClaimRepository
    players: Players
    compliance: Compliance
    routes: PayoutRoutes
    campaigns: CampaignRepository
    allocations: RoundAllocations
    top_ups: TopUpRepository
    corrections: LedgerCorrections
    ledger_book: LedgerBook
    wallets: WalletQueries
    flows: FlowQueries
    contradictions: Contradictions
    backend: Backend
    outbox: Outbox
    fx: FxQuotes


__all__ = ["Books"]
