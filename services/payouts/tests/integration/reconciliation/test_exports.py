"""The payouts export on real PostgreSQL: every payout of the period once, with the tables' totals per provider,
asset and state, no destination address anywhere, read in chunks of a server-side cursor; a bad request is refused
before a byte."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from prizeflow_reconciliation.adapters.exports_pg import PgPayoutExportReader
from prizeflow_reconciliation.application.exports import PAYOUT_COLUMNS, PayoutExportQuery
from prizeflow_runtime.csv_stream import ExportPeriod
from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_testkit.payouts import fetch, providers_file, request_payout, running, settings_for, token, wait_state

pytestmark = pytest.mark.integration

BULK = 12_000


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body, newline="")))


async def _insert_bulk(db: str, *, at: datetime, rows: int, key: str) -> None:
    """`rows` payouts in one INSERT ... SELECT generate_series: sandbox (USDC) and manual (USD), every tenth
    cancelled, the others paid with a fee on every fourth; each with a destination address that must never leave."""
    await fetch(
        db,
        """
        INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by,
            asset, amount, destination_type, destination_address, provider_type, provider_name, state,
            approval_policy, correlation_id, max_attempts, created_at, updated_at, paid_at, finished_at, provider_ref,
            fee_asset, fee_amount)
        SELECT 'po-' || $1 || '-' || g, 'pr-' || $1 || '-' || g, $1 || '-' || g, 'h', 'cl-' || $1 || '-' || g,
            'player-' || g % 50, 'player-' || g % 50,
            CASE WHEN g % 3 = 0 THEN 'USDC' ELSE 'USD' END, g,
            CASE WHEN g % 3 = 0 THEN 'sandbox' ELSE 'manual' END, 'SECRET-ADDRESS-' || g,
            CASE WHEN g % 3 = 0 THEN 'sandbox' ELSE 'manual' END, CASE WHEN g % 3 = 0 THEN 'sandbox' ELSE 'manual' END,
            CASE WHEN g % 10 = 0 THEN 'cancelled' ELSE 'paid' END, 'auto', 'flow-' || g, 3,
            $2::timestamptz + g * interval '1 millisecond', $2::timestamptz + g * interval '1 millisecond',
            CASE WHEN g % 10 = 0 THEN NULL ELSE $2::timestamptz + g * interval '2 millisecond' END,
            $2::timestamptz + g * interval '2 millisecond',
            CASE WHEN g % 10 = 0 THEN NULL ELSE '-ref-' || g END,
            CASE WHEN g % 4 = 0 AND g % 10 <> 0 THEN CASE WHEN g % 3 = 0 THEN 'USDC' ELSE 'USD' END END,
            CASE WHEN g % 4 = 0 AND g % 10 <> 0 THEN 7 END
        FROM generate_series(1, $3) g
        """,
        key,
        at,
        rows,
    )


async def _totals(db: str, since: datetime, until: datetime) -> dict[tuple[str, str, str], tuple[int, int, int]]:
    found = await fetch(
        db,
        "SELECT provider_name, asset, state, count(*) AS n, sum(amount) AS amount, coalesce(sum(fee_amount), 0) AS fee "
        "FROM payouts WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2, 3",
        since,
        until,
    )
    return {(r["provider_name"], r["asset"], r["state"]): (r["n"], r["amount"], r["fee"]) for r in found}


def _exported(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], tuple[int, int, int]]:
    n: Counter[tuple[str, str, str]] = Counter()
    amount: Counter[tuple[str, str, str]] = Counter()
    fee: Counter[tuple[str, str, str]] = Counter()
    for r in rows:
        k = (r["provider"], r["asset"], r["state"])
        n[k] += 1
        amount[k] += int(r["amount"])
        fee[k] += int(r["fee_amount"] or 0)
    return {k: (n[k], amount[k], fee[k]) for k in n}


async def test_the_payouts_export_has_the_tables_totals_and_no_destination(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    await _insert_bulk(db, at=now - timedelta(hours=3), rows=BULK, key="bulk")
    await _insert_bulk(db, at=now - timedelta(days=40), rows=20, key="old")
    ops = token(settings, "olga", "ops")
    async with running(settings) as (_, client):
        # Two payouts through the service itself (sandbox pays them).
        for key in ("real-1", "real-2"):
            await request_payout(settings, key, amount=50, address="success:=SECRET-ADDRESS-real")
            assert await wait_state(db, key, "paid") == "paid"
        since, until = now - timedelta(days=1), now + timedelta(hours=1)
        period = {"since": _iso(since), "until": _iso(until)}
        r = await client.get("/v1/admin/exports/payouts.csv", params=period, headers=ops)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert r.text.splitlines()[0] == ",".join(PAYOUT_COLUMNS)
        assert "SECRET-ADDRESS" not in r.text
        rows = _rows(r.text)
        assert len(rows) == BULK + 2 == len({x["payout_id"] for x in rows})
        assert _exported(rows) == await _totals(db, since, until)
        real = [x for x in rows if x["idempotency_key"].startswith("real-")]
        assert [(x["state"], x["amount"], x["destination_type"], x["provider"]) for x in real] == [
            ("paid", "50", "sandbox", "sandbox")
        ] * 2
        assert all(x["paid_at"].endswith("Z") for x in real)
        # A provider reference starting with '-' is text, never a formula; amounts stay numbers.
        assert {x["provider_ref"][:5] for x in rows if x["state"] == "paid" and x["provider"] == "manual"} == {"'-ref"}
        assert [x["created_at"] for x in rows] == sorted(x["created_at"] for x in rows)

        # Filters: the provider, the asset; the old ones are in a period of their own.
        r = await client.get(
            "/v1/admin/exports/payouts.csv", params={**period, "provider": "manual", "asset": "USD"}, headers=ops
        )
        filtered = _rows(r.text)
        assert {(x["provider"], x["asset"]) for x in filtered} == {("manual", "USD")}
        assert len(filtered) == sum(1 for g in range(1, BULK + 1) if g % 3 != 0)
        old = {"since": _iso(now - timedelta(days=41)), "until": _iso(now - timedelta(days=39))}
        r = await client.get("/v1/admin/exports/payouts.csv", params=old, headers=token(settings, "ann", "approver"))
        assert len(_rows(r.text)) == 20

        # Refused before a byte.
        bad = {
            "reversed": ({"since": period["until"], "until": period["since"]}, "invalid_period"),
            "too_long": ({"since": "2025-01-01", "until": "2026-01-03"}, "invalid_period"),
            "provider": ({**period, "provider": "nope"}, "unknown_provider"),
            "asset": ({**period, "asset": "DOGE"}, "unknown_asset"),
        }
        for name, (params, code) in bad.items():
            r = await client.get("/v1/admin/exports/payouts.csv", params=params, headers=ops)
            assert (name, r.status_code, r.json()["code"]) == (name, 400, code)
            assert r.headers["content-type"].startswith("application/problem+json")
        player = token(settings, "p-1", "player")
        assert (await client.get("/v1/admin/exports/payouts.csv", params=period, headers=player)).status_code == 403
        assert (await client.get("/v1/admin/exports/payouts.csv", params=period)).status_code == 401

    # Read in chunks of a server-side cursor.
    engine = create_engine(db)
    try:
        reader = PgPayoutExportReader(session_factory(engine))
        query = PayoutExportQuery(ExportPeriod(since, until))
        sizes = [len(c) async for c in reader.payouts(query, chunk_rows=5_000)]
    finally:
        await engine.dispose()
    assert sizes == [5_000, 5_000, BULK + 2 - 10_000]
