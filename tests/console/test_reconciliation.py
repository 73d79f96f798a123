"""The reconciliation pages in a real browser (Debian's Chromium), before the payouts reconciliation API exists: the
console runs in process over a fake of that API (payouts' and rewards' documented shapes: runs, exceptions, the
two-person resolve answering 202 then 200, streamed CSV exports), reached over HTTP through the console's own
client. Olivia (ops) reads the runs and runs a window, takes an exception, reads both sides side by side and
proposes a write-off; she is never offered to approve it; Alice (approver) approves it; Fiona downloads the
exports. Every page passes axe and is photographed at desktop and phone width.

For the end-to-end test against the real platform, drive the same pages with `reconciliation_pages` (the page
objects used here) from the `console_url` and `page` fixtures of conftest.py, signing people in with
`prizeflow_testkit.browser.sign_in`."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from playwright.sync_api import Browser, Page
from prometheus_client import CollectorRegistry

from prizeflow_console.adapters.http_apis import HttpPlatformApi
from prizeflow_console.application.login import SignInFlow
from prizeflow_console.application.ports import SignedIn
from prizeflow_console.application.reconciliation import RECON
from prizeflow_console.domain.session import Timeouts
from prizeflow_console.domain.viewer import Viewer
from prizeflow_console.entrypoints.http import create_app
from prizeflow_testkit.browser import assert_accessible, new_page, screenshot

sys.path.insert(0, str(Path(__file__).parent))  # the page objects beside this file
sys.path.insert(0, str(Path(__file__).parents[2] / "services" / "console" / "tests" / "support"))
from console_fakes import MemorySessions

if TYPE_CHECKING:  # mypy finds the page objects by their place in the tree (tests/console is not on its path)
    from tests.console.reconciliation_pages import (
        ExceptionPage,
        ExceptionsPage,
        ExportsPage,
        ReconciliationPage,
        download_my_history,
    )
else:
    from reconciliation_pages import (
        ExceptionPage,
        ExceptionsPage,
        ExportsPage,
        ReconciliationPage,
        download_my_history,
    )

PEOPLE: dict[str, tuple[str, ...]] = {
    "olivia": ("ops",),
    "alice": ("approver",),
    "fiona": ("ops",),
    "player-1": ("player",),
}
USDC = 10_000_000
LEDGER_CSV = [b"transfer_id,occurred_at,asset,amount,debit,credit\n",
              b"t-1,2026-11-01T10:00:00Z,USDC,10000000,treasury:USDC,player:p-1:USDC\n"]  # fmt: skip


class DirectIdp:
    """Signs in the person the login hint names (PEOPLE) with no page of its own: the authorization URL is the
    console's callback, the code carries the name."""

    def __init__(self) -> None:
        self.console_url = ""

    async def authorization_url(self, *, state: str, nonce: str, code_challenge: str, login_hint: str | None) -> str:
        return f"{self.console_url}/auth/callback?code={login_hint}&state={state}"

    async def exchange(self, *, code: str, code_verifier: str, nonce: str) -> SignedIn:
        return SignedIn(Viewer.of(code, code.title(), PEOPLE[code]), f"token-of-{code}", int(time.time()) + 3600)

    async def end_session_url(self, *, post_logout_redirect_uri: str) -> str | None:
        return None


def _problem(status: int, code: str, detail: str) -> Response[Any]:
    body = {"type": "about:blank", "status": status, "code": code, "title": code.replace("_", " ").capitalize(),
            "detail": detail}  # fmt: skip
    return Response(body, status_code=status, media_type="application/problem+json")


