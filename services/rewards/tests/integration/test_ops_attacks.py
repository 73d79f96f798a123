"""Attacks on the operators' money APIs on real PostgreSQL: what the database refuses whatever the code does, and
the races between an operator's action and the event flow."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_rewards.adapters.ledger_pg import PgLedger
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_runtime.db import session_factory

pytestmark = pytest.mark.integration


async def test_the_database_refuses_a_correction_approved_by_the_owner_of_its_wallet(engine: AsyncEngine) -> None:
    wallet, treasury = accounts.wallet("ap-own", "USDC"), accounts.treasury("USDC")
    own = Transfer.of(treasury, wallet, 10, TransferKind.CORRECTION, "lc-own")
    async with session_factory(engine)() as s, s.begin():
        await PgLedger().declare(s, [wallet, treasury])
        await PgLedger().apply(s, [own])
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ledger_corrections (id, reference, debit_account_id, credit_account_id, asset, amount, "
                "reason, correlation_id, status, proposed_by, proposed_at) "
                "VALUES ('lc-own', 'own-1', :d, :c, 'USDC', 10, 'x', 'c', 'proposed', 'ops-1', now())"
            ),
            {"d": treasury.id, "c": wallet.id},
        )
    apply = (
        "UPDATE ledger_corrections SET status = 'applied', approved_by = :by, approved_at = now(), "
        "transfer_id = :t WHERE id = 'lc-own'"
    )
    with pytest.raises(DBAPIError, match="approves money of their own account"):
        async with engine.begin() as conn:
            await conn.execute(text(apply), {"by": "ap-own", "t": own.id})
    async with engine.begin() as conn:
        await conn.execute(text(apply), {"by": "ap-2", "t": own.id})
