"""Reconciliation end to end on the session platform: every service its own process, the Stripe emulator keeping
Stripe's books, real Kafka and PostgreSQL, people in a real browser.

Three players are paid through Stripe. A run over their window finds nothing, and the ledger's movement on the
rail's account equals Stripe's. Then Stripe's books go wrong four ways (a transfer paid twice, one that vanished,
a fee nobody booked, a transfer nobody asked for): a run finds each exactly once, classified. In the console, each
is proposed by olivia (ops) and approved by a second person (bob or alice, approvers): the vanished payout is
returned to its player's wallet, the rest booked through the ledger's transfers. The ledger still balances, a run
over the whole period finds nothing new and the ledger's movement equals Stripe's again, and the finance exports
say the same as the ledger to the minor unit."""

from __future__ import annotations

import asyncio
import csv
import io
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page

from prizeflow_devstack.platform import Platform
from prizeflow_runtime.settings import audience_for
from prizeflow_testkit import fetch
from prizeflow_testkit.browser import new_page, sign_in

sys.path.insert(0, str(Path(__file__).parent))  # the page objects beside this file
if TYPE_CHECKING:
    from tests.console.reconciliation_pages import ExceptionPage
else:
    from reconciliation_pages import ExceptionPage

T = TypeVar("T")
USD = 100  # minor units in one dollar
PRIZE = 10 * USD


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def until(probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 90.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not reached in {timeout} s; last: {value!r}")
        time.sleep(0.25)


def blocking(coro: Coroutine[Any, Any, T]) -> T:
    """An async helper from this sync test (Playwright's loop owns this thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Books:
    """The platform's APIs as its people and operators call them, Stripe's emulator, and the services' databases."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.http = httpx.Client(timeout=120, limits=httpx.Limits(keepalive_expiry=2.0))

    def call(self, method: str, service: str, path: str, *, user: str, roles: list[str], **kw: Any) -> Any:
        token = self.platform.identity.issue(user, roles, audience=audience_for(service))
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        response = self.http.request(method, self.platform.url(service) + path, headers=headers, **kw)
        assert response.is_success, f"{method} {service}{path}: {response.status_code} {response.text}"
        return response.json() if "json" in response.headers.get("content-type", "") else response.text

    def stripe(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(self.platform.url("stripe-api") + "/_emulator" + path, json=body)
        assert response.status_code in (200, 201), f"{path}: {response.status_code} {response.text}"
        return response.json()

    def paid(self, player: str) -> dict[str, Any]:
        """`player` gets PRIZE dollars, claims them to a Stripe connected account of theirs, and is paid."""
        top_up = {"asset": "USD", "amount": PRIZE, "provider": "sandbox", "reference": uid("topup")}
        self.call("POST", "rewards", f"/wallets/{player}/top-ups", user="cashier", roles=["admin"], json=top_up)
        account = self.stripe("/accounts", {"balance": {}})["id"]
        claim = self.call("POST", "rewards", "/claims/", user=player, roles=["player"],
                          json={"asset": "USD", "amount": PRIZE,
                                "destination": {"type": "stripe_account", "address": account}})  # fmt: skip
        if claim["status"] == "held":  # a destination never used before waits for a person
            self.call("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})

        def payout() -> dict[str, Any] | None:
            items = self.call("GET", "payouts", "/payouts/", user="ops-1", roles=["ops"],
                              params={"player_id": player})["items"]  # fmt: skip
            return items[0] if items else None

        found = until(payout, lambda p: p is not None and p["state"] == "paid", what=f"{player}'s payout paid")
        assert found is not None
        return found

    def booked(self, payout_ids: list[str]) -> None:
        """Rewards has told payouts what the ledger booked for each of these payouts (LedgerPosted)."""
        db = self.platform.procs["payouts"].database_url
        assert db is not None

        def count() -> int:
            sql = "SELECT count(DISTINCT payout_id) AS n FROM ledger_postings WHERE payout_id = ANY($1::text[])"
            return int(blocking(fetch(db, sql, payout_ids))[0]["n"])

        until(count, lambda n: n == len(payout_ids), what="the ledger's postings of the payouts")

    def run(self, since: datetime, until_: datetime) -> dict[str, Any]:
        window = {"provider": "stripe", "since": since.isoformat(), "until": until_.isoformat()}
        run: dict[str, Any] = self.call(
            "POST", "payouts", "/reconciliation/runs", user="ops-1", roles=["ops"], json=window
        )
        assert run["state"] == "completed", run
        return run

    def exceptions(self, run_ids: set[str]) -> list[dict[str, Any]]:
        found = self.call("GET", "payouts", "/reconciliation/exceptions", user="ops-1", roles=["ops"],
                          params={"provider": "stripe", "limit": 500})["exceptions"]  # fmt: skip
        return [e for e in found if e["run_id"] in run_ids]

    def ledger(self, sql: str, *args: Any) -> list[Any]:
        db = self.platform.procs["rewards"].database_url
        assert db is not None
        return blocking(fetch(db, sql, *args))

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def books(platform: Platform) -> Iterator[Books]:
    b = Books(platform)
    yield b
    b.close()


SLACK = timedelta(seconds=5)  # PAYOUTS_RECON_SLACK_S of the dev platform (prizeflow_devstack.devenv)


def closed_after(at: datetime) -> datetime:
    """The end of a window: a moment after `at`, once it ended the slack ago (a window is run once its late lines
    can be listed)."""
    end = at + timedelta(seconds=1)
    until(lambda: datetime.now(UTC), lambda now: now > end + SLACK, timeout=20.0)
    return end


def totals(run: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in run["totals"] if t["asset"] == "USD")


def resolve_by_two(browser: Browser, console_url: str, exception_id: int, action: str, second: str) -> None:
    """olivia proposes `action` in the console, is offered no approval of her own; `second` approves it."""
    first_page = new_page(browser)
    try:
        sign_in(first_page, console_url, "olivia")
        detail = ExceptionPage(first_page, console_url).open(exception_id)
        message = detail.propose(action, f"checked Stripe's books: {action}")
        assert "second" in message.lower() or "proposed" in message.lower(), message
        assert detail.approve_button().count() == 0
    finally:
        first_page.context.close()
    second_page: Page = new_page(browser)
    try:
        sign_in(second_page, console_url, second)
        detail = ExceptionPage(second_page, console_url).open(exception_id)
        detail.approve(f"{second} checked it too")
        assert detail.fact("State").lower() == "resolved", detail.message()
    finally:
        second_page.context.close()


def test_stripe_s_books_against_ours_found_once_resolved_by_two_people_in_the_console(
    browser: Browser, console_url: str, books: Books
) -> None:
    t0 = datetime.now(UTC)
    players = [uid("p") for _ in range(3)]
    dup, vanished, charged = [books.paid(p) for p in players]
    ids = [dup["id"], vanished["id"], charged["id"]]
    books.booked(ids)

    # -- a clean window: nothing found, every payout matched, the ledger's movement is Stripe's --------------------
    t1 = closed_after(datetime.now(UTC))
    clean = books.run(t0, t1)
    assert (clean["exceptions"], clean["matched"]) == (0, 3), clean
    assert totals(clean)["ledger_movement"] == totals(clean)["provider_movement"] == 3 * PRIZE, clean["totals"]

    # -- Stripe's books go wrong four ways --------------------------------------------------------------------
    stray = books.stripe("/accounts", {"balance": {}})["id"]
    books.stripe("/discrepancies", {"kind": "duplicate", "reference": dup["idempotency_key"]})
    books.stripe("/discrepancies", {"kind": "missing", "reference": vanished["idempotency_key"]})
    books.stripe("/discrepancies", {"kind": "fee", "reference": charged["idempotency_key"], "amount": 7})
    books.stripe("/discrepancies", {"kind": "unrequested", "amount": 5 * USD, "asset": "USD", "destination": stray})
    t2 = closed_after(datetime.now(UTC))
    found_run = books.run(t0, t2)
    found = books.exceptions({found_run["run_id"]})
    # The vanished payout's line was listed by the clean run: a run over its range again finds it withdrawn too.
    assert sorted((e["kind"], e["payout_id"]) for e in found) == sorted(
        [
            ("duplicate", dup["id"]),
            ("missing", vanished["id"]),
            ("unbooked_fee", charged["id"]),
            ("unrequested", None),
            ("withdrawn_line", vanished["id"]),
        ]
    ), found
    by_kind = {e["kind"]: e for e in found}
    assert (by_kind["duplicate"]["amount"], by_kind["unbooked_fee"]["amount"], by_kind["unrequested"]["amount"]) == (
        PRIZE,
        7,
        5 * USD,
    )
    assert books.run(t0, t2)["run_id"] == found_run["run_id"]  # the same window is the same run

    # -- two people resolve each in the console ------------------------------------------------------------
    wallet_before = books.call("GET", "rewards", f"/wallets/{players[1]}", user=players[1], roles=["player"])
    resolve_by_two(browser, console_url, by_kind["missing"]["id"], "mark_returned", "alice")
    resolve_by_two(browser, console_url, by_kind["duplicate"]["id"], "write_off", "bob")
    resolve_by_two(browser, console_url, by_kind["unbooked_fee"]["id"], "book_fee", "bob")
    resolve_by_two(browser, console_url, by_kind["unrequested"]["id"], "write_off", "alice")
    # What the line's withdrawal says about money is the payout's `missing`: the line itself is acknowledged by one.
    books.call(
        "POST", "payouts", f"/reconciliation/exceptions/{by_kind['withdrawn_line']['id']}/resolve", user="ops-1",
        roles=["ops"], json={"action": "acknowledge", "reason": "Stripe removed the transfer: see its missing"},
    )  # fmt: skip
    resolved = books.exceptions({found_run["run_id"]})
    assert {e["state"] for e in resolved} == {"resolved"}
    assert all(len(e["resolution"]["resolved_by"]) == 2 for e in resolved if e["kind"] != "withdrawn_line")

    # The vanished payout came back to its player's wallet; the others are booked in the ledger once each.
    def available() -> int:
        doc = books.call("GET", "rewards", f"/wallets/{players[1]}", user=players[1], roles=["player"])
        return int(next(b["available"] for b in doc["balances"] if b["asset"] == "USD"))

    before = next(b["available"] for b in wallet_before["balances"] if b["asset"] == "USD")
    until(available, lambda v: v == before + PRIZE, what="the returned payout back in the wallet")
    adjustments = until(
        lambda: books.ledger(
            "SELECT kind, sum(amount) AS s, count(*) AS n FROM ledger_transfers "
            "WHERE kind LIKE 'reconciliation_%' AND created_at >= $1 GROUP BY kind ORDER BY kind",
            t0,
        ),
        lambda rows: sum(r["n"] for r in rows) >= 3,
        what="the adjustments in the ledger",
    )
    assert {r["kind"]: (int(r["s"]), r["n"]) for r in adjustments} == {
        "reconciliation_fee": (7, 1),
        "reconciliation_write_off": (PRIZE + 5 * USD, 2),
    }
    sums = books.ledger("SELECT asset, sum(credits_posted - debits_posted) AS s FROM ledger_accounts GROUP BY asset")
    assert all(r["s"] == 0 for r in sums), sums

    # -- the whole period again: nothing new, and the ledger's movement on the rail is Stripe's --------------
    def settled_run() -> dict[str, Any]:
        return books.run(t0, closed_after(datetime.now(UTC)))

    final = until(
        settled_run,
        lambda r: totals(r)["ledger_movement"] == totals(r)["provider_movement"],
        timeout=60,
        what="the ledger's movement equal to Stripe's",
    )
    assert books.exceptions({final["run_id"]}) == []
    assert totals(final)["provider_movement"] == 3 * PRIZE + PRIZE + 7 + 5 * USD - PRIZE  # one vanished

    # -- the finance exports say what the ledger says --------------------------------------------------------
    period = {"since": t0.isoformat(), "until": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}
    ledger_csv = books.call(
        "GET", "rewards", "/v1/admin/exports/ledger.csv", user="fiona", roles=["ops"], params={**period, "asset": "USD"}
    )
    rows = list(csv.DictReader(io.StringIO(ledger_csv)))
    exported = {
        kind: sum(int(r["amount"]) for r in rows if r["kind"] == kind and r["status"] == "posted")
        for kind in ("reconciliation_fee", "reconciliation_write_off")
    }
    assert exported == {"reconciliation_fee": 7, "reconciliation_write_off": PRIZE + 5 * USD}
    in_ledger = books.ledger(
        "SELECT coalesce(sum(amount), 0) AS s FROM ledger_transfers WHERE asset = 'USD' AND created_at >= $1 "
        "AND created_at < $2",
        t0,
        datetime.fromisoformat(period["until"]),
    )
    assert sum(int(r["amount"]) for r in rows) == int(in_ledger[0]["s"])
    recon_csv = books.call(
        "GET", "payouts", "/v1/admin/exports/reconciliation.csv", user="fiona", roles=["ops"], params=period
    )
    recon_rows = [r for r in csv.DictReader(io.StringIO(recon_csv)) if r["run_id"] == found_run["run_id"]]
    assert sorted((r["kind"], r["state"], len(r["resolved_by"].split())) for r in recon_rows) == [
        ("duplicate", "resolved", 2),
        ("missing", "resolved", 2),
        ("unbooked_fee", "resolved", 2),
        ("unrequested", "resolved", 2),
        ("withdrawn_line", "resolved", 1),
    ]
