"""Ports the use cases depend on; adapters implement them (`adapters/*_pg.py` and the checkout providers in
production, in-memory fakes in the unit tests).

The stores, by topic in `application/stores/`, are bound to one transaction (`Books`, built by `adapters/books.py`
`bind`): everything a use case reads, locks and writes through one `books`, events included, commits or rolls back
together. The ports defined here work outside of any transaction: the checkout providers (called between two
transactions, never inside one), the sandbox's page, and what tells a lost COMMIT apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from prizeflow_rewards.application.stores.campaigns import CampaignRepository, HeldRound, RoundAllocations
from prizeflow_rewards.application.stores.claims import (
    ClaimDecision,
    ClaimHistory,
    ClaimRepository,
    Compliance,
    FirstUse,
    IntakeFacts,
    IntakeQuery,
    PayoutRoutes,
    Players,
)
from prizeflow_rewards.application.stores.corrections import LedgerCorrections
from prizeflow_rewards.application.stores.fx import FxPosition, FxQuotes, FxReconciliation
from prizeflow_rewards.application.stores.ledger import Ledger, LedgerBook, TransferRecord
from prizeflow_rewards.application.stores.queries import (
    ClaimTrail,
    FlowQueries,
    HeldRoundTrail,
    WalletMovement,
    WalletQueries,
)
from prizeflow_rewards.application.stores.shared import Backend, Contradictions, Outbox
from prizeflow_rewards.application.stores.topups import TopUpRepository


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """What a provider needs to open a checkout session for one top-up (`top_up_id` is its idempotency key)."""

    top_up_id: str
    player_id: str
    correlation_id: str
    asset: str
    currency: str
    amount: int
    description: str


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    """A provider's checkout session as it reports it (Stripe's shape: status open/complete/expired,
    payment_status unpaid/paid/no_payment_required)."""

    session_ref: str
    url: str | None
    status: str
    payment_status: str
    amount_total: int | None
    currency: str | None
    payment_ref: str | None
    expires_at: datetime
    top_up_id: str | None = None

    @property
    def paid(self) -> bool:
        return self.status == "complete" and self.payment_status == "paid"

    @property
    def expired(self) -> bool:
        return self.status == "expired"


class CheckoutUnavailableError(Exception):
    """No answer from the provider (unreachable, timed out, 5xx, rate limited): nothing was recorded; retry."""

    def __init__(self, provider: str, detail: str) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider
        self.detail = detail


class CheckoutRefusedError(Exception):
    """The provider answered and refused the request (`code` is the provider's, e.g. Stripe's error code)."""

    def __init__(self, provider: str, code: str, detail: str) -> None:
        super().__init__(f"{provider}: {code}: {detail}")
        self.provider = provider
        self.code = code
        self.detail = detail


class CheckoutProvider(Protocol):
    """A provider that takes a player's payment on its own page (Stripe Checkout, the sandbox)."""

    @property
    def name(self) -> str:
        """The provider's name, as its webhook events name it (`ProviderType`)."""
        ...

    @property
    def currency_scheme(self) -> str:
        """Whose currency codes it takes (`Asset.provider_codes` key)."""
        ...

    async def create_session(self, request: CheckoutRequest) -> CheckoutSession:
        """Idempotent on `request.top_up_id`: the same top-up gets the same session back.
        Raises `CheckoutUnavailableError` or `CheckoutRefusedError`."""
        ...

    async def retrieve_session(self, session_ref: str) -> CheckoutSession: ...


class SandboxPayer(Protocol):
    """The sandbox provider's checkout page (the dev profile's): the payer pays, or lets the session expire."""

    async def retrieve_session(self, session_ref: str) -> CheckoutSession: ...

    async def complete(self, session_ref: str, outcome: Literal["paid", "expired"]) -> CheckoutSession: ...


@dataclass(frozen=True, slots=True)
class MarketRate:
    """A provider's published mid rate: `rate` target units per one source unit, published at `timestamp`."""

    base: str
    symbol: str
    rate: Decimal
    timestamp: datetime


class RatesUnavailableError(Exception):
    """No usable answer from the rates provider (unreachable, refused, an answer without the rate): no quote."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RatesProvider(Protocol):
    """Where quotes' rates come from (Open Exchange Rates' shape). Called outside any transaction."""

    async def latest(self, base: str, symbol: str) -> MarketRate:
        """The latest publication's rate of `symbol` per one `base`. Raises `RatesUnavailableError`."""
        ...


class LostCommits(Protocol):
    """A COMMIT whose connection was lost may have committed, or not; it is decided for good once the backend that
    was committing it has ended. Outside of any unit of work: it opens what it needs."""

    async def end(self, pid: int) -> None:
        """Make sure the transaction backend `pid` was committing has ended (committed or rolled back for good): the
        backend exits, if it has not. Raises if that cannot be made sure (the database out of reach, the backend
        still there after its wait)."""
        ...


__all__ = [
    "Backend",
    "CampaignRepository",
    "CheckoutProvider",
    "CheckoutRefusedError",
    "CheckoutRequest",
    "CheckoutSession",
    "CheckoutUnavailableError",
    "ClaimDecision",
    "ClaimHistory",
    "ClaimRepository",
    "ClaimTrail",
    "Compliance",
    "Contradictions",
    "FirstUse",
    "FlowQueries",
    "FxPosition",
    "FxQuotes",
    "FxReconciliation",
    "HeldRound",
    "HeldRoundTrail",
    "IntakeFacts",
    "IntakeQuery",
    "Ledger",
    "LedgerBook",
    "LedgerCorrections",
    "LostCommits",
    "MarketRate",
    "Outbox",
    "PayoutRoutes",
    "Players",
    "RatesProvider",
    "RatesUnavailableError",
    "RoundAllocations",
    "SandboxPayer",
    "TopUpRepository",
    "TransferRecord",
    "WalletMovement",
    "WalletQueries",
]
