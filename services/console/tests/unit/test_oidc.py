"""The relying party's checks, against a provider played by httpx.MockTransport and a real Ed25519 key."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from prizeflow_console.adapters.oidc import OidcProvider
from prizeflow_console.application.ports import SignInError
from prizeflow_console.domain.pkce import challenge_of
from prizeflow_runtime.dev_identity import DevIdentity

ISSUER = "https://id.example"
CLIENT = "prizeflow-console"


class Provider:
    """Discovery, JWKS and a token endpoint answering with whatever `tokens` holds; requests are recorded."""

    def __init__(self, identity: DevIdentity, **discovery: Any) -> None:
        self.identity = identity
        self.discovery = {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": f"{ISSUER}/token",
            "jwks_uri": f"{ISSUER}/jwks.json",
            "code_challenge_methods_supported": ["S256"],
            **discovery,
        }
        self.tokens: dict[str, Any] = {}
        self.token_status = 200
        self.forms: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if path == "/jwks.json":
            return httpx.Response(200, json=self.identity.jwks())
        if path == "/token":
            self.forms.append(parse_qs(request.content.decode()))
            return httpx.Response(self.token_status, json=self.tokens)
        return httpx.Response(404)

    def id_token(self, *, nonce: str = "n-1", audience: str = CLIENT, issuer: str = ISSUER, **claims: Any) -> str:
        return self.identity.issue(
            "alice", ["approver"], audience=audience, issuer=issuer, claims={"nonce": nonce, "name": "Alice", **claims}
        )


def rp(provider: Provider) -> OidcProvider:
    return OidcProvider(
        issuer=ISSUER, discovery_url=f"{ISSUER}/.well-known/openid-configuration", client_id=CLIENT,
        client_secret=None, redirect_uri="https://console.example/auth/callback", scopes="openid profile",
        roles_claim="roles", transport=httpx.MockTransport(provider),
    )  # fmt: skip


@pytest.fixture
def provider() -> Provider:
    return Provider(DevIdentity.generate())


async def test_the_authorization_url_asks_for_a_code_with_s256(provider: Provider) -> None:
    url = await rp(provider).authorization_url(state="s", nonce="n", code_challenge=challenge_of("v"), login_hint="bob")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{ISSUER}/authorize?")
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [challenge_of("v")]
    assert query["state"] == ["s"]
    assert query["nonce"] == ["n"]
    assert query["login_hint"] == ["bob"]


async def test_a_good_exchange_sends_the_verifier_and_signs_the_person_in(provider: Provider) -> None:
    provider.tokens = {"access_token": "at", "id_token": provider.id_token(), "expires_in": 600}
    signed = await rp(provider).exchange(code="c", code_verifier="v" * 43, nonce="n-1")
    assert (signed.viewer.user_id, signed.viewer.name, sorted(signed.viewer.roles)) == ("alice", "Alice", ["approver"])
    assert signed.access_token == "at"
    assert provider.forms[0]["code_verifier"] == ["v" * 43]
    assert provider.forms[0]["grant_type"] == ["authorization_code"]


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({"id_token": "x"}, "no access token"),
        ({"access_token": "at", "id_token": "not-a-jwt"}, "malformed"),
    ],
)
async def test_a_token_answer_without_usable_tokens_signs_nobody_in(
    provider: Provider, tokens: dict[str, Any], message: str
) -> None:
    provider.tokens = tokens
    with pytest.raises(SignInError, match=message):
        await rp(provider).exchange(code="c", code_verifier="v", nonce="n-1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nonce": "another"}, "nonce"),
        ({"audience": "someone-else"}, "not valid"),
        ({"issuer": "https://evil.example"}, "not valid"),
    ],
)
async def test_an_id_token_for_another_sign_in_client_or_issuer_is_refused(
    provider: Provider, kwargs: dict[str, str], message: str
) -> None:
    provider.tokens = {"access_token": "at", "id_token": provider.id_token(**kwargs)}
    with pytest.raises(SignInError, match=message):
        await rp(provider).exchange(code="c", code_verifier="v", nonce="n-1")


async def test_an_id_token_signed_by_a_key_the_provider_does_not_publish_is_refused(provider: Provider) -> None:
    stranger = Provider(DevIdentity.generate())
    provider.tokens = {"access_token": "at", "id_token": stranger.id_token()}
    with pytest.raises(SignInError, match="does not publish"):
        await rp(provider).exchange(code="c", code_verifier="v", nonce="n-1")


async def test_an_expired_id_token_is_refused(provider: Provider) -> None:
    token = provider.identity.issue("alice", ["approver"], audience=CLIENT, issuer=ISSUER, ttl_s=-120,
                                    claims={"nonce": "n-1"})  # fmt: skip
    provider.tokens = {"access_token": "at", "id_token": token}
    with pytest.raises(SignInError, match="expired"):
        await rp(provider).exchange(code="c", code_verifier="v", nonce="n-1")


async def test_a_refused_code_says_sign_in_again_without_echoing_the_providers_answer(provider: Provider) -> None:
    provider.token_status = 400
    provider.tokens = {"error": "invalid_grant", "error_description": "secret-ish detail"}
    with pytest.raises(SignInError) as err:
        await rp(provider).exchange(code="c", code_verifier="v", nonce="n-1")
    assert "secret-ish" not in str(err.value)


@pytest.mark.parametrize(
    ("discovery", "message"),
    [
        ({"issuer": "https://other.example"}, "another issuer"),
        ({"code_challenge_methods_supported": ["plain"]}, "PKCE"),
        ({"token_endpoint": None}, "token_endpoint"),
    ],
)
async def test_a_provider_whose_configuration_does_not_fit_signs_nobody_in(
    discovery: dict[str, Any], message: str
) -> None:
    provider = Provider(DevIdentity.generate(), **discovery)
    with pytest.raises(SignInError, match=message):
        await rp(provider).authorization_url(state="s", nonce="n", code_challenge="c", login_hint=None)
