"""The console in a real browser (Debian's Chromium through Playwright) against the session platform, which runs
the dev identity provider and the console beside every service. Tests here are sync (Playwright's sync API);
async setup belongs in fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from prizeflow_devstack.platform import Platform
from prizeflow_testkit.browser import chromium, new_page

HERE = __file__.rsplit("/", 1)[0]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.path).startswith(HERE + "/"):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def console_url(platform: Platform) -> str:
    return platform.url("console")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One per module: Playwright's sync API marks its event loop as running in this thread while it is open, and an
    async test after it (pytest-asyncio's loop) would fail; a module's browser is closed before the next module."""
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    p = new_page(browser)
    yield p
    p.context.close()


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    p = new_page(browser, phone=True)
    yield p
    p.context.close()
