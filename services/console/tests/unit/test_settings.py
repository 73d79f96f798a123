"""Fail closed: outside the dev profile every setting is required and named when missing, never echoed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from prizeflow_console.settings import ConsoleSettings

PRODUCTION: dict[str, Any] = {
    "prizeflow_profile": "production",
    "console_public_url": "https://console.example",
    "console_session_secret": "k" * 40,
    "oidc_issuer": "https://id.example",
    "oidc_discovery_url": "https://id.example/.well-known/openid-configuration",
    "oidc_client_id": "prizeflow-console",
    "settlement_url": "http://settlement",
    "rewards_url": "http://rewards",
    "payouts_url": "http://payouts",
    "webhooks_url": "http://webhooks",
    "database_url": "postgresql+asyncpg://console@db.invalid/prizeflow_console",
}


def test_production_starts_with_every_setting() -> None:
    settings = ConsoleSettings(_env_file=None, **PRODUCTION)
    assert settings.secure_cookies
    assert settings.service_urls["payouts"] == "http://payouts"


def test_a_plain_postgresql_uri_runs_on_asyncpg() -> None:
    """The Kubernetes bundle's runtime Secret holds `postgresql://...` (as every service's): the console must open it
    with asyncpg, its one driver; SQLAlchemy's default for that scheme is psycopg, which the image does not carry
    (the console crash-looped on its first real cluster: tests/k8s)."""
    plain = PRODUCTION | {"database_url": "postgresql://console:p%40ss@console-db-rw:5432/prizeflow_console"}
    settings = ConsoleSettings(_env_file=None, **plain)
    assert settings.database_url == "postgresql+asyncpg://console:p%40ss@console-db-rw:5432/prizeflow_console"


@pytest.mark.parametrize("missing", sorted(k for k in PRODUCTION if k != "prizeflow_profile"))
def test_production_names_a_missing_setting(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(missing.upper(), raising=False)
    values = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(ValidationError, match=missing.upper()):
        ConsoleSettings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"console_session_secret": "short-but-secret"}, "at least 32 bytes"),
        ({"console_public_url": "http://console.example"}, "CONSOLE_PUBLIC_URL must be an https://"),
        ({"oidc_discovery_url": "http://id.example/.well-known/openid-configuration"}, "OIDC_DISCOVERY_URL"),
    ],
)
def test_production_refuses_weak_settings_without_echoing_them(override: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        ConsoleSettings(_env_file=None, **{**PRODUCTION, **override})
    assert "short-but-secret" not in str(err.value)


def test_the_dev_profile_derives_what_it_can_and_keeps_no_fixed_secret() -> None:
    one = ConsoleSettings(_env_file=None, prizeflow_profile="dev", http_port=4100, dev_idp_url="http://127.0.0.1:4200",
                          settlement_url="http://s", rewards_url="http://r", payouts_url="http://p",
                          webhooks_url="http://w", database_url="postgresql+asyncpg://c@127.0.0.1/c")  # fmt: skip
    two = ConsoleSettings(_env_file=None, prizeflow_profile="dev", http_port=4100, dev_idp_url="http://127.0.0.1:4200",
                          settlement_url="http://s", rewards_url="http://r", payouts_url="http://p",
                          webhooks_url="http://w", database_url="postgresql+asyncpg://c@127.0.0.1/c")  # fmt: skip
    assert one.public_url == "http://127.0.0.1:4100"
    assert one.oidc_discovery_url == "http://127.0.0.1:4200/.well-known/openid-configuration"
    assert one.console_session_secret is not None
    assert two.console_session_secret is not None
    assert one.console_session_secret.get_secret_value() != two.console_session_secret.get_secret_value()
