"""The compliance pages in a real browser (Debian's Chromium): the console runs in process over a fake of payouts'
compliance admin API (the documented shapes: the policy with its proposals, propose answering 201 or 422 with field
errors, approve refused to the proposer, a player's verification, screening and gate decisions, the sanctions lists
and a refresh; a payout held by a screening hit), reached over HTTP through the console's own client.

Adam (admin) proposes a version, first with a window payouts refuses (its field error is shown beside the form),
then a good one; he is never offered to approve it; Ava (admin) approves it and it is the active version. Alice
(approver) reads a player's record and sees the held payout's badge on the approvals page. Every page passes axe
and is photographed at desktop and phone width."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath, JSONBody
from playwright.sync_api import Browser, Page
from prometheus_client import CollectorRegistry

from prizeflow_console.adapters.http_apis import HttpPlatformApi
from prizeflow_console.application.compliance import COMPLIANCE, LISTS, POLICY, PROPOSALS, REFRESH
from prizeflow_console.application.login import SignInFlow
from prizeflow_console.application.ports import SignedIn
from prizeflow_console.domain.session import Timeouts
from prizeflow_console.domain.viewer import Viewer
from prizeflow_console.entrypoints.http import create_app
from prizeflow_testkit.browser import assert_accessible, new_page, screenshot

sys.path.insert(0, str(Path(__file__).parents[2] / "services" / "console" / "tests" / "support"))
from console_fakes import MemorySessions

PEOPLE: dict[str, tuple[str, ...]] = {"adam": ("admin",), "ava": ("admin",), "alice": ("approver",)}
USDC = 10_000_000
RULE: dict[str, Any] = {
    "scope": {"asset": "USDC"},
    "kyc_above": {"amount": 1_000 * USDC, "window_s": 30 * 86_400},
    "velocity": {"count": 5, "window_s": 3_600},
}


class DirectIdp:
    """Signs in the person the login hint names (PEOPLE) with no page of its own."""

    def __init__(self) -> None:
        self.console_url = ""

    async def authorization_url(self, *, state: str, nonce: str, code_challenge: str, login_hint: str | None) -> str:
        return f"{self.console_url}/auth/callback?code={login_hint}&state={state}"

    async def exchange(self, *, code: str, code_verifier: str, nonce: str) -> SignedIn:
        return SignedIn(Viewer.of(code, code.title(), PEOPLE[code]), f"token-of-{code}", int(time.time()) + 3600)

    async def end_session_url(self, *, post_logout_redirect_uri: str) -> str | None:
        return None


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _problem(status: int, code: str, detail: str, **extra: Any) -> Response[Any]:
    body = {"type": "about:blank", "status": status, "code": code, "title": code.replace("_", " ").capitalize(),
            "detail": detail, **extra}  # fmt: skip
    return Response(body, status_code=status, media_type="application/problem+json")


@dataclass
class FakeCompliance:
    active: dict[str, Any] | None = None
    proposals: list[dict[str, Any]] = field(default_factory=list)
    lists: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Litestar:
        fake = self

        def caller(request: Request[Any, Any, Any]) -> str:
            return str(request.headers.get("authorization", "")).removeprefix("Bearer token-of-")

        @get(POLICY)
        async def policy() -> dict[str, Any]:
            return {"active": fake.active, "proposals": fake.proposals}

        @post(PROPOSALS, status_code=201)
        async def propose(request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> Any:
            rules = data["policy"]["rules"]
            for i, rule in enumerate(rules):
                for clause in ("kyc_above", "player_limit", "destination_limit", "velocity"):
                    if isinstance(rule.get(clause), dict) and rule[clause].get("window_s", 60) < 60:
                        return _problem(422, "validation_error", "Validation failed for POST", errors=[
                            {"key": f"policy.rules.{i}.{clause}.window_s", "source": "body",
                             "message": "Input should be greater than or equal to 60"}])  # fmt: skip
            version = max([p["version"] for p in fake.proposals] + [0]) + 1
            created = {"id": 10 + version, "version": version, "status": "proposed", "proposed_by": caller(request),
                       "proposed_at": now(), "reason": data["reason"], "decided_by": None, "decided_at": None,
                       "policy": {"version": version, **data["policy"]}}  # fmt: skip
            fake.proposals.insert(0, created)
            return created

        @post(f"{PROPOSALS}/{{proposal_id:int}}/approve", status_code=200)
        async def approve(proposal_id: FromPath[int], request: Request[Any, Any, Any]) -> Any:
            found = next(p for p in fake.proposals if p["id"] == proposal_id)
            if found["proposed_by"] == caller(request):
                return _problem(403, "self_approval", "a policy change needs a second admin")
            for p in fake.proposals:
                if p["status"] == "active":
                    p["status"] = "superseded"
            found.update(status="active", decided_by=caller(request), decided_at=now())
            fake.active = {"version": found["version"], "policy": found["policy"], "proposed_by": found["proposed_by"],
                           "approved_by": caller(request), "activated_at": now()}  # fmt: skip
            return found

        @get(f"{COMPLIANCE}/players/{{player_id:str}}")
        async def player(player_id: FromPath[str]) -> Any:
            if player_id != "player-7":
                return _problem(404, "not_found", f"no compliance record of {player_id}")
            return PLAYER

        @get(LISTS)
        async def lists() -> list[dict[str, Any]]:
            return fake.lists

        @post(REFRESH, status_code=200)
        async def refresh() -> list[dict[str, Any]]:
            fake.lists = [{**entry, "loaded_at": now()} for entry in fake.lists]
            return fake.lists

        @get("/payouts")
        async def payouts() -> dict[str, Any]:
            return {"items": [HELD]}

        @get("/payouts/{payout_id:str}")
        async def payout(payout_id: FromPath[str]) -> Any:
            return HELD if payout_id == HELD["id"] else _problem(404, "not_found", "no such payout")

        return Litestar([policy, propose, approve, player, lists, refresh, payouts, payout], openapi_config=None)


PLAYER: dict[str, Any] = {
    "player_id": "player-7", "status": "verified", "reference": "applicant-5f2c", "country": "DE", "sequence": 3,
    "history": [{"status": "pending", "at": "2026-11-24T10:00:00Z", "detail": "started"},
                {"status": "verified", "at": "2026-11-24T10:05:00Z", "detail": "vendor review: green"}],
    "screening": {"outcome": "hit", "versions": {"ofac_sdn": "2026-11-24", "un": "2026-11-20"}, "cleared_by": [],
                  "matches": [{"source": "ofac_sdn", "entry_uid": "sdn-36524", "entry_name": "LISTED PERSON",
                               "kind": "person", "score": 0.93}]},
    "decisions": [{"payout_id": "po-9", "stage": "request", "action": "hold",
                   "reasons": [{"finding": "velocity", "rule": 0, "detail": "6 requests in 3600s"}],
                   "policy_version": 3, "list_versions": {"ofac_sdn": "2026-11-24"}, "at": "2026-11-25T08:00:00Z"}],
}  # fmt: skip
HELD: dict[str, Any] = {
    "id": "po-9", "state": "pending_approval", "player_id": "player-7", "requested_by": "player-7", "claim_id": None,
    "asset": "USDC", "amount": 250 * USDC, "destination_type": "stellar_account",
    "destination_address": "GBRPYHIL2CI3FNQ4BXLFMNDLFJUNPU2HY3ZMFSHONUCEOASW7QC7OX2H", "provider_name": "stellar",
    "provider_type": "stellar", "approval_policy": "dual", "approvals": [], "history": [], "attempts": [],
    "created_at": "2026-11-25T08:00:00Z", "updated_at": "2026-11-25T08:00:00Z", "correlation_id": "claim-9",
    "hold_code": "screening_hit", "hold_detail": "player matched ofac_sdn sdn-36524 (score 0.93)",
}  # fmt: skip


def scene() -> FakeCompliance:
    fake = FakeCompliance()
    fake.active = {"version": 3, "policy": {"version": 3, "rules": [RULE], "note": "autumn limits"},
                   "proposed_by": "adam", "approved_by": "ava", "activated_at": "2026-11-20T10:00:00Z"}  # fmt: skip
    fake.proposals = [{"id": 13, "version": 3, "status": "active", "proposed_by": "adam", "approved_by": "ava",
                       "proposed_at": "2026-11-20T09:00:00Z", "reason": "autumn", "decided_by": "ava",
                       "decided_at": "2026-11-20T10:00:00Z", "policy": fake.active["policy"]}]  # fmt: skip
    fake.lists = [
        {"source": "ofac_sdn", "version": "2026-11-24", "published_at": "2026-11-24T18:00:00Z", "entries": 17_412,
         "loaded_at": "2026-11-25T06:00:00Z", "sha256": "ab" * 32},
        {"source": "un", "version": "2026-11-20", "published_at": "2026-11-20T12:00:00Z", "entries": 1_004,
         "loaded_at": "2026-11-25T06:00:01Z", "sha256": "cd" * 32},
    ]  # fmt: skip
    return fake


@dataclass
class InProcessConsole:
    url: str
    fake: FakeCompliance


@pytest.fixture(scope="module")
def compliance_console() -> Iterator[InProcessConsole]:
    fake = scene()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
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
        while not server.started:  # startup is observable: uvicorn sets `started` once it listens
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


def _message(page: Page) -> str:
    return " ".join(t.strip() for t in page.locator("main .flash").all_inner_texts())


def _propose(page: Page, rules: str, reason: str) -> None:
    form = page.get_by_role("form", name="Propose a risk policy version")
    form.get_by_label("Rules (JSON: a list of rules; starts as the active version's)").fill(rules)
    form.get_by_label("Why this change").fill(reason)
    with page.expect_navigation():
        form.get_by_role("button", name="Propose").click()


def test_a_policy_version_proposed_by_one_admin_and_approved_by_another(
    browser: Browser, compliance_console: InProcessConsole
) -> None:
    adam = signed_in(browser, compliance_console, "adam")
    adam.get_by_role("navigation", name="Main").get_by_role("link", name="Compliance").click()
    adam.get_by_role("navigation", name="Compliance").get_by_role("link", name="Risk policy").click()
    assert adam.get_by_role("heading", name="Active: version 3").is_visible()
    assert adam.get_by_text("Held for a person after 5 requests in 1 hour").first.is_visible()
    assert "1,000.0000000 USDC in 30 days" in adam.content()
    prefilled = adam.get_by_label("Rules (JSON: a list of rules; starts as the active version's)").input_value()
    assert '"window_s": 2592000' in prefilled
    assert_accessible(adam)
    screenshot(adam, "compliance-policy")

    _propose(adam, '[{"scope": {"asset": "USDC"}, "velocity": {"count": 3, "window_s": 30}}]', "stricter velocity")
    assert "rules.0.velocity.window_s: Input should be greater than or equal to 60" in _message(adam)
    assert (
        '"window_s": 30'
        in adam.get_by_label("Rules (JSON: a list of rules; starts as the active version's)").input_value()
    )
    assert_accessible(adam)

    _propose(adam, '[{"scope": {"asset": "USDC"}, "velocity": {"count": 3, "window_s": 3600}}]', "stricter velocity")
    assert "Proposed version 4: another admin must approve it." in _message(adam)
    assert adam.get_by_role("button", name="Approve version 4").count() == 0
    assert adam.get_by_text("You proposed it: another admin approves or rejects it.").is_visible()

    ava = signed_in(browser, compliance_console, "ava", phone=True)
    ava.goto(f"{compliance_console.url}/compliance/policy")
    assert_accessible(ava)
    screenshot(ava, "compliance-policy-phone")
    ava.get_by_label("Why you approve version 4").fill("checked the counts with support")
    with ava.expect_navigation():
        ava.get_by_role("button", name="Approve version 4").click()
    assert "Approved: version 4 is the active risk policy" in _message(ava)
    assert ava.get_by_role("heading", name="Active: version 4").is_visible()
    assert compliance_console.fake.active is not None
    assert compliance_console.fake.active["approved_by"] == "ava"


def test_an_approver_reads_a_players_record_and_the_lists(
    browser: Browser, compliance_console: InProcessConsole
) -> None:
    alice = signed_in(browser, compliance_console, "alice")
    alice.goto(f"{compliance_console.url}/compliance")
    alice.get_by_label("Player id").fill("player-7")
    with alice.expect_navigation():
        alice.get_by_role("button", name="Show").click()
    assert alice.get_by_role("heading", name="Verification of player-7").is_visible()
    assert alice.get_by_text("LISTED PERSON").is_visible()
    assert alice.get_by_text("too many requests in the window (rule 0): 6 requests in 3600s").is_visible()
    assert_accessible(alice)
    screenshot(alice, "compliance-player")
    phone = signed_in(browser, compliance_console, "alice", phone=True)
    phone.goto(f"{compliance_console.url}/compliance?player_id=player-7")
    assert_accessible(phone)
    screenshot(phone, "compliance-player-phone")

    alice.goto(f"{compliance_console.url}/compliance/lists")
    assert alice.get_by_role("cell", name="17,412").is_visible()
    assert alice.get_by_role("button", name="Refresh now").count() == 0
    assert_accessible(alice)


def test_an_admin_refreshes_the_lists_and_an_approver_sees_the_screening_hit_on_approvals(
    browser: Browser, compliance_console: InProcessConsole
) -> None:
    adam = signed_in(browser, compliance_console, "adam")
    adam.goto(f"{compliance_console.url}/compliance/lists")
    with adam.expect_navigation():
        adam.get_by_role("button", name="Refresh now").click()
    assert "Refreshed the sanctions lists: ofac_sdn 2026-11-24, un 2026-11-20." in _message(adam)
    assert_accessible(adam)
    screenshot(adam, "compliance-lists")

    alice = signed_in(browser, compliance_console, "alice")
    alice.goto(f"{compliance_console.url}/approvals")
    assert alice.get_by_text("Screening hit — two approvers", exact=True).is_visible()
    alice.goto(f"{compliance_console.url}/approvals/po-9")
    assert "player matched ofac_sdn sdn-36524 (score 0.93)" in alice.content()
    assert_accessible(alice)
    screenshot(alice, "approvals-screening-hit")
