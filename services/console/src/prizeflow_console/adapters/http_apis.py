"""The services' APIs over HTTP (httpx), as the signed-in person. Problem details pass through as ApiProblem;
a service that cannot be reached becomes one too (`service_unavailable`), never an empty page."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import httpx

from prizeflow_console.application.ports import ApiProblem, Download, Query, Service
from prizeflow_runtime.logging import correlation_id_var

log = logging.getLogger("prizeflow_console.apis")


def _problem(service: str, response: httpx.Response) -> ApiProblem:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    known = {"status", "code", "title", "detail", "type", "instance"}
    return ApiProblem(
        status=response.status_code,
        code=str(body.get("code") or {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(
            response.status_code, "error"
        )),
        title=str(body.get("title") or response.reason_phrase or "Error"),
        detail=str(body.get("detail") or "the service refused the request"),
        service=service,
        extra={k: v for k, v in body.items() if k not in known},
    )  # fmt: skip


def _params(query: Query | None) -> dict[str, str]:
    items = (query or {}).items()
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in items if v not in (None, "")}


class HttpPlatformApi:
    def __init__(self, urls: Mapping[str, str], *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None):
        self.urls = dict(urls)
        self.client = httpx.AsyncClient(timeout=timeout_s, transport=transport, follow_redirects=False)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _headers(self, token: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **(extra or {})}
        cid = correlation_id_var.get()
        if cid and "X-Correlation-Id" not in headers:
            headers["X-Correlation-Id"] = cid
        return headers

    async def _call(
        self, method: str, service: Service, path: str, *, token: str, query: Query | None = None,
        body: Any = None, headers: Mapping[str, str] | None = None, timeout_s: float | None = None,
    ) -> Any:  # fmt: skip
        params = _params(query)
        timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else httpx.Timeout(timeout_s)
        try:
            response = await self.client.request(
                method, self.urls[service] + path, params=params, headers=self._headers(token, headers),
                content=None if body is None else json.dumps(body).encode(), timeout=timeout,
            )  # fmt: skip
        except httpx.HTTPError as err:
            log.warning("%s %s unreachable: %s", service, method, type(err).__name__)
            raise ApiProblem(
                503, "service_unavailable", "Service unavailable", f"{service} did not answer; try again", service
            ) from err
        if response.status_code >= 400:
            raise _problem(service, response)
        if not response.content:
            return None
        return response.json()

    async def get(self, service: Service, path: str, *, token: str, query: Query | None = None) -> Any:
        return await self._call("GET", service, path, token=token, query=query)

    async def send(
        self,
        method: Literal["POST", "PUT"],
        service: Service,
        path: str,
        *,
        token: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        extra = {"Content-Type": "application/json", **(headers or {})}
        return await self._call(method, service, path, token=token, body=body, headers=extra, timeout_s=timeout_s)

    async def download(
        self, service: Service, path: str, *, token: str, query: Query | None = None, accept: str = "text/csv"
    ) -> Download:
        """The answer's status and headers are read, its body is not: it is passed on chunk by chunk as it arrives
        (the read timeout applies between chunks, not to the whole export). A refusal is read (a problem detail is
        small) and raised."""
        request = self.client.build_request(
            "GET", self.urls[service] + path, params=_params(query), headers=self._headers(token, {"Accept": accept})
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as err:
            log.warning("%s download unreachable: %s", service, type(err).__name__)
            raise ApiProblem(
                503, "service_unavailable", "Service unavailable", f"{service} did not answer; try again", service
            ) from err
        if response.status_code >= 400:
            try:
                await response.aread()
            except httpx.HTTPError:
                pass
            finally:
                await response.aclose()
            raise _problem(service, response)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            except httpx.HTTPError as err:
                # The status line is gone already: the person's download ends short (the browser says it failed).
                log.warning("%s download cut short: %s", service, type(err).__name__)
                raise
            finally:
                await response.aclose()

        media_type = response.headers.get("content-type") or accept
        return Download(media_type=media_type, chunks=chunks(), aclose=response.aclose)


__all__ = ["HttpPlatformApi"]
