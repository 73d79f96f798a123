"""The PayPal Payouts source, `POST /providers/paypal/events`, on fakes: PayPal's signature is checked offline
against the pinned certificate before anything reads the body; forged, replayed-late and misaddressed deliveries
are refused and store nothing; the item is fetched back (`GET /v1/payments/payouts-item/{id}`) and its state as
PayPal holds it is what is published; batch events are stored and ignored; the receiver and the note are never
stored. The confirmation client against `httpx.MockTransport`: an OAuth2 token kept until it expires."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from litestar.types import Receive, Scope, Send
from webhooks_fakes import NOW, FakeWriter, metric, metrics

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.paypal import paypal_signature
from prizeflow_contracts.rails.reading import ProviderUnavailableError
from prizeflow_webhooks.adapters.config import ConfirmConfig, ProvidersConfigError, parse_config
from prizeflow_webhooks.adapters.confirm_apis import confirm_client
from prizeflow_webhooks.adapters.paypal_api import PayPalItemFetcher
from prizeflow_webhooks.application.receive import ReceiveWebhook, WebhookRefusedError
from prizeflow_webhooks.domain.deliveries import DeliveryOutcome, IngressProvider, RefusalReason
from prizeflow_webhooks.entrypoints.ingress import WebhookIngress

P = ProviderPayoutStatus
WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api-m.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
ITEM_ID = "8AELMXH8UB2P8"


def keypair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.test")])
    start = datetime(2025, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


KEY, CERT = keypair()
OTHER_KEY, OTHER_CERT = keypair()
PAYPAL = IngressProvider("paypal", ProviderType.PAYPAL, "paypal", (WEBHOOK_ID, CERT), confirms=True)


def sent_at(at: float = NOW) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed(
    body: bytes, *, key: rsa.RSAPrivateKey = KEY, webhook_id: str = WEBHOOK_ID, at: float = NOW
) -> tuple[str, dict[str, str]]:
    """The signature and the other headers the reader reads, as PayPal sends them."""
    tid, when = "69cd13f0-d67a-11e5-baa3-778b53f4ae55", sent_at(at)
    return paypal_signature(key, tid, when, webhook_id, body), {
        "paypal-transmission-id": tid,
        "paypal-transmission-time": when,
        "paypal-cert-url": CERT_URL,
        "paypal-auth-algo": "SHA256withRSA",
    }


def item(state: str = "SUCCESS", **over: Any) -> dict[str, Any]:
    return {
        "payout_item_id": ITEM_ID,
        "transaction_id": "0C413693MN970190K",
        "transaction_status": state,
        "payout_item_fee": {"currency": "USD", "value": "0.25"},
        "payout_batch_id": "Q8KVJG9TZTNN4",
        "payout_item": {
            "recipient_type": "EMAIL",
            "amount": {"currency": "USD", "value": "12.50"},
            "note": "Thanks for playing, Ann!",
            "receiver": "ann@example.com",
            "sender_item_id": "claim-42:payout",
        },
        "time_processed": "2025-06-15T15:06:40Z",
        **over,
    }


def event(
    kind: str = "PAYMENT.PAYOUTS-ITEM.SUCCEEDED", resource: dict[str, Any] | None = None, *, event_id: str = "WH-1"
) -> bytes:
    doc = {
        "id": event_id,
        "event_version": "1.0",
        "create_time": "2025-06-15T15:06:41Z",
        "resource_type": "payouts_item",
        "event_type": kind,
        "summary": "Payout item for ann@example.com succeeded",
        "resource": item() if resource is None else resource,
    }
    return json.dumps(doc).encode()


@dataclass
class FakeItems:
    """PayPal's `GET /v1/payments/payouts-item/{id}`, scripted: the items it holds, or an outage."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    asked: list[str] = field(default_factory=list)

    async def fetch_item(self, payout_item_id: str) -> Mapping[str, Any] | None:
        self.asked.append(payout_item_id)
        if self.down:
            raise ProviderUnavailableError("PayPal unreachable (ConnectError)")
        return self.items.get(payout_item_id)


def setup(state: str = "SUCCESS") -> tuple[ReceiveWebhook, FakeWriter, FakeItems, Any]:
    writer, items, m = FakeWriter(), FakeItems({ITEM_ID: item(state)}), metrics(("paypal",))
    uc = ReceiveWebhook(
        providers={"paypal": PAYPAL},
        writer=writer,
        metrics=m,
        source="/prizeflow/webhooks",
        apis={"paypal": items},
        clock=lambda: NOW,
    )
    return uc, writer, items, m


