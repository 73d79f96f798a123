"""What every page handler shares: the signed-in person, their token, rendering with the layout, flash messages,
and running an action against a service (Post/Redirect/Get; a problem detail becomes a message, never a crash)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template

from prizeflow_console.application.ports import ApiProblem, PlatformApi
from prizeflow_console.domain.viewer import PAGE_TITLES, Action, Page, Viewer
from prizeflow_contracts.ids import is_identifier

SESSION_USER = "user"
SESSION_LOGIN = "login"
SESSION_FLASH = "flash"


class SignInRequiredError(Exception):
    """No session, or its token expired: the person is sent to sign in, then back to `next_path`."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class ForbiddenPageError(Exception):
    """The person's roles do not include this page (the services would refuse its data anyway)."""

    def __init__(self, page: Page | None, viewer: Viewer) -> None:
        super().__init__(page)
        self.page = page
        self.viewer = viewer


@dataclass(frozen=True, slots=True)
class Session:
    viewer: Viewer
    token: str


def _next_of(request: Request[Any, Any, Any]) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def session_data(request: Request[Any, Any, Any]) -> dict[str, Any] | None:
    """The session dict, or None where the session middleware has not run (static files, an early error)."""
    data = request.scope.get("session")
    return data if isinstance(data, dict) else None


# Where the request's server-side session, once checked (`entrypoints.http.resolve_session`), is kept.
SCOPE_SESSION = "prizeflow_console_session"


def session_id(request: Request[Any, Any, Any]) -> str | None:
    """The session id the cookie carries (nothing else in it counts: the server's row is the truth)."""
    store = session_data(request)
    data = store.get(SESSION_USER) if store else None
    sid = data.get("sid") if isinstance(data, dict) else None
    return sid if isinstance(sid, str) and 20 <= len(sid) <= 100 else None


def current(request: Request[Any, Any, Any]) -> Session | None:
    """The signed-in person, as the server's session row says on this request (None: signed out, ended by an admin,
    idle or too old, or its token expired)."""
    found = request.scope.get(SCOPE_SESSION)
    return found if isinstance(found, Session) else None


def signed_in(request: Request[Any, Any, Any], page: Page | None = None) -> Session:
    """The session of a person who may see `page`; sign-in first, 403 page for anyone else."""
    session = current(request)
    if session is None:
        if (store := session_data(request)) is not None:
            store.pop(SESSION_USER, None)
        raise SignInRequiredError(_next_of(request) if request.method == "GET" else "/")
    if page is not None and not session.viewer.may_see(page):
        raise ForbiddenPageError(page, session.viewer)
    return session


def may(request: Request[Any, Any, Any], page: Page, action: Action) -> Session:
    """For a POST: signed in, sees the page, and the roles allow the action."""
    session = signed_in(request, page)
    if not session.viewer.may(action):
        raise ForbiddenPageError(page, session.viewer)
    return session


def flash(request: Request[Any, Any, Any], kind: str, text: str) -> None:
    messages = list(request.session.get(SESSION_FLASH) or [])
    messages.append({"kind": kind, "text": text})
    request.session[SESSION_FLASH] = messages[-5:]


def take_flashes(request: Request[Any, Any, Any]) -> list[dict[str, str]]:
    store = session_data(request)
    if not store:
        return []
    messages = store.pop(SESSION_FLASH, None) or []
    return [m for m in messages if isinstance(m, dict)]


def status_for(problem: ApiProblem) -> int:
    """The status a page shows a service's problem with: the person's own (4xx) as is, the platform's as 502."""
    return problem.status if 400 <= problem.status < 500 else 502


def problem_text(problem: ApiProblem) -> str:
    return f"{problem.title}: {problem.detail} ({problem.code})"


def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    session: Session | None,
    current_page: Page | None = None,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """A full page in the layout; an htmx request for a fragment names its own template instead."""
    title = context.pop("title", PAGE_TITLES.get(current_page) if current_page else "Prizeflow console")
    return Template(
        template_name=template,
        context={
            "viewer": session.viewer if session else None,
            "current_page": current_page,
            "titles": PAGE_TITLES,
            "title": title,
            "flashes": take_flashes(request),
            "Page": Page,
            "Action": Action,
            **context,
        },
        status_code=status_code,
    )


def fragment(template: str, **context: Any) -> Template:
    return Template(template_name=template, context=context)


def back(to: str, **query: str | None) -> Redirect:
    params = {k: v for k, v in query.items() if v}
    return Redirect(path=to + (f"?{urlencode(params)}" if params else ""), status_code=303)


async def act(
    request: Request[Any, Any, Any],
    work: Callable[[], Awaitable[Any]],
    *,
    done: str,
    to: str,
) -> Redirect:
    """Run one action against a service; flash `done` or the problem detail it answered; back to `to` (303)."""
    try:
        await work()
    except ApiProblem as problem:
        flash(request, "error", problem_text(problem))
    else:
        flash(request, "success", done)
    return back(to)


def checked_id(value: str) -> str:
    """An id from the console's URL before it goes into a service's: an identifier as the services make them, so
    never `.` or `..` (which quote to themselves and which httpx resolves as dot segments into another route). A path
    parameter is checked already (`IdentifierPath`); this guards the URLs the console builds from anything else."""
    if not is_identifier(value):
        raise NotFoundException("no such page")
    return value


def apis(request: Request[Any, Any, Any]) -> PlatformApi:
    api: PlatformApi = request.app.state.apis
    return api


__all__ = [
    "SCOPE_SESSION",
    "ForbiddenPageError",
    "Session",
    "SignInRequiredError",
    "act",
    "apis",
    "back",
    "checked_id",
    "current",
    "flash",
    "fragment",
    "may",
    "page",
    "problem_text",
    "session_id",
    "signed_in",
    "status_for",
]
