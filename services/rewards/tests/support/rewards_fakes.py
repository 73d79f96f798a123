"""In-memory fakes of the rewards stores, for unit tests of the use cases: the rules, not the SQL.

`Fakes` holds one of each, the `Books` over them, and a `FakeUnitOfWork` on those books: a block that raises rolls
every store back, as PostgreSQL would. Each fake is held to its PostgreSQL store by
`tests/integration/test_store_contracts.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fake_ledger import FakeLedger, FakeLedgerBook, FakeWallets, Shared
from fake_stores import (
    FakeAllocations,
    FakeBackend,
    FakeCampaigns,
    FakeClaims,
    FakeCompliance,
    FakeContradictions,
    FakeCorrections,
    FakeFlows,
    FakeFxQuotes,
    FakeLostCommits,
    FakeOutbox,
    FakePlayers,
    FakeRoutes,
    vars_of,
)
from fake_topups import FakeCheckout, FakeTopUps

from prizeflow_rewards.application.books import Books
from prizeflow_testkit.uow import FakeUnitOfWork


@dataclass
class Fakes:
    ledger: FakeLedger = field(default_factory=FakeLedger)
    claims: FakeClaims = field(default_factory=FakeClaims)
    campaigns: FakeCampaigns = field(default_factory=FakeCampaigns)
    allocations: FakeAllocations = field(default_factory=FakeAllocations)
    routes: FakeRoutes = field(default_factory=FakeRoutes)
    players: FakePlayers = field(default_factory=FakePlayers)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    top_ups: FakeTopUps = field(default_factory=FakeTopUps)
    contradictions: FakeContradictions = field(default_factory=FakeContradictions)
    compliance: FakeCompliance = field(default_factory=FakeCompliance)
    corrections: FakeCorrections = field(default_factory=FakeCorrections)
    backend: FakeBackend = field(default_factory=FakeBackend)
    fx: FakeFxQuotes = field(default_factory=FakeFxQuotes)
    books: Books = field(init=False)
    uow: FakeUnitOfWork[Books] = field(init=False)

    def __post_init__(self) -> None:
        self.claims.players, self.claims.routes = self.players, self.routes
        self.books = Books(
            ledger=self.ledger,
            claims=self.claims,
            players=self.players,
            compliance=self.compliance,
            routes=self.routes,
            campaigns=self.campaigns,
            allocations=self.allocations,
            top_ups=self.top_ups,
            corrections=self.corrections,
            ledger_book=FakeLedgerBook(self.ledger),
            wallets=FakeWallets(self.ledger),
            flows=FakeFlows(self.claims, self.allocations, self.top_ups),
            contradictions=self.contradictions,
            backend=self.backend,
            outbox=self.outbox,
            fx=self.fx,
        )
        self.uow = FakeUnitOfWork(self.books)


__all__ = [
    "FakeAllocations",
    "FakeBackend",
    "FakeCampaigns",
    "FakeCheckout",
    "FakeClaims",
    "FakeCompliance",
    "FakeContradictions",
    "FakeCorrections",
    "FakeFlows",
    "FakeLedger",
    "FakeLedgerBook",
    "FakeLostCommits",
    "FakeOutbox",
    "FakePlayers",
    "FakeRoutes",
    "FakeTopUps",
    "FakeWallets",
    "Fakes",
    "Shared",
    "vars_of",
]
