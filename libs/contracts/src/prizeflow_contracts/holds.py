"""Hold kinds as tables: why a payout or a claim waits, who moves it on, and the words people read.

Every hold kind is one row. The services decide with these rows (payouts' gate, approvals and resume sweep; rewards'
claim review), the console and the ops CLI show their labels, and the databases keep the codes in a reference table
that a test holds equal to the rows here — so adding a hold kind is one row here and one reference-table row in a
migration, never an if-chain or a label typed again.

A payout hold is a payout in `pending_approval` with a `hold_code` (payouts' compliance gate: ADR 0012); a claim hold
is a claim in `held` with a rewards `HoldCode` (abuse and risk controls). Nothing here is shown to a player but
`next_step`, which names a next step and never a threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.events.rewards import HoldCode as ClaimHoldCode
from prizeflow_contracts.policy import PLAYER_MESSAGE, Finding


class PayoutHoldCode(StrEnum):
    """Why the payouts gate holds a payout (`payouts.hold_code`)."""

    KYC_REQUIRED = "kyc_required"
    SCREENING_HIT = "screening_hit"
    SCREENING_PENDING = "screening_pending"  # waits for the player's re-screen against newer lists (no person)
    POLICY = "policy"


class ReleasedBy(StrEnum):
    """What moves a held payout on."""

    VERIFICATION = "verification"  # the player's identity verification (verified: gated again; failed: rejected)
    RESCREEN = "rescreen"  # the player's sanctions re-screen against the newest lists
    APPROVERS = "approvers"  # people, through the approval of the payout


@dataclass(frozen=True, slots=True)
class PayoutHoldKind:
    code: PayoutHoldCode
    released_by: ReleasedBy
    # The approvals the release takes (APPROVERS): the stricter of this and the payout's own approval policy.
    approval: ApprovalPolicy | None
    # An approval of a hold that people may not release is refused with this stable code (409); None: people may.
    refused_with: str | None
    refusal_detail: str | None
    swept: bool  # the resume sweep looks at it again on its own (a missed verification or re-screen hook)
    decides_policy: bool  # a release answers the risk policy's verdict under the version the approvers saw
    records_clearances: bool  # a release clears the matched list entries for the payout's player and destination
    in_backlog: bool  # it waits for people: counted by the holds-backlog alert and the approvals queue
    label: str  # what staff read (console, ops CLI, dashboards)


PAYOUT_HOLD_KINDS: Final[Mapping[PayoutHoldCode, PayoutHoldKind]] = {
    k.code: k
    for k in (
        PayoutHoldKind(
            code=PayoutHoldCode.KYC_REQUIRED,
            released_by=ReleasedBy.VERIFICATION,
            approval=None,
            refused_with="awaiting_verification",
            refusal_detail="this payout waits for the player's identity verification and is released once verified; "
            "it may be rejected",
            swept=True,
            decides_policy=False,
            records_clearances=False,
            in_backlog=False,
            label="Waits for identity verification: it moves on by itself once the player is verified",
        ),
        PayoutHoldKind(
            code=PayoutHoldCode.SCREENING_HIT,
            released_by=ReleasedBy.APPROVERS,
            approval=ApprovalPolicy.DUAL,
            refused_with=None,
            refusal_detail=None,
            swept=False,
            decides_policy=False,
            records_clearances=True,
            in_backlog=True,
            label="Screening hit — two approvers",
        ),
        PayoutHoldKind(
            code=PayoutHoldCode.SCREENING_PENDING,
            released_by=ReleasedBy.RESCREEN,
            approval=None,
            refused_with="awaiting_screening",
            refusal_detail="this payout waits for the player's sanctions re-screening and moves on by itself once it "
            "is done; it may be rejected",
            swept=True,
            decides_policy=False,
            records_clearances=False,
            in_backlog=False,
            label="Waits for the player's sanctions re-screening: it moves on by itself once screened again",
        ),
        PayoutHoldKind(
            code=PayoutHoldCode.POLICY,
            released_by=ReleasedBy.APPROVERS,
            approval=ApprovalPolicy.SINGLE,
            refused_with=None,
            refusal_detail=None,
            swept=False,
            decides_policy=True,
            records_clearances=False,
            in_backlog=True,
            label="Risk policy hold — a person decides",
        ),
    )
}


def payout_hold(code: str | None) -> PayoutHoldKind | None:
    """The kind of a stored `hold_code` (None: not held by the gate, or a code this build does not know)."""
    if code is None:
        return None
    try:
        return PAYOUT_HOLD_KINDS[PayoutHoldCode(code)]
    except ValueError:
        return None


def payout_hold_label(code: str) -> str:
    """What staff read for a payout's stored `hold_code`: its kind's label; a code this build does not know is still
    named, never hidden."""
    kind = payout_hold(code)
    return kind.label if kind is not None else f"Held by the compliance gate ({code})"


@dataclass(frozen=True, slots=True)
class ClaimHoldKind:
    code: ClaimHoldCode
    label: str  # why it was held, in words a reviewer acts on
    next_step: str | None  # what the player is told (None: the generic "being reviewed")
    resumed_by_verification: bool  # released by the player's verification, not by a reviewer


CLAIM_HOLD_KINDS: Final[Mapping[ClaimHoldCode, ClaimHoldKind]] = {
    k.code: k
    for k in (
        ClaimHoldKind(
            ClaimHoldCode.RISK_SCORE,
            "Risk flag: the game flagged this player as risky.",
            None,
            resumed_by_verification=False,
        ),
        ClaimHoldKind(
            ClaimHoldCode.REJECTION_RATE,
            "Rejection-rate trip-wire: too many of this player's recent claims failed.",
            None,
            resumed_by_verification=False,
        ),
        ClaimHoldKind(
            ClaimHoldCode.VELOCITY,
            "Velocity: the player made many claims in a short time.",
            PLAYER_MESSAGE[Finding.VELOCITY],
            resumed_by_verification=False,
        ),
        ClaimHoldKind(
            ClaimHoldCode.NEW_DESTINATION,
            "New destination: the player has not used this payout destination before (cooldown).",
            PLAYER_MESSAGE[Finding.NEW_DESTINATION],
            resumed_by_verification=False,
        ),
        ClaimHoldKind(
            ClaimHoldCode.AMOUNT_OVER_THRESHOLD,
            "Large amount: the claim is above the review threshold.",
            None,
            resumed_by_verification=False,
        ),
        ClaimHoldKind(
            ClaimHoldCode.NEW_ACCOUNT, "New account: the player's account is new.", None, resumed_by_verification=False
        ),
        ClaimHoldKind(
            ClaimHoldCode.SHARED_DESTINATION,
            "Shared destination: another player uses the same payout destination.",
            None,
            resumed_by_verification=False,
        ),
        ClaimHoldKind(
            ClaimHoldCode.KYC_REQUIRED,
            "Identity check: the player must complete KYC first.",
            PLAYER_MESSAGE[Finding.KYC_REQUIRED],
            resumed_by_verification=True,
        ),
        ClaimHoldKind(
            ClaimHoldCode.MANUAL_REVIEW,
            "Manual review: a person asked to see this claim.",
            None,
            resumed_by_verification=False,
        ),
    )
}


def claim_hold(code: str | None) -> ClaimHoldKind | None:
    """The kind of a stored claim `hold_code` (None: none, or a code this build does not know)."""
    if code is None:
        return None
    try:
        return CLAIM_HOLD_KINDS[ClaimHoldCode(code)]
    except ValueError:
        return None


def claim_hold_label(code: str | None) -> str:
    """What a reviewer reads for a held claim's `hold_code`: its kind's label; a code this build does not know is
    still named, never hidden."""
    if not code:
        return "Held for review (no reason recorded)."
    kind = claim_hold(code)
    return kind.label if kind is not None else f"Held for review ({code})."


__all__ = [
    "CLAIM_HOLD_KINDS",
    "PAYOUT_HOLD_KINDS",
    "ClaimHoldCode",
    "ClaimHoldKind",
    "PayoutHoldCode",
    "PayoutHoldKind",
    "ReleasedBy",
    "claim_hold",
    "claim_hold_label",
    "payout_hold",
    "payout_hold_label",
]
