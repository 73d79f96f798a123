"""The dev identity provider in process (Litestar's test client: no socket): discovery, the sign-in page, the code +
PKCE round trip to tokens the services accept, and every refusal RFC 6749 / RFC 7636 call for."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from litestar.testing import AsyncTestClient

from prizeflow_dev_idp import CLIENT_ID, SERVICE_AUDIENCES, IdpSettings, create_app
from prizeflow_runtime.auth import Role
from prizeflow_runtime.dev_identity import DevIdentity

IDP = "http://idp.test"
CALLBACK = "http://console.test/auth/callback"
IDENTITY = DevIdentity.generate()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Form:
    fields: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, bool]] = field(default_factory=list)  # (text, autofocus)


class Page(HTMLParser):
    """The forms of a page, their hidden fields and their buttons, in order; the `role="alert"` texts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.alerts: list[str] = []
        self.lang: str | None = None
        self.autofocus: list[str] = []
        self._button: tuple[str, bool] | None = None
        self._alert = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "form":
            self.forms.append(Form())
        elif tag == "input" and a.get("type") == "hidden":
            self.forms[-1].fields.append((a["name"] or "", a["value"] or ""))
        elif tag == "button":
            self._button = ("", "autofocus" in a)
        elif a.get("role") == "alert":
            self._alert = True
        if "autofocus" in a:
            self.autofocus.append(a.get("id") or tag)

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button = (self._button[0] + data, self._button[1])
        if self._alert:
            self.alerts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.forms[-1].buttons.append(self._button)
            self._button = None
        self._alert = False

    def form_of(self, button: str) -> Form:
        return next(f for f in self.forms if any(text == button for text, _ in f.buttons))

    @property
    def button_texts(self) -> list[str]:
        return [text for f in self.forms for text, _ in f.buttons]


