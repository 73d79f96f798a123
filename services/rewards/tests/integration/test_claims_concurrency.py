"""50 concurrent claims against one wallet on real PostgreSQL: the wallet is never overdrawn."""

from __future__ import annotations

import asyncio

import pytest
from rewards_sql import bind, sql_uow
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_rewards.adapters.routes_pg import publish_routes
from prizeflow_rewards.application.claims import ClaimError, SubmitClaim
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_runtime.auth import Principal, Role
from prizeflow_testkit.rewards import OPEN_CLAIM_POLICY, routes_event

pytestmark = pytest.mark.integration

KEY = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"


async def test_fifty_concurrent_claims_never_overdraw(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await bind(conn, strict=True).ledger.apply(
            [
                Transfer.of(
                    accounts.external("stripe", "USDC"), accounts.wallet("p", "USDC"), 10_000, TransferKind.TOP_UP, "s"
                )
            ],
        )
        await publish_routes(conn, routes_event().data)
    submit = SubmitClaim(OPEN_CLAIM_POLICY, "/test")
    uow = sql_uow(engine)
    who = Principal("p", frozenset({Role.PLAYER}))
    dest = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=KEY)
    gate = asyncio.Event()

    async def claim(i: int) -> str:
        async with uow() as books:
            await gate.wait()
            try:
                c, _ = await submit(
                    books, who, player_id="p", asset="USDC", amount=700, destination=dest, idempotency_key=f"k{i}"
                )
            except ClaimError as err:
                return err.code
            return c.status.value

    tasks = [asyncio.create_task(claim(i)) for i in range(50)]
    await asyncio.sleep(0.1)
    gate.set()
    outcomes = await asyncio.gather(*tasks)
    assert outcomes.count("approved") == 14  # 14 * 700 = 9_800 <= 10_000 < 15 * 700
    assert outcomes.count("insufficient_balance") == 36
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT credits_posted, debits_posted, debits_pending FROM ledger_accounts WHERE id = :id"),
                {"id": accounts.wallet("p", "USDC").id},
            )
        ).one()
        claims = (await conn.execute(text("SELECT count(*), sum(amount) FROM claims"))).one()
    assert (row.credits_posted, row.debits_posted, row.debits_pending) == (10_000, 0, 9_800)
    assert (claims[0], claims[1]) == (14, 9_800)
