"""The reconciliation bench's fake statement (services/payouts/bench/bench_reconciliation.py) pages every line once,
at most a page's size at a time, the same page for the same cursor; and the differences it injects are exactly
the ones the matching rules find, so the bench's correctness check means something."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from prizeflow_reconciliation.domain import ExceptionKind, reconcile

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_reconciliation.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_reconciliation", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_pages_every_line_once_within_the_page_size(bench: ModuleType) -> None:
    window = bench.Window("t", 3, bench.datetime(2026, 11, 25, 10, tzinfo=bench.UTC), 2_000, 20)
    fake = bench.FakeStatement(window, 100)
    since, until = window.since - bench.timedelta(minutes=15), window.until + bench.timedelta(minutes=15)

    async def pages() -> list[tuple[str | None, object]]:
        out: list[tuple[str | None, object]] = []
        cursor: str | None = None
        while True:
            page = await fake.statement(since, until, cursor)
            out.append((cursor, page))
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    got = asyncio.run(pages())
    lines = [line for _, page in got for line in page.lines]  # type: ignore[attr-defined]
    assert all(len(page.lines) <= 100 for _, page in got)  # type: ignore[attr-defined]
    assert len(got) == -(-window.expected()["lines"] // 100) == fake.calls
    assert len(lines) == len({line.line_id for line in lines}) == window.expected()["lines"]
    cursor, third = got[2]
    assert asyncio.run(fake.statement(since, until, cursor)) == third  # a resumed run sees the same page
    narrow = asyncio.run(fake.statement(window.until, until, None))
    assert narrow.lines == ()  # only lines inside the asked window


def test_the_injected_differences_are_what_reconciliation_finds(bench: ModuleType) -> None:
    window = bench.Window("t", 3, bench.datetime(2026, 11, 25, 10, tzinfo=bench.UTC), 2_000, 20)
    lines = [window.line(code) for code in window.codes]
    ours = [window.ours(i) for i in range(window.payouts)]
    outcome = reconcile(lines, ours, since=window.since, until=window.until)
    by_subject = {f.subject: f.kind for f in outcome.findings}
    assert len(by_subject) == len(outcome.findings)  # one finding per injected difference
    injected = {
        (f"line:txn_t_3_{i}_u" if role == "unrequested" else f"payout:{window.payout_id(i)}"): role
        for i, role in window.roles.items()
        if role in bench.KINDS
    }
    assert set(by_subject) == set(injected)
    named = {
        "missing": ExceptionKind.MISSING,
        "destination": ExceptionKind.DESTINATION_MISMATCH,
        "duplicate": ExceptionKind.DUPLICATE,
        "unrequested": ExceptionKind.UNREQUESTED,
    }
    assert all(by_subject[s] is named[r] for s, r in injected.items() if r in named)
    # 1 paid above our amount: an amount difference, whatever kind the rules give it, never one of the others
    amount = {by_subject[s] for s, r in injected.items() if r == "amount"}
    assert len(amount) == 1
    assert not amount & set(named.values())
    assert Counter(injected.values()) == dict.fromkeys(bench.KINDS, 4)
    assert (outcome.lines, outcome.matched, len(outcome.findings)) == tuple(window.expected().values())
    assert len(window.with_role("fee")) == len(window.with_role("reversal")) == 10  # ~1 % more lines, no finding
