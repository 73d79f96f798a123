"""Tokens for tests: bearer headers minted with the test session's dev identity (see the devstack's pytest
plugin, which points `JWT_JWKS_URL` at a key pair of its own), and identity-provider signing keys (RS256,
ES256, EdDSA) whose JWKs a test publishes and whose tokens it signs."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.settings import ServiceSettings

ISSUER = "https://id.prizeflow.test/"
AUDIENCE = "prizeflow-rewards"


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


@dataclass(frozen=True)
class In:
    """A time `seconds` from when the token is signed (parameters are built at collection, long before)."""

    seconds: int


class SigningKey:
    """An identity provider's signing key: the private half signs tokens, the public JWK is what its JWKS
    publishes. Tokens default to `alice` holding `admin`, for `issuer` and `audience`, valid for 5 minutes."""

    def __init__(
        self, algorithm: str, kid: str | None = None, *, issuer: str = ISSUER, audience: str = AUDIENCE
    ) -> None:
        self.algorithm = algorithm
        self.issuer, self.audience = issuer, audience
        self.kid = kid or uuid.uuid4().hex
        if algorithm == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        elif algorithm == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()
            self.jwk = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        self.jwk.update({"kid": self.kid, "use": "sig", "alg": algorithm})

    def sign(self, claims: dict[str, Any] | None = None, *, drop: tuple[str, ...] = (), **header: Any) -> str:
        """`claims` values of `In(seconds)` are times relative to the moment of signing."""
        now = int(time.time())
        claims = {k: now + v.seconds if isinstance(v, In) else v for k, v in (claims or {}).items()}
        body = {
            "sub": "alice",
            "roles": ["admin"],
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            **(claims or {}),
        }
        for name in drop:
            body.pop(name)
        return jwt.encode(body, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **header})


__all__ = ["AUDIENCE", "ISSUER", "In", "SigningKey", "dev_bearer"]
