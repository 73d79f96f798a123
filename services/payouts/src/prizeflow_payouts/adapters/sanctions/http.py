"""`ListSource` over HTTP(S): the publisher's file, streamed and cut off past the size allowed."""

from __future__ import annotations

import httpx

from prizeflow_payouts.application.compliance.sanctions import ListFetchError


class HttpListSource:
    def __init__(self, *, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=True) as client,
                client.stream("GET", url, headers={"accept": "application/xml, text/xml"}) as response,
            ):
                if response.status_code != httpx.codes.OK:
                    raise ListFetchError(f"GET {url}: HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise ListFetchError(f"GET {url}: {declared} bytes, more than the {max_bytes} allowed")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise ListFetchError(f"GET {url}: more than the {max_bytes} bytes allowed")
                return bytes(body)
        except httpx.HTTPError as err:
            raise ListFetchError(f"GET {url}: {type(err).__name__}: {err}") from None


__all__ = ["HttpListSource"]
