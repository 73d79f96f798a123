"""Payout requests (`prizeflow.payouts.requests.v1`, from rewards) and payout lifecycle events
(`prizeflow.payouts.events.v1`, from payouts), docs/architecture.md §5.

Every lifecycle event carries what rewards needs to settle its reservation without a lookup: the claim,
the player, the amount and the idempotency key. Rewards posts the pending transfer on `PayoutPaid` and
voids it on `PayoutCancelled`, `PayoutRejected` and on a `PayoutFailed` with `final=True`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.errors import PayoutErrorCode, is_retryable
from prizeflow_contracts.ids import IdempotencyKey, Identifier, ProviderRef, Reason, TxHash
from prizeflow_contracts.money import INT64_MAX, AssetCode, Money, PayableMoney, PositiveMinorUnits
from prizeflow_contracts.policy import RiskPolicy, VerificationStatus, check_two_people
from prizeflow_contracts.providers import DestinationType, PayoutDestination, ProviderType
from prizeflow_contracts.topics import PAYOUT_EVENTS, PAYOUT_REQUESTS, Topic

Attempt = Annotated[int, Field(strict=True, ge=1, le=1000, description="1-based attempt number")]


class ApprovalPolicy(StrEnum):
    """Approvals a payout needed: auto below a threshold, one approver above it, two above a higher one."""

    AUTO = "auto"
    SINGLE = "single"
    DUAL = "dual"


REQUIRED_APPROVERS = {ApprovalPolicy.AUTO: 0, ApprovalPolicy.SINGLE: 1, ApprovalPolicy.DUAL: 2}


class PayoutConversion(BaseModel):
    """A claim converted at a locked quote (docs/adr/0015-currency-conversion.md): the player's wallet gave `source`
    (of which `spread` went to revenue) and the payout pays the request's `amount`, in another asset, at `rate`
    (target units per source unit, the provider's mid rate as an exact decimal string)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quote_id: Identifier
    source: PayableMoney
    spread: Money
    rate: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,12})?$", description="Exact decimal")]

    @model_validator(mode="after")
    def _spread_in_source(self) -> PayoutConversion:
        if self.spread.asset != self.source.asset or self.spread.amount >= self.source.amount:
            raise ValueError("the spread is part of the source amount, in its asset")
        return self


class PayoutRequested(EventPayload):
    """Rewards reserved money for an approved claim and asks payouts to pay `amount`, exactly once per key. A
    converted claim carries `conversion`: `amount` is then the converted amount, in the destination's currency (what
    the rail pays), and `conversion.source` what the wallet gave. Without it (every claim before conversions, and
    every unconverted one) `amount` is what the wallet gave, as before."""

    EVENT_NAME: ClassVar[str] = "PayoutRequested"
    TOPIC: ClassVar[Topic] = PAYOUT_REQUESTS

    payout_request_id: Identifier
    claim_id: Identifier
    player_id: Identifier
    amount: PayableMoney
    destination: PayoutDestination
    idempotency_key: IdempotencyKey
    requested_by: Identifier = Field(description="The player, or the admin acting for them")
    provider: ProviderType | None = Field(default=None, description="Preferred rail; None lets payouts choose")
    requested_at: AwareDatetime
    conversion: PayoutConversion | None = Field(
        default=None,
        description="The locked quote a converted claim was paid at; `amount` is then the converted amount",
    )

    @model_validator(mode="after")
    def _converted_elsewhere(self) -> PayoutRequested:
        if self.conversion is not None and self.conversion.source.asset == self.amount.asset:
            raise ValueError("a conversion pays another asset than its source")
        return self


class LedgerPostingKind(StrEnum):
    """What a posting on a rail's external account (`external(provider, asset)`) was."""

    PAYOUT = "payout"  # payout clearing → external(provider): a paid payout (PayoutPaid)
    RETURN = "return"  # external(provider) → wallet: a returned payout (PayoutReturned)
    # treasury → external(provider): a reconciliation write-off or fee (ReconciliationAdjusted)
    ADJUSTMENT = "adjustment"


class LedgerPosted(EventPayload):
    """Rewards booked money on a rail's external account, in the transaction of the transfer: what the ledger says
    left (or came back) through the provider, for reconciliation to compare with the payouts and the provider's
    books (docs/adr/0011-reconciliation.md). `amount` is positive; `kind` gives its direction."""

    EVENT_NAME: ClassVar[str] = "LedgerPosted"
    TOPIC: ClassVar[Topic] = PAYOUT_REQUESTS

    transfer_id: Identifier
    kind: LedgerPostingKind
    provider: ProviderType
    amount: PayableMoney
    claim_id: Identifier | None = None
    payout_id: Identifier | None = None
    adjustment_id: Identifier | None = None
    posted_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> LedgerPosted:
        if self.kind is LedgerPostingKind.ADJUSTMENT and self.adjustment_id is None:
            raise ValueError("an adjustment's posting names its adjustment")
        if self.kind is not LedgerPostingKind.ADJUSTMENT and self.payout_id is None:
            raise ValueError("a payout's posting names its payout")
        return self


