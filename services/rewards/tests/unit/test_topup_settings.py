"""Top-up configuration fails closed: a missing or unusable setting stops start-up naming it, never a value."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from prizeflow_rewards.settings import RewardsSettings
from prizeflow_testkit.kafka import production_kafka
from prizeflow_testkit.production import PRODUCTION_DATABASE_URL

PRODUCTION: dict[str, Any] = {
    "prizeflow_profile": "production",
    "jwt_jwks_url": "https://id.example/jwks.json",
    "jwt_issuer": "https://id.example/",
    "jwt_audience": "prizeflow-rewards",
    "kafka_security": production_kafka(),
    "database_url": PRODUCTION_DATABASE_URL,  # production has no default database
}
STRIPE: dict[str, Any] = {
    "rewards_topup_provider": "stripe",
    "stripe_api_key": "sk_test_abc",
    "rewards_topup_success_url": "https://play.example/ok",
    "rewards_topup_cancel_url": "https://play.example/cancel",
}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "REWARDS_TOPUP_PROVIDER is not set"),
        ({"rewards_topup_provider": "sandbox"}, "REWARDS_TOPUP_PROVIDER=sandbox is for PRIZEFLOW_PROFILE=dev only"),
        ({**STRIPE, "stripe_api_key": None}, "STRIPE_API_KEY is not set"),
        ({**STRIPE, "stripe_api_key": "pk_test_abc"}, "STRIPE_API_KEY is not a Stripe secret or restricted key"),
        ({**STRIPE, "rewards_topup_cancel_url": None}, "REWARDS_TOPUP_CANCEL_URL not set"),
        ({**STRIPE, "stripe_api_url": "http://127.0.0.1:12111"}, "STRIPE_API_URL must start with https://"),
    ],
)
def test_production_refuses_to_start_naming_the_setting(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        RewardsSettings(**PRODUCTION, **values)
    assert message in str(err.value)
    assert "sk_test_abc" not in str(err.value)
    assert "pk_test_abc" not in str(err.value)


def test_production_with_stripe_and_dev_with_the_sandbox_start() -> None:
    assert RewardsSettings(**PRODUCTION, **STRIPE).topup_provider == "stripe"
    assert RewardsSettings(prizeflow_profile="dev").topup_provider == "sandbox"  # the dev default
    dev_stripe = RewardsSettings(prizeflow_profile="dev", rewards_topup_provider="stripe", stripe_api_key="sk_test_x")
    assert dev_stripe.checkout_urls[0].startswith("http://127.0.0.1/")


def test_in_the_devstack_a_payer_back_from_checkout_lands_on_the_consoles_wallet() -> None:
    dev = RewardsSettings(prizeflow_profile="dev", console_url="http://127.0.0.1:4100/")
    assert dev.checkout_urls == ("http://127.0.0.1:4100/wallet", "http://127.0.0.1:4100/wallet")
    production = RewardsSettings(**PRODUCTION, **STRIPE, console_url="http://127.0.0.1:4100")
    assert "4100" not in " ".join(production.checkout_urls)  # production names its own URLs
