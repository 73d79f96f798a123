"""A session cookie that does not verify is no session (sign in again, counted, never an error page); a
state-changing request from another site is refused even with a valid CSRF token."""

from __future__ import annotations

from typing import Any

import pytest
from console_fakes import Clock, MemorySessions, console, csrf, sign_in

from prizeflow_console.domain.session import EndReason


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
        ({"origin": "null", "sec-fetch-site": "cross-site"}, False),  # a sandboxed frame on another site
        ({"origin": "null", "sec-fetch-site": "same-origin"}, True),  # the console's own form (no-referrer policy)
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


def test_a_cookie_copied_before_sign_out_opens_nothing_afterwards() -> None:
    sessions = MemorySessions()
    with console(sessions=sessions) as (client, _, idp):
        sign_in(client, idp, "olga", "ops", "approver")
        copied = client.cookies["pf_console"]
        assert client.get("/approvals", follow_redirects=False).status_code == 200
        token = csrf(client, "/approvals")
        assert client.post("/auth/logout", data={"_csrf_token": token}, follow_redirects=False).status_code == 303
        client.cookies.set("pf_console", copied)  # the copy, replayed after sign-out
        replayed = client.get("/approvals", follow_redirects=False)
        count = refused(client, "session_revoked")
    assert replayed.status_code == 303
    assert replayed.headers["location"].startswith("/auth/login?")
    assert count == 1
    (row,) = sessions.rows.values()
    assert (row.end_reason, row.ended_at is not None) == (EndReason.SIGNED_OUT, True)


def test_an_admin_ends_every_session_of_a_person_on_record() -> None:
    sessions = MemorySessions()
    with console(sessions=sessions) as (victim, _, idp):
        sign_in(victim, idp, "mallory", "ops")
        laptop = victim.cookies["pf_console"]
        sign_in(victim, idp, "mallory", "ops")  # a second session (another browser)
        phone = victim.cookies["pf_console"]
        sign_in(victim, idp, "ada", "admin")
        token = csrf(victim)
        ended = victim.post(
            "/people/sessions/end",
            data={"_csrf_token": token, "user_id": "mallory", "reason": "laptop stolen, ticket 7"},
            follow_redirects=False,
        )
        still_admin = victim.get("/", follow_redirects=False).status_code
        answers = []
        for cookie in (laptop, phone):
            victim.cookies.set("pf_console", cookie)
            answers.append(victim.get("/holds", follow_redirects=False).status_code)
    assert ended.status_code == 303
    assert still_admin == 200  # the admin's own session is not mallory's
    assert answers == [303, 303]
    assert sessions.ends == [("ada", "mallory", "laptop stolen, ticket 7", 2)]


def test_only_an_admin_ends_someone_elses_sessions() -> None:
    sessions = MemorySessions()
    with console(sessions=sessions) as (client, _, idp):
        sign_in(client, idp, "mallory", "ops")
        sign_in(client, idp, "olga", "ops", "approver")
        token = csrf(client)
        response = client.post(
            "/people/sessions/end", data={"_csrf_token": token, "user_id": "mallory", "reason": "x"},
            follow_redirects=False,
        )  # fmt: skip
    assert response.status_code == 403
    assert sessions.ends == []
    assert all(r.ended_at is None for r in sessions.rows.values())


@pytest.mark.parametrize(
    ("steps", "reason", "allowed"),
    [
        ([{"minutes": 29}], None, True),  # used within the idle timeout
        ([{"minutes": 31}], "session_expired_idle", False),
        ([{"minutes": 25}] * 4, None, True),  # kept alive by use: 100 minutes, never idle 30
        ([{"minutes": 25}] * 20, "session_expired_absolute", False),  # in use all along, but past 8 hours
        ([{"minutes": 25}] * 3, "session_token_expired", False),  # in use, but its hour-long token expired
    ],
)
def test_idle_and_absolute_timeouts_end_a_session_whatever_the_cookie_says(
    steps: list[dict[str, float]], reason: str | None, allowed: bool
) -> None:
    sessions, clock = MemorySessions(), Clock()
    with console(sessions=sessions, clock=clock) as (client, _, idp):
        idp.token_ttl_s = 24 * 3600 if reason != "session_token_expired" else 3600
        sign_in(client, idp, "olga", "ops")
        status = 200
        for step in steps:
            clock.advance(**step)
            status = client.get("/holds", follow_redirects=False).status_code
            if status != 200:
                break
        counted = refused(client, reason) if reason else 0.0
    assert (status == 200) is allowed
    if reason is not None:
        assert counted == 1
    if reason in ("session_expired_idle", "session_expired_absolute"):
        (row,) = sessions.rows.values()
        assert row.end_reason is not None
        assert row.end_reason.value == reason.removeprefix("session_")


def test_the_home_page_offers_an_admin_and_nobody_else_the_form_to_end_someones_sessions() -> None:
    with console() as (client, _, idp):
        sign_in(client, idp, "ada", "admin")
        admin = client.get("/").text
        sign_in(client, idp, "olga", "ops")
        ops = client.get("/").text
    assert 'action="/people/sessions/end"' in admin
    assert 'action="/people/sessions/end"' not in ops
