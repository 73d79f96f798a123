"""The services' APIs over HTTP (httpx), as the signed-in person. Problem details pass through as ApiProblem;
a service that cannot be reached becomes one too (`service_unavailable`), never an empty page."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from prizeflow_console.application.ports import ApiProblem, Query, Service
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
        body: Any = None, headers: Mapping[str, str] | None = None,
    ) -> Any:  # fmt: skip
        params = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in (query or {}).items()
            if v not in (None, "")
        }
        try:
            response = await self.client.request(
                method, self.urls[service] + path, params=params, headers=self._headers(token, headers),
                content=None if body is None else json.dumps(body).encode(),
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
    ) -> Any:
        extra = {"Content-Type": "application/json", **(headers or {})}
        return await self._call(method, service, path, token=token, body=body, headers=extra)


__all__ = ["HttpPlatformApi"]
