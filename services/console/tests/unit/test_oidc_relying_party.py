"""The console as an OpenID Connect relying party, attacked from the provider's side (tokens it should refuse,
a discovery document that downgrades to http), and its settings in the production profile (fail closed).

The provider is an httpx MockTransport (no socket) signing with an in-memory dev identity."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from prizeflow_console.adapters.oidc import OidcProvider
from prizeflow_console.application.ports import SignInError
from prizeflow_console.settings import ConsoleSettings
from prizeflow_runtime.dev_identity import DevIdentity

ISSUER = "https://id.example.com/"
CLIENT = "prizeflow-console"
NONCE = "nonce-of-this-sign-in"
IDENTITY = DevIdentity.generate()


def id_token(identity: DevIdentity = IDENTITY, *, sub: str = "alice", **over: Any) -> str:
    claims: dict[str, Any] = {"nonce": NONCE, "name": "Alice"}
    claims.update(over.pop("claims", {}))
    audience = over.pop("audience", CLIENT)
    return identity.issue(
        sub, ["approver"], audience=audience, issuer=over.pop("issuer", ISSUER), claims=claims, **over
    )


def provider(token: str, **metadata: Any) -> OidcProvider:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": "https://id.example.com/authorize",
        "token_endpoint": "https://id.example.com/token",
        "jwks_uri": "https://id.example.com/jwks.json",
        "code_challenge_methods_supported": ["S256"],
        **metadata,
    }

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/openid-configuration"):
            return httpx.Response(200, json=document)
        if path.endswith("/jwks.json"):
            return httpx.Response(200, json=IDENTITY.jwks())
        if path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "at", "id_token": token, "expires_in": 3600})
        return httpx.Response(404)

    return OidcProvider(
        issuer=ISSUER, discovery_url="https://id.example.com/.well-known/openid-configuration", client_id=CLIENT,
        client_secret=None, redirect_uri="https://console.example.com/auth/callback", scopes="openid profile",
        roles_claim="roles", transport=httpx.MockTransport(answer),
    )  # fmt: skip


async def exchange(p: OidcProvider) -> Any:
    try:
        return await p.exchange(code="c", code_verifier="v" * 43, nonce=NONCE)
    finally:
        await p.aclose()


async def test_a_good_id_token_signs_its_subject_in() -> None:
    signed = await exchange(provider(id_token()))
    assert (signed.viewer.user_id, signed.access_token) == ("alice", "at")


def _none_token() -> str:
    now = int(time.time())
    claims = {"sub": "alice", "aud": CLIENT, "iss": ISSUER, "iat": now, "exp": now + 60, "nonce": NONCE}
    return jwt.encode(claims, "", algorithm="none", headers={"kid": IDENTITY.kid})


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(id_token(claims={"nonce": "another-sign-in"}), id="another nonce"),
        pytest.param(IDENTITY.issue("alice", ["approver"], audience=CLIENT, issuer=ISSUER), id="no nonce"),
        pytest.param(id_token(audience="prizeflow-rewards"), id="another audience (an access token)"),
        pytest.param(id_token(issuer="prizeflow-dev"), id="another issuer"),
        pytest.param(id_token(ttl_s=-120), id="expired"),
        pytest.param(id_token(DevIdentity.generate()), id="a key the provider does not publish"),
        pytest.param(_none_token(), id="alg none"),
        pytest.param("not.a.jwt", id="malformed"),
    ],
)
async def test_an_id_token_that_fails_a_check_signs_nobody_in(token: str) -> None:
    with pytest.raises(SignInError):
        await exchange(provider(token))


async def test_an_id_token_for_several_audiences_must_name_the_console_as_its_authorized_party() -> None:
    """OIDC Core §3.1.3.7: a token another client of the provider asked for (`azp`) that also lists the console
    in `aud` was accepted as a sign-in to the console."""
    foreign = id_token(audience=[CLIENT, "another-client"], claims={"azp": "another-client"})
    without_azp = id_token(audience=[CLIENT, "another-client"])
    for token in (foreign, without_azp):
        with pytest.raises(SignInError):
            await exchange(provider(token))
    ours = await exchange(provider(id_token(audience=[CLIENT, "another-client"], claims={"azp": CLIENT})))
    assert ours.viewer.user_id == "alice"


@pytest.mark.parametrize("sub", ["..", ".", "alice/../bob", "", "a" * 129])
async def test_a_subject_that_is_not_an_identifier_signs_nobody_in(sub: str) -> None:
    """ADR 0005: a subject is an identifier. `..` becomes the wallet path `/wallets/..`, a dot segment."""
    with pytest.raises(SignInError):
        await exchange(provider(id_token(sub=sub)))


@pytest.mark.parametrize("endpoint", ["token_endpoint", "jwks_uri", "authorization_endpoint"])
async def test_an_https_provider_whose_discovery_names_an_http_endpoint_signs_nobody_in(endpoint: str) -> None:
    """The code and its PKCE verifier (token endpoint), the keys that make an ID token valid (JWKS) and the
    sign-in page would travel in clear: production requires https for the discovery URL, and so for these."""
    p = provider(id_token(), **{endpoint: f"http://id.example.com/{endpoint}"})
    with pytest.raises(SignInError):
        try:
            await p.authorization_url(state="s", nonce=NONCE, code_challenge="c" * 43, login_hint=None)
        finally:
            await p.aclose()


# --- settings: production starts with all of them, or not at all -----------------------------------------------

PRODUCTION = {
    "CONSOLE_PUBLIC_URL": "https://console.example.com",
    "CONSOLE_SESSION_SECRET": "x" * 32,
    "OIDC_ISSUER": ISSUER,
    "OIDC_DISCOVERY_URL": "https://id.example.com/.well-known/openid-configuration",
    "OIDC_CLIENT_ID": CLIENT,
    "SETTLEMENT_URL": "http://settlement:8000",
    "REWARDS_URL": "http://rewards:8000",
    "PAYOUTS_URL": "http://payouts:8000",
    "WEBHOOKS_URL": "http://webhooks:8000",
    "DATABASE_URL": "postgresql+asyncpg://console@db.invalid/prizeflow_console",
}


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> ConsoleSettings:
    for name in [*PRODUCTION, "PRIZEFLOW_PROFILE", "DEV_IDP_URL", "OIDC_CLIENT_SECRET"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ConsoleSettings(_env_file=None)


def test_production_starts_with_every_setting_and_secure_cookies(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(monkeypatch, **PRODUCTION).secure_cookies


def test_production_without_settings_names_every_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not set") as refused:
        settings(monkeypatch)
    for name in PRODUCTION:
        assert name in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONSOLE_PUBLIC_URL", "http://console.example.com"),
        ("OIDC_DISCOVERY_URL", "http://id.example.com/.well-known/openid-configuration"),
        ("CONSOLE_SESSION_SECRET", "x" * 31),
    ],
)
def test_production_refuses_http_and_a_short_secret(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        settings(monkeypatch, **{**PRODUCTION, name: value})


@pytest.mark.parametrize(
    "name", ["OIDC_ISSUER", "OIDC_CLIENT_ID", "SETTLEMENT_URL", "REWARDS_URL", "PAYOUTS_URL", "WEBHOOKS_URL"]
)
def test_production_takes_a_blank_setting_for_a_missing_one(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """`VAR=""` (a template or secret that rendered empty) passed as set: the console started and failed later."""
    with pytest.raises(ValueError, match=name):
        settings(monkeypatch, **{**PRODUCTION, name: "  "})


@pytest.mark.parametrize("url", ["https://", "https:///path", "https://user:pw@console.example.com"])
def test_production_public_url_names_a_host(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """`https://` passed the prefix check, then became `https:` and turned the Secure cookie attribute off."""
    with pytest.raises(ValueError, match="CONSOLE_PUBLIC_URL"):
        settings(monkeypatch, **{**PRODUCTION, "CONSOLE_PUBLIC_URL": url})