def as_form(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Repeated names (roles) as httpx encodes them: a list per name, in order."""
    form: dict[str, list[str]] = {}
    for name, value in fields:
        form.setdefault(name, []).append(value)
    return form


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "scope": "openid profile",
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


def settings(**overrides: Any) -> IdpSettings:
    values: dict[str, Any] = {
        "port": 8999,
        "public_url": IDP,
        "jwks_url": "file:///nowhere/jwks.json",
        "redirect_uris": frozenset({CALLBACK}),
        **overrides,
    }
    return IdpSettings(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(clock: Clock) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(settings(), IDENTITY, clock=clock), base_url=IDP) as test_client:
        yield test_client


async def sign_in_page(client: AsyncTestClient[Any], **params: str) -> Page:
    response = await client.get("/authorize", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


async def code_for(client: AsyncTestClient[Any], challenge: str, button: str, **overrides: str | None) -> str:
    """Through the sign-in page, as a browser would: the form holding `button`, submitted as it is."""
    page = await sign_in_page(client, **authorize_params(challenge, **overrides))
    response = await client.post("/authorize", data=as_form(page.form_of(button).fields), follow_redirects=False)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    return query["code"][0]


async def redeem(client: AsyncTestClient[Any], code: str, verifier: str, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": CLIENT_ID,
        "code_verifier": verifier,
        **overrides,
    }
    return await client.post("/token", data=form)


async def test_discovery_names_the_dev_issuer_and_this_hosts_endpoints(client: AsyncTestClient[Any]) -> None:
    document = (await client.get("/.well-known/openid-configuration")).json()
    assert document["issuer"] == "prizeflow-dev"
    assert document["authorization_endpoint"] == f"{IDP}/authorize"
    assert document["token_endpoint"] == f"{IDP}/token"
    assert document["jwks_uri"] == f"{IDP}/jwks.json"
    assert document["end_session_endpoint"] == f"{IDP}/logout"
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["EdDSA"]
    assert document["token_endpoint_auth_methods_supported"] == ["none"]
    assert document["scopes_supported"] == ["openid", "profile"]
    assert (await client.get("/jwks.json")).json() == IDENTITY.jwks()
    assert (await client.get("/health/ready")).status_code == 200
    assert (await client.get("/health/live")).status_code == 200


async def test_the_page_lists_every_dev_person_then_a_form_for_anyone(client: AsyncTestClient[Any]) -> None:
    page = await sign_in_page(client, **authorize_params(pkce()[1]))
    assert page.lang == "en"
    assert page.button_texts == [
        "Sign in as olivia (ops)",
        "Sign in as adam (admin)",
        "Sign in as alice (approver)",
        "Sign in as bob (approver)",
        "Sign in as priya (approver, player)",
        "Sign in as player-1 (player)",
        "Sign in",
    ]
    assert page.autofocus == []


async def test_code_and_pkce_round_trip_gives_tokens_the_services_accept(
    client: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    verifier, challenge = pkce()
    code = await code_for(client, challenge, "Sign in as priya (approver, player)")
    response = await redeem(client, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "openid profile"

    principal = await IDENTITY.verifier(audience="prizeflow-payouts").verify(body["access_token"])
    assert principal.user_id == "priya"
    assert principal.roles == frozenset({Role.APPROVER, Role.PLAYER})
    for audience in SERVICE_AUDIENCES:
        await IDENTITY.verifier(audience=audience).verify(body["access_token"])
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["name"] == "Priya (approver, player)"
    assert sorted(access["aud"]) == sorted(SERVICE_AUDIENCES)
    assert jwt.get_unverified_header(body["access_token"])["kid"] == IDENTITY.kid

    id_token = jwt.decode(
        body["id_token"], IDENTITY.key.public_key(), algorithms=["EdDSA"], audience=CLIENT_ID, issuer="prizeflow-dev"
    )
    assert id_token["sub"] == "priya"
    assert id_token["roles"] == ["player", "approver"]
    assert id_token["nonce"] == "n-456"
    assert id_token["name"] == "Priya (approver, player)"
    assert id_token["auth_time"] == 1_700_000_000
    assert {"iat", "exp"} <= id_token.keys()
    secrets_seen = (code, verifier, body["access_token"], body["id_token"])
    assert not [s for s in secrets_seen if s in caplog.text]


async def test_the_custom_form_signs_in_anyone_with_any_roles(client: AsyncTestClient[Any]) -> None:
    verifier, challenge = pkce()
    page = await sign_in_page(client, **authorize_params(challenge))
    fields = [*page.form_of("Sign in").fields, ("user", "ops:carol"), ("roles", "ops"), ("roles", "admin")]
    response = await client.post("/authorize", data=as_form(fields), follow_redirects=False)
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    body = (await redeem(client, code, verifier)).json()
    principal = await IDENTITY.verifier(audience="prizeflow-rewards").verify(body["access_token"])
    assert principal.user_id == "ops:carol"
    assert principal.roles == frozenset({Role.OPS, Role.ADMIN})


@pytest.mark.parametrize(("user", "roles"), [("carol smith", ["ops"]), ("", ["ops"]), ("carol", ["root"])])
async def test_a_bad_user_id_or_role_shows_the_page_again_with_an_alert(
    client: AsyncTestClient[Any], user: str, roles: list[str]
) -> None:
    page = await sign_in_page(client, **authorize_params(pkce()[1], login_hint="bob"))
    fields = [*page.form_of("Sign in").fields, ("user", user), *(("roles", r) for r in roles)]
    response = await client.post("/authorize", data=as_form(fields), follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    again = Page(response.text)
    assert again.alerts
    assert again.autofocus == ["user"]  # the form to fix, not bob's button


async def test_a_wrong_verifier_is_invalid_grant_and_burns_the_code(client: AsyncTestClient[Any]) -> None:
    verifier, challenge = pkce()
    code = await code_for(client, challenge, "Sign in as alice (approver)")
    wrong = await redeem(client, code, pkce()[0])
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert (await redeem(client, code, verifier)).json()["error"] == "invalid_grant"


async def test_a_code_is_single_use(client: AsyncTestClient[Any]) -> None:
    verifier, challenge = pkce()
    code = await code_for(client, challenge, "Sign in as bob (approver)")
    assert (await redeem(client, code, verifier)).status_code == 200
    again = await redeem(client, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_a_code_expires_after_60_seconds(client: AsyncTestClient[Any], clock: Clock) -> None:
    verifier, challenge = pkce()
    code = await code_for(client, challenge, "Sign in as olivia (ops)")
    clock.now += 60
    expired = await redeem(client, code, verifier)
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"


async def test_a_code_is_bound_to_its_redirect_uri_and_client(client: AsyncTestClient[Any]) -> None:
    verifier, challenge = pkce()
    code = await code_for(client, challenge, "Sign in as olivia (ops)")
    moved = await redeem(client, code, verifier, redirect_uri="http://console.test/auth/other")
    assert (moved.status_code, moved.json()["error"]) == (400, "invalid_grant")
    stranger = await redeem(client, "made-up", verifier, client_id="someone-else")
    assert (stranger.status_code, stranger.json()["error"]) == (401, "invalid_client")
    other_grant = await redeem(client, "made-up", verifier, grant_type="password")
    assert other_grant.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    "overrides",
    [
        {"redirect_uri": "http://evil.test/auth/callback"},
        {"redirect_uri": CALLBACK + "/"},  # exact match: no prefix, no normalisation
        {"redirect_uri": None},
        {"client_id": "someone-else"},
        {"client_id": None},
    ],
)
async def test_an_unknown_client_or_redirect_uri_gets_a_400_page_and_no_redirect(
    client: AsyncTestClient[Any], overrides: dict[str, str | None]
) -> None:
    response = await client.get("/authorize", params=authorize_params(pkce()[1], **overrides), follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    page = Page(response.text)
    assert page.lang == "en"
    assert page.alerts


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),  # the RFC 7636 default is plain: refused too
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
    ],
)
async def test_other_errors_go_back_to_the_client_as_rfc_6749_says(
    client: AsyncTestClient[Any], overrides: dict[str, str | None], error: str
) -> None:
    response = await client.get("/authorize", params=authorize_params(pkce()[1], **overrides), follow_redirects=False)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["error"] == [error]
    assert query["state"] == ["st-123"]
    assert "code" not in query


async def test_a_login_hint_naming_a_dev_person_puts_their_button_first_and_focused(
    client: AsyncTestClient[Any],
) -> None:
    page = await sign_in_page(client, **authorize_params(pkce()[1], login_hint="bob"))
    assert page.button_texts[0] == "Sign in as bob (approver)"
    assert page.button_texts.count("Sign in as bob (approver)") == 1
    assert page.forms[0].buttons == [("Sign in as bob (approver)", True)]
    assert page.autofocus == ["button"]


async def test_a_login_hint_naming_someone_else_fills_in_the_custom_form(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/authorize", params=authorize_params(pkce()[1], login_hint="player-42"))
    assert 'value="player-42"' in response.text
    assert Page(response.text).autofocus == ["user"]


async def test_logout_sends_back_to_a_registered_origin_only(client: AsyncTestClient[Any]) -> None:
    home = await client.get(
        "/logout", params={"post_logout_redirect_uri": "http://console.test/", "state": "s"}, follow_redirects=False
    )
    assert home.status_code == 302
    assert home.headers["location"] == "http://console.test/?state=s"
    elsewhere = await client.get(
        "/logout", params={"post_logout_redirect_uri": "http://evil.test/"}, follow_redirects=False
    )
    assert elsewhere.status_code == 200
    assert "location" not in elsewhere.headers
    assert (await client.get("/logout")).status_code == 200
