"""Reconciliation in the console: runs per rail and a run on demand, the exception queue, one exception with both
sides side by side, the two-person money actions, and the finance exports streamed through (the payouts admin API's
documented shapes: runs, exceptions, resolve answering 202 with a proposal then 200 resolved)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from console_fakes import Call, FakeApis, FakeIdp, MemorySessions, console, csrf, sign_in
from litestar import Litestar

from prizeflow_console.adapters.http_apis import HttpPlatformApi
from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.application.reconciliation import RECON
from prizeflow_console.domain.reconciliation import offer, side_by_side, window_words
from prizeflow_console.domain.viewer import Viewer

USDC = 10_000_000


def run(run_id: str = "run-1", provider: str = "stripe", **changes: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "provider": provider,
        "since": "2026-11-25T16:00:00Z",
        "until": "2026-11-25T17:00:00Z",
        "state": "completed",
        "started_at": "2026-11-25T17:05:00Z",
        "finished_at": "2026-11-25T17:05:03Z",
        "lines": 12,
        "matched": 10,
        "exceptions": 2,
        "error": None,
        "totals": [
            {
                "asset": "USD",
                "ours_paid": 150_000,
                "theirs_paid": 149_000,
                "fees": 250,
                "reversals": 0,
                "provider_movement": 149_250,
                "ledger_movement": 150_000,
            },
        ],
        **changes,
    }


OURS: dict[str, Any] = {
    "payout_id": "po-1",
    "state": "paid",
    "asset": "USDC",
    "amount": 1_000 * USDC,
    "destination": "GABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRSTUV",
    "idempotency_key": "payout-po-1",
    "provider_ref": "tx-9",
    "paid_at": "2026-11-25T16:10:00Z",
}
THEIRS: dict[str, Any] = {
    "line_id": "op-77",
    "kind": "payout",
    "occurred_at": "2026-11-25T16:10:02Z",
    "asset": "USDC",
    "amount": 999 * USDC,
    "reference": "payout-po-1",
    "provider_ref": "tx-9",
    "destination": "GABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRSTUV",
    "raw_type": "payment",
}


def exception(id_: int = 7, **changes: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "provider": "stellar",
        "kind": "amount_mismatch",
        "severity": "high",
        "state": "open",
        "owner": None,
        "run_id": "run-1",
        "opened_at": "2026-11-25T17:05:02Z",
        "updated_at": "2026-11-25T17:05:02Z",
        "payout_id": "po-1",
        "asset": "USDC",
        "amount": USDC,
        "ours": OURS,
        "theirs": [THEIRS],
        "actions": ["acknowledge", "write_off"],
        "proposal": None,
        "resolution": None,
        "history": [{"at": "2026-11-25T17:05:02Z", "actor": "reconciliation", "what": "opened", "reason": None}],
        "detail": ["the provider paid 999.0000000 USDC of 1,000.0000000"],
        **changes,
    }


def proposed(by: str, action: str = "write_off", **params: str) -> dict[str, Any]:
    return {
        "action": action,
        "proposed_by": by,
        "proposed_at": "2026-11-25T18:00:00Z",
        "reason": "lost",
        "params": params,
    }


def posts(apis: FakeApis) -> list[Call]:
    return [c for c in apis.calls if c.method == "POST"]


# --- who sees what ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [("ops",), ("approver",), ("admin",)])
def test_ops_approvers_and_admins_find_the_three_pages_in_the_navigation(roles: tuple[str, ...]) -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", f"{RECON}/runs", {"runs": []})
    apis.on("GET", "payouts", f"{RECON}/exceptions", {"exceptions": []})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", *roles)
        home = client.get("/").text
        for path in ("/reconciliation", "/exceptions", "/exports"):
            assert f'href="{path}"' in home
            assert client.get(path).status_code == 200, path


def test_a_player_sees_none_of_them_and_every_address_and_action_answers_403_without_calling_payouts() -> None:
    apis = FakeApis()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "player-1", "player")
        home = client.get("/").text
        for path in ("/reconciliation", "/exceptions", "/exports"):
            assert f'href="{path}"' not in home
        for path in ("/reconciliation", "/exceptions", "/exceptions/7", "/exports",
                     "/exports/ledger.csv?since=2026-01-01&through=2026-01-31"):  # fmt: skip
            assert client.get(path).status_code == 403, path
        token = csrf(client, "/")
        for path, data in (
            ("/reconciliation/runs", {"provider": "stripe", "since": "2026-11-25T16:00", "until": "2026-11-25T17:00"}),
            ("/exceptions/7/take", {}),
            ("/exceptions/7/resolve", {"action": "write_off", "reason": "mine now"}),
        ):
            assert client.post(path, data={"_csrf_token": token, **data}).status_code == 403, path
    assert apis.calls == []


# --- runs ------------------------------------------------------------------------------------------------------


def test_runs_are_shown_per_rail_newest_first_with_totals_per_asset_and_differences_said() -> None:
    apis = FakeApis()
    runs = [run("run-3", "stripe"), run("run-2", "stellar", totals=[], exceptions=0), run("run-1", "stripe",
            started_at="2026-11-25T16:05:00Z")]  # fmt: skip
    apis.on("GET", "payouts", f"{RECON}/runs", {"runs": runs})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        text = client.get("/reconciliation").text
    assert apis.calls[0].query == {"provider": None, "limit": 50}
    assert apis.calls[0].token == "token-of-olivia"
    assert text.index(">stellar</h2>") < text.index(">stripe</h2>")
    assert text.index("<code>run-3</code>") < text.index("<code>run-1</code>")  # newest first within a rail
    assert "1,500.00 USD" in text  # ours paid
    assert "1,490.00 USD" in text  # theirs paid
    assert "2.50 USD" in text  # fees
    assert text.count('<span class="tag">differs</span>') == 4  # paid and ledger movement, on both stripe runs
    assert "No money moved in this window." in text
    assert 'href="/exceptions?provider=stripe"' in text
    assert 'action="/reconciliation/runs"' in text


def test_a_runs_list_payouts_cannot_give_is_said_as_an_alert_never_an_empty_list() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", f"{RECON}/runs", ApiProblem(503, "service_unavailable", "Service unavailable",
                                                        "payouts did not answer; try again", "payouts"))  # fmt: skip
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/reconciliation")
    assert response.status_code == 502
    assert 'role="alert">payouts: Service unavailable — payouts did not answer; try again' in response.text
    assert "No run yet" not in response.text


def test_a_window_is_run_on_demand_and_its_outcome_is_the_pages_message() -> None:
    apis = FakeApis()
    apis.on("POST", "payouts", f"{RECON}/runs", run("run-9", "stripe", exceptions=1))
    apis.on("GET", "payouts", f"{RECON}/runs", {"runs": [run("run-9")]})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client, "/reconciliation")
        response = client.post(
            "/reconciliation/runs",
            data={"_csrf_token": token, "provider": "stripe", "since": "2026-11-25T16:00", "until": "2026-11-25T17:00"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/reconciliation?provider=stripe"
        shown = client.get(response.headers["location"]).text
    (sent,) = posts(apis)
    assert sent.body == {"provider": "stripe", "since": "2026-11-25T16:00:00Z", "until": "2026-11-25T17:00:00Z"}
    assert sent.timeout_s is not None
    assert sent.timeout_s > 10
    assert "Run run-9 of stripe completed: 12 lines, 10 matched, 1 exceptions." in shown


@pytest.mark.parametrize(
    "form",
    [
        {"provider": "", "since": "2026-11-25T16:00", "until": "2026-11-25T17:00"},
        {"provider": "../stripe", "since": "2026-11-25T16:00", "until": "2026-11-25T17:00"},
        {"provider": "stripe", "since": "yesterday", "until": "2026-11-25T17:00"},
        {"provider": "stripe", "since": "2026-11-25T17:00", "until": "2026-11-25T17:00"},
    ],
)
def test_a_window_that_is_not_one_is_refused_here(form: dict[str, str]) -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", f"{RECON}/runs", {"runs": []})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client, "/reconciliation")
        shown = client.post("/reconciliation/runs", data={"_csrf_token": token, **form}).text
    assert posts(apis) == []
    assert 'class="flash error" role="alert"' in shown


# --- the queue -------------------------------------------------------------------------------------------------


def test_the_queue_passes_its_filters_on_links_each_row_to_its_detail_and_pages() -> None:
    apis = FakeApis()
    page = [exception(i, owner="olivia", state="investigating") for i in range(1, 101)]
    apis.on("GET", "payouts", f"{RECON}/exceptions", {"exceptions": page})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        query = {"state": "investigating", "kind": "amount_mismatch", "provider": "stellar", "severity": "high",
                 "owner": "olivia", "offset": "100"}  # fmt: skip
        text = client.get("/exceptions?" + urlencode(query)).text
    assert apis.calls[0].query == {**query, "offset": 100, "limit": 100}
    assert 'href="/exceptions/1"' in text
    assert 'href="/exceptions/100"' in text
    assert "10.0000000 USDC" not in text  # a difference of one USDC (7 decimals)
    assert "1.0000000 USDC" in text
    nxt = dict(query, offset="200")
    prev = dict(query, offset="0")
    assert f'href="/exceptions?{urlencode(nxt)}"'.replace("&", "&amp;") in text
    assert f'href="/exceptions?{urlencode(prev)}"'.replace("&", "&amp;") in text


@pytest.mark.parametrize("query", ["kind=lost_money", "state=closed", "severity=low", "provider=a/b", "owner=%20x%3C"])
def test_a_filter_payouts_could_not_match_is_refused_here(query: str) -> None:
    apis = FakeApis()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get(f"/exceptions?{query}")
    assert response.status_code == 400
    assert apis.calls == []


@pytest.mark.parametrize(("kind", "words"), [
    ("overpaid", "The provider paid more than our payout: the excess left without Prizeflow sending it."),
    ("unmatched_credit",
     "Money came into the provider balance for no payout of ours (a return, a top-up, an adjustment)."),
    ("unexplained_debit", "Money left the provider balance to no player and as no fee."),
])  # fmt: skip
def test_every_kind_payouts_opens_can_be_filtered_on_and_reads_in_words(kind: str, words: str) -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", f"{RECON}/exceptions", {"exceptions": [exception(3, kind=kind)]})
    apis.on("GET", "payouts", f"{RECON}/exceptions/3", exception(3, kind=kind))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        listed = client.get(f"/exceptions?kind={kind}")
        detail = client.get("/exceptions/3").text
    assert listed.status_code == 200
    assert apis.calls[0].query is not None
    assert apis.calls[0].query["kind"] == kind
    assert f'<option value="{kind}" selected>' in listed.text
    assert escape(words) in detail


# --- one exception: both sides side by side --------------------------------------------------------------------


def test_the_detail_shows_our_payout_beside_the_providers_line_and_marks_what_differs() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", f"{RECON}/exceptions/7", exception())
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        text = client.get("/exceptions/7").text
    assert "Ours: Our payout po-1" in text
    assert "Theirs: Provider line op-77 (payment)" in text
    amount_row = text[text.index('scope="row" data-label="Field">Amount') :].split("</tr>", 1)[0]
    assert '<span class="tag">differs</span>' in amount_row
    assert "1,000.0000000 USDC" in amount_row
    assert "999.0000000 USDC" in amount_row
    assert amount_row.index("1,000.0000000 USDC") < amount_row.index("999.0000000 USDC")  # ours, then theirs
    destination_row = text[text.index('data-label="Field">Destination') :].split("</tr>", 1)[0]
    assert "differs" not in destination_row
    assert OURS["destination"] not in text  # masked
    assert "GABC…STUV" in destination_row
    assert "The provider&#39;s amount or asset differs from our payout." in text
    assert ">opened<" in text  # the history
    assert "<li>the provider paid 999.0000000 USDC of 1,000.0000000</li>" in text  # what the run found
    # ops: take, acknowledge, propose the money action; nothing to approve
    assert 'action="/exceptions/7/take"' in text
    assert 'name="action" value="acknowledge"' in text
    assert "Propose: write off" in text
    assert "Approve" not in text


def test_a_payment_nobody_asked_for_and_a_payout_the_provider_never_made_say_which_side_is_empty() -> None:
    unrequested = side_by_side(None, [THEIRS])
    assert unrequested.ours_heading is None
    assert not any(r.differs for r in unrequested.rows)
    missing = side_by_side(OURS, [])
    assert missing.theirs_headings == ()
    apis = FakeApis()
    apis.on("GET", "payouts", f"{RECON}/exceptions/8", exception(8, kind="unrequested", ours=None, payout_id=None))
    apis.on("GET", "payouts", f"{RECON}/exceptions/9", exception(9, kind="missing", theirs=[]))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        assert "No payout of ours" in client.get("/exceptions/8").text
        assert "No line at the provider" in client.get("/exceptions/9").text


def test_a_duplicate_shows_every_provider_line_in_its_own_column() -> None:
    second = {**THEIRS, "line_id": "op-78", "amount": OURS["amount"]}
    sides = side_by_side(OURS, [{**THEIRS, "amount": OURS["amount"]}, second])
    assert sides.theirs_headings == ("Provider line op-77 (payment)", "Provider line op-78 (payment)")
    assert all(len(r.theirs) == 2 for r in sides.rows)
    assert not next(r for r in sides.rows if r.label == "Amount").differs


def test_a_fee_or_a_reversal_line_is_not_held_to_the_payouts_amount() -> None:
    fee = {**THEIRS, "line_id": "fee-1", "kind": "fee", "amount": 5_000, "destination": None}
    reversal = {**THEIRS, "line_id": "rev-1", "kind": "reversal", "amount": 400 * USDC}
    sides = side_by_side(OURS, [{**THEIRS, "amount": OURS["amount"]}, fee, reversal])
    amount = next(r for r in sides.rows if r.label == "Amount")
    assert not amount.differs
    assert amount.theirs == ("1,000.0000000 USDC", "0.0005000 USDC", "400.0000000 USDC")
    short = side_by_side(OURS, [THEIRS, fee])
    assert next(r for r in short.rows if r.label == "Amount").differs


def test_a_destination_that_differs_only_where_the_mask_hides_it_is_still_marked() -> None:
    other = OURS["destination"][:10] + "Z" + OURS["destination"][11:]
    sides = side_by_side(OURS, [{**THEIRS, "destination": other}])
    row = next(r for r in sides.rows if r.label == "Destination")
    assert row.ours == row.theirs[0]  # both masked alike
    assert row.differs


def test_a_detail_payouts_refuses_is_its_problem_detail_as_the_pages_alert() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", f"{RECON}/exceptions/7", ApiProblem(404, "not_found", "Not Found", "no exception 7",
                                                                  "payouts"))  # fmt: skip
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/exceptions/7")
    assert response.status_code == 404
    assert 'role="alert">payouts: Not Found — no exception 7 (not_found)' in response.text


# --- two people for money --------------------------------------------------------------------------------------


def resolving(apis: FakeApis, current: dict[str, Any]) -> None:
    """payouts' resolve as documented: the first call for a money action records the proposal (202), a second
    distinct person's call executes it (200); the proposer again is refused 403 self_approval."""
    state = {"exception": current}

    def resolve(call: Call) -> Any:
        e = state["exception"]
        action = call.body["action"]
        if action == "acknowledge":
            state["exception"] = {**e, "state": "resolved", "resolution": {"action": action}}
        elif e["proposal"] is None:
            state["exception"] = {**e, "proposal": proposed(call.token.removeprefix("token-of-"), action,
                                                            **call.body["params"])}  # fmt: skip
        elif e["proposal"]["proposed_by"] == call.token.removeprefix("token-of-"):
            return ApiProblem(403, "self_approval", "Forbidden", "the proposer cannot approve their own proposal",
                              "payouts")  # fmt: skip
        elif e["proposal"]["action"] != action:
            return ApiProblem(409, "proposal_differs", "Conflict", "another action is proposed", "payouts")
        else:
            state["exception"] = {**e, "state": "resolved", "resolution": {"action": action}}
        return state["exception"]

    apis.on("GET", "payouts", f"{RECON}/exceptions/7", lambda _: state["exception"])
    apis.on("POST", "payouts", f"{RECON}/exceptions/7/resolve", resolve)