class PayoutRequestRefused(EventPayload):
    """Payouts will never pay this request (no provider routes it, the provider refuses its destination, it
    is unreadable): no payout exists for the claim and none ever will, so rewards voids the reservation."""

    EVENT_NAME: ClassVar[str] = "PayoutRequestRefused"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    payout_request_id: Identifier
    claim_id: Identifier
    code: PayoutErrorCode
    detail: Reason
    refused_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> PayoutRequestRefused:
        if is_retryable(self.code):
            raise ValueError(f"{self.code.value} is retryable: a request is only refused for good")
        return self


class PayoutRoute(BaseModel):
    """One (asset, destination type) pair some configured provider pays."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    asset: AssetCode
    destination_type: DestinationType
    provider: ProviderType
    amounts: Annotated[tuple[PositiveMinorUnits, ...], Field(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="The only amounts it pays, when its rail pays fixed prices (Telegram gifts); None: any amount",
    )


class PayoutRoutesPublished(EventPayload):
    """What payouts can pay, as configured now (published when the configuration changes): rewards refuses
    claims to anything else up front instead of reserving money no provider will ever pay out. A higher
    `sequence` replaces a lower one."""

    EVENT_NAME: ClassVar[str] = "PayoutRoutesPublished"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    sequence: Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
    routes: Annotated[list[PayoutRoute], Field(max_length=1000)]
    published_at: AwareDatetime


class _PayoutEvent(EventPayload):
    payout_id: Identifier
    payout_request_id: Identifier
    claim_id: Identifier
    player_id: Identifier
    amount: PayableMoney
    provider: ProviderType
    idempotency_key: IdempotencyKey


class PayoutCreated(_PayoutEvent):
    """Payouts accepted the request; `approval_policy` tells how many approvers it waits for."""

    EVENT_NAME: ClassVar[str] = "PayoutCreated"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    destination: PayoutDestination
    approval_policy: ApprovalPolicy
    created_at: AwareDatetime


class PayoutApproved(_PayoutEvent):
    """The approval policy is satisfied; nobody approves their own request (checked by payouts)."""

    EVENT_NAME: ClassVar[str] = "PayoutApproved"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    approval_policy: ApprovalPolicy
    approved_by: Annotated[list[Identifier], Field(max_length=2)] = Field(default_factory=list)
    approved_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> PayoutApproved:
        needed = REQUIRED_APPROVERS[self.approval_policy]
        if len(self.approved_by) != needed:
            raise ValueError(
                f"policy {self.approval_policy.value} needs exactly {needed} approver(s), got {len(self.approved_by)}"
            )
        if len(set(self.approved_by)) != len(self.approved_by):
            raise ValueError("approvers must be distinct people")
        return self


class PayoutSubmitted(_PayoutEvent):
    """Handed to the provider; the outcome comes later. For Stellar, `tx_hash` and `valid_until` are set:
    the same envelope is resubmitted until it lands or `valid_until` passes."""

    EVENT_NAME: ClassVar[str] = "PayoutSubmitted"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    attempt: Attempt
    provider_ref: ProviderRef | None = None
    tx_hash: TxHash | None = None
    valid_until: AwareDatetime | None = None
    submitted_at: AwareDatetime


class PayoutPaid(_PayoutEvent):
    """The provider confirmed the money arrived: rewards posts the reservation."""

    EVENT_NAME: ClassVar[str] = "PayoutPaid"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    provider_ref: ProviderRef | None = None
    tx_hash: TxHash | None = None
    fee: Money | None = Field(default=None, description="Fee the provider charged the platform, if known")
    paid_at: AwareDatetime


class PayoutFailed(_PayoutEvent):
    """An attempt failed. With `final=False` payouts retries after backoff (same idempotency key) and the
    reservation stays; with `final=True` nothing more happens and rewards voids the reservation."""

    EVENT_NAME: ClassVar[str] = "PayoutFailed"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    attempt: Attempt
    code: PayoutErrorCode
    retryable: bool
    final: bool
    detail: Reason
    provider_code: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    next_attempt_at: AwareDatetime | None = None
    failed_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> PayoutFailed:
        if self.retryable and not is_retryable(self.code):
            raise ValueError(f"{self.code.value} is a terminal error code; retryable must be false")
        if not self.retryable and not self.final:
            raise ValueError("a failure that is not retryable is final")
        if self.final and self.next_attempt_at is not None:
            raise ValueError("a final failure has no next attempt")
        if not self.final and self.next_attempt_at is None:
            raise ValueError("a failure that will be retried needs next_attempt_at")
        return self


class PayoutCancelled(_PayoutEvent):
    """Cancelled before it was paid: rewards voids the reservation."""

    EVENT_NAME: ClassVar[str] = "PayoutCancelled"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    cancelled_by: Identifier
    reason: Reason
    cancelled_at: AwareDatetime


class PayoutRejected(_PayoutEvent):
    """An approver refused the payout: rewards voids the reservation."""

    EVENT_NAME: ClassVar[str] = "PayoutRejected"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    rejected_by: Identifier
    reason: Reason
    rejected_at: AwareDatetime


class PayoutReturned(_PayoutEvent):
    """A paid payout came back (bounced, reversed): rewards credits `returned_amount` back to the wallet."""

    EVENT_NAME: ClassVar[str] = "PayoutReturned"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    returned_amount: PayableMoney
    provider_ref: ProviderRef | None = None
    reason: Reason
    returned_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> PayoutReturned:
        if self.returned_amount.asset != self.amount.asset:
            raise ValueError("returned_amount must be in the asset that was paid")
        if self.returned_amount.amount > self.amount.amount:
            raise ValueError("more cannot come back than was paid")
        return self


class AdjustmentKind(StrEnum):
    """Why reconciliation moves money in the ledger (docs/adr/0011-reconciliation.md)."""

    FEE = "fee"  # a provider fee nobody booked
    WRITE_OFF = "write_off"  # money left at the provider that no payout accounts for (a loss, until recovered)


class ReconciliationAdjusted(EventPayload):
    """Two people resolved a reconciliation exception by moving money: rewards posts `amount` from the treasury
    to the rail's external account (`external(provider, asset)`), once per `adjustment_id`, so the ledger shows
    what the provider's books show."""

    EVENT_NAME: ClassVar[str] = "ReconciliationAdjusted"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    adjustment_id: Identifier
    exception_id: Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
    kind: AdjustmentKind
    provider: ProviderType
    provider_name: Identifier
    amount: PayableMoney
    payout_id: Identifier | None = None
    approved_by: Annotated[list[Identifier], Field(min_length=2, max_length=2)]
    reason: Reason
    adjusted_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> ReconciliationAdjusted:
        if len(set(self.approved_by)) != 2:
            raise ValueError("a reconciliation adjustment needs two different people")
        return self


