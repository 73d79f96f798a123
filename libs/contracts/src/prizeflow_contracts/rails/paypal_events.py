"""The PayPal Payouts rail's callbacks, normalized. Pure: the verifying and fetching are the caller's
(`rails.paypal`); the wire rules are `paypal_wire`'s.

Callback: `{"id": "WH-…", "event_type": "PAYMENT.PAYOUTS-ITEM.SUCCEEDED", "create_time": "…", "resource_type":
"payouts_item", "resource": {<the item>}}`. Item events are published with the status the item carries, and only
when it is the state the event type claims (`EVENT_CLAIMS`); batch events (`PAYMENT.PAYOUTSBATCH.*`) and any
other type are stored and ignored (each item has its own event). What is stored of a body never holds the
receiver (an email, a phone) or the note (`kept_body`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.paypal_wire import (
    EVENT_CLAIMS,
    ITEM_EVENT_PREFIX,
    ITEM_ID_RE,
    REF_RE,
    SENDER_ID_RE,
    SENDER_ITEM_ID_MAX,
    failure_code,
    read_item,
)
from prizeflow_contracts.rails.reading import IgnoredReason, NormalizationError, Normalized

P = ProviderPayoutStatus

# --- callbacks -----------------------------------------------------------------------------------------------------

_KIND_RE: Final = re.compile(r"[A-Za-z0-9._:/\-]{1,128}")


@dataclass(frozen=True, slots=True)
class EventRef:
    event_id: str
    kind: str
    item_id: str | None  # the item an item event names (validated for a URL); None for any other type


def event_ref(doc: Mapping[str, Any]) -> EventRef:
    """The callback's id, type and item; NormalizationError for anything else."""
    event_id, kind = doc.get("id"), doc.get("event_type")
    if not isinstance(event_id, str) or not REF_RE.fullmatch(event_id):
        raise NormalizationError("id: 1-255 printable ASCII characters, no spaces")
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise NormalizationError("event_type: 1-128 characters of [A-Za-z0-9._:/-]")
    if not kind.startswith(ITEM_EVENT_PREFIX):
        return EventRef(event_id, kind, None)
    resource = doc.get("resource")
    item_id = resource.get("payout_item_id") if isinstance(resource, Mapping) else None
    if not isinstance(item_id, str) or not ITEM_ID_RE.fullmatch(item_id):
        raise NormalizationError("resource.payout_item_id: upper-case letters and digits")
    return EventRef(event_id, kind, item_id)


def normalize(doc: Mapping[str, Any], *, provider: ProviderType, digest: str, received_at: datetime) -> Normalized:
    """The event to publish for a verified (and, where configured, confirmed) callback, or ignored."""
    ref = event_ref(doc)
    if ref.item_id is None:  # a batch's event (its items have theirs) or a type this rail does not read
        return Normalized(ref.event_id, ref.kind, None, None, IgnoredReason.KIND_NOT_HANDLED)
    resource = doc["resource"]
    try:
        item = read_item(resource)
    except (KeyError, TypeError, ValueError) as err:
        raise NormalizationError(f"resource: not a PayPal payout item ({err})") from None
    key = item.sender_item_id
    if key is None or len(key) > SENDER_ITEM_ID_MAX or not SENDER_ID_RE.fullmatch(key):
        return Normalized(ref.event_id, ref.kind, None, None, IgnoredReason.NOT_A_PAYOUT)
    claim = EVENT_CLAIMS.get(ref.kind)
    status = item.status if claim is None or claim == item.state else None  # a body at odds with its type: nothing
    try:
        fee = None
        if status is P.PAID and item.fee is not None and item.fee_currency is not None:
            fee = Money(asset=item.fee_currency, amount=item.fee)
        event = ProviderEventReceived(
            provider=provider,
            provider_event_id=ref.event_id,
            provider_payout_ref=item.payout_item_id,
            idempotency_key=key,
            kind=ref.kind,
            received_at=received_at,
            verified=True,
            status=status,
            error_code=failure_code(item.state, item.error_name) if status is P.FAILED else None,
            fee=fee,
            payload_digest=digest,
        )
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        raise NormalizationError(f"{'.'.join(str(p) for p in first['loc']) or '<root>'}: {first['msg']}") from err
    return Normalized(ref.event_id, ref.kind, None, event)


# What is kept of a callback and of an item fetched back: ids, states, amounts. Never the receiver, the note, the
# email subject or message, PayPal's free text (`summary`, `errors.message`) or links.
KEPT_EVENT_FIELDS: Final = ("id", "event_type", "event_version", "create_time", "resource_type", "resource_version")
KEPT_ITEM_FIELDS: Final = (
    "payout_item_id",
    "transaction_id",
    "activity_id",
    "transaction_status",
    "payout_batch_id",
    "sender_batch_id",
    "payout_item_fee",
    "time_processed",
)
KEPT_SENT_FIELDS: Final = ("sender_item_id", "amount", "recipient_type", "recipient_wallet")
KEPT_BATCH_FIELDS: Final = ("payout_batch_id", "batch_status", "time_created", "time_completed", "amount", "fees")


def _pick(doc: Any, fields: Sequence[str]) -> dict[str, Any]:
    return {k: doc[k] for k in fields if k in doc} if isinstance(doc, Mapping) else {}


def redact_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item without personal data or free text (`KEPT_ITEM_FIELDS`, `KEPT_SENT_FIELDS`, `errors.name`)."""
    kept = _pick(item, KEPT_ITEM_FIELDS)
    if isinstance(item.get("payout_item"), Mapping):
        kept["payout_item"] = _pick(item["payout_item"], KEPT_SENT_FIELDS)
    if isinstance(item.get("errors"), Mapping):
        kept["errors"] = _pick(item["errors"], ("name",))
    return kept


def kept_body(doc: Mapping[str, Any]) -> bytes:
    """The callback body Prizeflow stores: what identifies the event, the item's ids, state and amounts."""
    kept = _pick(doc, KEPT_EVENT_FIELDS)
    resource = doc.get("resource")
    if isinstance(resource, Mapping) and "batch_header" in resource:
        header = resource["batch_header"]
        batch = _pick(header, KEPT_BATCH_FIELDS)
        sender = header.get("sender_batch_header") if isinstance(header, Mapping) else None
        batch["sender_batch_header"] = _pick(sender, ("sender_batch_id",))
        kept["resource"] = {"batch_header": batch}
    elif isinstance(resource, Mapping):
        kept["resource"] = redact_item(resource)
    return json.dumps(kept, separators=(",", ":"), sort_keys=True).encode()


__all__ = ["EventRef", "event_ref", "kept_body", "normalize", "redact_item"]
