"""`build_stripe`: the factory of `type: stripe` and of `type: fiat_provider` entries whose `options.rail` is
stripe (any other rail is refused at start-up, naming it)."""

from __future__ import annotations

import stripe
from prizeflow_payouts.adapters.stripe.options import StripeMode, parse_options
from prizeflow_payouts.adapters.stripe.provider import StripePayoutProvider
from prizeflow_payouts.application.rail import Rail, RailTerms
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec


def stripe_terms(mode: StripeMode) -> RailTerms:
    two_steps = mode is StripeMode.TRANSFER_AND_PAYOUT
    return RailTerms(
        cancels=two_steps,  # a pending payout can be cancelled; a transfer never can
        quotes=True,
        webhooks=True,
        confirms_later=two_steps,
        returns=True,  # transfer: a full reversal; transfer_and_payout: payout.failed after paid
        finds_payouts_at_provider=True,  # sync reads Stripe's transfers and payouts
        # transfer_and_payout: reverse the transfer before a failure is final; a webhook `failed` only syncs.
        settles_failures_on_sync=two_steps,
    )


def stripe_rail(provider: StripePayoutProvider) -> Rail:
    return Rail(
        payouts=provider,
        terms=stripe_terms(provider.options.mode),
        errors=provider.errors,
        statement=provider,
        engine=provider,
        validator=provider,
    )


def build_stripe(spec: ProviderSpec, context: ProviderContext, *, http_client: stripe.HTTPClient | None = None) -> Rail:
    options, api_key = parse_options(spec, context)
    webhook = spec.secrets.get("webhook_secret")
    if webhook is not None and not webhook.reveal().startswith("whsec_"):
        raise ProviderConfigError(f"provider {spec.name!r}: {webhook.env} is not a Stripe endpoint secret (whsec_)")
    provider = StripePayoutProvider(
        options,
        api_key=api_key,
        http_client=http_client,
        webhook_secrets=(webhook.reveal(),) if webhook is not None else (),
    )
    return stripe_rail(provider)


__all__ = ["build_stripe", "stripe_rail", "stripe_terms"]
