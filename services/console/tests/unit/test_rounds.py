"""Rounds: search, a round's transitions and distribution, and the admin's void and resolve (settlement's shapes:
services/settlement/src/prizeflow_settlement/entrypoints/http.py and adapters/sql.py `SqlRoundQueries`)."""

from __future__ import annotations

from typing import Any

import pytest
from console_fakes import Call, FakeApis, console, csrf, sign_in

from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.entrypoints.pages.rounds import PlacementsError, parse_placements

SUMMARY = {
    "round_id": "r-1",
    "competition_id": "cup-7",
    "game_id": "chess",
    "state": "settled",
    "prize_source": "sponsored",
    "asset": "USDC",
    "entries_seen": 2,
    "entries_expected": 2,
    "pot": 0,
    "disputed": False,
    "hold_reason": None,
    "opened_at": "2026-03-01T10:00:00Z",
    "closed_at": "2026-03-01T10:05:00Z",
    "settled_at": "2026-03-01T10:06:00Z",
    "voided_at": None,
    "version": 4,
}
SPEC = {
    "round_id": "r-1",
    "competition_id": "cup-7",
    "game_id": "chess",
    "organizer_id": None,
    "opened_at": "2026-03-01T10:00:00Z",
    "entry_fee": None,
    "prize": {"asset": "USDC", "amount": 1_000_000_000, "campaign_id": "camp-1"},
    "prize_source": "sponsored",
    "distribution": {"template": "custom", "custom_bps": [7000, 3000]},
    "platform_fee_bps": 250,
    "organizer_fee_bps": 0,
    "placements_require_entry": True,
}
TOP = [{"player_id": "p-a", "rank": 1, "score": 30}, {"player_id": "p-b", "rank": 2, "score": 10}]


def detail(**changes: Any) -> dict[str, Any]:
    return {
        **SUMMARY,
        "spec": SPEC,
        "correlation_id": "flow-r-1",
        "void_reason": None,
        "results_summary": {
            "results_event_id": None,
            "reported_at": "2026-03-01T10:05:30Z",
            "placement_count": 2,
            "digest": "ab" * 32,
            "top": TOP,
        },
        "history": [
            {
                "from_state": None,
                "to_state": "open",
                "reason": None,
                "actor": None,
                "cause_id": None,
                "at": "2026-03-01T10:00:00Z",
            },
            {
                "from_state": "open",
                "to_state": "closed",
                "reason": "entries closed",
                "actor": None,
                "cause_id": None,
                "at": "2026-03-01T10:05:00Z",
            },
            {
                "from_state": "closed",
                "to_state": "resolved",
                "reason": "results reported",
                "actor": None,
                "cause_id": None,
                "at": "2026-03-01T10:05:30Z",
            },
            {
                "from_state": "resolved",
                "to_state": "settled",
                "reason": "results reported",
                "actor": None,
                "cause_id": None,
                "at": "2026-03-01T10:06:00Z",
            },
        ],
        "allocations": [
            {"player_id": "p-a", "rank": 1, "asset": "USDC", "amount": 682_500_000, "source": "pool"},
            {"player_id": "p-b", "rank": 2, "asset": "USDC", "amount": 292_500_000, "source": "pool"},
        ],
        "fees": [{"party": "platform", "account_id": "platform", "asset": "USDC", "amount": 25_000_000}],
        "disputes": [],
        **changes,
    }


def test_the_list_filters_pages_and_links_each_round() -> None:
    apis = FakeApis()
    apis.on("GET", "settlement", "/rounds", {"items": [SUMMARY], "next_cursor": "cj0x"})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/rounds?competition_id=cup-7&state=settled&disputed=false")
        assert response.status_code == 200
        assert apis.calls[-1].query == {
            "competition_id": "cup-7",
            "state": "settled",
            "disputed": "false",
            "cursor": None,
            "limit": 50,
        }
        assert apis.calls[-1].token == "token-of-olivia"
        assert 'href="/rounds/r-1"' in response.text
        assert 'class="stack"' in response.text
        assert (
            'href="/rounds?competition_id=cup-7&amp;state=settled&amp;disputed=false&amp;cursor=cj0x"' in response.text
        )
        second = client.get("/rounds?competition_id=cup-7&cursor=cj0x")
        assert apis.calls[-1].query["cursor"] == "cj0x"
        assert 'href="/rounds?competition_id=cup-7">First page' in second.text


