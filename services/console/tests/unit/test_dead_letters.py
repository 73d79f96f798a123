"""Dead letters: every consuming service's board, one letter, redrive and discard (the runtime's shapes:
libs/runtime/src/prizeflow_runtime/admin_http.py and dead_letters.py `DeadLetterAdmin`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from console_fakes import FakeApis, console, csrf, sign_in

from prizeflow_console.application.dead_letters import shown_headers, shown_payload
from prizeflow_console.application.ports import ApiProblem

DOWN = ApiProblem(503, "service_unavailable", "Service unavailable", "payouts did not answer; try again", "payouts")


def letter(id_: int = 7, **changes: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "consumer": "settlement-game-rounds",
        "event_id": "0b7e9c5e-2f7a-4c1e-9a57-1d1f1f0b1c2d",
        "event_type": "prizeflow.game.RoundResultsReported.v1",
        "correlation_id": "flow-9",
        "topic": "prizeflow.game.rounds.v1",
        "partition": 0,
        "offset": 41,
        "reason": "unknown_aggregate",
        "detail": "round r-9 is not known here",
        "error_type": "EventRefusal",
        "attempts": 1,
        "status": "open",
        "created_at": "2026-03-01T10:00:00Z",
        "decided_at": None,
        "decided_by": None,
        "decision_reason": None,
        **changes,
    }


def inspected(**changes: Any) -> dict[str, Any]:
    value = {"specversion": "1.0", "data": {"round_id": "r-9", "destination": "GABCDEFGHIJKLMNOPQRSTUVWXYZ234567"}}
    return {
        **letter(**changes),
        "value": json.dumps(value),
        "headers": {
            "ce_type": "prizeflow.game.RoundResultsReported.v1",
            "correlation_id": "flow-9",
            "authorization": "Bearer abc.def",
        },
    }


def test_the_board_groups_by_service_and_topic_with_the_reason_and_names_a_service_that_failed() -> None:
    apis = FakeApis()
    apis.on(
        "GET",
        "settlement",
        "/admin/dead-letters",
        {"items": [letter(7), letter(8, reason="malformed_json", event_id=None, event_type=None)], "next_after": None},
    )
    apis.on(
        "GET",
        "rewards",
        "/admin/dead-letters",
        {
            "items": [letter(3, consumer="rewards-settlement-rounds", topic="prizeflow.settlement.rounds.v1")],
            "next_after": None,
        },
    )
    apis.on("GET", "payouts", "/admin/dead-letters", DOWN)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/dead-letters")
        assert response.status_code == 200
        text = response.text
        assert {c.service for c in apis.calls} == {"settlement", "rewards", "payouts"}
        assert all(c.query == {"status": "open", "reason": None, "limit": 100, "after": None} for c in apis.calls)
        assert all(c.token == "token-of-olivia" for c in apis.calls)
        assert text.index("rewards · <code>prizeflow.settlement.rounds.v1") < text.index(
            "settlement · <code>prizeflow.game.rounds.v1"
        )
        assert "<code>unknown_aggregate</code>" in text
        assert "<code>malformed_json</code>" in text
        assert "round r-9 is not known here" in text
        assert 'href="/dead-letters/settlement/7"' in text
        assert 'href="/dead-letters/rewards/3"' in text
        assert "payouts: Service unavailable — payouts did not answer; try again (service_unavailable)" in text
        assert "3 open dead letters." in text


def test_filters_reach_the_service_and_the_topic_is_filtered_here_with_paging_per_service() -> None:
    apis = FakeApis()
    items = [letter(7), letter(9, topic="prizeflow.payouts.events.v1")]
    apis.on("GET", "settlement", "/admin/dead-letters", {"items": items, "next_after": 9})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        text = client.get(
            "/dead-letters?service=settlement&status=discarded&reason=unknown_aggregate"
            "&topic=prizeflow.game.rounds.v1&after=5"
        ).text
        assert [c.service for c in apis.calls] == ["settlement"]
        assert apis.calls[0].query == {"status": "discarded", "reason": "unknown_aggregate", "limit": 100, "after": 5}
        assert 'href="/dead-letters/settlement/7"' in text
        assert 'href="/dead-letters/settlement/9"' not in text
        assert "after=9" in text  # the next page of settlement
        assert client.get("/dead-letters?service=webhooks").status_code == 400
        assert client.get("/dead-letters?status=lost").status_code == 400
        assert len(apis.calls) == 1


def test_a_letter_shows_why_its_headers_and_its_record_without_a_destination_or_credential() -> None:
    apis = FakeApis()
    apis.on("GET", "settlement", "/admin/dead-letters/7", inspected())
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        text = client.get("/dead-letters/settlement/7").text
        assert "<code>x-dlq-reason</code></th><td><code>unknown_aggregate</code>" in text
        assert "round r-9 is not known here" in text
        assert "<pre" in text
        assert "&#34;round_id&#34;: &#34;r-9&#34;" in text
        assert "GABCDEFGHIJKLMNOPQRSTUVWXYZ234567" not in text
        assert "GABC…4567" in text
        assert "Bearer abc.def" not in text
        assert 'action="/dead-letters/settlement/7/redrive"' in text  # ops may redrive (the runtime's OPERATORS)
        assert 'action="/dead-letters/settlement/7/discard"' in text


@pytest.mark.parametrize(
    ("changes", "redrive", "discard"),
    [
        ({"reason": "malformed_json", "event_id": None}, False, True),
        ({"reason": "invalid_envelope"}, False, True),
        ({"status": "redriven"}, False, False),
        ({"status": "discarded"}, False, False),
    ],
)
def test_only_what_the_service_would_accept_is_offered(changes: dict[str, Any], redrive: bool, discard: bool) -> None:
    apis = FakeApis()
    apis.on("GET", "rewards", "/admin/dead-letters/7", inspected(**changes))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        text = client.get("/dead-letters/rewards/7").text
        assert ('action="/dead-letters/rewards/7/redrive"' in text) is redrive
        assert ('action="/dead-letters/rewards/7/discard"' in text) is discard


@pytest.mark.parametrize("decision", ["redrive", "discard"])
def test_a_decision_posts_its_reason_to_the_letters_service(decision: str) -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", "/admin/dead-letters/7", inspected())
    answer = {"id": 7, "status": "redriven" if decision == "redrive" else "discarded"}
    apis.on("POST", "payouts", f"/admin/dead-letters/7/{decision}", answer)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client, "/dead-letters/payouts/7")
        response = client.post(
            f"/dead-letters/payouts/7/{decision}",
            data={"_csrf_token": token, "reason": "round opened since"},
            follow_redirects=False,
        )
        assert (response.status_code, response.headers["location"]) == (303, "/dead-letters/payouts/7")
        sent = apis.calls[-1]
        assert (sent.method, sent.service, sent.path, sent.body, sent.token) == (
            "POST",
            "payouts",
            f"/admin/dead-letters/7/{decision}",
            {"reason": "round opened since"},
            "token-of-olivia",
        )
        assert 'class="flash success"' in client.get("/dead-letters/payouts/7").text


def test_a_refusal_to_redrive_is_an_error_message_and_a_missing_reason_sends_nothing() -> None:
    apis = FakeApis()
    apis.on("GET", "settlement", "/admin/dead-letters/7", inspected())
    apis.on(
        "POST",
        "settlement",
        "/admin/dead-letters/7/redrive",
        ApiProblem(
            409,
            "still_refused",
            "Conflict",
            "the consumer refuses it again (unknown_aggregate): round r-9",
            "settlement",
        ),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client, "/dead-letters/settlement/7")
        empty = client.post("/dead-letters/settlement/7/redrive", data={"_csrf_token": token, "reason": " "})
        assert empty.status_code == 400
        assert 'id="redrive-reason-error"' in empty.text
        assert all(c.method == "GET" for c in apis.calls)
        client.post(
            "/dead-letters/settlement/7/redrive", data={"_csrf_token": token, "reason": "try"}, follow_redirects=False
        )
        text = client.get("/dead-letters/settlement/7").text
        assert 'class="flash error" role="alert"' in text
        assert "refuses it again (unknown_aggregate): round r-9 (still_refused)" in text


def test_an_unknown_service_or_letter_is_a_404_and_a_player_gets_403() -> None:
    apis = FakeApis()
    apis.on(
        "GET",
        "rewards",
        "/admin/dead-letters/99",
        ApiProblem(404, "dead_letter_not_found", "Not Found", "no dead letter 99", "rewards"),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        assert client.get("/dead-letters/webhooks/1").status_code == 404
        missing = client.get("/dead-letters/rewards/99")
        assert missing.status_code == 404
        assert "no dead letter 99 (dead_letter_not_found)" in missing.text
        sign_in(client, idp, "player-1", "player")
        calls = len(apis.calls)
        assert client.get("/dead-letters").status_code == 403
        assert client.get("/dead-letters/rewards/99").status_code == 403
        token = csrf(client)
        refused = client.post("/dead-letters/rewards/99/discard", data={"_csrf_token": token, "reason": "x"})
        assert refused.status_code == 403
        assert len(apis.calls) == calls


def test_an_unreadable_record_is_shown_as_stored_and_a_long_one_is_cut() -> None:
    assert shown_payload('{"not": "an event"') == ('{"not": "an event"', False)
    text, cut = shown_payload(json.dumps({"pad": "x" * 70_000}))
    assert cut
    assert len(text) == 64 * 1024
    nested = json.loads(shown_payload(json.dumps({"data": {"items": [{"destination": "someone@example.com"}]}}))[0])
    assert nested == {"data": {"items": [{"destination": "s…@example.com"}]}}
    assert shown_headers({"Prizeflow-Signature": "t=1,v1=ab", "ce_id": "e1"}) == [
        ("Prizeflow-Signature", "(not shown)"),
        ("ce_id", "e1"),
    ]
