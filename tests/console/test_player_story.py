"""A player's whole story in the browser, against the session platform: sign in, top up through the provider's
checkout (the platform's: Stripe, its emulator's hosted page) and see the balance; win a round; request a payout
of the winnings to a destination the platform pays (the sandbox provider) and watch its status reach paid without
reloading the page; another player who opens that payout's address learns nothing of it. The wallet and the
payout's page pass axe at desktop and phone width."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from playwright.sync_api import Browser, Page, expect
from support import USDC, Api, GameServer, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.platform import Platform
from prizeflow_testkit.browser import assert_accessible, new_page, screenshot

T = TypeVar("T")
LIVE_MS = 60_000  # the longest a live status may take to show a change (a loaded machine, every hop on Kafka)


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Async platform work (Kafka, the services' APIs) from this sync test: in a thread with a loop of its own, as
    Playwright's sync API holds this thread's."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work()).result(timeout=180)


def sign_in_as_player(page: Page, console_url: str, player: str) -> None:
    """Through the dev identity provider's form for anyone (a player of this test's own: a wallet nobody shares)."""
    page.goto(f"{console_url}/auth/login?login_hint={player}&next=/wallet")
    expect(page.get_by_label("User id")).to_have_value(player)
    page.get_by_label("player", exact=True).check()
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{console_url}/wallet")


async def win_a_round(platform: Platform, player: str, prize: int) -> None:
    """A sponsor funds a campaign; a game server reports a round the player wins alone; the winnings reach the
    wallet."""
    api, game = Api(platform), GameServer(platform.infra.kafka_bootstrap, platform.suffix)
    await game.start()
    try:
        campaign = uid("camp")
        await api.funded_campaign(campaign, 10 * prize)
        await game.sponsored_round(
            uid("round"), [player, uid("rival")], campaign_id=campaign, prize=prize,
            template=DistributionTemplate.WINNER_TAKES_ALL,
        )  # fmt: skip
        await wait_for(lambda: api.available(player), lambda v: v == prize)
    finally:
        await game.stop()
        await api.close()


async def release_hold(platform: Platform, claim_id: str) -> None:
    """Ops review the held payout request (a destination never used before is held) and release it."""
    api = Api(platform)
    try:
        await api.ok("POST", "rewards", f"/holds/{claim_id}/release", user="olivia", roles=["ops"], json={})
    finally:
        await api.close()


def test_a_players_top_up_round_and_payout_seen_live(
    page: Page, phone_page: Page, browser: Browser, platform: Platform, console_url: str
) -> None:
    player = uid("story")
    sign_in_as_player(page, console_url, player)
    expect(page.get_by_role("heading", name="Wallet", level=1)).to_be_visible()
    expect(page.get_by_text("Your wallet holds no money yet")).to_be_visible()

    # -- top-up: 25 USD through the provider's checkout; its page turns to paid by itself -------------------------
    top_up = page.get_by_role("form", name="Top up")
    top_up.get_by_label("Currency").select_option("USD")
    top_up.get_by_label("Amount").fill("25")
    top_up.get_by_role("button", name="Go to checkout").click()
    page.wait_for_url(re.compile(r"/wallet/top-ups/[^/]+$"))
    status = page.locator("#top-up-status")
    expect(status).to_contain_text("Waiting for payment")
    assert_accessible(page)
    screenshot(page, "wallet-top-up")
    with page.context.expect_page() as opened:
        page.get_by_role("link", name=re.compile(r"^Pay at ")).click()
    checkout = opened.value
    checkout.get_by_role("button", name="Pay", exact=True).click()
    # Back at the console (the checkout's success URL) before the tab closes: closing a tab mid-navigation can
    # hang Chromium's close on a loaded machine (a 600 s timeout on a fresh-clone run).
    checkout.wait_for_url(re.compile("^" + re.escape(console_url) + "/wallet"))  # waits for its `load` too
    checkout.close()
    expect(status).to_contain_text("The payment arrived and was added to your wallet.", timeout=LIVE_MS)
    page.get_by_role("link", name="Back to your wallet").click()
    balances = page.get_by_role("table", name="Money you hold, by asset")
    expect(balances).to_contain_text("25.00 USD")

    # -- a round the player wins: the winnings are in the wallet ---------------------------------------------------
    prize = 40 * USDC
    run(lambda: win_a_round(platform, player, prize))
    page.reload()
    expect(balances).to_contain_text("40.0000000 USDC")
    history = page.get_by_role("table", name=re.compile("^Money in and out"))
    expect(history).to_contain_text("Prize won")
    expect(history).to_contain_text("Top-up")

    # -- a payout of 25 USDC to the sandbox: under review, then paid, seen live ----------------------------------
    claim = page.get_by_role("form", name="Request a payout")
    claim.get_by_label("Pay out from").select_option("USDC")
    claim.get_by_label("Amount").fill("25")
    claim.get_by_label("Pay to").select_option("sandbox")
    claim.get_by_label("Destination", exact=True).fill(f"success:{player}")
    claim.get_by_role("button", name="Request payout").click()
    page.wait_for_url(re.compile(r"/wallet/claims/[^/]+$"))
    claim_url = page.url
    live = page.locator("#claim-status")
    expect(live).to_contain_text("Under review")
    assert_accessible(page)
    screenshot(page, "wallet-claim")
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if anything reloads the page
    run(lambda: release_hold(platform, claim_url.rsplit("/", 1)[1]))
    expect(live).to_contain_text("Your withdrawal was paid.", timeout=LIVE_MS)
    assert page.evaluate("() => window.__sameDocument === true"), "the status changed by reloading the page"
    expect(page.get_by_role("link", name="Refresh the status")).to_have_count(0)  # final: nothing more to wait for
    assert_accessible(page)
    screenshot(page, "wallet-claim-paid")

    page.get_by_role("link", name="Back to your wallet").click()
    expect(balances).to_contain_text("15.0000000 USDC")
    requests = page.get_by_role("table", name=re.compile("^The latest"))
    expect(requests).to_contain_text("Paid")
    expect(requests).to_contain_text("succ…")  # the destination masked, never whole
    assert_accessible(page)
    screenshot(page, "wallet")

    # -- the same at phone width ---------------------------------------------------------------------------------
    sign_in_as_player(phone_page, console_url, player)
    expect(phone_page.get_by_role("table", name="Money you hold, by asset")).to_contain_text("15.0000000 USDC")
    assert_accessible(phone_page)
    screenshot(phone_page, "wallet-phone")
    phone_page.goto(claim_url)
    expect(phone_page.locator("#claim-status")).to_contain_text("Paid")
    assert_accessible(phone_page)
    screenshot(phone_page, "wallet-claim-phone")

    # -- another player opening this payout's address learns nothing of it ---------------------------------------
    other = new_page(browser)
    try:
        sign_in_as_player(other, console_url, uid("other"))
        response = other.goto(claim_url)
        assert response is not None
        assert response.status == 404
        expect(other.get_by_role("alert")).to_have_text("You have no such payout request.")
        for secret in ("25.0000000", player, "succ"):
            assert secret not in other.content()
    finally:
        other.context.close()
