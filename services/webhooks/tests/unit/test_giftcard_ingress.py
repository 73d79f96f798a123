"""The gift-card source on fakes (the emulator's own books as the provider): signature before anything is read,
stored or deduplicated; the order fetched back decides the status; duplicates and late deliveries say nothing new;
the card link never reaches what is stored or published."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from webhooks_fakes import NOW, FakeWriter, metric, metrics

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.giftcard import giftcard_signature
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.reading import ProviderUnavailableError
from prizeflow_giftcard_emulator.server import json_default
from prizeflow_giftcard_emulator.state import Outcome, Store
from prizeflow_webhooks.adapters.config import ProvidersConfigError, parse_config
from prizeflow_webhooks.application.receive import ReceiveWebhook, WebhookRefusedError
from prizeflow_webhooks.domain.deliveries import DeliveryOutcome, IngressProvider, RefusalReason

KEY = "giftcard-webhook-private-key"
GIFTCARD = IngressProvider("giftcard", ProviderType.GIFT_CARD, "giftcard_signature", (KEY,), confirms=True)


@dataclass
class StoreFetcher:
    """The provider's API on the emulator's books: what `GiftCardOrderFetcher` returns, link included (the real
    fetcher drops it; the normalizer must not need it either)."""

    store: Store
    down: bool = False
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def fetch_order(self, resource_type: str, resource_id: str) -> Mapping[str, Any] | None:
        self.asked.append((resource_type, resource_id))
        if self.down:
            raise ProviderUnavailableError("down")
        if resource_type == "rewards":
            reward = self.store.rewards.get(resource_id)
            if reward is None:
                return None
            resource_id = reward.order_id
        order = self.store.orders.get(resource_id)
        doc: dict[str, Any] = json.loads(json.dumps(order.to_json(), default=json_default)) if order else {}
        return doc or None


def setup() -> tuple[ReceiveWebhook, FakeWriter, StoreFetcher, Any]:
    store = Store(balances={"USD": Decimal(1000)})
    fetcher = StoreFetcher(store)
    writer = FakeWriter()
    m = metrics(("giftcard",))
    uc = ReceiveWebhook(
        providers={"giftcard": GIFTCARD},
        writer=writer,
        metrics=m,
        source="/prizeflow/webhooks",
        apis={"giftcard": fetcher},
        clock=lambda: NOW,
    )
    return uc, writer, fetcher, m


def order(store: Store, external_id: str = "po-abc", *, method: str = "EMAIL") -> str:
    body = {
        "external_id": external_id,
        "payment": {"funding_source_id": "balance"},
        "reward": {
            "value": {"denomination": Decimal("25.00"), "currency_code": "USD"},
            "delivery": {"method": method},
            "recipient": {"name": "P", "email": "ann@example.com"},
            "products": ["OKMHM2X2OHYV"],
        },
    }
    return store.create_order(body)[1].id


def delivery(store: Store, kind: str) -> tuple[str, bytes]:
    event = next(e for e in reversed(store.events) if e.event == kind)
    body = json.dumps(event.to_json()).encode()
    return giftcard_signature(KEY, body), body


async def test_a_delivered_card_is_published_paid_from_the_order_fetched_back() -> None:
    uc, writer, fetcher, m = setup()
    order_id = order(fetcher.store, method="LINK")
    signature, body = delivery(fetcher.store, "REWARDS.DELIVERY.SUCCEEDED")
    receipt = await uc(GIFTCARD, signature, body)
    assert receipt.outcome is DeliveryOutcome.ACCEPTED
    [staged] = writer.outbox
    ev = decode(staged.payload).data
    assert isinstance(ev, ProviderEventReceived)
    assert (ev.status, ev.provider_payout_ref, ev.idempotency_key, ev.verified) == (
        ProviderPayoutStatus.PAID,
        order_id,
        None,
        True,
    )
    stored = writer.deliveries[("giftcard", receipt.provider_event_id)]
    assert stored.confirmed
    link = fetcher.store.orders[order_id].reward.link
    assert link not in stored.body.decode() + staged.payload.decode()
    assert metric(m, "confirmations", provider="giftcard", outcome="confirmed") == 1


async def test_a_delivered_card_carries_the_fee_the_order_was_charged() -> None:
    """Issue 56: the order's `payment.fees` travels with the paid event (as the rail's status and statement read
    it), so the payout records the same fee whichever answer pays it."""
    uc, writer, fetcher, _ = setup()
    order_id = order(fetcher.store, method="LINK")
    fetcher.store.orders[order_id].fees = Decimal("1.25")
    signature, body = delivery(fetcher.store, "REWARDS.DELIVERY.SUCCEEDED")
    await uc(GIFTCARD, signature, body)
    [staged] = writer.outbox
    ev = decode(staged.payload).data
    assert isinstance(ev, ProviderEventReceived)
    assert (ev.status, ev.fee) == (ProviderPayoutStatus.PAID, Money(asset="USD", amount=125))


async def test_a_duplicate_is_recognised_before_the_provider_is_asked_again() -> None:
    uc, writer, fetcher, _ = setup()
    order(fetcher.store)
    signature, body = delivery(fetcher.store, "REWARDS.DELIVERY.SUCCEEDED")
    await uc(GIFTCARD, signature, body)
    again = await uc(GIFTCARD, signature, body)
    assert again.outcome is DeliveryOutcome.DUPLICATE
    assert len(fetcher.asked) == 1
    assert len(writer.outbox) == 1


async def test_an_event_the_order_does_not_bear_out_publishes_no_status() -> None:
    uc, writer, fetcher, _ = setup()
    order(fetcher.store)
    await uc(GIFTCARD, *delivery(fetcher.store, "ORDERS.CREATED"))
    event = next(e for e in fetcher.store.events if e.event == "REWARDS.DELIVERY.SUCCEEDED")
    forged_kind = {**event.to_json(), "event": "REWARDS.DELIVERY.FAILED", "uuid": "late-or-wrong"}
    body = json.dumps(forged_kind).encode()
    await uc(GIFTCARD, giftcard_signature(KEY, body), body)
    statuses = [getattr(decode(s.payload).data, "status", "absent") for s in writer.outbox]
    assert statuses == [None, None]


async def test_an_order_prizeflow_did_not_place_is_stored_and_ignored() -> None:
    uc, writer, fetcher, _ = setup()
    order(fetcher.store, external_id="marketing-42")
    receipt = await uc(GIFTCARD, *delivery(fetcher.store, "REWARDS.DELIVERY.SUCCEEDED"))
    assert receipt.outcome is DeliveryOutcome.IGNORED
    assert writer.outbox == []
    assert writer.deliveries[("giftcard", receipt.provider_event_id)].ignored_reason == "not_a_payout"


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, RefusalReason.SIGNATURE_MISSING),
        ("sha256=" + "0" * 64, RefusalReason.SIGNATURE_MISMATCH),
        ("t=1,v1=" + "0" * 64, RefusalReason.SIGNATURE_MALFORMED),
    ],
)
async def test_a_bad_signature_is_refused_before_anything_is_read_fetched_or_stored(
    signature: str | None, reason: RefusalReason
) -> None:
    uc, writer, fetcher, m = setup()
    order(fetcher.store)
    _, body = delivery(fetcher.store, "REWARDS.DELIVERY.SUCCEEDED")
    with pytest.raises(WebhookRefusedError) as err:
        await uc(GIFTCARD, signature, body)
    assert err.value.reason is reason
    assert (writer.deliveries, writer.outbox, fetcher.asked) == ({}, [], [])
    assert metric(m, "refused", provider="giftcard", reason=reason.value) == 1
    # The same event signed properly afterwards still takes its dedup key.
    assert (
        await uc(GIFTCARD, *delivery(fetcher.store, "REWARDS.DELIVERY.SUCCEEDED"))
    ).outcome is DeliveryOutcome.ACCEPTED


async def test_an_unknown_resource_or_an_unreachable_provider_stores_nothing() -> None:
    uc, writer, fetcher, _ = setup()
    body = json.dumps(
        {
            "event": "REWARDS.DELIVERY.SUCCEEDED",
            "uuid": "u-1",
            "payload": {"resource": {"id": "NOPE", "type": "rewards"}},
        }
    ).encode()
    with pytest.raises(WebhookRefusedError) as missing:
        await uc(GIFTCARD, giftcard_signature(KEY, body), body)
    assert missing.value.reason is RefusalReason.EVENT_NOT_CONFIRMED
    fetcher.down = True
    with pytest.raises(WebhookRefusedError) as down:
        await uc(GIFTCARD, giftcard_signature(KEY, body), body)
    assert down.value.reason is RefusalReason.PROVIDER_UNAVAILABLE
    assert writer.deliveries == {}
    bad = json.dumps({"event": "X", "uuid": "u-2", "payload": {"resource": {"id": "../x", "type": "rewards"}}}).encode()
    with pytest.raises(WebhookRefusedError) as invalid:
        await uc(GIFTCARD, giftcard_signature(KEY, bad), bad)
    assert invalid.value.reason is RefusalReason.INVALID_PAYLOAD


def test_a_failed_delivery_publishes_failed_with_the_stable_code() -> None:
    from prizeflow_contracts.giftcard import event_status, failure_code, order_status

    assert event_status("REWARDS.DELIVERY.FAILED", order_status("EXECUTED", "FAILED")) is ProviderPayoutStatus.FAILED
    assert failure_code("EXECUTED").value == "invalid_destination"
    assert order_status("PENDING APPROVAL", "PENDING") is ProviderPayoutStatus.PENDING
    store = Store(balances={"USD": Decimal(100)})
    store.recipients["ann@example.com"] = Outcome.DELIVERY_FAILED
    order(store)
    assert store.events[-1].event == "REWARDS.DELIVERY.FAILED"


ENV = {
    "GIFTCARD_WEBHOOK_KEY": KEY,
    "GIFTCARD_API_KEY": "TEST_key_0123456789abcdef",
    "GIFTCARD_API_URL": "http://127.0.0.1:9",
}


@pytest.mark.parametrize(
    ("provider", "needle"),
    [
        ({"scheme": "prizeflow_signature"}, "giftcard_signature"),
        ({"confirm": None}, "needs `confirm`"),
        ({"type": "sandbox"}, "giftcard_signature"),
    ],
)
def test_a_gift_card_source_must_sign_its_way_and_confirm_in_every_profile(
    provider: dict[str, Any], needle: str
) -> None:
    entry = {
        "name": "giftcard",
        "type": "gift_card",
        "scheme": "giftcard_signature",
        "secrets": ["GIFTCARD_WEBHOOK_KEY"],
        "confirm": {"api_base_env": "GIFTCARD_API_URL", "api_key": "GIFTCARD_API_KEY"},
    }
    good = parse_config({"providers": [entry]}, dev=True, env=ENV)
    assert good.providers["giftcard"].confirms
    assert good.confirm["giftcard"].api_base == "http://127.0.0.1:9"
    with pytest.raises(ProvidersConfigError) as err:
        parse_config(
            {"providers": [{k: v for k, v in {**entry, **provider}.items() if v is not None}]}, dev=True, env=ENV
        )
    assert needle in str(err.value)