def resolve_form(client: Any, **fields: str) -> Any:
    token = csrf(client, "/exceptions/7")
    response = client.post("/exceptions/7/resolve", data={"_csrf_token": token, **fields}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/exceptions/7"
    return client.get("/exceptions/7").text


def test_one_person_proposes_the_proposer_never_sees_approve_and_a_second_person_approves() -> None:
    apis = FakeApis()
    resolving(apis, exception())
    sessions = MemorySessions()
    with console(apis, sessions=sessions) as (olivia, _, idp):
        sign_in(olivia, idp, "olivia", "ops", "approver")
        shown = resolve_form(olivia, action="write_off", reason="the provider kept one USDC")
        assert "Proposed: write off. A second person, an approver or an admin, must approve it." in shown
        assert "You proposed to write off: a second person, an approver or an admin, must approve it." in shown
        assert "Approve" not in shown
        assert "Propose:" not in shown
        assert 'value="acknowledge"' in shown  # one person may still set the proposal aside, moving no money
    with console(apis, FakeIdp(), sessions=sessions) as (alice, _, idp):
        sign_in(alice, idp, "alice", "approver")
        page = alice.get("/exceptions/7").text
        assert "Approve write off proposed by olivia" in page
        shown = resolve_form(alice, action="write_off", reason="checked the statement")
        assert "Resolved: write off." in shown
        assert "This exception is resolved: there is nothing left to do." in shown
    proposal, approval = posts(apis)
    assert (proposal.token, proposal.body) == (
        "token-of-olivia", {"action": "write_off", "reason": "the provider kept one USDC", "params": {}}
    )  # fmt: skip
    assert (approval.token, approval.body) == (
        "token-of-alice", {"action": "write_off", "reason": "checked the statement", "params": {}}
    )  # fmt: skip


def test_an_ops_person_who_did_not_propose_sees_who_proposed_and_that_it_waits_for_an_approver() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", f"{RECON}/exceptions/7", exception(proposal=proposed("olivia")))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "bob", "ops")
        text = client.get("/exceptions/7").text
    assert "Write off proposed by olivia waits for an approver or an admin." in text
    assert "Approve" not in text
    assert 'action="/exceptions/7/take"' in text


def test_the_proposer_approving_anyway_gets_payouts_refusal_as_the_pages_alert() -> None:
    """A forged approval (the console never draws the button): payouts refuses it, and the page says so."""
    apis = FakeApis()
    resolving(apis, exception(proposal=proposed("olivia")))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "approver")
        shown = resolve_form(client, action="write_off", reason="approving my own")
    assert (
        'class="flash error" role="alert">Forbidden: the proposer cannot approve their own proposal (self_approval)'
        in (shown)
    )


