"""Events the rewards service publishes on `prizeflow.rewards.events.v1` (docs/architecture.md §4).

Each event reports money that has already moved in the ledger (or was refused), keyed by a business id
so a replay is recognisable.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field, model_validator

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.events.game import MAX_PLACEMENTS, PaidVia
from prizeflow_contracts.events.settlement import AllocationSource
from prizeflow_contracts.ids import Identifier, ProviderRef, Reason
from prizeflow_contracts.money import AssetCode, MinorUnits, PayableMoney, PositiveMinorUnits, PositiveMoney
from prizeflow_contracts.topics import REWARDS_EVENTS, Topic


class HoldCode(StrEnum):
    """Why a claim waits for a person (abuse and risk controls)."""

    AMOUNT_OVER_THRESHOLD = "amount_over_threshold"
    VELOCITY = "velocity"
    NEW_ACCOUNT = "new_account"
    SHARED_DESTINATION = "shared_destination"
    RISK_SCORE = "risk_score"
    KYC_REQUIRED = "kyc_required"
    MANUAL_REVIEW = "manual_review"
    NEW_DESTINATION = "new_destination"
    REJECTION_RATE = "rejection_rate"


class ClaimRejectionCode(StrEnum):
    """Why a claim was refused; stable, shown to players as a message key."""

    INSUFFICIENT_BALANCE = "insufficient_balance"
    ASSET_NOT_REDEEMABLE = "asset_not_redeemable"
    BELOW_MINIMUM = "below_minimum"
    ABOVE_MAXIMUM = "above_maximum"
    INVALID_DESTINATION = "invalid_destination"
    DESTINATION_DENIED = "destination_denied"
    ABUSE_SUSPECTED = "abuse_suspected"
    KYC_FAILED = "kyc_failed"
    ACCOUNT_FROZEN = "account_frozen"
    DUPLICATE_CLAIM = "duplicate_claim"
    REJECTED_BY_REVIEWER = "rejected_by_reviewer"


class RewardAllocated(EventPayload):
    """A prize was credited to a player's wallet (one per allocation of a `RoundSettled`)."""

    EVENT_NAME: ClassVar[str] = "RewardAllocated"
    TOPIC: ClassVar[Topic] = REWARDS_EVENTS

    allocation_id: Identifier = Field(description="Business key: derived from round_id and player_id")
    round_id: Identifier
    competition_id: Identifier
    player_id: Identifier
    rank: Annotated[int, Field(strict=True, ge=1, le=MAX_PLACEMENTS)]
    amount: PositiveMoney
    source: AllocationSource
    campaign_id: Identifier | None = None
    transfer_id: Identifier = Field(description="The ledger transfer that moved the money")
    allocated_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> RewardAllocated:
        if self.source is AllocationSource.POOL and self.campaign_id is None:
            raise ValueError("a reward from a pool needs the campaign_id of that pool")
        return self


class RefundIssued(EventPayload):
    """An entry fee of a voided round was refunded (to the wallet, or owed externally)."""

    EVENT_NAME: ClassVar[str] = "RefundIssued"
    TOPIC: ClassVar[Topic] = REWARDS_EVENTS

    refund_id: Identifier
    round_id: Identifier
    entry_id: Identifier
    player_id: Identifier
    amount: PositiveMoney
    paid_via: PaidVia
    transfer_id: Identifier | None = Field(default=None, description="Ledger transfer, for wallet refunds")
    issued_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> RefundIssued:
        if self.paid_via is PaidVia.WALLET and self.transfer_id is None:
            raise ValueError("a refund to the wallet needs the ledger transfer_id that credited it")
        return self


class _ClaimEvent(EventPayload):
    claim_id: Identifier
    player_id: Identifier


class ClaimHeld(_ClaimEvent):
    """A claim waits for review; its amount stays reserved (pending transfer) meanwhile."""

    EVENT_NAME: ClassVar[str] = "ClaimHeld"
    TOPIC: ClassVar[Topic] = REWARDS_EVENTS

    amount: PayableMoney
    code: HoldCode
    detail: Reason | None = None
    held_at: AwareDatetime
    review_by: AwareDatetime | None = None