async def deliver(uc: ReceiveWebhook, body: bytes, **sign: Any) -> Any:
    signature, hs = signed(body, **sign)
    return await uc(PAYPAL, signature, body, headers=hs)


async def test_a_signed_item_event_is_confirmed_and_published_with_the_items_state() -> None:
    uc, writer, items, m = setup()
    receipt = await deliver(uc, event())
    assert (receipt.outcome, receipt.provider_event_id) == (DeliveryOutcome.ACCEPTED, "WH-1")
    [staged] = writer.outbox
    ev = decode(staged.payload).data
    assert isinstance(ev, ProviderEventReceived)
    assert (ev.provider, ev.provider_event_id, ev.provider_payout_ref, ev.idempotency_key) == (
        ProviderType.PAYPAL,
        "WH-1",
        ITEM_ID,
        "claim-42:payout",
    )
    assert (ev.status, ev.fee, ev.verified) == (P.PAID, Money(asset="USD", amount=25), True)
    stored = writer.deliveries[("paypal", "WH-1")]
    assert stored.confirmed
    assert stored.signature_timestamp == int(NOW)
    for personal in (b"ann@example.com", b"Thanks for playing", b"summary"):
        assert personal not in stored.body
        assert personal not in staged.payload
    assert items.asked == [ITEM_ID]
    assert metric(m, "confirmations", provider="paypal", outcome="confirmed") == 1
    assert metric(m, "deliveries", provider="paypal", outcome="accepted") == 1


async def test_a_duplicate_is_recognised_before_paypal_is_asked_again() -> None:
    uc, writer, items, _ = setup()
    await deliver(uc, event())
    again = await deliver(uc, event())
    assert again.outcome is DeliveryOutcome.DUPLICATE
    assert (len(items.asked), len(writer.outbox)) == (1, 1)


async def test_an_item_that_moved_on_is_published_as_paypal_holds_it_now() -> None:
    uc, writer, _, _ = setup("REVERSED")
    await deliver(uc, event())  # the SUCCEEDED delivery arrives after PayPal reversed the payment
    ev = decode(writer.outbox[0].payload).data
    assert isinstance(ev, ProviderEventReceived)
    assert (ev.kind, ev.status, ev.fee) == ("PAYMENT.PAYOUTS-ITEM.MOVED-ON", P.RETURNED, None)


@pytest.mark.parametrize(
    ("kind", "state", "status", "code"),
    [
        ("SUCCEEDED", "SUCCESS", P.PAID, None),
        ("UNCLAIMED", "UNCLAIMED", P.PENDING, None),
        ("HELD", "ONHOLD", P.PENDING, None),
        ("RETURNED", "RETURNED", P.FAILED, PayoutErrorCode.DESTINATION_NOT_FOUND),
        ("BLOCKED", "BLOCKED", P.FAILED, PayoutErrorCode.DESTINATION_BLOCKED),
        ("FAILED", "FAILED", P.FAILED, PayoutErrorCode.TX_FAILED),
        ("CANCELED", "CANCELED", P.FAILED, PayoutErrorCode.TX_FAILED),
        ("DENIED", "DENIED", P.FAILED, PayoutErrorCode.COMPLIANCE_REJECTED),
        ("REFUNDED", "REFUNDED", P.RETURNED, None),
        ("REVERSED", "REVERSED", P.RETURNED, None),
    ],
)
async def test_every_item_event_publishes_what_it_means_for_the_payout(
    kind: str, state: str, status: P, code: PayoutErrorCode | None
) -> None:
    uc, writer, _, _ = setup(state)
    await deliver(uc, event(f"PAYMENT.PAYOUTS-ITEM.{kind}", item(state)))
    ev = decode(writer.outbox[0].payload).data
    assert isinstance(ev, ProviderEventReceived)
    assert (ev.status, ev.error_code) == (status, code)


