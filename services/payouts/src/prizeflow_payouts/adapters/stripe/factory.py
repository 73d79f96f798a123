"""`build_stripe`: the factory of `type: stripe` and of `type: fiat_provider` entries whose `options.rail` is
stripe (any other rail is refused at start-up, naming it)."""

from __future__ import annotations

import stripe
from prizeflow_contracts.providers import ProviderCapabilities
from prizeflow_payouts.adapters.stripe.options import StripeMode, parse_options
from prizeflow_payouts.adapters.stripe.provider import StripePayoutProvider
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec


def build_stripe(
    spec: ProviderSpec, context: ProviderContext, *, http_client: stripe.HTTPClient | None = None
) -> tuple[StripePayoutProvider, bool]:
    options, api_key = parse_options(spec, context)
    webhook = spec.secrets.get("webhook_secret")
    if webhook is not None and not webhook.reveal().startswith("whsec_"):
        raise ProviderConfigError(f"provider {spec.name!r}: {webhook.env} is not a Stripe endpoint secret (whsec_)")
    two_steps = options.mode is StripeMode.TRANSFER_AND_PAYOUT
    caps = ProviderCapabilities(
        supports_cancel=two_steps,  # a pending payout can be cancelled; a transfer never can
        supports_quote=True,
        supports_webhooks=True,
        async_confirmation=two_steps,
        requires_signature=False,
        supports_batching=False,
        supports_returns=True,  # transfer: a full reversal; transfer_and_payout: payout.failed after paid
        assets=spec.assets,
        destination_types=spec.destination_types,
    )
    provider = StripePayoutProvider(
        options,
        api_key=api_key,
        capabilities=caps,
        http_client=http_client,
        webhook_secrets=(webhook.reveal(),) if webhook is not None else (),
    )
    return provider, True


__all__ = ["build_stripe"]
