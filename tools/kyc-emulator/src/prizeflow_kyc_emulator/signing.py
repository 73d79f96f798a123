"""Sumsub's two signatures, kept independent of Prizeflow's own verifier and client on purpose (two
implementations checked against each other).

Requests: `X-App-Token`, `X-App-Access-Ts` (seconds since the epoch) and `X-App-Access-Sig`, the lowercase hex
HMAC-SHA256 under the app token's secret key of `<ts><METHOD><path with query><body>`.

Webhooks: `X-Payload-Digest`, the lowercase hex HMAC of the raw body under the webhook's secret key, and
`X-Payload-Digest-Alg` naming the algorithm (`HMAC_SHA256_HEX` by default; `HMAC_SHA512_HEX` when the webhook is set
to SHA512 in the dashboard; `HMAC_SHA1_HEX`, no longer in Sumsub's documentation, so tests can prove it refused).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

APP_TOKEN_HEADER: Final = "X-App-Token"  # noqa: S105 - a header name, not a credential
ACCESS_TS_HEADER: Final = "X-App-Access-Ts"
ACCESS_SIG_HEADER: Final = "X-App-Access-Sig"
DIGEST_HEADER: Final = "X-Payload-Digest"
DIGEST_ALG_HEADER: Final = "X-Payload-Digest-Alg"
DIGEST_ALGS: Final[Mapping[str, str]] = {
    "HMAC_SHA1_HEX": "sha1",
    "HMAC_SHA256_HEX": "sha256",
    "HMAC_SHA512_HEX": "sha512",
}


def request_signature(secret_key: str, ts: str, method: str, path_qs: str, body: bytes) -> str:
    """`X-App-Access-Sig` for one request: `path_qs` is the URI without the host, query included."""
    message = ts.encode() + method.upper().encode() + path_qs.encode() + body
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def payload_digest(secret_key: str, body: bytes, alg: str = "HMAC_SHA256_HEX") -> str:
    """`X-Payload-Digest` for a webhook body under `alg` (a key of DIGEST_ALGS)."""
    return hmac.new(secret_key.encode(), body, DIGEST_ALGS[alg]).hexdigest()


__all__ = [
    "ACCESS_SIG_HEADER",
    "ACCESS_TS_HEADER",
    "APP_TOKEN_HEADER",
    "DIGEST_ALGS",
    "DIGEST_ALG_HEADER",
    "DIGEST_HEADER",
    "payload_digest",
    "request_signature",
]
