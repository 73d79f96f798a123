"""The compliance pages end to end on the session platform: the console, the dev identity provider and the real
payouts compliance API (PostgreSQL behind it), people in a real browser.

Adam (admin) proposes a risk policy version from the console: payouts refuses a window under a minute (its 422
names the field, shown beside the form), then takes a harmless one; Adam is never offered to decide it; a second
admin, signed in through the dev provider's form, rejects it (the session's active policy is left as it was, for
the other tests). A player the platform never saw reads as not started, and starts verification from the wallet:
payouts answers a link to the vendor's hosted flow (the KYC emulator's)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from prizeflow_testkit.browser import assert_accessible, new_page, sign_in

RULES_LABEL = "Rules (JSON: a list of rules; starts as the active version's)"
# Never reached by any test's amounts: the version changes nothing even if someone approved it.
HARMLESS = [{"scope": {"asset": "USDC"}, "player_limit": {"amount": 9_000_000_000_000_000_000, "window_s": 60}}]


@pytest.fixture
def second_page(browser: Browser) -> Iterator[Page]:
    p = new_page(browser)
    yield p
    p.context.close()


def _message(page: Page) -> str:
    return " ".join(t.strip() for t in page.locator("main .flash").all_inner_texts())


def _propose(page: Page, rules: object, reason: str) -> None:
    form = page.get_by_role("form", name="Propose a risk policy version")
    form.get_by_label(RULES_LABEL).fill(json.dumps(rules))
    form.get_by_label("Why this change").fill(reason)
    with page.expect_navigation():
        form.get_by_role("button", name="Propose").click()


def _sign_in_as_someone(page: Page, console_url: str, user: str, role: str) -> None:
    """The dev provider's form for anyone with any roles (the presets have one admin only)."""
    base = console_url.rstrip("/")
    page.goto(f"{base}/auth/login?login_hint={user}")
    page.get_by_label("User id").fill(user)
    page.get_by_label(role, exact=True).check()
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(lambda url: url.startswith(f"{base}/") and "/auth/" not in url)


def test_a_version_proposed_by_one_admin_is_decided_by_another_against_the_real_api(
    page: Page, second_page: Page, console_url: str
) -> None:
    sign_in(page, console_url, "adam")
    page.goto(f"{console_url}/compliance/policy")
    assert page.get_by_role("heading", name=re.compile(r"^Active: ")).is_visible()

    _propose(page, [{"scope": {"asset": "USDC"}, "velocity": {"count": 3, "window_s": 5}}], "a window too short")
    said = _message(page)
    assert "velocity.window_s" in said, said
    assert "greater than or equal to 60" in said, said
    assert '"window_s": 5' in page.get_by_label(RULES_LABEL).input_value()  # what was typed is kept

    _propose(page, HARMLESS, f"console end to end {uuid.uuid4().hex[:8]}")
    said = _message(page)
    found = re.search(r"Proposed version (\d+): another admin must approve it\.", said)
    assert found, said
    version = found.group(1)
    assert page.get_by_role("button", name=f"Approve version {version}").count() == 0
    assert page.get_by_role("button", name=f"Reject version {version}").count() == 0
    assert page.get_by_text("You proposed it: another admin approves or rejects it.").first.is_visible()
    assert_accessible(page)

    second = f"admin-{uuid.uuid4().hex[:8]}"
    _sign_in_as_someone(second_page, console_url, second, "admin")
    second_page.goto(f"{console_url}/compliance/policy")
    second_page.get_by_label(f"Why you reject version {version}").fill("end-to-end check: not to be applied")
    with second_page.expect_navigation():
        second_page.get_by_role("button", name=f"Reject version {version}").click()
    assert f"Rejected version {version}." in _message(second_page)
    card = second_page.get_by_role("article", name=re.compile(rf"^Version {version}\b"))
    assert "rejected" in card.inner_text()
    assert second in card.inner_text()


def test_a_player_the_platform_never_saw_reads_as_not_started(page: Page, console_url: str) -> None:
    sign_in(page, console_url, "alice")
    player = f"player-{uuid.uuid4().hex[:10]}"
    page.goto(f"{console_url}/compliance?player_id={player}")
    assert page.get_by_role("heading", name=f"Verification of {player}").is_visible()
    assert page.get_by_text("not started", exact=True).first.is_visible()
    assert page.get_by_text("No verification was ever started.").is_visible()
    assert page.get_by_text("The gate has not decided on any payout of this player.").is_visible()
    assert_accessible(page)


def test_a_player_starts_verification_from_the_wallet_and_gets_the_vendors_hosted_flow(
    page: Page, console_url: str
) -> None:
    player = f"player-{uuid.uuid4().hex[:10]}"  # never verified: the flow starts from the beginning
    _sign_in_as_someone(page, console_url, player, "player")
    page.goto(f"{console_url}/wallet")
    page.get_by_role("link", name="Identity verification").click()
    assert page.get_by_role("heading", name="Your identity verification").is_visible()
    assert page.get_by_text("not started", exact=True).is_visible()
    assert_accessible(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Verify your identity").click()
    link = page.get_by_role("link", name="Continue to identity verification")
    assert (link.get_attribute("href") or "").startswith(("http://", "https://"))
    assert_accessible(page)