def test_settling_a_withdrawal_as_found_needs_its_id_and_passes_it_on() -> None:
    apis = FakeApis()
    resolving(apis, exception(kind="unknown_outcome", provider="exchange", actions=["settle_found", "settle_not_made"]))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        page = client.get("/exceptions/7").text
        assert 'name="withdrawal_id"' in page
        assert "Propose: settle as not made" in page
        assert 'value="acknowledge"' not in page  # not among its actions
        refused = resolve_form(client, action="settle_found", reason="found it")
        assert posts(apis) == []
        assert "Give the exchange&#39;s withdrawal id" in refused
        shown = resolve_form(client, action="settle_found", reason="found it", withdrawal_id="wd-42")
    assert posts(apis)[0].body == {"action": "settle_found", "reason": "found it", "params": {"withdrawal_id": "wd-42"}}
    assert "(withdrawal <code>wd-42</code>)" in shown


def test_the_second_person_approves_the_withdrawal_id_that_was_proposed() -> None:
    apis = FakeApis()
    resolving(apis, exception(kind="unknown_outcome", actions=["settle_found", "settle_not_made"],
                              proposal=proposed("olivia", "settle_found", withdrawal_id="wd-42")))  # fmt: skip
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "admin")
        page = client.get("/exceptions/7").text
        assert 'type="hidden" name="withdrawal_id" value="wd-42"' in page
        resolve_form(client, action="settle_found", reason="seen at the exchange", withdrawal_id="wd-42")
    assert posts(apis)[0].body["params"] == {"withdrawal_id": "wd-42"}


