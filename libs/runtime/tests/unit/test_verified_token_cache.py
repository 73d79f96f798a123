"""The verified-token cache: a token verified once is not verified again, but never past its `exp`, never once the
key that verified it was rotated out, and never beyond its capacity."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest
from litestar.exceptions import NotAuthorizedException

from prizeflow_runtime import auth
from prizeflow_runtime.auth import ClaimsPolicy, HmacVerifier, JwksVerifier, VerifiedTokens
from prizeflow_runtime.jwks import JwksKeys
from prizeflow_testkit.tokens import AUDIENCE, ISSUER, SigningKey

ALGORITHMS = ("RS256", "ES256", "EdDSA")
STRICT = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, leeway_s=0)


class Provider:
    """A JWKS that can change and a key-set clock that moves only when told."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.now = 1000.0

    async def fetch(self) -> bytes:
        return json.dumps({"keys": [k.jwk for k in self.keys]}).encode()

    def verifier(self, cache: VerifiedTokens | None = None) -> JwksVerifier:
        keys = JwksKeys(self.fetch, algorithms=ALGORITHMS, cache_s=300, min_refresh_s=0, clock=lambda: self.now)
        return JwksVerifier(keys, STRICT, algorithms=ALGORITHMS, cache=cache)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full verification (signature and claims) the verifiers run."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)  # the module `prizeflow_runtime.auth` calls it through
    return seen


async def refused(verifier: JwksVerifier | HmacVerifier, token: str) -> str:
    with pytest.raises(NotAuthorizedException) as err:
        await verifier.verify(token)
    return str(err.value.detail)


async def test_a_token_verified_once_is_served_from_the_cache_until_its_key_set_is_refreshed(
    decodes: list[str],
) -> None:
    key = SigningKey("ES256")
    provider = Provider(key)
    verifier = provider.verifier()
    token = key.sign({"roles": ["approver"]})
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert await verifier.verify(token) == first
    assert decodes == [token]  # verified once
    provider.now += 301  # the key set is refreshed: same key, new object
    assert await verifier.verify(token) == first
    assert decodes == [token, token]  # verified again against the refreshed set


async def test_a_cached_token_whose_key_was_rotated_out_is_refused() -> None:
    old, new = SigningKey("RS256"), SigningKey("RS256")
    provider = Provider(old)
    verifier = provider.verifier()
    token = old.sign()
    assert (await verifier.verify(token)).user_id == "alice"
    provider.keys = [new]  # the provider withdraws the old key
    provider.now += 301  # and the key set is refetched
    assert await refused(verifier, token) == "invalid bearer token: signed by an unknown key"
    assert len(verifier.cache) == 0


async def test_a_cached_token_whose_kid_now_names_other_key_material_is_verified_again_and_refused() -> None:
    old = SigningKey("ES256")
    impostor_key = SigningKey("ES256", kid=old.kid)  # the provider re-keyed under the same kid
    provider = Provider(old)
    verifier = provider.verifier()
    token = old.sign()
    await verifier.verify(token)
    provider.keys = [impostor_key]
    provider.now += 301
    assert "Signature verification failed" in await refused(verifier, token)


async def test_a_cached_token_is_refused_once_it_expires(decodes: list[str]) -> None:
    key = SigningKey("EdDSA")
    verifier = Provider(key).verifier()
    expires = int(time.time()) + 2
    token = key.sign({"exp": expires})
    await verifier.verify(token)
    await verifier.verify(token)
    assert decodes == [token]
    async with asyncio.timeout(10):
        while time.time() < expires + 1:  # the token's own lifetime has to pass: nothing else can be waited on
            await asyncio.sleep(0.1)
    assert await refused(verifier, token) == "invalid bearer token: Signature has expired"
    assert decodes == [token, token]  # not answered from the cache


async def test_the_cache_never_serves_past_exp_by_its_clock_and_stays_within_capacity() -> None:
    now = [1_000.0]
    cache = VerifiedTokens(2, clock=lambda: now[0])
    entry = auth._Verified(auth.Principal("alice", frozenset()), expires_at=1_010.0, kid="k", key=object())
    for digest in (b"a", b"b", b"c"):
        cache.put(digest, entry)
    assert len(cache) == 2
    assert cache.get(b"a") is None  # the least recently used went first
    assert cache.get(b"c") is entry
    now[0] = 1_010.0
    assert cache.get(b"c") is None
    assert len(cache) == 1


async def test_refusals_are_not_cached_and_a_zero_capacity_cache_keeps_nothing(decodes: list[str]) -> None:
    key = SigningKey("ES256")
    verifier = Provider(key).verifier(cache=VerifiedTokens(0))
    token = key.sign()
    await verifier.verify(token)
    await verifier.verify(token)
    assert len(decodes) == 2
    wrong_audience = key.sign({"aud": "prizeflow-payouts"})
    for _ in range(2):
        assert "Audience doesn't match" in await refused(Provider(key).verifier(), wrong_audience)


async def test_the_dev_hmac_verifier_caches_too_and_still_refuses_an_expired_token(decodes: list[str]) -> None:
    secret = "s" * 32
    verifier = HmacVerifier(secret, STRICT)
    now = int(time.time())
    claims = {"sub": "dev", "roles": ["admin"], "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300}
    token = jwt.encode(claims, secret, algorithm="HS256")
    await verifier.verify(token)
    await verifier.verify(token)
    assert decodes == [token]
    expired = jwt.encode({**claims, "exp": now - 1}, secret, algorithm="HS256")
    assert await refused(verifier, expired) == "invalid bearer token: Signature has expired"
