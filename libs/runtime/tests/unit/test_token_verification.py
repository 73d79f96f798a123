"""Identity-provider tokens (ADR 0005): asymmetric signatures against a JWKS, kid rotation and caching, claims.

Every refusal is a 401 (or a 503 when the keys cannot be had): nothing here is ever accepted by default.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from litestar.exceptions import NotAuthorizedException, ServiceUnavailableException

from prizeflow_runtime.auth import ClaimsPolicy, HmacVerifier, JwksVerifier, Principal, Role
from prizeflow_runtime.jwks import JwksKeys, parse_jwks
from prizeflow_testkit.tokens import AUDIENCE, ISSUER, In, SigningKey

ALGORITHMS = ("RS256", "ES256", "EdDSA")
POLICY = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, leeway_s=30)


class Provider:
    """A JWKS that can change, a clock that moves only when told, and a count of fetches."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.now = 1000.0
        self.fetches = 0
        self.down = False

    async def fetch(self) -> bytes:
        self.fetches += 1
        if self.down:
            raise OSError("connection refused")
        return json.dumps({"keys": [k.jwk for k in self.keys]}).encode()

    def verifier(
        self, policy: ClaimsPolicy = POLICY, *, cache_s: float = 300, min_refresh_s: float = 30
    ) -> JwksVerifier:
        keys = JwksKeys(
            self.fetch, algorithms=ALGORITHMS, cache_s=cache_s, min_refresh_s=min_refresh_s, clock=lambda: self.now
        )
        return JwksVerifier(keys, policy, algorithms=ALGORITHMS)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def refused(verifier: JwksVerifier | HmacVerifier, token: str) -> str:
    with pytest.raises(NotAuthorizedException) as err:
        await verifier.verify(token)
    return str(err.value.detail)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_rs256_es256_and_eddsa_tokens_verify_against_the_jwks(algorithm: str) -> None:
    key = SigningKey(algorithm)
    principal = await Provider(key).verifier().verify(key.sign({"roles": ["approver", "ops", "root"]}))
    assert principal == Principal("alice", frozenset({Role.APPROVER, Role.OPS}))


async def test_a_token_is_checked_against_the_key_its_kid_names_and_that_keys_algorithm() -> None:
    rsa_key, ec_key = SigningKey("RS256"), SigningKey("ES256")
    verifier = Provider(rsa_key, ec_key).verifier()
    # Signed by another EC key (not published) naming a published one's kid.
    assert "Signature verification failed" in await refused(verifier, SigningKey("ES256").sign(kid=ec_key.kid))
    # Signed by the EC key, naming the RSA key.
    mismatch = "invalid bearer token: algorithm does not match the signing key"
    assert await refused(verifier, ec_key.sign(kid=rsa_key.kid)) == mismatch


async def test_symmetric_and_unsigned_tokens_are_refused_whatever_they_claim() -> None:
    key = SigningKey("RS256")
    verifier = Provider(key).verifier()
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"sub": "mallory", "roles": ["admin"], "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60}
    # The classic confusion: HS256 keyed with the provider's public key (built by hand: PyJWT refuses to).
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    hs = f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    none = f"{b64(json.dumps({'alg': 'none', 'kid': key.kid}).encode())}.{b64(json.dumps(claims).encode())}."
    for token in (hs, none):
        assert await refused(verifier, token) == "invalid bearer token: signature algorithm not accepted"
    assert await refused(verifier, "a.b") == "invalid bearer token: malformed"
    assert await refused(verifier, key.sign() + "x" * 9000) == "invalid bearer token: too long"


@pytest.mark.parametrize(
    ("claims", "drop", "why"),
    [
        ({"iss": "https://evil.test/"}, (), "Invalid issuer"),
        ({"aud": "prizeflow-payouts"}, (), "Audience doesn't match"),
        ({"aud": ["prizeflow-payouts", "prizeflow-settlement"]}, (), "Audience doesn't match"),
        ({"exp": In(-31)}, (), "Signature has expired"),
        ({"nbf": In(120)}, (), "The token is not yet valid (nbf)"),
        ({}, ("exp",), 'Token is missing the "exp" claim'),
        ({}, ("sub",), 'Token is missing the "sub" claim'),
        ({}, ("aud",), 'Token is missing the "aud" claim'),
        ({}, ("iss",), 'Token is missing the "iss" claim'),
        ({"sub": ""}, (), "sub must be"),
        ({"sub": "alice "}, (), "sub must be"),
        ({"sub": "auth0|alice"}, (), "sub must be"),
        ({"roles": "admin"}, (), "claim 'roles' must be a list of strings"),
        ({"roles": [{"name": "admin"}]}, (), "claim 'roles' must be a list of strings"),
    ],
)
async def test_claims_are_checked(claims: dict[str, Any], drop: tuple[str, ...], why: str) -> None:
    key = SigningKey("ES256")
    assert why in await refused(Provider(key).verifier(), key.sign(claims, drop=drop))


