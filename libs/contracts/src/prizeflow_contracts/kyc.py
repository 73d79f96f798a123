"""Identity-verification vendors, pure: which vendors Prizeflow knows (not payout rails: `ProviderType` is those) and
Sumsub's webhook digest, shared by the webhooks ingress and tests so the two readings of one delivery cannot drift.

Sumsub signs a webhook with `X-Payload-Digest`, the lowercase hex HMAC of the raw body under the webhook's secret
key, and names the algorithm in `X-Payload-Digest-Alg`: `HMAC_SHA256_HEX` (the documented default) or
`HMAC_SHA512_HEX` (the dashboard's other choice). Anything else is refused. The digest carries no timestamp, so a
captured delivery can be replayed: receivers deduplicate and, above all, never believe a webhook's review answer —
payouts fetches the applicant's status from the vendor.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final

from prizeflow_contracts.webhook_signatures import SignatureFailure, SignatureRefused


class VerificationVendor(StrEnum):
    """An identity-verification vendor (KYC): its events' `provider` and how its webhooks are read."""

    SUMSUB = "sumsub"


SUMSUB_DIGEST_HEADER: Final = "x-payload-digest"
SUMSUB_DIGEST_ALG_HEADER: Final = "x-payload-digest-alg"
SUMSUB_DEFAULT_ALG: Final = "HMAC_SHA256_HEX"
SUMSUB_DIGEST_ALGS: Final[Mapping[str, str]] = {"HMAC_SHA256_HEX": "sha256", "HMAC_SHA512_HEX": "sha512"}
_HEX_LENGTH: Final[Mapping[str, int]] = {"HMAC_SHA256_HEX": 64, "HMAC_SHA512_HEX": 128}


def sumsub_digest(secret: str, body: bytes, alg: str = SUMSUB_DEFAULT_ALG) -> str:
    """The `X-Payload-Digest` Sumsub sends for `body` under `alg` (a key of SUMSUB_DIGEST_ALGS)."""
    return hmac.new(secret.encode(), body, SUMSUB_DIGEST_ALGS[alg]).hexdigest()


def verify_sumsub_digest(headers: Mapping[str, str], body: bytes, *, secrets: Iterable[str]) -> None:
    """Raises `SignatureRefused` unless `X-Payload-Digest` is the HMAC of `body` under one of `secrets` with the
    algorithm `X-Payload-Digest-Alg` names (SHA-256 when the header is absent). Constant time, every secret compared:
    a rotation holds two."""
    keys = [s for s in secrets if s]
    if not keys:
        raise SignatureRefused(SignatureFailure.MISMATCH, "no webhook secret configured")
    lowered = {k.lower(): v for k, v in headers.items()}
    given = (lowered.get(SUMSUB_DIGEST_HEADER) or "").strip()
    if not given:
        raise SignatureRefused(SignatureFailure.MISSING, "no X-Payload-Digest header")
    alg = (lowered.get(SUMSUB_DIGEST_ALG_HEADER) or SUMSUB_DEFAULT_ALG).strip()
    if alg not in SUMSUB_DIGEST_ALGS:
        raise SignatureRefused(
            SignatureFailure.MALFORMED, f"X-Payload-Digest-Alg is one of {', '.join(sorted(SUMSUB_DIGEST_ALGS))}"
        )
    if len(given) != _HEX_LENGTH[alg] or any(c not in "0123456789abcdef" for c in given):
        raise SignatureRefused(SignatureFailure.MALFORMED, f"X-Payload-Digest is {_HEX_LENGTH[alg]} lowercase hex")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(sumsub_digest(key, body, alg), given)
    if not matched:
        raise SignatureRefused(SignatureFailure.MISMATCH, "no digest matches a configured secret")


__all__ = [
    "SUMSUB_DEFAULT_ALG",
    "SUMSUB_DIGEST_ALGS",
    "SUMSUB_DIGEST_ALG_HEADER",
    "SUMSUB_DIGEST_HEADER",
    "VerificationVendor",
    "sumsub_digest",
    "verify_sumsub_digest",
]
