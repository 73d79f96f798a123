"""Tokens for tests: bearer headers minted with the test session's dev identity (see the devstack's pytest
plugin, which points `JWT_JWKS_URL` at a key pair of its own)."""

from __future__ import annotations

from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.settings import ServiceSettings


def dev_bearer(settings: ServiceSettings, user: str, *roles: str, ttl_s: int = 3600) -> dict[str, str]:
    """An `Authorization` header the service configured by `settings` accepts (dev profile, file:// JWKS)."""
    if settings.jwt_jwks_url is None:
        raise ValueError("JWT_JWKS_URL is not set: the dev identity's file:// JWKS is needed to mint tokens")
    identity = DevIdentity.from_jwks_url(settings.jwt_jwks_url)
    token = identity.issue(
        user,
        roles,
        audience=settings.audience,
        issuer=settings.issuer,
        roles_claim=settings.jwt_roles_claim,
        ttl_s=ttl_s,
    )
    return {"Authorization": f"Bearer {token}"}


__all__ = ["dev_bearer"]
