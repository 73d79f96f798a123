"""Gift-card provider callbacks (Tremendous-shaped), normalized. Pure: the fetching is the caller's.

A delivery names a resource only and carries no timestamp:

    {"event": "REWARDS.DELIVERY.SUCCEEDED", "uuid": "…", "created_utc": "…",
     "payload": {"resource": {"id": "<reward or order id>", "type": "rewards" | "orders"}, "meta": {}}}

so the ingress fetches the order back (a reward's through its `order_id`) and publishes the status the *order*
says, and only when it is what the event's kind claims (`prizeflow_contracts.giftcard.event_status`): a delivery
replayed or arriving late says nothing new. Only orders Prizeflow placed (`external_id` a payout id) are
published; any other order on the account is stored and ignored. A delivered card's event carries the order's fee
(`payment.fees`, prizeflow_contracts.giftcard.order_fees), as the rail's status records it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.giftcard import event_status, failure_code, order_fees, order_status
from prizeflow_contracts.ids import PROVIDER_REF_PATTERN
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.reading import IgnoredReason, NormalizationError, Normalized, event_identity

_REF_RE: Final = re.compile(PROVIDER_REF_PATTERN)
RESOURCE_TYPES: Final = ("orders", "rewards")
# A resource id goes into the provider's URL: letters, digits, `_` and `-` only (no `/`, `?`, `#`, `..`).
RESOURCE_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PAYOUT_ID_PREFIX: Final = "po-"  # what payouts' ids start with (prizeflow_payouts.application.payout_requests)


@dataclass(frozen=True, slots=True)
class GiftCardRef:
    event_id: str
    kind: str
    resource_id: str
    resource_type: str


def event_ref(doc: Mapping[str, Any]) -> GiftCardRef:
    """The event's id, kind and resource; NormalizationError for anything else."""
    event_id, kind = event_identity(doc, "uuid", "event")
    payload = doc.get("payload")
    resource = payload.get("resource") if isinstance(payload, Mapping) else None
    rid = resource.get("id") if isinstance(resource, Mapping) else None
    rtype = resource.get("type") if isinstance(resource, Mapping) else None
    if not isinstance(rid, str) or not RESOURCE_ID_RE.fullmatch(rid) or rtype not in RESOURCE_TYPES:
        raise NormalizationError("payload.resource: an id and a type (orders or rewards)")
    return GiftCardRef(event_id, kind, rid, str(rtype))


def normalize(
    ref: GiftCardRef, order: Mapping[str, Any], *, provider: ProviderType, digest: str, received_at: datetime
) -> Normalized:
    """The event for the order fetched back (`order`), or ignored when the order is not one of ours."""
    external_id, order_id = order.get("external_id"), order.get("id")
    if not isinstance(order_id, str) or not _REF_RE.fullmatch(order_id):
        raise NormalizationError("the fetched order has no id")
    if not isinstance(external_id, str) or not external_id.startswith(PAYOUT_ID_PREFIX):
        return Normalized(ref.event_id, ref.kind, None, None, IgnoredReason.NOT_A_PAYOUT)
    rewards = order.get("rewards") or []
    reward = rewards[0] if rewards and isinstance(rewards[0], Mapping) else {}
    delivery = reward.get("delivery")
    delivery = delivery if isinstance(delivery, Mapping) else {}
    raw_order = str(order.get("status") or "")
    status = event_status(ref.kind, order_status(raw_order, delivery.get("status")))
    fee = None
    if status is ProviderPayoutStatus.PAID:
        value = reward.get("value")
        currency = value.get("currency_code") if isinstance(value, Mapping) else None
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            raise NormalizationError("the fetched order's reward has no currency")
        try:
            fee = Money(asset=currency, amount=order_fees(order, currency))
        except ValueError as err:
            raise NormalizationError(f"the fetched order's fee: {err}") from None
    try:
        event = ProviderEventReceived(
            provider=provider,
            provider_event_id=ref.event_id,
            provider_payout_ref=order_id,
            kind=ref.kind,
            received_at=received_at,
            verified=True,
            status=status,
            error_code=failure_code(raw_order) if status is ProviderPayoutStatus.FAILED else None,
            fee=fee,
            payload_digest=digest,
        )
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        raise NormalizationError(f"{'.'.join(str(p) for p in first['loc']) or '<root>'}: {first['msg']}") from err
    return Normalized(ref.event_id, ref.kind, None, event)


__all__ = ["RESOURCE_ID_RE", "GiftCardRef", "event_ref", "normalize"]
