"""Campaigns and pools: figures per pool, and the admin's create, fund, pause, resume, close and release (rewards'
shapes: services/rewards/src/prizeflow_rewards/entrypoints/http.py and application/queries.py `figures`)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from console_fakes import FakeApis, console, csrf, sign_in

from prizeflow_console.application.ports import ApiProblem


def pool(**changes: Any) -> dict[str, Any]:
    return {
        "campaign_id": "camp-1",
        "name": "Spring cup",
        "asset": "USD",
        "status": "active",
        "budget": 50_000,
        "funded": 50_000,
        "paid": 12_500,
        "reserved": 2_000,
        "remaining": 35_500,
        "low_threshold": 40_000,
        "held_rounds": 1,
        "held_amount": 9_000,
        **changes,
    }


def reference_of(text: str) -> str:
    found = re.search(r'name="reference" value="([^"]+)"', text)
    assert found, "the fund form carries its funding reference"
    return found[1]


def test_the_list_shows_each_pools_figures_in_its_asset_for_ops_without_forms() -> None:
    apis = FakeApis()
    apis.on(
        "GET",
        "rewards",
        "/campaigns",
        [
            pool(),
            pool(
                campaign_id="camp-2",
                name="XLM drop",
                asset="XLM",
                funded=10_000_000,
                remaining=10_000_000,
                paid=0,
                reserved=0,
                held_rounds=0,
                held_amount=0,
                low_threshold=None,
            ),
        ],
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/campaigns")
        assert response.status_code == 200
        text = response.text
        for figure in ("500.00 USD", "20.00 USD", "125.00 USD", "355.00 USD", "1.0000000 XLM"):
            assert figure in text
        assert '<span class="badge active">active</span>' in text
        assert '<span class="badge pending">low</span>' in text  # 355 left, warned below 400
        assert 'href="/campaigns/camp-2"' in text
        assert 'method="post"' not in text.split("</header>")[1]
        detail_apis = apis
        detail_apis.on("GET", "rewards", "/campaigns/camp-1", pool())
        detail = client.get("/campaigns/camp-1").text
        assert "90.00 USD" in detail  # held for its round
        assert 'action="/campaigns/camp-1/' not in detail


def test_an_admin_sees_the_actions_the_pools_status_allows() -> None:
    apis = FakeApis()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        apis.on("GET", "rewards", "/campaigns/camp-1", pool())
        active = client.get("/campaigns/camp-1").text
        for action in ("fund", "pause", "close", "held/release"):
            assert f'action="/campaigns/camp-1/{action}"' in active
        assert 'action="/campaigns/camp-1/resume"' not in active
        apis.on("GET", "rewards", "/campaigns/camp-1", pool(status="paused", held_rounds=0))
        paused = client.get("/campaigns/camp-1").text
        assert 'action="/campaigns/camp-1/resume"' in paused
        assert 'action="/campaigns/camp-1/pause"' not in paused
        assert 'action="/campaigns/camp-1/held/release"' not in paused
        apis.on("GET", "rewards", "/campaigns/camp-1", pool(status="closed"))
        assert 'action="/campaigns/camp-1/' not in client.get("/campaigns/camp-1").text


def test_fund_sends_minor_units_with_the_forms_reference_and_a_second_send_funds_once() -> None:
    apis = FakeApis()
    apis.on("GET", "rewards", "/campaigns/camp-1", pool())
    seen: set[str] = set()

    def fund(call: Any) -> dict[str, Any]:
        applied = call.body["reference"] not in seen
        seen.add(call.body["reference"])
        return {**pool(), "applied": applied}

    apis.on("POST", "rewards", "/campaigns/camp-1/fund", fund)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        form = client.get("/campaigns/camp-1").text
        reference = reference_of(form)
        assert reference != reference_of(client.get("/campaigns/camp-1").text)  # one per rendered form
        token = csrf(client, "/campaigns/camp-1")
        body = {"_csrf_token": token, "amount": "1,250.5", "reference": reference}
        first = client.post("/campaigns/camp-1/fund", data=body, follow_redirects=False)
        assert (first.status_code, first.headers["location"]) == (303, "/campaigns/camp-1")
        sent = apis.calls[-1]
        assert (sent.method, sent.path, sent.token) == ("POST", "/campaigns/camp-1/fund", "token-of-adam")
        assert sent.body == {"amount": 125_050, "reference": reference}
        assert "Funded 1,250.50 USD" in client.get("/campaigns/camp-1").text
        client.post("/campaigns/camp-1/fund", data=body, follow_redirects=False)
        again = client.get("/campaigns/camp-1").text
        assert 'class="flash warning"' in again
        assert "applied already; nothing moved again" in again


@pytest.mark.parametrize(
    ("typed", "says"), [("12.345", "USD has 2 decimal places"), ("-5", "enter an amount like"), ("0", "more than zero")]
)
def test_an_amount_the_asset_cannot_hold_is_a_field_error_and_nothing_is_sent(typed: str, says: str) -> None:
    apis = FakeApis()
    apis.on("GET", "rewards", "/campaigns/camp-1", pool())
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        form = client.get("/campaigns/camp-1").text
        token = csrf(client, "/campaigns/camp-1")
        response = client.post(
            "/campaigns/camp-1/fund", data={"_csrf_token": token, "amount": typed, "reference": reference_of(form)}
        )
        assert response.status_code == 400
        assert 'id="fund-amount-error"' in response.text
        assert says in response.text
        assert f'value="{typed}"' in response.text
        assert reference_of(form) == reference_of(response.text)  # the same form, sent again, funds once
        assert all(c.method == "GET" for c in apis.calls)


def test_a_fund_form_without_its_reference_sends_nothing() -> None:
    apis = FakeApis()
    apis.on("GET", "rewards", "/campaigns/camp-1", pool())
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/campaigns/camp-1")
        response = client.post("/campaigns/camp-1/fund", data={"_csrf_token": token, "amount": "5"})
        assert response.status_code == 400
        assert "nothing was funded" in response.text
        assert all(c.method == "GET" for c in apis.calls)


def test_pause_resume_and_release_post_to_their_paths_and_say_what_happened() -> None:
    apis = FakeApis()
    apis.on("GET", "rewards", "/campaigns/camp-1", pool())
    apis.on("POST", "rewards", "/campaigns/camp-1/pause", pool(status="paused"))
    apis.on("POST", "rewards", "/campaigns/camp-1/resume", pool())
    apis.on(
        "POST", "rewards", "/campaigns/camp-1/held/release", {"campaign_id": "camp-1", "released": [], "still_held": 1}
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/campaigns/camp-1")
        for action in ("pause", "resume", "held/release"):
            response = client.post(f"/campaigns/camp-1/{action}", data={"_csrf_token": token}, follow_redirects=False)
            assert response.status_code == 303
            assert (apis.calls[-1].method, apis.calls[-1].path) == ("POST", f"/campaigns/camp-1/{action}")
            assert apis.calls[-1].body is None
        assert "0 held rounds paid; 1 still held (the pool does not cover them)" in client.get("/campaigns/camp-1").text


def test_close_needs_a_reason_and_a_confirmation_then_says_what_went_back() -> None:
    apis = FakeApis()
    apis.on("GET", "rewards", "/campaigns/camp-1", pool())
    apis.on(
        "POST",
        "rewards",
        "/campaigns/camp-1/close",
        {**pool(status="closed", remaining=0), "swept": 35_500, "transfer_id": "t-1", "changed": True},
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/campaigns/camp-1")
        unconfirmed = client.post("/campaigns/camp-1/close", data={"_csrf_token": token, "reason": "season over"})
        assert unconfirmed.status_code == 400
        assert 'id="confirm-error"' in unconfirmed.text
        assert "season over</textarea>" in unconfirmed.text
        assert all(c.method == "GET" for c in apis.calls)
        client.post(
            "/campaigns/camp-1/close",
            data={"_csrf_token": token, "reason": "season over", "confirm": "yes"},
            follow_redirects=False,
        )
        assert apis.calls[-1].body == {"reason": "season over"}
        assert "closed; 355.00 USD went back to the treasury" in client.get("/campaigns/camp-1").text


def test_a_rewards_refusal_becomes_an_error_message() -> None:
    apis = FakeApis()
    apis.on("GET", "rewards", "/campaigns/camp-1", pool(status="closed"))
    apis.on(
        "POST",
        "rewards",
        "/campaigns/camp-1/resume",
        ApiProblem(409, "illegal_transition", "Conflict", "campaign camp-1 cannot go closed → active", "rewards"),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/campaigns/camp-1")
        client.post("/campaigns/camp-1/resume", data={"_csrf_token": token}, follow_redirects=False)
        text = client.get("/campaigns/camp-1").text
        assert 'class="flash error" role="alert"' in text
        assert "campaign camp-1 cannot go closed → active (illegal_transition)" in text


def test_create_sends_the_threshold_in_minor_units_and_checks_the_form_first() -> None:
    apis = FakeApis()
    apis.on("GET", "rewards", "/campaigns", [])
    apis.on("POST", "rewards", "/campaigns", pool(campaign_id="camp-9"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/campaigns")
        bad = client.post(
            "/campaigns",
            data={"_csrf_token": token, "campaign_id": "a b", "name": "", "asset": "USD", "low_threshold": "1.234"},
        )
        assert bad.status_code == 400
        for field in ("new-id-error", "new-name-error", "new-low-error"):
            assert f'id="{field}"' in bad.text
        assert all(c.method == "GET" for c in apis.calls)
        made = client.post(
            "/campaigns",
            data={
                "_csrf_token": token,
                "campaign_id": "camp-9",
                "name": "Autumn",
                "asset": "USD",
                "low_threshold": "100",
            },
            follow_redirects=False,
        )
        assert (made.status_code, made.headers["location"]) == (303, "/campaigns/camp-9")
        assert apis.calls[-1].body == {
            "campaign_id": "camp-9",
            "name": "Autumn",
            "asset": "USD",
            "low_threshold": 10_000,
        }
        apis.on(
            "POST", "rewards", "/campaigns", ApiProblem(409, "campaign_exists", "Conflict", "camp-9 exists", "rewards")
        )
        taken = client.post(
            "/campaigns",
            data={"_csrf_token": token, "campaign_id": "camp-9", "name": "Again", "asset": "USD"},
            follow_redirects=False,
        )
        assert taken.headers["location"] == "/campaigns"
        assert "camp-9 exists (campaign_exists)" in client.get("/campaigns").text


def test_ops_may_not_fund_and_a_player_sees_no_campaign() -> None:
    with console() as (client, apis, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client)
        for path in ("/campaigns/camp-1/fund", "/campaigns/camp-1/pause", "/campaigns/camp-1/close", "/campaigns"):
            assert client.post(path, data={"_csrf_token": token, "amount": "5"}).status_code == 403
        sign_in(client, idp, "player-1", "player")
        assert client.get("/campaigns").status_code == 403
        assert client.get("/campaigns/camp-1").status_code == 403
        assert apis.calls == []


def test_an_unreachable_rewards_is_shown_as_a_problem() -> None:
    apis = FakeApis()
    apis.on(
        "GET",
        "rewards",
        "/campaigns",
        ApiProblem(503, "service_unavailable", "Service unavailable", "rewards did not answer; try again", "rewards"),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/campaigns")
        assert response.status_code == 502
        assert "rewards did not answer; try again (service_unavailable)" in response.text