def test_acknowledging_needs_a_reason_and_taking_makes_it_yours() -> None:
    apis = FakeApis()
    resolving(apis, exception())
    apis.on("POST", "payouts", f"{RECON}/exceptions/7/take", lambda call: exception(owner="olivia"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        shown = resolve_form(client, action="acknowledge", reason="   ")
        assert "Say why: a reason of 1 to 1000 characters is required." in shown
        assert posts(apis) == []
        token = csrf(client, "/exceptions/7")
        client.post("/exceptions/7/take", data={"_csrf_token": token, "reason": ""})
        assert posts(apis)[0].path == f"{RECON}/exceptions/7/take"
        assert posts(apis)[0].body == {}
        shown = resolve_form(client, action="acknowledge", reason="a test payment of ours")
    assert "Resolved: acknowledge." in shown


def test_acknowledging_a_critical_difference_is_said_as_the_proposal_payouts_made_of_it() -> None:
    """Payouts takes two people for any resolution of a critical kind, acknowledge too: its answer is the exception
    with a proposal (202), and the page says so rather than that it is done."""
    apis = FakeApis()
    critical = exception(kind="unrequested", severity="critical", actions=["acknowledge", "write_off"])
    answered = {**critical, "proposal": proposed("olivia", "acknowledge")}
    apis.on("GET", "payouts", f"{RECON}/exceptions/7", lambda _: answered if posts(apis) else critical)
    apis.on("POST", "payouts", f"{RECON}/exceptions/7/resolve", answered)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        shown = resolve_form(client, action="acknowledge", reason="a test payment of ours")
    assert "Proposed: acknowledge. A second person, an approver or an admin, must approve it." in shown
    assert "Done: acknowledge." not in shown


def test_what_is_offered_follows_the_roles_the_proposal_and_the_state() -> None:
    ops, approver = Viewer.of("bob", None, ["ops"]), Viewer.of("alice", None, ["approver"])
    reader = Viewer.of("pat", None, ["player"])
    open_one = exception(owner="bob")
    assert offer(ops, open_one).take is False  # already theirs
    assert offer(ops, open_one).propose == ("write_off",)
    assert offer(reader, open_one).notes == ("Your roles let you read reconciliation, not act on it.",)
    standing = exception(proposal=proposed("bob"))
    assert offer(ops, standing).approve is None
    assert offer(ops, standing).acknowledge  # the proposer may still set it aside
    assert offer(ops, standing).propose == ()
    assert offer(approver, standing).approve == "write_off"
    assert offer(Viewer.of("bob", None, ["approver", "admin"]), standing).approve is None
    assert offer(approver, exception(state="resolved")) == offer(ops, exception(state="resolved"))
    assert offer(approver, exception(state="resolved")).approve is None


# --- exports: streamed through, never buffered -----------------------------------------------------------------

ROWS = [b"transfer_id,asset,amount\n", b"t-1,USD,1250\n", b"t-2,USDC,10000000\n"]


def upstream(
    seen: list[httpx.Request], body: Callable[[], AsyncIterator[bytes]] | None = None, *, status: int = 200
) -> HttpPlatformApi:
    """payouts and rewards as HTTP: a CSV whose body arrives in chunks (or a problem detail)."""

    async def rows() -> AsyncIterator[bytes]:
        for row in ROWS:
            yield row

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if status >= 400:
            problem = {"status": status, "code": "forbidden", "title": "Forbidden", "detail": "not for your role"}
            return httpx.Response(status, json=problem, headers={"content-type": "application/problem+json"})
        return httpx.Response(200, headers={"content-type": "text/csv; charset=utf-8"}, content=(body or rows)())

    urls = {s: f"http://{s}.test" for s in ("settlement", "rewards", "payouts", "webhooks")}
    return HttpPlatformApi(urls, timeout_s=5, transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(
    ("path", "service_path", "query"),
    [
        ("/exports/ledger.csv?since=2026-01-01&through=2026-01-31&asset=USD", "http://rewards.test/v1/admin/exports/ledger.csv",
         {"since": ["2026-01-01T00:00:00Z"], "until": ["2026-02-01T00:00:00Z"], "asset": ["USD"]}),
        ("/exports/payouts.csv?since=2026-01-01&through=2026-01-31&provider=stripe&asset=",
         "http://payouts.test/v1/admin/exports/payouts.csv",
         {"since": ["2026-01-01T00:00:00Z"], "until": ["2026-02-01T00:00:00Z"], "provider": ["stripe"]}),
        ("/exports/reconciliation.csv?since=2026-01-01&through=2026-01-31&provider=ton&asset=USD",
         "http://payouts.test/v1/admin/exports/reconciliation.csv",
         {"since": ["2026-01-01T00:00:00Z"], "until": ["2026-02-01T00:00:00Z"], "provider": ["ton"]}),
        ("/exports/history.csv?player_id=player-9&since=2026-01-01&through=2026-01-31",
         "http://rewards.test/v1/admin/exports/players/player-9/history.csv",
         {"since": ["2026-01-01T00:00:00Z"], "until": ["2026-02-01T00:00:00Z"]}),
    ],
)  # fmt: skip
def test_each_export_reaches_its_service_as_the_person_and_comes_back_as_the_services_csv(
    path: str, service_path: str, query: dict[str, list[str]]
) -> None:
    seen: list[httpx.Request] = []
    with console(upstream(seen)) as (client, _, idp):  # type: ignore[arg-type]
        sign_in(client, idp, "fiona", "ops")
        response = client.get(path)
    assert response.status_code == 200
    assert response.content == b"".join(ROWS)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    stem = path.split("?", maxsplit=1)[0].rsplit("/", 1)[1].removesuffix(".csv")
    if stem == "history":
        stem = "history-player-9"
    assert response.headers["content-disposition"] == f'attachment; filename="{stem}-2026-01-01-to-2026-01-31.csv"'
    assert response.headers["cache-control"] == "no-store"
    (request,) = seen
    assert str(request.url).split("?")[0] == service_path
    assert parse_qs(request.url.query.decode()) == query
    assert request.headers["authorization"] == "Bearer token-of-fiona"
    assert request.headers["accept"] == "text/csv"


def test_an_export_the_service_refuses_is_its_problem_detail_on_the_exports_page_not_a_file() -> None:
    seen: list[httpx.Request] = []
    with console(upstream(seen, status=403)) as (client, _, idp):  # type: ignore[arg-type]
        sign_in(client, idp, "fiona", "approver")
        response = client.get("/exports/ledger.csv?since=2026-01-01&through=2026-01-31")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert 'role="alert">rewards: Forbidden — not for your role (forbidden)' in response.text


@pytest.mark.parametrize(
    "query",
    [
        "since=2026-01-31&through=2026-01-01",
        "since=&through=2026-01-01",
        "since=2026-01-01&through=2026-01-31&asset=XXX",
    ],
)
def test_a_period_that_is_not_one_is_refused_before_any_service_is_asked(query: str) -> None:
    seen: list[httpx.Request] = []
    with console(upstream(seen)) as (client, _, idp):  # type: ignore[arg-type]
        sign_in(client, idp, "fiona", "ops")
        assert client.get(f"/exports/ledger.csv?{query}").status_code == 400
    assert seen == []


def _cookie_header(client: Any) -> bytes:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items()).encode()


async def _asgi_get(app: Litestar, path: str, query: str, cookie: bytes, on_body: Callable[[bytes], None]) -> int:
    """One GET straight through the app's ASGI interface, seeing each body message as the app sends it (the test
    client collects the whole body first, which would hide buffering)."""
    finished = asyncio.Event()
    status = 0
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            on_body(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"testserver"), (b"cookie", cookie)], "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }  # fmt: skip
    await app(scope, receive, send)  # type: ignore[arg-type]
    return status


def test_the_console_passes_the_csv_on_as_it_arrives_instead_of_reading_it_all_first() -> None:
    """The service sends its second row only once the browser has received the first: a console that read the
    whole body before answering would wait forever (here: fail after a few seconds)."""
    seen: list[httpx.Request] = []
    received: list[bytes] = []
    state: dict[str, asyncio.Event] = {}

    async def held_back() -> AsyncIterator[bytes]:
        yield ROWS[0]
        await state["browser_has_first_row"].wait()
        yield ROWS[1]
        yield ROWS[2]

    def on_body(chunk: bytes) -> None:
        received.append(chunk)
        if ROWS[0] in b"".join(received):
            state["browser_has_first_row"].set()

    with console(upstream(seen, held_back)) as (client, _, idp):  # type: ignore[arg-type]
        sign_in(client, idp, "fiona", "ops")
        cookie = _cookie_header(client)
        app = client.app

        async def go() -> int:
            state["browser_has_first_row"] = asyncio.Event()
            async with asyncio.timeout(5):
                return await _asgi_get(app, "/exports/ledger.csv", "since=2026-01-01&through=2026-01-31", cookie,
                                       on_body)  # fmt: skip

        status = asyncio.run(go())
    assert status == 200
    assert b"".join(received) == b"".join(ROWS)
    assert len([c for c in received if c]) >= 2  # more than one body message: passed on as it came


def test_a_player_downloads_their_own_history_from_the_wallet_never_naming_a_player() -> None:
    seen: list[httpx.Request] = []
    with console(upstream(seen)) as (client, _, idp):  # type: ignore[arg-type]
        sign_in(client, idp, "player-1", "player")
        response = client.get("/wallet/history.csv")
        dated = client.get("/wallet/history.csv?since=2026-01-01&through=2026-01-31")
    assert response.status_code == 200
    assert response.content == b"".join(ROWS)
    today = datetime.now(UTC).date()
    first = today - timedelta(days=364)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="my-history-{first.isoformat()}-to-{today.isoformat()}.csv"'
    )
    assert str(seen[0].url).split("?")[0] == "http://rewards.test/v1/me/history.csv"  # never a player id
    assert parse_qs(seen[0].url.query.decode()) == {  # rewards wants a period: the last twelve months
        "since": [f"{first.isoformat()}T00:00:00Z"],
        "until": [f"{(today + timedelta(days=1)).isoformat()}T00:00:00Z"],
    }
    assert seen[0].headers["authorization"] == "Bearer token-of-player-1"
    assert dated.headers["content-disposition"] == 'attachment; filename="my-history-2026-01-01-to-2026-01-31.csv"'
    assert parse_qs(seen[1].url.query.decode()) == {
        "since": ["2026-01-01T00:00:00Z"],
        "until": ["2026-02-01T00:00:00Z"],
    }


