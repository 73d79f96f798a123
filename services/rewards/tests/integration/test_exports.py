"""Finance exports on real PostgreSQL: the ledger's CSV has the ledger's numbers to the minor unit (each account's
posted rows sum to its balance, each asset's total to the tables' SUM), a player's history ends at the wallet's
balance, the export is read in chunks of a server-side cursor, and a bad request is refused before a byte."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from rewards_sql import bind
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_rewards.adapters.exports_pg import SqlLedgerExportReader
from prizeflow_rewards.application.exports import HISTORY_COLUMNS, LEDGER_COLUMNS, LedgerExportQuery
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferFlags, TransferKind, post_of, void_of
from prizeflow_runtime.csv_stream import ExportPeriod, neutralise
from prizeflow_runtime.db import session_factory
from prizeflow_testkit.rewards import Running, running_app, settings_for, token

pytestmark = pytest.mark.integration

BULK = 50_000
BULK_PLAYERS = 100
# A wallet owner and a flow id a spreadsheet would run as formulas: they come out as text.
MALLORY = "@mallory"
FORMULA_FLOW = "=HYPERLINK(evil)"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body, newline="")))


async def _flows(engine: AsyncEngine) -> None:
    """Every kind of row the ledger holds: direct, pending then posted, pending then voided, pending still, two
    assets, a payout settled to a provider."""
    pool, clearing = accounts.pool("camp-x", "USDC"), accounts.clearing("USDC")
    alice, mallory = accounts.wallet("alice", "USDC"), accounts.wallet(MALLORY, "USDC")
    reserve = Transfer.of(alice, clearing, 1_200, TransferKind.CLAIM_RESERVE, "cl-1", flags=TransferFlags.PENDING)
    dropped = Transfer.of(alice, clearing, 300, TransferKind.CLAIM_RESERVE, "cl-2", flags=TransferFlags.PENDING)
    batches = [
        [Transfer.of(accounts.treasury("USDC"), pool, 100_000, TransferKind.CAMPAIGN_FUNDING, "camp-x", "wire-1")],
        [
            Transfer.of(pool, alice, 5_000, TransferKind.REWARD, "round-1", "alice", correlation_id="round-1"),
            Transfer.of(pool, mallory, 2_500, TransferKind.REWARD, "round-1", MALLORY, correlation_id=FORMULA_FLOW),
        ],
        [reserve, dropped],
        [
            post_of(reserve, "paid"),
            void_of(dropped, "failed"),
            Transfer.of(clearing, accounts.external("stellar", "USDC"), 1_200, TransferKind.PAYOUT_SETTLE, "cl-1"),
        ],
        [Transfer.of(alice, clearing, 200, TransferKind.CLAIM_RESERVE, "cl-3", flags=TransferFlags.PENDING)],
        [Transfer.of(accounts.treasury("XLM"), accounts.wallet("alice", "XLM"), 777, TransferKind.TOP_UP, "t-1")],
    ]
    for batch in batches:
        async with engine.begin() as conn:
            await bind(conn).ledger.apply(batch)


async def _insert_direct(engine: AsyncEngine, *, rows: int, owners: list[str], at: datetime, key: str) -> None:
    """`rows` posted top-ups treasury -> wallets of `owners` (round robin), amounts 1..rows, created from `at` on,
    written in one INSERT ... SELECT generate_series with the accounts' counters moved to match."""
    treasury = accounts.treasury("USDC")
    wallets = [accounts.wallet(o, "USDC") for o in owners]
    async with engine.begin() as conn:
        await bind(conn).ledger.declare([treasury, *wallets])
        await conn.execute(
            text(
                "INSERT INTO ledger_transfers "
                "(id, debit_account_id, credit_account_id, asset, amount, kind, flags, business_key, correlation_id, "
                " created_at) "
                "SELECT gen_random_uuid(), :treasury, (CAST(:wallets AS uuid[]))[1 + g % :n], 'USDC', g, 'top_up', 0, "
                "       'top_up|' || :key || '|' || g, :key || '-' || g, "
                "       CAST(:at AS timestamptz) + g * interval '1 millisecond' "
                "FROM generate_series(1, :rows) g"
            ),
            {"treasury": treasury.id, "wallets": [w.id for w in wallets], "n": len(wallets), "key": key,
             "at": at, "rows": rows},
        )  # fmt: skip
        await conn.execute(
            text(
                "UPDATE ledger_accounts a SET credits_posted = a.credits_posted + s.total FROM ("
                "  SELECT credit_account_id AS id, sum(amount) AS total FROM ledger_transfers "
                "  WHERE business_key LIKE 'top_up|' || :key || '|%' GROUP BY 1) s WHERE a.id = s.id"
            ),
            {"key": key},
        )
        await conn.execute(
            text(
                "UPDATE ledger_accounts SET debits_posted = debits_posted + "
                "  (SELECT sum(amount) FROM ledger_transfers WHERE business_key LIKE 'top_up|' || :key || '|%') "
                "WHERE id = :treasury"
            ),
            {"key": key, "treasury": treasury.id},
        )