class PlayerVerificationChanged(EventPayload):
    """A player's identity verification changed (docs/adr/0012-pay-only-whom-you-may.md). Only a reference and a
    status cross the boundary: no name, date of birth, document or country. A higher `sequence` replaces a lower
    one (per player); rewards releases the claims waiting for `verified` and refuses them on `failed`."""

    EVENT_NAME: ClassVar[str] = "PlayerVerificationChanged"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    player_id: Identifier
    reference: Identifier = Field(description="payouts' verification id (never the vendor's data)")
    status: VerificationStatus
    sequence: Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
    changed_at: AwareDatetime


class RiskPolicyActivated(EventPayload):
    """A risk policy version took effect: proposed by one admin, approved by another. A higher `policy.version`
    replaces a lower one; rewards evaluates it before the next claim, payouts before the next payout leaves."""

    EVENT_NAME: ClassVar[str] = "RiskPolicyActivated"
    TOPIC: ClassVar[Topic] = PAYOUT_EVENTS

    policy: RiskPolicy
    proposed_by: Identifier
    approved_by: Identifier
    activated_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> RiskPolicyActivated:
        check_two_people(self.proposed_by, self.approved_by)
        return self


__all__ = [
    "REQUIRED_APPROVERS",
    "AdjustmentKind",
    "ApprovalPolicy",
    "LedgerPosted",
    "LedgerPostingKind",
    "PayoutApproved",
    "PayoutCancelled",
    "PayoutConversion",
    "PayoutCreated",
    "PayoutFailed",
    "PayoutPaid",
    "PayoutRejected",
    "PayoutRequestRefused",
    "PayoutRequested",
    "PayoutReturned",
    "PayoutRoute",
    "PayoutRoutesPublished",
    "PayoutSubmitted",
    "PlayerVerificationChanged",
    "ReconciliationAdjusted",
    "RiskPolicyActivated",
]
