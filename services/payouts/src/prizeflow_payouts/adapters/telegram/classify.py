"""Bot API failures (as python-telegram-bot raises them) mapped to the stable payout error codes.

What matters for money is whether Telegram may have carried the call out: a refusal it answered (400, 401, 403,
404, 429) or a connection never made moved nothing; a timeout or a server error (5xx, a broken answer) may have.
The provider's own error text is never copied (it can echo parameters); only its tag is kept, for support.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import httpx

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from telegram import error as tg

C = PayoutErrorCode

# Telegram's error tags in a 400 answer, as python-telegram-bot leaves them (it drops "Bad Request: " and
# capitalizes: "Balance_too_low"); compared upper-cased.
BAD_REQUEST_CODES: Final[dict[str, PayoutErrorCode]] = {
    "BALANCE_TOO_LOW": C.INSUFFICIENT_PROVIDER_FUNDS,  # the bot's Star balance: top it up, then it retries
    "USER_ID_INVALID": C.DESTINATION_NOT_FOUND,
    "PEER_ID_INVALID": C.DESTINATION_NOT_FOUND,
    "USER_NOT_FOUND": C.DESTINATION_NOT_FOUND,
    "CHAT_NOT_FOUND": C.DESTINATION_NOT_FOUND,
    "STARGIFT_INVALID": C.UNSUPPORTED_OPERATION,  # the configured gift no longer exists: fix the providers file
    "STARGIFT_USAGE_LIMITED": C.UNSUPPORTED_OPERATION,  # a limited gift sold out
    "USER_IS_BOT": C.INVALID_DESTINATION,
}
_TAG_RE: Final = re.compile(r"[A-Z][A-Z0-9_]{2,63}")
_NOT_CONNECTED: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def tag(err: tg.TelegramError) -> str | None:
    """The upper-case error tag in Telegram's answer (BALANCE_TOO_LOW...), if any."""
    found = _TAG_RE.search(err.message.upper().replace(" ", "_"))
    return found.group(0) if found else None


@dataclass(frozen=True, slots=True)
class TelegramErrors:
    """`ClassifiesErrors` of a Telegram rail named `provider`. A `timeout_unknown_outcome` is one Telegram may
    have carried out (`may_have_landed`): settled from its transactions, never resent."""

    provider: str

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
        if not isinstance(error, tg.TelegramError):
            code = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
            return PayoutError.of(code, f"telegram: unexpected {type(error).__name__}", provider=self.provider)
        return _classify(error, mutating=mutating, provider=self.provider)


def _classify(err: tg.TelegramError, *, mutating: bool, provider: str) -> PayoutError:  # noqa: PLR0911 - one exit per failure class, read top to bottom
    def of(code: PayoutErrorCode, message: str, *, maybe: bool = False) -> PayoutError:
        del maybe  # said by the code: only `timeout_unknown_outcome` may have been carried out
        provider_code = tag(err) if isinstance(err, tg.BadRequest) else type(err).__name__
        return PayoutError.of(code, f"telegram: {message}", provider=provider, provider_code=provider_code)

    if isinstance(err, tg.RetryAfter):
        return of(C.RATE_LIMITED, "flood control (429): retry later")
    if isinstance(err, tg.InvalidToken):
        return of(C.AUTHENTICATION_FAILED, "the bot token was refused (401/404): fix the bot_token secret")
    if isinstance(err, tg.Forbidden):
        return of(C.DESTINATION_BLOCKED, "the user blocked the bot or cannot receive from it (403)")
    if isinstance(err, tg.TimedOut):
        if isinstance(err.__cause__, _NOT_CONNECTED):
            return of(C.PROVIDER_UNAVAILABLE, "no connection to the Bot API (nothing sent)")
        if mutating:
            return of(C.TIMEOUT_UNKNOWN_OUTCOME, "no answer in time: the call may have been carried out", maybe=True)
        return of(C.PROVIDER_UNAVAILABLE, "no answer in time")
    if isinstance(err, tg.BadRequest):
        code = BAD_REQUEST_CODES.get(tag(err) or "", C.INVALID_REQUEST)
        return of(code, f"request refused (400, {tag(err) or 'no tag'})")
    if isinstance(err, tg.NetworkError):
        if isinstance(err.__cause__, _NOT_CONNECTED):
            return of(C.PROVIDER_UNAVAILABLE, "no connection to the Bot API (nothing sent)")
        if mutating:
            return of(
                C.TIMEOUT_UNKNOWN_OUTCOME,
                "server error or broken answer: the call may have been carried out",
                maybe=True,
            )
        return of(C.PROVIDER_UNAVAILABLE, "server error or broken answer")
    if mutating:
        return of(C.TIMEOUT_UNKNOWN_OUTCOME, f"unexpected answer ({type(err).__name__})", maybe=True)
    return of(C.PROVIDER_UNAVAILABLE, f"unexpected answer ({type(err).__name__})")


__all__ = ["BAD_REQUEST_CODES", "TelegramErrors", "tag"]
