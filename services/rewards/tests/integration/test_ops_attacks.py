"""Attacks on the operators' money APIs on real PostgreSQL: what the database refuses whatever the code does, and
the races between an operator's action and the event flow."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rewards_sql import bind, sql_uow
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.settlement import RoundSettled
from prizeflow_rewards.application.campaigns import CloseCampaign, CreateCampaign, FundCampaign
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.errors import UseCaseError
from prizeflow_testkit import eventually
from prizeflow_testkit.events import example_payload

pytestmark = pytest.mark.integration


async def test_the_database_refuses_a_correction_approved_by_the_owner_of_its_wallet(engine: AsyncEngine) -> None:
    wallet, treasury = accounts.wallet("ap-own", "USDC"), accounts.treasury("USDC")
    own = Transfer.of(treasury, wallet, 10, TransferKind.CORRECTION, "lc-own")
    async with session_factory(engine)() as s, s.begin():
        ledger = bind(s).ledger
        await ledger.declare([wallet, treasury])
        await ledger.apply([own])
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


ADMIN = Principal("admin-1", frozenset({Role.ADMIN}))


async def _waiting_on_a_lock(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
        return int(found.scalar_one())


async def test_a_round_held_for_the_pool_while_it_is_being_closed_keeps_the_campaign_open(engine: AsyncEngine) -> None:
    """A round too big for the pool is held (its winners wait for the pool) while an operator closes the campaign:
    the close saw no held round when it began, but must not sweep the pool and close under a round held meanwhile
    (a closed campaign's held round can never be released: its winners would never be paid)."""
    uow = sql_uow(engine)
    sessions = session_factory(engine)
    await CreateCampaign(uow, "/t")(
        ADMIN, campaign_id="camp-r", name="r", asset="USDC", low_threshold=None, correlation_id="c"
    )
    await FundCampaign(uow, "/t")(ADMIN, campaign_id="camp-r", amount=100, reference="wire-1", correlation_id="c")
    payload = example_payload(
        RoundSettled,
        round_id="r-big",
        asset="USDC",
        prize_source="sponsored",
        campaign_id="camp-r",
        distributable=500,
        allocations=[{"player_id": "p-win", "rank": 1, "amount": 500, "source": "pool"}],
        remainder=0,
        fees=[],
    )
    big = new_event(payload, source="/t", correlation_id="r-big")
    close = CloseCampaign(uow, "/t")
    outcome: dict[str, Any] = {}
    async with sessions() as a:
        await a.begin()
        # The pool is short: the round is held (not committed yet).
        await RoundMoney("/t").settle(bind(a, strict=True), big)

        async def closing() -> None:
            try:
                done = await close(ADMIN, campaign_id="camp-r", reason="over", correlation_id="x")
                outcome["close"] = done
            except UseCaseError as err:
                outcome["close"] = err.code

        racing = asyncio.create_task(closing())
        await eventually(lambda: _waiting_on_a_lock(engine), lambda n: n >= 1, timeout=10)  # close waits on the pool
        await a.commit()
    await racing
    async with engine.connect() as conn:
        status = (await conn.execute(text("SELECT status FROM campaigns WHERE id = 'camp-r'"))).scalar_one()
        held = (await conn.execute(text("SELECT status FROM held_allocations WHERE round_id = 'r-big'"))).all()
    assert [r[0] for r in held] == ["held"]
    assert (outcome["close"], status) == ("reservations_pending", "active")
