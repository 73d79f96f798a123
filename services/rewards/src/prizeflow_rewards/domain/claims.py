"""Claim rules: what a claim must satisfy to be refused, held for a person, or approved (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from prizeflow_contracts.events.rewards import HoldCode
from prizeflow_contracts.providers import PayoutDestination
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferFlags, TransferKind


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
TRANSITIONS: Final[Mapping[ClaimStatus, frozenset[ClaimStatus]]] = {
    ClaimStatus.HELD: frozenset({ClaimStatus.APPROVED, ClaimStatus.REJECTED, ClaimStatus.VOIDED}),
    ClaimStatus.APPROVED: frozenset({ClaimStatus.PAID, ClaimStatus.VOIDED}),
    ClaimStatus.PAID: frozenset({ClaimStatus.RETURNED}),
    ClaimStatus.REJECTED: frozenset(),
    ClaimStatus.VOIDED: frozenset(),
    ClaimStatus.RETURNED: frozenset(),
}


def can_move(current: ClaimStatus, target: ClaimStatus) -> bool:
    return target in TRANSITIONS[current]


class RefusalCode(StrEnum):
    """Why a claim request is refused outright (problem details `code`); nothing is written."""

    UNKNOWN_ASSET = "unknown_asset"
    ASSET_NOT_REDEEMABLE = "asset_not_redeemable"
    BELOW_MINIMUM = "below_minimum"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    DAILY_LIMIT_EXCEEDED = "daily_limit_exceeded"
    # No payout provider pays this asset to this kind of destination (as payouts last published its routes).
    NO_PAYOUT_ROUTE = "no_payout_route"


@dataclass(frozen=True, slots=True)
class Refuse:
    code: RefusalCode
    detail: str


@dataclass(frozen=True, slots=True)
class Hold:
    code: HoldCode
    detail: str


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


def assess(facts: ClaimFacts, limits: ClaimLimits) -> Decision:  # noqa: PLR0911 - one return per rule
    """Refusals first (bad input, nothing written), then holds (a person decides), else approval."""
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
    if f.claimed_today + f.amount > lim.daily_limit:
        return Refuse(
            RefusalCode.DAILY_LIMIT_EXCEEDED,
            f"daily limit {lim.daily_limit} {f.asset}: {f.claimed_today} already claimed in the last 24h",
        )
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
    return Approve()


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

    def view(self) -> dict[str, Any]:
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
            "payout_request_id": self.payout_request_id,
            "payout_id": self.payout_id,
            "created_at": self.created_at.isoformat(),
        }

    @property
    def pending(self) -> Transfer:
        return reservation(self.id, self.player_id, self.asset, self.amount, correlation_id=self.correlation_id)


def reservation(
    claim_id: str, player_id: str, asset: str, amount: int, *, correlation_id: str | None = None
) -> Transfer:
    """What an approved or held claim reserves: a pending transfer wallet → clearing, posted or voided later."""
    return Transfer.of(
        accounts.wallet(player_id, asset),
        accounts.clearing(asset),
        amount,
        TransferKind.CLAIM_RESERVE,
        claim_id,
        flags=TransferFlags.PENDING,
        correlation_id=correlation_id,
    )


def destination_key(destination: PayoutDestination) -> str:
    raw = f"{destination.type.value}|{destination.address}|{destination.memo or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()
