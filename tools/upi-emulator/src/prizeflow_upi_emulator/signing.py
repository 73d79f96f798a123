"""Razorpay's webhook signature: `X-Razorpay-Signature: <hex HMAC-SHA256 of the raw request body under the webhook
secret>` (docs webhooks/validate-test), no timestamp; `X-Razorpay-Event-Id` is unique per event and the same on every
delivery of it (a receiver deduplicates on it). Kept independent of Prizeflow's own verifier on purpose (two
implementations checked against each other)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

SIGNATURE_HEADER: Final = "X-Razorpay-Signature"
EVENT_ID_HEADER: Final = "X-Razorpay-Event-Id"


def sign(secret: str, body: bytes) -> str:
    """The header value for `body`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


__all__ = ["EVENT_ID_HEADER", "SIGNATURE_HEADER", "sign"]
