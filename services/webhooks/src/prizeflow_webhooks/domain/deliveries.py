"""What the ingress knows about a provider, why it refuses a request, and what an accepted callback came to."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from prizeflow_contracts.kyc import VerificationVendor
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.webhook_signatures import SignatureFailure

UNKNOWN_PROVIDER_LABEL: Final = "unknown"  # the metric label of a provider name nobody configured


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


@dataclass(frozen=True, slots=True)
class IngressProvider:
    """One configured provider: the name in the URL, its type (the events' `provider`: a payout rail, or a KYC
    vendor), its scheme (the name its rail's reader is registered under, `prizeflow_contracts.rails.registry`) and
    the secrets it may sign with (several during a rotation; values, kept out of reprs)."""

    name: str
    type: ProviderType | VerificationVendor
    scheme: str
    secrets: tuple[str, ...] = field(repr=False)
    tolerance_s: int = 300
    max_body_bytes: int = 65_536
    confirms: bool = False  # events are fetched back from the provider before they are published

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError(f"provider {self.name}: at least one secret")


__all__ = ["UNKNOWN_PROVIDER_LABEL", "DeliveryOutcome", "IngressProvider", "RefusalReason"]
