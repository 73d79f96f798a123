"""In-memory ports of the webhooks service, and builders of signed provider callbacks, for its unit tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry

from prizeflow_contracts.envelope import StagedEvent
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.webhook_signatures import signature_header
from prizeflow_webhooks.application.metrics import WebhooksMetrics
from prizeflow_webhooks.application.ports import NewDelivery, ProviderUnavailableError, StoredDelivery
from prizeflow_webhooks.application.receive import ReceiveWebhook
from prizeflow_webhooks.domain.deliveries import IngressProvider, Scheme

NOW = 1_750_000_000.0
SANDBOX_SECRET = "sandbox-secret-0123456789"
STRIPE_SECRET = "whsec_test_0123456789abcdef"

SANDBOX = IngressProvider("sandbox", ProviderType.SANDBOX, Scheme.PRIZEFLOW_SIGNATURE, (SANDBOX_SECRET,))
STRIPE = IngressProvider("stripe", ProviderType.STRIPE, Scheme.STRIPE_SIGNATURE, (STRIPE_SECRET,), confirms=True)
STRIPE_UNCONFIRMED = IngressProvider("stripe_dev", ProviderType.STRIPE, Scheme.STRIPE_SIGNATURE, (STRIPE_SECRET,))


@dataclass
class FakeWriter:
    """Deliveries by (provider, event id), each with the event staged with it; a duplicate writes nothing."""

    deliveries: dict[tuple[str, str], NewDelivery] = field(default_factory=dict)
    outbox: list[StagedEvent] = field(default_factory=list)
    fail_with: Exception | None = None

    async def write(self, delivery: NewDelivery, event: StagedEvent | None) -> bool:
        if self.fail_with is not None:
            raise self.fail_with
        key = (delivery.provider, delivery.provider_event_id)
        if key in self.deliveries:
            return False
        self.deliveries[key] = delivery
        if event is not None:
            self.outbox.append(event)
        return True

    async def seen(self, provider: str, provider_event_id: str) -> bool:
        return (provider, provider_event_id) in self.deliveries


@dataclass
class FakeConfirmer:
    """Stripe's side: events and payment intents by id (per account), or an outage."""

    events: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    intents: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    down: bool = False
    asked: list[tuple[str, str | None]] = field(default_factory=list)

    async def fetch_event(self, event_id: str, *, account: str | None) -> Mapping[str, Any] | None:
        self.asked.append((event_id, account))
        if self.down:
            raise ProviderUnavailableError("down")
        found = self.events.get(event_id)
        return found if found is not None and found.get("account") == account else None

    async def fetch_payment_intent(self, payment_intent_id: str, *, account: str | None) -> Mapping[str, Any] | None:
        self.asked.append((payment_intent_id, account))
        if self.down:
            raise ProviderUnavailableError("down")
        return self.intents.get(payment_intent_id)


@dataclass
class FakeDeliveryTx:
    rows: dict[int, StoredDelivery]
    staged: list[StagedEvent]

    async def lock(self, delivery_id: int) -> StoredDelivery | None:
        return self.rows.get(delivery_id)

    async def mark_republished(self, delivery_id: int, *, at: datetime) -> None:
        row = self.rows[delivery_id]
        self.rows[delivery_id] = StoredDelivery(
            row.id, row.provider, row.provider_event_id, row.outcome, row.event_json, row.correlation_id,
            row.republished + 1,
        )  # fmt: skip

    async def add_events(self, events: Sequence[StagedEvent]) -> None:
        self.staged.extend(events)


@dataclass
class FakeDeliveryStore:
    rows: dict[int, StoredDelivery] = field(default_factory=dict)
    committed: list[StagedEvent] = field(default_factory=list)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeDeliveryTx]:
        rows = dict(self.rows)
        tx = FakeDeliveryTx(rows, [])
        yield tx  # an exception rolls back: nothing below runs
        self.rows = rows
        self.committed.extend(tx.staged)


def metrics(providers: Sequence[str] = ("sandbox", "stripe", "stripe_dev")) -> WebhooksMetrics:
    return WebhooksMetrics.create(CollectorRegistry(), providers)


def ingress(
    writer: FakeWriter | None = None, confirmer: FakeConfirmer | None = None, *, now: float = NOW
) -> tuple[ReceiveWebhook, FakeWriter, FakeConfirmer, WebhooksMetrics]:
    writer = writer or FakeWriter()
    confirmer = confirmer or FakeConfirmer()
    m = metrics()
    uc = ReceiveWebhook(
        providers={p.name: p for p in (SANDBOX, STRIPE, STRIPE_UNCONFIRMED)},
        writer=writer,
        metrics=m,
        source="/prizeflow/webhooks",
        confirmers={"stripe": confirmer},
        clock=lambda: now,
    )
    return uc, writer, confirmer, m


def signed(secret: str | Sequence[str], doc: Mapping[str, Any] | bytes, *, at: float = NOW) -> tuple[str, bytes]:
    """(signature header value, body) as a provider sends them."""
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return signature_header(secret, int(at), body), body


def sandbox_payout(event_id: str = "sbx-evt-1", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "payout.paid",
        "subject": "payout",
        "status": "paid",
        "provider_ref": "sbx-ref-1",
        "idempotency_key": "claim-1:payout:1",
        "correlation_id": "c-claim-1",
        **fields,
    }


def stripe_event(event_id: str, kind: str, obj: Mapping[str, Any], *, account: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": int(NOW),
        "livemode": False,
        "api_version": "2025-06-30.basil",
        "pending_webhooks": 1,
        "data": {"object": dict(obj)},
    }
    if account is not None:
        event["account"] = account
    return event


def metric(m: WebhooksMetrics, name: str, **labels: str) -> float:
    counter = {"refused": m.refused, "deliveries": m.deliveries, "confirmations": m.confirmations,
               "correlation_generated": m.correlation_generated}[name]  # fmt: skip
    return float(counter.labels(**labels)._value.get())
