"""A session cookie that does not verify is no session (sign in again, counted, never an error page); a
state-changing request from another site is refused even with a valid CSRF token."""

from __future__ import annotations

from typing import Any

import pytest
from console_fakes import console, csrf, sign_in


def refused(client: Any, reason: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'prizeflow_console_refused_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series for {reason}")


def _altered(value: str, how: str) -> str:
    if how == "last two characters":
        return value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    if how == "truncated":
        return value[: len(value) // 2]
    if how == "one character in the middle":
        middle = len(value) // 2
        return value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
    return "not-base64-at-all!"


@pytest.mark.parametrize("how", ["last two characters", "truncated", "one character in the middle", "garbage"])
def test_a_damaged_session_cookie_sends_the_person_to_sign_in_and_is_counted(how: str) -> None:
    with console() as (client, apis, idp):
        sign_in(client, idp, "olga", "ops", "approver")
        assert client.get("/approvals", follow_redirects=False).status_code == 200
        good = client.cookies["pf_console"]
        client.cookies.set("pf_console", _altered(good, how))
        response = client.get("/approvals", follow_redirects=False)
        htmx = client.get("/approvals", headers={"hx-request": "true"}, follow_redirects=False)
        count = refused(client, "session_unverifiable")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/auth/login?")
    assert "pf_console=null" in response.headers.get("set-cookie", "")  # the bad cookie is cleared
    assert (htmx.status_code, htmx.headers["hx-redirect"].startswith("/auth/login?")) == (401, True)
    assert count >= 1
    assert apis.calls == [] or all(c.service != "payouts" or c.method == "GET" for c in apis.calls)


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"origin": "https://evil.example"}, False),
        ({"origin": "http://testserver.evil.example"}, False),
        ({"origin": "null"}, False),
        ({"sec-fetch-site": "cross-site"}, False),
        ({"sec-fetch-site": "same-site"}, False),
        ({"origin": "http://testserver", "sec-fetch-site": "same-origin"}, True),
        ({"origin": "http://testserver"}, True),
        ({"sec-fetch-site": "same-origin"}, True),
        ({}, True),  # not a browser: the CSRF token decides
    ],
)
def test_a_state_changing_request_from_another_site_is_refused_even_with_a_valid_csrf_token(
    headers: dict[str, str], allowed: bool
) -> None:
    with console() as (client, apis, idp):
        sign_in(client, idp, "ana", "approver")
        token = csrf(client, "/approvals")
        response = client.post(
            "/approvals/po-1/approve",
            data={"_csrf_token": token, "reason": "ok"},
            headers=headers,
            follow_redirects=False,
        )
        count = refused(client, "cross_origin")
    if allowed:
        assert response.status_code == 303, response.text
        assert [c.path for c in apis.calls if c.method == "POST"] == ["/payouts/po-1/approve"]
        assert count == 0
    else:
        assert response.status_code == 403, response.text
        assert [c for c in apis.calls if c.method == "POST"] == []
        assert count == 1