class ClaimApproved(_ClaimEvent):
    """A claim may be paid out; a `PayoutRequested` follows. No `approved_by` means automatic approval."""

    EVENT_NAME: ClassVar[str] = "ClaimApproved"
    TOPIC: ClassVar[Topic] = REWARDS_EVENTS

    amount: PayableMoney
    approved_by: Identifier | None = None
    approved_at: AwareDatetime


class ClaimRejected(_ClaimEvent):
    """A claim was refused; any reservation for it was voided."""

    EVENT_NAME: ClassVar[str] = "ClaimRejected"
    TOPIC: ClassVar[Topic] = REWARDS_EVENTS

    amount: PositiveMoney = Field(description="As claimed; may be a non-redeemable asset (asset_not_redeemable)")
    code: ClaimRejectionCode
    detail: Reason | None = None
    rejected_by: Identifier | None = None
    rejected_at: AwareDatetime


class PoolLow(EventPayload):
    """A campaign pool dropped to or below its alert threshold: top it up before rounds fail to settle."""

    EVENT_NAME: ClassVar[str] = "PoolLow"
    TOPIC: ClassVar[Topic] = REWARDS_EVENTS

    campaign_id: Identifier
    asset: AssetCode
    remaining: MinorUnits
    threshold: PositiveMinorUnits

    @model_validator(mode="after")
    def _check(self) -> PoolLow:
        if self.remaining > self.threshold:
            raise ValueError(f"remaining {self.remaining} is above the threshold {self.threshold}: not low")
        return self


class PoolExhausted(EventPayload):
    """A pool could not fund a request; the round stays unsettled until the pool is topped up."""

    EVENT_NAME: ClassVar[str] = "PoolExhausted"
    TOPIC: ClassVar[Topic] = REWARDS_EVENTS

    campaign_id: Identifier
    asset: AssetCode
    remaining: MinorUnits
    requested: PositiveMinorUnits
    round_id: Identifier | None = None

    @model_validator(mode="after")
    def _check(self) -> PoolExhausted:
        if self.requested <= self.remaining:
            raise ValueError(f"requested {self.requested} fits in remaining {self.remaining}: not exhausted")
        return self


class TopUpCredited(EventPayload):
    """A player's wallet top-up was paid at the provider and credited, once (from the provider's webhook or
    a verify call, whichever came first)."""

    EVENT_NAME: ClassVar[str] = "TopUpCredited"
    TOPIC: ClassVar[Topic] = REWARDS_EVENTS

    top_up_id: Identifier
    player_id: Identifier
    amount: PayableMoney
    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    session_ref: ProviderRef
    transfer_id: Identifier = Field(description="The ledger transfer provider clearing -> wallet")
    credited_at: AwareDatetime


class TopUpAdjustmentKind(StrEnum):
    REFUND = "refund"
    DISPUTE = "dispute"
    DISPUTE_WON = "dispute_won"
    REFUND_FAILED = "refund_failed"


class TopUpAdjusted(EventPayload):
    """A refund or dispute of a credited top-up moved money: `debited` left the wallet, `receivable` is what the
    wallet could not cover and the player now owes (never a negative balance); `dispute_won` and `refund_failed`
    give back what their dispute or refund took: first what the player owed (`receivable`), then the wallet."""

    EVENT_NAME: ClassVar[str] = "TopUpAdjusted"
    TOPIC: ClassVar[Topic] = REWARDS_EVENTS

    top_up_id: Identifier
    player_id: Identifier
    kind: TopUpAdjustmentKind
    adjustment_ref: ProviderRef
    amount: PositiveMoney
    debited: MinorUnits
    receivable: MinorUnits
    credited: MinorUnits = 0
    adjusted_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> TopUpAdjusted:
        if self.debited + self.receivable + self.credited != self.amount.amount:
            raise ValueError("debited + receivable + credited must equal the adjustment amount")
        return self


__all__ = [
    "ClaimApproved",
    "ClaimHeld",
    "ClaimRejected",
    "ClaimRejectionCode",
    "HoldCode",
    "PoolExhausted",
    "PoolLow",
    "RefundIssued",
    "RewardAllocated",
    "TopUpAdjusted",
    "TopUpAdjustmentKind",
    "TopUpCredited",
]
