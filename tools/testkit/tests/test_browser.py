"""prizeflow_testkit.browser on small pages served from this process: Debian's Chromium starts, axe-core passes an
accessible page and names what is wrong with an inaccessible one (also under a strict Content-Security-Policy,
like the console's), screenshots are whole-page PNGs, and `sign_in` walks a stand-in of the console's login and
the dev IdP's sign-in page (tests/console runs it against the real ones)."""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Generator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Browser

from prizeflow_testkit.browser import assert_accessible, chromium, new_page, screenshot, sign_in

pytestmark = pytest.mark.browser

CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'"

ACCESSIBLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Approvals</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Approvals</h1>
<p style="color:#1a1a1a;background:#ffffff">Two payouts wait for a second approver.</p>
<form method="post" action="/approve"><label for="reason">Reason</label><input id="reason" name="reason">
<button type="submit">Approve</button></form></main></body></html>"""

# An input without a label, and grey text on white (contrast 2.3:1, AA asks for 4.5:1); the list is fine.
INACCESSIBLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Holds</title></head>
<body><main><h1>Holds</h1>
<p style="color:#aaaaaa;background:#ffffff">Faint text nobody can read.</p>
<input type="text" name="reason">
<ul id="fine"><li>A hold on player-1</li></ul></main></body></html>"""

Reply = tuple[int, dict[str, str], str]


def serve(route: Callable[[str, str, dict[str, list[str]]], Reply]) -> Generator[str, None, None]:
    """An HTTP server on 127.0.0.1 in a thread, answering `route(method, path, params)`; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            params = parse_qs(url.query)
            if method == "POST":
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                params.update(parse_qs(body))
            status, headers, html = route(method, url.path, params)
            data = html.encode()
            self.send_response(status)
            for name, value in {"Content-Type": "text/html; charset=utf-8", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    pages = {"/accessible": ACCESSIBLE, "/inaccessible": INACCESSIBLE}

    def route(method: str, path: str, params: dict[str, list[str]]) -> Reply:
        if path in pages:
            return 200, {"Content-Security-Policy": CSP}, pages[path]
        return 404, {}, "<!doctype html><title>not found</title>"

    yield from serve(route)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def test_an_accessible_page_passes_on_a_desktop_and_a_phone(browser: Browser, site: str) -> None:
    for phone in (False, True):
        page = new_page(browser, phone=phone)
        page.goto(f"{site}/accessible")
        assert_accessible(page)
        page.context.close()


def test_violations_are_named_with_their_elements(browser: Browser, site: str) -> None:
    page = new_page(browser)
    page.goto(f"{site}/inaccessible")
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page)
    message = str(failure.value)
    assert "- label (critical): Form elements must have labels: input" in message
    assert "- color-contrast (serious): Elements must meet minimum color contrast ratio thresholds: p" in message
    assert f"{site}/inaccessible: 2 accessibility violation(s)" in message
    # axe is injected once per document: a second check on the same page runs it again, restricted to `context`.
    assert_accessible(page, context="#fine")
    page.context.close()


def test_screenshots_are_whole_page_pngs(
    browser: Browser, site: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONSOLE_SCREENSHOTS", raising=False)
    page = new_page(browser, phone=True)
    page.set_content(ACCESSIBLE + "<div style='height:2000px'></div>")
    path = screenshot(page, "testkit-phone")
    page.context.close()
    data = path.read_bytes()
    assert path.name == "testkit-phone.png"
    assert not path.is_relative_to(Path(__file__).resolve().parents[3])  # not into docs/ unless asked
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 390
    assert height > 2000  # the whole page, not the 844 px viewport
    with pytest.raises(ValueError, match="lower-case letters"):
        screenshot(page, "../escape")


@pytest.fixture(scope="module")
def console() -> Iterator[str]:
    """Stand-ins of the console (login → IdP → callback → home) and of the dev IdP's sign-in page, on two ports
    as in the devstack."""
    urls: dict[str, str] = {}

    def idp(method: str, path: str, params: dict[str, list[str]]) -> Reply:
        back = params["redirect_uri"][0]
        if method == "POST":
            return 302, {"Location": f"{back}?user={quote(params['user'][0])}"}, ""
        presets = [("olivia-2", "player"), ("olivia", "ops"), ("bob", "approver")]
        buttons = "".join(
            f'<button type="submit" name="user" value="{u}">Sign in as {u} ({r})</button>' for u, r in presets
        )
        form = f'<form method="post"><input type="hidden" name="redirect_uri" value="{back}">{buttons}</form>'
        return 200, {}, f'<!doctype html><html lang="en"><title>Dev sign-in</title><main>{form}</main></html>'

    def console_app(method: str, path: str, params: dict[str, list[str]]) -> Reply:
        if path == "/auth/login":
            hint = quote(params["login_hint"][0])
            callback = quote(f"{urls['console']}/auth/callback")
            return 302, {"Location": f"{urls['idp']}/authorize?login_hint={hint}&redirect_uri={callback}"}, ""
        if path == "/auth/callback":
            return 303, {"Location": f"/?who={quote(params['user'][0])}"}, ""
        who = params.get("who", ["nobody"])[0]
        return 200, {}, f'<!doctype html><html lang="en"><title>Console</title><main>Signed in as {who}</main></html>'

    idp_server, console_server = serve(idp), serve(console_app)
    urls["idp"], urls["console"] = next(idp_server), next(console_server)
    yield urls["console"]
    for server in (idp_server, console_server):
        server.close()


def test_sign_in_clicks_the_presets_button_and_returns_to_the_console(browser: Browser, console: str) -> None:
    page = new_page(browser)
    sign_in(page, console, "olivia")
    assert page.inner_text("main") == "Signed in as olivia"
    with pytest.raises(AssertionError, match=r"no single sign-in button for 'mallory'.*Sign in as bob \(approver\)"):
        sign_in(page, console, "mallory")
    page.context.close()
