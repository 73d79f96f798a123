"""The manual and sandbox rails' statements on real PostgreSQL + Kafka, from real payouts through the service: the
manual one from what operators reported (mark-paid with their reference, a return), the sandbox one from its own
transfers, both read in pages; a failed manual payout and another provider's payouts are not in them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from prizeflow_contracts.providers import StatementLine, StatementLineKind
from prizeflow_payouts.adapters.providers.manual import ManualPayoutProvider, SqlManualEvidence
from prizeflow_payouts.adapters.providers.sandbox import SandboxPayoutProvider
from prizeflow_payouts.adapters.providers.sandbox_statement import SandboxStatement
from prizeflow_runtime.db import asyncpg_dsn, create_engine
from prizeflow_testkit.payouts import (
    fetch,
    providers_file,
    request_payout,
    running,
    settings_for,
    token,
    unique,
    wait_state,
)

pytestmark = pytest.mark.integration
K = StatementLineKind


async def read_all(
    p: ManualPayoutProvider | SandboxStatement, since: datetime, until: datetime
) -> tuple[list[StatementLine], int]:
    lines: list[StatementLine] = []
    cursor, pages = None, 0
    while True:
        page = await p.statement(since, until, cursor)
        pages += 1
        lines.extend(page.lines)
        if page.next_cursor is None:
            return lines, pages
        cursor = page.next_cursor


async def test_manual_and_sandbox_statements_from_real_payouts(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    ops = token(settings, "olga", "ops")
    since = datetime.now(UTC) - timedelta(seconds=5)
    async with running(settings) as (parts, client):
        manual = [unique("man") for _ in range(4)]
        ids = [
            await request_payout(settings, k, amount=10**7, address=f"iban-{n}", dtype="manual")
            for n, k in enumerate(manual)
        ]
        sandbox = [unique("sbx") for _ in range(5)]
        for n, k in enumerate(sandbox):
            await request_payout(settings, k, amount=(n + 1) * 10**7, address=f"success:p{n}")
        for k in manual:
            assert await wait_state(db, k, "submitted") == "submitted"
        for n, pid in enumerate(ids[:3]):
            r = await client.post(f"/payouts/{pid}/mark-paid", json={"reference": f"bank-{n}"}, headers=ops)
            assert r.json()["state"] == "paid"
        r = await client.post(
            f"/payouts/{ids[3]}/mark-failed", json={"reason": "account closed", "code": "account_closed"}, headers=ops
        )
        assert r.json()["state"] == "failed"
        for k in sandbox:
            assert await wait_state(db, k, "paid") == "paid"
        registered = {e.name: e.provider for e in parts.config.registry}
        assert isinstance(registered["manual"], ManualPayoutProvider)
        assert isinstance(registered["manual"]._evidence, SqlManualEvidence)  # bootstrap bound the service's pool

        # A return recorded later (what the reconciliation's mark_returned does through payouts' transition).
        returned_at = datetime.now(UTC)
        await fetch(db, "UPDATE payouts SET state = 'returned', updated_at = $2 WHERE id = $1", ids[0], returned_at)
        await fetch(
            db,
            """INSERT INTO payout_history (payout_id, from_state, to_state, at, actor)
               VALUES ($1, 'paid', 'returned', $2, 'test')""",
            ids[0],
            returned_at,
        )
        until = datetime.now(UTC) + timedelta(seconds=5)

        engine = create_engine(db)  # this loop's own pool (the service's runs in the test client's)
        small = ManualPayoutProvider(name="manual", evidence=SqlManualEvidence(engine), page_size=2)
        try:
            lines, pages = await read_all(small, since, until)
            later, _ = await read_all(small, until, until + timedelta(hours=1))
        finally:
            await engine.dispose()
        assert pages == 3  # four lines two a page, then an empty page (a full page cannot know it was the last)
        payouts = sorted((x for x in lines if x.kind is K.PAYOUT), key=lambda x: x.provider_ref or "")
        assert [(x.reference, x.provider_ref, x.destination, x.amount, x.asset) for x in payouts] == [
            (manual[n], f"bank-{n}", f"iban-{n}", 10**7, "USDC") for n in range(3)
        ]
        assert [x.line_id for x in payouts] == [f"{ids[n]}:paid" for n in range(3)]
        [back] = [x for x in lines if x.kind is K.REVERSAL]
        assert (back.line_id, back.reference, back.amount, back.occurred_at) == (
            f"{ids[0]}:returned",
            manual[0],
            10**7,
            returned_at,
        )
        assert all(since <= x.occurred_at < until for x in lines)
        assert later == []

        sbx = SandboxPayoutProvider(
            dsn=asyncpg_dsn(db),
            scenarios={},
            default_scenario="success",
            statement_page_size=2,
        )
        try:
            lines, pages = await read_all(SandboxStatement(sbx), since, until)
        finally:
            await sbx.close()
        assert pages == 3
        assert len({x.line_id for x in lines}) == 5
        refs = {
            r["idempotency_key"]: r["provider_ref"]
            for r in await fetch(
                db, "SELECT idempotency_key, provider_ref FROM payouts WHERE idempotency_key = ANY($1)", sandbox
            )
        }
        assert sorted((x.reference, x.provider_ref, x.destination, x.amount, x.kind) for x in lines) == sorted(
            (k, refs[k], f"success:p{n}", (n + 1) * 10**7, K.PAYOUT) for n, k in enumerate(sandbox)
        )
