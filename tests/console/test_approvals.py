"""Approvals and held claims in a real browser, against the session platform.

A player's claim of 1,000 USDC to a destination never used before is held (new destination); olivia (ops)
releases it on the held-claims page, which makes it a payout needing two approvers (deploy/local/providers.yaml:
USDC `dual_from` 1000); alice approves and the page says it waits for a second approver, with no Approve button
for her; bob approves and the payout is paid. priya (approver and player) never sees Approve on her own payout,
and an approval she forges anyway is refused by the payouts service, its problem detail shown."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from prizeflow_devstack.platform import Platform
from prizeflow_runtime.settings import audience_for
from prizeflow_testkit.browser import assert_accessible, new_page, screenshot, sign_in

T = TypeVar("T")
USDC = 10_000_000  # minor units in one USDC
# Two approvers from 1,000 USDC (deploy/local/providers.yaml), which is also the most rewards lets a player claim in
# a day (REWARDS_DAILY_CLAIM_LIMIT's default): exactly the threshold.
DUAL = 1_000 * USDC


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def until(probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 60.0, what: str = "") -> T:
    """Poll `probe` until `done` says so, or fail after `timeout` with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not reached in {timeout} s; last: {value!r}")
        time.sleep(0.25)


class Services:
    """The platform's APIs with tokens minted by its dev identity: what happens around the browser (money in, a
    claim, reading back what the services recorded)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.http = httpx.Client(timeout=30, limits=httpx.Limits(keepalive_expiry=2.0))

    def call(self, method: str, service: str, path: str, *, user: str, roles: list[str], **kw: Any) -> Any:
        token = self.platform.identity.issue(user, roles, audience=audience_for(service))
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        response = self.http.request(method, self.platform.url(service) + path, headers=headers, **kw)
        assert response.is_success, f"{method} {service}{path}: {response.status_code} {response.text}"
        return response.json()

    def held_claim(self, player: str, amount: int) -> str:
        """Top `player` up by `amount` USDC and claim it to a new sandbox destination: rewards holds it."""
        top_up = {"asset": "USDC", "amount": amount, "provider": "sandbox", "reference": uid("topup")}
        self.call("POST", "rewards", f"/wallets/{player}/top-ups", user="cashier", roles=["admin"], json=top_up)
        claim = self.call("POST", "rewards", "/claims", user=player, roles=["player"],
                          json={"asset": "USDC", "amount": amount,
                                "destination": {"type": "sandbox", "address": f"success:{player}"}})  # fmt: skip
        assert (claim["status"], claim["hold_code"]) == ("held", "new_destination"), claim
        return str(claim["claim_id"])

    def payout(self, payout_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.call("GET", "payouts", f"/payouts/{payout_id}", user="ops-1", roles=["ops"])
        return doc

    def payout_of(self, player: str, claim_id: str, state: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            items = self.call("GET", "payouts", "/payouts", user="ops-1", roles=["ops"],
                              params={"player_id": player})["items"]  # fmt: skip
            return next((p for p in items if p["claim_id"] == claim_id), None)

        found = until(probe, lambda p: p is not None and p["state"] == state, what=f"payout of {claim_id} {state}")
        assert found is not None
        return found

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def services(platform: Platform) -> Iterator[Services]:
    s = Services(platform)
    yield s
    s.close()


@contextmanager
def signed_in(browser: Browser, console_url: str, user: str, *, phone: bool = False) -> Iterator[Page]:
    """A page of its own (cookies and all) with `user` signed in; closed whatever the test found."""
    page = new_page(browser, phone=phone)
    try:
        sign_in(page, console_url, user)
        yield page
    finally:
        page.context.close()


def checked(page: Page, name: str) -> None:
    assert_accessible(page)
    screenshot(page, name)


def test_a_held_claim_is_released_then_two_approvers_approve_its_payout(
    browser: Browser, console_url: str, services: Services
) -> None:
    player = uid("p")
    claim_id = services.held_claim(player, DUAL)

    # olivia (ops) sees why it was held, and releases it with a reason.
    with signed_in(browser, console_url, "olivia") as page:
        page.goto(f"{console_url}/holds")
        row = page.get_by_role("row").filter(has_text=claim_id)
        expect(row).to_contain_text("New destination: the player has not used this payout destination before")
        expect(row).to_contain_text("1,000.0000000 USDC")
        expect(row).not_to_contain_text(f"success:{player}")  # masked
        checked(page, "holds")
        row.get_by_label("Reason to release (optional)").fill("the player confirmed the new destination")
        row.get_by_role("button", name="Release").click()
        expect(page.get_by_role("status").filter(has_text=f"Released claim {claim_id}")).to_be_visible()
        expect(page.get_by_role("row").filter(has_text=claim_id)).to_have_count(0)

    payout = services.payout_of(player, claim_id, "pending_approval")
    assert (payout["approval_policy"], payout["requested_by"]) == ("dual", "olivia")
    payout_id = payout["id"]

    # alice approves first: the payout waits for a second approver, and she is offered nothing more.
    with signed_in(browser, console_url, "alice") as page:
        page.goto(f"{console_url}/approvals?player_id={player}")
        row = page.get_by_role("row").filter(has_text=payout_id)
        expect(row).to_contain_text("0 of 2")
        expect(row).to_contain_text("Requested by olivia, not by the player")
        checked(page, "approvals")
        row.get_by_role("link", name=payout_id).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Payout of 1,000.0000000 USDC")
        checked(page, "approvals-detail")
        page.get_by_label("Why you approve it").fill("the amount matches the player's winnings")
        page.get_by_role("button", name="Approve").click()
        expect(
            page.get_by_role("status").filter(has_text="Approved: the payout waits for a second approver.")
        ).to_be_visible()
        expect(page.get_by_text("You approved this payout already; it waits for a second approver.")).to_be_visible()
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        expect(page.get_by_role("button", name="Reject")).to_have_count(0)
        expect(page.locator("dl.facts")).to_contain_text("1 of 2 (alice)")
        assert services.payout(payout_id)["state"] == "pending_approval"

    # bob approves second: the payout moves on, and the sandbox pays it.
    with signed_in(browser, console_url, "bob", phone=True) as page:
        page.goto(f"{console_url}/approvals/{payout_id}")
        expect(page.locator("dl.facts")).to_contain_text("1 of 2 (alice)")
        checked(page, "approvals-detail-phone")
        page.get_by_label("Why you approve it").fill("second look: fine")
        page.get_by_role("button", name="Approve").click()
        expect(
            page.get_by_role("status").filter(has_text="Approved: the payout goes on to its provider.")
        ).to_be_visible()
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        paid = services.payout_of(player, claim_id, "paid")
        assert [a["approver_id"] for a in services.payout(paid["id"])["approvals"]] == ["alice", "bob"]
        page.reload()
        expect(page.locator("dl.facts .badge").first).to_have_text("paid")

    # The flow end to end on one page: the claim's correlation id joins rewards, payouts and the audit.
    with signed_in(browser, console_url, "olivia") as page:
        page.goto(f"{console_url}/approvals/{payout_id}")
        page.locator("dl.facts").get_by_role("link", name=re.compile(r"^cl-")).click()
        expect(page).to_have_url(re.compile(r"/timeline\?correlation_id=cl-"))
        rows = page.get_by_role("row")
        # alice's and bob's approvals, audited by payouts; then the provider paid it and the ledger settled it.
        expect(rows.filter(has_text=re.compile(r"payout\.approve on payout .* by (alice|bob)"))).to_have_count(2)
        expect(rows.filter(has_text="submitting → paid")).to_have_count(1)
        expect(rows.filter(has_text="payout_settle")).to_have_count(1)
        kinds = page.locator("tbody td:nth-child(2)").all_inner_texts()
        assert {"rewards", "payouts"} <= set(kinds), kinds
        order = [t.strip() for t in page.locator("tbody td:nth-child(4)").all_inner_texts()]
        assert order.index("claim.release") < order.index("payout.approve"), order
        checked(page, "timeline")


def test_priya_never_sees_approve_on_her_own_payout_and_a_forged_approval_is_refused(
    browser: Browser, console_url: str, services: Services
) -> None:
    claim_id = services.held_claim("priya", 150 * USDC)  # one approver: 100 to 1,000 USDC
    services.call("POST", "rewards", f"/holds/{claim_id}/release", user="olivia", roles=["ops"], json={})
    payout = services.payout_of("priya", claim_id, "pending_approval")
    payout_id = payout["id"]

    with signed_in(browser, console_url, "priya", phone=True) as page:
        page.goto(f"{console_url}/approvals?player_id=priya")
        expect(page.get_by_role("row").filter(has_text=payout_id)).to_contain_text("0 of 1")
        checked(page, "approvals-phone")
        page.get_by_role("link", name=payout_id).click()
        expect(page.get_by_text("This payout pays you: another approver must decide on it.")).to_be_visible()
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)

        # A form the page never drew, sent with the page's own CSRF token: the console passes it on, payouts refuses.
        page.evaluate(
            """(action) => {
              const form = document.createElement("form");
              form.method = "post";
              form.action = action;
              form.append(document.querySelector("input[name=_csrf_token]").cloneNode());
              const reason = document.createElement("input");
              reason.name = "reason";
              reason.value = "my own";
              form.append(reason);
              document.body.append(form);
              form.submit();
            }""",
            f"/approvals/{payout_id}/approve",
        )
        expect(page.get_by_role("alert")).to_contain_text("(self_approval)")
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        after = services.payout(payout_id)
        assert (after["state"], after["approvals"]) == ("pending_approval", [])


def test_the_held_claims_page_at_phone_width(browser: Browser, console_url: str, services: Services) -> None:
    player = uid("p")
    claim_id = services.held_claim(player, 20 * USDC)
    with signed_in(browser, console_url, "adam", phone=True) as page:
        page.goto(f"{console_url}/holds")
        row = page.get_by_role("row").filter(has_text=claim_id)
        expect(row).to_contain_text("20.0000000 USDC")
        checked(page, "holds-phone")
        row.get_by_label("Reason to reject").fill("duplicate account")
        row.get_by_role("button", name="Reject").click()
        expect(page.get_by_role("status").filter(has_text=f"Rejected claim {claim_id}")).to_be_visible()
        claim = services.call("GET", "rewards", f"/claims/{claim_id}", user=player, roles=["player"])
        assert claim["status"] == "rejected"
