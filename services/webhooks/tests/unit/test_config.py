"""The providers file: what it refuses (naming the culprit, never a secret's value) and what it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prizeflow_contracts.providers import ProviderType
from prizeflow_webhooks.adapters.config import ProvidersConfigError, load_config, parse_config
from prizeflow_webhooks.domain.deliveries import Scheme

ENV = {
    "WEBHOOK_SECRET_SANDBOX": "sandbox-secret-0123456789",
    "STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
    "STRIPE_WEBHOOK_SECRET_NEXT": "whsec_next_0123456789ab",
    "STRIPE_API_KEY": "sk_test_0123456789abcdef",
    "STRIPE_API_URL": "http://127.0.0.1:12111",
    "GIFTCARD_WEBHOOK_KEY": "giftcard-webhook-key-0123456789",
    "GIFTCARD_API_KEY": "TEST_giftcard_0123456789",
    "GIFTCARD_API_URL": "http://127.0.0.1:12112",
}
SANDBOX = {"name": "sandbox", "type": "sandbox", "scheme": "prizeflow_signature", "secrets": ["WEBHOOK_SECRET_SANDBOX"]}
STRIPE: dict[str, Any] = {
    "name": "stripe",
    "type": "stripe",
    "scheme": "stripe_signature",
    "secrets": ["STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET_NEXT"],
    "confirm": {"api_base": "https://api.stripe.com", "api_key": "STRIPE_API_KEY", "timeout_s": 3},
}


def parse(*providers: dict[str, Any], dev: bool = False, env: dict[str, str] = ENV) -> Any:
    return parse_config({"providers": list(providers)}, dev=dev, env=env)


def test_a_valid_file_builds_providers_with_their_secrets_and_confirmation() -> None:
    config = parse(SANDBOX, STRIPE)
    sandbox, stripe = config.providers["sandbox"], config.providers["stripe"]
    assert sandbox.type is ProviderType.SANDBOX
    assert sandbox.scheme is Scheme.PRIZEFLOW_SIGNATURE
    assert (sandbox.tolerance_s, sandbox.max_body_bytes, sandbox.confirms) == (300, 65_536, False)
    assert stripe.secrets == (ENV["STRIPE_WEBHOOK_SECRET"], ENV["STRIPE_WEBHOOK_SECRET_NEXT"])
    assert stripe.confirms
    confirm = config.confirm["stripe"]
    assert (confirm.api_base, confirm.api_key, confirm.timeout_s) == (
        "https://api.stripe.com",
        ENV["STRIPE_API_KEY"],
        3,
    )
    assert ENV["STRIPE_API_KEY"] not in repr(confirm)
    assert ENV["WEBHOOK_SECRET_SANDBOX"] not in repr(sandbox)


def test_the_api_base_may_come_from_a_variable_in_the_dev_profile() -> None:
    stripe = {**STRIPE, "confirm": {"api_base_env": "STRIPE_API_URL", "api_key": "STRIPE_API_KEY"}}
    assert parse(stripe, dev=True).confirm["stripe"].api_base == "http://127.0.0.1:12111"


@pytest.mark.parametrize(
    ("provider", "dev", "env", "says"),
    [
        ({**SANDBOX, "secrets": ["MISSING_SECRET"]}, False, ENV, "MISSING_SECRET, which is not set"),
        ({**SANDBOX, "secrets": ["WEBHOOK_SECRET_SANDBOX"]}, False, {"WEBHOOK_SECRET_SANDBOX": "tiny-9k"}, "shorter"),
        ({**SANDBOX, "secrets": ["whsec_live_value"]}, False, ENV, "must name an environment variable"),
        ({**SANDBOX, "secrets": ["S" + "A" * 55]}, False, ENV, "must name an environment variable"),
        ({**SANDBOX, "secrets": ["A" * 65]}, False, ENV, "must name an environment variable"),
        ({**SANDBOX, "secrets": []}, False, ENV, "secrets"),
        ({**SANDBOX, "secrets": ["WEBHOOK_SECRET_SANDBOX"] * 2}, False, ENV, "twice"),
        ({**SANDBOX, "tolerance_s": 901}, False, ENV, "tolerance_s"),
        ({**SANDBOX, "max_body_bytes": 2_000_000}, False, ENV, "max_body_bytes"),
        ({**SANDBOX, "type": "carrier_pigeon"}, False, ENV, "type"),
        ({**SANDBOX, "name": "Bad-Name"}, False, ENV, "name"),
        ({**SANDBOX, "surprise": 1}, False, ENV, "surprise"),
        ({**SANDBOX, "scheme": "stripe_signature"}, False, ENV, "only a stripe provider"),
        ({**STRIPE, "scheme": "prizeflow_signature"}, False, ENV, "stripe_signature"),
        ({**SANDBOX, "confirm": STRIPE["confirm"]}, False, ENV, "stripe providers only"),
        ({k: v for k, v in STRIPE.items() if k != "confirm"}, False, ENV, "outside the dev profile"),
        ({**STRIPE, "confirm": {**STRIPE["confirm"], "api_base": "http://api.stripe.com"}}, False, ENV, "https://"),
        ({**STRIPE, "confirm": {**STRIPE["confirm"], "api_key": "NO_KEY"}}, False, ENV, "NO_KEY, which is not set"),
        ({**STRIPE, "confirm": {"api_key": "STRIPE_API_KEY"}}, False, ENV, "exactly one of api_base"),
        ({**STRIPE, "confirm": {"api_base_env": "NO_URL", "api_key": "STRIPE_API_KEY"}}, True, ENV, "NO_URL"),
    ],
)
def test_an_unusable_provider_stops_start_up_naming_it(
    provider: dict[str, Any], dev: bool, env: dict[str, str], says: str
) -> None:
    with pytest.raises(ProvidersConfigError) as refused:
        parse(provider, dev=dev, env=env)
    assert says in str(refused.value)
    for value in env.values():
        assert value not in str(refused.value)


def test_stripe_without_confirmation_is_allowed_in_the_dev_profile_only() -> None:
    unconfirmed = {k: v for k, v in STRIPE.items() if k != "confirm"}
    assert not parse(unconfirmed, dev=True).providers["stripe"].confirms


def test_names_must_be_unique_and_the_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ProvidersConfigError, match="unique"):
        parse(SANDBOX, SANDBOX)
    with pytest.raises(ProvidersConfigError, match="WEBHOOKS_PROVIDERS_FILE"):
        load_config(tmp_path / "absent.yaml", dev=False, env=ENV)
    (tmp_path / "bad.yaml").write_text("providers: [")
    with pytest.raises(ProvidersConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml", dev=False, env=ENV)
    with pytest.raises(ProvidersConfigError, match="providers"):
        parse_config([], dev=False, env=ENV)


def test_the_local_stacks_file_is_valid_with_the_devstack_variables() -> None:
    local = Path(__file__).parents[4] / "deploy" / "local" / "webhooks.yaml"
    config = load_config(local, dev=True, env=ENV)
    assert {"sandbox", "stripe", "giftcard"} <= set(config.providers)
