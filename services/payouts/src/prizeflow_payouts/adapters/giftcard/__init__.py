"""The gift-card payout rail (`type: gift_card`): one card per payout, ordered from a Tremendous-shaped API."""

from typing import Final

from prizeflow_contracts.providers import ProviderType
from prizeflow_payouts.adapters.giftcard.classify import FIELD_CODES, GiftCardErrors, HttpRefusalError
from prizeflow_payouts.adapters.giftcard.factory import build_giftcard
from prizeflow_payouts.adapters.giftcard.options import Delivery, GiftCardOptions, parse_options
from prizeflow_payouts.adapters.giftcard.provider import EMAIL_RE, GiftCardPayoutProvider, redact

# The provider types this package implements (the bootstrap finds every adapter package's `RAILS`).
RAILS: Final = {ProviderType.GIFT_CARD: build_giftcard}

__all__ = [
    "EMAIL_RE",
    "FIELD_CODES",
    "RAILS",
    "Delivery",
    "GiftCardErrors",
    "GiftCardOptions",
    "GiftCardPayoutProvider",
    "HttpRefusalError",
    "build_giftcard",
    "parse_options",
    "redact",
]
