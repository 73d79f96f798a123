"""Claim rules: what a claim must satisfy to be refused, held for a person, or approved (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from prizeflow_contracts.events.rewards import ClaimRejectionCode, HoldCode
from prizeflow_contracts.holds import CLAIM_HOLD_KINDS, claim_hold
from prizeflow_contracts.policy import PLAYER_MESSAGE, Action, Finding, Verdict
from prizeflow_contracts.transitions import Transitions
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.fx import Conversion
from prizeflow_rewards.domain.ledger import COUNTER_MAX, AccountRef, Transfer, TransferFlags, TransferKind


class ClaimStatus(StrEnum):
    HELD = "held"
    APPROVED = "approved"
    PAID = "paid"
    REJECTED = "rejected"
    VOIDED = "voided"
    RETURNED = "returned"


# held → approved (ops release) | rejected (ops reject) | voided (payouts refused a request naming it);
# approved → paid | voided (payout failed/cancelled/rejected, or its request refused); paid → returned (the
# provider reversed it).
TRANSITIONS: Final = Transitions(
    "claim",
    {
        ClaimStatus.HELD: frozenset({ClaimStatus.APPROVED, ClaimStatus.REJECTED, ClaimStatus.VOIDED}),
        ClaimStatus.APPROVED: frozenset({ClaimStatus.PAID, ClaimStatus.VOIDED}),
        ClaimStatus.PAID: frozenset({ClaimStatus.RETURNED}),
        ClaimStatus.REJECTED: frozenset(),
        ClaimStatus.VOIDED: frozenset(),
        ClaimStatus.RETURNED: frozenset(),
    },
    initial=frozenset({ClaimStatus.HELD, ClaimStatus.APPROVED}),
)


class RefusalCode(StrEnum):
    """Why a claim request is refused outright (problem details `code`); nothing is written."""

    UNKNOWN_ASSET = "unknown_asset"
    ASSET_NOT_REDEEMABLE = "asset_not_redeemable"
    BELOW_MINIMUM = "below_minimum"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    # Its reservation would take a ledger counter past int64 (the clearing account every claim of the asset
    # credits): the database would refuse it, so the rules do first.
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
    DAILY_LIMIT_EXCEEDED = "daily_limit_exceeded"
    # No payout provider pays this asset to this kind of destination (as payouts last published its routes).
    NO_PAYOUT_ROUTE = "no_payout_route"
    # A memo on a destination whose rails read none (`prizeflow_contracts.providers.MEMO_TYPES`): it would not reach
    # the recipient, and the destination's key ignores it.
    MEMO_NOT_ACCEPTED = "memo_not_accepted"
    # The operators' risk policy (`prizeflow_contracts.policy`) refuses it.
    KYC_FAILED = "kyc_failed"
    PLAYER_LIMIT_EXCEEDED = "player_limit_exceeded"
    DESTINATION_LIMIT_EXCEEDED = "destination_limit_exceeded"
    COUNTRY_NOT_ALLOWED = "country_not_allowed"
    RAIL_NOT_ALLOWED = "rail_not_allowed"


# A policy finding that refuses a claim → the refusal's code; one that holds it → the hold's code.
REFUSAL_OF: Final[Mapping[Finding, RefusalCode]] = {
    Finding.KYC_FAILED: RefusalCode.KYC_FAILED,
    Finding.PLAYER_LIMIT: RefusalCode.PLAYER_LIMIT_EXCEEDED,
    Finding.DESTINATION_LIMIT: RefusalCode.DESTINATION_LIMIT_EXCEEDED,
    Finding.COUNTRY_NOT_ALLOWED: RefusalCode.COUNTRY_NOT_ALLOWED,
    Finding.RAIL_NOT_ALLOWED: RefusalCode.RAIL_NOT_ALLOWED,
}
HOLD_OF: Final[Mapping[Finding, HoldCode]] = {
    Finding.KYC_REQUIRED: HoldCode.KYC_REQUIRED,
    Finding.VELOCITY: HoldCode.VELOCITY,
    Finding.NEW_DESTINATION: HoldCode.NEW_DESTINATION,
}

# What a player is told about a held claim: the next step its kind names (`CLAIM_HOLD_KINDS`), never the rule's
# numbers (those are `hold_detail`, for staff); a kind that names none is "being reviewed".
HOLD_NEXT_STEP: Final[Mapping[HoldCode, str]] = {
    code: kind.next_step for code, kind in CLAIM_HOLD_KINDS.items() if kind.next_step is not None
}
# The holds the player's identity verification releases (verified: assessed again; failed: rejected).
RESUMED_BY_VERIFICATION: Final = frozenset(
    code.value for code, kind in CLAIM_HOLD_KINDS.items() if kind.resumed_by_verification
)
REVIEWED: Final = "Your withdrawal is being reviewed. No action is needed."
REJECTION_NEXT_STEP: Final[Mapping[str, str]] = {
    ClaimRejectionCode.KYC_FAILED.value: PLAYER_MESSAGE[Finding.KYC_FAILED],
}
STATUS_NEXT_STEP: Final[Mapping[ClaimStatus, str]] = {
    ClaimStatus.APPROVED: "Your withdrawal is on its way. No action is needed.",
    ClaimStatus.PAID: "Your withdrawal was paid.",
    ClaimStatus.REJECTED: "This withdrawal was declined and its amount is back in your balance. Contact support.",
    ClaimStatus.VOIDED: "This withdrawal could not be paid and its amount is back in your balance.",
    ClaimStatus.RETURNED: "This withdrawal was returned to your balance by the payment provider.",
}


def next_step(status: ClaimStatus, hold_code: str | None, rejection_code: str | None) -> str:
    """The player's words for a claim: what happens next, never a threshold, window, count or score."""
    if status is ClaimStatus.HELD:
        kind = claim_hold(hold_code)
        return kind.next_step if kind is not None and kind.next_step is not None else REVIEWED
    if status is ClaimStatus.REJECTED and rejection_code is not None and rejection_code in REJECTION_NEXT_STEP:
        return REJECTION_NEXT_STEP[rejection_code]
    return STATUS_NEXT_STEP[status]


