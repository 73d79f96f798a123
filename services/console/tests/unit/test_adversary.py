"""The console attacked from the browser's side: forged and tampered requests, hostile data in the services' answers,
cookies planted from a sibling host, amounts typed to mislead. Each test names the attack it stands for; the ones
that held from the start stay as guards."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from console_fakes import TIMEOUTS, FakeApis, FakeIdp, MemorySessions, console, csrf, sign_in
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry

from prizeflow_console.application.login import SignInFlow
from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.domain.money import AmountError, parse_major
from prizeflow_console.entrypoints.http import create_app

PLAYER = "player-1"
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "referrer-policy", "cache-control")


def wallet_apis(player: str = PLAYER) -> FakeApis:
    apis = FakeApis()
    apis.on("GET", "rewards", f"/wallets/{player}", {"player_id": player, "balances": [], "receivables": []})
    apis.on("GET", "rewards", f"/wallets/{player}/transactions", {"items": [], "next_cursor": None})
    apis.on("GET", "rewards", f"/wallets/{player}/claims", {"items": []})
    return apis


# --- amounts: what a person types is what moves, or nothing does ------------------------------------------------


@pytest.mark.parametrize("typed", ["1,50", "1,5", "12,5", "1,0000", ",100", "1,000,00", "1,,000"])
def test_a_comma_is_never_dropped_into_a_bigger_amount(typed: str) -> None:
    """`1,50` (a decimal comma, as half of Europe types it) was read as 150.00: a top-up charged 100 times over, a
    payout of 100 times the amount. A comma may only group thousands."""
    with pytest.raises(AmountError):
        parse_major(typed, "USD")


# Arabic-Indic 12, fullwidth 12, mathematical bold 12, and a mix: written as escapes (they look like ASCII).
@pytest.mark.parametrize("typed", ["\u0661\u0662", "\uff11\uff12", "\U0001d7cf\U0001d7d0", "1\u0662.50"])
def test_only_ascii_digits_make_an_amount(typed: str) -> None:
    """Digits of other scripts (`\\d` matches them, `int()` reads them) are not what the form shows back."""
    with pytest.raises(AmountError):
        parse_major(typed, "USD")


@pytest.mark.parametrize(
    ("typed", "minor"), [("1,000.50", 100_050), ("12", 1_200), (" 12.5 ", 1_250), ("1,234,567", 123_456_700)]
)
def test_thousands_separators_and_plain_amounts_still_read_as_typed(typed: str, minor: int) -> None:
    assert parse_major(typed, "USD") == minor


@pytest.mark.parametrize("typed", ["1e3", "-1", "0x10", "1_000", "12.345", "92233720368547758.08", "∞", "NaN"])
def test_exponents_signs_other_notations_extra_decimals_and_overflow_are_refused(typed: str) -> None:
    with pytest.raises(AmountError):
        parse_major(typed, "USD")


def test_a_top_up_of_one_comma_fifty_is_refused_not_sent_as_one_hundred_fifty() -> None:
    with console(wallet_apis()) as (client, apis, idp):
        sign_in(client, idp, PLAYER, "player")
        token = csrf(client, "/wallet")
        response = client.post(
            "/wallet/top-up", data={"_csrf_token": token, "asset": "USD", "amount": "1,50", "key": "wallet-" + "k" * 32}
        )
    assert response.status_code == 400
    assert [c for c in apis.calls if c.method == "POST"] == []


# --- every answer carries the security headers, error pages too ------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "path", "status"),
    [
        (("player",), "/approvals", 403),  # ForbiddenPageError's page
        (("player",), "/no-such-page", 404),
        (("ops",), "/dead-letters/nobody/1", 404),  # NotFoundException raised by a handler
        (("player",), "/wallet/claims/%21bad", 400),  # a path id that is none, refused before the handler
        (("player",), "/auth/login?login_hint=%20bad", 400),  # a validation error
    ],
)
def test_error_pages_carry_the_security_headers(roles: tuple[str, ...], path: str, status: int) -> None:
    """Pages rendered by exception handlers bypassed `after_request`: no CSP, frameable, cacheable (with the
    person's name and a CSRF token in them), and a Referer carrying their URL."""
    with console() as (client, _, idp):
        sign_in(client, idp, PLAYER, *roles)
        response = client.get(path, follow_redirects=False)
    assert response.status_code == status
    missing = [h for h in SECURITY_HEADERS if h not in response.headers]
    assert missing == []
    assert response.headers["cache-control"] == "no-store"


def test_a_refused_callback_never_echoes_the_code_into_the_page() -> None:
    """Litestar's validation detail is the request's URL: the authorization code ended up in the HTML."""
    with console() as (client, _, _idp):
        client.get("/auth/login", follow_redirects=False)
        response = client.get(f"/auth/callback?code=CODE-SECRET-123&state={'s' * 600}", follow_redirects=False)
    assert response.status_code == 400
    assert "CODE-SECRET-123" not in response.text


def test_the_callback_shows_only_error_codes_it_knows() -> None:
    """`error` is whatever the link says: `?error=Your account is locked, call +1 555…` was shown as the identity
    provider's words on the console's own page."""
    with console() as (client, _, _idp):
        client.get("/auth/login", follow_redirects=False)
        spoof = "Your account is locked. Call +1-555-0100 now"
        response = client.get("/auth/callback", params={"error": spoof, "state": "x"}, follow_redirects=False)
        known = client.get("/auth/callback", params={"error": "access_denied"}, follow_redirects=False)
    assert response.status_code == 400
    assert "555-0100" not in response.text
    assert "cancelled" in known.text


# --- cookies: none can be planted from a sibling host ------------------------------------------------------------


@contextmanager
def https_console() -> Iterator[tuple[TestClient[Any], FakeIdp]]:
    idp = FakeIdp()
    app = create_app(
        sign_in=SignInFlow(idp), idp=idp, apis=wallet_apis(), session_secret="s" * 40,
        public_url="https://console.test", idp_origin="https://idp.test", secure_cookies=True, max_age_s=3600,
        registry=CollectorRegistry(), sessions=MemorySessions(), timeouts=TIMEOUTS,
    )  # fmt: skip
    with TestClient(app, base_url="https://console.test") as client:
        yield client, idp


def test_over_https_the_session_and_csrf_cookies_are_host_only_prefixed() -> None:
    """Without `__Host-`, a sibling host (any *.example.com) can set `pf_console` to the attacker's own signed-in
    session (the victim then tops up the attacker's wallet) or `pf_csrf` to a token it knows (CSRF)."""
    with https_console() as (client, idp):
        responses = [client.get("/auth/login", follow_redirects=False)]
        responses.append(client.get(f"/auth/callback?code=c&state={idp.state}", follow_redirects=False))
        responses.append(client.get("/"))
        cookies = [h for r in responses for k, h in r.headers.multi_items() if k == "set-cookie"]
    names = {c.split("=", 1)[0] for c in cookies}
    assert names, "sign-in sets cookies"
    assert all(n.startswith("__Host-") for n in names), names
    for cookie in cookies:
        attrs = cookie.lower()
        assert "secure" in attrs
        assert "path=/" in attrs
        assert "domain=" not in attrs


# --- ids typed into console URLs never become other routes of a service -------------------------------------------


@pytest.mark.parametrize(
    ("roles", "method", "path"),
    [
        (("approver",), "GET", "/approvals/%2E%2E"),
        (("approver",), "POST", "/approvals/%2E%2E/approve"),
        (("approver",), "POST", "/approvals/%2E/reject"),
        (("ops",), "POST", "/holds/%2E%2E/release"),
        (("ops",), "POST", "/holds/%2E/reject"),
        # Unchecked before: `/campaigns/./fund` became `/campaigns/fund`, `/rounds/../void` `/void`
        (("admin",), "GET", "/campaigns/%2E%2E"),
        (("admin",), "POST", "/campaigns/%2E/fund"),
        (("admin",), "POST", "/campaigns/%2E%2E/pause"),
        (("admin",), "POST", "/campaigns/%2E%2E/held/release"),
        (("admin",), "GET", "/rounds/%2E%2E"),
        (("admin",), "POST", "/rounds/%2E%2E/void"),
        (("admin",), "POST", "/rounds/%2E/resolve"),
    ],
)
def test_a_dot_segment_id_is_refused_before_any_call(roles: tuple[str, ...], method: str, path: str) -> None:
    """`.`/`..` quote to themselves and httpx removes dot segments: `/payouts/../approve` went out as `/approve`,
    `/holds/./reject` as `/holds/reject`, with the person's token. Not an id: a 400 before the handler."""
    with console() as (client, apis, idp):
        sign_in(client, idp, "someone", *roles)
        token = csrf(client)
        if method == "GET":
            response = client.get(path, follow_redirects=False)
        else:
            form = {"_csrf_token": token, "reason": "r", "amount": "1", "reference": "fund-1", "placements": "p-1 1 10"}
            response = client.post(path, data=form, follow_redirects=False)
    assert response.status_code == 400
    assert apis.calls == []


# --- what held: recorded so it keeps holding ----------------------------------------------------------------------

POSTS = (
    "/auth/logout",
    "/holds/cl-1/release",
    "/holds/cl-1/reject",
    "/approvals/po-1/approve",
    "/approvals/po-1/reject",
    "/wallet/top-up",
    "/wallet/claim",
    "/wallet/top-ups/tu-1/sandbox",
    "/wallet/top-ups/tu-1/verify",
)


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("path", POSTS)
def test_every_post_without_the_csrf_token_is_refused_and_calls_nothing(path: str, htmx: bool) -> None:
    roles = ("player", "ops", "approver")
    with console() as (client, apis, idp):
        sign_in(client, idp, "priya", *roles)
        headers = {"hx-request": "true"} if htmx else {}
        response = client.post(path, data={"reason": "r", "outcome": "paid"}, headers=headers, follow_redirects=False)
        forged = client.post(
            path, data={"reason": "r", "_csrf_token": "forged"}, headers={"x-csrftoken": "forged"},
            follow_redirects=False,
        )  # fmt: skip
    assert (response.status_code, forged.status_code) == (403, 403)
    assert apis.calls == []


@pytest.mark.parametrize(
    ("roles", "path"),
    [
        (("approver",), "/holds/cl-1/release"),
        (("approver",), "/holds/cl-1/reject"),
        (("ops",), "/approvals/po-1/approve"),
        (("admin",), "/approvals/po-1/reject"),
        (("player",), "/approvals/po-1/approve"),
        (("player",), "/dead-letters/rewards/1/redrive"),
        (("ops", "admin"), "/wallet/top-up"),
        (("approver",), "/wallet/claim"),
    ],
)
def test_a_role_never_reaches_an_action_beyond_it(roles: tuple[str, ...], path: str) -> None:
    with console() as (client, apis, idp):
        sign_in(client, idp, "someone", *roles)
        token = csrf(client)
        response = client.post(path, data={"_csrf_token": token, "reason": "r"}, follow_redirects=False)
    assert response.status_code in {403, 404}
    assert apis.calls == []


def test_a_player_reads_and_acts_only_as_the_tokens_subject_whatever_the_url_or_form_says() -> None:
    apis = wallet_apis()
    apis.on("POST", "rewards", f"/wallets/{PLAYER}/top-up-sessions/", {"top_up_id": "tu-1"})
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        client.get("/wallet?player_id=player-2&player=player-2")
        token = csrf(client, "/wallet")
        client.post(
            "/wallet/top-up?player_id=player-2",
            data={"_csrf_token": token, "asset": "USD", "amount": "5", "key": "wallet-" + "k" * 32,
                  "player_id": "player-2"},
            follow_redirects=False,
        )  # fmt: skip
        client.get("/wallet/top-ups/tu-9?player_id=player-2")
    touched = {c.path for c in apis.calls}
    assert all(p.startswith(f"/wallets/{PLAYER}") for p in touched), touched


def test_hostile_text_from_the_services_and_the_identity_provider_is_escaped_everywhere() -> None:
    apis = FakeApis()
    claim = {
        "claim_id": HOSTILE, "player_id": HOSTILE, "asset": "USD", "amount": 100, "created_at": HOSTILE,
        "destination": {"type": HOSTILE, "address": HOSTILE}, "hold_code": HOSTILE, "hold_detail": HOSTILE,
    }  # fmt: skip
    apis.on("GET", "rewards", "/holds", [claim])
    entry = {"at": "2026-01-01T00:00:00Z", "kind": HOSTILE, "type": HOSTILE, "subject": HOSTILE, "summary": HOSTILE}
    for service in ("settlement", "rewards", "payouts", "webhooks"):
        apis.on("GET", service, "/admin/timeline/cid-1", {"entries": [entry]})
    idp = FakeIdp()
    with console(apis, idp) as (client, _, _):
        sign_in(client, idp, HOSTILE, "ops")
        pages = [client.get("/").text, client.get("/holds").text, client.get("/timeline?correlation_id=cid-1").text]
    for html in pages:
        assert "<script>alert" not in html
        assert not re.search(r"<img[^>]*onerror", html)


def test_nothing_from_before_sign_in_survives_it() -> None:
    """Session fixation: the session after the callback is a new one (a flash planted before is gone)."""
    with console() as (client, _, idp):
        client.get("/auth/login", follow_redirects=False)
        client.get("/auth/callback?error=access_denied")  # leaves nothing; now a real sign-in
        client.get("/auth/login", follow_redirects=False)
        before = dict(client.cookies)
        response = client.get(f"/auth/callback?code=c&state={idp.state}", follow_redirects=False)
        assert response.status_code == 303
        assert dict(client.cookies)["pf_console"] != before.get("pf_console")
        replay = client.get(f"/auth/callback?code=c&state={idp.state}", follow_redirects=False)
    assert replay.status_code == 400  # the sign-in attempt was used up with the first callback


@pytest.mark.parametrize("target", ["/\t/evil.test", "/\\evil.test", "//evil.test", "https://evil.test", "/%2F/evil"])
def test_next_never_leaves_the_console(target: str) -> None:
    with console() as (client, _, idp):
        client.get("/auth/login", params={"next": target}, follow_redirects=False)
        back = client.get(f"/auth/callback?code=c&state={idp.state}", follow_redirects=False)
    location = back.headers["location"]
    assert location.startswith("/")
    assert not location.startswith(("//", "/\\"))
    assert "\t" not in location


def test_staff_who_also_play_are_offered_no_decision_on_their_own_held_claim() -> None:
    """Rewards refuses it too (`403 self_review`): a reviewer releasing their own claim past its hold."""
    own = {
        "claim_id": "cl-own", "player_id": "eve", "asset": "USD", "amount": 500, "status": "held",
        "destination": {"type": "sandbox", "address": "success:eve"}, "hold_code": "risk_score",
        "hold_detail": None, "created_at": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip
    other = {**own, "claim_id": "cl-other", "player_id": "player-9"}
    apis = FakeApis()
    apis.on("GET", "rewards", "/holds", [own, other])
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "eve", "ops", "player")
        html = client.get("/holds").text
    assert 'action="/holds/cl-own/release"' not in html
    assert 'action="/holds/cl-own/reject"' not in html
    assert "This claim pays you" in html
    assert 'action="/holds/cl-other/release"' in html


@pytest.mark.parametrize("form", ["/wallet/top-up", "/wallet/claim"])
def test_a_post_retried_after_a_timeout_sends_the_same_idempotency_key(form: str) -> None:
    """The service may have acted before the console gave up waiting: the form shown again keeps its key, so
    sending it again makes no second top-up or claim."""
    apis = wallet_apis()
    apis.on("GET", "rewards", f"/wallets/{PLAYER}", {
        "player_id": PLAYER, "receivables": [],
        "balances": [{"asset": "USDC", "balance": 90_000_000, "reserved": 0, "available": 90_000_000,
                      "incoming_pending": 0}],
    })  # fmt: skip
    timeout = ApiProblem(503, "service_unavailable", "Service unavailable", "rewards did not answer", "rewards")
    path = "/claims/" if form == "/wallet/claim" else f"/wallets/{PLAYER}/top-up-sessions/"
    apis.on("POST", "rewards", path, timeout)
    fields = {"asset": "USD", "amount": "5"} if form == "/wallet/top-up" else {
        "asset": "USDC", "amount": "1", "type": "stellar_account",
        "address": "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7",
    }  # fmt: skip
    with console(apis) as (client, _, idp):
        sign_in(client, idp, PLAYER, "player")
        page = client.get("/wallet").text
        key = re.search(rf'action="{form}".*?name="key" value="([^"]+)"', page, re.S).group(1)  # type: ignore[union-attr]
        token = csrf(client, "/wallet")
        first = client.post(form, data={"_csrf_token": token, "key": key, **fields})
        again = re.search(rf'action="{form}".*?name="key" value="([^"]+)"', first.text, re.S).group(1)  # type: ignore[union-attr]
        client.post(form, data={"_csrf_token": token, "key": again, **fields})
    assert first.status_code == 503
    sent = [c.headers["Idempotency-Key"] for c in apis.calls if c.method == "POST" and c.headers]
    assert sent == [key, key]


# --- personal data: a payout destination is never shown in full, whatever shape its record gives it ---------------

STELLAR = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"


def test_a_dead_letters_destination_object_is_masked_like_a_destination_string() -> None:
    """`PayoutRequested` and `PayoutCreated` carry the destination as an object (`type`, `address`, `memo`): only a
    string `destination` was masked, so the dead letter page showed the player's full address and memo."""
    record = {
        "specversion": "1.0",
        "type": "prizeflow.payouts.PayoutRequested.v1",
        "data": {
            "payout_request_id": "pr-1", "player_id": PLAYER,
            "destination": {"type": "exchange_account", "address": STELLAR, "memo": "9081726354"},
            "winners": [{"payout_id": "po-1", "address": STELLAR}],
        },
    }  # fmt: skip
    letter = {
        "id": 3, "consumer": "payouts-requests", "event_id": "0b7e9c5e-2f7a-4c1e-9a57-1d1f1f0b1c2d",
        "event_type": "prizeflow.payouts.PayoutRequested.v1", "correlation_id": "flow-1",
        "topic": "prizeflow.payouts.requests.v1", "partition": 0, "offset": 1, "reason": "unknown_aggregate",
        "detail": "d", "error_type": "EventRefusal", "attempts": 1, "status": "open",
        "created_at": "2026-03-01T10:00:00Z", "value": json.dumps(record), "headers": {},
    }  # fmt: skip
    apis = FakeApis()
    apis.on("GET", "payouts", "/admin/dead-letters/3", letter)
    with console(apis) as (client, _, idp):
        sign_in(client, idp, "olivia", "ops")
        text = client.get("/dead-letters/payouts/3").text
    assert STELLAR not in text
    assert "9081726354" not in text
    assert "GAAZ…CWN7" in text
    assert "exchange_account" in text  # the kind of destination is no secret
