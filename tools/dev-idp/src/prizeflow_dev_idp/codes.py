"""Authorization codes (RFC 6749 §4.1.2) and their PKCE check (RFC 7636, S256 only).

A code is 32 random bytes, valid once for 60 s, and bound to everything the authorization request and the sign-in
decided: client, redirect URI, challenge, nonce, person and roles. Only its SHA-256 is kept, so the store never
holds a redeemable value; a redemption attempt consumes the code whether or not it then succeeds, so a wrong
verifier cannot be retried against the same code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

CODE_TTL_S: Final = 60
# RFC 7636 §4.1: 43 to 128 unreserved characters; §4.2: S256 is BASE64URL(SHA256(verifier)), 43 characters.
VERIFIER: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CHALLENGE: Final = re.compile(r"[A-Za-z0-9\-_]{43}")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str, challenge: str) -> bool:
    return VERIFIER.fullmatch(verifier) is not None and hmac.compare_digest(s256(verifier), challenge)


@dataclass(frozen=True)
class Grant:
    """What a code stands for."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    user: str
    roles: tuple[str, ...]
    scope: str
    auth_time: int
    expires_at: float


class CodeStore:
    """In memory: a restarted provider forgets its codes, which is what a 60 s single-use code may do."""

    def __init__(self, clock: Callable[[], float], ttl_s: int = CODE_TTL_S) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._grants: dict[bytes, Grant] = {}

    def issue(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        nonce: str | None,
        user: str,
        roles: tuple[str, ...],
        scope: str,
    ) -> str:
        now = self._clock()
        self._grants = {k: g for k, g in self._grants.items() if g.expires_at > now}
        code = secrets.token_urlsafe(32)
        self._grants[_key(code)] = Grant(
            client_id=client_id,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            nonce=nonce,
            user=user,
            roles=roles,
            scope=scope,
            auth_time=int(now),
            expires_at=now + self._ttl_s,
        )
        return code

    def redeem(self, code: str) -> Grant | None:
        """The grant, once; None for a code never issued, already redeemed or expired."""
        grant = self._grants.pop(_key(code), None)
        if grant is None or grant.expires_at <= self._clock():
            return None
        return grant

    def __len__(self) -> int:
        return len(self._grants)


def _key(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


__all__ = ["CHALLENGE", "CODE_TTL_S", "VERIFIER", "CodeStore", "Grant", "s256", "verifier_matches"]