@dataclass(frozen=True, slots=True)
class Refuse:
    code: RefusalCode
    detail: str  # what the player is told (problem details): never a limit, window or count
    staff_detail: str = ""  # the rule's numbers, for the service's log (a refusal writes nothing)


@dataclass(frozen=True, slots=True)
class Hold:
    code: HoldCode
    detail: str  # for staff (`hold_detail`); the player sees `next_step`


@dataclass(frozen=True, slots=True)
class Approve:
    pass


Decision = Refuse | Hold | Approve


@dataclass(frozen=True, slots=True)
class ClaimLimits:
    min_claim: int
    daily_limit: int
    review_threshold: int
    velocity_max_claims: int
    new_destination_cooldown_s: int
    rejection_rate_bps: int
    rejection_rate_min_claims: int


@dataclass(frozen=True, slots=True)
class ClaimFacts:
    """What the store knows about the player when the claim arrives (read under the wallet lock)."""

    asset: str
    redeemable: bool
    amount: int
    available: int
    claimed_today: int
    claims_in_velocity_window: int
    destination_age_s: float | None  # None: never used by this player
    risk_flagged: bool
    recent_decided: int
    recent_failed: int
    routable: bool = True  # some provider pays this amount of this asset to this destination type
    review_all: bool = False  # a restore's review window is open: a person decides every claim
    # The most its reservation may move before a ledger counter it raises passes int64 (`ledger.pending_room`).
    room: int = COUNTER_MAX


def assess(facts: ClaimFacts, limits: ClaimLimits, verdict: Verdict | None = None) -> Decision:
    """Refusals first (bad input, nothing written), then the risk policy's refusals, then the holds (a person
    decides), then the policy's holds, else approval. The settings' limits stay a floor under the policy's:
    both apply."""
    if (refused := _refusal(facts, limits)) is not None:
        return refused
    if verdict is not None and verdict.action is Action.REFUSE:
        return policy_refusal(verdict)
    if (held := _hold(facts, limits)) is not None:
        return held
    if verdict is not None and verdict.action is Action.HOLD:
        return policy_hold(verdict)
    return Approve()


