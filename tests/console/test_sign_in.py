"""Each dev person signs in through the dev identity provider (code + PKCE) and sees the pages their roles allow,
and only those; the sign-in page and the start page pass axe at desktop and phone width."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from prizeflow_testkit.browser import assert_accessible, screenshot, sign_in

# What the navigation offers each person (services/console domain/viewer.py PAGE_ROLES).
FINANCE = ["Reconciliation", "Exceptions", "Exports"]
COMPLIANCE = ["Compliance"]  # admin, approver
STAFF = ["Approvals", "Held claims", "Rounds", "Campaigns and pools", "Dead letters", "Timeline", *FINANCE]
NAV = {
    "olivia": [*STAFF, "FX desk"],
    "adam": [*STAFF, *COMPLIANCE, "FX desk"],
    "alice": ["Approvals", "Timeline", *FINANCE, *COMPLIANCE],
    "priya": ["Approvals", "Timeline", *FINANCE, *COMPLIANCE, "Wallet"],
    "player-1": ["Wallet"],
}
EVERY_PAGE = {
    "Approvals": "/approvals",
    "Held claims": "/holds",
    "Rounds": "/rounds",
    "Campaigns and pools": "/campaigns",
    "Dead letters": "/dead-letters",
    "Timeline": "/timeline",
    "Reconciliation": "/reconciliation",
    "Exceptions": "/exceptions",
    "Exports": "/exports",
    "Compliance": "/compliance",
    "FX desk": "/fx",
    "Wallet": "/wallet",
}


def test_the_dev_sign_in_page_is_accessible(page: Page, console_url: str) -> None:
    page.goto(f"{console_url}/auth/login?login_hint=alice")
    expect(page.get_by_role("button", name="Sign in as alice (approver)")).to_be_focused()
    assert_accessible(page)
    screenshot(page, "sign-in")


@pytest.mark.parametrize("user", sorted(NAV))
def test_each_person_sees_exactly_the_pages_their_roles_allow(page: Page, console_url: str, user: str) -> None:
    sign_in(page, console_url, user)
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link").all_inner_texts() == NAV[user]
    expect(page.get_by_text(f"({user})")).to_be_visible()
    assert_accessible(page)
    for title, path in EVERY_PAGE.items():
        if title in NAV[user]:
            continue
        response = page.goto(console_url + path)
        assert response is not None
        assert response.status == 403, (user, path)
        expect(page.get_by_role("alert")).to_contain_text("not part of what your roles allow")


def test_signing_out_ends_the_session(page: Page, console_url: str) -> None:
    sign_in(page, console_url, "olivia")
    screenshot(page, "home")
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{console_url}/timeline")
    assert "/authorize" in page.url  # back at the identity provider: no session left