@pytest.mark.parametrize("kind", ["PAYMENT.PAYOUTSBATCH.SUCCESS", "PAYMENT.PAYOUTSBATCH.DENIED"])
async def test_a_batch_event_is_stored_and_ignored_without_asking_paypal(kind: str) -> None:
    uc, writer, items, _ = setup()
    batch = {
        "batch_header": {
            "payout_batch_id": "Q8KVJG9TZTNN4",
            "batch_status": "SUCCESS",
            "sender_batch_header": {"sender_batch_id": "pf-1", "email_subject": "Hi Ann"},
        }
    }
    receipt = await deliver(uc, event(kind, batch, event_id="WH-B"))
    assert receipt.outcome is DeliveryOutcome.IGNORED
    assert (writer.outbox, items.asked) == ([], [])
    stored = writer.deliveries[("paypal", "WH-B")]
    assert stored.ignored_reason == "kind_not_handled"
    assert b"Hi Ann" not in stored.body


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered body", RefusalReason.SIGNATURE_MISMATCH),
        ("wrong webhook id", RefusalReason.SIGNATURE_MISMATCH),
        ("wrong cert", RefusalReason.SIGNATURE_MISMATCH),
        ("unpinned cert url host", RefusalReason.SIGNATURE_MISMATCH),
        ("stale", RefusalReason.TIMESTAMP_STALE),
        ("wrong algo", RefusalReason.SIGNATURE_MALFORMED),
        ("no signature", RefusalReason.SIGNATURE_MISSING),
        ("no transmission id", RefusalReason.SIGNATURE_MISSING),
        ("no transmission time", RefusalReason.SIGNATURE_MISSING),
        ("no cert url", RefusalReason.SIGNATURE_MISSING),
        ("no algo", RefusalReason.SIGNATURE_MISSING),
    ],
)
async def test_a_bad_delivery_is_refused_before_anything_is_read_fetched_or_stored(
    case: str, reason: RefusalReason
) -> None:
    uc, writer, items, m = setup()
    body = event()
    signature: str | None
    signature, hs = signed(body)
    if case == "tampered body":
        body = event(resource=item("SUCCESS", payout_item_fee={"currency": "USD", "value": "0.00"}))
    elif case == "wrong webhook id":
        signature, hs = signed(body, webhook_id="1JE4291016473214C")
    elif case == "wrong cert":
        signature, hs = signed(body, key=OTHER_KEY)
    elif case == "unpinned cert url host":
        hs["paypal-cert-url"] = "https://certs.example.net/v1/notifications/certs/CERT-1"
    elif case == "stale":
        signature, hs = signed(body, at=NOW - PAYPAL.tolerance_s - 1)
    elif case == "wrong algo":
        hs["paypal-auth-algo"] = "SHA256withECDSA"
    elif case == "no signature":
        signature = None
    else:
        named = {"id": "paypal-transmission-id", "time": "paypal-transmission-time", "url": "paypal-cert-url"}
        del hs[{**named, "algo": "paypal-auth-algo"}[case.rsplit(maxsplit=1)[-1]]]
    with pytest.raises(WebhookRefusedError) as err:
        await uc(PAYPAL, signature, body, headers=hs)
    assert err.value.reason is reason
    assert (writer.deliveries, writer.outbox, items.asked) == ({}, [], [])
    assert metric(m, "refused", provider="paypal", reason=reason.value) == 1
    # The same event, signed properly afterwards, still takes its dedup key.
    assert (await deliver(uc, event())).outcome is DeliveryOutcome.ACCEPTED


async def test_an_item_paypal_does_not_hold_or_holds_as_another_or_cannot_tell_stores_nothing() -> None:
    uc, writer, items, m = setup()
    items.items.clear()
    with pytest.raises(WebhookRefusedError) as missing:
        await deliver(uc, event())
    assert missing.value.reason is RefusalReason.EVENT_NOT_CONFIRMED
    items.items[ITEM_ID] = item(payout_item={**item()["payout_item"], "sender_item_id": "claim-9:payout"})
    with pytest.raises(WebhookRefusedError) as other:
        await deliver(uc, event())
    assert other.value.reason is RefusalReason.EVENT_NOT_CONFIRMED
    items.down = True
    with pytest.raises(WebhookRefusedError) as down:
        await deliver(uc, event())
    assert down.value.reason is RefusalReason.PROVIDER_UNAVAILABLE
    with pytest.raises(WebhookRefusedError) as invalid:
        await deliver(uc, event(resource=item(payout_item_id="../admin")))
    assert invalid.value.reason is RefusalReason.INVALID_PAYLOAD
    assert writer.deliveries == {}
    assert [metric(m, "confirmations", provider="paypal", outcome=o) for o in ("not_found", "mismatch")] == [1, 1]


