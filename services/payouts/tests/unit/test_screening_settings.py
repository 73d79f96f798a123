"""Outside the dev profile a payout is never sent unscreened: no sanctions list configured stops start-up, named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.settings import Profile

SDN = "ofac_sdn=https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/SDN.XML"
PRODUCTION: dict[str, Any] = {
    "prizeflow_profile": Profile.PRODUCTION,
    "jwt_issuer": "https://idp.example.com/",
    "jwt_audience": "prizeflow-payouts",
    "jwt_jwks_url": "https://idp.example.com/jwks.json",
    "database_url": "postgresql+asyncpg://payouts@db.example.com/payouts",
}


@pytest.fixture(autouse=True)
def plaintext_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_ALLOW_PLAINTEXT", "true")


def test_production_without_sanctions_lists_stops_start_up_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="PAYOUTS_SANCTIONS_SOURCES is not set"):
        PayoutsSettings(**PRODUCTION, payouts_sanctions_sources=[])


def test_production_with_a_list_starts_and_dev_may_run_without_one() -> None:
    assert list(PayoutsSettings(**PRODUCTION, payouts_sanctions_sources=[SDN]).sanctions_urls()) == ["ofac_sdn"]
    assert PayoutsSettings(prizeflow_profile=Profile.DEV, payouts_sanctions_sources=[]).sanctions_urls() == {}


def test_redirect_hosts_are_host_names_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a list may redirect to is a list of hosts (what the egress proxy's allow-list holds), never a URL."""
    monkeypatch.setenv("PAYOUTS_SANCTIONS_REDIRECT_HOSTS", "files.example.org, cdn.example.net")
    settings = PayoutsSettings(**PRODUCTION, payouts_sanctions_sources=[SDN])
    assert settings.payouts_sanctions_redirect_hosts == ["files.example.org", "cdn.example.net"]
    for bad in ("https://files.example.org", "files.example.org:443", "Files.Example.org", "localhost"):
        with pytest.raises(ValidationError, match="PAYOUTS_SANCTIONS_REDIRECT_HOSTS"):
            PayoutsSettings(**PRODUCTION, payouts_sanctions_sources=[SDN], payouts_sanctions_redirect_hosts=[bad])
