"""ccxt's errors mapped to the stable `PayoutErrorCode`s, and whether the withdrawal may have been made.

Exchange error codes come first (one table per exchange: a whitelist refusal, a suspended network, a short balance
each have their own code there, while ccxt's classes lump them together), then ccxt's unified classes. A mutating
call (the withdrawal) that got no definitive answer (a timeout, a dropped connection, a 5xx, an internal error)
may have landed: `timeout_unknown_outcome`, and the rail never asks again. Only a known refusal did not land: a
rate limit, a refused connection, a refusal in the exchange's code table, and ccxt's refusal classes
(`InsufficientFunds`, `InvalidAddress`, `BadRequest`, `AuthenticationError`/`PermissionDenied`, and the checks ccxt
makes before sending: `ArgumentsRequired`, `NotSupported`). Any other error of the withdrawal, a plain
`ExchangeError` included (ccxt's answer to a code it does not know, 5xx or not), may have landed. Messages never
copy the exchange's text (it may echo the address) nor any credential.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]  # ccxt ships no type information

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode

log = logging.getLogger(__name__)
C = PayoutErrorCode

# The exchange's own error code (`{"code": -4035, ...}` in the answer ccxt quotes) -> our code.
EXCHANGE_CODES: Final[Mapping[str, Mapping[str, PayoutErrorCode]]] = {
    "binance": {
        "-4035": C.DESTINATION_BLOCKED,  # the address is not on the account's withdrawal whitelist
        "-4036": C.DESTINATION_BLOCKED,  # a new whitelist address is locked for some hours
        "-4034": C.DESTINATION_BLOCKED,  # address suspected of fraud
        "-4007": C.INVALID_DESTINATION,  # address validation failed
        "-4008": C.INVALID_DESTINATION,  # memo/tag validation failed
        "-4033": C.INVALID_DESTINATION,  # illegal address
        "-4018": C.UNSUPPORTED_ASSET,
        "-4019": C.PROVIDER_UNAVAILABLE,  # the asset/network is not open for withdrawal (suspended): later
        "-4021": C.INVALID_REQUEST,  # not a multiple of the network's withdrawal step
        "-4022": C.AMOUNT_BELOW_MINIMUM,
        "-4028": C.AMOUNT_BELOW_MINIMUM,  # not more than the fee
        "-4023": C.AMOUNT_ABOVE_MAXIMUM,  # over the 24-hour limit
        "-4024": C.INSUFFICIENT_PROVIDER_FUNDS,
        "-4025": C.INSUFFICIENT_PROVIDER_FUNDS,
        "-4026": C.INSUFFICIENT_PROVIDER_FUNDS,
        "-4015": C.COMPLIANCE_REJECTED,  # withdrawals limited on the account
        "-4044": C.COMPLIANCE_REJECTED,
        "-4014": C.PROVIDER_UNAVAILABLE,  # account security holds that pass by themselves
        "-4016": C.PROVIDER_UNAVAILABLE,
        "-4017": C.PROVIDER_UNAVAILABLE,
        "-4038": C.PROVIDER_UNAVAILABLE,
        "-4041": C.PROVIDER_UNAVAILABLE,
        "-2014": C.AUTHENTICATION_FAILED,
        "-2015": C.AUTHENTICATION_FAILED,
        "-1022": C.AUTHENTICATION_FAILED,  # signature refused: the secret is wrong
        "-1021": C.PROVIDER_UNAVAILABLE,  # our clock is off the exchange's: nothing was done
        "-1003": C.RATE_LIMITED,
        "-1001": C.TIMEOUT_UNKNOWN_OUTCOME,  # "internal error": it may have been processed
        "-1006": C.TIMEOUT_UNKNOWN_OUTCOME,  # "unexpected response from the backend: execution status unknown"
        "-1007": C.TIMEOUT_UNKNOWN_OUTCOME,  # "timeout waiting for the backend: execution status unknown"
        "-4027": C.TIMEOUT_UNKNOWN_OUTCOME,  # "failed to obtain tranId"
    },
}

_CODE_RE: Final = re.compile(r'"code"\s*:\s*"?(-?\d{1,8})"?')


@dataclass(frozen=True, slots=True)
class ExchangeErrors:
    """`ClassifiesErrors` of an exchange rail named `provider` on ccxt's `exchange`. A `timeout_unknown_outcome`
    is a withdrawal that may exist (`may_have_landed`): never asked again, reconciled."""

    exchange: str
    provider: str

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
        """The stable error of an exception raised by a ccxt call (`mutating`: the withdrawal itself)."""
        return _classify(error, exchange=self.exchange, mutating=mutating, provider=self.provider)


def _classify(err: BaseException, *, exchange: str, mutating: bool, provider: str) -> PayoutError:
    # `_code`'s third answer (may it have landed) is exactly `code is timeout_unknown_outcome` once a read's unknown
    # outcome is made `provider_unavailable` below: callers ask `may_have_landed(error)`.
    code, reason, _landed = _code(err, exchange=exchange, mutating=mutating)
    if code is C.AUTHENTICATION_FAILED:
        log.error(
            "%s refused our credentials (%s): check the provider's api_key/api_secret and permissions", exchange, reason
        )
    if code is C.TIMEOUT_UNKNOWN_OUTCOME and not mutating:
        code = C.PROVIDER_UNAVAILABLE
    return PayoutError.of(code, f"{exchange}: {reason}", provider=provider, provider_code=_provider_code(err, exchange))


def _exchange_code(err: BaseException) -> str | None:
    match = _CODE_RE.search(str(err))
    return match.group(1) if match else None


def _code(err: BaseException, *, exchange: str, mutating: bool) -> tuple[PayoutErrorCode, str, bool]:  # noqa: PLR0911, PLR0912 - a table
    raw = _exchange_code(err) if isinstance(err, ccxt_async.BaseError) else None
    table = EXCHANGE_CODES.get(exchange, {})
    if raw is not None and raw in table:
        code = table[raw]
        return code, f"refused with code {raw}", code is C.TIMEOUT_UNKNOWN_OUTCOME
    unknown = C.TIMEOUT_UNKNOWN_OUTCOME
    if isinstance(err, ccxt_async.RateLimitExceeded | ccxt_async.DDoSProtection):
        return C.RATE_LIMITED, "rate limited", False
    if isinstance(err, ccxt_async.RequestTimeout):
        return unknown, "no answer in time (the request may have landed)", True
    if isinstance(err, ccxt_async.InvalidNonce):
        return C.PROVIDER_UNAVAILABLE, "nonce or timestamp refused", False
    if isinstance(err, ccxt_async.NetworkError):  # ExchangeNotAvailable, OnMaintenance, ...
        if isinstance(err.__cause__, aiohttp.ClientConnectorError):
            return C.PROVIDER_UNAVAILABLE, "could not connect", False
        return unknown, f"no definitive answer ({type(err).__name__})", True
    if isinstance(err, ccxt_async.AuthenticationError):  # PermissionDenied, AccountSuspended too
        return C.AUTHENTICATION_FAILED, type(err).__name__, False
    if isinstance(err, ccxt_async.InsufficientFunds):
        return C.INSUFFICIENT_PROVIDER_FUNDS, "insufficient exchange balance", False
    if isinstance(err, ccxt_async.InvalidAddress | ccxt_async.ArgumentsRequired):
        return C.INVALID_DESTINATION, type(err).__name__, False
    if isinstance(err, ccxt_async.BadSymbol):
        return C.UNSUPPORTED_ASSET, "unknown currency", False
    if isinstance(err, ccxt_async.NotSupported):
        return C.UNSUPPORTED_OPERATION, "not supported by the exchange", False
    if isinstance(err, ccxt_async.OperationFailed):
        return unknown, "operation failed at the exchange (it may have landed)", True
    if isinstance(err, ccxt_async.ExchangeError):
        if isinstance(err.__cause__, aiohttp.ClientError):  # the answer broke off mid-way
            return unknown, "connection lost reading the answer", True
        if isinstance(err, ccxt_async.BadRequest):
            return C.INVALID_REQUEST, f"refused ({type(err).__name__}{' ' + raw if raw else ''})", False
        # ccxt raises a plain ExchangeError (or another subclass) for any code it does not recognise, whatever the
        # HTTP status: Binance documents its 5xx as "execution status unknown". Not a known refusal: it may exist.
        return unknown, f"unrecognised error ({type(err).__name__}{' ' + raw if raw else ''}): it may have landed", True
    return unknown, f"unexpected {type(err).__name__} (outcome unknown)", True


def _provider_code(err: BaseException, exchange: str) -> str:
    raw = _exchange_code(err) if isinstance(err, ccxt_async.BaseError) else None
    return (f"{exchange}:{raw}" if raw else f"ccxt:{type(err).__name__}")[:255]


__all__ = ["EXCHANGE_CODES", "ExchangeErrors"]
