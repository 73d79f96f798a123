"""A player's identity verification: one record per player, a transition table, and what a vendor's review does to it.

Only the status, the verified identity's country and the screening's outcome are kept (no personal data). `failed`
is final; `verified` moves only to `failed` (the vendor revoked it). PostgreSQL refuses any other move too (trigger
`kyc_verifications_move`, migration 0019: the same pairs, frozen; a unit test holds them equal).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

from prizeflow_contracts.policy import PLAYER_MESSAGE, Finding, VerificationStatus
from prizeflow_contracts.transitions import Transitions

V = VerificationStatus

VERIFICATION_MACHINE: Final = Transitions[VerificationStatus](
    "kyc_verification",
    {
        # A record a vendor's event created before the player opened the flow.
        V.NOT_STARTED: frozenset({V.PENDING, V.RETRY, V.VERIFIED, V.FAILED}),
        V.PENDING: frozenset({V.RETRY, V.VERIFIED, V.FAILED}),
        # The vendor asked the player to resubmit: submitted again (pending), or decided outright.
        V.RETRY: frozenset({V.PENDING, V.VERIFIED, V.FAILED}),
        # Only the vendor's revocation (a final rejection of an applicant it had approved) leaves `verified`.
        V.VERIFIED: frozenset({V.FAILED}),
        V.FAILED: frozenset(),
    },
)
TRANSITIONS: Final[Mapping[VerificationStatus, frozenset[VerificationStatus]]] = VERIFICATION_MACHINE.table

# Our reference of a player's verification: the same for a player on every replica, every time.
_REFERENCE_NAMESPACE: Final = uuid.UUID("1f0e7a52-5d0b-5c4e-9a55-6b7c3d3e0a19")


def verification_reference(player_id: str) -> str:
    return f"kyc-{uuid.uuid5(_REFERENCE_NAMESPACE, player_id)}"


class ScreeningOutcome(StrEnum):
    NOT_SCREENED = "not_screened"
    CLEAR = "clear"
    HIT = "hit"  # the verified identity matched a list entry: the payout gate holds the player's payouts


def can_move(src: VerificationStatus, dst: VerificationStatus) -> bool:
    return VERIFICATION_MACHINE.allows(src, dst)


@dataclass(frozen=True, slots=True)
class Screening:
    """What a screening of the verified identity left: the lists' versions and the LISTS' matched entries (their
    public uid and name, the source, the kind and score), never the player's own data."""

    outcome: ScreeningOutcome = ScreeningOutcome.NOT_SCREENED
    versions: Mapping[str, str] = field(default_factory=dict)
    matches: tuple[Mapping[str, object], ...] = ()
    cleared_by: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class VerificationRecord:
    player_id: str
    reference: str  # ours: `verification_reference(player_id)`
    vendor: str
    vendor_ref: str  # the vendor's applicant id
    status: VerificationStatus
    sequence: int  # bumped on every status change; a higher one wins downstream
    updated_at: datetime
    country: str | None = None
    screening: Screening = field(default_factory=Screening)

    def moved(
        self,
        to: VerificationStatus,
        *,
        at: datetime,
        country: str | None = None,
        screening: Screening | None = None,
    ) -> VerificationRecord:
        """The record after a legal move (a new sequence); refused otherwise."""
        VERIFICATION_MACHINE.check(self.status, to)
        return replace(
            self,
            status=to,
            sequence=self.sequence + 1,
            updated_at=at,
            country=country if country is not None else self.country,
            screening=screening if screening is not None else self.screening,
        )

    @property
    def screening_hit(self) -> bool:
        """A list matched and no person has cleared it."""
        return self.screening.outcome is ScreeningOutcome.HIT and not self.screening.cleared_by


class Reaction(StrEnum):
    """What a vendor's review does to a record (the values are `ComplianceMetrics.kyc_webhooks` outcomes)."""

    MOVE = "applied"
    SAME = "duplicate"  # the record already says so
    STALE = "stale"  # a move the table has no place for (an old review, a verified player reviewed again)


@dataclass(frozen=True, slots=True)
class Decision:
    reaction: Reaction
    to: VerificationStatus | None = None


def decide(current: VerificationStatus, reviewed: VerificationStatus) -> Decision:
    """The vendor's current word `reviewed` on a record in `current`."""
    if reviewed is current:
        return Decision(Reaction.SAME)
    if reviewed is V.NOT_STARTED:
        return Decision(Reaction.STALE)  # an applicant still being created says nothing new
    if can_move(current, reviewed):
        return Decision(Reaction.MOVE, reviewed)
    return Decision(Reaction.STALE)


_MESSAGES: Final[Mapping[VerificationStatus, str]] = {
    V.NOT_STARTED: PLAYER_MESSAGE[Finding.KYC_REQUIRED],
    V.PENDING: "Your identity verification is being reviewed. No action is needed.",
    V.RETRY: "Your identity verification needs another look: open the verification again to resubmit.",
    V.VERIFIED: "Your identity is verified.",
    V.FAILED: "We could not verify your identity. Contact support.",
}


def player_message(status: VerificationStatus) -> str:
    """What the player is told to do next: never a threshold, a score, a list or a match."""
    return _MESSAGES[status]


__all__ = [
    "TRANSITIONS",
    "VERIFICATION_MACHINE",
    "Decision",
    "Reaction",
    "Screening",
    "ScreeningOutcome",
    "VerificationRecord",
    "can_move",
    "decide",
    "player_message",
    "verification_reference",
]
