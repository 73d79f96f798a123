"""The HTTP adapter: one request to one service's admin API, its answer or an RFC 9457 problem with an exit code.

Every answer is turned into an `Answer` here and nowhere else: a 2xx is data, anything else a `Problem` (the
service's own problem document when it sent one, else one made up from what happened: a non-JSON error page, a
refused connection, a timeout). Redirects are not followed (the token would go with them). The transport is
injectable: unit tests answer requests with `httpx.MockTransport`, no socket opened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final
from urllib.parse import quote

import httpx

from prizeflow_ops.config import OpsConfig

PROBLEM_BASE: Final = "https://prizeflow.dev/problems/"
USER_AGENT: Final = "prizeflow-ops/0.1"
_EXCERPT: Final = 300
# An export may wait on PostgreSQL sorting its period before the next piece: the services allow it 15 minutes.
EXPORT_READ_TIMEOUT_S: Final = 900.0


class ExitCode(IntEnum):
    """What the process exit status means (docs/ops-cli.md)."""

    OK = 0
    REFUSED = 1  # a service refused the request (a 4xx other than those below)
    USAGE = 2  # bad arguments or configuration: nothing was sent
    NOT_FOUND = 3  # 404
    CONFLICT = 4  # 409: the state does not allow it (already decided, reservations pending, ...)
    DENIED = 5  # 401/403: the token is not accepted, or its roles do not allow it
    UNAVAILABLE = 6  # 5xx, connection refused, timeout: try again later


def exit_code_for(status: int | None) -> ExitCode:
    """The exit code of an HTTP status; None is a request that got no answer at all."""
    if status is None or status >= 500:
        return ExitCode.UNAVAILABLE
    if status < 300:
        return ExitCode.OK
    if status == 404:
        return ExitCode.NOT_FOUND
    if status == 409:
        return ExitCode.CONFLICT
    if status in {401, 403}:
        return ExitCode.DENIED
    return ExitCode.REFUSED


def segment(value: str) -> str:
    """`value` as one path segment: `/`, `..`, `?` and `#` cannot reach another route."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if set(value) == {"."} else encoded


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem document and where it came from."""

    service: str
    body: Mapping[str, Any]
    exit_code: ExitCode

    @property
    def status(self) -> int | None:
        status = self.body.get("status")
        return status if isinstance(status, int) else None

    @property
    def title(self) -> str:
        return str(self.body.get("title") or "Error")

    @property
    def detail(self) -> str:
        return str(self.body.get("detail") or "")

    @property
    def code(self) -> str | None:
        code = self.body.get("code")
        return str(code) if code else None

    def document(self) -> dict[str, Any]:
        """The problem as printed by `--json`: the service's document, with the service it came from."""
        return {**self.body, "service": self.service}


@dataclass(frozen=True)
class Answer:
    """What a request came back with: `data` (the parsed JSON body) on success, else `problem`."""

    service: str
    method: str
    path: str
    status: int | None
    data: Any = None
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.problem is None else self.problem.exit_code


def _made_up(service: str, code: str, title: str, detail: str, status: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "detail": detail, "code": code}
    if status is not None:
        body["status"] = status
    return body


def _problem_of(service: str, response: httpx.Response) -> Problem:
    status = response.status_code
    exit_code = ExitCode.REFUSED if 300 <= status < 400 else exit_code_for(status)
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "detail" in body or "type" in body):
        return Problem(service, {**body, "status": body.get("status", status)}, exit_code)
    if 300 <= status < 400:
        detail = f"redirected to {response.headers.get('location', '?')} (not followed: the token would go along)"
        return Problem(
            service, _made_up(service, "unexpected_redirect", "Unexpected redirect", detail, status), exit_code
        )
    excerpt = response.text[:_EXCERPT].strip()
    reason = response.reason_phrase or "Error"
    detail = f"{status} {reason} without a problem document" + (f": {excerpt}" if excerpt else "")
    return Problem(service, _made_up(service, f"http_{status}", reason, detail, status), exit_code)


Debug = Callable[[str], None]


