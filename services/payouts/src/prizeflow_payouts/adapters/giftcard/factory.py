"""`build_giftcard`: the factory of `type: gift_card` entries."""

from __future__ import annotations

import httpx

from prizeflow_payouts.adapters.giftcard.options import parse_options
from prizeflow_payouts.adapters.giftcard.provider import GiftCardPayoutProvider
from prizeflow_payouts.application.rail import Rail, RailTerms
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec


def giftcard_terms(*, webhooks: bool) -> RailTerms:
    return RailTerms(
        cancels=True,  # while the order awaits approval (rejected); never once the card exists
        quotes=True,
        webhooks=webhooks,  # only with webhook keys configured
        confirms_later=True,  # scheduled delivery and approvals: paid when the card is delivered
        returns=False,  # a delivered card cannot come back
        finds_payouts_at_provider=True,  # sync reads the vendor's orders
        settles_failures_on_sync=True,  # a webhook `failed` only schedules the sync that refunds first
    )


def giftcard_rail(provider: GiftCardPayoutProvider) -> Rail:
    return Rail(
        payouts=provider,
        terms=giftcard_terms(webhooks=bool(provider.webhook_keys)),
        errors=provider.errors,
        statement=provider,
        engine=provider,
        validator=provider,
    )


def build_giftcard(
    spec: ProviderSpec, context: ProviderContext, *, transport: httpx.AsyncBaseTransport | None = None
) -> Rail:
    options, secrets = parse_options(spec, context)
    provider = GiftCardPayoutProvider(
        options, api_key=secrets.api_key, webhook_keys=secrets.webhook_keys, transport=transport
    )
    return giftcard_rail(provider)


__all__ = ["build_giftcard", "giftcard_rail", "giftcard_terms"]