async def test_the_ingress_reads_paypals_headers_once_each() -> None:
    uc, writer, _, _ = setup()

    async def behind(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError(scope["path"])

    app = WebhookIngress(behind, uc)
    body = event()
    signature, hs = signed(body)
    raw = [(b"content-type", b"application/json"), (b"paypal-transmission-sig", signature.encode())]
    raw += [(k.encode(), v.encode()) for k, v in hs.items()]

    async def call(headers: list[tuple[bytes, bytes]]) -> tuple[int, Any]:
        scope = {"type": "http", "method": "POST", "path": "/providers/paypal/events", "headers": headers}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(cast("Scope", scope), cast("Receive", receive), cast("Send", send))
        return sent[0]["status"], json.loads(sent[1]["body"])

    status, answer = await call([*raw, (b"paypal-cert-url", b"https://api.paypal.com/v1/notifications/certs/X")])
    assert (status, answer["code"]) == (400, "signature_malformed")
    status, answer = await call(raw)
    assert (status, answer["outcome"], answer["provider_event_id"]) == (200, "accepted", "WH-1")
    assert len(writer.outbox) == 1


# --- the providers file --------------------------------------------------------------------------------------------

ENV = {
    "PAYPAL_WEBHOOK_ID": WEBHOOK_ID,
    "PAYPAL_WEBHOOK_CERT": CERT,
    "PAYPAL_CLIENT_ID": "AbCdEf0123456789-client",
    "PAYPAL_CLIENT_SECRET": "EFgh0123456789-client-secret",
    "PAYPAL_API_URL": "http://127.0.0.1:9",
}
ENTRY = {
    "name": "paypal",
    "type": "paypal",
    "scheme": "paypal",
    "secrets": ["PAYPAL_WEBHOOK_ID", "PAYPAL_WEBHOOK_CERT"],
    "confirm": {"api_base_env": "PAYPAL_API_URL", "api_key_id": "PAYPAL_CLIENT_ID", "api_key": "PAYPAL_CLIENT_SECRET"},
}


def test_a_paypal_provider_signs_its_way_and_confirms_with_a_client_id_outside_dev() -> None:
    good = parse_config({"providers": [ENTRY]}, dev=True, env=ENV)
    provider = good.providers["paypal"]
    assert (provider.type, provider.scheme, provider.secrets, provider.confirms) == (
        ProviderType.PAYPAL,
        "paypal",
        (WEBHOOK_ID, CERT),
        True,
    )
    assert good.confirm["paypal"].api_key_id == "AbCdEf0123456789-client"
    assert isinstance(confirm_client("paypal", good.confirm["paypal"]), PayPalItemFetcher)
    unconfirmed = {k: v for k, v in ENTRY.items() if k != "confirm"}
    assert not parse_config({"providers": [unconfirmed]}, dev=True, env=ENV).providers["paypal"].confirms
    for entry, needle in [
        (unconfirmed, "must be confirmed"),
        ({**ENTRY, "scheme": "prizeflow_signature"}, "signs with scheme paypal"),
        ({**ENTRY, "type": "stripe"}, "signs with scheme stripe_signature"),
        ({**ENTRY, "confirm": {k: v for k, v in ENTRY["confirm"].items() if k != "api_key_id"}}, "api_key_id"),  # type: ignore[attr-defined]
    ]:
        with pytest.raises(ProvidersConfigError, match=needle):
            parse_config({"providers": [entry]}, dev=False, env={**ENV, "PAYPAL_API_URL": "https://api-m.paypal.com"})


# --- the confirmation client ---------------------------------------------------------------------------------------


@dataclass
class FakePayPal:
    """PayPal's token and item endpoints, scripted (`answers` by path: popped first, else `item`)."""

    answers: dict[str, list[httpx.Response]] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)
    tokens: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if queued := self.answers.get(request.url.path):
            return queued.pop(0)
        if request.url.path == "/v1/oauth2/token":
            self.tokens += 1
            return httpx.Response(200, json={"access_token": f"A21AA-token-{self.tokens}", "expires_in": 32400})
        return httpx.Response(200, json=item())


