"""The FX desk page: each FX account's position, its transfers, the reconciliation's difference and what unpaid
converted claims commit, in the asset's units; reconcile now; staff only.

The fake answers have the rewards service's shape: `GET /admin/fx/positions` (entrypoints/http/fx.py)."""

from __future__ import annotations

from typing import Any

import pytest
from console_fakes import FakeApis, console, csrf, sign_in

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


def rewards() -> FakeApis:
    apis = FakeApis()
    apis.on("GET", "rewards", "/admin/fx/positions", POSITIONS)
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
    assert [(c.path, c.query) for c in apis.calls] == [("/admin/fx/positions", {"days": 14})]


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
