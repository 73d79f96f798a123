"""The console in process, with a fake identity provider and fake service APIs (unit tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from litestar.testing import TestClient
from prometheus_client import CollectorRegistry

from prizeflow_console.application.login import SignInFlow
from prizeflow_console.application.ports import ApiProblem, Query, SignedIn
from prizeflow_console.domain.session import EndReason, SessionRecord, Timeouts
from prizeflow_console.domain.viewer import Viewer
from prizeflow_console.entrypoints.http import create_app

Handler = Callable[..., Any]


@dataclass
class FakeIdp:
    """Signs in whoever `next_user` names; remembers the state it was given."""

    next_user: tuple[str, tuple[str, ...]] = ("olivia", ("ops",))
    state: str = ""
    token_ttl_s: int = 3600

    async def authorization_url(self, *, state: str, nonce: str, code_challenge: str, login_hint: str | None) -> str:
        self.state = state
        return f"https://idp.test/authorize?state={state}"

    async def exchange(self, *, code: str, code_verifier: str, nonce: str) -> SignedIn:
        user, roles = self.next_user
        return SignedIn(Viewer.of(user, user.title(), roles), f"token-of-{user}", int(time.time()) + self.token_ttl_s)

    async def end_session_url(self, *, post_logout_redirect_uri: str) -> str | None:
        return None


@dataclass
class Call:
    method: str
    service: str
    path: str
    token: str
    query: Mapping[str, Any] | None = None
    body: Any = None
    headers: Mapping[str, str] | None = None
    timeout_s: float | None = None


@dataclass
class FakeApis:
    """Answers by (method, service, path) from `routes`: a value, or a callable taking the Call; an ApiProblem
    raised or returned is raised. Unknown routes answer 404 problem details. Every call is recorded."""

    routes: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def on(self, method: str, service: str, path: str, answer: Any) -> None:
        self.routes[(method, service, path)] = answer

    def _answer(self, call: Call) -> Any:
        answer = self.routes.get((call.method, call.service, call.path))
        if answer is None:
            raise ApiProblem(404, "not_found", "Not Found", f"no fake for {call.method} {call.path}", call.service)
        if callable(answer):
            answer = answer(call)
        if isinstance(answer, ApiProblem):
            raise answer
        return answer

    async def get(self, service: str, path: str, *, token: str, query: Query | None = None) -> Any:
        call = Call("GET", service, path, token, query=dict(query or {}))
        self.calls.append(call)
        return self._answer(call)

    async def send(
        self, method: str, service: str, path: str, *, token: str, body: Any = None,
        headers: Mapping[str, str] | None = None, timeout_s: float | None = None,
    ) -> Any:  # fmt: skip
        call = Call(method, service, path, token, body=body, headers=headers, timeout_s=timeout_s)
        self.calls.append(call)
        return self._answer(call)


class Clock:
    """The console's clock, moved by the test (idle and absolute timeouts without sleeping)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


TIMEOUTS = Timeouts(idle=timedelta(minutes=30), absolute=timedelta(hours=8))


@contextmanager
def console(
    apis: FakeApis | None = None,
    idp: FakeIdp | None = None,
    *,
    dev: bool = True,
    sessions: MemorySessions | None = None,
    clock: Clock | None = None,
) -> Iterator[tuple[TestClient[Any], FakeApis, FakeIdp]]:
    apis = apis or FakeApis()
    idp = idp or FakeIdp()
    app = create_app(
        sign_in=SignInFlow(idp), idp=idp, apis=apis, session_secret="s" * 40, public_url="http://testserver",
        idp_origin="https://idp.test", dev=dev, secure_cookies=False, max_age_s=3600, registry=CollectorRegistry(),
        sessions=sessions or MemorySessions(), timeouts=TIMEOUTS, clock=clock or Clock(),
    )  # fmt: skip
    with TestClient(app) as client:
        yield client, apis, idp


def sign_in(client: TestClient[Any], idp: FakeIdp, user: str, *roles: str) -> None:
    idp.next_user = (user, roles)
    client.get("/auth/login", follow_redirects=False)
    response = client.get(f"/auth/callback?code=c&state={idp.state}", follow_redirects=False)
    assert response.status_code == 303, response.text


def csrf(client: TestClient[Any], path: str = "/") -> str:
    """The CSRF token a page's forms carry (the cookie is set by the GET)."""
    text = client.get(path).text
    marker = 'name="_csrf_token" value="'
    start = text.index(marker) + len(marker)
    return text[start : text.index('"', start)]


def location_query(response: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(response.headers["location"]).query)


__all__ = [
    "TIMEOUTS",
    "Call",
    "Clock",
    "FakeApis",
    "FakeIdp",
    "MemorySessions",
    "console",
    "csrf",
    "location_query",
    "sign_in",
]


class MemorySessions:
    """`SessionStore` in memory, as the PostgreSQL one behaves (the integration tests run that one)."""

    def __init__(self) -> None:
        self.rows: dict[bytes, SessionRecord] = {}
        self.ends: list[tuple[str, str, str, int]] = []

    async def create(self, record: SessionRecord) -> None:
        self.rows[record.id_hash] = record

    async def get(self, id_hash: bytes) -> SessionRecord | None:
        return self.rows.get(id_hash)

    async def touch(self, id_hash: bytes, at: datetime) -> None:
        row = self.rows.get(id_hash)
        if row is not None and row.ended_at is None and row.last_seen_at < at:
            self.rows[id_hash] = replace(row, last_seen_at=at)

    async def end(self, id_hash: bytes, *, reason: EndReason, at: datetime) -> bool:
        row = self.rows.get(id_hash)
        if row is None or row.ended_at is not None:
            return False
        self.rows[id_hash] = replace(row, ended_at=at, end_reason=reason)
        return True

    async def end_all_of(
        self, subject: str, *, actor: str, actor_roles: Sequence[str], reason: str, at: datetime
    ) -> int:
        live = [h for h, r in self.rows.items() if r.viewer.user_id == subject and r.ended_at is None]
        for h in live:
            await self.end(h, reason=EndReason.ENDED_BY_ADMIN, at=at)
        self.ends.append((actor, subject, reason, len(live)))
        return len(live)
