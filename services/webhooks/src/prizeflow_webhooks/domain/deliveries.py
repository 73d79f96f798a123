"""What the ingress knows about a provider, why it refuses a request, and what an accepted callback becomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from prizeflow_contracts.events.webhooks import PaymentEventReceived, ProviderEventReceived, VerificationEventReceived
from prizeflow_contracts.giftcard import GIFTCARD_SIGNATURE_HEADER
from prizeflow_contracts.kyc import SUMSUB_DIGEST_HEADER, VerificationVendor
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.upi import RAZORPAY_SIGNATURE_HEADER
from prizeflow_contracts.webhook_signatures import (
    PRIZEFLOW_SIGNATURE_HEADER,
    STRIPE_SIGNATURE_HEADER,
    SignatureFailure,
)

UNKNOWN_PROVIDER_LABEL: Final = "unknown"  # the metric label of a provider name nobody configured


class Scheme(StrEnum):
    """How a provider signs its callbacks: HMAC-SHA256 over `<t>.<body>` (Stripe's and ours, see
    webhook_signatures), or over the body alone, without a timestamp (the gift-card provider's, see
    prizeflow_contracts.giftcard: such events are always fetched back before they count; the KYC vendor's
    `X-Payload-Digest`, see prizeflow_contracts.kyc: payouts fetches the applicant's status back)."""

    STRIPE_SIGNATURE = "stripe_signature"
    PRIZEFLOW_SIGNATURE = "prizeflow_signature"
    GIFTCARD_SIGNATURE = "giftcard_signature"
    SUMSUB_DIGEST = "sumsub_digest"
    # RazorpayX (the upi rail): `X-Razorpay-Signature`, the HMAC of the body, no timestamp; the event's id in
    # `X-Razorpay-Event-Id` (prizeflow_contracts.upi).
    RAZORPAY_SIGNATURE = "razorpay_signature"

    @property
    def header(self) -> str:
        return {
            Scheme.STRIPE_SIGNATURE: STRIPE_SIGNATURE_HEADER,
            Scheme.PRIZEFLOW_SIGNATURE: PRIZEFLOW_SIGNATURE_HEADER,
            Scheme.GIFTCARD_SIGNATURE: GIFTCARD_SIGNATURE_HEADER,
            Scheme.SUMSUB_DIGEST: SUMSUB_DIGEST_HEADER,
            Scheme.RAZORPAY_SIGNATURE: RAZORPAY_SIGNATURE_HEADER,
        }[self]


class RefusalReason(StrEnum):
    """Why a request was refused: a stable problem-details code and the `reason` metric label (bounded)."""

    SIGNATURE_MISSING = SignatureFailure.MISSING.value
    SIGNATURE_MALFORMED = SignatureFailure.MALFORMED.value
    SIGNATURE_MISMATCH = SignatureFailure.MISMATCH.value
    TIMESTAMP_STALE = SignatureFailure.STALE.value
    TIMESTAMP_FUTURE = SignatureFailure.FUTURE.value
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # not JSON: no provider of ours sends anything else
    UNKNOWN_PROVIDER = "unknown_provider"
    MALFORMED_JSON = "malformed_json"
    INVALID_PAYLOAD = "invalid_payload"
    EVENT_NOT_CONFIRMED = "event_not_confirmed"
    PROVIDER_UNAVAILABLE = "provider_unavailable"


class DeliveryOutcome(StrEnum):
    """What an accepted request came to; the HTTP answer says it, the `outcome` metric label counts it."""

    ACCEPTED = "accepted"  # stored, its event staged in the outbox in the same transaction
    DUPLICATE = "duplicate"  # (provider, provider event id) was already stored: nothing new
    IGNORED = "ignored"  # stored, a kind Prizeflow does not act on: nothing published


class IgnoredReason(StrEnum):
    KIND_NOT_HANDLED = "kind_not_handled"
    PAYMENT_PENDING = "payment_pending"  # checkout completed, money not there yet (async payment methods)
    NO_PAYMENT = "no_payment"  # checkout completed with nothing to pay
    REFUND_NOT_PROCEEDING = (
        "refund_not_proceeding"  # a refund awaiting action (a failed or canceled one: refund_failed)
    )
    # A payment or a transfer on a connected account (`account` set): not money paid to, or sent by, the platform.
    CONNECTED_ACCOUNT = "connected_account"
    # A bank payout of the platform's own balance (`payout.*` without `account`): Prizeflow pays on players' accounts.
    PLATFORM_PAYOUT = "platform_payout"
    # A gift-card order Prizeflow did not place (no payout id as its external id): another user of the account.
    NOT_A_PAYOUT = "not_a_payout"
    # A KYC applicant whose external user id is no player id of ours (made in the vendor's dashboard, say).
    NOT_A_PLAYER = "not_a_player"


@dataclass(frozen=True, slots=True)
class IngressProvider:
    """One configured provider: the name in the URL, its type (the events' `provider`: a payout rail, or a KYC
    vendor), its scheme and the secrets it may sign with (several during a rotation; values, kept out of reprs)."""

    name: str
    type: ProviderType | VerificationVendor
    scheme: Scheme
    secrets: tuple[str, ...] = field(repr=False)
    tolerance_s: int = 300
    max_body_bytes: int = 65_536
    confirms: bool = False  # events are fetched back from the provider before they are published

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError(f"provider {self.name}: at least one secret")


NormalizedEvent = ProviderEventReceived | PaymentEventReceived | VerificationEventReceived


@dataclass(frozen=True, slots=True)
class Normalized:
    """A verified callback, normalized: the provider's event id and kind, the flow's correlation id when the
    provider echoed it, and the Prizeflow event to publish (None: ignored, with why)."""

    provider_event_id: str
    kind: str
    correlation_id: str | None
    event: NormalizedEvent | None
    ignored: IgnoredReason | None = None

    def __post_init__(self) -> None:
        if (self.event is None) == (self.ignored is None):
            raise ValueError("a normalized callback is either an event or ignored (with a reason)")


class NormalizationError(ValueError):
    """The callback is well signed but cannot be read as the provider's event (a bug on either side): refused
    with `invalid_payload`, never stored, so a corrected delivery can still take its dedup key."""


__all__ = [
    "UNKNOWN_PROVIDER_LABEL",
    "DeliveryOutcome",
    "IgnoredReason",
    "IngressProvider",
    "NormalizationError",
    "Normalized",
    "NormalizedEvent",
    "RefusalReason",
    "Scheme",
]
