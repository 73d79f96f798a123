"""Sign-in and sign-out: the authorization code flow with PKCE against the identity provider."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from prizeflow_console.application.login import SignInFlow
from prizeflow_console.application.ports import IdentityProvider, SessionStore, SignInError
from prizeflow_console.domain.pkce import LoginAttempt
from prizeflow_console.domain.session import EndReason, SessionRecord, id_hash, new_session_id
from prizeflow_console.domain.viewer import Role
from prizeflow_console.entrypoints.web import (
    SESSION_LOGIN,
    SESSION_USER,
    ForbiddenPageError,
    back,
    current,
    flash,
    page,
    session_id,
    signed_in,
)

_HINT = r"^[A-Za-z0-9][A-Za-z0-9:_.\-]{0,127}$"
_PERSON = re.compile(r"^[^\s]{1,200}$")
log = logging.getLogger(__name__)
# RFC 6749 §4.1.2.1 and OpenID Connect Core §3.1.2.6 error codes, in words. `error` is whatever the link says, so
# anything else gets one fixed sentence: the console's page never shows a stranger's text as the provider's.
PROVIDER_ERRORS: Final[Mapping[str, str]] = {
    "access_denied": "you cancelled the sign-in",
    "invalid_request": "the identity provider found the sign-in request malformed (invalid_request)",
    "unauthorized_client": "the identity provider does not let this console sign people in (unauthorized_client)",
    "unsupported_response_type": "the identity provider refused the code flow (unsupported_response_type)",
    "invalid_scope": "the identity provider refused the requested scopes (invalid_scope)",
    "server_error": "the identity provider failed (server_error): try again",
    "temporarily_unavailable": "the identity provider is busy (temporarily_unavailable): try again in a moment",
    "login_required": "the identity provider needs you to sign in (login_required)",
    "interaction_required": "the identity provider needs you to act (interaction_required)",
    "consent_required": "the identity provider needs your consent (consent_required)",
    "account_selection_required": "the identity provider needs you to choose an account (account_selection_required)",
}


def sessions_of(request: Request[Any, Any, Any]) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def sessions_clock(request: Request[Any, Any, Any]) -> Callable[[], datetime]:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock


class AuthController(Controller):
    path = "/auth"
    include_in_schema = False

    @get("/login")
    async def login(
        self,
        request: Request[Any, Any, Any],
        sign_in: NamedDependency[SignInFlow],
        next_path: Annotated[str | None, QueryParameter(name="next", max_length=512)] = None,
        login_hint: Annotated[str | None, QueryParameter(pattern=_HINT)] = None,
    ) -> Redirect | Template:
        try:
            attempt, url = await sign_in.begin(next_path=next_path, login_hint=login_hint)
        except SignInError as err:
            return page(request, "signin_error.html", session=None, title="Sign-in failed", reason=str(err),
                        status_code=503)  # fmt: skip
        request.session[SESSION_LOGIN] = attempt.as_dict()
        return Redirect(path=url, status_code=302)

    @get("/callback")
    async def callback(
        self,
        request: Request[Any, Any, Any],
        sign_in: NamedDependency[SignInFlow],
        code: Annotated[str | None, QueryParameter(max_length=2048)] = None,
        returned_state: Annotated[str | None, QueryParameter(name="state", max_length=512)] = None,
        error: Annotated[str | None, QueryParameter(max_length=128)] = None,
    ) -> Redirect | Template:
        attempt = LoginAttempt.from_dict(request.session.pop(SESSION_LOGIN, None))
        if error is not None:
            reason = PROVIDER_ERRORS.get(error, "the identity provider refused the sign-in")
            return page(request, "signin_error.html", session=None, title="Sign-in failed", reason=reason,
                        status_code=400)  # fmt: skip
        try:
            signed = await sign_in.complete(attempt, code=code, state=returned_state)
        except SignInError as err:
            return page(request, "signin_error.html", session=None, title="Sign-in failed", reason=str(err),
                        status_code=400)  # fmt: skip
        sid, now = new_session_id(), sessions_clock(request)()
        await sessions_of(request).create(
            SessionRecord(
                id_hash=id_hash(sid),
                viewer=signed.viewer,
                access_token=signed.access_token,
                token_expires_at=datetime.fromtimestamp(signed.expires_at, UTC),
                created_at=now,
                last_seen_at=now,
            )
        )
        # A new session: nothing from before sign-in survives it (no fixation); the cookie names it, nothing more.
        request.set_session({SESSION_USER: {"sid": sid}})
        return Redirect(path=attempt.next_path if attempt else "/", status_code=303)

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any], idp: NamedDependency[IdentityProvider]) -> Redirect:
        had_session = current(request) is not None
        if (sid := session_id(request)) is not None:  # ended on the server: a copy of the cookie opens nothing
            await sessions_of(request).end(id_hash(sid), reason=EndReason.SIGNED_OUT, at=sessions_clock(request)())
        request.clear_session()
        public_url: str = request.app.state.public_url
        if had_session and (url := await idp.end_session_url(post_logout_redirect_uri=public_url + "/")):
            return Redirect(path=url, status_code=303)
        return Redirect(path="/", status_code=303)


class PeopleController(Controller):
    """An admin ends every session of a person (a leaver, a stolen laptop): audited with the reason, effective at
    that person's next request on every replica."""

    path = "/people"
    include_in_schema = False

    @post("/sessions/end", status_code=303)
    async def end_sessions(self, request: Request[Any, Any, Any]) -> Redirect:
        session = signed_in(request)
        if Role.ADMIN not in session.viewer.roles:
            raise ForbiddenPageError(None, session.viewer)
        form = await request.form()
        subject = str(form.get("user_id") or "").strip()
        reason = str(form.get("reason") or "").strip()
        if not _PERSON.fullmatch(subject) or not 1 <= len(reason) <= 1000:
            flash(request, "error", "name the person (their user id) and say why")
            return back("/")
        ended = await sessions_of(request).end_all_of(
            subject,
            actor=session.viewer.user_id,
            actor_roles=sorted(r.value for r in session.viewer.roles),
            reason=reason,
            at=sessions_clock(request)(),
        )
        log.warning("an admin ended every console session of a person", extra={"sessions_ended": ended})
        flash(request, "success", f"{ended} session(s) of {subject} ended")
        return back("/")


__all__ = ["AuthController", "PeopleController", "sessions_clock", "sessions_of"]
