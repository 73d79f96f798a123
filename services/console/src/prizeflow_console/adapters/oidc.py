"""OpenID Connect relying party: discovery, the authorization URL (code + PKCE S256), the code exchange and the ID
token's verification (signature by a key of the provider's JWKS, iss, aud = client id, exp, nonce)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from prizeflow_console.application.ports import SignedIn, SignInError
from prizeflow_console.domain.viewer import Viewer
from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_runtime.jwks import JwksKeys, JwksUnavailableError, UnknownKeyError

log = logging.getLogger("prizeflow_console.oidc")

ALGORITHMS = ("EdDSA", "ES256", "RS256")
_SUBJECT = re.compile(IDENTIFIER_PATTERN)  # ADR 0005: the services accept no other subject
DISCOVERY_TTL_S = 300.0


class OidcProvider:
    def __init__(
        self,
        *,
        issuer: str,
        discovery_url: str,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str,
        scopes: str,
        roles_claim: str,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.issuer = issuer
        self.discovery_url = discovery_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.scopes = scopes
        self.roles_claim = roles_claim
        self.http = httpx.AsyncClient(timeout=timeout_s, transport=transport, follow_redirects=False)
        self._metadata: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._keys: JwksKeys | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def metadata(self) -> dict[str, Any]:
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._fetched_at > DISCOVERY_TTL_S:
                try:
                    response = await self.http.get(self.discovery_url)
                    response.raise_for_status()
                    document = response.json()
                except (httpx.HTTPError, ValueError) as err:
                    raise SignInError("the identity provider cannot be reached: try again in a moment") from err
                if not isinstance(document, dict) or document.get("issuer") != self.issuer:
                    raise SignInError("the identity provider's configuration names another issuer")
                secure = self.discovery_url.startswith("https://")
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(document.get(key), str):
                        raise SignInError(f"the identity provider's configuration has no {key}")
                    if secure and not document[key].startswith("https://"):  # no downgrade to clear text
                        raise SignInError(f"the identity provider's {key} is not an https:// URL")
                if "S256" not in document.get("code_challenge_methods_supported", ["S256"]):
                    raise SignInError("the identity provider does not support PKCE (S256)")
                self._metadata, self._fetched_at = document, time.monotonic()
                if self._keys is None:
                    self._keys = JwksKeys(self._fetch_jwks, algorithms=ALGORITHMS)
            return self._metadata

    async def _fetch_jwks(self) -> bytes:
        assert self._metadata is not None
        response = await self.http.get(self._metadata["jwks_uri"])
        response.raise_for_status()
        return response.content

    async def authorization_url(self, *, state: str, nonce: str, code_challenge: str, login_hint: str | None) -> str:
        meta = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if login_hint:
            params["login_hint"] = login_hint
        return f"{meta['authorization_endpoint']}?{urlencode(params)}"

    async def end_session_url(self, *, post_logout_redirect_uri: str) -> str | None:
        try:
            meta = await self.metadata()
        except SignInError:
            return None
        endpoint = meta.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        query = urlencode({"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri})
        return f"{endpoint}?{query}"

    async def exchange(self, *, code: str, code_verifier: str, nonce: str) -> SignedIn:
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "code_verifier": code_verifier,
        }
        if self._client_secret is not None:
            form["client_secret"] = self._client_secret
        try:
            response = await self.http.post(meta["token_endpoint"], data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as err:
            raise SignInError("the identity provider cannot be reached: try again in a moment") from err
        if response.status_code != 200:
            log.warning("token endpoint refused the code: HTTP %s", response.status_code)
            raise SignInError("the identity provider refused the sign-in: sign in again")
        try:
            tokens = response.json()
        except ValueError as err:
            raise SignInError("the identity provider answered with something that is not a token") from err
        access, id_token = tokens.get("access_token"), tokens.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise SignInError("the identity provider returned no access token or ID token")
        claims = await self._verify_id_token(id_token, nonce)
        expires_in = tokens.get("expires_in")
        ttl = int(expires_in) if isinstance(expires_in, int) and expires_in > 0 else 3600
        raw_roles = claims.get(self.roles_claim, [])
        roles = [r for r in raw_roles if isinstance(r, str)] if isinstance(raw_roles, list) else []
        name = claims.get("name") if isinstance(claims.get("name"), str) else None
        viewer = Viewer.of(str(claims["sub"]), name, roles)
        return SignedIn(viewer=viewer, access_token=access, expires_at=int(time.time()) + ttl)

    async def _verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        assert self._keys is not None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise SignInError("the ID token is malformed") from err
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS or not isinstance(kid, str):
            raise SignInError("the ID token is not signed with an accepted algorithm and key id")
        try:
            jwk = await self._keys.get(kid)
        except (UnknownKeyError, JwksUnavailableError) as err:
            raise SignInError("the ID token is signed by a key the identity provider does not publish") from err
        if jwk.algorithm_name != algorithm:
            raise SignInError("the ID token's algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, jwk.key, algorithms=[algorithm], audience=self.client_id, issuer=self.issuer, leeway=30,
                options={"require": ["sub", "exp", "iss", "aud", "iat"]},
            )  # fmt: skip
        except jwt.PyJWTError as err:
            raise SignInError(f"the ID token is not valid: {err}") from err
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise SignInError("the ID token was issued for another sign-in (nonce)")
        audience, party = claims["aud"], claims.get("azp")
        several = isinstance(audience, list) and len(audience) > 1
        if (several or party is not None) and party != self.client_id:  # OIDC Core §3.1.3.7, steps 4 and 5
            raise SignInError("the ID token was issued to another client (azp)")
        if not isinstance(claims["sub"], str) or not _SUBJECT.fullmatch(claims["sub"]):
            raise SignInError("the ID token's subject is not an identifier Prizeflow accepts")
        return claims


__all__ = ["OidcProvider"]