def test_the_wallet_offers_the_download_and_staff_cannot_use_the_players_address() -> None:
    apis = FakeApis()
    apis.on("GET", "rewards", "/wallets/player-1", {"player_id": "player-1", "balances": [], "receivables": []})
    apis.on("GET", "rewards", "/wallets/player-1/transactions", {"items": [], "next_cursor": None})
    apis.on("GET", "rewards", "/wallets/player-1/claims", {"items": []})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "player-1", "player")
        assert 'href="/wallet/history.csv"' in client.get("/wallet").text
    with console(FakeApis()) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        assert client.get("/wallet/history.csv").status_code == 403


def test_a_run_that_failed_is_said_as_an_error_with_why() -> None:
    apis = FakeApis()
    apis.on("POST", "payouts", f"{RECON}/runs", run("run-9", "ton", state="failed", error="toncenter: rate_limited"))
    apis.on("GET", "payouts", f"{RECON}/runs", {"runs": []})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client, "/reconciliation")
        shown = client.post(
            "/reconciliation/runs",
            data={"_csrf_token": token, "provider": "ton", "since": "2026-11-25T16:00", "until": "2026-11-25T17:00"},
        ).text
    assert 'class="flash error" role="alert">Run run-9 of ton failed' in shown
    assert "Error: toncenter: rate_limited" in shown


@pytest.mark.parametrize(
    ("since", "until", "words"),
    [
        ("2026-11-25T16:00:00Z", "2026-11-25T17:00:00Z", "2026-11-25 16:00 → 17:00 UTC"),
        ("2026-11-25T00:00:00+00:00", "2026-11-26T00:00:00+00:00", "2026-11-25 00:00 → 2026-11-26 00:00 UTC"),
        ("2026-11-25T17:00:00+01:00", "2026-11-25T18:00:00+01:00", "2026-11-25 16:00 → 17:00 UTC"),
        ("soon", None, "soon → "),
    ],
)
def test_a_runs_window_reads_as_people_read_it(since: str, until: str | None, words: str) -> None:
    assert window_words(since, until) == words
