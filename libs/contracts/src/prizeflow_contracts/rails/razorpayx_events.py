"""RazorpayX (`payout.*`) callbacks of the upi rail, normalized. Pure: the verifying is the caller's.

    {"entity": "event", "account_id": "acc_…", "event": "payout.processed", "contains": ["payout"],
     "payload": {"payout": {"entity": {<the payout as it was when it happened>}}}, "created_at": 1700000000}

The event's id is not in the body: RazorpayX sends it as `X-Razorpay-Event-Id` (the same on every delivery of one
event), which is the dedup key. The status published is the payout's own in the body, read by the same code as the
rail's `parse_webhook` (prizeflow_contracts.upi.read_payout_event); a body whose kind and status disagree says
nothing. A `processed` payout carries what RazorpayX charged for it (`fees`, GST included), published as the event's
fee: payouts records it as its status would (prizeflow_contracts.upi.payout_fees). Only payouts Prizeflow made
(`reference_id` a payout id) are published; any other is stored and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.ids import PROVIDER_REF_PATTERN
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.rails.reading import IgnoredReason, NormalizationError, Normalized
from prizeflow_contracts.upi import ASSET, read_payout_event

_REF_RE: Final = re.compile(PROVIDER_REF_PATTERN)
PAYOUT_ID_PREFIX: Final = "po-"  # what payouts' ids start with (prizeflow_payouts.application.payout_requests)


def event_id_of(header: str | None) -> str:
    """The event's id from `X-Razorpay-Event-Id`; NormalizationError when it is missing or malformed."""
    if header is None or not _REF_RE.fullmatch(header):
        raise NormalizationError("X-Razorpay-Event-Id: 1-255 printable ASCII characters, no spaces")
    return header


def normalize(
    doc: Mapping[str, Any], event_id: str, *, provider: ProviderType, digest: str, received_at: datetime
) -> Normalized:
    """The event to publish for a verified `payout.*` delivery, or ignored (a kind or a payout not ours)."""
    kind = doc.get("event")
    if not isinstance(kind, str) or not kind.startswith("payout."):
        label = kind if isinstance(kind, str) and re.fullmatch(r"[A-Za-z0-9._:/\-]{1,128}", kind) else "unknown"
        return Normalized(event_id, label, None, None, IgnoredReason.KIND_NOT_HANDLED)
    try:
        ev = read_payout_event(doc)
    except (KeyError, TypeError, ValueError) as err:
        raise NormalizationError(f"not a RazorpayX payout event ({type(err).__name__})") from None
    if ev.reference_id is None or not ev.reference_id.startswith(PAYOUT_ID_PREFIX):
        return Normalized(event_id, ev.kind, None, None, IgnoredReason.NOT_A_PAYOUT)
    try:
        event = ProviderEventReceived(
            provider=provider,
            provider_event_id=event_id,
            provider_payout_ref=ev.payout_ref,
            idempotency_key=ev.idempotency_key,
            kind=ev.kind,
            received_at=received_at,
            verified=True,
            status=ev.status,
            error_code=ev.error_code,
            fee=Money(asset=ASSET, amount=ev.fees) if ev.fees is not None else None,
            payload_digest=digest,
        )
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        raise NormalizationError(f"{'.'.join(str(p) for p in first['loc']) or '<root>'}: {first['msg']}") from err
    return Normalized(event_id, ev.kind, None, event)


__all__ = ["event_id_of", "normalize"]
