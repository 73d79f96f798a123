"""Approvals queue and payout review: who sees the decision forms, what is posted, and refusals shown as they are.

The fake answers have the payouts service's shapes (entrypoints/http.py `summary`: every column of the payouts
row but the lease token and the request hash; the detail adds history, attempts and approvals) and the rewards
service's claim view (domain/claims.py `Claim.view`)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from console_fakes import Call, FakeApis, console, csrf, sign_in
from markupsafe import escape

from prizeflow_console.application.approvals import ApprovalQueue, QueueFilter
from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.domain.review import age, required_approvals, why_not_decide
from prizeflow_console.domain.viewer import Viewer
from prizeflow_contracts.events.rewards import HoldCode
from prizeflow_contracts.holds import CLAIM_HOLD_KINDS, claim_hold_label

PAYOUT = "po-0123456789abcdef0123456789abcdef"
CLAIM = "cl-6f1c1e0e-2b7a-4c55-9a43-0b8f1d1c2e3f"
ADDRESS = "success:player-7-full-destination"
DETAIL = f"/payouts/{PAYOUT}"


def payout(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": PAYOUT,
        "payout_request_id": "pr-1",
        "idempotency_key": f"{CLAIM}:payout",
        "claim_id": CLAIM,
        "player_id": "player-7",
        "requested_by": "olivia",
        "asset": "USDC",
        "amount": 1_000 * 10_000_000,
        "destination_type": "sandbox",
        "destination_address": ADDRESS,
        "destination_memo": None,
        "provider_type": "sandbox",
        "provider_name": "sandbox",
        "state": "pending_approval",
        "approval_policy": "dual",
        "correlation_id": "round-42",
        "cause_event_id": "4a3c2f9e-0000-4000-8000-000000000001",
        "attempts": 0,
        "max_attempts": 5,
        "available_at": "2026-01-01T00:00:00+00:00",
        "next_attempt_at": None,
        "sync_first": False,
        "lease_owner": None,
        "lease_until": None,
        "next_sync_at": None,
        "sync_polls": 0,
        "provider_ref": None,
        "tx_hash": None,
        "fee_asset": None,
        "fee_amount": None,
        "last_error_code": None,
        "last_error_detail": None,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
        "submitted_at": None,
        "paid_at": None,
        "finished_at": None,
    }
    return {**row, **overrides}


def detail(approvers: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    return {
        **payout(**overrides),
        "history": [
            {
                "from_state": None,
                "to_state": "requested",
                "at": "2026-01-01T00:00:00+00:00",
                "actor": "system",
                "reason": None,
                "error_code": None,
                "attempt": None,
            },
            {
                "from_state": "requested",
                "to_state": "pending_approval",
                "at": "2026-01-01T00:00:00+00:00",
                "actor": "system",
                "reason": "dual approval",
                "error_code": None,
                "attempt": None,
            },
        ],
        "attempts": [],
        "approvals": [
            {
                "approver_id": a,
                "decided_at": "2026-01-01T00:01:00+00:00",
                "reason": "checked",
                "correlation_id": "round-42",
            }
            for a in approvers
        ],
    }


def claim(**overrides: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "claim_id": CLAIM,
        "player_id": "player-7",
        "asset": "USDC",
        "amount": 1_000 * 10_000_000,
        "destination": {"type": "sandbox", "address": ADDRESS, "memo": None},
        "status": "approved",
        "hold_code": "new_destination",
        "hold_detail": "the payout destination is new (cooldown)",
        "rejection_code": None,
        "payout_request_id": "pr-1",
        "payout_id": PAYOUT,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    return {**view, **overrides}


def platform(approvers: tuple[str, ...] = (), **overrides: Any) -> FakeApis:
    apis = FakeApis()
    apis.on("GET", "payouts", "/payouts", {"items": [payout(**overrides)], "limit": 100, "offset": 0})
    apis.on("GET", "payouts", DETAIL, detail(approvers, **overrides))
    apis.on("GET", "rewards", f"/claims/{CLAIM}", claim())
    return apis


def decision_forms(html: str) -> tuple[bool, bool]:
    return f'action="/approvals/{PAYOUT}/approve"' in html, f'action="/approvals/{PAYOUT}/reject"' in html


# -- the queue ---------------------------------------------------------------------------------------------------


def test_the_queue_shows_amount_player_provider_masked_destination_progress_and_the_claims_hold() -> None:
    apis = platform(approvers=("alice",))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/approvals?asset=USDC&provider=sandbox&player_id=player-7")
    assert response.status_code == 200
    html = response.text
    assert "1,000.0000000 USDC" in html
    assert "player-7" in html
    assert 'data-label="Provider">sandbox<' in html
    assert "succ…tion" in html  # masked
    assert ADDRESS not in html  # never the whole destination
    assert "1 of 2" in html
    assert "(alice)" in html
    assert escape(CLAIM_HOLD_KINDS[HoldCode.NEW_DESTINATION].label) in html
    assert "Requested by olivia, not by the player" in html
    assert 'class="stack"' in html  # one card per row at phone width
    assert "you see the queue read-only" in html  # ops never decide
    listed = next(c for c in apis.calls if c.path == "/payouts")
    assert listed.query == {
        "state": "pending_approval",
        "provider": "sandbox",
        "asset": "USDC",
        "player_id": "player-7",
        "limit": 100,
    }
    assert listed.token == "token-of-olivia"


def test_an_approver_sees_the_claims_hold_and_the_payouts_own_signals() -> None:
    apis = platform(last_error_code="provider_unavailable")
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        html = client.get("/approvals").text
    assert "An earlier attempt failed: provider_unavailable" in html
    assert [c.token for c in apis.calls if c.service == "rewards"] == ["token-of-alice"]


def test_a_failing_lookup_is_shown_on_its_row_and_the_queue_still_renders() -> None:
    apis = platform()
    problem = ApiProblem(503, "service_unavailable", "Service unavailable", "rewards did not answer", "rewards")
    apis.on("GET", "rewards", f"/claims/{CLAIM}", problem)
    apis.on("GET", "payouts", DETAIL, ApiProblem(500, "internal_error", "Internal Server Error", "boom", "payouts"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        response = client.get("/approvals")
    assert response.status_code == 200
    assert PAYOUT in response.text
    assert "Could not read from rewards: Service unavailable — rewards did not answer (service_unavailable)" in (
        response.text
    )
    assert "Could not read from payouts" in response.text
    assert "unknown" in response.text  # approvals so far could not be read


def test_the_list_failing_is_said_not_shown_as_an_empty_queue() -> None:
    apis = FakeApis()
    apis.on("GET", "payouts", "/payouts", ApiProblem(503, "service_unavailable", "Unavailable", "down", "payouts"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        html = client.get("/approvals").text
    assert "payouts: Unavailable — down (service_unavailable)" in html
    assert "No payout is waiting" not in html


def test_a_bad_filter_is_refused_next_to_its_field_without_asking_payouts() -> None:
    apis = platform()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        response = client.get("/approvals?asset=SP&player_id=no%20spaces")
    assert response.status_code == 400
    assert 'id="f-asset-error"' in response.text
    assert 'id="f-player-error"' in response.text
    assert not apis.calls


def test_lookups_run_concurrently() -> None:
    """Every row's lookups are in flight together (bounded), not one after another: the first lookup answers only
    once another one has started, which a one-at-a-time queue never reaches (it would time out)."""
    two_in_flight = asyncio.Event()
    in_flight = 0

    class Gated(FakeApis):
        async def get(self, service: str, path: str, *, token: str, query: Any = None) -> Any:
            nonlocal in_flight
            if path == "/payouts":
                items = [payout(id=f"po-{i}", claim_id=f"cl-{i}") for i in range(6)]
                return {"items": items, "limit": 100, "offset": 0}
            in_flight += 1
            if in_flight >= 2:
                two_in_flight.set()
            await asyncio.wait_for(two_in_flight.wait(), timeout=5)
            return detail() if service == "payouts" else claim()

    queue = asyncio.run(ApprovalQueue(Gated())(QueueFilter(), token="t", with_claims=True))
    assert len(queue.reviews) == 6
    assert all(r.approved_by == [] and r.claim is not None for r in queue.reviews)


# -- one payout: who may decide ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "roles", "approvers", "sentence"),
    [
        ("player-7", ("approver", "player"), (), "This payout pays you"),
        ("olivia-approver", ("approver",), (), "You asked for this payout"),
        ("alice", ("approver",), ("alice",), "waits for a second approver"),
        ("olivia", ("ops",), (), "only approvers decide"),
        ("adam", ("admin",), (), "only approvers decide"),
    ],
)
def test_no_decision_forms_for_the_player_the_requester_an_approver_again_or_staff(
    user: str, roles: tuple[str, ...], approvers: tuple[str, ...], sentence: str
) -> None:
    apis = platform(approvers=approvers, requested_by="olivia-approver")
    with console(apis) as (client, _, idp):
        sign_in(client, idp, user, *roles)
        response = client.get(f"/approvals/{PAYOUT}")
    assert response.status_code == 200
    assert decision_forms(response.text) == (False, False)
    assert ">Approve</button>" not in response.text
    assert sentence in response.text


def test_a_second_approver_gets_approve_and_reject_with_required_reasons() -> None:
    apis = platform(approvers=("alice",))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "bob", "approver")
        html = client.get(f"/approvals/{PAYOUT}").text
    assert decision_forms(html) == (True, True)
    for action in ("approve", "reject"):
        labelled = (
            rf'<label for="{action}-reason">[^<]+</label>\s*<textarea id="{action}-reason" name="reason" required'
        )
        assert re.search(labelled, html)
    assert "1 of 2" in html
    assert "checked" in html  # alice's reason, in the approvals table
    assert "dual approval" in html  # history
    assert ADDRESS not in html


def test_a_payout_no_longer_pending_offers_nothing_to_decide() -> None:
    apis = platform(state="approved", approvers=("alice", "bob"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "carol", "approver")
        html = client.get(f"/approvals/{PAYOUT}").text
    assert decision_forms(html) == (False, False)
    assert "nothing left to decide" in html


def test_an_unknown_payout_shows_the_services_problem() -> None:
    apis = FakeApis()
    apis.on(
        "GET", "payouts", "/payouts/po-x", ApiProblem(404, "payout_not_found", "Not Found", "no payout po-x", "payouts")
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        response = client.get("/approvals/po-x")
    assert response.status_code == 404
    assert "no payout po-x (payout_not_found)" in response.text


# -- deciding -----------------------------------------------------------------------------------------------------


def test_approve_posts_the_reason_with_the_viewers_token_and_says_a_second_approver_is_needed() -> None:
    apis = platform()
    apis.on("POST", "payouts", f"{DETAIL}/approve", {"payout_id": PAYOUT, "state": "pending_approval"})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "alice", "approver")
        token = csrf(client, f"/approvals/{PAYOUT}")
        data = {"reason": "  checked the player  ", "_csrf_token": token}
        response = client.post(f"/approvals/{PAYOUT}/approve", data=data, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/approvals/{PAYOUT}"
        shown = client.get(f"/approvals/{PAYOUT}").text
    posted = [c for c in apis.calls if c.method == "POST"]
    reason = {"reason": "checked the player"}
    assert posted == [Call("POST", "payouts", f"{DETAIL}/approve", "token-of-alice", body=reason, headers=None)]
    assert "Approved: the payout waits for a second approver." in shown


def test_the_final_approval_says_the_payout_goes_on() -> None:
    apis = platform(approvers=("alice",))
    apis.on("POST", "payouts", f"{DETAIL}/approve", {"payout_id": PAYOUT, "state": "approved"})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "bob", "approver")
        token = csrf(client, f"/approvals/{PAYOUT}")
        shown = client.post(f"/approvals/{PAYOUT}/approve", data={"reason": "ok", "_csrf_token": token}).text
    assert "Approved: the payout goes on to its provider." in shown


def test_reject_posts_its_reason() -> None:
    apis = platform()
    apis.on("POST", "payouts", f"{DETAIL}/reject", {"payout_id": PAYOUT, "state": "rejected"})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "bob", "approver")
        token = csrf(client, f"/approvals/{PAYOUT}")
        data = {"reason": "destination looks wrong", "_csrf_token": token}
        shown = client.post(f"/approvals/{PAYOUT}/reject", data=data).text  # follows the 303 to the payout
    posted = [c for c in apis.calls if c.method == "POST"]
    assert [(c.path, c.token, c.body) for c in posted] == [
        (f"{DETAIL}/reject", "token-of-bob", {"reason": "destination looks wrong"})
    ]
    assert "Rejected: the payout will not be paid." in shown


@pytest.mark.parametrize("action", ["approve", "reject"])
@pytest.mark.parametrize("reason", ["", "   ", "x" * 1001])
def test_a_decision_without_a_usable_reason_is_refused_before_any_call(action: str, reason: str) -> None:
    apis = platform()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "bob", "approver")
        token = csrf(client, f"/approvals/{PAYOUT}")
        response = client.post(
            f"/approvals/{PAYOUT}/{action}", data={"reason": reason, "_csrf_token": token}, follow_redirects=False
        )
        assert response.status_code == 303
        shown = client.get(f"/approvals/{PAYOUT}").text
    assert not [c for c in apis.calls if c.method == "POST"]
    assert f"Say why you {action} it" in shown
    assert 'role="alert"' in shown


@pytest.mark.parametrize(
    "problem",
    [
        ApiProblem(
            403, "self_approval", "Forbidden", "nobody decides on a payout they requested or that pays them", "payouts"
        ),
        ApiProblem(
            409, "already_approved", "Conflict", "alice already approved this payout; a second person must", "payouts"
        ),
    ],
)
def test_a_forged_decision_shows_the_services_problem_as_an_error_and_changes_nothing(problem: ApiProblem) -> None:
    """The payout's own player (an approver too) posts an approval the page never offered: payouts refuses it."""
    apis = platform()
    apis.on("POST", "payouts", f"{DETAIL}/approve", problem)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "player-7", "approver", "player")
        token = csrf(client, f"/approvals/{PAYOUT}")
        response = client.post(
            f"/approvals/{PAYOUT}/approve", data={"reason": "mine", "_csrf_token": token}, follow_redirects=False
        )
        assert response.status_code == 303
        shown = client.get(f"/approvals/{PAYOUT}").text
    assert [(c.method, c.path) for c in apis.calls if c.method == "POST"] == [("POST", f"{DETAIL}/approve")]
    assert f'<p class="flash error" role="alert">{problem.title}: {problem.detail} ({problem.code})</p>' in shown
    assert "Approved" not in shown
    assert decision_forms(shown) == (False, False)


