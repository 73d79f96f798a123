"""Binance's request signing, verified as the exchange does: `X-MBX-APIKEY` names the key, `signature` is the
hex HMAC-SHA256 of the request's total parameters (query string, then body) before `&signature=`, and
`timestamp` lies within `recvWindow` (5000 ms unless the request gives its own)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from prizeflow_exchange_emulator.state import ExchangeError

_AHEAD_MS = 1000
_MAX_RECV_WINDOW_MS = 60_000


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def verify(
    *, api_key: str, secret: str, header_key: str | None, query: str, body: str, now_ms: int, recv_window_ms: int
) -> dict[str, str]:
    """The request's parameters once its key, signature and timestamp pass; else Binance's error."""
    if not header_key:
        raise ExchangeError(401, -2014, "API-key format invalid.")
    if not hmac.compare_digest(header_key.encode(), api_key.encode()):
        raise ExchangeError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    total = query + body if not (query and body) else f"{query}&{body}"
    payload, sep, signature = total.rpartition("&signature=")
    if not sep or not signature or "&" in signature:
        raise ExchangeError(400, -1022, "Signature for this request is not valid.")
    if not hmac.compare_digest(sign(secret, payload).encode(), signature.lower().encode()):
        raise ExchangeError(400, -1022, "Signature for this request is not valid.")
    params = dict(parse_qsl(payload, keep_blank_values=True))
    try:
        timestamp = int(params["timestamp"])
        window = min(int(params.get("recvWindow") or recv_window_ms), _MAX_RECV_WINDOW_MS)
    except (KeyError, ValueError):
        raise ExchangeError(
            400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        ) from None
    if timestamp > now_ms + _AHEAD_MS:
        raise ExchangeError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now_ms - timestamp > window:
        raise ExchangeError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    return params


__all__ = ["sign", "verify"]
