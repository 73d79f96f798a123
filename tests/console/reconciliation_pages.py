"""Page objects for the console's reconciliation pages (`/reconciliation`, `/exceptions`, `/exceptions/{id}`,
`/exports`, and the wallet's own history download), for browser tests against the real platform or the in-process
console of test_reconciliation.py. They drive the pages as a person does (labels, button names, the forms' own
actions) and read back what the page says; they assert nothing themselves.

    recon = ReconciliationPage(page, console_url)
    recon.open()
    recon.run_window("stripe", since, until)           # the page's message after the run
    detail = ExceptionsPage(page, console_url).open(kind="amount_mismatch").open_exception(7)
    detail.side("Amount")                              # ("1,000.0000000 USDC", "999.0000000 USDC"), ours first
    detail.propose("write_off", "the provider kept one USDC")
    ExceptionPage(other_page, console_url).open(7).approve("checked the statement")
    ExportsPage(page, console_url).open().download("ledger", date(2026, 1, 1), date(2026, 1, 31))  # the CSV bytes
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import Locator, Page


def _message(page: Page) -> str:
    """The page's messages (a flash: role=status for success, role=alert for a problem detail), joined."""
    return " ".join(t.strip() for t in page.locator("main p.flash").all_inner_texts())


class ReconciliationPage:
    def __init__(self, page: Page, console_url: str) -> None:
        self.page = page
        self.base = console_url.rstrip("/")

    def open(self, provider: str | None = None) -> ReconciliationPage:
        self.page.goto(f"{self.base}/reconciliation" + (f"?{urlencode({'provider': provider})}" if provider else ""))
        return self

    def run_window(self, provider: str, since: datetime, until: datetime) -> str:
        """Runs `provider` over [since, until) (UTC, minutes) from the page's form; returns the page's message."""
        form = self.page.get_by_role("form", name="Run reconciliation")
        form.get_by_label("Provider").fill(provider)
        form.get_by_label("From (UTC)").fill(since.strftime("%Y-%m-%dT%H:%M"))
        form.get_by_label("Until, not included (UTC)").fill(until.strftime("%Y-%m-%dT%H:%M"))
        with self.page.expect_navigation():
            form.get_by_role("button", name="Run reconciliation").click()
        return self.message()

    def rail(self, provider: str) -> Locator:
        """The runs table of one provider (one row per run and asset)."""
        return self.page.get_by_role("table", name=f"Runs of {provider}, newest first; one row per asset")

    def run_row(self, run_id: str, asset: str | None = None) -> Locator:
        selector = f'tr[data-run="{run_id}"]' + (f'[data-asset="{asset}"]' if asset else "")
        return self.page.locator(selector)

    def cell(self, run_id: str, asset: str, column: str) -> str:
        """One figure of a run's totals, as shown (`Ours paid`, `Theirs paid`, `Fees`, `Reversals`,
        `Provider movement`, `Ledger movement`; or `Lines`, `Matched`, `Exceptions`, `State`)."""
        return self.run_row(run_id, asset).locator(f'td[data-label="{column}"]').inner_text().strip()

    def message(self) -> str:
        return _message(self.page)


class ExceptionsPage:
    def __init__(self, page: Page, console_url: str) -> None:
        self.page = page
        self.base = console_url.rstrip("/")

    def open(self, **filters: str | int) -> ExceptionsPage:
        """The queue with `state`, `kind`, `provider`, `severity`, `owner`, `offset` as given."""
        query = urlencode({k: v for k, v in filters.items() if v not in (None, "")})
        self.page.goto(f"{self.base}/exceptions" + (f"?{query}" if query else ""))
        return self

    def rows(self) -> Locator:
        return self.page.locator("table.exceptions tbody tr")

    def ids(self) -> list[int]:
        texts = self.page.locator("table.exceptions tbody tr td[data-label='Exception'] a").all_inner_texts()
        return [int(t.strip().lstrip("#")) for t in texts]

    def open_exception(self, exception_id: int) -> ExceptionPage:
        with self.page.expect_navigation():
            self.page.locator(f'a[href="/exceptions/{exception_id}"]').click()
        return ExceptionPage(self.page, self.base)

    def next_page(self) -> ExceptionsPage:
        with self.page.expect_navigation():
            self.page.get_by_role("link", name="Next page").click()
        return self

    def message(self) -> str:
        return _message(self.page)


