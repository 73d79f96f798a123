"""The provider's HTTP face: OIDC discovery, the authorization endpoint (code + PKCE S256 only), the token
endpoint, the JWKS, logout and health.

Errors follow RFC 6749: a request whose client or redirect URI is unknown gets a 400 page and is never redirected
(§4.1.2.1: it may be an attempt to send someone elsewhere); any other authorization error goes back to the client
as `error=` on its redirect URI; the token endpoint answers errors as JSON (§5.2). Nothing here logs a code, a
verifier or a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State

from prizeflow_dev_idp.codes import CHALLENGE, CodeStore, Grant, verifier_matches
from prizeflow_dev_idp.pages import AuthorizationRequest, refused_page, sign_in_page, signed_out_page
from prizeflow_dev_idp.people import ROLE_ORDER, USER_ID, display_name
from prizeflow_dev_idp.settings import IdpSettings, origin
from prizeflow_runtime.dev_identity import ALGORITHM, DevIdentity

log = logging.getLogger("prizeflow_dev_idp")

TOKEN_TTL_S: Final = 3600
SCOPES: Final = ("openid", "profile")
MAX_PARAM = 2048  # longer than any honest state, nonce or hint
MAX_BODY = 64 * 1024
# Pages are not to be framed (a sign-in page under someone else's UI) nor kept by a cache or sent as a referrer.
HTML_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
TOKEN_HEADERS: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


@dataclass(frozen=True)
class Provider:
    settings: IdpSettings
    identity: DevIdentity
    codes: CodeStore


class Refused(Exception):  # noqa: N818 - an answer to the browser, not a failure of the code
    """The client or redirect URI is not registered: a 400 page, never a redirect."""


class RedirectError(Exception):
    """An authorization error the client hears about on its redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _provider(state: State) -> Provider:
    provider: Provider = state.provider
    return provider


def _html(body: str, status: int = 200) -> Response[str]:
    return Response(body, status_code=status, media_type=MediaType.HTML, headers=HTML_HEADERS)


def _redirect(url: str) -> Response[str]:
    return Response("", status_code=302, headers={"Location": url, **HTML_HEADERS})


