"""Bearer JWT authentication and role guards for every service's HTTP API (ADR 0005).

Production tokens come from the identity provider: asymmetric signatures (RS256, ES256, EdDSA by default)
checked against its JWKS (`prizeflow_runtime.jwks`), then issuer, this service's audience, `exp`/`nbf` with a
small leeway and a `sub`. Roles come only from the configured claim; a token holding no known role is refused
(403), never given a default one. HS256 with a shared key exists for the dev profile only.

Roles: `player` (may read only its own wallet: the token's subject), `admin`, `approver`, `ops`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import jwt
from jwt import PyJWK
from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, ServiceUnavailableException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.security.base import AbstractSecurityConfig
from litestar.types import ASGIApp, Method, Scopes

from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_runtime.jwks import JwksKeys, JwksUnavailableError, UnknownKeyError, jwks_fetch
from prizeflow_runtime.principal import Principal, Role
from prizeflow_runtime.settings import ServiceSettings

MAX_TOKEN_BYTES: Final = 8192
SECURITY_SCHEME: Final = "BearerJWT"
# The subject is the actor in audit events and the requester/approver of payouts: one stable identifier.
_SUBJECT = re.compile(IDENTIFIER_PATTERN)


@dataclass(frozen=True, slots=True)
class ClaimsPolicy:
    """What a verified token must say besides its signature."""

    issuer: str
    audience: str
    roles_claim: str = "roles"
    leeway_s: int = 30


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The caller behind `token`; NotAuthorizedException (401) or ServiceUnavailableException (503)."""
        ...


def _refused(reason: str) -> NotAuthorizedException:
    return NotAuthorizedException(detail=f"invalid bearer token: {reason}")


def _header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_BYTES:
        raise _refused("too long")
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as err:
        raise _refused("malformed") from err


def _decode(token: str, key: Any, algorithm: str, policy: ClaimsPolicy) -> tuple[Principal, float]:
    """The caller and the token's `exp` (seconds since the epoch)."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=policy.issuer,
            audience=policy.audience,
            leeway=policy.leeway_s,
            options={"require": ["sub", "exp", "iss", "aud"], "verify_sub": True},
        )
    except jwt.PyJWTError as err:
        raise _refused(str(err)) from err
    return principal_from(claims, policy.roles_claim), float(claims["exp"])


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires_at: float  # the token's own `exp`, without the leeway: the cache never extends what was accepted
    kid: str | None
    key: object  # the very key object that verified it: a hit holds only while the key set still has it


class VerifiedTokens:
    """Tokens already verified, by the SHA-256 of the token, least recently used dropped past `capacity`.

    Verifying a signature and the claims is most of the CPU of an authenticated request; a client sends the same
    token for many requests. A hit is served only before the token's `exp` (by `clock`) and only while the key that
    verified it is still the one the key set holds for its `kid` (the verifier asks the key set on every hit, so a
    key rotated out, or a refreshed set, sends the token through full verification again, and a withdrawn key
    refuses it). Refusals are never cached. Capacity 0: nothing is kept."""

    def __init__(self, capacity: int = 10_000, *, clock: Callable[[], float] = time.time) -> None:
        self._capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[bytes, _Verified] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> _Verified | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self._clock() >= entry.expires_at:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, entry: _Verified) -> None:
        if self._capacity <= 0:
            return
        self._entries[digest] = entry
        self._entries.move_to_end(digest)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def forget(self, digest: bytes) -> None:
        self._entries.pop(digest, None)


def _digest(token: str) -> bytes:
    if len(token) > MAX_TOKEN_BYTES:
        raise _refused("too long")
    return hashlib.sha256(token.encode()).digest()


def principal_from(claims: dict[str, Any], roles_claim: str) -> Principal:
    """Subject and roles of verified claims: roles only from `roles_claim`, unknown ones ignored."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise _refused("sub must be 1-128 characters of [A-Za-z0-9:_.-]")
    raw = claims.get(roles_claim, [])
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise _refused(f"claim {roles_claim!r} must be a list of strings")
    roles = frozenset(Role(r) for r in raw if r in Role._value2member_map_)
    return Principal(user_id=subject, roles=roles)


class JwksVerifier:
    """Asymmetric tokens, each signed by the provider key its `kid` names, with that key's own algorithm."""

    def __init__(
        self,
        keys: JwksKeys,
        policy: ClaimsPolicy,
        *,
        algorithms: Collection[str],
        cache: VerifiedTokens | None = None,
    ) -> None:
        self.keys = keys
        self.policy = policy
        self.algorithms = frozenset(algorithms)
        self.cache = cache if cache is not None else VerifiedTokens()

    async def verify(self, token: str) -> Principal:
        digest = _digest(token)
        hit = self.cache.get(digest)
        if hit is not None:
            self.cache.forget(digest)  # put back below if the key that verified it is still the one held
            if hit.kid is not None and await self._key(hit.kid) is hit.key:
                self.cache.put(digest, hit)
                return hit.principal
        header = _header(token)
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in self.algorithms:
            raise _refused("signature algorithm not accepted")
        if not isinstance(kid, str) or not kid:
            raise _refused("no key id (kid)")
        jwk = await self._key(kid)
        if jwk.algorithm_name != algorithm:
            raise _refused("algorithm does not match the signing key")
        principal, expires_at = _decode(token, jwk.key, algorithm, self.policy)
        self.cache.put(digest, _Verified(principal, expires_at, kid, jwk))
        return principal

    async def _key(self, kid: str) -> PyJWK:
        try:
            return await self.keys.get(kid)
        except UnknownKeyError as err:
            raise _refused("signed by an unknown key") from err
        except JwksUnavailableError as err:
            raise ServiceUnavailableException(detail="the identity provider's keys are unavailable") from err


