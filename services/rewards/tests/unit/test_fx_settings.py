"""Conversion's configuration fails closed: a pair enabled without the rates provider's App ID stops start-up outside
dev, naming the setting (never a value); a malformed pair or spread too."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from prizeflow_rewards.bootstrap import rates_provider
from prizeflow_rewards.settings import RewardsSettings
from prizeflow_testkit.kafka import production_kafka
from prizeflow_testkit.production import PRODUCTION_DATABASE_URL

PRODUCTION: dict[str, Any] = {
    "prizeflow_profile": "production",
    "jwt_jwks_url": "https://id.example/jwks.json",
    "jwt_issuer": "https://id.example/",
    "jwt_audience": "prizeflow-rewards",
    "kafka_security": production_kafka(),
    "database_url": PRODUCTION_DATABASE_URL,
}
STRIPE: dict[str, Any] = {
    "rewards_topup_provider": "stripe",
    "stripe_api_key": "sk_test_abc",
    "rewards_topup_success_url": "https://play.example/ok",
    "rewards_topup_cancel_url": "https://play.example/cancel",
}
PAIRS: dict[str, Any] = {"rewards_fx_pairs": {"USD/INR": 150}}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (PAIRS, "RATES_APP_ID is not set"),
        ({**PAIRS, "rates_app_id": ""}, "RATES_APP_ID is not set"),
        ({**PAIRS, "rates_app_id": "k", "rates_api_url": "http://127.0.0.1:12116"}, "RATES_API_URL must start with"),
        ({"rewards_fx_pairs": {"USD-INR": 150}}, "an FX pair is SOURCE/TARGET"),
        ({"rewards_fx_pairs": {"USD/DOGE": 150}}, "an FX pair is SOURCE/TARGET"),
        ({"rewards_fx_pairs": {"USD/INR": 10_000}}, "0..9999 basis points"),
    ],
)
def test_conversion_outside_dev_refuses_to_start_without_what_it_needs(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        RewardsSettings(**PRODUCTION, **STRIPE, **values)
    assert "sk_test_abc" not in str(err.value)


def test_conversion_configured_outside_dev_uses_the_real_provider_and_dev_may_go_without_one() -> None:
    settings = RewardsSettings(**PRODUCTION, **STRIPE, **PAIRS, rates_app_id="app-id")
    assert settings.rates_base_url == "https://openexchangerates.org"
    assert rates_provider(settings) is not None
    dev = RewardsSettings(prizeflow_profile="dev", **PAIRS)
    assert rates_provider(dev) is None  # quotes answer 503 rates_unavailable until RATES_APP_ID is set
    # A dev stack without the emulator's address never calls the real provider with its dev App ID.
    assert rates_provider(RewardsSettings(prizeflow_profile="dev", **PAIRS, rates_app_id="dev-id")) is None
    emulated = RewardsSettings(prizeflow_profile="dev", **PAIRS, rates_app_id="dev-id", rates_api_url="http://x:1")
    assert rates_provider(emulated) is not None