def with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    """`url` with `params` added to whatever query it already has (a registered URI may carry one)."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    """A parameter given at most once (RFC 6749 §3.1); a repeated one is a malformed request."""
    values = params.get(name, [])
    if len(values) > 1:
        raise RedirectError("invalid_request", f"{name} is given more than once")
    if values and len(values[0]) > MAX_PARAM:
        raise RedirectError("invalid_request", f"{name} is too long")
    return values[0] if values else None


def _client_and_redirect(settings: IdpSettings, params: Mapping[str, list[str]]) -> tuple[str, str]:
    client_ids, redirect_uris = params.get("client_id", []), params.get("redirect_uri", [])
    if len(client_ids) != 1 or client_ids[0] != settings.client_id:
        raise Refused("The client_id is missing or not a client registered here.")
    if len(redirect_uris) != 1 or redirect_uris[0] not in settings.redirect_uris:
        raise Refused("The redirect_uri is missing or not one registered for this client (exact match).")
    return client_ids[0], redirect_uris[0]


def authorization_request(settings: IdpSettings, params: Mapping[str, list[str]]) -> AuthorizationRequest:
    """Validated as RFC 6749 §4.1.1 and RFC 7636 §4.3 say, client and redirect URI first."""
    client_id, redirect_uri = _client_and_redirect(settings, params)
    response_type = _single(params, "response_type")
    scope = _single(params, "scope") or ""
    challenge = _single(params, "code_challenge")
    method = _single(params, "code_challenge_method")
    state, nonce = _single(params, "state"), _single(params, "nonce")
    login_hint, prompt = _single(params, "login_hint"), _single(params, "prompt")
    if response_type is None:
        raise RedirectError("invalid_request", "response_type is required")
    if response_type != "code":
        raise RedirectError("unsupported_response_type", "only the authorization code flow (code) is supported")
    requested = scope.split()
    if "openid" not in requested:
        raise RedirectError("invalid_scope", "scope must include openid")
    if challenge is None:
        raise RedirectError("invalid_request", "code_challenge is required (PKCE)")
    if method != "S256":
        raise RedirectError("invalid_request", "transform algorithm not supported: code_challenge_method must be S256")
    if not CHALLENGE.fullmatch(challenge):
        raise RedirectError("invalid_request", "code_challenge must be the 43-character BASE64URL(SHA256(verifier))")
    if prompt is not None and "none" in prompt.split():
        raise RedirectError("login_required", "the dev identity provider keeps no session: sign-in is interactive")
    return AuthorizationRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(s for s in SCOPES if s in requested),
        code_challenge=challenge,
        state=state,
        nonce=nonce,
        login_hint=login_hint,
    )


def _error_redirect(params: Mapping[str, list[str]], err: RedirectError) -> Response[str]:
    redirect_uri = params["redirect_uri"][0]
    state = params.get("state", [])
    answer = [("error", err.error), ("error_description", err.description)]
    if len(state) == 1 and len(state[0]) <= MAX_PARAM:
        answer.append(("state", state[0]))
    log.info("authorization request refused: %s (%s)", err.error, err.description)
    return _redirect(with_query(redirect_uri, answer))


def _multi(items: Iterable[tuple[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in items:
        if isinstance(value, str):
            out.setdefault(key, []).append(value)
    return out


@get("/authorize", sync_to_thread=False)
def authorize_page(request: Request[Any, Any, Any], state: State) -> Response[str]:
    settings = _provider(state).settings
    params = _multi(request.query_params.multi_items())
    try:
        return _html(sign_in_page(authorization_request(settings, params)))
    except Refused as err:
        log.info("authorization request refused with a page: %s", err)
        return _html(refused_page(str(err)), status=400)
    except RedirectError as err:
        return _error_redirect(params, err)


@post("/authorize")
async def sign_in(request: Request[Any, Any, Any], state: State) -> Response[str]:
    provider = _provider(state)
    params = _multi((await request.form()).multi_items())
    try:
        auth = authorization_request(provider.settings, params)
    except Refused as err:
        return _html(refused_page(str(err)), status=400)
    except RedirectError as err:
        return _error_redirect(params, err)
    user = (params.get("user") or [""])[0].strip()
    roles = params.get("roles", [])
    known = {str(r) for r in ROLE_ORDER}
    if not USER_ID.fullmatch(user) or len(params.get("user", [])) != 1:
        problem = "User id: letters and digits, then also : _ . or - (at most 128 characters)."
        return _html(sign_in_page(auth, problem=problem, user=user, roles=roles), status=400)
    if unknown := sorted(set(roles) - known):
        problem = f"Roles: {', '.join(unknown)} is not a role; choose among {', '.join(sorted(known))}."
        return _html(sign_in_page(auth, problem=problem, user=user), status=400)
    code = provider.codes.issue(
        client_id=auth.client_id,
        redirect_uri=auth.redirect_uri,
        code_challenge=auth.code_challenge,
        nonce=auth.nonce,
        user=user,
        roles=tuple(str(r) for r in ROLE_ORDER if str(r) in roles),
        scope=auth.scope,
    )
    log.info("authorization code issued to %s", auth.client_id)
    answer = [("code", code)] + ([("state", auth.state)] if auth.state is not None else [])
    return _redirect(with_query(auth.redirect_uri, answer))


class TokenError(Exception):
    """A token request refused as RFC 6749 §5.2 says: a JSON error, 400 (401 for an unknown client)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def _redeem(provider: Provider, params: Mapping[str, list[str]]) -> Grant:
    """The grant the request's code stands for, once its client, redirect URI and PKCE verifier all match."""
    if any(len(v) > 1 for v in params.values()):
        raise TokenError("invalid_request", "a parameter is given more than once")
    form = {k: v[0] for k, v in params.items()}
    if "grant_type" not in form:
        raise TokenError("invalid_request", "grant_type is required")
    if form["grant_type"] != "authorization_code":
        raise TokenError("unsupported_grant_type", "only authorization_code is supported")
    if form.get("client_id") != provider.settings.client_id:
        raise TokenError("invalid_client", "client_id is missing or not a registered client", status=401)
    if missing := [k for k in ("code", "redirect_uri", "code_verifier") if not form.get(k)]:
        raise TokenError("invalid_request", f"{', '.join(missing)} required")
    grant = provider.codes.redeem(form["code"])
    if grant is None:
        raise TokenError("invalid_grant", "the code is unknown, expired or already used")
    if grant.client_id != form["client_id"] or grant.redirect_uri != form["redirect_uri"]:
        raise TokenError("invalid_grant", "the code was issued to another client or redirect_uri")
    if not verifier_matches(form["code_verifier"], grant.code_challenge):
        raise TokenError("invalid_grant", "the code_verifier does not match the code_challenge")
    return grant


