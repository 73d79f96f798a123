"""The gift-card API's refusals mapped to the stable `PayoutErrorCode`s (one table).

Tremendous answers errors as `{"errors": {"message": ..., "payload": {<field path>: [messages]}}}`; the field
path decides (the message only tells a minimum from a maximum and insufficient funds from a bad funding source).
Retryable: 429, 5xx, connection problems, insufficient funds (an operator tops the balance up). A mutating call
that may have landed (a 5xx or a lost answer after the request was sent) is `timeout_unknown_outcome`: the worker
syncs by our external id first, never orders a second card. Terminal: the recipient, the amount, the product,
an external id reused for another order, our own credentials (logged loudly). Messages never carry the API key,
the recipient's address nor the provider's own text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode

log = logging.getLogger(__name__)
C = PayoutErrorCode

# The first field path of a 400/422 payload -> our code (checked longest prefix first).
FIELD_CODES: Final[Mapping[str, PayoutErrorCode]] = {
    "reward.recipient.email": C.INVALID_DESTINATION,
    "reward.recipient": C.INVALID_DESTINATION,
    "reward.value.currency_code": C.UNSUPPORTED_ASSET,
    "reward.products": C.UNSUPPORTED_ASSET,
    "reward.value.denomination": C.INVALID_REQUEST,  # refined by the message: below min / above max
    "payment.funding_source_id": C.INVALID_REQUEST,  # refined by the message: insufficient funds
    "external_id": C.INVALID_REQUEST,
}
STATUS_CODES: Final[Mapping[int, PayoutErrorCode]] = {
    401: C.AUTHENTICATION_FAILED,
    403: C.AUTHENTICATION_FAILED,
    409: C.DUPLICATE_REQUEST,
    429: C.RATE_LIMITED,
}
# Connection failures that prove the request never left: nothing can have landed.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout)


class HttpRefusalError(Exception):
    """A non-2xx answer of the vendor's API: its status and its (redacted) JSON body."""

    def __init__(self, status: int, doc: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.doc = doc


@dataclass(frozen=True, slots=True)
class GiftCardErrors:
    """`ClassifiesErrors` of a gift-card rail named `provider`: a non-2xx answer (`HttpRefusalError`), or a transport
    failure (an `httpx.HTTPError`)."""

    provider: str
    rail: str = "gift_card"

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
        if isinstance(error, HttpRefusalError):
            return _answered(error.status, error.doc, mutating=mutating, provider=self.provider, rail=self.rail)
        return _unanswered(error, mutating=mutating, provider=self.provider, rail=self.rail)


def _answered(status: int, doc: Any, *, mutating: bool, provider: str, rail: str) -> PayoutError:
    """The stable error for a non-2xx answer."""
    unknown = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
    path, messages = _first_field(doc)
    if status >= 500:
        code, reason = unknown, f"server error {status}"
    elif status in STATUS_CODES:
        code, reason = STATUS_CODES[status], f"HTTP {status}"
    elif status in (400, 422) and path is not None:
        code, reason = _field_code(path, messages), f"request refused ({path})"
    else:
        code, reason = C.INVALID_REQUEST, f"request refused (HTTP {status})"
    if code is C.AUTHENTICATION_FAILED:
        # Loud: every payout fails until an operator fixes the key or its permissions. Never the key itself.
        log.error("%s: the provider refused our credentials (HTTP %d): check the api_key secret", rail, status)
    return PayoutError.of(
        code, f"{rail}: {reason}", provider=provider, provider_code=f"http:{status}:{path or '-'}"[:255]
    )


def _unanswered(err: BaseException, *, mutating: bool, provider: str, rail: str) -> PayoutError:
    if isinstance(err, _NOT_SENT):
        code, reason = C.PROVIDER_UNAVAILABLE, "could not connect"
    elif mutating:
        code, reason = C.TIMEOUT_UNKNOWN_OUTCOME, "no answer (the order may have been placed)"
    else:
        code, reason = C.PROVIDER_UNAVAILABLE, "no answer"
    return PayoutError.of(code, f"{rail}: {reason} ({type(err).__name__})", provider=provider)


def _field_code(path: str, messages: str) -> PayoutErrorCode:
    text = messages.lower()
    if path.startswith("reward.value.denomination"):
        if "minimum" in text or "below" in text or "at least" in text:
            return C.AMOUNT_BELOW_MINIMUM
        if "maximum" in text or "above" in text or "at most" in text:
            return C.AMOUNT_ABOVE_MAXIMUM
    if path.startswith("payment") and "insufficient" in text:
        return C.INSUFFICIENT_PROVIDER_FUNDS
    for prefix in sorted(FIELD_CODES, key=len, reverse=True):
        if path.startswith(prefix):
            return FIELD_CODES[prefix]
    return C.INVALID_REQUEST


def _first_field(doc: Any) -> tuple[str | None, str]:
    """The first field path of the error payload and its messages joined (for the min/max/insufficient words)."""
    errors = doc.get("errors") if isinstance(doc, Mapping) else None
    payload = errors.get("payload") if isinstance(errors, Mapping) else None
    parts: list[str] = []
    node: Any = payload
    while isinstance(node, Mapping) and node:
        key = next(iter(node))
        parts.append(str(key)[:40])
        node = node[key]
    if not parts:
        return None, str(errors.get("message", "")) if isinstance(errors, Mapping) else ""
    messages = " ".join(str(m) for m in node) if isinstance(node, list) else str(node)
    return ".".join(parts), messages


__all__ = ["FIELD_CODES", "STATUS_CODES", "GiftCardErrors", "HttpRefusalError"]