def test_ops_may_not_post_a_decision() -> None:
    apis = platform()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client, f"/approvals/{PAYOUT}")
        response = client.post(f"/approvals/{PAYOUT}/approve", data={"reason": "x", "_csrf_token": token})
    assert response.status_code == 403
    assert not [c for c in apis.calls if c.method == "POST"]


def test_a_decision_without_the_csrf_token_is_refused() -> None:
    apis = platform()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "bob", "approver")
        client.get(f"/approvals/{PAYOUT}")
        response = client.post(f"/approvals/{PAYOUT}/approve", data={"reason": "x"})
    assert response.status_code == 403
    assert not [c for c in apis.calls if c.method == "POST"]


def test_a_player_gets_403_on_the_queue_and_a_payout() -> None:
    apis = platform()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "player-7", "player")
        assert client.get("/approvals").status_code == 403
        assert client.get(f"/approvals/{PAYOUT}").status_code == 403
    assert not apis.calls


# -- the domain's words ---------------------------------------------------------------------------------------------


def test_every_hold_code_has_an_explanation_and_an_unknown_one_is_still_named() -> None:
    assert set(CLAIM_HOLD_KINDS) == set(HoldCode)
    assert claim_hold_label("brand_new") == "Held for review (brand_new)."


def test_why_not_decide_agrees_with_may_decide_payout() -> None:
    people = [
        Viewer.of("alice", None, ["approver"]),
        Viewer.of("priya", None, ["approver", "player"]),
        Viewer.of("olivia", None, ["ops"]),
    ]
    for viewer in people:
        for player in ("priya", "p"):
            for requester in ("alice", "olivia", "p"):
                for approved in ((), ("alice",)):
                    may = viewer.may_decide_payout(player_id=player, requested_by=requester, approved_by=approved)
                    why = why_not_decide(viewer, player_id=player, requested_by=requester, approved_by=approved)
                    assert (why is None) == may


def test_required_approvals_and_age() -> None:
    from datetime import UTC, datetime

    assert [required_approvals(p) for p in ("auto", "single", "dual", "quad", None)] == [0, 1, 2, None, None]
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert age("2026-01-01T00:00:00+00:00", now) == "1 d"
    assert age("2026-01-01T23:59:30Z", now) == "30 s"
    assert age("2026-01-01T21:00:00+00:00", now) == "3 h"
    assert age("not a time", now) == ""
