"""The gift-card payout rail (`type: gift_card`): one card per payout, ordered from a Tremendous-shaped API."""

from prizeflow_payouts.adapters.giftcard.classify import FIELD_CODES, GiftCardErrors, HttpRefusalError
from prizeflow_payouts.adapters.giftcard.factory import build_giftcard
from prizeflow_payouts.adapters.giftcard.options import Delivery, GiftCardOptions, parse_options
from prizeflow_payouts.adapters.giftcard.provider import EMAIL_RE, GiftCardPayoutProvider, redact

__all__ = [
    "EMAIL_RE",
    "FIELD_CODES",
    "Delivery",
    "GiftCardErrors",
    "GiftCardOptions",
    "GiftCardPayoutProvider",
    "HttpRefusalError",
    "build_giftcard",
    "parse_options",
    "redact",
]