@dataclass
class OpsClient:
    """Requests to the services' admin APIs with the ops token; one `httpx.AsyncClient` per run."""

    config: OpsConfig
    transport: httpx.AsyncBaseTransport | None = None
    correlation_id: str | None = None
    debug: Debug | None = None
    _http: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    async def __aenter__(self) -> OpsClient:
        timeout = httpx.Timeout(self.config.timeout_s, connect=min(self.config.timeout_s, 5.0))
        self._http = httpx.AsyncClient(
            transport=self.transport, timeout=timeout, follow_redirects=False, trust_env=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _headers(self, *, body: bool) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.config.token}",
            "Accept": "application/json, application/problem+json",
            "User-Agent": USER_AGENT,
        }
        if body:
            headers["Content-Type"] = "application/json"
        if self.correlation_id:
            headers["X-Correlation-Id"] = self.correlation_id
        return headers

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | None] | None = None,
        body: Any = None,
    ) -> Answer:
        """`method path` on `service`; `body` (when not None) is sent as JSON. Never raises for what the service
        answered or for it being unreachable: both come back as an `Answer`."""
        assert self._http is not None, "use the client as an async context manager"
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        url = self.config.url(service) + path
        content = None if body is None else json.dumps(body).encode()
        headers = self._headers(body=content is not None)
        self._trace(f"> {method} {url}{'?' + str(httpx.QueryParams(query)) if query else ''}", headers)
        started = time.monotonic()
        try:
            response = await self._http.request(method, url, params=query, content=content, headers=headers)
        except httpx.TimeoutException:
            detail = f"no answer from {service} at {self.config.url(service)} within {self.config.timeout_s:g}s"
            return self._unreachable(service, method, path, code="timeout", title="Timed out", detail=detail)
        except httpx.TransportError as err:
            detail = f"cannot reach {service} at {self.config.url(service)}: {type(err).__name__}: {err}"
            return self._unreachable(
                service, method, path, code="unreachable", title="Service unreachable", detail=detail
            )
        self._trace(f"< {response.status_code} {response.reason_phrase} ({(time.monotonic() - started) * 1000:.0f} ms)")
        if response.is_success:
            try:
                data = response.json() if response.content else None
            except ValueError:
                excerpt = response.text[:_EXCERPT]
                body_problem = _made_up(
                    service, "not_json", "Unexpected answer", f"a {response.status_code} that is not JSON: {excerpt}"
                )
                return Answer(
                    service,
                    method,
                    path,
                    response.status_code,
                    None,
                    Problem(service, body_problem, ExitCode.UNAVAILABLE),
                )
            return Answer(service, method, path, response.status_code, data)
        return Answer(service, method, path, response.status_code, None, _problem_of(service, response))

    async def download(
        self,
        service: str,
        path: str,
        *,
        params: Mapping[str, str | None],
        sink: Callable[[bytes], object],
        accept: str = "text/csv",
        read_timeout_s: float = EXPORT_READ_TIMEOUT_S,
    ) -> Answer:
        """`GET path` on `service`, its body handed to `sink` piece by piece as it streams in (an export never sits
        in memory); `data` is the number of bytes. A body cut short (the service failed half-way, the connection
        dropped) is a problem, never a success: the caller throws away what `sink` got."""
        assert self._http is not None, "use the client as an async context manager"
        query = {k: v for k, v in params.items() if v is not None}
        url = self.config.url(service) + path
        headers = {**self._headers(body=False), "Accept": f"{accept}, application/problem+json"}
        self._trace(f"> GET {url}{'?' + str(httpx.QueryParams(query)) if query else ''}", headers)
        timeout = httpx.Timeout(read_timeout_s, connect=min(self.config.timeout_s, 5.0))
        started, received = time.monotonic(), 0
        try:
            async with self._http.stream("GET", url, params=query, headers=headers, timeout=timeout) as response:
                self._trace(f"< {response.status_code} {response.reason_phrase}")
                if not response.is_success:
                    await response.aread()
                    return Answer(service, "GET", path, response.status_code, None, _problem_of(service, response))
                async for piece in response.aiter_bytes():
                    sink(piece)
                    received += len(piece)
        except httpx.TimeoutException:
            detail = f"{service} sent nothing for {read_timeout_s:g}s after {received} bytes"
            return self._unreachable(service, "GET", path, code="timeout", title="Timed out", detail=detail)
        except httpx.TransportError as err:
            what = f"the export stopped after {received} bytes" if received else f"cannot reach {service}"
            detail = f"{what} ({self.config.url(service)}): {type(err).__name__}: {err}"
            code, title = ("export_incomplete", "Export cut short") if received else ("unreachable", "Unreachable")
            return self._unreachable(service, "GET", path, code=code, title=title, detail=detail)
        self._trace(f"< {received} bytes ({(time.monotonic() - started) * 1000:.0f} ms)")
        return Answer(service, "GET", path, response.status_code, received)

    def _unreachable(self, service: str, method: str, path: str, *, code: str, title: str, detail: str) -> Answer:
        self._trace(f"< {code}: {detail}")
        problem = Problem(service, _made_up(service, code, title, detail), ExitCode.UNAVAILABLE)
        return Answer(service, method, path, None, None, problem)

    def _trace(self, line: str, headers: Mapping[str, str] | None = None) -> None:
        if self.debug is None:
            return
        self.debug(line)
        for name, value in (headers or {}).items():
            self.debug(f"  {name}: {redact(name, value)}")


_SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def redact(name: str, value: str) -> str:
    """A header's value as debug output may show it: credentials never."""
    if name.lower() in _SECRET_HEADERS:
        scheme = value.split(" ", 1)[0] if " " in value else ""
        return f"{scheme} [redacted]".strip()
    return value


__all__ = ["Answer", "ExitCode", "OpsClient", "Problem", "exit_code_for", "redact", "segment"]
