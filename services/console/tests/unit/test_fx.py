"""The FX desk page: each FX account's position, its transfers, the reconciliation's difference and what unpaid
converted claims commit, in the asset's units; reconcile now; staff only.

The fake answers have the rewards service's shape: `GET /admin/fx/positions` (entrypoints/http/fx.py)."""

from __future__ import annotations

from typing import Any

import pytest
from console_fakes import FakeApis, console, csrf, sign_in

from prizeflow_console.application.ports import ApiProblem

POSITIONS: dict[str, Any] = {
    "positions": [
        {"asset": "INR", "ledger_position": -821_613, "booked_position": -821_613, "difference": 0, "committed": -5},
        {"asset": "USD", "ledger_position": 9_851, "booked_position": 9_850, "difference": 1, "committed": 9_850},
    ],
    "reconciliations": [
        {"day": "2026-03-01", "asset": "USD", "ledger_position": 9_851, "booked_position": 9_850, "difference": 1,
         "checked_at": "2026-03-01T00:00:00+00:00"},
    ],
}  # fmt: skip


PROVIDERS: dict[str, Any] = {
    "providers": [
        {"name": "sandbox", "type": "sandbox"},
        {"name": "upi", "type": "upi", "balance": {"read_at": "2026-03-01T10:00:00+00:00", "balances": [
            {"currency": "INR", "available": 150_000_00, "low_below": 200_000_00, "low": True}]}},
        {"name": "upi-2", "type": "upi", "balance": {"read_at": "2026-03-01T10:00:01+00:00",
                                                      "unavailable": "ProviderUnavailableError"}},
    ]
}  # fmt: skip


def rewards() -> FakeApis:
    apis = FakeApis()
    apis.on("GET", "rewards", "/admin/fx/positions", POSITIONS)
    apis.on("GET", "payouts", "/providers", PROVIDERS)
    apis.on("POST", "rewards", "/admin/fx/reconcile", {"positions": POSITIONS["positions"]})
    return apis


def test_the_fx_desk_shows_each_position_in_its_units_and_a_difference_stands_out() -> None:
    apis = rewards()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/fx")
    assert response.status_code == 200
    html = response.text
    assert "-8,216.13 INR" in html
    assert "98.51 USD" in html
    assert "98.50 USD" in html
    assert '<strong class="badge failed">0.01 USD</strong>' in html
    assert "2026-03-01" in html
    assert [(c.service, c.path, c.query) for c in apis.calls] == [
        ("rewards", "/admin/fx/positions", {"days": 14}),
        ("payouts", "/providers", {}),
    ]


def test_the_fx_desk_shows_each_rails_balance_at_its_provider_a_low_one_and_an_unreadable_one() -> None:
    """Issue 47: the upi rail's balance at RazorpayX, read now by payouts, beside its low threshold (below it:
    marked); a rail whose provider cannot answer says so, never a figure; a rail without an account is not listed."""
    apis = rewards()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        html = client.get("/fx").text
    assert '<strong class="badge failed">150,000.00 INR</strong>' in html
    assert "200,000.00 INR" in html
    assert "unreadable</strong> ProviderUnavailableError" in html
    assert ">sandbox<" not in html


def test_the_fx_desk_still_shows_the_positions_when_payouts_cannot_answer() -> None:
    apis = rewards()
    apis.on("GET", "payouts", "/providers", ApiProblem(503, "unavailable", "Service Unavailable", "down", "payouts"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        response = client.get("/fx")
    assert response.status_code == 200
    assert "-8,216.13 INR" in response.text
    assert "Rail balances at the provider" in response.text


def test_reconcile_now_posts_with_the_viewers_token() -> None:
    apis = rewards()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "adam", "admin")
        token = csrf(client, "/fx")
        response = client.post("/fx/reconcile", data={"_csrf_token": token}, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/fx")
    posted = [(c.service, c.path, c.token) for c in apis.calls if c.method == "POST"]
    assert posted == [("rewards", "/admin/fx/reconcile", "token-of-adam")]


@pytest.mark.parametrize(("user", "roles"), [("player-9", ("player",)), ("alice", ("approver",))])
def test_the_fx_desk_is_staff_only(user: str, roles: tuple[str, ...]) -> None:
    apis = rewards()
    with console(apis) as (client, _, idp):
        sign_in(client, idp, user, *roles)
        assert client.get("/fx").status_code == 403
        token = csrf(client, "/")
        assert client.post("/fx/reconcile", data={"_csrf_token": token}).status_code == 403
    assert not apis.calls
