"""The PayPal Payouts rail (`type: paypal`): payouts in batches to PayPal accounts, by email, phone or PayPal id.

Its wire rules and its webhook reader are `prizeflow_contracts.rails.paypal`; its books `book.py` (migration 0033).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

import httpx

from prizeflow_contracts.providers import ProviderType
from prizeflow_payouts.adapters.paypal.client import parse_options
from prizeflow_payouts.adapters.paypal.provider import PayPalPayoutProvider
from prizeflow_payouts.application.rail import Rail, RailTerms
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec

PAYPAL_TERMS = RailTerms(
    cancels=True,  # an unclaimed item only (the money comes back); never once claimed
    quotes=True,
    webhooks=True,  # PAYMENT.PAYOUTS-ITEM.*, through the ingress (only with the webhook's id and certificate)
    confirms_later=True,  # a batch is answered PENDING; its items succeed, wait unclaimed, or fail later
    returns=True,  # refunded or reversed after it was paid
)


def paypal_rail(provider: PayPalPayoutProvider) -> Rail:
    return Rail(
        payouts=provider,
        terms=replace(
            PAYPAL_TERMS, webhooks=bool(provider.webhook_keys), statement_lag_s=provider.options.statement_lag_s
        ),
        errors=provider,
        statement=provider,
        engine=provider,
        database=provider,  # its batches (`paypal_batches`, `paypal_items`)
        validator=provider,
        batch=provider,
    )


def build_paypal(
    spec: ProviderSpec, context: ProviderContext, *, transport: httpx.AsyncBaseTransport | None = None
) -> Rail:
    options, keys = parse_options(spec, context)
    return paypal_rail(PayPalPayoutProvider(options, keys=keys, transport=transport))


# The provider types this package implements (the bootstrap finds every adapter package's `RAILS`).
RAILS: Final = {ProviderType.PAYPAL: build_paypal}

__all__ = ["PAYPAL_TERMS", "RAILS", "PayPalPayoutProvider", "build_paypal", "paypal_rail"]
