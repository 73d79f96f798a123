"""Hold kinds are one table in code (`PAYOUT_HOLD_KINDS`) and one reference table in the database
(`payout_hold_kinds`, migration 0026): the two hold the same codes, and a code neither knows is refused by
PostgreSQL on the payout and on the gate's decision alike."""

from __future__ import annotations

import asyncpg
import pytest

from prizeflow_contracts.holds import PAYOUT_HOLD_KINDS
from prizeflow_payouts.domain.gate import HoldCode
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit.payouts import fetch

pytestmark = pytest.mark.integration

_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, hold_code, hold_detail, held_at, created_at, updated_at) "
    "VALUES ($1, $1, $1, 'h', $1, 'p-1', 'p-1', 'USDC', 10000000, 'sandbox', 'success:p-1', 'sandbox', 'sandbox', "
    "'pending_approval', 'single', 'c', 0, 3, $2, 'held', now(), now(), now())"
)


async def test_the_reference_table_holds_every_kind_and_nothing_else(db: str) -> None:
    rows = await fetch(db, "SELECT code FROM payout_hold_kinds")
    assert {r["code"] for r in rows} == {code.value for code in PAYOUT_HOLD_KINDS} == {c.value for c in HoldCode}


async def test_a_code_the_reference_table_does_not_know_is_refused(db: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        for n, code in enumerate(PAYOUT_HOLD_KINDS):
            await conn.execute(_INSERT, f"po-known-{n}", code.value)
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="payouts_hold_code_known"):
            await conn.execute(_INSERT, "po-unknown", "made_up")
        await conn.execute("INSERT INTO payout_hold_kinds (code) VALUES ('made_up')")  # a new kind: one row
        await conn.execute(_INSERT, "po-new-kind", "made_up")
    finally:
        await conn.close()
