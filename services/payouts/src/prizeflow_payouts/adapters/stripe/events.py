"""Stripe events about our payouts, normalized (pure: the webhook ingress and `parse_webhook` share it).

Every object we create carries `metadata[payout_id]`, `metadata[idempotency_key]` and `metadata[prizeflow_mode]`,
so an event names its payout by our key whichever Stripe object it is about:

| event | mode `transfer` | mode `transfer_and_payout` |
|---|---|---|
| `transfer.created` / `transfer.updated` | paid | nothing new (the payout decides) |
| `transfer.reversed` (fully) | returned (the money is back on the platform) | nothing new (our own pull-back) |
| `transfer.reversed` (partly) | nothing new (an operator's matter) | nothing new |
| `payout.created` / `payout.updated` | - | pending / in_transit: pending; else its status |
| `payout.paid` | - | paid |
| `payout.failed` | - | failed with the `failure_code`'s code (after paid: a bank return) |
| `payout.canceled` | - | cancelled |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_contracts.errors import PayoutError
from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_payouts.adapters.stripe.classify import payout_failure
from prizeflow_payouts.adapters.stripe.options import StripeMode

P = ProviderPayoutStatus
MODE_KEY: Final = "prizeflow_mode"

PAYOUT_STATUSES: Final[Mapping[str, ProviderPayoutStatus]] = {
    "pending": P.PENDING,
    "in_transit": P.PENDING,
    "paid": P.PAID,
    "failed": P.FAILED,
    "canceled": P.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class StripePayoutEvent:
    """What a Stripe event says about one of our payouts. `status` None: nothing that moves it."""

    event_id: str
    kind: str
    object_id: str | None
    payout_id: str | None
    idempotency_key: str | None
    status: ProviderPayoutStatus | None
    error: PayoutError | None
    occurred_at: datetime | None


def normalize_event(doc: Mapping[str, Any], provider: str = "stripe") -> StripePayoutEvent:
    """Raises KeyError / TypeError / ValueError on something that is not a Stripe event."""
    if doc.get("object") != "event":
        raise ValueError("not a Stripe event object")
    kind = str(doc["type"])
    obj = doc["data"]["object"]
    if not isinstance(obj, Mapping):
        raise TypeError("data.object must be an object")
    meta = obj.get("metadata") or {}
    mode = meta.get(MODE_KEY)
    status, error = _status(kind, obj, mode, provider)
    created = doc.get("created")
    return StripePayoutEvent(
        event_id=str(doc["id"]),
        kind=kind,
        object_id=str(obj["id"]) if obj.get("id") else None,
        payout_id=meta.get("payout_id"),
        idempotency_key=meta.get("idempotency_key"),
        status=status,
        error=error,
        occurred_at=datetime.fromtimestamp(int(created), UTC) if created is not None else None,
    )


def _status(
    kind: str, obj: Mapping[str, Any], mode: str | None, provider: str
) -> tuple[ProviderPayoutStatus | None, PayoutError | None]:
    if kind.startswith("transfer."):
        return _transfer_status(kind, obj, mode), None
    if kind.startswith("payout.") and kind != "payout.reconciliation_completed":
        status = _PAYOUT_KINDS.get(kind) or PAYOUT_STATUSES.get(str(obj.get("status")))
        if status is P.FAILED:
            return status, payout_failure(obj.get("failure_code"), provider)
        return status, None
    return None, None


_PAYOUT_KINDS: Final[Mapping[str, ProviderPayoutStatus]] = {
    "payout.paid": P.PAID,
    "payout.failed": P.FAILED,
    "payout.canceled": P.CANCELLED,
}


def _transfer_status(kind: str, obj: Mapping[str, Any], mode: str | None) -> ProviderPayoutStatus | None:
    if mode != StripeMode.TRANSFER.value:
        return None  # transfer_and_payout: the connected account's payout decides
    if kind in ("transfer.created", "transfer.updated"):
        return P.RETURNED if fully_reversed(obj) else P.PAID
    if kind == "transfer.reversed":
        return P.RETURNED if fully_reversed(obj) else None
    return None


def fully_reversed(transfer: Mapping[str, Any]) -> bool:
    amount = int(transfer.get("amount") or 0)
    return bool(transfer.get("reversed")) or (amount > 0 and int(transfer.get("amount_reversed") or 0) >= amount)


__all__ = ["MODE_KEY", "PAYOUT_STATUSES", "StripePayoutEvent", "fully_reversed", "normalize_event"]
