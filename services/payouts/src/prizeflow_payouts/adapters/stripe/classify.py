"""Stripe's errors and payout failure codes mapped to the stable `PayoutErrorCode`s (one table each).

Retryable: rate limits, connection problems, Stripe's 5xx and a concurrent use of an idempotency key. A mutating
call that may have landed (a timeout or a dropped connection after the request was sent, a 5xx, a 409 on its key,
the key refused for another body: an earlier attempt's request landed under it) is `timeout_unknown_outcome`: the
worker syncs with the same key first and never creates a second transfer.
Terminal: the destination account, the amount, the currency, and our own credentials (logged
loudly: an operator must fix the configuration). Messages never carry the API key nor the destination account.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp

import stripe
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode

log = logging.getLogger(__name__)
C = PayoutErrorCode

# `error.code` of a 400/404 (InvalidRequestError) -> our code.
REQUEST_CODES: Final[Mapping[str, PayoutErrorCode]] = {
    "account_invalid": C.INVALID_DESTINATION,
    "no_account": C.DESTINATION_NOT_FOUND,
    "account_closed": C.ACCOUNT_CLOSED,
    "balance_insufficient": C.INSUFFICIENT_PROVIDER_FUNDS,
    "insufficient_funds": C.INSUFFICIENT_PROVIDER_FUNDS,
    "amount_too_small": C.AMOUNT_BELOW_MINIMUM,
    "amount_too_large": C.AMOUNT_ABOVE_MAXIMUM,
    "insufficient_capabilities_for_transfer": C.DESTINATION_BLOCKED,
    "transfers_not_allowed": C.DESTINATION_BLOCKED,
    "payouts_not_allowed": C.DESTINATION_BLOCKED,
    "account_country_invalid_address": C.COMPLIANCE_REJECTED,
    "invalid_currency": C.UNSUPPORTED_ASSET,
    "currency_not_supported": C.UNSUPPORTED_ASSET,
    "platform_api_key_expired": C.AUTHENTICATION_FAILED,
    "api_key_expired": C.AUTHENTICATION_FAILED,
    "secret_key_required": C.AUTHENTICATION_FAILED,
    "rate_limit": C.RATE_LIMITED,
    "lock_timeout": C.PROVIDER_UNAVAILABLE,
    "idempotency_key_in_use": C.TIMEOUT_UNKNOWN_OUTCOME,
}

# A request error about this parameter, whatever its code.
REQUEST_PARAMS: Final[Mapping[str, PayoutErrorCode]] = {
    "destination": C.INVALID_DESTINATION,
    "currency": C.UNSUPPORTED_ASSET,
    "amount": C.INVALID_REQUEST,
}

# `error.code` of a 402 (CardError: instant payouts to a debit card) -> our code.
CARD_CODES: Final[Mapping[str, PayoutErrorCode]] = {
    "card_declined": C.DESTINATION_BLOCKED,
    "expired_card": C.INVALID_DESTINATION,
    "incorrect_number": C.INVALID_DESTINATION,
    "invalid_number": C.INVALID_DESTINATION,
    "processing_error": C.TX_FAILED,
}

# A failed payout's `failure_code` (https://docs.stripe.com/api/payouts/failures) -> our code. Always terminal
# for that payout: the same payout never succeeds by asking again (a new attempt would be a new payout).
PAYOUT_FAILURE_CODES: Final[Mapping[str, PayoutErrorCode]] = {
    "account_closed": C.ACCOUNT_CLOSED,
    "account_frozen": C.DESTINATION_BLOCKED,
    "bank_account_restricted": C.DESTINATION_BLOCKED,
    "bank_ownership_changed": C.INVALID_DESTINATION,
    "could_not_process": C.TX_FAILED,
    "debit_not_authorized": C.DESTINATION_BLOCKED,
    "declined": C.DESTINATION_BLOCKED,
    "incorrect_account_holder_address": C.INVALID_DESTINATION,
    "incorrect_account_holder_name": C.INVALID_DESTINATION,
    "incorrect_account_holder_tax_id": C.INVALID_DESTINATION,
    "insufficient_funds": C.INSUFFICIENT_PROVIDER_FUNDS,
    "invalid_account_number": C.INVALID_DESTINATION,
    "invalid_currency": C.UNSUPPORTED_ASSET,
    "no_account": C.DESTINATION_NOT_FOUND,
    "unsupported_card": C.INVALID_DESTINATION,
}

_SERVER_ERROR: Final = 500
_CONFLICT: Final = 409
_NOT_FOUND: Final = 404
# Connection failures that prove the request never left: nothing can have landed.
_NOT_SENT: Final = (aiohttp.ClientConnectorError,)


@dataclass(frozen=True, slots=True)
class StripeErrors:
    """`ClassifiesErrors` of a Stripe rail named `provider`."""

    provider: str

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
        """The stable error for what a Stripe call raised (`mutating`: a POST that may move money)."""
        if not isinstance(error, stripe.StripeError):
            code = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
            return PayoutError.of(code, f"stripe: unexpected {type(error).__name__}", provider=self.provider)
        return _classify(error, mutating=mutating, provider=self.provider)


def _classify(err: stripe.StripeError, *, mutating: bool, provider: str) -> PayoutError:
    code, reason = _code(err, mutating=mutating)
    if code is C.AUTHENTICATION_FAILED:
        # Loud: every payout fails until an operator fixes the key or its permissions. Never the key itself.
        log.error("stripe refused our credentials (%s): check the provider's api_key and its permissions", reason)
    status = err.http_status
    message = f"stripe: {reason}" + (f" (HTTP {status})" if status else "")
    return PayoutError.of(code, message, provider=provider, provider_code=_provider_code(err))


def _code(err: stripe.StripeError, *, mutating: bool) -> tuple[PayoutErrorCode, str]:  # noqa: PLR0911 - a table
    unknown = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
    if isinstance(err, stripe.RateLimitError):
        return C.RATE_LIMITED, "rate limited"
    if isinstance(err, stripe.APIConnectionError):
        if isinstance(err.__cause__, _NOT_SENT):
            return C.PROVIDER_UNAVAILABLE, "could not connect"
        return unknown, "no answer (the request may have landed)" if mutating else "no answer"
    if isinstance(err, stripe.AuthenticationError | stripe.PermissionError):
        return C.AUTHENTICATION_FAILED, "authentication refused" if isinstance(
            err, stripe.AuthenticationError
        ) else "permission denied"
    if isinstance(err, stripe.IdempotencyError):
        # Our key (one per payout) refused for another body: an earlier attempt's request landed under it before a
        # part of the body changed (the mode, the currency from the options). A transfer may exist: a final failure
        # would give the reservation back while Stripe pays it. Its sync reads it.
        if mutating:
            return C.TIMEOUT_UNKNOWN_OUTCOME, "idempotency key reused for a different request (an earlier one landed)"
        return C.DUPLICATE_REQUEST, "idempotency key reused for a different request"
    if isinstance(err, stripe.CardError):
        return CARD_CODES.get(err.code or "", C.DESTINATION_BLOCKED), f"card error {err.code or 'unknown'}"
    if isinstance(err, stripe.InvalidRequestError):
        return _request_code(err)
    status = err.http_status or 0
    if status == _CONFLICT:
        return C.TIMEOUT_UNKNOWN_OUTCOME, "a request with this idempotency key is in progress"
    if status >= _SERVER_ERROR:
        return unknown, f"server error {status}"
    return unknown, f"unexpected {type(err).__name__}"


def _request_code(err: stripe.InvalidRequestError) -> tuple[PayoutErrorCode, str]:
    code = err.code or ""
    if code in REQUEST_CODES:
        return REQUEST_CODES[code], f"request refused: {code}"
    param = (err.param or "").split("[")[0]
    if code == "resource_missing" and param == "destination":
        return C.DESTINATION_NOT_FOUND, "request refused: resource_missing (destination)"
    if param in REQUEST_PARAMS:
        return REQUEST_PARAMS[param], f"request refused: {code or 'invalid'} ({param})"
    return C.INVALID_REQUEST, f"request refused: {code or 'invalid request'}"


def _provider_code(err: stripe.StripeError) -> str | None:
    parts = [type(err).__name__]
    if err.code:
        parts.append(str(err.code))
    return ":".join(parts)[:255]


def is_missing(err: stripe.StripeError) -> bool:
    """Stripe definitely has no such object (a 404 `resource_missing`)."""
    return isinstance(err, stripe.InvalidRequestError) and (
        err.code == "resource_missing" or err.http_status == _NOT_FOUND
    )


def payout_failure(failure_code: str | None, provider: str) -> PayoutError:
    """The terminal error of a payout Stripe reports `failed` (`failure_code` kept for support)."""
    fc = failure_code or "unknown"
    code = PAYOUT_FAILURE_CODES.get(fc, C.TX_FAILED)
    return PayoutError.of(
        code, f"stripe: payout failed ({fc})", provider=provider, provider_code=f"payout:{fc}"[:255], retryable=False
    )


__all__ = ["CARD_CODES", "PAYOUT_FAILURE_CODES", "REQUEST_CODES", "StripeErrors", "is_missing", "payout_failure"]