@post("/token")
async def token(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    provider = _provider(state)
    settings = provider.settings
    try:
        grant = _redeem(provider, _multi((await request.form()).multi_items()))
    except TokenError as err:
        log.info("token request refused: %s (%s)", err.error, err.description)
        refusal = {"error": err.error, "error_description": err.description}
        return Response(refusal, status_code=err.status, media_type=MediaType.JSON, headers=TOKEN_HEADERS)
    name = display_name(grant.user)
    access_token = provider.identity.issue(
        grant.user,
        grant.roles,
        audience=settings.audiences,
        issuer=settings.issuer,
        roles_claim=settings.roles_claim,
        ttl_s=TOKEN_TTL_S,
        claims={"name": name, "scope": grant.scope, "client_id": grant.client_id},
    )
    id_claims: dict[str, Any] = {"name": name, "auth_time": grant.auth_time}
    if grant.nonce is not None:
        id_claims["nonce"] = grant.nonce
    id_token = provider.identity.issue(
        grant.user,
        grant.roles,
        audience=grant.client_id,
        issuer=settings.issuer,
        roles_claim=settings.roles_claim,
        ttl_s=TOKEN_TTL_S,
        claims=id_claims,
    )
    log.info("tokens issued to %s", grant.client_id)
    body = {
        "access_token": access_token,
        "id_token": id_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL_S,
        "scope": grant.scope,
    }
    return Response(body, status_code=200, media_type=MediaType.JSON, headers=TOKEN_HEADERS)


@get("/.well-known/openid-configuration", sync_to_thread=False)
def discovery(state: State) -> dict[str, Any]:
    settings = _provider(state).settings
    base = settings.public_url
    return {
        "issuer": settings.issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/jwks.json",
        "end_session_endpoint": f"{base}/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": list(SCOPES),
        "claims_supported": ["sub", "name", settings.roles_claim, "iss", "aud", "exp", "iat", "auth_time", "nonce"],
    }


@get("/jwks.json", sync_to_thread=False)
def jwks(state: State) -> dict[str, Any]:
    return _provider(state).identity.jwks()


@get("/logout", sync_to_thread=False)
def logout(request: Request[Any, Any, Any], state: State) -> Response[str]:
    settings = _provider(state).settings
    target = request.query_params.get("post_logout_redirect_uri")
    if target is None:
        return _html(signed_out_page())
    parts = urlsplit(target)
    if parts.scheme in {"http", "https"} and not parts.username and origin(target) in settings.redirect_origins:
        back = request.query_params.get("state")
        return _redirect(with_query(target, [("state", back)]) if back else target)
    return _html(signed_out_page("The address to return to is not one of a registered client, so you stay here."))


@get(["/health/live", "/health/ready"], sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app(
    settings: IdpSettings,
    identity: DevIdentity | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Litestar:
    """`identity` defaults to the run's dev identity (the key beside `settings.jwks_url`)."""
    provider = Provider(
        settings=settings,
        identity=identity or DevIdentity.from_jwks_url(settings.jwks_url),
        codes=CodeStore(clock),
    )
    return Litestar(
        route_handlers=[authorize_page, sign_in, token, discovery, jwks, logout, health],
        state=State({"provider": provider}),
        request_max_body_size=MAX_BODY,
        openapi_config=None,
        logging_config=None,  # the process's logging (configure_logging), not Litestar's own
    )


__all__ = ["TOKEN_TTL_S", "Provider", "authorization_request", "create_app", "with_query"]
