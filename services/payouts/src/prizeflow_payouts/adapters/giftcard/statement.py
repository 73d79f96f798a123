"""The gift-card rail's statement: the provider's orders (`GET /orders`, as Tremendous lists them), normalized.

An order is what the funding source pays: its card's value (`payment.subtotal`, the reward's `value`), the
provider's fee on it (`payment.fees`) and, once a card is cancelled, the value given back (`payment.refund`). So
one order is up to three lines: PAYOUT (the card, to the recipient's email), FEE and REVERSAL, all carrying our
payout id (`external_id`) and the order id. Orders that never took money (awaiting approval, rejected, failed at
the provider) have no line. Every line of an order is dated at the order's `created_at`: the listing has no date
for a refund, and a window is selected by the order's creation. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_contracts.giftcard import minor_units, order_fees
from prizeflow_contracts.providers import StatementLine, StatementLineKind

K = StatementLineKind

CHARGED: Final = frozenset({"EXECUTED"})  # the order statuses whose card was paid for by the funding source


def instant(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as the provider writes `created_at`."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def lines_of(order: Mapping[str, Any], since: datetime, until: datetime) -> list[StatementLine]:
    """The statement lines of one order created in [since, until) (none for another, nor for one that took no
    money). `asset` is the order's currency code, which is our asset code on this rail."""
    occurred = parse_instant(str(order["created_at"]))
    status = str(order.get("status") or "")
    if not since <= occurred < until or status not in CHARGED:
        return []
    oid = str(order["id"])
    rewards = order.get("rewards") or []
    reward: Mapping[str, Any] = rewards[0] if rewards and isinstance(rewards[0], Mapping) else {}
    value = reward.get("value") or {}
    payment = order.get("payment") or {}
    asset = str(value.get("currency_code") or (payment.get("subtotal") or {}).get("currency_code") or "")
    delivery = (reward.get("delivery") or {}).get("status")
    email = (reward.get("recipient") or {}).get("email")
    external_id = order.get("external_id")
    common: dict[str, Any] = {
        "occurred_at": occurred,
        "asset": asset,
        "reference": str(external_id)[:256] if external_id else None,
        "provider_ref": oid,
    }
    lines = [
        StatementLine(
            line_id=oid,
            kind=K.PAYOUT,
            amount=minor_units(value.get("denomination", (payment.get("subtotal") or {}).get("value")), asset),
            destination=str(email)[:256] if email else None,
            raw_type=f"order:{status}/{delivery or '-'}"[:128],
            **common,
        )
    ]
    fees = order_fees(order, asset)
    if fees > 0:
        lines.append(StatementLine(line_id=f"{oid}:fee", kind=K.FEE, amount=fees, raw_type="order:fees", **common))
    refunded = minor_units((payment.get("refund") or {}).get("total") or 0, asset)
    if refunded > 0:
        lines.append(
            StatementLine(
                line_id=f"{oid}:refund",
                kind=K.REVERSAL,
                amount=refunded,
                destination=lines[0].destination,
                raw_type="order:refund",
                **common,
            )
        )
    return lines


__all__ = ["CHARGED", "instant", "lines_of", "minor_units", "parse_instant"]