def test_a_round_id_goes_straight_to_its_page_and_a_bad_filter_calls_nothing() -> None:
    with console() as (client, apis, idp):
        sign_in(client, idp, "olivia", "ops")
        jump = client.get("/rounds?round_id=+r:7.a+", follow_redirects=False)
        assert (jump.status_code, jump.headers["location"]) == (303, "/rounds/r%3A7.a")
        for bad in ("round_id=a%20b", "state=lost", "competition_id=%2Fetc", "disputed=maybe"):
            response = client.get(f"/rounds?{bad}")
            assert response.status_code == 400, bad
            assert 'role="alert"' in response.text
        assert apis.calls == []


def test_a_settlement_problem_is_shown_not_hidden() -> None:
    apis = FakeApis()
    apis.on(
        "GET",
        "settlement",
        "/rounds",
        ApiProblem(400, "invalid_cursor", "Bad Request", "the cursor is not one this API returned", "settlement"),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/rounds?cursor=zz")
        assert response.status_code == 400
        assert "the cursor is not one this API returned (invalid_cursor)" in response.text


def test_a_round_shows_its_transitions_in_order_and_its_distribution_to_ops_without_forms() -> None:
    apis = FakeApis()
    apis.on("GET", "settlement", "/rounds/r-1", detail())
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        text = client.get("/rounds/r-1").text
        positions = [text.index(f'<span class="badge {s}">{s}</span></td>') for s in ("open", "closed", "resolved")]
        assert positions == sorted(positions)
        assert "68.2500000 USDC" in text  # 682_500_000 minor units at USDC's 7 decimals
        assert "29.2500000 USDC" in text
        assert "2.5000000 USDC" in text  # the platform fee
        assert "100.0000000 USDC" in text
        assert 'href="/campaigns/camp-1"' in text
        assert "1. 70.00 %, 2. 30.00 %" in text  # the custom split, as settlement holds it
        assert 'href="/timeline?correlation_id=flow-r-1"' in text
        assert '<form method="post" action="/rounds' not in text


@pytest.mark.parametrize(
    ("state", "disputed", "void", "resolve"),
    [
        ("open", False, True, False),
        ("closed", False, True, True),
        ("resolved", False, True, True),
        ("settled", False, False, False),
        ("settled", True, False, True),
        ("voided", False, False, False),
    ],
)
def test_an_admin_is_offered_what_settlement_would_accept(
    state: str, disputed: bool, void: bool, resolve: bool
) -> None:
    apis = FakeApis()
    apis.on("GET", "settlement", "/rounds/r-1", detail(state=state, disputed=disputed))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        text = client.get("/rounds/r-1").text
        assert ('action="/rounds/r-1/void"' in text) is void
        assert ('action="/rounds/r-1/resolve"' in text) is resolve
        if resolve:
            assert "p-a, 1, 30\np-b, 2, 10</textarea>" in text  # the reported results, ready to confirm


def test_void_posts_the_reason_as_the_admin_and_says_so() -> None:
    apis = FakeApis()
    apis.on("GET", "settlement", "/rounds/r-1", detail(state="open"))
    apis.on(
        "POST",
        "settlement",
        "/rounds/r-1/void",
        {"round_id": "r-1", "state": "voided", "disputed": False, "hold_reason": None, "results_digest": None},
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/rounds/r-1")
        response = client.post(
            "/rounds/r-1/void", data={"_csrf_token": token, "reason": " server crashed "}, follow_redirects=False
        )
        assert (response.status_code, response.headers["location"]) == (303, "/rounds/r-1")
        sent = apis.calls[-1]
        assert (sent.method, sent.path, sent.body, sent.token) == (
            "POST",
            "/rounds/r-1/void",
            {"reason": "server crashed"},
            "token-of-adam",
        )
        assert "Round r-1 voided" in client.get("/rounds/r-1").text


def test_resolve_sends_the_typed_placements_and_a_refusal_becomes_an_error_message() -> None:
    apis = FakeApis()
    apis.on("GET", "settlement", "/rounds/r-1", detail(state="closed"))
    refused = ApiProblem(
        409, "placement_not_entered", "Conflict", "round r-1: results place players who never entered: x", "settlement"
    )
    apis.on("POST", "settlement", "/rounds/r-1/resolve", refused)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/rounds/r-1")
        client.post(
            "/rounds/r-1/resolve",
            data={"_csrf_token": token, "placements": "p-a, 1, 30\np-b 2 -4", "reason": "the game server crashed"},
            follow_redirects=False,
        )
        assert apis.calls[-1].body == {
            "placements": [{"player_id": "p-a", "rank": 1, "score": 30}, {"player_id": "p-b", "rank": 2, "score": -4}],
            "reason": "the game server crashed",
        }
        page = client.get("/rounds/r-1").text
        assert 'class="flash error" role="alert"' in page
        assert "never entered: x (placement_not_entered)" in page


def test_placements_a_settlement_would_refuse_are_a_field_error_and_nothing_is_sent() -> None:
    apis = FakeApis()
    apis.on("GET", "settlement", "/rounds/r-1", detail(state="closed"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/rounds/r-1")
        response = client.post(
            "/rounds/r-1/resolve", data={"_csrf_token": token, "placements": "p-a 1 3\np-b 1 2\np-c 2 1", "reason": "x"}
        )
        assert response.status_code == 400
        assert 'id="placements-error"' in response.text
        assert "p-a 1 3\np-b 1 2\np-c 2 1</textarea>" in response.text  # what was typed stays
        void = client.post("/rounds/r-1/void", data={"_csrf_token": token, "reason": "  "})
        assert void.status_code == 400
        assert 'id="void-reason-error"' in void.text
        assert all(c.method == "GET" for c in apis.calls)


def test_ops_cannot_void_even_by_posting_and_a_player_sees_no_round() -> None:
    with console() as (client, apis, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client)
        refused = client.post("/rounds/r-1/void", data={"_csrf_token": token, "reason": "x"}, follow_redirects=False)
        assert refused.status_code == 403
        sign_in(client, idp, "player-1", "player")
        assert client.get("/rounds").status_code == 403
        assert client.get("/rounds/r-1").status_code == 403
        assert [c for c in apis.calls if isinstance(c, Call)] == []


def test_an_unknown_round_is_a_404_page_that_says_so() -> None:
    apis = FakeApis()
    apis.on(
        "GET",
        "settlement",
        "/rounds/nope",
        ApiProblem(404, "round_not_found", "Not Found", "no round nope", "settlement"),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/rounds/nope")
        assert response.status_code == 404
        assert "no round nope (round_not_found)" in response.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one line"),
        ("p-a 1", "line 1: write player id, rank, score"),
        ("p-a one 3", "line 1: rank and score are whole numbers"),
        ("p a 1 3", "line 1: write player id, rank, score"),
        ("-pa 1 3", "line 1: player_id is not valid"),
        ("p-a 2 3", "ranks must follow standard competition ranking"),
        ("p-a 1 3\np-a 2 1", "appears more than once"),
    ],
)
def test_typed_placements_are_checked_as_settlement_checks_them(text: str, message: str) -> None:
    with pytest.raises(PlacementsError, match=message):
        parse_placements(text)


def test_tied_placements_follow_standard_competition_ranking() -> None:
    assert [p["rank"] for p in parse_placements("a,1,9\nb,1,9\nc,3,1")] == [1, 1, 3]
