"""Sign-in and sign-out: the authorization code flow with PKCE against the identity provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from prizeflow_console.application.login import SignInFlow
from prizeflow_console.application.ports import IdentityProvider, SignInError
from prizeflow_console.domain.pkce import LoginAttempt
from prizeflow_console.entrypoints.web import SESSION_LOGIN, SESSION_USER, current, page

_HINT = r"^[A-Za-z0-9][A-Za-z0-9:_.\-]{0,127}$"
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
        request.set_session(  # a new session: nothing from before sign-in survives it (no fixation)
            {
                SESSION_USER: {
                    "sub": signed.viewer.user_id,
                    "name": signed.viewer.name,
                    "roles": sorted(signed.viewer.roles),
                    "token": signed.access_token,
                    "exp": signed.expires_at,
                }
            }
        )
        return Redirect(path=attempt.next_path if attempt else "/", status_code=303)

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any], idp: NamedDependency[IdentityProvider]) -> Redirect:
        had_session = current(request) is not None
        request.clear_session()
        public_url: str = request.app.state.public_url
        if had_session and (url := await idp.end_session_url(post_logout_redirect_uri=public_url + "/")):
            return Redirect(path=url, status_code=303)
        return Redirect(path="/", status_code=303)


__all__ = ["AuthController"]
