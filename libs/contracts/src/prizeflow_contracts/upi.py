"""The UPI / IMPS / NEFT rail's vocabulary (RazorpayX Payouts-shaped), pure: the `upi` payout rail and the webhook
ingress share it, so the two readings of one event cannot drift apart.

Destination: a `upi` destination's address is either a VPA, `handle@psp` (paid by UPI), or a bank account,
`<IFSC>/<account number>` (paid by IMPS or NEFT). `parse_upi_address` is the one strict reading of both.

Signature: `X-Razorpay-Signature: <hex HMAC-SHA256 of the raw body>` under the webhook secret, no timestamp: a
captured delivery can be replayed, so receivers deduplicate on `X-Razorpay-Event-Id` and a replay says nothing new.

Status: a payout is `queued`, `pending`, `processing`, `processed`, `reversed`, `failed`, `rejected` or
`cancelled`. `reversed` is money that came back: from `processing` it never reached the player (a failure); after
`processed` it is a bank return, which payouts turns into a `returned` payout (the rail `supports_returns`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_contracts.upi_address import (
    ACCOUNT_NUMBER_RE,
    IFSC_RE,
    VPA_RE,
    UpiAddress,
    UpiAddressKind,
    parse_upi_address,
)
from prizeflow_contracts.webhook_signatures import SignatureFailure, SignatureRefused

ASSET: Final = "INR"  # RazorpayX pays, and charges its fees, in rupees only
RAZORPAY_SIGNATURE_HEADER: Final = "x-razorpay-signature"
RAZORPAY_EVENT_ID_HEADER: Final = "x-razorpay-event-id"
# The payout's `notes` key carrying our idempotency key: every event about the payout then names it, even before
# its RazorpayX id was recorded (a payout queued at once).
NOTES_KEY: Final = "prizeflow_key"
P = ProviderPayoutStatus
C = PayoutErrorCode


def razorpay_signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the raw body under the webhook secret (`X-Razorpay-Signature`)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_razorpay_signature(headers: Mapping[str, str], body: bytes, *, secrets: Iterable[str]) -> None:
    """Raises `SignatureRefused` unless `X-Razorpay-Signature` is 64 hex characters matching one of `secrets`
    (constant time, every secret compared: a rotation holds two)."""
    keys = [s for s in secrets if s]
    if not keys:
        raise SignatureRefused(SignatureFailure.MISMATCH, "no webhook secret configured")
    raw = next((v for k, v in headers.items() if k.lower() == RAZORPAY_SIGNATURE_HEADER), None)
    if raw is None or not raw.strip():
        raise SignatureRefused(SignatureFailure.MISSING, "no X-Razorpay-Signature header")
    given = raw.strip().lower()
    if len(given) != 64 or any(c not in "0123456789abcdef" for c in given):
        raise SignatureRefused(SignatureFailure.MALFORMED, "the signature is 64 hex characters")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(razorpay_signature(key, body), given)
    if not matched:
        raise SignatureRefused(SignatureFailure.MISMATCH, "no signature matches a configured secret")


# A RazorpayX payout's status -> ours. `reversed` is a failure; on a paid payout payouts reads it as a return.
PAYOUT_STATUSES: Final[Mapping[str, ProviderPayoutStatus]] = {
    "queued": P.PENDING,
    "pending": P.PENDING,
    "processing": P.SUBMITTED,
    "processed": P.PAID,
    "reversed": P.FAILED,
    "failed": P.FAILED,
    "rejected": P.FAILED,
    "cancelled": P.CANCELLED,
}
# `payout.<event>` -> the status it reports (`payout.updated`: the payout's own status decides).
EVENT_STATUSES: Final[Mapping[str, str]] = {
    "payout.queued": "queued",
    "payout.pending": "pending",
    "payout.initiated": "processing",
    "payout.processed": "processed",
    "payout.reversed": "reversed",
    "payout.failed": "failed",
    "payout.rejected": "rejected",
}

# `status_details.reason` of a failed, rejected or reversed payout -> the stable code. Every one is terminal for
# that payout: RazorpayX answers its idempotency key with the first answer, so asking again cannot pay it.
FAILURE_REASONS: Final[Mapping[str, PayoutErrorCode]] = {
    "bank_account_closed": C.ACCOUNT_CLOSED,
    "bank_account_frozen": C.DESTINATION_BLOCKED,
    "bank_account_invalid": C.INVALID_DESTINATION,
    "beneficiary_vpa_invalid": C.INVALID_DESTINATION,
    "invalid_ifsc_code": C.INVALID_DESTINATION,
    "imps_not_allowed": C.DESTINATION_BLOCKED,
    "transaction_limit_exceeded": C.AMOUNT_ABOVE_MAXIMUM,
    "beneficiary_bank_rejected": C.DESTINATION_BLOCKED,
    "payout_rejected": C.COMPLIANCE_REJECTED,
    "insufficient_funds": C.TX_FAILED,
}


def payout_status(status: str) -> ProviderPayoutStatus | None:
    """Our status for a RazorpayX payout status; None for one this vocabulary lacks."""
    return PAYOUT_STATUSES.get(status)


def payout_fees(payout: Mapping[str, Any]) -> int | None:
    """What RazorpayX charged for a processed payout (`fees`, paise, its GST `tax` included), as its status, its
    `payout.processed` event and its statement all carry it; None before it is processed (nothing is charged
    yet). The rail's status and the webhook ingress both read it here, so a payout records the same fee whichever
    answer pays it. ValueError when `fees` is not a non-negative whole number of paise."""
    if payout.get("status") != "processed":
        return None
    raw = payout.get("fees")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError("fees must be a non-negative whole number of paise")
    return raw


def failure_code(status: str, reason: str | None) -> PayoutErrorCode:
    """Why a payout ended `failed`, `rejected` or `reversed`, as a stable (terminal) code."""
    if status == "rejected":
        return C.COMPLIANCE_REJECTED
    return FAILURE_REASONS.get(reason or "", C.TX_FAILED)


@dataclass(frozen=True, slots=True)
class PayoutEvent:
    """What a `payout.*` event says about one payout: RazorpayX's payout id, our reference (`reference_id`, the
    payout id we sent), the status it reports (None: a kind that moves nothing) and why it failed."""

    kind: str
    payout_ref: str
    reference_id: str | None
    idempotency_key: str | None  # ours, echoed from the payout's notes (NOTES_KEY)
    raw_status: str
    status: ProviderPayoutStatus | None
    error_code: PayoutErrorCode | None
    occurred_at: datetime | None
    fees: int | None = None  # paise charged, GST included (payout_fees): on a processed payout only


def read_payout_event(doc: Mapping[str, Any]) -> PayoutEvent:
    """A `payout.*` event body; raises KeyError / TypeError / ValueError on anything else. The status is the
    payout's own as the event carries it (`payout.updated` included), never the kind's claim alone."""
    if doc.get("entity") != "event":
        raise ValueError("not a RazorpayX event")
    kind = str(doc["event"])
    if not kind.startswith("payout."):
        raise ValueError("not a payout event")
    payout = doc["payload"]["payout"]["entity"]
    if not isinstance(payout, Mapping) or payout.get("entity") != "payout":
        raise TypeError("payload.payout.entity must be a payout")
    raw = str(payout["status"])
    status = payout_status(raw)
    claimed = EVENT_STATUSES.get(kind)
    if claimed is not None and claimed != raw:
        status = None  # the body and its kind disagree: it says nothing we may act on
    details = payout.get("status_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    created = doc.get("created_at")
    reference = payout.get("reference_id")
    notes = payout.get("notes")
    key = notes.get(NOTES_KEY) if isinstance(notes, Mapping) else None
    return PayoutEvent(
        kind=kind,
        payout_ref=str(payout["id"]),
        reference_id=str(reference) if reference else None,
        idempotency_key=str(key) if key else None,
        raw_status=raw,
        status=status,
        error_code=failure_code(raw, reason) if status is P.FAILED else None,
        occurred_at=datetime.fromtimestamp(int(created), UTC) if created is not None else None,
        fees=payout_fees(payout) if status is P.PAID else None,
    )


__all__ = [
    "ACCOUNT_NUMBER_RE",
    "ASSET",
    "EVENT_STATUSES",
    "FAILURE_REASONS",
    "IFSC_RE",
    "NOTES_KEY",
    "PAYOUT_STATUSES",
    "RAZORPAY_EVENT_ID_HEADER",
    "RAZORPAY_SIGNATURE_HEADER",
    "VPA_RE",
    "PayoutEvent",
    "UpiAddress",
    "UpiAddressKind",
    "failure_code",
    "parse_upi_address",
    "payout_fees",
    "payout_status",
    "razorpay_signature",
    "read_payout_event",
    "verify_razorpay_signature",
]
