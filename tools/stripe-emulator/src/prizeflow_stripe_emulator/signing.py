"""Stripe's webhook signature: `Stripe-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, one `v1`
per active secret (several during a rotation). Pure."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


def stripe_signature(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    v1 = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets]
    return ",".join([f"t={timestamp}", *(f"v1={sig}" for sig in v1)])


__all__ = ["stripe_signature"]