def fetcher(paypal: FakePayPal, clock: list[float] | None = None) -> PayPalItemFetcher:
    times = clock if clock is not None else [0.0]
    config = ConfirmConfig(
        api_base="https://api-m.paypal.test", api_key="client-secret-0123456789", timeout_s=1.0, api_key_id="client-1"
    )
    return PayPalItemFetcher(config, transport=httpx.MockTransport(paypal), clock=lambda: times[0])


async def test_the_client_trades_its_credentials_for_a_token_kept_until_it_expires() -> None:
    paypal, clock = FakePayPal(), [0.0]
    client = fetcher(paypal, clock)
    got = await client.fetch_item(ITEM_ID)
    assert got is not None
    assert got["transaction_status"] == "SUCCESS"
    assert "receiver" not in got["payout_item"]
    assert "note" not in got["payout_item"]
    token, get = paypal.seen
    assert (token.method, token.url.path, get.method, get.url.path) == (
        "POST",
        "/v1/oauth2/token",
        "GET",
        f"/v1/payments/payouts-item/{ITEM_ID}",
    )
    assert token.headers["Authorization"] == "Basic " + base64.b64encode(b"client-1:client-secret-0123456789").decode()
    assert token.content == b"grant_type=client_credentials"
    assert get.headers["Authorization"] == "Bearer A21AA-token-1"
    await client.fetch_item(ITEM_ID)
    assert paypal.tokens == 1  # kept
    clock[0] = 32400.0  # expired (renewed a minute early)
    await client.fetch_item(ITEM_ID)
    assert paypal.tokens == 2
    assert paypal.seen[-1].headers["Authorization"] == "Bearer A21AA-token-2"
    assert await client.fetch_item("../admin") is None  # never a path of our making
    assert len(paypal.seen) == 5
    await client.close()


async def test_a_token_paypal_no_longer_takes_is_renewed_once() -> None:
    path = f"/v1/payments/payouts-item/{ITEM_ID}"
    paypal = FakePayPal({path: [httpx.Response(401, json={"error": "invalid_token"})]})
    client = fetcher(paypal)
    assert await client.fetch_item(ITEM_ID) is not None
    assert paypal.tokens == 2
    paypal.answers[path] = [httpx.Response(401, json={}), httpx.Response(401, json={})]
    with pytest.raises(ProviderUnavailableError, match="HTTP 401"):
        await client.fetch_item(ITEM_ID)


async def test_an_item_paypal_does_not_know_is_none() -> None:
    path = f"/v1/payments/payouts-item/{ITEM_ID}"
    paypal = FakePayPal({path: [httpx.Response(404, json={"name": "INVALID_RESOURCE_ID", "debug_id": "x"})]})
    assert await fetcher(paypal).fetch_item(ITEM_ID) is None


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        (f"/v1/payments/payouts-item/{ITEM_ID}", httpx.Response(500, text="ann@example.com broke us")),
        (f"/v1/payments/payouts-item/{ITEM_ID}", httpx.Response(503, text="ann@example.com")),
        (f"/v1/payments/payouts-item/{ITEM_ID}", httpx.Response(429, json={"name": "RATE_LIMIT_REACHED"})),
        (f"/v1/payments/payouts-item/{ITEM_ID}", httpx.Response(200, text="<html>ann@example.com</html>")),
        ("/v1/oauth2/token", httpx.Response(401, json={"error": "invalid_client", "error_description": "ann"})),
        ("/v1/oauth2/token", httpx.Response(200, json={"token_type": "Bearer"})),
    ],
)
async def test_a_paypal_that_cannot_answer_is_unavailable_and_its_text_is_not_repeated(
    path: str, answer: httpx.Response
) -> None:
    with pytest.raises(ProviderUnavailableError) as err:
        await fetcher(FakePayPal({path: [answer]})).fetch_item(ITEM_ID)
    assert "ann" not in str(err.value)


async def test_an_unreachable_paypal_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    config = ConfirmConfig(api_base="https://api-m.paypal.test", api_key="s" * 20, timeout_s=1.0, api_key_id="c")
    with pytest.raises(ProviderUnavailableError, match="ConnectError"):
        await PayPalItemFetcher(config, transport=httpx.MockTransport(refuse)).fetch_item(ITEM_ID)
    with pytest.raises(ValueError, match="api_key_id"):
        PayPalItemFetcher(ConfirmConfig(api_base="https://x", api_key="s" * 20, timeout_s=1.0))
