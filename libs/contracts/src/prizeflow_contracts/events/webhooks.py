"""What the webhooks ingress publishes on `prizeflow.webhooks.provider-events.v1` (docs/architecture.md §5).

Raw provider bodies never travel on Kafka (they may hold personal data); only the normalized view and a
digest of the body, which the ingress keeps for support. Three kinds of provider event travel here:
`ProviderEventReceived` is about a payout (payouts consumes it), `PaymentEventReceived` is about money a
player paid in, a wallet top-up (rewards consumes it), `VerificationEventReceived` is about a player's identity
verification at a KYC vendor (payouts consumes it). Each consumer ignores the kinds it does not act on.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field, model_validator

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.ids import IdempotencyKey, Identifier, ProviderRef, Sha256Hex
from prizeflow_contracts.kyc import VerificationVendor
from prizeflow_contracts.money import Money, PositiveMoney
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.topics import WEBHOOK_PROVIDER_EVENTS, Topic


class ProviderEventReceived(EventPayload):
    """A provider webhook, deduplicated on (provider, provider_event_id); payouts acts on verified ones."""

    EVENT_NAME: ClassVar[str] = "ProviderEventReceived"
    TOPIC: ClassVar[Topic] = WEBHOOK_PROVIDER_EVENTS

    provider: ProviderType
    provider_event_id: ProviderRef
    provider_payout_ref: ProviderRef | None = None
    idempotency_key: IdempotencyKey | None = Field(default=None, description="Our key, if the provider echoes it")
    provider_account: ProviderRef | None = Field(
        default=None,
        description="The provider account the reported object lives on, when it is not the platform's own (a "
        "Stripe connected account's bank payout): such an event moves only a payout to that account",
    )
    kind: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/\-]{1,128}$")]
    received_at: AwareDatetime
    verified: bool
    status: ProviderPayoutStatus | None = Field(default=None, description="Normalized status, if the event has one")
    error_code: PayoutErrorCode | None = None
    fee: Money | None = Field(
        default=None,
        description="What the provider charged the platform for the payout, when the event's object carries it "
        "(a paid status only): recorded with the payout as its status would record it",
    )
    payload_digest: Sha256Hex = Field(description="SHA-256 of the raw request body")

    @model_validator(mode="after")
    def _check(self) -> ProviderEventReceived:
        if self.provider_payout_ref is None and self.idempotency_key is None:
            raise ValueError("a provider event must name its payout: provider_payout_ref or idempotency_key")
        if self.error_code is not None and self.status is not ProviderPayoutStatus.FAILED:
            raise ValueError("error_code is only set on a failed status")
        if self.fee is not None and self.status is not ProviderPayoutStatus.PAID:
            raise ValueError("fee is only set on a paid status")
        return self


class PaymentEventStatus(StrEnum):
    """What a provider says happened to money a player paid in (a top-up's checkout session).

    `paid`: the money is ours (credit the wallet once). `failed` / `expired`: it never arrived (credit
    nothing). `refunded` / `dispute_lost`: `amount` goes back to the player's card (debit the wallet, or
    record a receivable when it no longer covers it). `disputed`: funds withdrawn pending the dispute (treated
    like `dispute_lost` until `dispute_won` gives them back). `dispute_won`: the withdrawn amount returns.
    `refund_failed`: a refund (`adjustment_ref`: the same refund's id) failed or was cancelled after it was
    reported proceeding: what it took back returns, as a dispute won does for its dispute.
    """

    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    DISPUTE_WON = "dispute_won"
    REFUND_FAILED = "refund_failed"


class PaymentEventReceived(EventPayload):
    """A provider webhook about a player's payment into the platform (a wallet top-up), verified by the ingress.

    Names the checkout session (`session_ref`, and our `top_up_id` when the provider echoes it) and, once the
    provider has one, the payment (`payment_ref`: Stripe's payment intent) that refunds and disputes name.
    `adjustment_ref` is the refund's or the dispute's own id: each adjustment moves money at most once.
    """

    EVENT_NAME: ClassVar[str] = "PaymentEventReceived"
    TOPIC: ClassVar[Topic] = WEBHOOK_PROVIDER_EVENTS

    provider: ProviderType
    provider_event_id: ProviderRef
    kind: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/\-]{1,128}$")]
    received_at: AwareDatetime
    verified: bool
    status: PaymentEventStatus
    top_up_id: Identifier | None = Field(default=None, description="Our top-up session id, if echoed")
    session_ref: ProviderRef | None = Field(default=None, description="The provider's checkout session id")
    payment_ref: ProviderRef | None = Field(default=None, description="The provider's payment (intent) id")
    adjustment_ref: ProviderRef | None = Field(default=None, description="Refund or dispute id")
    amount: PositiveMoney | None = Field(default=None, description="Paid total, or the refund / dispute amount")
    payload_digest: Sha256Hex = Field(description="SHA-256 of the raw request body")

    @model_validator(mode="after")
    def _check(self) -> PaymentEventReceived:
        if self.top_up_id is None and self.session_ref is None and self.payment_ref is None:
            raise ValueError("a payment event must name its payment: top_up_id, session_ref or payment_ref")
        adjusting = {
            PaymentEventStatus.REFUNDED,
            PaymentEventStatus.DISPUTED,
            PaymentEventStatus.DISPUTE_WON,
            PaymentEventStatus.REFUND_FAILED,
        }
        if self.status in adjusting and (self.adjustment_ref is None or self.amount is None):
            raise ValueError(f"a {self.status.value} event needs adjustment_ref and amount")
        if self.status is PaymentEventStatus.PAID and self.amount is None:
            raise ValueError("a paid event carries the amount paid")
        return self


class VerificationEventReceived(EventPayload):
    """A KYC vendor's webhook about an applicant (docs/adr/0012-pay-only-whom-you-may.md), verified and deduplicated
    by the ingress. It says only that something happened to whom: no review answer (a webhook's say-so is never
    believed; payouts fetches the applicant's status from the vendor) and no personal data."""

    EVENT_NAME: ClassVar[str] = "VerificationEventReceived"
    TOPIC: ClassVar[Topic] = WEBHOOK_PROVIDER_EVENTS

    provider: VerificationVendor
    provider_name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="The ingress's provider")]
    provider_event_id: ProviderRef = Field(description="The delivery's dedup key at the ingress")
    applicant_ref: ProviderRef = Field(description="The vendor's applicant id")
    player_id: Identifier = Field(description="Our player id, the vendor's external user id")
    kind: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/\-]{1,128}$", description="The vendor's webhook type")]
    received_at: AwareDatetime
    payload_digest: Sha256Hex = Field(description="SHA-256 of the raw request body")


__all__ = ["PaymentEventReceived", "PaymentEventStatus", "ProviderEventReceived", "VerificationEventReceived"]
