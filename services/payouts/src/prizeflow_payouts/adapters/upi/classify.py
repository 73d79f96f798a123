"""RazorpayX answers mapped to the stable `PayoutErrorCode`s (one table each).

Retryable: 429, 5xx, an outage's HTML 502, a connection lost. A mutating call that may have landed (no answer, a
5xx, an answer that cannot be read) is `timeout_unknown_outcome`: the worker syncs first, and a create under the
same `X-Payout-Idempotency` key answers the first payout again, so nothing is paid twice. Terminal: a 400 naming
the destination, the amount, a reused key with another body, and our own credentials (401, logged loudly).
`insufficient_funds` is retryable (a top-up releases it). Messages never carry a key nor a destination.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError

log = logging.getLogger(__name__)
C = PayoutErrorCode

# A 400's `error.field` -> our code (the first field that matches, by prefix).
FIELD_CODES: Final[Mapping[str, PayoutErrorCode]] = {
    "vpa": C.INVALID_DESTINATION,
    "bank_account": C.INVALID_DESTINATION,
    "fund_account_id": C.INVALID_DESTINATION,
    "amount": C.INVALID_REQUEST,
    "mode": C.INVALID_REQUEST,
    "X-Payout-Idempotency": C.DUPLICATE_REQUEST,
}
# A 400's `error.reason` -> our code, before its field.
REASON_CODES: Final[Mapping[str, PayoutErrorCode]] = {
    "insufficient_funds": C.INSUFFICIENT_PROVIDER_FUNDS,
}

_UNAUTHORIZED: Final = 401
_FORBIDDEN: Final = 403
_TOO_MANY: Final = 429
_SERVER_ERROR: Final = 500
_CLIENT_ERROR: Final = 400
# Transport failures that prove the request never left: nothing can have landed.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout)


class UpiRefusalError(Exception):
    """A non-2xx answer of RazorpayX: its status and its JSON body ({} when it was not JSON)."""

    def __init__(self, status: int, doc: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.doc = doc


@dataclass(frozen=True, slots=True)
class UpiErrors:
    """`ClassifiesErrors` of a upi rail named `provider`: a refusal (`UpiRefusalError`) by its reason and field, a
    transport failure by whether the request may have left."""

    provider: str

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
        if isinstance(error, UpiRefusalError):
            return classify_response(error.status, error.doc, mutating=mutating, provider=self.provider)
        if isinstance(error, httpx.HTTPError):
            return classify_transport(error, mutating=mutating, provider=self.provider)
        if isinstance(error, PayoutProviderError):
            return error.error
        code = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
        return PayoutError.of(code, f"upi: {type(error).__name__}", provider=self.provider)


def classify_transport(err: httpx.HTTPError, *, mutating: bool, provider: str) -> PayoutError:
    if isinstance(err, _NOT_SENT):
        return PayoutError.of(C.PROVIDER_UNAVAILABLE, "upi: could not connect", provider=provider)
    code = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
    reason = "no answer (the request may have landed)" if mutating else "no answer"
    return PayoutError.of(code, f"upi: {reason} ({type(err).__name__})", provider=provider)


def classify_response(status: int, doc: Any, *, mutating: bool, provider: str) -> PayoutError:
    """The stable error of a non-2xx answer (`doc`: its JSON, or {} when it was not JSON: an outage's HTML)."""
    error = doc.get("error") if isinstance(doc, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    reason, field = str(error.get("reason") or ""), str(error.get("field") or "")
    code = _code(status, reason, field, mutating=mutating)
    if code is C.AUTHENTICATION_FAILED:
        log.error(
            "upi: RazorpayX refused our credentials (HTTP %d): check the provider's key_id and key_secret", status
        )
    provider_code = ":".join(p for p in (str(status), str(error.get("code") or ""), reason) if p)[:255]
    what = reason or field or ("not JSON" if not error else "error")
    return PayoutError.of(code, f"upi: HTTP {status} ({what})", provider=provider, provider_code=provider_code)


def _code(status: int, reason: str, field: str, *, mutating: bool) -> PayoutErrorCode:  # noqa: PLR0911 - a table
    if status in (_UNAUTHORIZED, _FORBIDDEN):
        return C.AUTHENTICATION_FAILED
    if status == _TOO_MANY:
        return C.RATE_LIMITED
    if status >= _SERVER_ERROR:
        return C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
    if status >= _CLIENT_ERROR:
        if reason in REASON_CODES:
            return REASON_CODES[reason]
        for prefix, code in FIELD_CODES.items():
            if field.startswith(prefix):
                return code
        return C.INVALID_REQUEST
    return C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE


__all__ = ["FIELD_CODES", "REASON_CODES", "UpiErrors", "UpiRefusalError", "classify_response", "classify_transport"]