def policy_refusal(verdict: Verdict) -> Refuse:
    hit = verdict.first
    assert hit is not None
    assert hit.action is Action.REFUSE
    return Refuse(REFUSAL_OF[hit.finding], PLAYER_MESSAGE[hit.finding], staff_detail=staff_reasons(verdict))


def policy_hold(verdict: Verdict) -> Hold:
    """A policy hold: waiting for the player's verification first if the policy asks for it (a verified player's
    claim is assessed again and may still wait for a person), else the first hold's code."""
    holds = [h for h in verdict.hits if h.action is Action.HOLD]
    assert holds
    kyc = [h for h in holds if h.finding is Finding.KYC_REQUIRED]
    return Hold(HOLD_OF[(kyc or holds)[0].finding], staff_reasons(verdict))


def reassess(verdict: Verdict, *, risk_flagged: bool) -> Hold | Approve:
    """A claim that waited for the player's verification, once verified: the policy again with today's facts. What
    it would refuse now is no longer the player's to fix and money is reserved already: a person decides."""
    if verdict.action is Action.REFUSE:
        return Hold(HoldCode.MANUAL_REVIEW, f"verified, but refused now: {staff_reasons(verdict)}"[:1000])
    if risk_flagged:
        return Hold(HoldCode.RISK_SCORE, "the game flagged this player")
    if verdict.action is Action.HOLD:
        return policy_hold(verdict)
    return Approve()


def staff_reasons(verdict: Verdict) -> str:
    """The verdict's reasons, for staff: each finding with its rule's numbers."""
    said = "; ".join(f"{h.finding.value} (rule {h.rule}): {h.detail}" for h in verdict.hits)
    return f"policy v{verdict.policy_version}: {said}"[:1000]


def _refusal(facts: ClaimFacts, limits: ClaimLimits) -> Refuse | None:  # noqa: PLR0911 - one return per rule
    f, lim = facts, limits
    if not f.redeemable:
        return Refuse(RefusalCode.ASSET_NOT_REDEEMABLE, f"{f.asset} is not redeemable: it can never be claimed")
    if not f.routable:
        return Refuse(
            RefusalCode.NO_PAYOUT_ROUTE, f"no payout provider pays {f.amount} {f.asset} to this kind of destination"
        )
    if f.amount < lim.min_claim:
        return Refuse(RefusalCode.BELOW_MINIMUM, f"the minimum claim is {lim.min_claim} {f.asset} minor units")
    if f.amount > f.available:
        return Refuse(RefusalCode.INSUFFICIENT_BALANCE, f"available {f.available}, claimed {f.amount} {f.asset}")
    if f.amount > f.room:
        return Refuse(
            RefusalCode.AMOUNT_OUT_OF_RANGE,
            "this claim would take the platform's ledger past its int64 range; claim a smaller amount",
            staff_detail=f"a reservation of {f.amount} {f.asset} leaves room for {f.room}",
        )
    if f.claimed_today + f.amount > lim.daily_limit:
        return Refuse(
            RefusalCode.DAILY_LIMIT_EXCEEDED,
            PLAYER_MESSAGE[Finding.PLAYER_LIMIT],
            staff_detail=f"daily limit {lim.daily_limit} {f.asset}: {f.claimed_today} already claimed in the last 24h",
        )
    return None


def _hold(facts: ClaimFacts, limits: ClaimLimits) -> Hold | None:  # noqa: PLR0911 - one return per rule
    f, lim = facts, limits
    if f.risk_flagged:
        return Hold(HoldCode.RISK_SCORE, "the game flagged this player")
    if f.review_all:
        return Hold(HoldCode.MANUAL_REVIEW, "every claim waits for a person until the books are reconciled")
    if (
        f.recent_decided >= lim.rejection_rate_min_claims
        and f.recent_failed * 10_000 >= lim.rejection_rate_bps * f.recent_decided
    ):
        return Hold(HoldCode.REJECTION_RATE, f"{f.recent_failed} of the last {f.recent_decided} claims failed")
    if f.claims_in_velocity_window >= lim.velocity_max_claims:
        return Hold(HoldCode.VELOCITY, f"{f.claims_in_velocity_window} claims in the velocity window")
    cooldown = lim.new_destination_cooldown_s
    if cooldown > 0 and (f.destination_age_s is None or f.destination_age_s < cooldown):
        return Hold(HoldCode.NEW_DESTINATION, "the payout destination is new (cooldown)")
    if f.amount > lim.review_threshold:
        return Hold(HoldCode.AMOUNT_OVER_THRESHOLD, f"above the review threshold {lim.review_threshold}")
    return None


