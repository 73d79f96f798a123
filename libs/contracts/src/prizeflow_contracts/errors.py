"""Stable error codes shared across services.

Codes are part of the public contract: they appear in DLQ headers, problem details and metrics labels,
so they are never renamed, only added.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Why a consumer refused an event (DLQ header `x-refusal-reason`, metric label `reason`).
REFUSAL_REASONS: Final = frozenset(
    {
        "malformed_json",
        "invalid_envelope",
        "unknown_event_type",
        "invalid_payload",
        "unknown_aggregate",
        "illegal_transition",
        "conflicting_event",
        "handler_failed",
        # The same event id arrived with other bytes than those first processed under it.
        "event_id_reused",
        # Results place a player who never entered the round (and its terms require an entry).
        "placement_not_entered",
        # A wallet cannot cover an entry fee settlement accepted.
        "insufficient_funds",
        # An outcome of a second payout for a claim another payout settles (a double payment attempt).
        "duplicate_payout",
        # A provider event the webhook ingress did not verify (or that did not come from it).
        "unverified_provider_event",
        # A LedgerPosted that did not come from the ledger (rewards): what the ledger booked is only its to say.
        "unverified_ledger_posting",
        # A provider's payment event whose amount or currency is not the payment's it names (a top-up).
        "amount_mismatch",
        # An event whose own time is older than the consumer's dedup horizon: its inbox partition may be gone, so
        # applying it could apply it twice (ADR 0008). Never redrivable.
        "beyond_dedup_horizon",
        # An event whose own time is further ahead of the consumer's clock than the skew it allows (ADR 0008).
        "beyond_clock_skew",
    }
)


class EventRefusal(Exception):  # noqa: N818  (public name since the first release; a refusal is not a bug)
    """An event that can never be processed as it is: it goes to the DLQ at once with this reason.

    Transient failures are ordinary exceptions and are retried in place before they reach the DLQ.
    """

    def __init__(self, reason: str, detail: str, *, event_id: object = None) -> None:
        if reason not in REFUSAL_REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        # The event refused, when a batch was being applied: the consumer dead-letters that one and applies the
        # rest of its batch together, instead of looking for it (`refusing`, set by whoever handled the event).
        self.event_id = event_id


@contextmanager
def refusing(event_id: object) -> Iterator[None]:
    """Around handling one event of a batch: a refusal raised inside names that event (if it names none)."""
    try:
        yield
    except EventRefusal as refusal:
        if refusal.event_id is None:
            refusal.event_id = event_id
        raise


class PayoutErrorCode(StrEnum):
    """Why a payout attempt did not succeed, whatever the provider said (docs/architecture.md §5)."""

    # Retryable: the same payout may be attempted again after backoff, with the SAME idempotency key.
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    RATE_LIMITED = "rate_limited"
    TIMEOUT_UNKNOWN_OUTCOME = "timeout_unknown_outcome"
    INSUFFICIENT_PROVIDER_FUNDS = "insufficient_provider_funds"
    PAYOUT_NOT_FOUND = "payout_not_found"
    SIGNER_UNAVAILABLE = "signer_unavailable"
    TX_BAD_SEQ = "tx_bad_seq"
    TX_INSUFFICIENT_FEE = "tx_insufficient_fee"
    TX_EXPIRED = "tx_expired"
    INTERNAL_ERROR = "internal_error"
    # Terminal: retrying cannot help; the reservation is voided and a person may act.
    INVALID_DESTINATION = "invalid_destination"
    DESTINATION_BLOCKED = "destination_blocked"
    DESTINATION_NOT_FOUND = "destination_not_found"
    DESTINATION_NO_TRUSTLINE = "destination_no_trustline"
    AMOUNT_BELOW_MINIMUM = "amount_below_minimum"
    AMOUNT_ABOVE_MAXIMUM = "amount_above_maximum"
    UNSUPPORTED_ASSET = "unsupported_asset"
    UNSUPPORTED_OPERATION = "unsupported_operation"
    COMPLIANCE_REJECTED = "compliance_rejected"
    DUPLICATE_REQUEST = "duplicate_request"
    ACCOUNT_CLOSED = "account_closed"
    SIGNATURE_REFUSED = "signature_refused"
    AUTHENTICATION_FAILED = "authentication_failed"
    INVALID_REQUEST = "invalid_request"
    NOT_CANCELLABLE = "not_cancellable"
    TX_FAILED = "tx_failed"
    WEBHOOK_SIGNATURE_INVALID = "webhook_signature_invalid"
    NO_PROVIDER_ROUTE = "no_provider_route"


_R, _T = True, False
# The one table saying what a caller may do next. A test asserts every code has a row.
PAYOUT_ERROR_RETRYABLE: Final[Mapping[PayoutErrorCode, bool]] = {
    PayoutErrorCode.PROVIDER_UNAVAILABLE: _R,
    PayoutErrorCode.RATE_LIMITED: _R,
    # The provider may or may not have the payout: call sync_status with the same idempotency key FIRST.
    PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME: _R,
    PayoutErrorCode.INSUFFICIENT_PROVIDER_FUNDS: _R,
    # sync_status found nothing under this idempotency key: creating again with the same key is safe.
    PayoutErrorCode.PAYOUT_NOT_FOUND: _R,
    PayoutErrorCode.SIGNER_UNAVAILABLE: _R,
    # Stellar: resync the sequence number (compare-and-set) and rebuild.
    PayoutErrorCode.TX_BAD_SEQ: _R,
    PayoutErrorCode.TX_INSUFFICIENT_FEE: _R,
    # Stellar: the time bound passed without the envelope landing; only now may a new one be built.
    PayoutErrorCode.TX_EXPIRED: _R,
    PayoutErrorCode.INTERNAL_ERROR: _R,
    PayoutErrorCode.INVALID_DESTINATION: _T,
    PayoutErrorCode.DESTINATION_BLOCKED: _T,
    PayoutErrorCode.DESTINATION_NOT_FOUND: _T,
    PayoutErrorCode.DESTINATION_NO_TRUSTLINE: _T,
    PayoutErrorCode.AMOUNT_BELOW_MINIMUM: _T,
    PayoutErrorCode.AMOUNT_ABOVE_MAXIMUM: _T,
    PayoutErrorCode.UNSUPPORTED_ASSET: _T,
    PayoutErrorCode.UNSUPPORTED_OPERATION: _T,
    PayoutErrorCode.COMPLIANCE_REJECTED: _T,
    # The key was already used for a different request: sync the original, never resubmit.
    PayoutErrorCode.DUPLICATE_REQUEST: _T,
    PayoutErrorCode.ACCOUNT_CLOSED: _T,
    PayoutErrorCode.SIGNATURE_REFUSED: _T,
    # Credentials or configuration are wrong: an operator must fix them before anything is retried.
    PayoutErrorCode.AUTHENTICATION_FAILED: _T,
    PayoutErrorCode.INVALID_REQUEST: _T,
    PayoutErrorCode.NOT_CANCELLABLE: _T,
    PayoutErrorCode.TX_FAILED: _T,
    PayoutErrorCode.WEBHOOK_SIGNATURE_INVALID: _T,
    # No configured provider pays this asset to this kind of destination.
    PayoutErrorCode.NO_PROVIDER_ROUTE: _T,
}


def is_retryable(code: PayoutErrorCode | str) -> bool:
    """Whether a payout that failed with `code` may be attempted again (with the same idempotency key)."""
    try:
        return PAYOUT_ERROR_RETRYABLE[PayoutErrorCode(code)]
    except ValueError:
        raise ValueError(f"unknown payout error code {code!r}") from None


class PayoutError(BaseModel):
    """A provider failure mapped to a stable code. `retryable` defaults from the table and may only be
    narrowed (a retryable code marked not retryable, e.g. when attempts are exhausted), never widened."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: PayoutErrorCode
    message: Annotated[str, Field(min_length=1, max_length=2000)]
    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = None
    retryable: bool = Field(description="Whether the payout may be attempted again (same idempotency key)")
    provider_code: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        default=None, description="The provider's own error code, kept for support; never branch on it"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_retryable(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("retryable") is None and "code" in data:
            try:
                return {**data, "retryable": is_retryable(data["code"])}
            except ValueError:
                return data
        return data

    @classmethod
    def of(
        cls,
        code: PayoutErrorCode,
        message: str,
        *,
        provider: str | None = None,
        provider_code: str | None = None,
        retryable: bool | None = None,
    ) -> PayoutError:
        """Build an error whose `retryable` comes from the code table unless narrowed explicitly."""
        return cls(
            code=code,
            message=message,
            provider=provider,
            provider_code=provider_code,
            retryable=is_retryable(code) if retryable is None else retryable,
        )

    @model_validator(mode="after")
    def _terminal_stays_terminal(self) -> PayoutError:
        if self.retryable and not is_retryable(self.code):
            raise ValueError(f"payout error code {self.code.value} is terminal and cannot be retryable")
        return self


class PayoutProviderError(Exception):
    """Raised by a `RewardPayoutProvider` when it has no definitive answer about a payout.

    `timeout_unknown_outcome` means the payout may exist: sync with the same idempotency key, never create
    a second one.
    """

    def __init__(self, error: PayoutError) -> None:
        super().__init__(f"{error.code.value}: {error.message}")
        self.error = error

    @classmethod
    def of(
        cls,
        code: PayoutErrorCode,
        message: str,
        *,
        provider: str | None = None,
        provider_code: str | None = None,
    ) -> PayoutProviderError:
        return cls(PayoutError.of(code, message, provider=provider, provider_code=provider_code))

    @property
    def code(self) -> PayoutErrorCode:
        return self.error.code

    @property
    def retryable(self) -> bool:
        return self.error.retryable


__all__ = [
    "PAYOUT_ERROR_RETRYABLE",
    "REFUSAL_REASONS",
    "EventRefusal",
    "PayoutError",
    "PayoutErrorCode",
    "PayoutProviderError",
    "is_retryable",
    "refusing",
]
