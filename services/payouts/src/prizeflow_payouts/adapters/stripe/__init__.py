"""The Stripe payout rail (`type: stripe`, or `type: fiat_provider` with `options.rail: stripe`)."""

from typing import Final

from prizeflow_contracts.providers import ProviderType
from prizeflow_payouts.adapters.stripe.classify import PAYOUT_FAILURE_CODES, REQUEST_CODES, StripeErrors, payout_failure
from prizeflow_payouts.adapters.stripe.events import StripePayoutEvent, normalize_event
from prizeflow_payouts.adapters.stripe.factory import build_stripe
from prizeflow_payouts.adapters.stripe.options import StripeMode, StripeOptions, parse_options
from prizeflow_payouts.adapters.stripe.provider import ACCOUNT_RE, StripePayoutProvider, derived_key

# The provider types this package implements (the bootstrap finds every adapter package's `RAILS`).
RAILS: Final = {
    ProviderType.STRIPE: build_stripe,
    # `type: fiat_provider`: the rail (`options.rail`) decides the implementation; the factory refuses any but stripe.
    ProviderType.FIAT_PROVIDER: build_stripe,
}

__all__ = [
    "ACCOUNT_RE",
    "PAYOUT_FAILURE_CODES",
    "RAILS",
    "REQUEST_CODES",
    "StripeErrors",
    "StripeMode",
    "StripeOptions",
    "StripePayoutEvent",
    "StripePayoutProvider",
    "build_stripe",
    "derived_key",
    "normalize_event",
    "parse_options",
    "payout_failure",
]