@dataclass(frozen=True, slots=True)
class Claim:
    id: str
    player_id: str
    asset: str
    amount: int
    destination: dict[str, Any]
    status: ClaimStatus
    hold_code: str | None
    hold_detail: str | None
    rejection_code: str | None
    payout_request_id: str
    correlation_id: str
    created_at: datetime
    destination_key: str = ""
    payout_id: str | None = None
    policy_version: int | None = None  # the risk policy version it was decided with (None: before there was one)
    conversion: Conversion | None = None  # the quote it locked: its payout pays another asset (ADR 0015)
    clearing_shard: int = 0  # which of the asset's clearing accounts its reservation credits (`accounts.clearing`)

    @property
    def payout_asset(self) -> str:
        """What its payout pays: the converted asset, or the claim's own."""
        return self.conversion.target_asset if self.conversion is not None else self.asset

    @property
    def payout_amount(self) -> int:
        return self.conversion.target_amount if self.conversion is not None else self.amount

    def conversion_view(self) -> dict[str, Any] | None:
        c = self.conversion
        if c is None:
            return None
        return {
            "quote_id": c.quote_id,
            "target_asset": c.target_asset,
            "target_amount": c.target_amount,
            "spread_amount": c.spread,
            "rate": format(c.rate, "f"),
        }

    @property
    def next_step(self) -> str:
        return next_step(self.status, self.hold_code, self.rejection_code)

    def player_view(self) -> dict[str, Any]:
        """What the player it pays sees: the next step instead of the hold's detail and the policy's version."""
        return {
            "claim_id": self.id,
            "player_id": self.player_id,
            "asset": self.asset,
            "amount": self.amount,
            "destination": self.destination,
            "status": self.status.value,
            "hold_code": self.hold_code,
            "rejection_code": self.rejection_code,
            "next_step": self.next_step,
            "payout_request_id": self.payout_request_id,
            "payout_id": self.payout_id,
            "created_at": self.created_at.isoformat(),
            "conversion": self.conversion_view(),
        }

    def view(self) -> dict[str, Any]:
        """What staff see: the hold's detail (the rules' numbers) and the policy version it was decided with."""
        return {
            "claim_id": self.id,
            "player_id": self.player_id,
            "asset": self.asset,
            "amount": self.amount,
            "destination": self.destination,
            "status": self.status.value,
            "hold_code": self.hold_code,
            "hold_detail": self.hold_detail,
            "rejection_code": self.rejection_code,
            "next_step": self.next_step,
            "policy_version": self.policy_version,
            "payout_request_id": self.payout_request_id,
            "payout_id": self.payout_id,
            "created_at": self.created_at.isoformat(),
            "conversion": self.conversion_view(),
        }

    @property
    def clearing(self) -> AccountRef:
        """The clearing account its reservation credits, which its payout's outcome posts, voids or settles."""
        return accounts.clearing(self.asset, self.clearing_shard)

    @property
    def pending(self) -> Transfer:
        return reservation(
            self.id,
            self.player_id,
            self.asset,
            self.amount,
            correlation_id=self.correlation_id,
            shard=self.clearing_shard,
        )


def reservation(
    claim_id: str,
    player_id: str,
    asset: str,
    amount: int,
    *,
    correlation_id: str | None = None,
    shard: int = 0,
) -> Transfer:
    """What an approved or held claim reserves: a pending transfer wallet → clearing (its shard), posted or voided
    later."""
    return Transfer.of(
        accounts.wallet(player_id, asset),
        accounts.clearing(asset, shard),
        amount,
        TransferKind.CLAIM_RESERVE,
        claim_id,
        flags=TransferFlags.PENDING,
        correlation_id=correlation_id,
    )
