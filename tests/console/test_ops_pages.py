"""The operators' pages in a real browser against the session platform: an admin creates, funds, pauses, resumes and
closes a campaign's pool; finds the dead letters a game server's bad records left (with their reasons) and redrives
one and discards the other; opens a settled round and reads its distribution, and voids an open one. Each page
passes axe and is photographed at desktop and phone width.

Playwright's sync API drives the browser; what a game server does (Kafka) and what the services hold (HTTP as a
service's own client) run in a thread of their own, so no event loop meets Playwright's."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Page, expect

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.game import (
    Distribution,
    DistributionTemplate,
    EntryRecorded,
    PaidVia,
    Placement,
    PrizeSource,
    PrizeSpec,
    RoundClosed,
    RoundOpened,
    RoundResultsReported,
)
from prizeflow_contracts.money import Money
from prizeflow_contracts.topics import GAME_ROUNDS
from prizeflow_devstack.platform import Platform
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.settings import audience_for
from prizeflow_testkit.browser import assert_accessible, screenshot, sign_in

T = TypeVar("T")
USDC = 10_000_000  # one USDC in minor units (7 decimals)
DEADLINE_S = 60.0


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Async work (Kafka, the services' APIs) on a loop of its own, away from Playwright's."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


class Services:
    """The services' APIs as an operator's own client (a token from the run's dev identity), for setting the
    scene and waiting on what the platform does; every decision under test is made in the browser."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def get(self, service: str, path: str, **params: Any) -> Any:
        token = self.platform.identity.issue("ops-bot", ["ops", "admin"], audience=audience_for(service))
        response = httpx.get(
            self.platform.url(service) + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        return response.json() if response.status_code == 200 else None

    def post(self, service: str, path: str, body: Any) -> Any:
        token = self.platform.identity.issue("ops-bot", ["ops", "admin"], audience=audience_for(service))
        response = httpx.post(
            self.platform.url(service) + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.is_success, response.text
        return response.json()

    def wait(self, probe: Callable[[], T], until: Callable[[T], bool], what: str) -> T:
        """Polls `probe` until `until` holds, for at most DEADLINE_S."""

        async def poll() -> T:
            async with asyncio.timeout(DEADLINE_S):
                while not until(value := await asyncio.to_thread(probe)):
                    await asyncio.sleep(0.2)
                return value

        try:
            return in_thread(poll)
        except TimeoutError as err:
            raise AssertionError(f"{what}: not within {DEADLINE_S} s (last: {probe()!r})") from err

    def round_state(self, round_id: str) -> str | None:
        found = self.get("settlement", f"/rounds/{round_id}")
        return found["state"] if found else None


def publish(platform: Platform, kafka_bootstrap: str, round_id: str, *records: Any) -> list[tuple[int, int]]:
    """Records on the game servers' topic, keyed by the round: events as a game server sends them, or raw bytes;
    returns each one's (partition, offset)."""

    async def send() -> list[tuple[int, int]]:
        producer = idempotent_producer(kafka_bootstrap, client_id="console-e2e-game")
        await producer.start()
        try:
            placed = []
            for record in records:
                if isinstance(record, bytes):
                    sent = await producer.send_and_wait(
                        GAME_ROUNDS.name + platform.suffix, record, key=round_id.encode()
                    )
                else:
                    env = new_event(record, source="/games/console-e2e", correlation_id=round_id, subject=round_id)
                    sent = await producer.send_and_wait(
                        GAME_ROUNDS.name + platform.suffix, env.encode(), key=env.key, headers=env.headers()
                    )
                placed.append((sent.partition, sent.offset))
            return placed
        finally:
            await producer.stop()

    return in_thread(send)


def round_events(
    round_id: str, competition: str, campaign: str, players: Sequence[str], *, close: bool = True
) -> list[Any]:
    now = datetime.now(UTC)
    free = Money(asset="USDC", amount=0)
    events: list[Any] = [
        RoundOpened(
            round_id=round_id,
            competition_id=competition,
            game_id="console-e2e",
            opened_at=now,
            prize=PrizeSpec(asset="USDC", amount=30 * USDC, campaign_id=campaign),
            prize_source=PrizeSource.SPONSORED,
            distribution=Distribution(template=DistributionTemplate.TOP3),
        ),
        *(
            EntryRecorded(
                round_id=round_id,
                entry_id=f"{round_id}-e{i}",
                player_id=p,
                fee=free,
                paid_via=PaidVia.EXTERNAL,
                recorded_at=now,
            )
            for i, p in enumerate(players)
        ),
    ]
    if close:
        events.append(RoundClosed(round_id=round_id, closed_at=now, entry_count=len(players)))
    return events


def results(round_id: str, players: Sequence[str]) -> RoundResultsReported:
    placements = [Placement(player_id=p, rank=i + 1, score=100 - i) for i, p in enumerate(players)]
    return RoundResultsReported(round_id=round_id, placements=placements, reported_at=datetime.now(UTC))


def funded_campaign(services: Services, campaign: str) -> None:
    services.post("rewards", "/campaigns/", {"campaign_id": campaign, "name": campaign, "asset": "USDC"})
    services.post("rewards", f"/campaigns/{campaign}/fund", {"amount": 500 * USDC, "reference": f"{campaign}-0"})


def photographed(page: Page, phone: Page, name: str) -> None:
    """The page passes axe at both widths and is photographed at both (`phone` shows the same URL)."""
    assert_accessible(page)
    screenshot(page, name)
    phone.goto(page.url)
    assert_accessible(phone)
    screenshot(phone, f"{name}-phone")


@pytest.fixture
def services(platform: Platform) -> Services:
    return Services(platform)


def test_an_admin_creates_funds_pauses_resumes_and_closes_a_pool(
    page: Page, phone_page: Page, console_url: str, services: Services
) -> None:
    campaign = uid("console-camp")
    sign_in(page, console_url, "adam")
    sign_in(phone_page, console_url, "adam")
    page.goto(f"{console_url}/campaigns")
    form = page.get_by_role("form", name="New campaign")
    form.get_by_label("Campaign id").fill(campaign)
    form.get_by_label("Name", exact=True).fill("Console spring cup")
    form.get_by_label("Asset", exact=True).select_option("USDC")
    form.get_by_label(re.compile("^Low-balance warning below")).fill("300")
    form.get_by_role("button", name="Create campaign").click()
    expect(page).to_have_url(f"{console_url}/campaigns/{campaign}")
    expect(page.get_by_role("status").filter(has_text="created")).to_be_visible()

    fund = page.get_by_role("form", name="Fund the pool")
    fund.get_by_label("Amount (USDC)").fill("250.5")
    fund.get_by_role("button", name="Fund").click()
    expect(page.get_by_text("Funded 250.5000000 USDC")).to_be_visible()
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("250.5000000 USDC")
    expect(facts.locator(".badge.pending")).to_have_text("low")  # 250.5 left, warned below 300
    photographed(page, phone_page, "campaign")

    page.get_by_role("button", name="Pause campaign").click()
    expect(page.get_by_text("paused: its pool pays no new prize")).to_be_visible()
    expect(facts.locator(".badge").first).to_have_text("paused")
    page.get_by_role("button", name="Resume campaign").click()
    expect(facts.locator(".badge").first).to_have_text("active")

    page.goto(f"{console_url}/campaigns")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="Console spring cup"))
    expect(row).to_contain_text("250.5000000 USDC")
    photographed(page, phone_page, "campaigns")

    page.goto(f"{console_url}/campaigns/{campaign}")
    close = page.get_by_role("form", name="Close for good")
    close.get_by_label("Reason").fill("the spring cup is over")
    close.get_by_label("I understand closing is final").check()
    close.get_by_role("button", name="Close campaign").click()
    expect(page.get_by_text("closed; 250.5000000 USDC went back to the treasury")).to_be_visible()
    expect(page.get_by_role("button", name="Fund")).to_have_count(0)
    assert services.get("rewards", f"/campaigns/{campaign}")["status"] == "closed"

    sign_in(page, console_url, "olivia")  # ops: the figures, never a form
    page.goto(f"{console_url}/campaigns/{campaign}")
    expect(page.locator("dl.facts")).to_contain_text("closed")
    expect(page.locator("main form")).to_have_count(0)


def test_ops_find_dead_letters_with_their_reason_then_redrive_one_and_discard_another(
    page: Page, phone_page: Page, console_url: str, services: Services, platform: Platform, kafka_bootstrap: str
) -> None:
    campaign, round_id, competition = uid("console-dl"), uid("console-early"), uid("console-cup")
    players = [uid("p"), uid("p")]
    funded_campaign(services, campaign)
    # A game server sent a round's results before the round, then a record nobody can read.
    publish(platform, kafka_bootstrap, round_id, results(round_id, players))
    [(partition, offset)] = publish(platform, kafka_bootstrap, round_id, b'{"round": "never closed"')

    def open_letters() -> list[dict[str, Any]]:
        return list(
            (services.get("settlement", "/admin/dead-letters", status="open", limit=500) or {}).get("items", [])
        )

    letters = services.wait(
        open_letters,
        lambda ls: (
            any(x["correlation_id"] == round_id for x in ls)
            and any((x["partition"], x["offset"]) == (partition, offset) for x in ls)
        ),
        "both records dead-lettered by settlement",
    )
    early = next(x for x in letters if x["correlation_id"] == round_id)
    unreadable = next(x for x in letters if (x["partition"], x["offset"]) == (partition, offset))
    publish(platform, kafka_bootstrap, round_id, *round_events(round_id, competition, campaign, players))
    services.wait(lambda: services.round_state(round_id), lambda s: s == "closed", "the round closed")

    sign_in(page, console_url, "olivia")
    sign_in(phone_page, console_url, "olivia")
    page.goto(f"{console_url}/dead-letters")
    filters = page.get_by_role("form", name="Filter dead letters")
    filters.get_by_label("Service").select_option("settlement")
    filters.get_by_label("Reason").fill("unknown_aggregate")
    filters.get_by_role("button", name="Show dead letters").click()
    row = page.get_by_role("row").filter(has_text=round_id)
    expect(row).to_contain_text("unknown_aggregate")
    expect(row).to_contain_text("RoundResultsReported")
    photographed(page, phone_page, "dead-letters")

    row.get_by_role("link", name=f"Dead letter #{early['id']} of settlement").click()
    expect(page.get_by_role("row", name=re.compile("^x-dlq-reason"))).to_contain_text("unknown_aggregate")
    expect(page.locator("pre")).to_contain_text(round_id)
    redrive = page.get_by_role("form", name="Redrive")
    redrive.get_by_label("Reason").fill("the round is open now")
    redrive.get_by_role("button", name="Redrive").click()
    expect(page.get_by_text(f"Dead letter {early['id']} redriven")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("redriven")
    services.wait(lambda: services.round_state(round_id), lambda s: s == "settled", "the redriven results settled")

    page.goto(f"{console_url}/dead-letters/settlement/{unreadable['id']}")
    expect(page.get_by_role("row", name=re.compile("^x-dlq-reason"))).to_contain_text("malformed_json")
    expect(page.locator("pre")).to_have_text('{"round": "never closed"')
    expect(page.get_by_role("button", name="Redrive")).to_have_count(0)  # it can never apply
    photographed(page, phone_page, "dead-letter")
    discard = page.get_by_role("form", name="Discard")
    discard.get_by_label("Reason").fill("a broken game server build; fixed upstream")
    discard.get_by_role("button", name="Discard").click()
    expect(page.get_by_text(f"Dead letter {unreadable['id']} discarded")).to_be_visible()
    decided = services.get("settlement", f"/admin/dead-letters/{unreadable['id']}")
    assert (decided["status"], decided["decided_by"]) == ("discarded", "olivia")


def test_an_admin_reads_a_settled_rounds_distribution_and_voids_an_open_round(
    page: Page, phone_page: Page, console_url: str, services: Services, platform: Platform, kafka_bootstrap: str
) -> None:
    campaign, competition = uid("console-rounds"), uid("console-cup")
    settled, still_open = uid("console-round"), uid("console-open")
    players = [uid("p"), uid("p"), uid("p")]
    funded_campaign(services, campaign)
    publish(
        platform,
        kafka_bootstrap,
        settled,
        *round_events(settled, competition, campaign, players),
        results(settled, players),
    )
    publish(
        platform, kafka_bootstrap, still_open, *round_events(still_open, competition, campaign, players, close=False)
    )
    services.wait(lambda: services.round_state(settled), lambda s: s == "settled", "the round settled")
    services.wait(lambda: services.round_state(still_open), lambda s: s == "open", "the other round opened")

    sign_in(page, console_url, "adam")
    sign_in(phone_page, console_url, "adam")
    page.goto(f"{console_url}/rounds?competition_id={competition}")
    expect(page.get_by_role("link", name=settled)).to_be_visible()
    expect(page.get_by_role("link", name=still_open)).to_be_visible()
    photographed(page, phone_page, "rounds")

    search = page.get_by_role("search", name="Find a round by its id")
    search.get_by_label("Round id").fill(settled)
    search.get_by_role("button", name="Open round").click()
    expect(page).to_have_url(f"{console_url}/rounds/{settled}")
    transitions = page.get_by_role("table", name="Transitions").get_by_role("row")
    expect(transitions).to_have_count(5)  # a header, then open → closed → resolved → settled
    for n, state in enumerate(("open", "closed", "resolved", "settled"), start=1):
        expect(transitions.nth(n)).to_contain_text(state)
    distribution = page.get_by_role("table", name="Distribution")
    # The sponsored 30 USDC, split 50/30/20 by the top3 template.
    for player, amount in zip(players, ("15.0000000 USDC", "9.0000000 USDC", "6.0000000 USDC"), strict=True):
        expect(distribution.get_by_role("row").filter(has_text=player)).to_contain_text(amount)
    expect(page.get_by_role("button", name="Void round")).to_have_count(0)  # settled: final
    photographed(page, phone_page, "round")

    page.goto(f"{console_url}/rounds/{still_open}")
    void = page.get_by_role("form", name="Void this round")
    void.get_by_label("Reason").fill("the game server lost the round")
    void.get_by_role("button", name="Void round").click()
    expect(page.get_by_text(f"Round {still_open} voided")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("the game server lost the round")
    assert services.round_state(still_open) == "voided"
