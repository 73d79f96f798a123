"""The console's shell: sign-in (state, PKCE handled by the flow), sessions, roles deciding pages, CSRF, headers."""

from __future__ import annotations

from console_fakes import FakeApis, console, csrf, sign_in

from prizeflow_console.application.ports import ApiProblem


def test_a_page_needs_a_sign_in_and_comes_back_after_it() -> None:
    with console() as (client, _, idp):
        response = client.get("/timeline?correlation_id=abc", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/auth/login?next=%2Ftimeline%3Fcorrelation_id%3Dabc"
        client.get(response.headers["location"], follow_redirects=False)
        idp.next_user = ("olivia", ("ops",))
        back = client.get(f"/auth/callback?code=c&state={idp.state}", follow_redirects=False)
        assert back.status_code == 303
        assert back.headers["location"] == "/timeline?correlation_id=abc"


def test_a_callback_with_another_state_signs_nobody_in() -> None:
    with console() as (client, _, _idp):
        client.get("/auth/login", follow_redirects=False)
        response = client.get("/auth/callback?code=c&state=forged", follow_redirects=False)
        assert response.status_code == 400
        assert "does not belong to this sign-in" in response.text
        assert client.get("/", follow_redirects=False).status_code == 303


def test_a_callback_nobody_started_is_refused() -> None:
    with console() as (client, _, _idp):
        response = client.get("/auth/callback?code=c&state=x", follow_redirects=False)
        assert response.status_code == 400


def test_next_is_only_ever_a_local_path() -> None:
    with console() as (client, _, idp):
        client.get("/auth/login?next=https://evil.test/", follow_redirects=False)
        back = client.get(f"/auth/callback?code=c&state={idp.state}", follow_redirects=False)
        assert back.headers["location"] == "/"


def test_a_person_without_a_prizeflow_role_is_not_signed_in() -> None:
    with console() as (client, _, idp):
        idp.next_user = ("nobody", ("guest",))
        client.get("/auth/login", follow_redirects=False)
        response = client.get(f"/auth/callback?code=c&state={idp.state}", follow_redirects=False)
        assert response.status_code == 400
        assert "no Prizeflow role" in response.text


def test_roles_decide_the_navigation_and_pages_beyond_them_answer_403() -> None:
    with console() as (client, _, idp):
        sign_in(client, idp, "player-1", "player")
        home = client.get("/").text
        assert 'href="/wallet"' in home
        assert 'href="/timeline"' not in home
        forbidden = client.get("/timeline")
        assert forbidden.status_code == 403


def test_the_timeline_merges_every_service_in_time_order_and_names_one_that_failed() -> None:
    apis = FakeApis()
    apis.on(
        "GET",
        "settlement",
        "/admin/timeline/cid-1",
        {
            "entries": [
                {"at": "2026-01-01T00:00:02Z", "kind": "state", "type": "RoundSettled", "subject": "r1", "summary": "b"}
            ]
        },
    )
    apis.on(
        "GET",
        "rewards",
        "/admin/timeline/cid-1",
        {
            "entries": [
                {"at": "2026-01-01T00:00:01Z", "kind": "ledger", "type": "reward", "subject": "t1", "summary": "a"}
            ]
        },
    )
    apis.on("GET", "payouts", "/admin/timeline/cid-1", {"entries": []})
    down = ApiProblem(503, "service_unavailable", "Service unavailable", "webhooks did not answer", "webhooks")
    apis.on("GET", "webhooks", "/admin/timeline/cid-1", down)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        text = client.get("/timeline?correlation_id=cid-1").text
        assert text.index("reward") < text.index("RoundSettled")
        assert "webhooks did not answer" in text
        assert {c.token for c in apis.calls} == {"token-of-olivia"}


def test_a_malformed_correlation_id_is_refused_before_any_call() -> None:
    with console() as (client, apis, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/timeline?correlation_id=a%20b")
        assert response.status_code == 400
        assert apis.calls == []


def test_a_form_without_its_csrf_token_changes_nothing() -> None:
    with console() as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        assert client.post("/auth/logout", follow_redirects=False).status_code == 403
        token = csrf(client)
        assert client.post("/auth/logout", data={"_csrf_token": token}, follow_redirects=False).status_code == 303
        assert client.get("/", follow_redirects=False).status_code == 303  # signed out


def test_pages_carry_security_headers_and_no_token_reaches_the_page() -> None:
    with console() as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "token-of-olivia" not in response.text
        cookie = response.headers.get("set-cookie", "") + client.cookies.get("pf_console", "")
        assert "token-of-olivia" not in cookie  # the session cookie is encrypted
