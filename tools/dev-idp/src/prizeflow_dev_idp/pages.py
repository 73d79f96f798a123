"""The provider's HTML: the dev sign-in page, the refused-request page and the signed-out page.

Server-rendered with no script and no external asset: plain forms that work with any browser and keyboard, one
inline style sheet, every value escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from prizeflow_dev_idp.people import PRESETS, ROLE_ORDER, USER_ID, DevPerson, preset

CSS: Final = """
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f4f6f8}
main{max-width:36rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 .75rem}
h2{font-size:1.125rem;margin:1.75rem 0 .75rem}
p{margin:0 0 .75rem}
.note{background:#fff4d6;border-left:4px solid #8a5a00;padding:.5rem .75rem}
.muted{color:#3d4752;overflow-wrap:anywhere}
.alert{background:#fdecea;border-left:4px solid #a4161a;color:#5c0b0e;padding:.5rem .75rem}
.people{list-style:none;margin:0;padding:0;display:grid;gap:.5rem}
.people form{margin:0}
button{font:inherit;cursor:pointer;border-radius:6px;padding:.625rem 1rem;min-height:2.75rem}
.person{width:100%;text-align:left;background:#fff;color:#0b4f8a;border:2px solid #0b4f8a}
.person:hover{background:#e8f1fb}
.primary{background:#0b4f8a;color:#fff;border:2px solid #0b4f8a}
.primary:hover{background:#083b68}
label,legend{font-weight:600}
input[type=text]{font:inherit;width:100%;padding:.5rem .625rem;margin:.25rem 0;
  border:2px solid #5b6570;border-radius:6px}
fieldset{border:2px solid #c9d1d9;border-radius:6px;margin:0 0 1rem;padding:.5rem .75rem}
legend{padding:0 .25rem}
.role{display:flex;align-items:center;gap:.5rem;min-height:2.25rem}
.role input{width:1.25rem;height:1.25rem;margin:0}
.role label{font-weight:400}
:focus-visible{outline:3px solid #b34700;outline-offset:2px}
a{color:#0b4f8a}
""".strip()


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request, carried by every form of the sign-in page."""

    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    state: str | None = None
    nonce: str | None = None
    login_hint: str | None = None

    def fields(self) -> list[tuple[str, str]]:
        fields = [
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("scope", self.scope),
            ("code_challenge", self.code_challenge),
            ("code_challenge_method", "S256"),
        ]
        optional = (("state", self.state), ("nonce", self.nonce), ("login_hint", self.login_hint))
        return fields + [(name, value) for name, value in optional if value is not None]


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _hidden(fields: Iterable[tuple[str, str]]) -> str:
    return "".join(f'<input type="hidden" name="{escape(n)}" value="{escape(v)}">' for n, v in fields)


def _person(request: AuthorizationRequest, person: DevPerson, *, focused: bool) -> str:
    carried = [*request.fields(), ("user", person.user), *(("roles", str(r)) for r in person.roles)]
    autofocus = " autofocus" if focused else ""
    return (
        f'<li><form method="post" action="/authorize">{_hidden(carried)}'
        f'<button class="person" type="submit"{autofocus}>{escape(person.label)}</button></form></li>'
    )


def sign_in_page(
    request: AuthorizationRequest,
    *,
    problem: str | None = None,
    user: str = "",
    roles: Sequence[str] = (),
) -> str:
    """Every preset a button (the hinted one first and focused), then a form for anyone with any roles."""
    hinted = preset(request.login_hint) if request.login_hint else None
    people = [hinted, *(p for p in PRESETS if p != hinted)] if hinted else list(PRESETS)
    if not user and request.login_hint and hinted is None and USER_ID.fullmatch(request.login_hint):
        user = request.login_hint  # a hint naming someone else: the custom form is filled in for them
    focus_custom = problem is not None or (hinted is None and bool(user))
    focused = None if focus_custom else hinted  # one autofocus: the hinted person, or the form that needs fixing
    alert = f'<p class="alert" role="alert" id="user-problem">{escape(problem)}</p>' if problem else ""
    described = "user-problem user-help" if problem else "user-help"
    invalid = ' aria-invalid="true"' if problem else ""
    checkboxes = "".join(
        f'<div class="role"><input type="checkbox" id="role-{r}" name="roles" value="{r}"'
        f'{" checked" if r in roles else ""}><label for="role-{r}">{r}</label></div>'
        for r in ROLE_ORDER
    )
    body = (
        "<h1>Sign in to Prizeflow</h1>\n"
        '<p class="note">Development identity provider: anyone may sign in as anyone. '
        "It runs in the dev profile only.</p>\n"
        f'<p class="muted">Signing in to <strong>{escape(request.client_id)}</strong>, '
        f"which will receive you back at {escape(request.redirect_uri)}.</p>\n"
        '<section aria-labelledby="people-heading">\n<h2 id="people-heading">Dev people</h2>\n'
        f'<ul class="people">{"".join(_person(request, p, focused=p is focused) for p in people)}</ul>\n</section>\n'
        '<section aria-labelledby="custom-heading">\n<h2 id="custom-heading">Someone else</h2>\n'
        f'<form method="post" action="/authorize">{_hidden(request.fields())}{alert}'
        '<label for="user">User id</label>'
        f'<input type="text" id="user" name="user" value="{escape(user)}" required maxlength="128" '
        f'autocomplete="username" spellcheck="false" aria-describedby="{described}"{invalid}'
        f"{' autofocus' if focus_custom else ''}>"
        '<p class="muted" id="user-help">Letters and digits, then also : _ . or - (at most 128 characters).</p>'
        f"<fieldset><legend>Roles</legend>{checkboxes}</fieldset>"
        '<button class="primary" type="submit">Sign in</button></form>\n</section>'
    )
    return _document("Sign in - Prizeflow dev identity provider", body)


def refused_page(reason: str) -> str:
    """A request that cannot be answered with a redirect: the client or its redirect URI is not one we know."""
    body = (
        "<h1>Sign-in request refused</h1>\n"
        f'<p class="alert" role="alert">{escape(reason)}</p>\n'
        '<p class="muted">The application that sent you here is not registered with the dev identity provider '
        "for this address, so you are not sent back to it.</p>"
    )
    return _document("Sign-in request refused - Prizeflow dev identity provider", body)


def signed_out_page(note: str | None = None) -> str:
    extra = f'\n<p class="muted">{escape(note)}</p>' if note else ""
    body = f"<h1>Signed out</h1>\n<p>The dev identity provider keeps no session: you are signed out.</p>{extra}"
    return _document("Signed out - Prizeflow dev identity provider", body)


__all__ = ["CSS", "AuthorizationRequest", "refused_page", "sign_in_page", "signed_out_page"]
