"""The service builds from its settings without touching the network; a bad providers file stops it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from litestar import Litestar

from prizeflow_contracts.rails.registry import WEBHOOK_READERS
from prizeflow_devstack.devenv import local_providers, stand_in_env
from prizeflow_devstack.platform import RAIL_EMULATORS
from prizeflow_webhooks.adapters.config import ProvidersConfigError
from prizeflow_webhooks.adapters.confirm_apis import CONFIRM_CLIENTS
from prizeflow_webhooks.bootstrap import build
from prizeflow_webhooks.settings import WebhooksSettings

ROOT = Path(__file__).parents[4]
ENV = {
    # What the stand-ins bring for themselves and their clients (a rail's webhook id and pinned certificate...), and
    # where the local stack finds each (`<SERVICE>_URL`), as the devstack gives them.
    **stand_in_env(ROOT),
    **{f"{name.upper().replace('-', '_')}_URL": "http://127.0.0.1:12117" for name in RAIL_EMULATORS},
    "WEBHOOK_SECRET_SANDBOX": "sandbox-secret-0123456789",
    "STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
    "STRIPE_API_KEY": "sk_test_0123456789abcdef",
    "STRIPE_API_URL": "http://127.0.0.1:12111",
    "GIFTCARD_WEBHOOK_KEY": "giftcard-webhook-key-0123456789",
    "GIFTCARD_API_KEY": "TEST_giftcard_0123456789",
    "GIFTCARD_API_URL": "http://127.0.0.1:12112",
    "SUMSUB_WEBHOOK_SECRET": "sumsub-webhook-secret-0123456789",
    "RAZORPAYX_WEBHOOK_SECRET": "razorpayx-webhook-secret-0123456789",
}


def settings(path: Path) -> WebhooksSettings:
    return WebhooksSettings(
        kafka_bootstrap_servers="127.0.0.1:1",
        database_url="postgresql://x@127.0.0.1:1/x",
        webhooks_providers_file=path,
        prizeflow_profile="dev",
    )


def local_parts(tmp_path: Path) -> Path:
    """The local stack's providers directory as the devstack links it: deploy/local's part and each stand-in's."""
    return Path(local_providers(ROOT, tmp_path)["WEBHOOKS_PROVIDERS_FILE"])


def test_the_app_builds_and_documents_the_operators_api(tmp_path: Path) -> None:
    parts = local_parts(tmp_path)
    ingress = build(settings(parts), env=ENV)
    assert isinstance(ingress.app, Litestar)
    paths = set(ingress.app.openapi_schema.paths or {})
    assert {
        "/admin/deliveries",
        "/admin/deliveries/{delivery_id}",
        "/admin/deliveries/{delivery_id}/republish",
    } <= paths
    local = [p for part in sorted(parts.glob("*.yaml")) for p in yaml.safe_load(part.read_text())["providers"]]
    assert set(ingress.receive_webhook.providers) == {p["name"] for p in local}
    assert {"sandbox", "stripe", "giftcard", "sumsub", "razorpayx"} <= set(ingress.receive_webhook.providers)
    # Each provider configured with `confirm` gets its scheme's client; the others none.
    apis = ingress.receive_webhook.apis
    assert {name: type(api) for name, api in apis.items()} == {
        p["name"]: CONFIRM_CLIENTS[p["scheme"]] for p in local if "confirm" in p
    }
    assert {"stripe": "StripeEventConfirmer", "giftcard": "GiftCardOrderFetcher"}.items() <= {
        name: type(api).__name__ for name, api in apis.items()
    }.items()


def test_every_scheme_a_rail_confirms_has_a_client_and_every_client_a_confirming_scheme() -> None:
    confirming = {s for s, reader in WEBHOOK_READERS.items() if reader.terms.confirm != "never"}
    assert confirming == set(CONFIRM_CLIENTS)


def test_a_missing_secret_stops_the_build_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ProvidersConfigError, match="STRIPE_WEBHOOK_SECRET"):
        build(settings(local_parts(tmp_path)), env={k: v for k, v in ENV.items() if k != "STRIPE_WEBHOOK_SECRET"})


def test_the_providers_file_setting_is_required() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="webhooks_providers_file"):
        WebhooksSettings(prizeflow_profile="dev")
