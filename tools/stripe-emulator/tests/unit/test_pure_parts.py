"""Form decoding, parameter checks, signatures (against the official library), idempotency keys, faults,
settings: the emulator's pure parts."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import pytest
import stripe

from prizeflow_emulator_kit.faults import FaultKind, Faults
from prizeflow_stripe_emulator.errors import StripeError
from prizeflow_stripe_emulator.forms import parse_form
from prizeflow_stripe_emulator.idempotency import KEY_TTL_S, IdempotencyStore, Stored
from prizeflow_stripe_emulator.models import Params, paginate
from prizeflow_stripe_emulator.server import FAULT_KINDS
from prizeflow_stripe_emulator.settings import EmulatorSettings, SettingsError
from prizeflow_stripe_emulator.signing import stripe_signature


def stripe_encoded(params: dict[str, Any]) -> list[tuple[str, str]]:
    """What the official library puts on the wire for `params`."""
    from stripe._encode import _api_encode

    encoded = urllib.parse.urlencode(list(_api_encode(params)))
    return urllib.parse.parse_qsl(encoded, keep_blank_values=True)


def test_forms_decode_what_the_official_library_encodes() -> None:
    params = {
        "mode": "payment",
        "line_items": [
            {"price_data": {"currency": "eur", "unit_amount": 2500, "product_data": {"name": "Top-up"}}, "quantity": 1}
        ],
        "metadata": {"top_up_id": "tu-1", "player_id": "p-1"},
        "payment_intent_data": {"metadata": {"top_up_id": "tu-1"}},
        "expand": ["payment_intent"],
        "enabled_events": ["*"],
    }
    assert parse_form(stripe_encoded(params)) == {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "eur", "unit_amount": "2500", "product_data": {"name": "Top-up"}},
                "quantity": "1",
            }
        ],
        "metadata": {"top_up_id": "tu-1", "player_id": "p-1"},
        "payment_intent_data": {"metadata": {"top_up_id": "tu-1"}},
        "expand": ["payment_intent"],
        "enabled_events": ["*"],
    }


def test_forms_append_brackets_and_refuse_conflicts() -> None:
    assert parse_form([("expand[]", "a"), ("expand[]", "b")]) == {"expand": ["a", "b"]}
    with pytest.raises(StripeError) as err:
        parse_form([("metadata", "x"), ("metadata[k]", "v")])
    assert err.value.status == 400
    with pytest.raises(StripeError):
        parse_form([("a]b", "x")])


def test_params_refuse_unknown_missing_and_malformed() -> None:
    with pytest.raises(StripeError) as err:
        Params({"amount": "1", "amout": "2"}, frozenset({"amount"}))
    assert (err.value.code, err.value.param) == ("parameter_unknown", "amout")
    p = Params({"amount": "1.5", "currency": "EURO", "metadata": {"k" * 41: "v"}}, frozenset({"amount", "currency",
                                                                                              "metadata"}))  # fmt: skip
    with pytest.raises(StripeError, match="Invalid integer"):
        p.req_integer("amount")
    with pytest.raises(StripeError, match="Invalid currency"):
        p.currency()
    with pytest.raises(StripeError, match="40 characters"):
        p.metadata()
    with pytest.raises(StripeError) as missing:
        Params({}, frozenset({"destination"})).req_text("destination")
    assert (missing.value.code, missing.value.param) == ("parameter_missing", "destination")
    nested = Params({"line_items": [{"price_data": {"bogus": "1"}}]}, frozenset({"line_items"}))
    with pytest.raises(StripeError) as deep:
        nested.objects("line_items", frozenset({"price_data"}))[0].nested("price_data", frozenset({"currency"}))
    assert deep.value.param == "line_items[0][price_data][bogus]"
    assert Params({"metadata": {"a": "1", "b": ""}}, frozenset({"metadata"})).metadata() == {"a": "1"}


def test_pagination_walks_forward_and_back() -> None:
    items = [{"id": f"o{i}", "created": 10 - i} for i in range(5)]
    first = paginate(items, {"limit": "2"}, "/v1/x")
    assert [o["id"] for o in first["data"]] == ["o0", "o1"]
    assert first["has_more"]
    second = paginate(items, {"limit": "2", "starting_after": "o1"}, "/v1/x")
    assert [o["id"] for o in second["data"]] == ["o2", "o3"]
    assert second["has_more"]
    back = paginate(items, {"limit": "2", "ending_before": "o2"}, "/v1/x")
    assert [o["id"] for o in back["data"]] == ["o0", "o1"]
    assert not back["has_more"]
    with pytest.raises(StripeError):
        paginate(items, {"limit": "101"}, "/v1/x")


def test_signature_verifies_with_the_official_library() -> None:
    body = json.dumps({"id": "evt_1", "object": "event", "type": "payout.paid", "data": {"object": {}}}).encode()
    now = int(time.time())
    header = stripe_signature(["whsec_current"], now, body)
    stripe.WebhookSignature.verify_header(body.decode(), header, "whsec_current", tolerance=300)
    event = stripe.Webhook.construct_event(body.decode(), header, "whsec_current")
    assert event.id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), header, "whsec_other", tolerance=300)


def test_a_rotation_signs_with_every_secret_and_each_verifies() -> None:
    body = b'{"id": "evt_2"}'
    header = stripe_signature(["whsec_new", "whsec_old"], int(time.time()), body)
    assert header.count("v1=") == 2
    for secret in ("whsec_new", "whsec_old"):
        stripe.WebhookSignature.verify_header(body.decode(), header, secret, tolerance=300)


def test_a_stale_timestamp_is_refused_by_the_official_library() -> None:
    body = b'{"id": "evt_3"}'
    header = stripe_signature(["whsec_s"], int(time.time()) - 600, body)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(body.decode(), header, "whsec_s", tolerance=300)


def test_the_same_key_replays_and_other_parameters_are_an_idempotency_error() -> None:
    store = IdempotencyStore()
    scope = ("sk_test_a", None, "key-1")
    fingerprint = (("amount", "100"),)
    assert store.lookup(scope, "POST", "/v1/transfers", fingerprint, now=0) is None
    stored = Stored("POST", "/v1/transfers", fingerprint, 200, b"{}", "req_1", at=0)
    store.store(scope, stored)
    assert store.lookup(scope, "POST", "/v1/transfers", fingerprint, now=10) is stored
    with pytest.raises(StripeError) as other:
        store.lookup(scope, "POST", "/v1/transfers", (("amount", "101"),), now=10)
    assert (other.value.status, other.value.type) == (400, "idempotency_error")
    with pytest.raises(StripeError, match="same endpoint"):
        store.lookup(scope, "POST", "/v1/payouts", fingerprint, now=10)
    assert store.lookup(("sk_test_b", None, "key-1"), "POST", "/v1/transfers", fingerprint, now=10) is None
    assert store.lookup(("sk_test_a", "acct_1", "key-1"), "POST", "/v1/transfers", fingerprint, now=10) is None
    assert store.lookup(scope, "POST", "/v1/transfers", fingerprint, now=KEY_TTL_S + 1) is None


def test_faults_match_method_and_prefix_for_the_next_n_calls() -> None:
    faults = Faults(FAULT_KINDS, path_prefixes=("/v1",))
    faults.add("rate_limit", method="post", path_prefix="/v1/transfers", count=2)
    assert faults.take("GET", "/v1/transfers/tr_1") is None
    first = faults.take("POST", "/v1/transfers")
    assert first is not None
    assert first.kind is FaultKind.RATE_LIMIT
    assert faults.take("POST", "/v1/transfers/tr_1/reversals") is not None
    assert faults.take("POST", "/v1/transfers") is None
    assert len(faults.triggered) == 2
    with pytest.raises(ValueError):
        faults.add("nonsense")
    with pytest.raises(ValueError, match="path_prefix must start with /v1"):
        faults.add("rate_limit", path_prefix="/_emulator")
    assert FaultKind.TIMEOUT_AFTER_SUCCESS.after_processing
    assert not FaultKind.API_ERROR.after_processing


def test_settings_fail_closed_and_parse_lists() -> None:
    with pytest.raises(SettingsError, match="STRIPE_EMULATOR_API_KEYS"):
        EmulatorSettings.from_env({})
    settings = EmulatorSettings.from_env(
        {
            "STRIPE_EMULATOR_API_KEYS": "sk_test_a, sk_test_b",
            "STRIPE_EMULATOR_PORT": "4242",
            "STRIPE_EMULATOR_WEBHOOK_ENDPOINTS": "http://127.0.0.1:8080/webhooks/stripe|whsec_x",
            "STRIPE_EMULATOR_PLATFORM_BALANCE": "EUR:1000,usd:5",
            "STRIPE_EMULATOR_ACCOUNTS": "acct_a,acct_b",
        }
    )
    assert settings.api_keys == ("sk_test_a", "sk_test_b")
    assert settings.base_url == "http://127.0.0.1:4242"
    assert settings.webhook_endpoints[0].secret == "whsec_x"
    assert settings.platform_balance == {"eur": 1000, "usd": 5}
    assert settings.accounts == ("acct_a", "acct_b")
    with pytest.raises(SettingsError, match="STRIPE_EMULATOR_WEBHOOK_ENDPOINTS"):
        EmulatorSettings.from_env({"STRIPE_EMULATOR_API_KEYS": "k", "STRIPE_EMULATOR_WEBHOOK_ENDPOINTS": "nope"})
    with pytest.raises(SettingsError, match="STRIPE_EMULATOR_PORT"):
        EmulatorSettings.from_env({"STRIPE_EMULATOR_API_KEYS": "k", "STRIPE_EMULATOR_PORT": "x"})


def test_webhook_endpoints_may_name_variables_of_the_environment() -> None:
    env = {
        "STRIPE_EMULATOR_API_KEYS": "k",
        "STRIPE_EMULATOR_WEBHOOK_ENDPOINTS": "${WEBHOOKS_URL}/providers/stripe/events|${SHARED}",
        "WEBHOOKS_URL": "http://127.0.0.1:9000",
        "SHARED": "whsec_shared",
    }
    (endpoint,) = EmulatorSettings.from_env(env).webhook_endpoints
    assert (endpoint.url, endpoint.secret) == ("http://127.0.0.1:9000/providers/stripe/events", "whsec_shared")
    with pytest.raises(SettingsError, match=r"names \$\{SHARED\}, which is not set"):
        EmulatorSettings.from_env({k: v for k, v in env.items() if k != "SHARED"})


def test_signature_verifies_with_prizeflow_contracts_during_a_rotation() -> None:
    """The ingress verifies with `prizeflow_contracts.webhook_signatures`; it must accept what the emulator sends."""
    from prizeflow_contracts.webhook_signatures import STRIPE_SIGNATURE_HEADER, SignatureRefused, verify

    body = b'{"id": "evt_4"}'
    now = int(time.time())
    headers = {"Stripe-Signature": stripe_signature(["whsec_new", "whsec_old"], now, body)}
    for secret in ("whsec_new", "whsec_old"):
        assert verify(headers, body, header_name=STRIPE_SIGNATURE_HEADER, secrets=[secret], now=now) == now
    with pytest.raises(SignatureRefused):
        verify(headers, body, header_name=STRIPE_SIGNATURE_HEADER, secrets=["whsec_other"], now=now)
