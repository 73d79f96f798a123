"""In-memory ports of the webhooks service, and builders of signed provider callbacks, for its unit tests.
`tests/integration/test_store_contracts.py` holds the fake stores (and the fake writer) to their PostgreSQL
implementations."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from prizeflow_contracts.envelope import StagedEvent, stage_event
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.rails.reading import ProviderUnavailableError
from prizeflow_contracts.webhook_signatures import signature_header
from prizeflow_testkit.events import example_payload
from prizeflow_testkit.uow import FakeUnitOfWork
from prizeflow_webhooks.application.books import Books
from prizeflow_webhooks.application.metrics import WebhooksMetrics
from prizeflow_webhooks.application.ports import NewDelivery, StoredDelivery
from prizeflow_webhooks.application.receive import ReceiveWebhook
from prizeflow_webhooks.domain.deliveries import IngressProvider

NOW = 1_750_000_000.0
SANDBOX_SECRET = "sandbox-secret-0123456789"
STRIPE_SECRET = "whsec_test_0123456789abcdef"

SANDBOX = IngressProvider("sandbox", ProviderType.SANDBOX, "prizeflow_signature", (SANDBOX_SECRET,))
STRIPE = IngressProvider("stripe", ProviderType.STRIPE, "stripe_signature", (STRIPE_SECRET,), confirms=True)
STRIPE_UNCONFIRMED = IngressProvider("stripe_dev", ProviderType.STRIPE, "stripe_signature", (STRIPE_SECRET,))


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
class FakeDeliveries:
    """The stored deliveries, as the table keeps them: one per dedup key, ids in arrival order; a row put in by a
    test directly (`rows`) has no receipt time and is never pruned."""

    rows: dict[int, StoredDelivery] = field(default_factory=dict)
    received: dict[int, datetime] = field(default_factory=dict)
    last_republished: dict[int, datetime] = field(default_factory=dict)

    async def insert_new(self, deliveries: Sequence[NewDelivery]) -> set[tuple[str, str]]:
        taken = {(r.provider, r.provider_event_id) for r in self.rows.values()}
        stored: set[tuple[str, str]] = set()
        for d in deliveries:
            key = (d.provider, d.provider_event_id)
            if key in taken:
                continue
            row_id = max(self.rows, default=0) + 1
            self.rows[row_id] = StoredDelivery(
                row_id, d.provider, d.provider_event_id, d.outcome, d.event_json, d.correlation_id, 0
            )
            self.received[row_id] = d.received_at
            taken.add(key)
            stored.add(key)
        return stored

    async def lock(self, delivery_id: int) -> StoredDelivery | None:
        return self.rows.get(delivery_id)

    async def mark_republished(self, delivery_id: int, *, at: datetime) -> None:
        row = self.rows.get(delivery_id)
        if row is not None:
            self.rows[delivery_id] = dataclasses.replace(row, republished=row.republished + 1)
            self.last_republished[delivery_id] = at

    async def delete_received_before(self, cutoff: datetime, *, limit: int) -> int:
        old = sorted(i for i, at in self.received.items() if at < cutoff)[:limit]
        for row_id in old:
            del self.rows[row_id], self.received[row_id]
            self.last_republished.pop(row_id, None)
        return len(old)


@dataclass
class FakeOutbox:
    staged: list[StagedEvent] = field(default_factory=list)

    async def stage(self, events: Sequence[StagedEvent]) -> None:
        self.staged.extend(events)


@dataclass
class WebhooksFakes:
    """The fake stores, the books holding them, and a unit of work over those books (a block that raises leaves
    them as they were)."""

    deliveries: FakeDeliveries = field(default_factory=FakeDeliveries)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    books: Books = field(init=False)
    uow: FakeUnitOfWork[Books] = field(init=False)

    def __post_init__(self) -> None:
        self.books = Books(deliveries=self.deliveries, outbox=self.outbox)
        self.uow = FakeUnitOfWork(self.books)


def new_delivery(
    provider_event_id: str, *, provider: str = "sandbox", received_at: datetime | None = None, published: bool = True
) -> tuple[NewDelivery, StagedEvent | None]:
    """A delivery as the ingress stores it, with the event it publishes (None: an ignored kind)."""
    at = received_at or datetime.fromtimestamp(NOW, UTC)
    event = (
        stage_event(
            example_payload(ProviderEventReceived, provider_event_id=provider_event_id),
            source="/prizeflow/webhooks",
            correlation_id=f"c-{provider_event_id}",
            subject=provider_event_id,
            time=at,
        )
        if published
        else None
    )
    body = json.dumps({"event_id": provider_event_id}).encode()
    delivery = NewDelivery(
        provider=provider,
        provider_type="sandbox",
        provider_event_id=provider_event_id,
        kind="payout.paid" if published else "payout.updated",
        outcome="published" if published else "ignored",
        ignored_reason=None if published else "kind_not_handled",
        event_type=event.type if event is not None else None,
        event_json=event.payload.decode() if event is not None else None,
        published_event_id=event.id if event is not None else None,
        correlation_id=f"c-{provider_event_id}",
        correlation_generated=False,
        confirmed=False,
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        signature_timestamp=int(NOW),
        received_at=at,
    )
    return delivery, event


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
        apis={"stripe": confirmer},
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


@dataclass
class FakePayoutFetcher:
    """RazorpayX's `GET /v1/payouts/{id}`, scripted: the payouts it holds, or an outage."""

    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    asked: list[str] = field(default_factory=list)

    async def fetch_payout(self, payout_id: str) -> Mapping[str, Any] | None:
        self.asked.append(payout_id)
        if self.down:
            raise ProviderUnavailableError("RazorpayX unreachable (ConnectError)")
        return self.payouts.get(payout_id)
