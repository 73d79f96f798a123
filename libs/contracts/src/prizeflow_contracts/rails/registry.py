"""Every rail's webhook face, by the name of its signing scheme (the providers file's `scheme`): what the webhook
ingress reads and nothing else. A new rail adds its reader here, once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prizeflow_contracts.rails.giftcard import GiftCardReader
from prizeflow_contracts.rails.prizeflow import PrizeflowSignatureReader
from prizeflow_contracts.rails.razorpayx import RazorpayxReader
from prizeflow_contracts.rails.reading import WebhookReader
from prizeflow_contracts.rails.stripe import StripeReader
from prizeflow_contracts.rails.sumsub import SumsubReader

_READERS: Final[tuple[WebhookReader, ...]] = (
    StripeReader(),
    PrizeflowSignatureReader(),
    GiftCardReader(),
    SumsubReader(),
    RazorpayxReader(),
)
WEBHOOK_READERS: Final[Mapping[str, WebhookReader]] = {r.terms.scheme: r for r in _READERS}

__all__ = ["WEBHOOK_READERS"]
