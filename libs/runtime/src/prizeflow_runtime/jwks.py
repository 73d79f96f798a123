"""The identity provider's signing keys (a JWKS), fetched with a deadline and cached by `kid`.

Keys are refetched when the cache is older than `cache_s`, or when a token names a `kid` the cache does not
hold (the provider rotated), at most once per `min_refresh_s`: a flood of tokens with invented `kid`s costs
the provider one request per interval. A refresh replaces the whole set, so a key the provider withdrew stops
verifying. A fetch that fails (timeout, HTTP error, unreadable document) never leaves anything accepted: the
caller answers 503 and nothing is trusted on a stale or partial set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx
from jwt import PyJWK, PyJWKError, PyJWTError

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[bytes]]
MAX_JWKS_BYTES: Final = 256 * 1024
MIN_RSA_BITS: Final = 2048
# A published private or symmetric key is a misconfigured provider: such an entry never verifies anything.
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


class JwksUnavailableError(Exception):
    """The keys could not be fetched (or were refetched too recently to try again): nothing can be verified."""


class UnknownKeyError(Exception):
    """The token names a key the provider does not publish (even after a refresh, or one was just made)."""


def http_fetch(url: str, *, timeout_s: float) -> Fetch:
    """GET the JWKS with an overall deadline (a server dripping bytes cannot hold a request), size-capped."""

    async def fetch() -> bytes:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
            client.stream("GET", url, headers={"accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
            return bytes(body)

    return fetch


def file_fetch(url: str) -> Fetch:
    """A `file://` JWKS (the dev identity's): read on every refresh, so a rotated file is picked up."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError("a file:// JWKS URL must name a local path")
    path = Path(url2pathname(unquote(parts.path)))

    async def fetch() -> bytes:
        data = await asyncio.to_thread(path.read_bytes)
        if len(data) > MAX_JWKS_BYTES:
            raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
        return data

    return fetch


def parse_jwks(raw: bytes, algorithms: Collection[str]) -> dict[str, PyJWK]:
    """The usable signing keys by `kid`: entries without a kid, for encryption, private, of another algorithm,
    RSA under 2048 bits, or sharing a kid with another entry are left out (and logged by kid)."""
    doc = json.loads(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("a JWKS is a JSON object with a `keys` list")
    keys: dict[str, PyJWK] = {}
    ambiguous: set[str] = set()
    for entry in doc["keys"]:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or not kid:
            continue
        jwk = _usable(entry, algorithms)
        if isinstance(jwk, str):
            log.warning("JWKS key skipped", extra={"kid": kid[:64], "why": jwk})
            continue
        if kid in keys or kid in ambiguous:
            ambiguous.add(kid)
            keys.pop(kid, None)
            log.warning("JWKS key skipped", extra={"kid": kid[:64], "why": "kid used twice"})
            continue
        keys[kid] = jwk
    return keys


def _usable(entry: dict[str, Any], algorithms: Collection[str]) -> PyJWK | str:
    """The key, or why it is left out."""
    if entry.get("use") not in (None, "sig"):
        return "not a signing key"
    if _PRIVATE_MEMBERS.intersection(entry):
        return "private or symmetric key material"
    try:
        jwk = PyJWK(entry)
    except (PyJWKError, PyJWTError, ValueError, TypeError):
        return "unreadable key"
    if jwk.algorithm_name not in algorithms:
        return f"algorithm {jwk.algorithm_name} not accepted"
    if jwk.key_type == "RSA" and getattr(jwk.key, "key_size", 0) < MIN_RSA_BITS:
        return f"RSA key under {MIN_RSA_BITS} bits"
    return jwk


class JwksKeys:
    """The cached key set; `get(kid)` refreshes when stale or on an unknown kid, as the module doc says."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        algorithms: Collection[str],
        cache_s: float = 300.0,
        min_refresh_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._algorithms = frozenset(algorithms)
        self._cache_s = cache_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._failed = False
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self, kid: str) -> PyJWK:
        if self._stale(self._clock()):
            await self._refresh(unknown_kid=False)
        key = self._keys.get(kid)
        if key is None:
            await self._refresh(unknown_kid=True)
            key = self._keys.get(kid)
        if key is None:
            raise UnknownKeyError(kid)
        return key

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._cache_s

    def _recently_tried(self, now: float) -> bool:
        return self._attempted_at is not None and now - self._attempted_at < self._min_refresh_s

    async def _refresh(self, *, unknown_kid: bool) -> None:
        async with self._lock:  # one fetch in flight; whoever waited sees its result
            now = self._clock()
            if unknown_kid:
                if self._recently_tried(now):
                    if self._failed:
                        raise JwksUnavailableError("the JWKS could not be fetched; retrying later")
                    return  # rate-limited: the kid stays unknown
            elif not self._stale(now):
                return  # refreshed while this caller waited
            elif self._failed and self._recently_tried(now):
                raise JwksUnavailableError("the JWKS could not be fetched; retrying later")
            self._attempted_at = now
            self.fetches += 1
            try:
                keys = parse_jwks(await self._fetch(), self._algorithms)
            except (OSError, ValueError, TimeoutError, httpx.HTTPError, PyJWTError) as err:
                self._failed = True
                log.warning("JWKS fetch failed", extra={"error_type": type(err).__name__})
                raise JwksUnavailableError("the JWKS could not be fetched") from err
            self._failed = False
            self._keys = keys
            self._fetched_at = now
            if not keys:
                log.warning("JWKS holds no usable signing key: every token is refused")


def jwks_fetch(url: str, *, timeout_s: float) -> Fetch:
    """The fetch for a JWKS URL: `file://` reads a local file (dev), anything else is an HTTP GET."""
    return file_fetch(url) if url.startswith("file://") else http_fetch(url, timeout_s=timeout_s)


__all__ = [
    "MAX_JWKS_BYTES",
    "Fetch",
    "JwksKeys",
    "JwksUnavailableError",
    "UnknownKeyError",
    "file_fetch",
    "http_fetch",
    "jwks_fetch",
    "parse_jwks",
]