class HmacVerifier:
    """Dev profile only: HS256 with a shared key (settings refuse a key shorter than 32 bytes)."""

    def __init__(self, secret: str, policy: ClaimsPolicy, *, cache: VerifiedTokens | None = None) -> None:
        self.secret = secret
        self.policy = policy
        self.cache = cache if cache is not None else VerifiedTokens()

    async def verify(self, token: str) -> Principal:
        digest = _digest(token)
        hit = self.cache.get(digest)
        if hit is not None:
            return hit.principal  # one key, never rotated while the process runs
        if _header(token).get("alg") != "HS256":
            raise _refused("signature algorithm not accepted")
        principal, expires_at = _decode(token, self.secret, "HS256", self.policy)
        self.cache.put(digest, _Verified(principal, expires_at, None, self.secret))
        return principal


def token_verifier(settings: ServiceSettings) -> TokenVerifier:
    """The verifier the settings describe (they were validated for the profile when they were loaded)."""
    policy = ClaimsPolicy(
        issuer=settings.issuer,
        audience=settings.audience,
        roles_claim=settings.jwt_roles_claim,
        leeway_s=settings.jwt_leeway_s,
    )
    cache = VerifiedTokens(settings.jwt_verified_cache_size)
    if settings.jwt_secret is not None:
        return HmacVerifier(settings.jwt_secret.get_secret_value(), policy, cache=cache)
    if settings.jwt_jwks_url is None:
        raise ValueError("JWT_JWKS_URL is not set")
    keys = JwksKeys(
        jwks_fetch(settings.jwt_jwks_url, timeout_s=settings.jwt_jwks_timeout_s),
        algorithms=settings.jwt_algorithms,
        cache_s=settings.jwt_jwks_cache_s,
        min_refresh_s=settings.jwt_jwks_min_refresh_s,
    )
    return JwksVerifier(keys, policy, algorithms=settings.jwt_algorithms, cache=cache)


class JwtAuthMiddleware(AbstractAuthenticationMiddleware):
    """Every route needs a bearer token, except the handlers whose `opt` sets `exclude_from_auth` (exact routes:
    no path pattern, so `/wallets/metrics` or `/rounds/health-check` are never mistaken for a public one)."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        exclude_opt_key: str = "exclude_from_auth",
        exclude_http_methods: Sequence[Method] | None = None,
        scopes: Scopes | None = None,
    ) -> None:
        super().__init__(
            app, exclude_from_auth_key=exclude_opt_key, exclude_http_methods=exclude_http_methods, scopes=scopes
        )
        self.verifier = verifier

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException(detail="missing bearer token")
        principal = await self.verifier.verify(token.strip())
        if not principal.roles:
            raise PermissionDeniedException(detail="the token holds no known role")
        return AuthenticationResult(user=principal, auth=token)


def _no_lookup(token: Any, connection: ASGIConnection[Any, Any, Any, Any]) -> Any:
    return None  # the middleware builds the Principal from the verified claims; there is no user store


@dataclass
class BearerJwtAuth(AbstractSecurityConfig[Principal, str]):
    """Litestar's security config: installs the middleware and documents `bearer JWT` in the OpenAPI schema."""

    verifier: TokenVerifier
    authentication_middleware_class: type[AbstractAuthenticationMiddleware] = field(default=JwtAuthMiddleware)
    retrieve_user_handler: Callable[[Any, ASGIConnection[Any, Any, Any, Any]], Any] = field(default=_no_lookup)
    exclude_opt_key: str = "exclude_from_auth"
    # OPTIONS answers the allowed methods only; HEAD is not excluded (Litestar's default would skip auth for it).
    exclude_http_methods: Sequence[Method] | None = field(default_factory=lambda: [HttpMethod.OPTIONS])
    description: str = "A JWT from the identity provider: `Authorization: Bearer <token>`"

    @property
    def openapi_components(self) -> Components:
        scheme = SecurityScheme(type="http", scheme="bearer", bearer_format="JWT", description=self.description)
        return Components(security_schemes={SECURITY_SCHEME: scheme})

    @property
    def security_requirement(self) -> SecurityRequirement:
        return {SECURITY_SCHEME: []}

    @property
    def middleware(self) -> DefineMiddleware:
        return DefineMiddleware(
            self.authentication_middleware_class,
            verifier=self.verifier,
            exclude_opt_key=self.exclude_opt_key,
            exclude_http_methods=self.exclude_http_methods,
            scopes=self.scopes,
        )


def require_roles(*roles: Role) -> Any:
    """A Litestar guard: the caller must hold at least one of `roles`."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal) or not principal.has_any(*roles):
            raise PermissionDeniedException(detail=f"requires one of roles: {', '.join(sorted(roles))}")

    return guard


__all__ = [
    "BearerJwtAuth",
    "ClaimsPolicy",
    "HmacVerifier",
    "JwksVerifier",
    "JwtAuthMiddleware",
    "Principal",
    "Role",
    "TokenVerifier",
    "VerifiedTokens",
    "principal_from",
    "require_roles",
    "token_verifier",
]
