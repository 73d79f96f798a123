"""The PayPal Payouts rail's wire rules and webhook reader (`prizeflow_contracts.rails.paypal`):
amounts exact in minor units, receivers checked, every item state read, PayPal's signature checked offline against a
pinned certificate (a fresh RSA key and self-signed certificate here), every callback normalized or ignored, and no
receiver or note kept."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from prizeflow_contracts.errors import PAYOUT_ERROR_RETRYABLE, PayoutErrorCode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails import paypal as events
from prizeflow_contracts.rails import paypal_wire as wire
from prizeflow_contracts.rails.paypal import (
    PayPalReader,
    paypal_signature,
    pinned,
    verify_paypal_signature,
)
from prizeflow_contracts.rails.reading import (
    Confirmed,
    IgnoredReason,
    NormalizationError,
    NotConfirmed,
    incoherence,
)
from prizeflow_contracts.rails.registry import WEBHOOK_READERS
from prizeflow_contracts.webhook_signatures import SignatureFailure, SignatureRefused

P = ProviderPayoutStatus
NOW = 1_750_000_000.0
SENT_AT = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api-m.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
DIGEST = "0" * 64


def self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
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
    return cert.public_bytes(serialization.Encoding.PEM).decode()


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CERT, OTHER_CERT = self_signed(KEY), self_signed(OTHER_KEY)
SECRETS = (WEBHOOK_ID, CERT)


def headers(body: bytes, *, key: rsa.RSAPrivateKey = KEY, webhook_id: str = WEBHOOK_ID, **over: str) -> dict[str, str]:
    sent_at = over.pop("time", SENT_AT)
    out = {
        "paypal-transmission-id": "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
        "paypal-transmission-time": sent_at,
        "paypal-transmission-sig": paypal_signature(
            key, "69cd13f0-d67a-11e5-baa3-778b53f4ae55", sent_at, webhook_id, body
        ),
        "paypal-cert-url": CERT_URL,
        "paypal-auth-algo": "SHA256withRSA",
    }
    return {**out, **over}


def item(state: str = "SUCCESS", **over: Any) -> dict[str, Any]:
    return {
        "payout_item_id": "8AELMXH8UB2P8",
        "transaction_id": "0C413693MN970190K",
        "activity_id": "0E158638XS0329106",
        "transaction_status": state,
        "payout_item_fee": {"currency": "USD", "value": "0.25"},
        "payout_batch_id": "Q8KVJG9TZTNN4",
        "sender_batch_id": "pf-batch-1",
        "payout_item": {
            "recipient_type": "EMAIL",
            "amount": {"currency": "USD", "value": "12.50"},
            "note": "Thanks for playing, Ann!",
            "receiver": "ann@example.com",
            "sender_item_id": "claim-42:payout",
            "recipient_wallet": "PAYPAL",
        },
        "time_processed": "2025-06-15T15:06:40Z",
        "links": [{"href": "https://api-m.paypal.com/v1/payments/payouts-item/8AELMXH8UB2P8", "rel": "self"}],
        **over,
    }


def event(kind: str = "PAYMENT.PAYOUTS-ITEM.SUCCEEDED", resource: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "WH-58D329510W468432D-8HN650336L201105X",
        "event_version": "1.0",
        "create_time": "2025-06-15T15:06:41Z",
        "resource_type": "payouts_item",
        "event_type": kind,
        "summary": "A payout item for ann@example.com has succeeded",
        "resource": item() if resource is None else resource,
        "links": [],
    }


def normalize(doc: Mapping[str, Any]) -> Any:
    return events.normalize(
        doc, provider=ProviderType.PAYPAL, digest=DIGEST, received_at=datetime.fromtimestamp(NOW, UTC)
    )


# --- money and the request -----------------------------------------------------------------------------------------


def test_amounts_are_exact_minor_units_both_ways() -> None:
    assert wire.paypal_value(1250, "USD") == "12.50"
    assert wire.paypal_value(5, "EUR") == "0.05"
    assert wire.paypal_value(1500, "JPY") == "1500"
    big = 9_007_199_254_740_993  # 2**53 + 1: a float would lose it
    assert wire.minor_units(wire.paypal_value(big, "USD"), "USD") == big
    assert wire.minor_units("12.5", "USD") == 1250
    assert wire.minor_units("1500", "JPY") == 1500
    for value, currency in [("12.505", "USD"), ("1.5", "JPY"), ("-1.00", "USD"), ("1e3", "USD"), (" 1.00", "USD")]:
        with pytest.raises(ValueError):
            wire.minor_units(value, currency)
    with pytest.raises(ValueError, match="plain decimal string"):
        wire.minor_units(12.5, "USD")
    with pytest.raises(ValueError, match="pays no"):
        wire.paypal_value(100, "USDC")
    with pytest.raises(ValueError, match="non-negative integer"):
        wire.paypal_value(-1, "USD")


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (wire.RecipientType.EMAIL, "ann.lee+prizes@example.co.uk", ["ann", "ann@", "@example.com", "a b@example.com"]),
        (wire.RecipientType.PHONE, "+14155550123", ["4155550123x", "+0123456789", "+1", "+1234567890123456"]),
        (wire.RecipientType.PAYPAL_ID, "ABCDEFGHJKLMN", ["abcdefghjklmn", "ABCDEF", "ABCDEFGHJKLMN1"]),
    ],
)
def test_receivers_are_checked_for_their_type(kind: wire.RecipientType, good: str, bad: list[str]) -> None:
    assert wire.check_receiver(kind, good) == good
    for value in bad:
        with pytest.raises(ValueError, match=kind.value) as err:
            wire.check_receiver(kind, value)
        assert value not in str(err.value)  # the message names the type, never the receiver


def test_a_payout_request_is_built_from_minor_units() -> None:
    items = [
        wire.ItemSpec(wire.RecipientType.EMAIL, "ann@example.com", 1250, "USD", "claim-1:payout", "Prize"),
        wire.ItemSpec(wire.RecipientType.PAYPAL_ID, "ABCDEFGHJKLMN", 3000, "JPY", "claim-2:payout"),
    ]
    assert wire.payout_request("batch-1", "You won", items) == {
        "sender_batch_header": {"sender_batch_id": "batch-1", "email_subject": "You won", "recipient_type": "EMAIL"},
        "items": [
            {
                "recipient_type": "EMAIL",
                "amount": {"value": "12.50", "currency": "USD"},
                "receiver": "ann@example.com",
                "sender_item_id": "claim-1:payout",
                "note": "Prize",
            },
            {
                "recipient_type": "PAYPAL_ID",
                "amount": {"value": "3000", "currency": "JPY"},
                "receiver": "ABCDEFGHJKLMN",
                "sender_item_id": "claim-2:payout",
            },
        ],
    }


@pytest.mark.parametrize(
    ("batch", "spec", "match"),
    [
        ("batch 1", {}, "sender_batch_id"),
        ("b", {"sender_item_id": "k" * 64}, "sender_item_id"),
        ("b", {"amount": 0}, "positive"),
        ("b", {"receiver": "not-an-email"}, "EMAIL"),
        ("b", {"currency": "XTR"}, "pays no"),
        ("b", {"note": ""}, "note"),
    ],
)
def test_a_payout_request_paypal_would_refuse_is_refused(batch: str, spec: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {
        "recipient_type": wire.RecipientType.EMAIL,
        "receiver": "ann@example.com",
        "amount": 100,
        "currency": "USD",
        "sender_item_id": "k-1",
    }
    with pytest.raises(ValueError, match=match):
        wire.payout_request(batch, "subject", [wire.ItemSpec(**{**base, **spec})])
    one = wire.ItemSpec(**base)
    with pytest.raises(ValueError, match="once"):
        wire.payout_request("b", "subject", [one, one])
    with pytest.raises(ValueError, match="1-15000 items"):
        wire.payout_request("b", "subject", [])


# --- states and answers --------------------------------------------------------------------------------------------

OUTCOMES = {
    "SUCCESS": P.PAID,
    "PENDING": P.PENDING,
    "NEW": P.PENDING,
    "ONHOLD": P.PENDING,
    "UNCLAIMED": P.PENDING,
    "RETURNED": P.FAILED,
    "BLOCKED": P.FAILED,
    "FAILED": P.FAILED,
    "CANCELED": P.FAILED,
    "DENIED": P.FAILED,
    "REFUNDED": P.RETURNED,
    "REVERSED": P.RETURNED,
}


def test_every_item_state_means_paid_pending_not_paid_or_taken_back() -> None:
    assert set(wire.ITEM_STATES) == set(OUTCOMES)
    for state, status in OUTCOMES.items():
        assert wire.item_status(state) is status, state
    assert wire.item_status("SOMETHING_NEW") is None
    assert wire.ITEM_STATES["CANCELED"] is wire.ItemOutcome.NOT_PAID


def test_an_unpaid_items_code_is_stable_and_terminal() -> None:
    assert wire.failure_code("FAILED", "RECEIVER_UNREGISTERED") is PayoutErrorCode.DESTINATION_NOT_FOUND
    assert wire.failure_code("FAILED", None) is PayoutErrorCode.TX_FAILED
    assert wire.failure_code("BLOCKED", "SOMETHING") is PayoutErrorCode.DESTINATION_BLOCKED
    assert wire.failure_code("DENIED", None) is PayoutErrorCode.COMPLIANCE_REJECTED
    assert wire.failure_code("RETURNED", None) is PayoutErrorCode.DESTINATION_NOT_FOUND
    codes = {*wire.ITEM_ERRORS.values(), *wire.STATE_FAILURES.values()}
    assert not any(PAYOUT_ERROR_RETRYABLE[c] for c in codes)


def test_item_batch_and_error_answers_are_read() -> None:
    read = wire.read_item(item("FAILED", errors={"name": "RECEIVER_UNREGISTERED", "message": "x"}))
    assert (read.payout_item_id, read.transaction_id, read.payout_batch_id, read.sender_item_id) == (
        "8AELMXH8UB2P8",
        "0C413693MN970190K",
        "Q8KVJG9TZTNN4",
        "claim-42:payout",
    )
    assert (read.currency, read.amount, read.fee_currency, read.fee) == ("USD", 1250, "USD", 25)
    assert (read.state, read.status, read.error_name) == ("FAILED", P.FAILED, "RECEIVER_UNREGISTERED")
    for bad in (
        item(payout_item_id="../x"),
        item(transaction_status=None),
        item(payout_item=None),
        item(payout_item_fee={"currency": "USD", "value": 0.25}),
    ):
        with pytest.raises(ValueError):
            wire.read_item(bad)
    created = wire.read_batch(
        {
            "batch_header": {
                "payout_batch_id": "Q8KVJG9TZTNN4",
                "batch_status": "PENDING",
                "sender_batch_header": {"sender_batch_id": "batch-1"},
            }
        }
    )
    assert (created.payout_batch_id, created.batch_status, created.sender_batch_id, created.items) == (
        "Q8KVJG9TZTNN4",
        "PENDING",
        "batch-1",
        (),
    )
    fetched = wire.read_batch({"batch_header": {"payout_batch_id": "Q8", "batch_status": "SUCCESS"}, "items": [item()]})
    assert [i.status for i in fetched.items] == [P.PAID]
    error = wire.read_error(
        {
            "name": "VALIDATION_ERROR",
            "message": "Invalid request",
            "debug_id": "b0d4f0e7a5c1e",
            "details": [{"field": "items[0].receiver", "issue": "Receiver is invalid"}],
        }
    )
    assert error == wire.PayPalError(
        "VALIDATION_ERROR", "Invalid request", "b0d4f0e7a5c1e", (("items[0].receiver", "Receiver is invalid"),)
    )
    assert wire.read_error({"error": "invalid_client"}) is None


# --- the signature -------------------------------------------------------------------------------------------------

BODY = json.dumps(event()).encode()


def verify(hs: Mapping[str, str], body: bytes = BODY, *, secrets: tuple[str, ...] = SECRETS, now: float = NOW) -> int:
    return verify_paypal_signature(hs, body, secrets=secrets, now=now, tolerance_s=300)


def test_a_good_signature_is_accepted_with_its_transmission_time() -> None:
    assert verify(headers(BODY)) == int(NOW)
    # A rotation: the next certificate pinned beside the current one, and two webhook ids.
    assert verify(headers(BODY, key=OTHER_KEY), secrets=(WEBHOOK_ID, CERT, OTHER_CERT)) == int(NOW)
    assert verify(headers(BODY, webhook_id="1JE4291016473214C"), secrets=(WEBHOOK_ID, "1JE4291016473214C", CERT))


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered body", SignatureFailure.MISMATCH),
        ("wrong webhook id", SignatureFailure.MISMATCH),
        ("wrong cert", SignatureFailure.MISMATCH),
        ("unpinned cert url host", SignatureFailure.MISMATCH),
        ("cert url over http", SignatureFailure.MISMATCH),
        ("cert url elsewhere on the host", SignatureFailure.MISMATCH),
        ("stale", SignatureFailure.STALE),
        ("future", SignatureFailure.FUTURE),
        ("wrong algo", SignatureFailure.MALFORMED),
        ("time without a zone", SignatureFailure.MALFORMED),
        ("signature not base64", SignatureFailure.MALFORMED),
        ("a separator in the id", SignatureFailure.MALFORMED),
    ],
)
def test_a_bad_delivery_is_refused(case: str, reason: SignatureFailure) -> None:
    body, hs = BODY, headers(BODY)
    if case == "tampered body":
        body = BODY.replace(b"12.50", b"99.50")
    elif case == "wrong webhook id":
        hs = headers(BODY, webhook_id="WH0THERWEBHOOK00")
    elif case == "wrong cert":
        hs = headers(BODY, key=OTHER_KEY)
    elif case == "unpinned cert url host":
        hs["paypal-cert-url"] = "https://evil.example/v1/notifications/certs/CERT-1"
    elif case == "cert url over http":
        hs["paypal-cert-url"] = CERT_URL.replace("https://", "http://")
    elif case == "cert url elsewhere on the host":
        hs["paypal-cert-url"] = "https://api.paypal.com/v1/oauth2/token"
    elif case in ("stale", "future"):
        shift = -301 if case == "stale" else 301
        hs = headers(BODY, time=datetime.fromtimestamp(NOW + shift, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    elif case == "wrong algo":
        hs["paypal-auth-algo"] = "SHA1withRSA"
    elif case == "time without a zone":
        hs = headers(BODY, time="2025-06-15T15:06:40")
    elif case == "signature not base64":
        hs["paypal-transmission-sig"] = "not base64!"
    else:
        hs["paypal-transmission-id"] = "a|b"
    with pytest.raises(SignatureRefused) as err:
        verify(hs, body)
    assert err.value.reason is reason


@pytest.mark.parametrize("missing", sorted(headers(BODY)))
def test_a_missing_header_is_refused(missing: str) -> None:
    hs = {k: v for k, v in headers(BODY).items() if k != missing}
    with pytest.raises(SignatureRefused) as err:
        verify(hs)
    assert err.value.reason is SignatureFailure.MISSING


def test_the_pins_come_from_the_secrets_and_a_pinned_origin_replaces_paypals_hosts() -> None:
    emulator = {"paypal-cert-url": "http://127.0.0.1:12117/v1/notifications/certs/CERT-1"}
    with pytest.raises(SignatureRefused, match="pinned host"):
        verify({**headers(BODY), **emulator})
    assert verify({**headers(BODY), **emulator}, secrets=(*SECRETS, "http://127.0.0.1:12117"))
    with pytest.raises(SignatureRefused, match="pinned host"):  # PayPal's hosts no longer, once an origin is pinned
        verify(headers(BODY), secrets=(*SECRETS, "http://127.0.0.1:12117"))
    for secrets, match in [
        ((WEBHOOK_ID,), "webhook id and a pinned certificate"),
        ((CERT,), "webhook id and a pinned certificate"),
        ((WEBHOOK_ID, "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"), "no PEM certificate"),
        ((WEBHOOK_ID, self_signed(ec.generate_private_key(ec.SECP256R1()))), "not RSA"),
        (("web hook id", CERT), "webhook id"),
    ]:
        with pytest.raises(SignatureRefused, match=match) as err:
            verify(headers(BODY), secrets=secrets)
        assert err.value.reason is SignatureFailure.MISMATCH
    assert pinned(SECRETS).webhook_ids == (WEBHOOK_ID,)


# --- callbacks -----------------------------------------------------------------------------------------------------

CLAIMED = {
    "SUCCEEDED": ("SUCCESS", P.PAID),
    "UNCLAIMED": ("UNCLAIMED", P.PENDING),
    "RETURNED": ("RETURNED", P.FAILED),
    "HELD": ("ONHOLD", P.PENDING),
    "BLOCKED": ("BLOCKED", P.FAILED),
    "REFUNDED": ("REFUNDED", P.RETURNED),
    "REVERSED": ("REVERSED", P.RETURNED),
    "FAILED": ("FAILED", P.FAILED),
    "CANCELED": ("CANCELED", P.FAILED),
    "DENIED": ("DENIED", P.FAILED),
}


@pytest.mark.parametrize("kind", sorted(CLAIMED))
def test_every_item_event_is_published_with_its_items_state(kind: str) -> None:
    state, status = CLAIMED[kind]
    full = f"PAYMENT.PAYOUTS-ITEM.{kind}"
    assert wire.EVENT_CLAIMS[full] == state
    got = normalize(event(full, item(state)))
    ev = got.event
    assert isinstance(ev, ProviderEventReceived)
    assert (got.provider_event_id, got.kind, got.correlation_id) == (
        "WH-58D329510W468432D-8HN650336L201105X",
        full,
        None,
    )
    assert (ev.provider, ev.provider_payout_ref, ev.idempotency_key, ev.status) == (
        ProviderType.PAYPAL,
        "8AELMXH8UB2P8",
        "claim-42:payout",
        status,
    )
    assert ev.fee == (Money(asset="USD", amount=25) if status is P.PAID else None)
    assert (ev.error_code is not None) == (status is P.FAILED)


@pytest.mark.parametrize("state", sorted(OUTCOMES))
def test_an_item_that_moved_on_is_published_with_its_current_state(state: str) -> None:
    ev = normalize(event(wire.MOVED_ON_KIND, item(state))).event
    assert isinstance(ev, ProviderEventReceived)
    assert ev.status is OUTCOMES[state]


def test_a_body_at_odds_with_its_type_says_nothing() -> None:
    ev = normalize(event("PAYMENT.PAYOUTS-ITEM.SUCCEEDED", item("FAILED"))).event
    assert isinstance(ev, ProviderEventReceived)
    assert (ev.status, ev.error_code) == (None, None)


@pytest.mark.parametrize(
    "kind",
    [
        "PAYMENT.PAYOUTSBATCH.SUCCESS",
        "PAYMENT.PAYOUTSBATCH.PROCESSING",
        "PAYMENT.PAYOUTSBATCH.DENIED",
        "PAYMENT.CAPTURE.COMPLETED",
    ],
)
def test_batch_events_and_other_types_are_ignored(kind: str) -> None:
    batch = {"batch_header": {"payout_batch_id": "Q8KVJG9TZTNN4", "batch_status": "SUCCESS"}}
    got = normalize({**event(kind, batch), "resource_type": "payouts"})
    assert (got.event, got.ignored, got.kind) == (None, IgnoredReason.KIND_NOT_HANDLED, kind)


def test_an_item_prizeflow_did_not_send_is_ignored_and_a_malformed_one_refused() -> None:
    theirs = item(payout_item={**item()["payout_item"], "sender_item_id": "not ours!"})
    assert normalize(event(resource=theirs)).ignored is IgnoredReason.NOT_A_PAYOUT
    anonymous = item(payout_item={k: v for k, v in item()["payout_item"].items() if k != "sender_item_id"})
    assert normalize(event(resource=anonymous)).ignored is IgnoredReason.NOT_A_PAYOUT
    # Another user of the account paying under a key of our shape: its batch is not one Prizeflow sends.
    assert normalize(event(resource=item(sender_batch_id="Payouts_1753867886"))).ignored is IgnoredReason.NOT_A_PAYOUT
    for foreign in ("Payouts 2026-11-28", "x" * 256, "", "Auszahlung-März"):  # whatever PayPal accepts from them
        assert normalize(event(resource=item(sender_batch_id=foreign))).ignored is IgnoredReason.NOT_A_PAYOUT
    assert normalize(event(resource=item(sender_batch_id="pf-0af3"))).event is not None
    assert normalize(event(resource={k: v for k, v in item().items() if k != "sender_batch_id"})).event is not None
    for bad in (
        {**event(), "id": ""},
        {**event(), "event_type": "PAYMENT PAYOUTS"},
        event(resource=item(payout_item_id="bad/id")),
        event(resource=item(payout_item_fee={"currency": "USD", "value": "0.255"})),
        event(resource=item(payout_item_fee={"currency": "EUR", "value": "0.25"})),  # no Prizeflow asset for a fee
    ):
        with pytest.raises(NormalizationError):
            normalize(bad)


def test_what_is_kept_has_no_receiver_note_or_free_text() -> None:
    doc = event("PAYMENT.PAYOUTS-ITEM.FAILED", item("FAILED", errors={"name": "RISK_DECLINE", "message": "Ann ..."}))
    kept = json.loads(PayPalReader().kept(doc) or b"")
    text = json.dumps(kept)
    for personal in ("ann@example.com", "Thanks for playing", "Ann", "summary", "links"):
        assert personal not in text
    assert kept["resource"]["payout_item"] == {
        "sender_item_id": "claim-42:payout",
        "amount": {"currency": "USD", "value": "12.50"},
        "recipient_type": "EMAIL",
        "recipient_wallet": "PAYPAL",
    }
    assert kept["resource"]["errors"] == {"name": "RISK_DECLINE"}
    assert kept["id"] == doc["id"]
    batch = {
        "batch_header": {
            "payout_batch_id": "Q8",
            "batch_status": "SUCCESS",
            "sender_batch_header": {"sender_batch_id": "b-1", "email_subject": "Hi Ann"},
        }
    }
    kept_batch = json.loads(PayPalReader().kept(event("PAYMENT.PAYOUTSBATCH.SUCCESS", batch)) or b"")
    assert kept_batch["resource"] == {
        "batch_header": {
            "payout_batch_id": "Q8",
            "batch_status": "SUCCESS",
            "sender_batch_header": {"sender_batch_id": "b-1"},
        }
    }


# --- the reader ----------------------------------------------------------------------------------------------------


@dataclass
class Items:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def fetch_item(self, payout_item_id: str) -> Mapping[str, Any] | None:
        self.asked.append(payout_item_id)
        return self.items.get(payout_item_id)


def test_the_reader_is_registered_and_confirms_outside_dev_with_a_client_id() -> None:
    reader = WEBHOOK_READERS["paypal"]
    assert isinstance(reader, PayPalReader)
    terms = reader.terms
    assert terms.headers[0] == "paypal-transmission-sig"
    assert (terms.serves, terms.confirm, terms.confirm_outside_dev, terms.key_id) == (
        frozenset({ProviderType.PAYPAL}),
        "optional",
        True,
        True,
    )
    assert incoherence(terms, ProviderType.PAYPAL, confirms=True, key_id=True) is None
    assert incoherence(terms, ProviderType.PAYPAL, confirms=True, key_id=False) is not None
    assert incoherence(terms, ProviderType.STRIPE, confirms=True, key_id=True) is not None
    assert ProviderType.PAYPAL not in WEBHOOK_READERS["prizeflow_signature"].terms.serves
    assert reader.identify(event(), {}) == "WH-58D329510W468432D-8HN650336L201105X"


async def test_confirming_reads_the_item_as_paypal_holds_it_now() -> None:
    reader, items = PayPalReader(), Items()
    with pytest.raises(NotConfirmed) as missing:
        await reader.confirm_with(items, event(), {})
    assert missing.value.outcome == "not_found"
    items.items["8AELMXH8UB2P8"] = events.redact_item(item())
    confirmed = await reader.confirm_with(items, event(), {})
    assert confirmed.doc["event_type"] == "PAYMENT.PAYOUTS-ITEM.SUCCEEDED"
    assert "receiver" not in confirmed.doc["resource"]["payout_item"]
    # Paid then reversed since: the event says SUCCEEDED, PayPal now REVERSED: the current state is published.
    items.items["8AELMXH8UB2P8"] = item("REVERSED")
    moved = await reader.confirm_with(items, event(), {})
    assert moved.doc["event_type"] == wire.MOVED_ON_KIND
    ev = normalize(moved.doc).event
    assert isinstance(ev, ProviderEventReceived)
    assert ev.status is P.RETURNED
    for other in (
        item(payout_item={**item()["payout_item"], "sender_item_id": "claim-43:payout"}),
        item(payout_batch_id="ANOTHERBATCH1"),
    ):
        items.items["8AELMXH8UB2P8"] = other
        with pytest.raises(NotConfirmed) as mismatch:
            await reader.confirm_with(items, event(), {})
        assert mismatch.value.outcome == "mismatch"
    asked = len(items.asked)
    batch = event("PAYMENT.PAYOUTSBATCH.SUCCESS", {"batch_header": {"payout_batch_id": "Q8"}})
    assert await reader.confirm_with(items, batch, {}) == Confirmed(batch)
    assert len(items.asked) == asked  # a batch's event is never asked about
