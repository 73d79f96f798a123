"""The Prizeflow webhook format (scheme `Prizeflow-Signature`): what the sandbox rail and any provider without
a format of its own send, already in Prizeflow's terms, so normalizing is validating.

    {"event_id": "sbx-evt-1", "kind": "payout.paid", "correlation_id": "c-42",     (correlation_id optional)
     "subject": "payout", "status": "paid", "provider_ref": "sbx-7", "idempotency_key": "claim-42:payout:1",
     "error_code": null}
    {"event_id": "sbx-evt-2", "kind": "checkout.completed", "subject": "payment", "status": "paid",
     "top_up_id": "tu-1", "session_ref": "cs-1", "payment_ref": "pi-1", "adjustment_ref": null,
     "amount": {"asset": "USD", "amount": 1000}}

`subject` "payout" → ProviderEventReceived, "payment" → PaymentEventReceived; any other subject is stored and
ignored. The README documents the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from prizeflow_contracts.envelope import CORRELATION_ID_PATTERN
from prizeflow_contracts.events.webhooks import PaymentEventReceived, ProviderEventReceived
from prizeflow_contracts.ids import is_identifier
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.rails.reading import IgnoredReason, NormalizationError, Normalized, event_identity

PAYOUT_FIELDS: Final = ("status", "idempotency_key", "error_code")
PAYMENT_FIELDS: Final = ("status", "top_up_id", "session_ref", "payment_ref", "adjustment_ref", "amount")


def normalize(doc: Mapping[str, Any], *, provider: ProviderType, digest: str, received_at: datetime) -> Normalized:
    event_id, kind = event_identity(doc, "event_id", "kind")
    correlation = doc.get("correlation_id")
    if correlation is not None and not is_identifier(correlation):
        raise NormalizationError(f"correlation_id must match {CORRELATION_ID_PATTERN}")
    subject = doc.get("subject")
    common = {
        "provider": provider,
        "provider_event_id": event_id,
        "kind": kind,
        "received_at": received_at,
        "verified": True,
        "payload_digest": digest,
    }
    try:
        if subject == "payout":
            fields = {k: doc[k] for k in PAYOUT_FIELDS if doc.get(k) is not None}
            event: ProviderEventReceived | PaymentEventReceived = ProviderEventReceived.model_validate(
                {**common, **fields, "provider_payout_ref": doc.get("provider_ref")}
            )
        elif subject == "payment":
            fields = {k: doc[k] for k in PAYMENT_FIELDS if doc.get(k) is not None}
            event = PaymentEventReceived.model_validate({**common, **fields})
        else:
            return Normalized(event_id, kind, correlation, None, IgnoredReason.KIND_NOT_HANDLED)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        raise NormalizationError(f"{'.'.join(str(p) for p in first['loc']) or '<root>'}: {first['msg']}") from err
    return Normalized(event_id, kind, correlation, event)


__all__ = ["PAYMENT_FIELDS", "PAYOUT_FIELDS", "normalize"]
