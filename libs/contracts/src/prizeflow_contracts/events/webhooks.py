"""What the webhooks ingress publishes on `prizeflow.webhooks.provider-events.v1` (docs/architecture.md §5).

Raw provider bodies never travel on Kafka (they may hold personal data); only the normalized view and a
digest of the body, which the ingress keeps for support.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field, model_validator

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.ids import IdempotencyKey, ProviderRef, Sha256Hex
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
    kind: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/\-]{1,128}$")]
    received_at: AwareDatetime
    verified: bool
    status: ProviderPayoutStatus | None = Field(default=None, description="Normalized status, if the event has one")
    error_code: PayoutErrorCode | None = None
    payload_digest: Sha256Hex = Field(description="SHA-256 of the raw request body")

    @model_validator(mode="after")
    def _check(self) -> ProviderEventReceived:
        if self.provider_payout_ref is None and self.idempotency_key is None:
            raise ValueError("a provider event must name its payout: provider_payout_ref or idempotency_key")
        if self.error_code is not None and self.status is not ProviderPayoutStatus.FAILED:
            raise ValueError("error_code is only set on a failed status")
        return self


__all__ = ["ProviderEventReceived"]
