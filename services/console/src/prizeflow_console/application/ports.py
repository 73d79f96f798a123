"""What the console's use cases need from the outside: the services' APIs and the identity provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from prizeflow_console.domain.session import EndReason, SessionRecord
from prizeflow_console.domain.viewer import Viewer

Service = Literal["settlement", "rewards", "payouts", "webhooks"]
SERVICES: tuple[Service, ...] = ("settlement", "rewards", "payouts", "webhooks")
Query = Mapping[str, str | int | bool | None]


@dataclass(frozen=True)
class ApiProblem(Exception):  # noqa: N818 - an RFC 9457 problem detail, named as the RFC names it
    """A service's problem detail (or the console's own when a service cannot be reached), as it should be shown."""

    status: int
    code: str
    title: str
    detail: str
    service: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.service} {self.status} {self.code}: {self.detail}"


@runtime_checkable  # Litestar checks injected dependencies against their annotation
class PlatformApi(Protocol):
    """The services' HTTP APIs, called as the signed-in person (their access token): the services authorise."""

    async def get(self, service: Service, path: str, *, token: str, query: Query | None = None) -> Any: ...

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
        """`timeout_s`: this call may take longer than the usual (a reconciliation run done while one waits)."""
        ...


@dataclass(frozen=True, slots=True)
class Download:
    """A service's answer as it arrives, chunk by chunk (a CSV export of a year is never held in memory): its
    media type and its body. Iterate `chunks` once, to the end, or call `aclose` (the connection is released)."""

    media_type: str
    chunks: AsyncIterator[bytes]
    aclose: Callable[[], Awaitable[None]]


@runtime_checkable
class Downloads(Protocol):
    """A service's streamed answers (exports), called as the signed-in person. A refusal raises ApiProblem before
    any byte is passed on, so the person sees the service's problem detail, never half a file."""

    async def download(
        self, service: Service, path: str, *, token: str, query: Query | None = None, accept: str = "text/csv"
    ) -> Download: ...


@dataclass(frozen=True, slots=True)
class SignedIn:
    viewer: Viewer
    access_token: str
    expires_at: int  # epoch seconds


@runtime_checkable
class IdentityProvider(Protocol):
    async def authorization_url(
        self, *, state: str, nonce: str, code_challenge: str, login_hint: str | None
    ) -> str: ...

    async def exchange(self, *, code: str, code_verifier: str, nonce: str) -> SignedIn:
        """Redeem the code (PKCE), verify the ID token (signature, iss, aud, exp, nonce); raise SignInError."""
        ...

    async def end_session_url(self, *, post_logout_redirect_uri: str) -> str | None: ...


class SessionStore(Protocol):
    """The console's sessions, shared by every replica (PostgreSQL in production)."""

    async def create(self, record: SessionRecord) -> None: ...

    async def get(self, id_hash: bytes) -> SessionRecord | None: ...

    async def touch(self, id_hash: bytes, at: datetime) -> None:
        """The session was used at `at` (only moves forward; an ended session is left as it is)."""
        ...

    async def end(self, id_hash: bytes, *, reason: EndReason, at: datetime) -> bool:
        """End one session (if it is still live)."""
        ...

    async def end_all_of(
        self, subject: str, *, actor: str, actor_roles: Sequence[str], reason: str, at: datetime
    ) -> int:
        """End every live session of `subject`, audited in the same transaction; returns how many."""
        ...


class SignInError(Exception):
    """Sign-in did not complete; the message is safe to show (no code, token or verifier in it)."""


__all__ = [
    "SERVICES",
    "ApiProblem",
    "Download",
    "Downloads",
    "IdentityProvider",
    "PlatformApi",
    "Query",
    "Service",
    "SessionStore",
    "SignInError",
    "SignedIn",
]
