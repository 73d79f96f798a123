"""The service builds from its settings without touching the network; a bad providers file stops it."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar import Litestar

from prizeflow_contracts.rails.registry import WEBHOOK_READERS
from prizeflow_paypal_emulator.signing import generate
from prizeflow_webhooks.adapters.config import ProvidersConfigError
from prizeflow_webhooks.adapters.confirm_apis import CONFIRM_CLIENTS
from prizeflow_webhooks.bootstrap import build
from prizeflow_webhooks.settings import WebhooksSettings

LOCAL = Path(__file__).parents[4] / "deploy" / "local" / "webhooks.yaml"
ENV = {
    "WEBHOOK_SECRET_SANDBOX": "sandbox-secret-0123456789",
    "STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
    "STRIPE_API_KEY": "sk_test_0123456789abcdef",
    "STRIPE_API_URL": "http://127.0.0.1:12111",
    "GIFTCARD_WEBHOOK_KEY": "giftcard-webhook-key-0123456789",
    "GIFTCARD_API_KEY": "TEST_giftcard_0123456789",
    "GIFTCARD_API_URL": "http://127.0.0.1:12112",
    "SUMSUB_WEBHOOK_SECRET": "sumsub-webhook-secret-0123456789",
    "RAZORPAYX_WEBHOOK_SECRET": "razorpayx-webhook-secret-0123456789",
    # The PayPal rail's (deploy/local/webhooks.yaml): its webhook's id and pinned certificate, the emulator's origin.
    "PAYPAL_WEBHOOK_ID": "WH0123456789ABCDEFGHIJ",
    "PAYPAL_WEBHOOK_CERT": generate().cert_pem.decode(),
    "PAYPAL_API_URL": "http://127.0.0.1:12117",
    "PAYPAL_CLIENT_ID": "AZ-paypal-client-0123456789",
    "PAYPAL_CLIENT_SECRET": "paypal-client-secret-0123456789",
}


def settings(path: Path) -> WebhooksSettings:
    return WebhooksSettings(
        kafka_bootstrap_servers="127.0.0.1:1",
        database_url="postgresql://x@127.0.0.1:1/x",
        webhooks_providers_file=path,
        prizeflow_profile="dev",
    )


def test_the_app_builds_and_documents_the_operators_api() -> None:
    ingress = build(settings(LOCAL), env=ENV)
    assert isinstance(ingress.app, Litestar)
    paths = set(ingress.app.openapi_schema.paths or {})
    assert {
        "/admin/deliveries",
        "/admin/deliveries/{delivery_id}",
        "/admin/deliveries/{delivery_id}/republish",
    } <= paths
    assert set(ingress.receive_webhook.providers) == {"sandbox", "stripe", "giftcard", "sumsub", "razorpayx", "paypal"}
    # Each provider configured with `confirm` gets its scheme's client; the others none.
    apis = ingress.receive_webhook.apis
    assert {name: type(api).__name__ for name, api in apis.items()} == {
        "stripe": "StripeEventConfirmer",
        "giftcard": "GiftCardOrderFetcher",
        "paypal": "PayPalItemFetcher",
    }


def test_every_scheme_a_rail_confirms_has_a_client_and_every_client_a_confirming_scheme() -> None:
    confirming = {s for s, reader in WEBHOOK_READERS.items() if reader.terms.confirm != "never"}
    assert confirming == set(CONFIRM_CLIENTS)


def test_a_missing_secret_stops_the_build_naming_the_variable() -> None:
    with pytest.raises(ProvidersConfigError, match="STRIPE_WEBHOOK_SECRET"):
        build(settings(LOCAL), env={k: v for k, v in ENV.items() if k != "STRIPE_WEBHOOK_SECRET"})


def test_the_providers_file_setting_is_required() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="webhooks_providers_file"):
        WebhooksSettings(prizeflow_profile="dev")
