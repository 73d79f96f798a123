"""Webhooks' timeline entries: a delivery's kind, outcome and what it was published as; its re-publication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prizeflow_runtime.timeline import EntryKind
from prizeflow_webhooks.application.ports import DeliveryTrail
from prizeflow_webhooks.application.timeline import delivery_entries

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def trail(**overrides: object) -> DeliveryTrail:
    values: dict[str, object] = {
        "id": 7, "provider": "stripe", "provider_event_id": "evt_1", "kind": "checkout.session.completed",
        "outcome": "published", "ignored_reason": None, "event_type": "prizeflow.webhooks.PaymentEventReceived.v1",
        "subject": "tu-1", "confirmed": True, "received_at": T0, "republished": 0, "last_republished_at": None,
    }  # fmt: skip
    values.update(overrides)
    return DeliveryTrail(**values)  # type: ignore[arg-type]


def test_a_published_delivery_and_its_republication() -> None:
    entries = delivery_entries(trail(republished=2, last_republished_at=T0 + timedelta(minutes=5)))
    assert [(e.kind, e.type, e.subject) for e in entries] == [
        (EntryKind.DELIVERY, "checkout.session.completed", "tu-1"),
        (EntryKind.DELIVERY, "delivery.republish", "tu-1"),
    ]
    assert entries[0].summary == (
        "delivery 7: stripe checkout.session.completed (event evt_1) published as PaymentEventReceived, "
        "confirmed with the provider"
    )
    assert entries[1].summary == "delivery 7: re-published (2 in all)"


def test_an_ignored_delivery_says_why() -> None:
    [entry] = delivery_entries(
        trail(outcome="ignored", ignored_reason="kind_not_handled", event_type=None, confirmed=False)
    )
    assert entry.summary == "delivery 7: stripe checkout.session.completed (event evt_1) ignored (kind_not_handled)"
