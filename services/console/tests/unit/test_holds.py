"""Held claims: why each was held in words, release (optional reason) and reject (reason required), staff only.

The fake answers have the rewards service's shapes: `GET /holds` is a list of `Claim.view()` (domain/claims.py)."""

from __future__ import annotations

from typing import Any

import pytest
from console_fakes import FakeApis, console, csrf, sign_in
from markupsafe import escape

from prizeflow_console.application.ports import ApiProblem
from prizeflow_contracts.events.rewards import HoldCode
from prizeflow_contracts.holds import CLAIM_HOLD_KINDS

CLAIM = "cl-0b7f6a52-6f0e-4d0c-8d43-3f2a1c9e7b10"
ADDRESS = "GBRPYHIL2CI3FNQ4BXLFMNDLFJUNPU2HY3ZMFSHONUCEOASW7QC7OX2H"


def held(claim_id: str = CLAIM, **overrides: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "claim_id": claim_id,
        "player_id": "player-9",
        "asset": "USDC",
        "amount": 150 * 10_000_000,
        "destination": {"type": "stellar_account", "address": ADDRESS, "memo": None},
        "status": "held",
        "hold_code": "new_destination",
        "hold_detail": "the payout destination is new (cooldown)",
        "rejection_code": None,
        "payout_request_id": "pr-9",
        "payout_id": None,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    return {**view, **overrides}


HELD = [
    held(),
    held("cl-2", hold_code="risk_score", hold_detail="the game flagged this player"),
    held("cl-3", hold_code="rejection_rate", hold_detail="3 of the last 4 claims failed"),
    held("cl-4", hold_code="velocity", hold_detail="5 claims in the velocity window"),
    held("cl-5", hold_code="amount_over_threshold", hold_detail="above the review threshold 2000000000"),
]


def rewards(claims: list[dict[str, Any]] | ApiProblem = HELD) -> FakeApis:
    apis = FakeApis()
    apis.on("GET", "rewards", "/holds", claims)
    return apis


def test_holds_say_why_each_claim_was_held_with_player_amount_masked_destination_and_age() -> None:
    apis = rewards()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/holds")
    assert response.status_code == 200
    html = response.text
    for code in ("new_destination", "risk_score", "rejection_rate", "velocity", "amount_over_threshold"):
        assert escape(CLAIM_HOLD_KINDS[HoldCode(code)].label) in html
    assert "3 of the last 4 claims failed" in html
    assert "player-9" in html
    assert "150.0000000 USDC" in html
    assert "GBRP…OX2H" in html
    assert ADDRESS not in html
    assert " d</td>" in html  # age in days
    assert 'class="stack"' in html
    assert html.count('name="_csrf_token"') >= 2 * len(HELD)
    assert [(c.path, c.query, c.token) for c in apis.calls] == [("/holds", {"limit": 100}, "token-of-olivia")]


def test_a_reject_reason_is_required_by_the_form_and_a_release_reason_is_not() -> None:
    with console(rewards([held()])) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        html = client.get("/holds").text
    assert '<input id="reject-reason-1" name="reason" required' in html
    assert '<input id="release-reason-1" name="reason" maxlength' in html
    assert '<label for="reject-reason-1">' in html
    assert '<label for="release-reason-1">' in html


def test_no_held_claim_and_a_failing_rewards_are_told_apart() -> None:
    with console(rewards([])) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        assert "No claim is held for review." in client.get("/holds").text
    down = ApiProblem(503, "service_unavailable", "Service unavailable", "rewards did not answer", "rewards")
    with console(rewards(down)) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        html = client.get("/holds").text
    assert "rewards: Service unavailable — rewards did not answer (service_unavailable)" in html
    assert "No claim is held" not in html


@pytest.mark.parametrize(("typed", "body"), [("looks fine", {"reason": "looks fine"}), ("  ", {})])
def test_release_posts_its_optional_reason_with_the_viewers_token(typed: str, body: dict[str, str]) -> None:
    apis = rewards()
    apis.on("POST", "rewards", f"/holds/{CLAIM}/release", {**held(), "status": "approved"})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client, "/holds")
        response = client.post(
            f"/holds/{CLAIM}/release", data={"reason": typed, "_csrf_token": token}, follow_redirects=False
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/holds"
        shown = client.get("/holds").text
    posted = [(c.method, c.service, c.path, c.token, c.body) for c in apis.calls if c.method == "POST"]
    assert posted == [("POST", "rewards", f"/holds/{CLAIM}/release", "token-of-olivia", body)]
    assert f"Released claim {CLAIM}" in shown


def test_reject_posts_its_reason() -> None:
    apis = rewards()
    apis.on("POST", "rewards", f"/holds/{CLAIM}/reject", {**held(), "status": "rejected"})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/holds")
        shown = client.post(f"/holds/{CLAIM}/reject", data={"reason": "mule account", "_csrf_token": token}).text
    posted = [(c.path, c.token, c.body) for c in apis.calls if c.method == "POST"]
    assert posted == [(f"/holds/{CLAIM}/reject", "token-of-adam", {"reason": "mule account"})]
    assert f"Rejected claim {CLAIM}" in shown


@pytest.mark.parametrize("reason", ["", "   ", "x" * 1001])
def test_reject_without_a_usable_reason_is_refused_by_the_handler(reason: str) -> None:
    apis = rewards()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client, "/holds")
        shown = client.post(f"/holds/{CLAIM}/reject", data={"reason": reason, "_csrf_token": token}).text
    assert not [c for c in apis.calls if c.method == "POST"]
    assert f"Say why you reject claim {CLAIM}" in shown


def test_a_refusal_by_rewards_is_shown_as_an_error() -> None:
    apis = rewards()
    refused = ApiProblem(409, "illegal_transition", "Conflict", f"claim {CLAIM} is approved, not held", "rewards")
    apis.on("POST", "rewards", f"/holds/{CLAIM}/release", refused)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        token = csrf(client, "/holds")
        shown = client.post(f"/holds/{CLAIM}/release", data={"reason": "", "_csrf_token": token}).text
    error = f"Conflict: claim {CLAIM} is approved, not held (illegal_transition)"
    assert f'<p class="flash error" role="alert">{error}</p>' in shown


@pytest.mark.parametrize(("user", "roles"), [("player-9", ("player",)), ("alice", ("approver",))])
def test_holds_are_staff_only(user: str, roles: tuple[str, ...]) -> None:
    apis = rewards()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, user, *roles)
        assert client.get("/holds").status_code == 403
        token = csrf(client, "/")
        response = client.post(f"/holds/{CLAIM}/release", data={"reason": "", "_csrf_token": token})
        assert response.status_code == 403
    assert not apis.calls
