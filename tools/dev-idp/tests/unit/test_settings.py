"""Start-up: the dev profile or nothing; the redirect URIs registered; a missing setting named."""

from __future__ import annotations

import pytest

from prizeflow_dev_idp import IdpSettings, SettingsError
from prizeflow_dev_idp.__main__ import main

DEV = {"PRIZEFLOW_PROFILE": "dev", "JWT_JWKS_URL": "file:///tmp/identity/jwks.json", "DEV_IDP_PORT": "8123"}


@pytest.mark.parametrize("profile", [None, "production", "Dev", ""])
def test_it_refuses_to_start_outside_the_dev_profile(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], profile: str | None
) -> None:
    for key, value in DEV.items():
        monkeypatch.setenv(key, value)
    if profile is None:
        monkeypatch.delenv("PRIZEFLOW_PROFILE")
    else:
        monkeypatch.setenv("PRIZEFLOW_PROFILE", profile)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "PRIZEFLOW_PROFILE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"DEV_IDP_PORT": ""}, "DEV_IDP_PORT"),
        ({"DEV_IDP_PORT": "http"}, "DEV_IDP_PORT"),
        ({"JWT_JWKS_URL": "https://idp.example/jwks.json"}, "JWT_JWKS_URL"),
        ({"CONSOLE_URL": "console:8000"}, "CONSOLE_URL"),
        ({"DEV_IDP_REDIRECT_URIS": "http://ok.test/cb,/relative"}, "DEV_IDP_REDIRECT_URIS"),
    ],
)
def test_a_missing_or_malformed_setting_is_named(change: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        IdpSettings.from_env({**DEV, **change})


def test_the_console_callback_and_the_listed_uris_are_the_redirect_uris() -> None:
    settings = IdpSettings.from_env(
        {
            **DEV,
            "CONSOLE_URL": "http://127.0.0.1:8200/",
            "DEV_IDP_REDIRECT_URIS": "http://localhost:9000/cb, http://127.0.0.1:9001/auth/callback",
            "DEV_IDP_URL": "http://127.0.0.1:8123",
        }
    )
    assert settings.redirect_uris == {
        "http://127.0.0.1:8200/auth/callback",
        "http://localhost:9000/cb",
        "http://127.0.0.1:9001/auth/callback",
    }
    assert settings.redirect_origins == {"http://127.0.0.1:8200", "http://localhost:9000", "http://127.0.0.1:9001"}
    assert settings.public_url == "http://127.0.0.1:8123"
    assert settings.issuer == "prizeflow-dev"


def test_without_a_console_no_redirect_uri_is_registered() -> None:
    settings = IdpSettings.from_env(DEV)
    assert settings.redirect_uris == frozenset()
    assert settings.public_url == "http://127.0.0.1:8123"
