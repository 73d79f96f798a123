"""The claims' stores: claims and their facts, who may be paid (compliance), players' risk flags, payouts' routes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from prizeflow_contracts.events.payouts import PayoutRoutesPublished, PlayerVerificationChanged, RiskPolicyActivated
from prizeflow_contracts.policy import RiskPolicy, VerificationStatus
from prizeflow_rewards.domain.claims import Claim, ClaimStatus


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
    # What its payout pays, if it is converted (the routes are asked for that): else the claim's asset and amount.
    payout_asset: str | None = None
    payout_amount: int | None = None


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

    async def get(self, claim_id: str, *, lock: bool = False) -> Claim | None: ...

    async def held(self, *, limit: int) -> list[Claim]:
        """Held claims, oldest first."""
        ...

    async def of_player(self, player_id: str, *, limit: int) -> list[Claim]:
        """A player's claims, newest first."""
        ...

    async def find(self, claim_ids: Iterable[str]) -> dict[str, Claim]:
        """The claims of these ids that exist, as committed (one read; no lock)."""
        ...

    async def lock_many(self, claim_ids: Iterable[str]) -> dict[str, Claim]:
        """Lock these claims in id order in one statement; those that exist, as they are."""
        ...

    async def intake_facts(
        self,
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

    async def waiting_for_verification(self, player_ids: Sequence[str]) -> list[Claim]:
        """These players' held claims of a hold kind the player's verification resumes
        (`ClaimHoldKind.resumed_by_verification`), in id order; unlocked (the caller locks them with the poll's
        other claims)."""
        ...

    async def rehold(self, claim_id: str, *, code: str, detail: str, policy_version: int) -> None:
        """A held claim assessed again still waits, now for this reason."""
        ...

    async def add_many(self, claims: Sequence[Claim], destinations: Sequence[FirstUse]) -> None:
        """An intake batch's new claims (with their reservations, `claim.pending`; decided now unless held) and
        the destinations players used for the first time (a later use keeps the first date): one write each."""
        ...

    async def decide(self, claim_id: str, decision: ClaimDecision) -> None:
        """A reviewer's decision on a held claim."""
        ...

    async def record_outcomes(
        self, bound: Sequence[tuple[str, str]], settled: Sequence[tuple[str, ClaimStatus]]
    ) -> None:
        """A poll's payout outcomes, one write each: the payout each claim is bound to (claim id, payout id), and
        the status each claim's payout settled it to (claim id, status; settled now)."""
        ...

    async def stats(self) -> tuple[int, int, int]:
        """(held now, decided in the last day, of which failed): the gauges' figures."""
        ...


class Compliance(Protocol):
    """What payouts publishes about who may be paid: the active risk policy and each player's verification status
    (projections of `RiskPolicyActivated` and `PlayerVerificationChanged`)."""

    async def intake(self, player_ids: Sequence[str]) -> tuple[RiskPolicy, dict[str, VerificationStatus]]:
        """For a claim batch: the active policy (`EMPTY_POLICY` before any) and the players' statuses (those never
        told: `not_started`), read after taking each player's verification lock shared (in one order): a
        verification change for them waits for the batch's commit, or the batch for the change's."""
        ...

    async def intake_unless_busy(
        self, player_ids: Sequence[str]
    ) -> tuple[RiskPolicy, dict[str, VerificationStatus], set[str]]:
        """`intake` without waiting: the players whose verification lock a verification change holds are not
        waited for; they come back as busy (no lock, no status)."""
        ...

    async def lock_players(self, player_ids: Sequence[str]) -> None:
        """Take these players' verification locks exclusively (in one order), before any claim or account: no claim
        of theirs is decided until the transaction ends."""
        ...

    async def activate(self, event: RiskPolicyActivated) -> bool:
        """Make the event's policy the active one if its version is higher than the active one's; True if it did."""
        ...

    async def record_verification(self, event: PlayerVerificationChanged) -> bool:
        """Keep the player's status if the event's sequence is higher than the one kept; True if it did."""
        ...


class Players(Protocol):
    """The game's risk flag on a player (the claim rules read it with a claim's other facts: `intake_facts`)."""

    async def set_risk_flag(self, player_id: str, *, flagged: bool, reason: str | None, by: str) -> None: ...


class PayoutRoutes(Protocol):
    """What payouts last announced it can pay (asset x destination type, and the amounts where a rail pays fixed
    ones)."""

    async def lock(self) -> None:
        """Take the routes' lock (a poll that announces routes takes it before any claim or account)."""
        ...

    async def publish(self, announcement: PayoutRoutesPublished) -> None:
        """Replace the routes with a newer announcement; an older (or the same) sequence changes nothing."""
        ...

    async def all(self) -> list[dict[str, Any]]: ...


__all__ = [
    "ClaimDecision",
    "ClaimHistory",
    "ClaimRepository",
    "Compliance",
    "FirstUse",
    "IntakeFacts",
    "IntakeQuery",
    "PayoutRoutes",
    "Players",
]
