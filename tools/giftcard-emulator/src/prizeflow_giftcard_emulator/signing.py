"""Tremendous' webhook signature: `Tremendous-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body>` under
the webhook's private key. No timestamp: a receiver relies on the event's `uuid` (dedup) and fetches the resource
back. Kept independent of Prizeflow's own verifier on purpose (two implementations checked against each other)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

SIGNATURE_HEADER: Final = "Tremendous-Webhook-Signature"


def sign(private_key: str, body: bytes) -> str:
    """The header value for `body`."""
    return "sha256=" + hmac.new(private_key.encode(), body, hashlib.sha256).hexdigest()


__all__ = ["SIGNATURE_HEADER", "sign"]
