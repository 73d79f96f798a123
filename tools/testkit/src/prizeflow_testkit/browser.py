"""The console's browser tests (marker `browser`): Debian's Chromium driven through Playwright's sync API.

Only /usr/bin/chromium (tools/devstack/scripts/ensure-chromium.sh, in `make system-deps`) is ever launched: Playwright
never downloads a browser here. The sync API, because pytest-asyncio's session loop and Playwright's async API
trip over each other: call these from plain `def` tests. Accessibility is axe-core's verdict (pinned in
services/console/frontend, `make console-assets-deps`) on WCAG 2.0 A/AA and 2.1 AA.

    with chromium() as browser:
        page = new_page(browser, phone=True)
        sign_in(page, console_url, "olivia")
        assert_accessible(page)
        screenshot(page, "home-phone")
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

CHROMIUM: Final = Path("/usr/bin/chromium")
LAUNCH_ARGS: Final = ("--no-sandbox", "--disable-background-networking", "--disable-component-update")
REPO_ROOT: Final = Path(__file__).resolve().parents[4]
AXE_JS: Final = REPO_ROOT / "services" / "console" / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS: Final = ("wcag2a", "wcag2aa", "wcag21aa")
PHONE_VIEWPORT: Final[ViewportSize] = {"width": 390, "height": 844}
SCREENSHOTS_DIR: Final = REPO_ROOT / "docs" / "console"

_SCREENSHOT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_tmp_screenshots: Path | None = None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium (Debian's), closed on exit with every page opened in it."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(
            f"{CHROMIUM} is missing: the browser tests use Debian's chromium, never a downloaded one; "
            "install it with `bash tools/devstack/scripts/ensure-chromium.sh` (or `make system-deps`)"
        )
    # Inherited by Playwright's driver process: whatever it runs, it fetches no browser.
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(LAUNCH_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser, *, phone: bool = False) -> Page:
    """A page in a context of its own (its own cookies: one signed-in person per page); `phone` is a 390x844
    touch screen reporting itself as mobile."""
    if phone:
        context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    else:
        context = browser.new_context()
    return context.new_page()


def sign_in(page: Page, console_url: str, user: str) -> None:
    """Signs `user` (one of the dev IdP's presets) in to the console: its login page sends the browser to the dev
    IdP, where the preset's button (`Sign in as <user> (<roles>)`) is clicked; returns once the browser is back on
    a console page other than /auth/…, failing with what that page says otherwise."""
    base = console_url.rstrip("/")
    page.goto(f"{base}/auth/login?login_hint={quote(user)}")
    button = page.get_by_role("button", name=re.compile(rf"^Sign in as {re.escape(user)} \("))
    if button.count() != 1:
        offered = page.get_by_role("button").all_inner_texts()
        raise AssertionError(f"{page.url}: no single sign-in button for {user!r} (buttons: {offered})")
    button.click()
    page.wait_for_url(lambda url: url.startswith(f"{base}/"))
    if urlsplit(page.url).path.startswith("/auth/"):
        raise AssertionError(f"signing in as {user!r} ended on {page.url}: {page.inner_text('body')[:1000]}")


_AXE_RUN = """async ([context, tags]) => {
  const results = await axe.run(context ?? document, {
    runOnly: {type: "tag", values: tags},
    resultTypes: ["violations"],
  });
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    targets: v.nodes.map((n) => n.target.join(" ")),
  }));
}"""


def assert_accessible(page: Page, *, context: str | None = None) -> None:
    """axe-core finds no WCAG 2.0 A/AA or 2.1 AA violation on the page (or inside the `context` CSS selector);
    the AssertionError lists each violation: rule id, impact, what it asks, the first elements at fault."""
    if not AXE_JS.is_file():
        raise RuntimeError(f"{AXE_JS} is missing: run `make console-assets-deps` (npm ci in its folder)")
    # Evaluated through the DevTools protocol rather than added as a <script>: the page's Content-Security-Policy
    # (script-src 'self') does not apply to it, so the console is checked with its real headers.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    violations: list[dict[str, Any]] = page.evaluate(_AXE_RUN, [context, list(AXE_TAGS)])
    if violations:
        lines = [f"{page.url}{f' ({context})' if context else ''}: {len(violations)} accessibility violation(s)"]
        for v in violations:
            targets = v["targets"]
            more = f" (+{len(targets) - 3} more)" if len(targets) > 3 else ""
            lines.append(f"- {v['id']} ({v['impact']}): {v['help']}: {', '.join(targets[:3])}{more}")
        raise AssertionError("\n".join(lines))


def screenshot(page: Page, name: str) -> Path:
    """The whole page as `<name>.png`: into docs/console/ when CONSOLE_SCREENSHOTS=1 (the pictures the docs
    show), else into a temporary folder of this test run. Returns the file."""
    global _tmp_screenshots  # noqa: PLW0603 - one folder per test run, made on first use
    if not _SCREENSHOT_NAME.fullmatch(name):
        raise ValueError(f"screenshot name {name!r}: lower-case letters, digits, '-' and '_' only")
    if os.environ.get("CONSOLE_SCREENSHOTS") == "1":
        folder = SCREENSHOTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
    else:
        if _tmp_screenshots is None:
            _tmp_screenshots = Path(tempfile.mkdtemp(prefix="prizeflow-screenshots-"))
        folder = _tmp_screenshots
    path = folder / f"{name}.png"
    page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
    return path
