"""Ports the use cases depend on; adapters implement them (`adapters/*_pg.py` in production, in-memory fakes in
the unit tests).

Every port takes the caller's open transaction `tx` as its first argument and passes it through untouched:
a use case runs inside a transaction its entrypoint began (an HTTP request's, or a consumer poll's with the
inbox row claimed) and everything it reads, locks and writes, events included, commits or rolls back with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeAlias, TypeVar

from prizeflow_contracts.envelope import Envelope, StagedEvent
from prizeflow_contracts.events.payouts import PayoutRoutesPublished, PlayerVerificationChanged, RiskPolicyActivated
from prizeflow_contracts.policy import RiskPolicy, VerificationStatus
from prizeflow_rewards.domain.campaigns import Campaign, CampaignStatus
from prizeflow_rewards.domain.claims import Claim, ClaimStatus
from prizeflow_rewards.domain.contradictions import Contradiction
from prizeflow_rewards.domain.corrections import Correction, CorrectionStatus
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef, Balance, BatchResult, Transfer, TransferKind
from prizeflow_rewards.domain.topups import Adjustment, TopUp, TopUpStatus

# The open transaction, opaque to the use cases (a SQLAlchemy session or connection in production, whatever a
# fake likes in the unit tests): they only hand it to the ports.
Tx: TypeAlias = Any
T = TypeVar("T")


class Transactions(Protocol):
    """Runs `work` in one transaction of its own (run again whole if it loses a deadlock). For the use cases that
    call a provider between two transactions, never holding one open across the network."""

    async def __call__(self, work: Callable[[Tx], Awaitable[T]]) -> T: ...


class Ledger(Protocol):
    """Accounts are locked in one global order per transaction (ascending account id, never below one held):
    a use case declares every account it will touch before it moves money, a consumer poll all of the poll's.
    A transaction waits for accounts only in that order; `lock_unless_busy` takes some without waiting."""

    async def apply(self, tx: Tx, transfers: Sequence[Transfer]) -> BatchResult:
        """Apply a linked batch in the caller's transaction: all or nothing (raises `LedgerError`)."""
        ...

    async def declare(self, tx: Tx, refs: Iterable[AccountRef]) -> None:
        """Lock every account the transaction will touch, once, in account-id order, until it ends."""
        ...

    async def lock(self, tx: Tx, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        """`declare`, and the balances (check-then-apply without races)."""
        ...

    async def lock_unless_busy(
        self, tx: Tx, refs: Iterable[AccountRef], *, unless_busy: Iterable[AccountRef]
    ) -> tuple[dict[AccountRef, Balance], set[AccountRef]]:
        """`lock` of `refs` (waiting for them), then each account of `unless_busy` that no other transaction holds,
        without waiting for any: the balances of all taken (an account of `unless_busy` that does not exist yet is
        not created, and its balance is zero), and the busy accounts (held elsewhere: not taken, no balance).
        Called first in the transaction."""
        ...

    async def wait_free(self, tx: Tx, refs: Iterable[AccountRef]) -> None:
        """Wait until no other transaction holds any of these accounts (the lock timeout bounds the wait, then the
        database's error is raised), holding none of them after: before `lock`, so that a stuck account is not
        waited for while the transaction holds others. Called before the transaction takes any."""
        ...

    async def balances(self, tx: Tx, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]: ...

    async def resolved_by(self, tx: Tx, pending_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]: ...

    async def recorded(self, tx: Tx, transfer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Which of these transfers the ledger holds already, with their amounts (one read, whatever the count)."""
        ...


@dataclass(frozen=True, slots=True)
class ClaimHistory:
    """A player's recent claims, as the claim rules count them (`SubmitClaim`)."""

    claimed_today: int  # in the claim's asset, held/approved/paid, created after `day`
    recent: int  # any claim created after `velocity`
    decided: int  # paid/rejected/voided/returned, created after `window`
    failed: int  # rejected/voided/returned, created after `window`


@dataclass(frozen=True, slots=True)
class IntakeQuery:
    """What one claim request of an intake batch asks the store about."""

    claim_id: str
    player_id: str
    asset: str
    amount: int
    destination_type: str
    destination_key: str


@dataclass(frozen=True, slots=True)
class IntakeFacts:
    """What the store knows for one claim request (read under the batch's wallet locks)."""

    existing: Claim | None  # the claim this request's id names, if it was made before
    history: ClaimHistory
    destination_first_seen: datetime | None  # None: the player never used this destination
    risk_flagged: bool
    routable: bool  # some payout provider pays this amount of this asset to this destination type
    # Per window length asked for (seconds): the player's claims in the asset (their amounts, then how many, in any
    # asset) and the destination's claims in the asset across players, created in the window and neither
    # rejected, voided nor returned (the count: any). A claim that exists is in its own sums.
    player_totals: Mapping[int, int] = field(default_factory=dict)
    player_counts: Mapping[int, int] = field(default_factory=dict)
    destination_totals: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FirstUse:
    player_id: str
    destination_key: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimDecision:
    status: ClaimStatus
    at: datetime
    by: str
    rejection_code: str | None = None


class ClaimRepository(Protocol):
    """Claims. Locks: claims are always taken before ledger accounts, several at once in id order."""

    async def get(self, tx: Tx, claim_id: str, *, lock: bool = False) -> Claim | None: ...

    async def held(self, tx: Tx, *, limit: int) -> list[Claim]:
        """Held claims, oldest first."""
        ...

    async def of_player(self, tx: Tx, player_id: str, *, limit: int) -> list[Claim]:
        """A player's claims, newest first."""
        ...

    async def find(self, tx: Tx, claim_ids: Iterable[str]) -> dict[str, Claim]:
        """The claims of these ids that exist, as committed (one read; no lock)."""
        ...

    async def lock_many(self, tx: Tx, claim_ids: Iterable[str]) -> dict[str, Claim]:
        """Lock these claims in id order in one statement; those that exist, as they are."""
        ...

    async def intake_facts(
        self,
        tx: Tx,
        queries: Sequence[IntakeQuery],
        *,
        day: datetime,
        velocity: datetime,
        window: datetime,
        now: datetime,
        windows: Sequence[int] = (),
    ) -> list[IntakeFacts]:
        """Everything the claim rules read for each request of an intake batch, in ONE read, in `queries`' order:
        the claim its id names if it exists, the player's history, the destination's first use by the player,
        the player's risk flag, whether payouts' routes pay it, and the risk policy's sums over each of `windows`
        (seconds) up to `now`."""
        ...

    async def waiting_for_verification(self, tx: Tx, player_ids: Sequence[str]) -> list[Claim]:
        """These players' claims held for their identity verification (`kyc_required`), in id order; unlocked
        (the caller locks them with the poll's other claims)."""
        ...

    async def rehold(self, tx: Tx, claim_id: str, *, code: str, detail: str, policy_version: int) -> None:
        """A held claim assessed again still waits, now for this reason."""
        ...

    async def add_many(self, tx: Tx, claims: Sequence[Claim], destinations: Sequence[FirstUse]) -> None:
        """An intake batch's new claims (with their reservations, `claim.pending`; decided now unless held) and
        the destinations players used for the first time (a later use keeps the first date): one write each."""
        ...

    async def decide(self, tx: Tx, claim_id: str, decision: ClaimDecision) -> None:
        """A reviewer's decision on a held claim."""
        ...

    async def record_outcomes(
        self, tx: Tx, bound: Sequence[tuple[str, str]], settled: Sequence[tuple[str, ClaimStatus]]
    ) -> None:
        """A poll's payout outcomes, one write each: the payout each claim is bound to (claim id, payout id), and
        the status each claim's payout settled it to (claim id, status; settled now)."""
        ...


class Compliance(Protocol):
    """What payouts publishes about who may be paid: the active risk policy and each player's verification status
    (projections of `RiskPolicyActivated` and `PlayerVerificationChanged`)."""

    async def intake(self, tx: Tx, player_ids: Sequence[str]) -> tuple[RiskPolicy, dict[str, VerificationStatus]]:
        """For a claim batch: the active policy (`EMPTY_POLICY` before any) and the players' statuses (those never
        told: `not_started`), read after taking each player's verification lock shared (in one order): a
        verification change for them waits for the batch's commit, or the batch for the change's."""
        ...

    async def intake_unless_busy(
        self, tx: Tx, player_ids: Sequence[str]
    ) -> tuple[RiskPolicy, dict[str, VerificationStatus], set[str]]:
        """`intake` without waiting: the players whose verification lock a verification change holds are not
        waited for; they come back as busy (no lock, no status)."""
        ...

    async def lock_players(self, tx: Tx, player_ids: Sequence[str]) -> None:
        """Take these players' verification locks exclusively (in one order), before any claim or account: no claim
        of theirs is decided until the transaction ends."""
        ...

    async def activate(self, tx: Tx, event: RiskPolicyActivated) -> bool:
        """Make the event's policy the active one if its version is higher than the active one's; True if it did."""
        ...

    async def record_verification(self, tx: Tx, event: PlayerVerificationChanged) -> bool:
        """Keep the player's status if the event's sequence is higher than the one kept; True if it did."""
        ...


class Players(Protocol):
    """The game's risk flag on a player (the claim rules read it with a claim's other facts: `intake_facts`)."""

    async def set_risk_flag(self, tx: Tx, player_id: str, *, flagged: bool, reason: str | None, by: str) -> None: ...


class PayoutRoutes(Protocol):
    """What payouts last announced it can pay (asset x destination type, and the amounts where a rail pays fixed
    ones)."""

    async def lock(self, tx: Tx) -> None:
        """Take the routes' lock (a poll that announces routes takes it before any claim or account)."""
        ...

    async def publish(self, tx: Tx, announcement: PayoutRoutesPublished) -> None:
        """Replace the routes with a newer announcement; an older (or the same) sequence changes nothing."""
        ...

    async def all(self, tx: Tx) -> list[dict[str, Any]]: ...


class CampaignRepository(Protocol):
    async def get(self, tx: Tx, campaign_id: str, *, lock: bool = False) -> Campaign | None:
        """`lock`: for no key update (a held round's foreign key to its campaign never waits for it)."""
        ...

    async def all(self, tx: Tx) -> list[Campaign]:
        """Oldest first."""
        ...

    async def create(self, tx: Tx, campaign: Campaign, *, created_by: str) -> bool:
        """False: a campaign with this id exists (nothing written)."""
        ...

    async def set_status(self, tx: Tx, campaign_id: str, status: CampaignStatus) -> None: ...


@dataclass(frozen=True, slots=True)
class HeldRound:
    """A sponsored round's allocations that wait for its pool (or its campaign) before they are paid."""

    round_id: str
    campaign_id: str
    asset: str
    total: int
    reason: str
    event: Envelope[Any]  # the RoundSettled, paid as it is when released


class RoundAllocations(Protocol):
    """Rounds whose money settlement decided (settled or voided), and the sponsored rounds held back."""

    async def record_outcomes(self, tx: Tx, outcomes: Sequence[tuple[str, str]]) -> None:
        """(round id, "settled" | "voided") pairs, in one statement; a round keeps its first outcome."""
        ...

    async def voided(self, tx: Tx, round_id: str) -> bool: ...

    async def is_held(self, tx: Tx, round_id: str) -> bool:
        """Whether the round was ever held (released or not)."""
        ...

    async def held_among(self, tx: Tx, round_ids: Sequence[str]) -> set[str]:
        """Those of these rounds ever held, in one read."""
        ...

    async def hold(self, tx: Tx, held: HeldRound) -> None:
        """Hold a round's allocations (a round already held stays as it is)."""
        ...

    async def lock_held(self, tx: Tx, campaign_id: str) -> list[HeldRound]:
        """A campaign's rounds still held, oldest first, locked until the transaction ends."""
        ...

    async def mark_released(self, tx: Tx, round_id: str, *, by: str) -> None: ...

    async def held_totals(self, tx: Tx) -> dict[str, tuple[int, int]]:
        """Per campaign: (rounds held, their total)."""
        ...


@dataclass(frozen=True, slots=True)
class WalletMovement:
    """A transfer that moved a wallet of the player, as the wallet's history shows it."""

    seq: int
    transfer_id: uuid.UUID
    kind: str
    asset: str
    amount: int
    incoming: bool
    pending: bool
    resolves: uuid.UUID | None
    business_key: str
    created_at: datetime


class WalletQueries(Protocol):
    async def balances(self, tx: Tx, player_id: str) -> list[tuple[str, Balance]]:
        """(asset, balance) of the player's wallets any transfer moved, by asset."""
        ...

    async def wallet_ids(self, tx: Tx, player_id: str, *, asset: str | None) -> list[uuid.UUID]:
        """The player's wallet accounts (in `asset` only, if given)."""
        ...

    async def movements(
        self,
        tx: Tx,
        wallet_ids: Sequence[uuid.UUID],
        *,
        kind: TransferKind | None,
        before_seq: int | None,
        limit: int,
    ) -> list[WalletMovement]:
        """Transfers moving any of these wallets: newest first, at most `limit`, older than `before_seq` if given."""
        ...


class TopUpRepository(Protocol):
    """Top-ups and their adjustments. Locks: top-up rows before ledger accounts, several at once in id order."""

    async def get(self, tx: Tx, top_up_id: str, *, lock: bool = False) -> TopUp | None: ...

    async def lock_player(self, tx: Tx, player_id: str) -> None:
        """Serialize this player's top-up creations until the transaction ends (the daily cap cannot race)."""
        ...

    async def open_or_credited_since(self, tx: Tx, player_id: str, asset: str, *, since: datetime) -> int:
        """What the player's top-ups created after `since` add up to, among those credited or still payable."""
        ...

    async def add(self, tx: Tx, top_up: TopUp) -> bool:
        """False: a top-up with this id exists (nothing written)."""
        ...

    async def lock_matching(
        self, tx: Tx, *, top_up_ids: Sequence[str], session_refs: Sequence[str], payment_refs: Sequence[str]
    ) -> list[TopUp]:
        """The top-ups any of these names, locked in id order until the transaction ends."""
        ...

    async def find(
        self, tx: Tx, *, top_up_id: str | None, session_ref: str | None, payment_ref: str | None
    ) -> TopUp | None:
        """The top-up an event names: by our id, else the provider's session, else its payment."""
        ...

    async def set_status(self, tx: Tx, top_up_id: str, status: TopUpStatus) -> None: ...

    async def mark_credited(
        self, tx: Tx, top_up_id: str, *, payment_ref: str | None, transfer_id: uuid.UUID, at: datetime
    ) -> None:
        """The one credit of a top-up (the database refuses a second)."""
        ...

    async def adjustments(self, tx: Tx, top_up_id: str) -> list[Adjustment]:
        """In arrival order."""
        ...

    async def record_adjustment(self, tx: Tx, provider: str, adjustment: Adjustment, *, provider_event_id: str) -> None:
        """A new adjustment, pending (the database refuses a second one of the same provider, kind and ref)."""
        ...

    async def find_adjustment(self, tx: Tx, provider: str, kind: str, adjustment_ref: str) -> Adjustment | None: ...

    async def mark_applied(self, tx: Tx, adjustment: Adjustment) -> None:
        """The adjustment's split (`debited`, `receivable`, `credited`) and `applied_at`, once."""
        ...


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


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A transfer as the ledger keeps it."""

    seq: int
    id: uuid.UUID
    kind: str
    debit: AccountRef
    credit: AccountRef
    amount: int
    flags: int
    pending_id: uuid.UUID | None
    business_key: str
    correlation_id: str | None
    created_at: datetime

    @property
    def asset(self) -> str:
        return self.debit.asset


class LedgerBook(Protocol):
    """The ledger's read side, for operators: transfers by flow or account, which accounts exist."""

    async def transfers(
        self,
        tx: Tx,
        *,
        correlation_id: str | None,
        account: tuple[AccountKind, str] | None,
        before_seq: int | None,
        limit: int,
    ) -> list[TransferRecord]:
        """Newest first; `account` (kind, owner) matches the account in any asset, on either side."""
        ...

    async def transfer(self, tx: Tx, transfer_id: uuid.UUID) -> TransferRecord | None: ...

    async def existing(self, tx: Tx, refs: Iterable[AccountRef]) -> set[uuid.UUID]:
        """The ids of those accounts that exist (a correction never creates one)."""
        ...


class LedgerCorrections(Protocol):
    """Two-person corrections. Locks: a correction row before any ledger account."""

    async def add(self, tx: Tx, correction: Correction) -> bool:
        """False: a correction with this reference exists (nothing written)."""
        ...

    async def by_reference(self, tx: Tx, reference: str) -> Correction | None: ...

    async def get(self, tx: Tx, correction_id: str, *, lock: bool = False) -> Correction | None: ...

    async def list(self, tx: Tx, *, status: CorrectionStatus | None, limit: int) -> list[Correction]:
        """Newest first."""
        ...

    async def decide(self, tx: Tx, correction: Correction) -> None:
        """Store `correction`'s decision (status, who, when, why, its transfer): the database refuses a second one."""
        ...


@dataclass(frozen=True, slots=True)
class ClaimTrail:
    """A claim's milestones (never its destination)."""

    claim_id: str
    asset: str
    amount: int
    status: str
    hold_code: str | None
    rejection_code: str | None
    created_at: datetime
    decided_at: datetime | None
    settled_at: datetime | None
    payout_id: str | None


@dataclass(frozen=True, slots=True)
class HeldRoundTrail:
    round_id: str
    campaign_id: str
    asset: str
    total: int
    reason: str
    held_at: datetime
    released_at: datetime | None


class FlowQueries(Protocol):
    """What rewards recorded of one flow (a correlation id), for its timeline; at most `limit` of each."""

    async def claims_of(self, tx: Tx, correlation_id: str, *, limit: int) -> list[ClaimTrail]: ...

    async def held_rounds_of(self, tx: Tx, correlation_id: str, *, limit: int) -> list[HeldRoundTrail]: ...

    async def top_ups_of(self, tx: Tx, correlation_id: str, *, limit: int) -> list[TopUp]: ...


class Outbox(Protocol):
    async def stage(self, tx: Tx, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        """Stage events in the transaction (one write, in order): published only if it commits. A hot path hands
        them encoded already (`stage_event`)."""
        ...


class Contradictions(Protocol):
    async def record(self, tx: Tx, contradiction: Contradiction) -> bool:
        """Keep it (once per subject, aggregate and source); False if that source said it before."""
        ...

    async def recent(self, tx: Tx, *, limit: int) -> list[dict[str, Any]]:
        """The newest first, as operators read them."""
        ...


@dataclass(frozen=True, slots=True)
class Stores:
    """Every store but the ledger, built once by the composition root (PostgreSQL) or a test (fakes)."""

    claims: ClaimRepository
    campaigns: CampaignRepository
    allocations: RoundAllocations
    routes: PayoutRoutes
    players: Players
    wallets: WalletQueries
    outbox: Outbox
    top_ups: TopUpRepository
    contradictions: Contradictions
    compliance: Compliance


__all__ = [
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
    "HeldRound",
    "HeldRoundTrail",
    "IntakeFacts",
    "IntakeQuery",
    "Ledger",
    "LedgerBook",
    "LedgerCorrections",
    "Outbox",
    "PayoutRoutes",
    "Players",
    "RoundAllocations",
    "Stores",
    "TopUpRepository",
    "Transactions",
    "TransferRecord",
    "Tx",
    "WalletMovement",
    "WalletQueries",
]