async def _balances(engine: AsyncEngine) -> dict[tuple[str, str, str], int]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT kind, owner_id, asset, credits_posted - debits_posted AS posted FROM ledger_accounts")
        )
        return {(r.kind, neutralise(r.owner_id), r.asset): int(r.posted) for r in found}


def _posted_by_account(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in rows:
        if r["status"] == "posted":
            amount = int(r["amount"])
            out[(r["debit_account_kind"], r["debit_account_owner"], r["asset"])] -= amount
            out[(r["credit_account_kind"], r["credit_account_owner"], r["asset"])] += amount
    return dict(out)


async def test_the_ledger_export_has_the_ledgers_numbers_to_the_minor_unit(
    database_url: str, engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    now = datetime.now(UTC)
    await _flows(engine)
    owners = [f"bulk-{i}" for i in range(BULK_PLAYERS)]
    await _insert_direct(engine, rows=BULK, owners=owners, at=now - timedelta(hours=2), key="bulk")
    # Ten days back: outside a period of the last day, inside one of the last month.
    await _insert_direct(engine, rows=10, owners=["alice"], at=now - timedelta(days=10), key="old")

    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings, routes=()) as app:
        everything = {"since": _iso(now - timedelta(days=30)), "until": _iso(now + timedelta(hours=1))}
        r = await app.client.get("/v1/admin/exports/ledger.csv", params=everything, headers=app.ops)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert r.text.splitlines()[0] == ",".join(LEDGER_COLUMNS)
        rows = _rows(r.text)

        async with engine.connect() as conn:
            count, posted_sum = (
                await conn.execute(
                    text("SELECT count(*), sum(amount) FILTER (WHERE flags & 5 = 0) FROM ledger_transfers")
                )
            ).one()
            sums = await conn.execute(
                text("SELECT asset, sum(amount) FROM ledger_transfers WHERE flags & 5 = 0 GROUP BY asset")
            )
            per_asset = {str(a): int(total) for a, total in sums}
        assert len(rows) == count == BULK + 10 + 10
        assert len({r["transfer_id"] for r in rows}) == count
        assert sum(int(r["amount"]) for r in rows if r["status"] == "posted") == posted_sum
        exported: Counter[str] = Counter()
        for row in rows:
            if row["status"] == "posted":
                exported[row["asset"]] += int(row["amount"])
        assert dict(exported) == per_asset
        # Every account, every asset: its posted rows add up to its balance (accounts no transfer moved are 0).
        balances = await _balances(engine)
        by_account = _posted_by_account(rows)
        assert by_account == {k: v for k, v in balances.items() if k in by_account}
        assert all(v == 0 for k, v in balances.items() if k not in by_account)
        assert by_account[("player_wallet", "alice", "USDC")] == 5_000 - 1_200 + sum(range(1, 11))
        assert by_account[("player_wallet", "'" + MALLORY, "USDC")] == 2_500

        # Every status and what it resolves; a formula-looking cell is text; ledger order.
        statuses = Counter(r["status"] for r in rows)
        assert statuses == {"posted": count - 4, "pending": 3, "voided": 1}
        void = next(r for r in rows if r["status"] == "voided")
        assert void["resolves_transfer_id"] in {r["transfer_id"] for r in rows if r["status"] == "pending"}
        assert {r["correlation_id"] for r in rows if r["credit_account_owner"] == "'" + MALLORY} == {"'" + FORMULA_FLOW}
        assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
        assert all(r["created_at"].endswith("Z") for r in rows)

        # The period and the asset filter: the last day leaves the old rows out; XLM alone.
        last_day = {"since": _iso(now - timedelta(days=1)), "until": _iso(now + timedelta(hours=1))}
        r = await app.client.get("/v1/admin/exports/ledger.csv", params=last_day, headers=app.admin)
        assert len(_rows(r.text)) == count - 10
        r = await app.client.get("/v1/admin/exports/ledger.csv", params={**last_day, "asset": "XLM"}, headers=app.admin)
        assert [(x["kind"], x["amount"], x["credit_account_owner"]) for x in _rows(r.text)] == [
            ("top_up", "777", "alice")
        ]

    # Read in chunks of a server-side cursor: 50 020 rows are 11 fetches of at most 5 000.
    reader = SqlLedgerExportReader(session_factory(engine))
    period = ExportPeriod.parse(everything["since"], everything["until"])
    sizes = [len(c) async for c in reader.transfers(LedgerExportQuery(period), chunk_rows=5_000)]
    assert sizes == [5_000] * 10 + [count - 50_000]
    assert len(sizes) == math.ceil(count / 5_000)


async def _wallet(app: Running, player: str) -> dict[str, int]:
    return {asset: b["balance"] for asset, b in (await app.balances(player)).items()}


async def test_a_players_history_runs_to_the_wallets_balance(
    database_url: str, engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    now = datetime.now(UTC)
    await _insert_direct(engine, rows=10, owners=["alice"], at=now - timedelta(days=10), key="old")
    await _flows(engine)
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings, routes=()) as app:
        wallet = await _wallet(app, "alice")
        assert wallet == {"USDC": 55 + 5_000 - 1_200, "XLM": 777}
        until = _iso(now + timedelta(hours=1))

        # The whole history: from zero to the balance, a signed amount per movement.
        whole = {"since": _iso(now - timedelta(days=30)), "until": until}
        r = await app.client.get("/v1/admin/exports/players/alice/history.csv", params=whole, headers=app.ops)
        assert r.status_code == 200, r.text
        assert r.text.splitlines()[0] == ",".join(HISTORY_COLUMNS)
        rows = _rows(r.text)
        assert len(rows) == 10 + 1 + 3 + 2 + 1  # old top-ups, reward, 3 reserves, post + void, XLM
        last = {row["asset"]: int(row["running_balance"]) for row in rows}
        assert last == wallet
        for asset in ("USDC", "XLM"):
            of_asset = [x for x in rows if x["asset"] == asset]
            balance = 0
            for x in of_asset:
                balance += int(x["amount"]) if x["status"] == "posted" else 0
                assert int(x["running_balance"]) == balance
        claims = [(x["kind"], x["status"], x["amount"]) for x in rows if x["kind"].startswith(("claim", "payout"))]
        assert sorted(claims) == [  # one batch applies in the ledger's own order
            ("claim_reserve", "pending", "-1200"),
            ("claim_reserve", "pending", "-200"),
            ("claim_reserve", "pending", "-300"),
            ("payout_post", "posted", "-1200"),
            ("payout_void", "voided", "-300"),
        ]
        assert claims[-1] == ("claim_reserve", "pending", "-200")
        # Nothing of another player's wallet, nor the settlement that never touched hers.
        assert {x["counterparty_kind"] for x in rows} == {"treasury", "campaign_pool", "payout_clearing"}

        # A period after the old top-ups opens at their total; it still ends at the balance.
        recent = {"since": _iso(now - timedelta(days=1)), "until": until}
        r = await app.client.get("/v1/admin/exports/players/alice/history.csv", params=recent, headers=app.admin)
        rows = _rows(r.text)
        assert (rows[0]["kind"], rows[0]["amount"], rows[0]["running_balance"]) == ("reward", "5000", str(55 + 5_000))
        assert {row["asset"]: int(row["running_balance"]) for row in rows} == wallet

        # The player's own export is the same; the token's subject decides whose it is.
        mine = await app.client.get("/v1/me/history.csv", params=recent, headers=app.player("alice"))
        assert (mine.status_code, mine.text) == (200, r.text)
        bob = await app.client.get("/v1/me/history.csv", params=recent, headers=app.player("bob"))
        assert (bob.status_code, bob.text.splitlines()) == (200, [",".join(HISTORY_COLUMNS)])
        refused = await app.client.get(
            "/v1/admin/exports/players/alice/history.csv", params=recent, headers=app.player("bob")
        )
        assert refused.status_code == 403


async def test_a_bad_request_is_refused_before_a_byte(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings, routes=()) as app:
        cases = {
            "reversed": ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "invalid_period"),
            "empty": ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "invalid_period"),
            "too_long": ({"since": "2025-01-01", "until": "2026-01-03"}, "invalid_period"),
            "not_a_date": ({"since": "yesterday", "until": "2026-01-03"}, "invalid_period"),
            "missing": ({"until": "2026-01-03"}, "invalid_period"),
            "asset": ({"since": "2026-01-01", "until": "2026-01-02", "asset": "DOGE"}, "unknown_asset"),
        }
        for name, (params, code) in cases.items():
            r = await app.client.get("/v1/admin/exports/ledger.csv", params=params, headers=app.ops)
            assert (name, r.status_code, r.json()["code"]) == (name, 400, code)
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await app.client.get("/v1/me/history.csv", params=cases["reversed"][0], headers=app.player("alice"))
        assert (r.status_code, r.json()["code"]) == (400, "invalid_period")
        # A year and a day at most; who may read what.
        ok = {"since": "2025-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}
        assert (await app.client.get("/v1/admin/exports/ledger.csv", params=ok, headers=app.admin)).status_code == 200
        approver = token(settings, "apr-1", "approver")  # ops and admins read too
        assert (await app.client.get("/v1/admin/exports/ledger.csv", params=ok, headers=approver)).status_code == 200
        assert (await app.client.get("/v1/admin/exports/ledger.csv", params=ok)).status_code == 401
        player = app.player("alice")
        assert (await app.client.get("/v1/admin/exports/ledger.csv", params=ok, headers=player)).status_code == 403
        assert (await app.client.get("/v1/me/history.csv", params=ok, headers=app.ops)).status_code == 403
