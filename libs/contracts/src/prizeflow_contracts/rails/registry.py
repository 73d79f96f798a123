"""Every rail's webhook face, by the name of its signing scheme (the providers file's `scheme`): what the webhook
ingress reads and nothing else. A new rail adds its reader here, once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prizeflow_contracts.rails.giftcard import GiftCardReader
from prizeflow_contracts.rails.paypal import PayPalReader
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
    PayPalReader(),
)
WEBHOOK_READERS: Final[Mapping[str, WebhookReader]] = {r.terms.scheme: r for r in _READERS}

# What the ingress relies on, held at import: one reader a scheme, and each names its signature header first, in
# lower case (how ASGI gives header names; a name in another case would never match and refuse every delivery).
if len(WEBHOOK_READERS) != len(_READERS):
    raise RuntimeError("two webhook readers claim one scheme")
for _reader in _READERS:
    if not _reader.terms.headers or any(h != h.lower() for h in _reader.terms.headers):
        raise RuntimeError(f"reader {_reader.terms.scheme}: headers must be named, lower case, the signature's first")

__all__ = ["WEBHOOK_READERS"]
