"""Webhook signature schemes, pure functions: the ingress verifies with them, emulators and rails sign with them.

Both schemes are "HMAC-SHA256 over `<t>.<raw body>` with a timestamp", the header being
`t=<unix seconds>,v1=<hex>[,v1=<hex>...]`:

- Stripe's `Stripe-Signature` (https://docs.stripe.com/webhooks#verify-manually). Several `v1` values may be
  present (Stripe signs with every active secret during a rotation); the ingress may hold several secrets.
- Prizeflow's own `Prizeflow-Signature`, the same construction, for the sandbox rail and any provider that
  signs with an HMAC and a timestamp.

A request is accepted when any configured secret matches any `v1` value (constant-time compare), and its
timestamp is within `tolerance_s` of now in *both* directions (an old delivery is a replay; a timestamp from
the future is forged or a clock fault, and would otherwise stretch the replay window).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final

STRIPE_SIGNATURE_HEADER: Final = "stripe-signature"
PRIZEFLOW_SIGNATURE_HEADER: Final = "prizeflow-signature"
DEFAULT_TOLERANCE_S: Final = 300
_MAX_HEADER_CHARS: Final = 4096
_MAX_SIGNATURES: Final = 16


class SignatureFailure(StrEnum):
    """Why a signature was refused; a stable metric label and problem-details code."""

    MISSING = "signature_missing"
    MALFORMED = "signature_malformed"
    STALE = "timestamp_stale"
    FUTURE = "timestamp_future"
    MISMATCH = "signature_mismatch"


class SignatureRefused(Exception):  # noqa: N818 - a refusal, the caller's expected answer to a bad request
    def __init__(self, reason: SignatureFailure, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secrets: str | Iterable[str], timestamp: int, body: bytes) -> str:
    """`t=...,v1=...` with one `v1` per secret (what a provider sends during a rotation)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    return ",".join([f"t={timestamp}", *(f"v1={compute_signature(k, timestamp, body)}" for k in keys)])


def parse_header(header: str) -> tuple[int, list[str]]:
    """(timestamp, v1 signatures); other schemes (`v0=`) are ignored, as Stripe documents."""
    if len(header) > _MAX_HEADER_CHARS:
        raise SignatureRefused(SignatureFailure.MALFORMED, "signature header too long")
    timestamp: int | None = None
    v1: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureRefused(SignatureFailure.MALFORMED, "signature header items must be key=value")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit() or len(value) > 12:
                raise SignatureRefused(SignatureFailure.MALFORMED, "signature header needs exactly one numeric t=")
            timestamp = int(value)
        elif key == "v1":
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise SignatureRefused(SignatureFailure.MALFORMED, "a v1 signature is 64 lowercase hex characters")
            v1.append(value)
    if timestamp is None:
        raise SignatureRefused(SignatureFailure.MALFORMED, "signature header has no timestamp")
    if not v1:
        raise SignatureRefused(SignatureFailure.MALFORMED, "signature header has no v1 signature")
    if len(v1) > _MAX_SIGNATURES:
        raise SignatureRefused(SignatureFailure.MALFORMED, "too many v1 signatures")
    return timestamp, v1


def verify(
    headers: Mapping[str, str],
    body: bytes,
    *,
    header_name: str,
    secrets: Iterable[str],
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> int:
    """The verified timestamp; raises `SignatureRefused` otherwise. `headers` keys are compared lower-case."""
    keys = [k for k in secrets if k]
    if not keys:
        raise SignatureRefused(SignatureFailure.MISMATCH, "no secret configured")
    wanted = header_name.lower()
    raw = next((v for k, v in headers.items() if k.lower() == wanted), None)
    if raw is None or not raw.strip():
        raise SignatureRefused(SignatureFailure.MISSING, f"no {header_name} header")
    timestamp, given = parse_header(raw)
    if timestamp < now - tolerance_s:
        raise SignatureRefused(SignatureFailure.STALE, f"timestamp older than {tolerance_s} s")
    if timestamp > now + tolerance_s:
        raise SignatureRefused(SignatureFailure.FUTURE, f"timestamp more than {tolerance_s} s in the future")
    expected = [compute_signature(k, timestamp, body) for k in keys]
    # Every pair is compared (no early exit on the first match), so timing says nothing about which one matched.
    matched = False
    for e in expected:
        for g in given:
            matched |= hmac.compare_digest(e, g)
    if not matched:
        raise SignatureRefused(SignatureFailure.MISMATCH, "no signature matches a configured secret")
    return timestamp


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "PRIZEFLOW_SIGNATURE_HEADER",
    "STRIPE_SIGNATURE_HEADER",
    "SignatureFailure",
    "SignatureRefused",
    "compute_signature",
    "parse_header",
    "signature_header",
    "verify",
]