@dataclass
class FakeRecon:
    """payouts' reconciliation API and the exports of payouts and rewards, as recon-api documents them."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    exceptions: dict[int, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> Litestar:
        recon = self

        def caller(request: Request[Any, Any, Any]) -> str:
            return str(request.headers.get("authorization", "")).removeprefix("Bearer token-of-")

        @get(f"{RECON}/runs")
        async def list_runs(provider: FromQuery[str | None] = None, limit: FromQuery[int] = 50) -> dict[str, Any]:
            return {"runs": [r for r in recon.runs if provider in (None, r["provider"])][:limit]}

        @post(f"{RECON}/runs", status_code=200)
        async def run_window(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
            for r in recon.runs:
                if (r["provider"], r["since"], r["until"]) == (data["provider"], data["since"], data["until"]):
                    return r
            created = run(f"run-{len(recon.runs) + 1}", data["provider"], data["since"], data["until"])
            recon.runs.insert(0, created)
            return created

        @get(f"{RECON}/exceptions")
        async def list_exceptions(
            request: Request[Any, Any, Any], limit: FromQuery[int] = 100, offset: FromQuery[int] = 0
        ) -> dict[str, Any]:
            wanted = {k: v for k, v in request.query_params.items() if k in
                      {"state", "kind", "provider", "severity", "owner"} and v}  # fmt: skip
            found = [
                {k: v for k, v in e.items() if k != "history"}
                for e in recon.exceptions.values()
                if all(str(e.get(k)) == v for k, v in wanted.items())
            ]
            return {"exceptions": found[offset : offset + limit]}

        @get(f"{RECON}/exceptions/{{exception_id:int}}")
        async def show(exception_id: FromPath[int]) -> Any:
            found = recon.exceptions.get(exception_id)
            return found if found else _problem(404, "not_found", f"no exception {exception_id}")

        @post(f"{RECON}/exceptions/{{exception_id:int}}/take", status_code=200)
        async def take(exception_id: FromPath[int], request: Request[Any, Any, Any]) -> Any:
            e = recon.exceptions[exception_id]
            e.update(owner=caller(request), state="investigating")
            e["history"].append({"at": now(), "actor": caller(request), "what": "taken", "reason": None})
            return e

        @post(f"{RECON}/exceptions/{{exception_id:int}}/resolve", status_code=200)
        async def resolve(
            exception_id: FromPath[int], request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]
        ) -> Any:
            e, who, action = recon.exceptions[exception_id], caller(request), data["action"]
            if action not in e["actions"]:
                return _problem(409, "action_not_offered", f"{action} does not resolve a {e['kind']}")
            standing = e["proposal"]
            if action == "acknowledge":  # one person, a proposal standing or not
                return recon.resolved(e, action, data["reason"], [who])
            if standing is None:
                e["proposal"] = {"action": action, "proposed_by": who, "proposed_at": now(), "reason": data["reason"],
                                 "params": data.get("params") or {}}  # fmt: skip
                e["history"].append({"at": now(), "actor": who, "what": f"proposed {action}", "reason": data["reason"]})
                return Response(e, status_code=202)
            if standing["action"] != action:
                return _problem(409, "proposal_differs", f"{standing['action']} is proposed")
            if standing["proposed_by"] == who:
                return _problem(403, "self_approval", "the proposer cannot approve their own proposal")
            if not {"approver", "admin"} & set(PEOPLE[who]):
                return _problem(403, "forbidden", "a money action is approved by an approver or an admin")
            return recon.resolved(e, action, data["reason"], [standing["proposed_by"], who])

        def csv(rows: list[bytes], name: str) -> Stream:
            async def body() -> AsyncIterator[bytes]:
                for row in rows:
                    yield row

            return Stream(body(), headers={"content-type": "text/csv; charset=utf-8",
                                           "content-disposition": f'attachment; filename="{name}"'})  # fmt: skip

        @get("/v1/admin/exports/ledger.csv")
        async def ledger_csv() -> Stream:
            return csv(LEDGER_CSV, "ledger.csv")

        @get("/v1/me/history.csv")
        async def my_history(request: Request[Any, Any, Any]) -> Stream:
            return csv([b"at,asset,amount,balance\n", f"2026-11-01,USDC,{USDC},{USDC}\n".encode()], "history.csv")

        @get("/wallets/{player_id:str}")
        async def wallet(player_id: FromPath[str]) -> dict[str, Any]:
            return {"player_id": player_id, "balances": [], "receivables": []}

        @get("/wallets/{player_id:str}/transactions")
        async def transactions(player_id: FromPath[str]) -> dict[str, Any]:
            return {"items": [], "next_cursor": None}

        @get("/wallets/{player_id:str}/claims")
        async def claims(player_id: FromPath[str]) -> dict[str, Any]:
            return {"items": []}

        return Litestar(
            [
                list_runs,
                run_window,
                list_exceptions,
                show,
                take,
                resolve,
                ledger_csv,
                my_history,
                wallet,
                transactions,
                claims,
            ],
            openapi_config=None,
        )

    @staticmethod
    def resolved(e: dict[str, Any], action: str, reason: str, by: list[str]) -> dict[str, Any]:
        e.update(state="resolved", proposal=None,
                 resolution={"action": action, "reason": reason, "resolved_by": by, "resolved_at": now()})  # fmt: skip
        e["history"].append({"at": now(), "actor": by[-1], "what": f"resolved: {action}", "reason": reason})
        return e


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def run(run_id: str, provider: str, since: str, until: str, **changes: Any) -> dict[str, Any]:
    return {
        "run_id": run_id, "provider": provider, "since": since, "until": until, "state": "completed",
        "started_at": now(), "finished_at": now(), "lines": 120, "matched": 118, "exceptions": 2, "error": None,
        "totals": [
            {"asset": "USDC", "ours_paid": 1_000 * USDC, "theirs_paid": 999 * USDC, "fees": 0, "reversals": 0,
             "provider_movement": 999 * USDC, "ledger_movement": 1_000 * USDC},
            {"asset": "XLM", "ours_paid": 0, "theirs_paid": 0, "fees": 1_000, "reversals": 0,
             "provider_movement": 1_000, "ledger_movement": 0},
        ],
        **changes,
    }  # fmt: skip


def scene() -> FakeRecon:
    fake = FakeRecon()
    fake.runs = [
        run("run-2", "stellar", "2026-11-25T16:00:00Z", "2026-11-25T17:00:00Z"),
        run("run-1", "stripe", "2026-11-25T16:00:00Z", "2026-11-25T17:00:00Z", exceptions=0, lines=40, matched=40,
            totals=[{"asset": "USD", "ours_paid": 125_000, "theirs_paid": 125_000, "fees": 0, "reversals": 0,
                     "provider_movement": 125_000, "ledger_movement": 125_000}]),
    ]  # fmt: skip
    destination = "GBRPYHIL2CI3FNQ4BXLFMNDLFJUNPU2HY3ZMFSHONUCEOASW7QC7OX2H"
    fake.exceptions[7] = {
        "id": 7, "provider": "stellar", "kind": "amount_mismatch", "severity": "high", "state": "open", "owner": None,
        "run_id": "run-2", "opened_at": "2026-11-25T17:05:02Z", "updated_at": "2026-11-25T17:05:02Z",
        "payout_id": "po-1", "asset": "USDC", "amount": USDC,
        "ours": {"payout_id": "po-1", "state": "paid", "asset": "USDC", "amount": 1_000 * USDC,
                 "destination": destination, "idempotency_key": "payout-po-1", "provider_ref": "tx-9",
                 "paid_at": "2026-11-25T16:10:00Z"},
        "theirs": [{"line_id": "op-77", "kind": "payout", "occurred_at": "2026-11-25T16:10:02Z", "asset": "USDC",
                    "amount": 999 * USDC, "reference": "payout-po-1", "provider_ref": "tx-9",
                    "destination": destination, "raw_type": "payment"}],
        "actions": ["acknowledge", "write_off"], "proposal": None, "resolution": None,
        "history": [{"at": "2026-11-25T17:05:02Z", "actor": "reconciliation", "what": "opened", "reason": None}],
    }  # fmt: skip
    fake.exceptions[8] = {
        **fake.exceptions[7], "id": 8, "kind": "unrequested", "severity": "critical", "payout_id": None,
        "ours": None, "amount": 250 * USDC, "actions": ["acknowledge", "write_off"], "history": [],
        "theirs": [{**fake.exceptions[7]["theirs"][0], "line_id": "op-80", "amount": 250 * USDC, "reference": None,
                    "destination": "GDQNY3PBOJOKYZSRMK2S7LHHGWZIUISD4QORETLMXEWXBI7KFZZMKTL3"}],
    }  # fmt: skip
    return fake


@dataclass
class InProcessConsole:
    url: str
    recon: FakeRecon


@pytest.fixture(scope="module")
def recon_console() -> Iterator[InProcessConsole]:
    """The console on a local port over the fake reconciliation API (its real HTTP client, an ASGI transport)."""
    fake = scene()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield from _serve(sock, fake)


def _serve(sock: socket.socket, fake: FakeRecon) -> Iterator[InProcessConsole]:
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    idp = DirectIdp()
    idp.console_url = url
    services = {s: f"http://{s}.fake" for s in ("settlement", "rewards", "payouts", "webhooks")}
    apis = HttpPlatformApi(services, timeout_s=10, transport=httpx.ASGITransport(app=fake.app()))  # type: ignore[arg-type]
    app = create_app(
        sign_in=SignInFlow(idp), idp=idp, apis=apis, session_secret="s" * 40, public_url=url,
        idp_origin=url, dev=True, secure_cookies=False, max_age_s=3600, sessions=MemorySessions(),
        timeouts=Timeouts(idle=timedelta(minutes=30), absolute=timedelta(hours=8)),
        registry=CollectorRegistry(),
    )  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the in-process console did not start")
        time.sleep(0.05)
    try:
        yield InProcessConsole(url, fake)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def signed_in(browser: Browser, console: InProcessConsole, who: str, *, phone: bool = False) -> Page:
    page = new_page(browser, phone=phone)
    page.goto(f"{console.url}/auth/login?login_hint={who}")
    page.wait_for_url(lambda u: not u.split("?")[0].endswith("/auth/callback"))
    return page


def test_runs_per_rail_and_a_window_run_on_demand(browser: Browser, recon_console: InProcessConsole) -> None:
    page = signed_in(browser, recon_console, "olivia")
    recon = ReconciliationPage(page, recon_console.url).open()
    assert recon.rail("stellar").is_visible()
    assert recon.cell("run-2", "USDC", "Ours paid") == "1,000.0000000 USDC"
    assert recon.cell("run-2", "USDC", "Theirs paid").startswith("999.0000000 USDC")
    assert "differs" in recon.cell("run-2", "USDC", "Theirs paid")
    assert "differs" not in recon.cell("run-1", "USD", "Theirs paid")
    assert_accessible(page)
    screenshot(page, "reconciliation")
    said = recon.run_window("ton", datetime(2026, 11, 25, 15, tzinfo=UTC), datetime(2026, 11, 25, 16, tzinfo=UTC))
    assert "Run run-3 of ton completed: 120 lines, 118 matched, 2 exceptions." in said
    assert recon_console.recon.runs[0]["since"] == "2026-11-25T15:00:00Z"
    assert recon.rail("ton").is_visible()
    phone = signed_in(browser, recon_console, "olivia", phone=True)
    ReconciliationPage(phone, recon_console.url).open(provider="stellar")
    assert_accessible(phone)
    screenshot(phone, "reconciliation-phone")


def test_an_exception_taken_read_side_by_side_proposed_by_one_and_approved_by_another(
    browser: Browser, recon_console: InProcessConsole
) -> None:
    olivia = signed_in(browser, recon_console, "olivia")
    queue = ExceptionsPage(olivia, recon_console.url).open(state="open")
    assert set(queue.ids()) >= {7, 8}
    assert_accessible(olivia)
    screenshot(olivia, "exceptions")
    detail = queue.open_exception(7)
    assert detail.side("Amount") == ("1,000.0000000 USDC", "999.0000000 USDC")
    assert detail.differs("Amount")
    assert not detail.differs("Destination")
    assert "GBRPYHIL2CI3FNQ4BXLFMNDLFJUNPU2HY3ZMFSHONUCEOASW7QC7OX2H" not in olivia.content()  # masked
    assert "You took exception 7" in detail.take("looking at the statement")
    assert detail.fact("Owner") == "olivia"
    assert_accessible(olivia)
    screenshot(olivia, "exception")
    said = detail.propose("write_off", "the provider paid one USDC less; the difference stays with them")
    assert "Proposed: write off." in said
    assert detail.approve_button().count() == 0
    assert "You proposed to write off" in detail.notes()
    assert detail.offers("acknowledge")  # setting the proposal aside moves no money: one person may
    assert not detail.offers("write_off")  # neither proposed again nor approved by its proposer

    alice = signed_in(browser, recon_console, "alice", phone=True)
    other = ExceptionPage(alice, recon_console.url).open(7)
    assert alice.get_by_text("Approve write off proposed by olivia").is_visible()
    assert_accessible(alice)
    screenshot(alice, "exception-phone")
    assert "Resolved: write off." in other.approve("checked the statement: one USDC short")
    assert other.fact("State") == "resolved"
    assert recon_console.recon.exceptions[7]["resolution"]["resolved_by"] == ["olivia", "alice"]
    assert other.history()[-1] == "resolved: write_off"

    unrequested = ExceptionPage(olivia, recon_console.url).open(8)
    assert unrequested.side("Amount") == ("No payout of ours", "250.0000000 USDC")


def test_exports_download_as_the_services_csv_and_a_player_downloads_their_own(
    browser: Browser, recon_console: InProcessConsole
) -> None:
    fiona = signed_in(browser, recon_console, "fiona")
    exports = ExportsPage(fiona, recon_console.url).open()
    assert_accessible(fiona)
    screenshot(fiona, "exports")
    name, body = exports.download("ledger", date(2026, 11, 1), date(2026, 11, 30), asset="USDC")
    assert name == "ledger-2026-11-01-to-2026-11-30.csv"
    assert body == b"".join(LEDGER_CSV)
    player = signed_in(browser, recon_console, "player-1")
    name, body = download_my_history(player, recon_console.url)
    assert_accessible(player)
    assert name.startswith("my-history-")
    assert name.endswith(".csv")
    assert body.startswith(b"at,asset,amount,balance\n")
