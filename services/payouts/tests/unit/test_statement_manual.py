"""The manual rail's statement on in-memory evidence: an operator's report of a payout paid is a PAYOUT line with our
idempotency key and their reference, a return a REVERSAL line; keyset paging resumes after the last line; the
sandbox's stored destinations read back as the payout's address."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import (
    ListsStatement,
    StatementLine,
    StatementLineKind,
)
from prizeflow_payouts.adapters.providers.manual import Evidence, ManualPayoutProvider
from prizeflow_payouts.adapters.providers.sandbox_statement import _address

K = StatementLineKind
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def paid(n: int, at: datetime, reference: str | None = "bank-1", event: str = "paid") -> Evidence:
    return Evidence(
        payout_id=f"po-{n}",
        event=event,
        at=at,
        idempotency_key=f"key-{n}",
        reference=reference,
        asset="USD",
        amount=1000 + n,
        destination=f"iban-{n}",
    )


class Memory:
    """`ManualEvidence` over a list, with the SQL adapter's order, window and keyset."""

    def __init__(self, rows: list[Evidence]) -> None:
        self.rows = rows
        self.asked: list[str] = []

    async def recorded(
        self, provider: str, since: datetime, until: datetime, after: tuple[datetime, str], limit: int
    ) -> Sequence[Evidence]:
        self.asked.append(provider)
        chosen = sorted((e for e in self.rows if since <= e.at < until), key=lambda e: (e.at, e.line_id))
        return [e for e in chosen if (e.at, e.line_id) > after][:limit]


async def read_all(p: ManualPayoutProvider, since: datetime, until: datetime) -> tuple[list[StatementLine], int]:
    lines: list[StatementLine] = []
    cursor, pages = None, 0
    while True:
        page = await p.statement(since, until, cursor)
        pages += 1
        lines.extend(page.lines)
        if page.next_cursor is None:
            return lines, pages
        cursor = page.next_cursor


async def test_the_operators_reports_are_the_lines() -> None:
    memory = Memory([paid(1, T0, "bank-123"), paid(1, T0 + timedelta(days=1), event="returned"), paid(2, T0, None)])
    p = ManualPayoutProvider(name="manual-eu", evidence=memory)
    assert isinstance(p, ListsStatement)
    lines, _ = await read_all(p, T0, T0 + timedelta(days=2))
    got = [(x.line_id, x.kind, x.reference, x.provider_ref, x.destination, x.amount, x.asset) for x in lines]
    assert got == [
        ("po-1:paid", K.PAYOUT, "key-1", "bank-123", "iban-1", 1001, "USD"),
        ("po-2:paid", K.PAYOUT, "key-2", None, "iban-2", 1002, "USD"),
        ("po-1:returned", K.REVERSAL, "key-1", "bank-1", "iban-1", 1001, "USD"),
    ]
    assert set(memory.asked) == {"manual-eu"}  # its own payouts only


async def test_pages_resume_after_the_last_line_even_at_one_instant() -> None:
    rows = [paid(n, T0 + timedelta(minutes=n // 2)) for n in range(7)]  # two reports per minute
    p = ManualPayoutProvider(evidence=Memory(rows), page_size=2)
    lines, pages = await read_all(p, T0, T0 + timedelta(hours=1))
    assert [x.line_id for x in lines] == [f"po-{n}:paid" for n in range(7)]
    assert pages == 4
    window, _ = await read_all(p, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
    assert [x.line_id for x in window] == ["po-2:paid", "po-3:paid"]


async def test_unbound_or_a_foreign_cursor_is_refused() -> None:
    with pytest.raises(PayoutProviderError) as err:
        await ManualPayoutProvider().statement(T0, T0 + timedelta(hours=1))
    assert err.value.code is PayoutErrorCode.PROVIDER_UNAVAILABLE
    with pytest.raises(PayoutProviderError) as err:
        await ManualPayoutProvider(evidence=Memory([])).statement(T0, T0 + timedelta(hours=1), "page-2")
    assert err.value.code is PayoutErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    ("stored", "address"),
    [
        ("sandbox:success:p1", "success:p1"),
        ("stellar_account:GABC:memo-7", "GABC"),
        ("stellar_account:GABC", "GABC"),
    ],
)
def test_the_sandbox_reads_back_the_payouts_address(stored: str, address: str) -> None:
    assert _address(stored) == address
