"""The manual provider: operators pay outside the system and report the outcome through the admin API."""

from __future__ import annotations

from collections.abc import Mapping

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import (
    PayoutInstruction,
    PayoutLookup,
    ProviderCapabilities,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
    WebhookEvent,
)
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec


class ManualPayoutProvider:
    """`create_payout` queues the payout for an operator (`pending`); the admin API marks it paid or failed."""

    provider_type = ProviderType.MANUAL

    def __init__(self, capabilities: ProviderCapabilities) -> None:
        self.capabilities = capabilities

    async def quote(self, instruction: PayoutInstruction) -> Quote:
        raise PayoutProviderError.of(
            PayoutErrorCode.UNSUPPORTED_OPERATION, "the manual provider cannot quote", provider="manual"
        )

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        return ProviderPayoutResult(
            status=ProviderPayoutStatus.PENDING,
            idempotency_key=instruction.idempotency_key,
            provider_ref=f"manual-{instruction.payout_id}",
            raw_status="awaiting_operator",
        )

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        return ProviderPayoutResult(
            status=ProviderPayoutStatus.PENDING,
            idempotency_key=lookup.idempotency_key,
            provider_ref=lookup.provider_ref or f"manual-{lookup.payout_id}",
            raw_status="awaiting_operator",
        )

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        # Nothing left the platform until an operator says so; cancelling only takes it off their list.
        return ProviderPayoutResult(
            status=ProviderPayoutStatus.CANCELLED,
            idempotency_key=lookup.idempotency_key,
            provider_ref=lookup.provider_ref,
            raw_status="withdrawn",
        )

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise PayoutProviderError.of(
            PayoutErrorCode.UNSUPPORTED_OPERATION, "the manual provider has no webhooks", provider="manual"
        )


def build_manual(spec: ProviderSpec, context: ProviderContext) -> tuple[ManualPayoutProvider, bool]:
    if spec.options:
        raise ProviderConfigError(f"provider {spec.name!r}: the manual provider takes no options")
    caps = ProviderCapabilities(
        supports_cancel=True,
        supports_quote=False,
        supports_webhooks=False,
        async_confirmation=True,
        requires_signature=False,
        supports_batching=False,
        assets=spec.assets,
        destination_types=spec.destination_types,
    )
    return ManualPayoutProvider(caps), False


__all__ = ["ManualPayoutProvider", "build_manual"]
