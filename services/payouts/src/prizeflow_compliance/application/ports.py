"""The ports of compliance (docs/adr/0012-pay-only-whom-you-may.md).

Personal data crosses these ports only as `Identity`, in memory, to be screened and dropped: it is never stored,
logged, published or put in a metric. What Prizeflow keeps of a verification is a reference, a status, the country
of the verified identity (the policy's `allowed_countries` needs it) and the screening outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from prizeflow_compliance.application.records import ComplianceStore
from prizeflow_compliance.domain.verification import Screening, ScreeningOutcome
from prizeflow_contracts.policy import RiskPolicy, VerificationStatus
from prizeflow_contracts.providers import PayoutDestination


class KycProviderError(Exception):
    """The vendor gave no usable answer. `retryable`: an outage, a timeout, a rate limit (ask again later)."""

    def __init__(self, code: str, detail: str, *, retryable: bool) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class KycSession:
    """Where the player verifies: the vendor's hosted flow."""

    reference: str  # the vendor's applicant id
    url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class KycReview:
    """The vendor's current word on an applicant (its authoritative status, fetched; never a webhook's say-so)."""

    reference: str
    status: VerificationStatus
    country: str | None  # ISO 3166-1 alpha-2 of the verified identity, once verified
    detail: str  # the vendor's review answer, e.g. "GREEN" or "RED/RETRY" (no personal data, no reject labels)
    # The player the vendor's applicant belongs to (Sumsub's externalUserId); None: the vendor names none. One that
    # is not the record's player is refused: another person's review never verifies this player.
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified player's identity, for screening only. Its repr names no field: it never reaches a log."""

    full_name: str = field(repr=False)
    aliases: tuple[str, ...] = field(default=(), repr=False)
    birth_date: date | None = field(default=None, repr=False)
    country: str | None = field(default=None, repr=False)


class KycProvider(Protocol):
    """An identity-verification vendor (Sumsub-shaped: applicants, a hosted flow, signed webhooks)."""

    name: str

    async def start(self, player_id: str) -> KycSession:
        """The applicant for this player (created once: the player id is the vendor's external user id) and a
        fresh link to the hosted flow."""
        ...

    async def review(self, reference: str) -> KycReview: ...

    async def identity(self, reference: str) -> Identity:
        """The verified identity, to screen; the caller drops it once screened."""
        ...


@dataclass(frozen=True, slots=True)
class ScreeningMatch:
    source: str  # e.g. "ofac_sdn", "ofac_consolidated", "eu", "un"
    entry_uid: str  # the list's own id of the entry
    entry_name: str  # the listed name (public data from the list, never the player's)
    kind: str  # "address" or "name"
    score: int  # 0-1000: 1000 an exact match


@dataclass(frozen=True, slots=True)
class ScreeningResult:
    matches: tuple[ScreeningMatch, ...]
    versions: Mapping[str, str]  # source → the loaded list's version, recorded on every decision
    threshold: int  # the name-match threshold (0-1000) this result was judged with

    @property
    def hit(self) -> bool:
        return bool(self.matches)


class ScreeningUnavailable(Exception):  # noqa: N818 - a state, not a failure of the caller: the name says which
    """A configured sanctions list has never loaded in this process: nobody can be screened yet (fail closed: the
    caller holds what it was about to pass). `missing`: the sources without a loaded version."""

    def __init__(self, missing: tuple[str, ...]) -> None:
        super().__init__(f"sanctions lists not loaded: {', '.join(missing)}")
        self.missing = missing


