"""A local identity provider for the dev profile: an Ed25519 key pair on disk, its public JWKS, and tokens.

The devstack, the e2e `Platform`, the test session and the simulator use it so that local runs take the same
asymmetric path as production (JWKS, `kid`, issuer, per-service audience), with `JWT_JWKS_URL` a `file://` URL
(accepted in the dev profile only). The private key is created with mode 0600 from its first byte and never
replaced; `jwks.json` beside it is derived from it. Nothing here is for production: tokens there come from the
identity provider.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from prizeflow_runtime.auth import ClaimsPolicy, JwksVerifier
from prizeflow_runtime.jwks import JwksKeys
from prizeflow_runtime.settings import DEV_ISSUER

KEY_FILE: Final = "signing-key.pem"
JWKS_FILE: Final = "jwks.json"
ALGORITHM: Final = "EdDSA"


def write_private_file(path: Path, data: bytes, *, replace: bool = False) -> bool:
    """Write `path` with mode 0600 from its first byte (a temporary file published atomically). With
    `replace=False` an existing file is kept (another process got there first): False is returned."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            tmp.replace(path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class DevIdentity:
    """The dev identity provider's key; `directory` is None for one held in memory only (unit tests)."""

    key: Ed25519PrivateKey
    directory: Path | None = None
    issuer: str = DEV_ISSUER

    @classmethod
    def generate(cls) -> DevIdentity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def ensure(cls, directory: Path) -> DevIdentity:
        """The identity kept in `directory` (0700), created on first use; safe when processes race to create it."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_file = directory / KEY_FILE
        if not key_file.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            write_private_file(key_file, pem)
        identity = cls(_load_key(key_file, key_file.stat().st_mtime_ns), directory)
        jwks = json.dumps(identity.jwks(), indent=2).encode()
        jwks_file = directory / JWKS_FILE
        if not jwks_file.exists() or jwks_file.read_bytes() != jwks:
            tmp = directory / f".{JWKS_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            tmp.write_bytes(jwks)  # public: a derived, identical document whichever process writes it
            tmp.replace(jwks_file)
        return identity

    @classmethod
    def from_jwks_url(cls, url: str) -> DevIdentity:
        """The identity whose `file://` JWKS is `url` (its private key lies beside it)."""
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise ValueError("the dev identity is published as a file:// JWKS; this JWKS belongs to someone else")
        directory = Path(url2pathname(unquote(parts.path))).parent
        key_file = directory / KEY_FILE
        return cls(_load_key(key_file, key_file.stat().st_mtime_ns), directory)

    @property
    def kid(self) -> str:
        """RFC 7638 thumbprint of the public key: stable for a key, different for the next one."""
        canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": self._x()}, separators=(",", ":"))
        return _b64url(hashlib.sha256(canonical.encode()).digest())

    @property
    def jwks_url(self) -> str:
        if self.directory is None:
            raise ValueError("an in-memory dev identity publishes no JWKS file")
        return (self.directory / JWKS_FILE).resolve().as_uri()

    def _x(self) -> str:
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return _b64url(raw)

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [{"kty": "OKP", "crv": "Ed25519", "x": self._x(), "kid": self.kid, "alg": ALGORITHM, "use": "sig"}]
        }

    def verifier(self, *, audience: str, issuer: str | None = None, roles_claim: str = "roles") -> JwksVerifier:
        """A verifier trusting this identity's JWKS, with no file or server in between (unit tests)."""
        document = json.dumps(self.jwks()).encode()

        async def fetch() -> bytes:
            return document

        keys = JwksKeys(fetch, algorithms=[ALGORITHM])
        policy = ClaimsPolicy(issuer=issuer or self.issuer, audience=audience, roles_claim=roles_claim)
        return JwksVerifier(keys, policy, algorithms=[ALGORITHM])

    def issue(
        self,
        user: str,
        roles: Sequence[str],
        *,
        audience: str | Sequence[str],
        issuer: str | None = None,
        roles_claim: str = "roles",
        ttl_s: int = 3600,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A signed token for `user` holding `roles` (in `roles_claim`), for `audience`."""
        now = int(time.time())
        body: dict[str, Any] = {
            "sub": user,
            roles_claim: list(roles),
            "iss": issuer or self.issuer,
            "aud": audience if isinstance(audience, str) else list(audience),
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            **(claims or {}),
        }
        return jwt.encode(body, self.key, algorithm=ALGORITHM, headers={"kid": self.kid})


@lru_cache(maxsize=16)
def _load_key(path: Path, mtime_ns: int) -> Ed25519PrivateKey:
    """Parsed once per file version (`mtime_ns` is the cache key's other half): tests mint many tokens."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


__all__ = ["ALGORITHM", "JWKS_FILE", "KEY_FILE", "DevIdentity", "write_private_file"]