class ExceptionPage:
    def __init__(self, page: Page, console_url: str) -> None:
        self.page = page
        self.base = console_url.rstrip("/")

    def open(self, exception_id: int) -> ExceptionPage:
        self.page.goto(f"{self.base}/exceptions/{exception_id}")
        return self

    def fact(self, name: str) -> str:
        """A fact of the exception (`Severity`, `State`, `Owner`, `Provider`, `Difference`, `Payout`, ...)."""
        return self.page.locator(f"dl.facts dt:text-is('{name}') + dd").inner_text().strip()

    def side(self, field: str) -> tuple[str, ...]:
        """One row of the side-by-side table (`Amount`, `Asset`, `Destination`, `Our reference`, `Provider
        reference`, `When`, `What`): our value first, then each provider line's."""
        row = self.page.locator("table.sides tbody tr").filter(has=self.page.locator(f"th:text-matches('^{field}')"))
        return tuple(t.strip() for t in row.locator("td").all_inner_texts())

    def differs(self, field: str) -> bool:
        row = self.page.locator("table.sides tbody tr").filter(has=self.page.locator(f"th:text-matches('^{field}')"))
        return "differs" in (row.get_attribute("class") or "")

    def history(self) -> list[str]:
        """What happened, oldest first (the history table's `What` column)."""
        return [t.strip() for t in self.page.locator("#history-h + div td[data-label='What']").all_inner_texts()]

    def _form(self, action: str) -> Locator:
        return self.page.locator(f'main form:has(input[name="action"][value="{action}"])')

    def offers(self, action: str) -> bool:
        """Whether the page offers `action` (acknowledge, a money action to propose, or the proposal to approve)."""
        return self._form(action).count() > 0

    def approve_button(self) -> Locator:
        """Never present for the proposer of the standing proposal."""
        return self.page.get_by_role("button", name="Approve", exact=False)

    def take(self, note: str = "") -> str:
        form = self.page.get_by_role("form", name="Take it")
        if note:
            form.get_by_label("Note (optional)").fill(note)
        with self.page.expect_navigation():
            form.get_by_role("button", name="Take it").click()
        return self.message()

    def acknowledge(self, reason: str) -> str:
        return self._resolve("acknowledge", reason)

    def propose(self, action: str, reason: str, *, withdrawal_id: str | None = None) -> str:
        """Proposes a money action (`write_off`, `mark_returned`, `book_fee`, `settle_found`, `settle_not_made`)."""
        return self._resolve(action, reason, withdrawal_id=withdrawal_id)

    def approve(self, reason: str) -> str:
        """Approves the standing proposal (another person's), as its form offers it."""
        form = self.page.get_by_role("form", name="Approve", exact=False)
        form.get_by_label("Why you approve it").fill(reason)
        with self.page.expect_navigation():
            form.get_by_role("button").click()
        return self.message()

    def _resolve(self, action: str, reason: str, *, withdrawal_id: str | None = None) -> str:
        form = self._form(action)
        if withdrawal_id is not None:
            form.locator('input[name="withdrawal_id"]').fill(withdrawal_id)
        form.locator('textarea[name="reason"]').fill(reason)
        with self.page.expect_navigation():
            form.get_by_role("button").click()
        return self.message()

    def notes(self) -> str:
        """What the page says about the actions (why nothing more is offered, who proposed what)."""
        return " ".join(t.strip() for t in self.page.locator("#act-h ~ p.flash").all_inner_texts())

    def message(self) -> str:
        return _message(self.page)


class ExportsPage:
    def __init__(self, page: Page, console_url: str) -> None:
        self.page = page
        self.base = console_url.rstrip("/")

    def open(self) -> ExportsPage:
        self.page.goto(f"{self.base}/exports")
        return self

    def download(
        self, name: str, first: date, last: date, *, provider: str | None = None, asset: str | None = None
    ) -> tuple[str, bytes]:
        """`ledger`, `payouts` or `reconciliation` for the days [first, last]: (its suggested name, its bytes)."""
        form = self.page.get_by_role("form", name=f"Download {name}.csv")
        form.get_by_label("First day").fill(first.isoformat())
        form.get_by_label("Last day").fill(last.isoformat())
        if provider is not None:
            form.get_by_label("Provider (optional)").fill(provider)
        if asset is not None:
            form.get_by_label("Asset (optional)").select_option(asset)
        return self._save(form.get_by_role("button", name=f"Download {name}.csv"))

    def download_history(self, player_id: str, first: date, last: date) -> tuple[str, bytes]:
        form = self.page.get_by_role("form", name="Download a player's history.csv")
        form.get_by_label("Player id").fill(player_id)
        form.get_by_label("First day").fill(first.isoformat())
        form.get_by_label("Last day").fill(last.isoformat())
        return self._save(form.get_by_role("button", name="Download history.csv"))

    def _save(self, button: Locator) -> tuple[str, bytes]:
        with self.page.expect_download() as started:
            button.click()
        download = started.value
        path = download.path()
        return download.suggested_filename, Path(path).read_bytes()

    def message(self) -> str:
        return _message(self.page)


def download_my_history(page: Page, console_url: str) -> tuple[str, bytes]:
    """A player's own history from the wallet page's link: (the suggested file name, its bytes)."""
    page.goto(f"{console_url.rstrip('/')}/wallet")
    with page.expect_download() as started:
        page.get_by_role("link", name="Download my history (CSV)").click()
    download = started.value
    return download.suggested_filename, Path(download.path()).read_bytes()


__all__ = ["ExceptionPage", "ExceptionsPage", "ExportsPage", "ReconciliationPage", "download_my_history"]