class SanctionsScreen(Protocol):
    """Sanctions lists loaded in memory (every replica holds the latest version the database has).

    `screen_destination` and `screen_person` raise `ScreeningUnavailable` while a configured list has never
    loaded (never an empty, clear result)."""

    def screen_destination(self, destination: PayoutDestination) -> ScreeningResult: ...

    def screen_person(self, identity: Identity) -> ScreeningResult: ...

    def versions(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class PlayerCompliance:
    """What the gate needs to know about a player."""

    player_id: str
    verification: VerificationStatus
    country: str | None = None
    # The list entries the verified identity's stored screening matched (the gate holds the player's payouts until
    # two approvers cleared each of them for this player).
    screening_matches: tuple[ScreeningMatch, ...] = ()
    # The list versions that screening was made against (source → version); None: never screened.
    screening_versions: Mapping[str, str] | None = None

    @property
    def screening_hit(self) -> bool:
        return bool(self.screening_matches)

    def screening_stale(self, current: Mapping[str, str]) -> bool:
        """A verified player's stored screening differs from the loaded lists (`current`: the configured sources'
        loaded versions) for some source: the identity must be screened again before they are paid. Any other
        version is stale, a later one too: the same rule as the re-screen's SQL (`SqlRescreenStore`). A process
        loads the newest stored versions before it gates (`PayoutGate.catch_up`), so replicas agree on what is
        current."""
        if self.verification is not VerificationStatus.VERIFIED:
            return False
        stored = self.screening_versions or {}
        return any(stored.get(source) != version for source, version in current.items())


class ComplianceFacts(Protocol):
    """Read in the gate's transaction (the payouts one): the active policy and the players' verification."""

    async def active_policy(self) -> RiskPolicy: ...

    async def players(self, player_ids: list[str]) -> Mapping[str, PlayerCompliance]:
        """Every asked player; one never verified reads `not_started`."""
        ...


@dataclass(frozen=True, slots=True)
class RescreenClaim:
    """A verified player a re-screen run claimed (leased): what the vendor call and the conditional write need."""

    player_id: str
    reference: str  # ours (`kyc-...`): what logs name
    vendor_ref: str  # the vendor's applicant id
    sequence: int  # the record's sequence when claimed: the write applies only if it is still this one
    outcome: ScreeningOutcome  # the stored screening's outcome before (a change is logged and counted)
    entries: frozenset[tuple[str, str]] = frozenset()  # its matched (source, entry_uid) before


class RescreenStore(ComplianceStore, Protocol):
    """The re-screen's reads and writes in one transaction (`RescreenVerifiedPlayers`). `current` is the configured
    sources' loaded versions: a verified player whose stored screening names another version for one of them is
    stale."""

    async def newest_versions(self) -> Mapping[str, str]:
        """The newest stored version of each source (what every replica loads)."""
        ...

    async def count_stale(self, current: Mapping[str, str]) -> int: ...

    async def claim_stale(
        self, current: Mapping[str, str], *, limit: int, lease_until: datetime, now: datetime
    ) -> list[RescreenClaim]:
        """Up to `limit` stale verified players not leased (or whose lease lapsed), skipping rows another
        transaction holds, leased until `lease_until`: players with a payout held `screening_pending` first."""
        ...

    async def record_rescreen(self, claim: RescreenClaim, screening: Screening, *, at: datetime, detail: str) -> bool:
        """The new screening, a new sequence, a history row (`detail`), the lease cleared; only if the record is
        still verified at the claimed sequence (False: nothing written)."""
        ...

    async def record_refusal(self, claim: RescreenClaim, *, at: datetime, detail: str, retry_at: datetime) -> bool:
        """The vendor refused the identity: the screening is kept (still stale), a history row says why, and the
        lease runs until `retry_at`; only if the record is still verified at the claimed sequence."""
        ...


class ComplianceQueries(Protocol):
    """The compliance API's reads, each in its own short transaction: rows as the API shows them."""

    async def policy(self, *, limit: int = 100) -> dict[str, Any]:
        """The active version and the latest proposals (newest first)."""
        ...

    async def proposal(self, proposal_id: int) -> dict[str, Any] | None: ...

    async def player(
        self, player_id: str, *, history_limit: int = 200, decisions_limit: int = 100
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ComplianceStores:
    """Compliance's stores on the deployable's one transaction (`adapters.compliance_books.bind_compliance`): the
    payout gate reads `facts` in the payout's own transaction (docs/adr/0012)."""

    records: ComplianceStore
    rescreen: RescreenStore
    facts: ComplianceFacts


class ComplianceBooks(Protocol):
    """Any unit of work's books that carry compliance's stores (the deployable's `Books`)."""

    @property
    def compliance(self) -> ComplianceStores: ...


B_contra = TypeVar("B_contra", bound=ComplianceBooks, contravariant=True)


class VerificationChanged(Protocol[B_contra]):
    """Called in the transaction that records players' new verification status, with its books (the payout gate's
    `ResumeVerifiedPayouts.on_verification_changed`: a player's `kyc_required` holds move on with it, or not at
    all)."""

    async def __call__(self, books: B_contra, player_ids: Sequence[str], /) -> int: ...
