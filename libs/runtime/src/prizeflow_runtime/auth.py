"""JWT bearer authentication and role guards for every service's HTTP API.

Roles: `player` (may read only its own wallet: the token's subject), `admin`, `approver`, `ops`.
Tokens are HS256 with issuer and audience checked; the acting user id is the `sub` claim.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware


class Role(StrEnum):
    PLAYER = "player"
    ADMIN = "admin"
    APPROVER = "approver"
    OPS = "ops"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    roles: frozenset[Role]

    def has_any(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


@dataclass(frozen=True)
class JwtConfig:
    secret: str
    issuer: str = "prizeflow"
    audience: str = "prizeflow"
    algorithm: str = "HS256"


def issue_token(config: JwtConfig, user_id: str, roles: list[str] | tuple[str, ...], *, ttl_s: int = 3600) -> str:
    """Mint a token (dev tooling, the simulator and tests; production tokens come from the IdP)."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "roles": list(roles),
        "iss": config.issuer,
        "aud": config.audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, config.secret, algorithm=config.algorithm)


def verify_token(config: JwtConfig, token: str) -> Principal:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            config.secret,
            algorithms=[config.algorithm],
            issuer=config.issuer,
            audience=config.audience,
            options={"require": ["sub", "exp", "iss", "aud"]},
        )
    except jwt.PyJWTError as err:
        raise NotAuthorizedException(detail=f"invalid bearer token: {err}") from err
    raw_roles = claims.get("roles", [])
    if not isinstance(raw_roles, list):
        raise NotAuthorizedException(detail="invalid bearer token: roles must be a list")
    roles = frozenset(Role(r) for r in raw_roles if r in Role._value2member_map_)
    return Principal(user_id=str(claims["sub"]), roles=roles)


class JwtAuthMiddleware(AbstractAuthenticationMiddleware):
    """Every route needs a bearer token, except the handlers whose `opt` sets `exclude_from_auth` (exact routes:
    no path pattern, so `/wallets/metrics` or `/rounds/health-check` are never mistaken for a public one)."""

    def __init__(self, app: Any, config: JwtConfig) -> None:
        super().__init__(app)
        self.config = config

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorizedException(detail="missing bearer token")
        principal = verify_token(self.config, token.strip())
        return AuthenticationResult(user=principal, auth=token)


def jwt_middleware(config: JwtConfig) -> DefineMiddleware:
    return DefineMiddleware(JwtAuthMiddleware, config=config)


def require_roles(*roles: Role) -> Any:
    """A Litestar guard: the caller must hold at least one of `roles`."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal) or not principal.has_any(*roles):
            raise PermissionDeniedException(detail=f"requires one of roles: {', '.join(sorted(roles))}")

    return guard
