"""JWKS fetched over HTTP from a real local endpoint, including one that never finishes answering (integration:
the endpoint is a socket server)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar.exceptions import ServiceUnavailableException

from prizeflow_runtime.auth import ClaimsPolicy, JwksVerifier
from prizeflow_runtime.jwks import JwksKeys, http_fetch
from prizeflow_testkit.tokens import AUDIENCE, ISSUER, SigningKey

pytestmark = pytest.mark.integration

ALGORITHMS = ("RS256", "ES256", "EdDSA")
POLICY = ClaimsPolicy(issuer=ISSUER, audience=AUDIENCE, leeway_s=30)


# --- over HTTP: a real (local) JWKS endpoint, including one that never answers -----------------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/.well-known/jwks.json"


@pytest.fixture
async def jwks_server() -> AsyncIterator[tuple[str, list[SigningKey], list[int]]]:
    keys: list[SigningKey] = [SigningKey("RS256")]
    hits: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        hits.append(1)
        body = json.dumps({"keys": [k.jwk for k in keys]}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
        writer.write(f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    server, url = await _serve(handle)
    yield url, keys, hits
    server.close()


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{")
        await writer.drain()
        await release.wait()  # then nothing until the test is over: only the deadline ends the fetch
        writer.close()

    server, url = await _serve(handle)
    yield url
    release.set()
    server.close()


async def test_the_jwks_is_fetched_over_http(jwks_server: tuple[str, list[SigningKey], list[int]]) -> None:
    url, keys, hits = jwks_server
    verifier = JwksVerifier(
        JwksKeys(http_fetch(url, timeout_s=5), algorithms=ALGORITHMS), POLICY, algorithms=ALGORITHMS
    )
    assert (await verifier.verify(keys[0].sign())).user_id == "alice"
    assert (await verifier.verify(keys[0].sign({"sub": "bob"}))).user_id == "bob"
    assert len(hits) == 1


async def test_a_jwks_endpoint_that_never_finishes_answering_is_a_503_within_the_deadline(silent_server: str) -> None:
    verifier = JwksVerifier(
        JwksKeys(http_fetch(silent_server, timeout_s=0.5), algorithms=ALGORITHMS), POLICY, algorithms=ALGORITHMS
    )
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableException):
        await verifier.verify(SigningKey("ES256").sign())
    assert time.monotonic() - started < 3
