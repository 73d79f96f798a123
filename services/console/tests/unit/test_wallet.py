"""The player's wallet page over fake rewards answers (the shapes rewards' handlers return): balances with Season
Points apart, history in words, top-ups through the checkout, payout requests and their live status; only ever the
signed-in player's own."""

from __future__ import annotations

import re
from typing import Any

import pytest
from console_fakes import Call, FakeApis, console, csrf, sign_in

from prizeflow_console.application.ports import ApiProblem

PLAYER = "player-1"
STELLAR = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
AT = "2026-03-01T10:00:00+00:00"


def balances(*rows: tuple[str, int, int], receivables: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """GET /wallets/{player}: (asset, balance, reserved) per asset."""
    return {
        "player_id": PLAYER,
        "balances": [
            {"asset": a, "balance": b, "reserved": r, "available": b - r, "incoming_pending": 0} for a, b, r in rows
        ],
        "receivables": receivables or [],
    }


def movement(
    kind: str, asset: str, amount: int, direction: str = "in", *, pending: bool = False, resolves: str | None = None
) -> dict[str, Any]:
    """One item of GET /wallets/{player}/transactions."""
    return {
        "transfer_id": "6f1c7d3e-0000-4000-8000-000000000001",
        "kind": kind,
        "asset": asset,
        "amount": amount,
        "direction": direction,
        "pending": pending,
        "resolves": resolves,
        "business_key": "round-1",
        "created_at": AT,
    }


def claim_view(status: str = "held", *, claim_id: str = "cl-1", player: str = PLAYER, **extra: Any) -> dict[str, Any]:
    """Claim.view() in rewards."""
    return {
        "claim_id": claim_id,
        "player_id": player,
        "asset": "USDC",
        "amount": 15_000_000,
        "destination": {"type": "stellar_account", "address": STELLAR, "memo": None},
        "status": status,
        "hold_code": "risk_score" if status == "held" else None,
        "hold_detail": "the game flagged this player" if status == "held" else None,
        "rejection_code": None,
        "payout_request_id": f"pr-{claim_id}",
        "payout_id": "po-77" if status in {"paid", "approved"} else None,
        "created_at": AT,
        **extra,
    }


def top_up_view(status: str = "created", *, provider: str = "sandbox", adjustments: bool = True) -> dict[str, Any]:
    """TopUp.view() (+ adjustments, as GET /wallets/{p}/top-up-sessions/{id} answers)."""
    url = "https://checkout.stripe.test/c/cs_1" if provider == "stripe" else "http://rewards/sandbox/checkout/sbx_cs_1"
    view: dict[str, Any] = {
        "top_up_id": "tu-1",
        "player_id": PLAYER,
        "asset": "USD",
        "amount": 2_500,
        "provider": provider,
        "status": status,
        "session_ref": "sbx_cs_1" if provider == "sandbox" else "cs_1",
        "url": url,
        "expires_at": "2026-03-02T10:00:00+00:00",
        "created_at": AT,
        "credited_at": AT if status == "credited" else None,
        "credit_transfer_id": None,
    }
    return {**view, "adjustments": []} if adjustments else view


def wallet_apis(
    wallet: dict[str, Any] | None = None,
    history: dict[str, Any] | None = None,
    claims: list[dict[str, Any]] | None = None,
) -> FakeApis:
    apis = FakeApis()
    apis.on("GET", "rewards", f"/wallets/{PLAYER}", wallet or balances(("USDC", 20_000_000, 0)))
    apis.on("GET", "rewards", f"/wallets/{PLAYER}/transactions", history or {"items": [], "next_cursor": None})
    apis.on("GET", "rewards", f"/wallets/{PLAYER}/claims", {"items": claims or []})
    return apis


def posted(apis: FakeApis, method: str = "POST") -> list[Call]:
    return [c for c in apis.calls if c.method == method]


def key_of(text: str, action: str) -> str:
    form = text[text.index(f'action="{action}"') :]
    return re.search(r'name="key" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]


# --- the page -------------------------------------------------------------------------------------------------------


def test_balances_by_asset_with_season_points_apart_and_never_offered_for_payout() -> None:
    apis = wallet_apis(balances(("USDC", 20_000_000, 5_000_000), ("SP", 1_200, 0), ("USD", 0, 0)))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        text = client.get("/wallet").text
    assert "USD Coin (USDC)" in text
    assert "2.0000000 USDC" in text
    assert "0.5000000 USDC" in text
    assert "1.5000000 USDC" in text
    assert "Season Points: 1,200 SP" in text
    assert "cannot be paid out" in text
    options = re.findall(r'<option value="([A-Z]+)"[^>]*>[^<]*available', text)
    assert options == ["USDC"]  # SP is never claimable, USD has nothing available
    # Every read was the signed-in player's own, with their token.
    assert {c.path for c in apis.calls} == {
        f"/wallets/{PLAYER}",
        f"/wallets/{PLAYER}/transactions",
        f"/wallets/{PLAYER}/claims",
    }
    assert {c.token for c in apis.calls} == {f"token-of-{PLAYER}"}


def test_only_season_points_means_no_payout_form_at_all() -> None:
    with console(wallet_apis(balances(("SP", 500, 0)))) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        text = client.get("/wallet").text
    assert 'id="claim-address"' not in text
    assert 'id="claim-amount"' not in text
    assert "Nothing to pay out yet" in text
    assert "Game points cannot be paid out" in text


def test_receivables_are_shown_when_the_player_owes() -> None:
    wallet = balances(("USD", 0, 0), receivables=[{"asset": "USD", "owed": 1_250}])
    with console(wallet_apis(wallet)) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        text = client.get("/wallet").text
    assert "You owe the platform money" in text
    assert "12.50 USD" in text


def test_history_in_words_with_an_older_link_that_carries_the_cursor() -> None:
    history = {
        "items": [
            movement("payout_void", "USDC", 1_000_000, "out", resolves="t-2"),
            movement("payout_post", "USDC", 5_000_000, "out", resolves="t-1"),
            movement("claim_reserve", "USDC", 5_000_000, "out", pending=True),
            movement("reward", "USDC", 20_000_000),
            movement("top_up_credit", "USD", 2_500),
        ],
        "next_cursor": "c2VxOjQy",
    }
    apis = wallet_apis(history=history)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        text = client.get("/wallet").text
        rows = re.findall(r'data-label="What">([^<]+)</td>\s*<td data-label="Amount" class="num">([^<]+)</td>', text)
        assert rows == [
            ("Payout not made", "0.1000000 USDC available again"),
            ("Payout sent", "\u22120.5000000 USDC"),
            ("Payout requested", "0.5000000 USDC set aside"),  # one debit for one payout, never two
            ("Prize won", "+2.0000000 USDC"),
            ("Top-up", "+25.00 USD"),
        ]
        assert 'href="/wallet?cursor=c2VxOjQy#history-h"' in text
        client.get("/wallet?cursor=c2VxOjQy")
    pages = [c.query for c in apis.calls if c.path.endswith("/transactions")]
    assert pages == [{"cursor": None, "limit": 25}, {"cursor": "c2VxOjQy", "limit": 25}]


def test_a_part_rewards_could_not_answer_is_said_and_the_rest_shown() -> None:
    apis = wallet_apis()
    down = ApiProblem(503, "service_unavailable", "Service unavailable", "rewards did not answer; try again", "rewards")
    apis.on("GET", "rewards", f"/wallets/{PLAYER}/transactions", down)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        response = client.get("/wallet")
    assert response.status_code == 200
    assert "rewards did not answer" in response.text
    assert "2.0000000 USDC" in response.text


# --- who may -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [("ops",), ("admin",), ("approver",)])
def test_staff_get_403_on_the_wallet_and_its_actions(roles: tuple[str, ...]) -> None:
    with console(wallet_apis()) as (client, apis, idp):
        sign_in(client, idp, "olivia", *roles)
        assert client.get("/wallet").status_code == 403
        assert client.get("/wallet/claims/cl-1").status_code == 403
        token = csrf(client)
        form = {"_csrf_token": token, "asset": "USD", "amount": "5", "key": "wallet-" + "a" * 32}
        assert client.post("/wallet/top-up", data=form, follow_redirects=False).status_code == 403
        assert apis.calls == []


def test_a_form_without_its_csrf_token_calls_nothing() -> None:
    with console(wallet_apis()) as (client, apis, idp):
        sign_in(client, idp, PLAYER, "player")
        form = {"asset": "USD", "amount": "5", "key": "wallet-" + "a" * 32}
        assert client.post("/wallet/top-up", data=form, follow_redirects=False).status_code == 403
        assert posted(apis) == []


# --- top-ups -------------------------------------------------------------------------------------------------------


def test_a_top_up_posts_minor_units_with_the_forms_key_and_a_double_submit_sends_the_same_key() -> None:
    apis = wallet_apis()
    apis.on(
        "POST", "rewards", f"/wallets/{PLAYER}/top-up-sessions/", {**top_up_view(adjustments=False), "created": True}
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        page = client.get("/wallet").text
        key = key_of(page, "/wallet/top-up")
        assert key != key_of(client.get("/wallet").text, "/wallet/top-up")  # one per rendered form
        token = csrf(client, "/wallet")
        form = {"_csrf_token": token, "asset": "USD", "amount": "25", "key": key}
        first = client.post("/wallet/top-up", data=form, follow_redirects=False)
        second = client.post("/wallet/top-up", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == "/wallet/top-ups/tu-1"
    calls = posted(apis)
    assert [(c.path, c.body, dict(c.headers or {})) for c in calls] == [
        (f"/wallets/{PLAYER}/top-up-sessions/", {"asset": "USD", "amount": 2_500}, {"Idempotency-Key": key})
    ] * 2
    assert {c.token for c in calls} == {f"token-of-{PLAYER}"}


@pytest.mark.parametrize(
    ("amount", "says"),
    [
        ("abc", "enter an amount like 12.50"),
        ("0", "more than zero"),
        ("1.234", "USD has 2 decimal places"),
        ("-5", "enter an amount like 12.50"),
        ("", "enter an amount like 12.50"),
    ],
)
def test_a_bad_top_up_amount_is_a_field_error_and_calls_nothing(amount: str, says: str) -> None:
    with console(wallet_apis()) as (client, apis, idp):
        sign_in(client, idp, PLAYER, "player")
        token = csrf(client, "/wallet")
        key = "wallet-" + "k" * 32
        response = client.post(
            "/wallet/top-up", data={"_csrf_token": token, "asset": "USD", "amount": amount, "key": key}
        )
    assert response.status_code == 400
    assert says in response.text
    assert 'aria-invalid="true" aria-describedby="top_up_amount-error"' in response.text
    assert f'value="{amount}"' in response.text  # what was typed stays
    assert key_of(response.text, "/wallet/top-up") == key  # the same form: the same key
    assert posted(apis) == []


def test_season_points_cannot_be_topped_up_even_by_a_crafted_form() -> None:
    with console(wallet_apis()) as (client, apis, idp):
        sign_in(client, idp, PLAYER, "player")
        token = csrf(client, "/wallet")
        response = client.post(
            "/wallet/top-up", data={"_csrf_token": token, "asset": "SP", "amount": "10", "key": "wallet-" + "k" * 32}
        )
    assert response.status_code == 400
    assert "Choose one of USD, INR" in response.text
    assert posted(apis) == []


def test_a_top_up_rewards_refuses_shows_its_problem_detail_on_the_form() -> None:
    apis = wallet_apis()
    refused = ApiProblem(
        422, "below_minimum", "Unprocessable Entity", "the minimum top-up is 500 USD minor units", "rewards"
    )
    apis.on("POST", "rewards", f"/wallets/{PLAYER}/top-up-sessions/", refused)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        token = csrf(client, "/wallet")
        response = client.post(
            "/wallet/top-up", data={"_csrf_token": token, "asset": "USD", "amount": "1", "key": "wallet-" + "k" * 32}
        )
    assert response.status_code == 422
    assert (
        'role="alert">Unprocessable Entity: the minimum top-up is 500 USD minor units (below_minimum)' in response.text
    )


def test_the_sandbox_checkout_is_paid_with_the_players_token_then_the_status_shows_it() -> None:
    apis = wallet_apis()
    state = {"status": "created"}
    apis.on("GET", "rewards", f"/wallets/{PLAYER}/top-up-sessions/tu-1", lambda _c: top_up_view(state["status"]))

    def complete(call: Call) -> dict[str, Any]:
        state["status"] = "credited" if call.body == {"outcome": "paid"} else "expired"
        return top_up_view(state["status"])

    apis.on("POST", "rewards", "/sandbox/checkout/sbx_cs_1/complete", complete)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        page = client.get("/wallet/top-ups/tu-1").text
        assert "Pay (sandbox)" in page
        assert "Let it expire" in page
        assert "Waiting for payment" in page
        assert 'hx-get="/wallet/top-ups/tu-1" hx-trigger="every 2s"' in page
        token = csrf(client, "/wallet/top-ups/tu-1")
        paid = client.post("/wallet/top-ups/tu-1/sandbox", data={"_csrf_token": token, "outcome": "paid"},
                           follow_redirects=False)  # fmt: skip
        assert paid.headers["location"] == "/wallet/top-ups/tu-1"
        after = client.get("/wallet/top-ups/tu-1").text
    assert "Paid at the sandbox checkout" in after
    assert "The payment arrived and was added to your wallet." in after
    assert "hx-trigger" not in after
    assert "Pay (sandbox)" not in after
    completion = [c for c in apis.calls if c.path.startswith("/sandbox/")]
    assert [(c.body, c.token) for c in completion] == [({"outcome": "paid"}, f"token-of-{PLAYER}")]


def test_letting_the_sandbox_checkout_expire() -> None:
    apis = wallet_apis()
    apis.on("GET", "rewards", f"/wallets/{PLAYER}/top-up-sessions/tu-1", top_up_view())
    apis.on("POST", "rewards", "/sandbox/checkout/sbx_cs_1/complete", top_up_view("expired"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        token = csrf(client, "/wallet/top-ups/tu-1")
        client.post("/wallet/top-ups/tu-1/sandbox", data={"_csrf_token": token, "outcome": "expired"})
    assert [c.body for c in posted(apis)] == [{"outcome": "expired"}]


def test_a_checkout_at_stripe_is_a_link_and_a_check_calls_verify() -> None:
    apis = wallet_apis()
    apis.on("GET", "rewards", f"/wallets/{PLAYER}/top-up-sessions/tu-1", top_up_view(provider="stripe"))
    apis.on(
        "POST", "rewards", f"/wallets/{PLAYER}/top-up-sessions/tu-1/verify", top_up_view("credited", provider="stripe")
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        page = client.get("/wallet/top-ups/tu-1").text
        assert 'href="https://checkout.stripe.test/c/cs_1"' in page
        assert "Pay (sandbox)" not in page
        token = csrf(client, "/wallet/top-ups/tu-1")
        checked = client.post("/wallet/top-ups/tu-1/verify", data={"_csrf_token": token}, follow_redirects=False)
    assert checked.status_code == 303
    assert [(c.path, c.token) for c in posted(apis)] == [
        (f"/wallets/{PLAYER}/top-up-sessions/tu-1/verify", f"token-of-{PLAYER}")
    ]


def test_no_sandbox_completion_for_a_top_up_at_another_provider() -> None:
    apis = wallet_apis()
    apis.on("GET", "rewards", f"/wallets/{PLAYER}/top-up-sessions/tu-1", top_up_view(provider="stripe"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        token = csrf(client, "/wallet/top-ups/tu-1")
        response = client.post("/wallet/top-ups/tu-1/sandbox", data={"_csrf_token": token, "outcome": "paid"})
    assert response.status_code == 404
    assert posted(apis) == []


@pytest.mark.parametrize(
    ("status", "final"), [("created", False), ("credited", True), ("failed", True), ("expired", True)]
)
def test_the_top_up_status_fragment_polls_until_final(status: str, final: bool) -> None:
    apis = wallet_apis()
    apis.on("GET", "rewards", f"/wallets/{PLAYER}/top-up-sessions/tu-1", top_up_view(status))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        response = client.get("/wallet/top-ups/tu-1", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'id="top-up-status"' in response.text
    assert ("hx-trigger" in response.text) is not final
    assert ('id="top-up-actions" class="actions" hx-swap-oob="true"' in response.text) is final


# --- payout requests ------------------------------------------------------------------------------------------------


def claim_form(token: str, **overrides: str) -> dict[str, str]:
    return {
        "_csrf_token": token, "asset": "USDC", "amount": "1.5", "type": "stellar_account", "address": STELLAR,
        "memo": "", "key": "wallet-" + "c" * 32, **overrides,
    }  # fmt: skip


def test_a_payout_request_posts_the_claim_with_the_forms_key_then_shows_its_page() -> None:
    apis = wallet_apis()
    apis.on("POST", "rewards", "/claims/", {**claim_view("approved"), "created": True})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        page = client.get("/wallet").text
        assert "G… followed" not in page
        assert "A Stellar public key" in page
        token = csrf(client, "/wallet")
        form = claim_form(token, key=key_of(page, "/wallet/claim"), memo="tag-1")
        response = client.post("/wallet/claim", data=form, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/wallet/claims/cl-1")
    [call] = posted(apis)
    assert call.path == "/claims/"
    assert call.token == f"token-of-{PLAYER}"
    assert call.body == {
        "asset": "USDC",
        "amount": 15_000_000,
        "destination": {"type": "stellar_account", "address": STELLAR, "memo": "tag-1"},
    }
    assert call.headers == {"Idempotency-Key": form["key"]}


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"asset": "SP", "amount": "10"}, "claim_asset", "Season Points are game points: they cannot be paid out"),
        ({"amount": "0.00000001"}, "claim_amount", "USDC has 7 decimal places"),
        ({"amount": "lots"}, "claim_amount", "enter an amount like 12.50"),
        ({"type": "carrier_pigeon"}, "claim_type", "Choose where to be paid"),
        ({"address": "GABC"}, "claim_address", "That is not a stellar account destination"),
        ({"address": "has space"}, "claim_address", "That is not a stellar account destination"),
        ({"address": ""}, "claim_address", "Enter the destination"),
        ({"memo": "m" * 40}, "claim_memo", "A memo is 1 to 64"),
    ],
)
def test_a_bad_payout_request_is_a_field_error_and_calls_nothing(
    overrides: dict[str, str], field: str, says: str
) -> None:
    with console(wallet_apis()) as (client, apis, idp):
        sign_in(client, idp, PLAYER, "player")
        response = client.post("/wallet/claim", data=claim_form(csrf(client, "/wallet"), **overrides))
    assert response.status_code == 400
    assert says in response.text
    assert f'aria-describedby="{field}-error' in response.text
    assert posted(apis) == []


def test_a_payout_request_rewards_refuses_shows_its_problem_detail() -> None:
    apis = wallet_apis()
    refused = ApiProblem(422, "insufficient_balance", "Unprocessable Entity", "available 1, claimed 2 USDC", "rewards")
    apis.on("POST", "rewards", "/claims/", refused)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        response = client.post("/wallet/claim", data=claim_form(csrf(client, "/wallet")))
    assert response.status_code == 422
    assert "available 1, claimed 2 USDC (insufficient_balance)" in response.text
    assert f'value="{STELLAR}"' in response.text  # the form keeps what was typed


@pytest.mark.parametrize(
    ("status", "words", "final"),
    [
        ("held", "Under review", False),
        ("approved", "Being paid", False),
        ("paid", "The money was sent to your destination.", True),
        ("rejected", "This request was not approved. The amount is back in your wallet.", True),
        ("voided", "Returned to your wallet", True),
        ("returned", "Returned by the provider", True),
    ],
)
def test_the_claim_status_fragment_for_each_state(status: str, words: str, final: bool) -> None:
    apis = wallet_apis()
    apis.on("GET", "rewards", "/claims/cl-1", claim_view(status))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        fragment = client.get("/wallet/claims/cl-1", headers={"HX-Request": "true"})
        full = client.get("/wallet/claims/cl-1")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert words in fragment.text
    polling = 'hx-get="/wallet/claims/cl-1" hx-trigger="every 2s" hx-swap="outerHTML"'
    assert (polling in fragment.text) is not final
    assert (polling in full.text) is not final
    assert ('hx-swap-oob="true"' in fragment.text) is final
    for text in (fragment.text, full.text):  # never why it was held, never the whole destination
        assert "risk_score" not in text
        assert "flagged" not in text
        assert STELLAR not in text
    assert "GAAZ…CWN7" in full.text


@pytest.mark.parametrize(("hold_code", "linked"), [("kyc_required", True), ("risk_score", False), ("brand_new", False)])
def test_a_claim_waiting_for_the_players_own_verification_links_to_it(hold_code: str, linked: bool) -> None:
    apis = wallet_apis(claims=[claim_view(hold_code=hold_code)])
    apis.on("GET", "rewards", "/claims/cl-1", claim_view(hold_code=hold_code))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        wallet = client.get("/wallet").text
        claim = client.get("/wallet/claims/cl-1").text
    for text in (wallet, claim):
        assert ('<a href="/wallet/verification">Verify your identity</a>' in text) is linked
        assert hold_code not in text  # never why it was held


def test_another_players_claim_is_not_found_and_nothing_of_it_shows() -> None:
    apis = wallet_apis()
    forbidden = ApiProblem(
        403, "forbidden", "Forbidden", "a player may only read their own wallet and claims", "rewards"
    )
    apis.on("GET", "rewards", "/claims/cl-theirs", forbidden)
    apis.on(
        "GET",
        "rewards",
        "/claims/cl-gone",
        ApiProblem(404, "claim_not_found", "Not Found", "no claim cl-gone", "rewards"),
    )
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        theirs = client.get("/wallet/claims/cl-theirs")
        gone = client.get("/wallet/claims/cl-gone")
        polled = client.get("/wallet/claims/cl-theirs", headers={"HX-Request": "true"})
    assert theirs.status_code == gone.status_code == 404
    assert "You have no such payout request." in theirs.text
    assert theirs.text.replace("cl-theirs", "cl-gone") == gone.text  # the same answer: existence is not told
    assert "forbidden" not in theirs.text.lower()
    assert "cl-theirs" not in theirs.text
    assert "hx-trigger" not in polled.text  # a poll for it stops


def test_a_player_who_is_staff_too_sees_only_their_own_claims_in_their_wallet() -> None:
    apis = wallet_apis()
    apis.on("GET", "rewards", "/claims/cl-2", claim_view("paid", claim_id="cl-2", player="someone-else"))
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player", "ops")
        response = client.get("/wallet/claims/cl-2")
    assert response.status_code == 404
    assert "someone-else" not in response.text
    assert "15.0000000" not in response.text


def test_the_wallet_lists_recent_payout_requests_masked_with_their_status() -> None:
    claims = [claim_view("paid", claim_id="cl-2"), claim_view("held")]
    with console(wallet_apis(claims=claims)) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        text = client.get("/wallet").text
    assert 'href="/wallet/claims/cl-2"' in text
    assert 'href="/wallet/claims/cl-1"' in text
    assert "GAAZ…CWN7" in text
    assert STELLAR not in text
    assert text.index("Paid") < text.index("Under review")


@pytest.mark.parametrize(
    ("path", "name"), [("/wallet/claims/a%20b", "claim_id"), ("/wallet/top-ups/%2E%2E", "top_up_id")]
)
def test_a_malformed_id_is_refused_naming_it_before_any_call(path: str, name: str) -> None:
    with console(wallet_apis()) as (client, apis, idp):
        sign_in(client, idp, PLAYER, "player")
        response = client.get(path)
    assert response.status_code == 400
    assert name in response.text
    assert apis.calls == []


def test_the_sandbox_is_offered_as_a_destination_in_the_dev_profile_only() -> None:
    for dev, offered in ((True, True), (False, False)):
        with console(wallet_apis(), dev=dev) as (client, _, idp):
            sign_in(client, idp, PLAYER, "player")
            assert ('value="sandbox"' in client.get("/wallet").text) is offered
