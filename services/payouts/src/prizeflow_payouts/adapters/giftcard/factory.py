"""`build_giftcard`: the factory of `type: gift_card` entries."""

from __future__ import annotations

import httpx

from prizeflow_contracts.providers import ProviderCapabilities
from prizeflow_payouts.adapters.giftcard.options import parse_options
from prizeflow_payouts.adapters.giftcard.provider import GiftCardPayoutProvider
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec


def build_giftcard(
    spec: ProviderSpec, context: ProviderContext, *, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[GiftCardPayoutProvider, bool]:
    options, secrets = parse_options(spec, context)
    caps = ProviderCapabilities(
        supports_cancel=True,  # while the order awaits approval (rejected); never once the card exists
        supports_quote=True,
        supports_webhooks=bool(secrets.webhook_keys),
        async_confirmation=True,  # scheduled delivery and approvals: paid when the card is delivered
        requires_signature=False,
        supports_batching=False,
        supports_returns=False,  # a delivered card cannot come back
        assets=spec.assets,
        destination_types=spec.destination_types,
    )
    provider = GiftCardPayoutProvider(
        options, api_key=secrets.api_key, capabilities=caps, webhook_keys=secrets.webhook_keys, transport=transport
    )
    return provider, True


__all__ = ["build_giftcard"]
