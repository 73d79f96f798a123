"""`ListSource` over HTTP(S): the publisher's file, streamed and cut off past the size allowed."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import httpx

from prizeflow_compliance.application.sanctions import ListFetchError

MAX_REDIRECTS = 5


class HttpListSource:
    """Follows a publisher's redirects only to its own host or to `redirect_hosts` (PAYOUTS_SANCTIONS_REDIRECT_HOSTS):
    in production every host payouts may reach is allow-listed at the egress proxy, so a redirect elsewhere could
    only fail there, as an anonymous proxy refusal; here it fails naming the host and the setting to add it to."""

    def __init__(self, *, timeout_s: float = 60.0, redirect_hosts: Iterable[str] = ()) -> None:
        self.timeout_s = timeout_s
        self.redirect_hosts = frozenset(redirect_hosts)

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
                return await self._fetch(client, url, max_bytes=max_bytes)
        except httpx.HTTPError as err:
            raise ListFetchError(f"GET {url}: {type(err).__name__}: {err}") from None

    async def _fetch(self, client: httpx.AsyncClient, url: str, *, max_bytes: int) -> bytes:
        allowed = self.redirect_hosts | {urlsplit(url).hostname}
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream("GET", target, headers={"accept": "application/xml, text/xml"}) as response:
                if response.is_redirect:
                    target = urljoin(target, response.headers["location"])
                    host = urlsplit(target).hostname
                    if host not in allowed:
                        raise ListFetchError(
                            f"GET {url}: redirected to {host}, which is not in PAYOUTS_SANCTIONS_REDIRECT_HOSTS "
                            "(add it there, and to the egress proxy's allow-list)"
                        )
                    continue
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
        raise ListFetchError(f"GET {url}: more than {MAX_REDIRECTS} redirects")


__all__ = ["HttpListSource"]