async def test_exp_and_nbf_have_a_small_leeway_and_several_audiences_may_include_ours() -> None:
    key = SigningKey("EdDSA")
    verifier = Provider(key).verifier()
    now = int(time.time())
    late = key.sign({"exp": now - 10, "nbf": now + 10, "aud": ["prizeflow-payouts", AUDIENCE]})
    assert (await verifier.verify(late)).user_id == "alice"


async def test_roles_come_only_from_the_configured_claim() -> None:
    key = SigningKey("RS256")
    namespaced = "https://prizeflow.dev/roles"
    verifier = Provider(key).verifier(ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, roles_claim=namespaced))
    both = key.sign({namespaced: ["approver"], "roles": ["admin"]})
    assert (await verifier.verify(both)).roles == {Role.APPROVER}
    only_default_claim = key.sign({"roles": ["admin"]})
    assert (await verifier.verify(only_default_claim)).roles == frozenset()  # the middleware answers 403


async def test_an_unknown_kid_triggers_one_refresh_at_most_once_per_interval() -> None:
    old, new = SigningKey("ES256"), SigningKey("ES256")
    provider = Provider(old)
    verifier = provider.verifier(min_refresh_s=30)
    await verifier.verify(old.sign())
    assert provider.fetches == 1
    # A burst of tokens with invented kids: the provider is asked at most once per interval.
    provider.now += 31
    for _ in range(50):
        await refused(verifier, SigningKey("ES256").sign())
    assert provider.fetches == 2
    # The provider rotates in a new key; within the interval its tokens wait, after it they verify.
    provider.keys.append(new)
    assert await refused(verifier, new.sign()) == "invalid bearer token: signed by an unknown key"
    provider.now += 31
    assert (await verifier.verify(new.sign())).user_id == "alice"
    assert provider.fetches == 3


async def test_a_key_withdrawn_from_the_jwks_stops_verifying() -> None:
    old, new = SigningKey("RS256"), SigningKey("EdDSA")
    provider = Provider(old, new)
    verifier = provider.verifier(cache_s=300, min_refresh_s=30)
    token = old.sign()
    await verifier.verify(token)
    provider.keys.remove(old)
    provider.now += 300  # the cache expires: the next token refetches the set
    assert await refused(verifier, token) == "invalid bearer token: signed by an unknown key"
    assert (await verifier.verify(new.sign())).user_id == "alice"


async def test_a_failed_fetch_fails_closed_and_is_not_retried_before_the_interval() -> None:
    key = SigningKey("ES256")
    provider = Provider(key)
    verifier = provider.verifier(cache_s=60, min_refresh_s=10)
    provider.down = True
    for _ in range(5):
        with pytest.raises(ServiceUnavailableException):
            await verifier.verify(key.sign())
    assert provider.fetches == 1
    provider.down = False
    provider.now += 10
    await verifier.verify(key.sign())
    # Cached keys expire; the provider is down again: nothing verifies on the stale set.
    provider.down = True
    provider.now += 60
    with pytest.raises(ServiceUnavailableException):
        await verifier.verify(key.sign())
    assert provider.fetches == 3


async def test_concurrent_tokens_with_a_new_kid_share_one_fetch() -> None:
    key = SigningKey("EdDSA")
    provider = Provider(key)
    verifier = provider.verifier()
    results = await asyncio.gather(*(verifier.verify(key.sign()) for _ in range(20)))
    assert {p.user_id for p in results} == {"alice"}
    assert provider.fetches == 1


def test_the_jwks_keeps_only_public_signing_keys_of_accepted_algorithms() -> None:
    good = SigningKey("ES256", kid="good")
    private = SigningKey("EdDSA", kid="private")
    private.jwk["d"] = "AAAA"
    encryption = SigningKey("RS256", kid="enc")
    encryption.jwk["use"] = "enc"
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_jwk = {**json.loads(RSAAlgorithm.to_jwk(weak.public_key())), "kid": "weak"}
    twice_a, twice_b = SigningKey("ES256", kid="twice"), SigningKey("ES256", kid="twice")
    oct_key = {"kty": "oct", "k": "c2VjcmV0", "kid": "oct", "alg": "HS256"}
    document = {
        "keys": [good.jwk, private.jwk, encryption.jwk, weak_jwk, twice_a.jwk, twice_b.jwk, oct_key, {"kty": "EC"}, 7]
    }
    assert set(parse_jwks(json.dumps(document).encode(), ALGORITHMS)) == {"good"}
    with pytest.raises(ValueError, match="keys"):
        parse_jwks(b'{"not": "a jwks"}', ALGORITHMS)


async def test_hs256_dev_verifier_accepts_only_hs256() -> None:
    secret = "dev-only-0123456789abcdef0123456789"
    verifier = HmacVerifier(secret, POLICY)
    now = int(time.time())
    claims = {"sub": "dev", "roles": ["ops"], "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60}
    assert (await verifier.verify(jwt.encode(claims, secret, algorithm="HS256"))).roles == {Role.OPS}
    assert "not accepted" in await refused(verifier, SigningKey("EdDSA").sign())
    assert "Signature verification failed" in await refused(
        verifier, jwt.encode(claims, secret + "x", algorithm="HS256")
    )
