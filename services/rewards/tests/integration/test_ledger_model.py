"""Model-based test of the ledger flows against the REAL PostgreSQL ledger (hypothesis stateful).

Each step applies the same transfers the use cases build (funding, a round's allocations as one linked
batch, entry fees, claims reserving, payouts posting or voiding, refunds) and sometimes replays an earlier
batch. After every step the database is checked against the model and the invariants: per asset the sum of
balances is zero, no wallet/pool/clearing is negative, every business key moved money at most once, and
for every pool funded = paid + reserved + remaining. Bounded: 30 examples of up to 25 steps.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_rewards.adapters.ledger_pg import SqlLedger
from prizeflow_rewards.application.claims import reservation
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import LedgerError, Transfer, TransferKind, post_of, void_of
from prizeflow_runtime.db import create_engine
from prizeflow_runtime.migrations import upgrade_to_head

pytestmark = pytest.mark.integration

ALEMBIC_INI = str(Path(__file__).resolve().parents[2] / "alembic.ini")
PLAYERS = ("a", "b", "c")
ASSET = "USDC"


class LedgerMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine

    def __init__(self) -> None:
        super().__init__()
        self.ledger = functools.partial(SqlLedger, strict=True)
        self.ns = uuid.uuid4().hex[:8]  # examples share the database; their accounts do not overlap
        self.wallet: Counter[str] = Counter()
        self.reserved: Counter[str] = Counter()
        self.funded = 0
        self.paid = 0
        self.escrow = 0
        self.open_claims: dict[str, tuple[str, int]] = {}
        self.done_claims: set[str] = set()
        self.batches: list[list[Transfer]] = []
        self.n = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def apply(self, batch: list[Transfer]) -> bool:
        async def go() -> bool:
            async with self.engine.begin() as conn:
                try:
                    await self.ledger(conn).apply(batch)
                except LedgerError as err:
                    if err.code != "exceeds_credits":
                        raise
                    return False
            return True

        ok: bool = self.run(go())
        if ok:
            self.batches.append(batch)
        return ok

    def p(self, player: str) -> str:
        return f"{self.ns}-{player}"

    @property
    def pool(self) -> Any:
        return accounts.pool(f"camp-{self.ns}", ASSET)

    def key(self) -> str:
        self.n += 1
        return f"{self.ns}-{self.n}"

    @initialize(seed=st.integers(1, 10_000))
    def start(self, seed: int) -> None:
        """Every example starts with a funded pool and some money in each wallet, so claims get exercised."""
        self.fund(seed + 3 * 2_000)
        self.settle_round(dict.fromkeys(PLAYERS, 2_000))

    @rule(amount=st.integers(1, 5_000))
    def fund(self, amount: int) -> None:
        t = Transfer.of(accounts.treasury(ASSET), self.pool, amount, TransferKind.CAMPAIGN_FUNDING, self.key())
        assert self.apply([t])
        self.funded += amount

    @rule(shares=st.dictionaries(st.sampled_from(PLAYERS), st.integers(1, 3_000), min_size=1, max_size=3))
    def settle_round(self, shares: dict[str, int]) -> None:
        rid = self.key()
        batch = [
            Transfer.of(self.pool, accounts.wallet(self.p(pl), ASSET), amt, TransferKind.REWARD, rid, pl)
            for pl, amt in shares.items()
        ]
        total = sum(shares.values())
        ok = self.apply(batch)
        assert ok == (total <= self.funded - self.paid), "a round applies iff the pool covers all of it"
        if ok:
            self.paid += total
            for pl, amt in shares.items():
                self.wallet[pl] += amt

    @rule(player=st.sampled_from(PLAYERS), amount=st.integers(1, 2_000))
    def entry_fee(self, player: str, amount: int) -> None:
        t = Transfer.of(
            accounts.wallet(self.p(player), ASSET),
            accounts.escrow(self.p("round"), ASSET),
            amount,
            TransferKind.ENTRY_FEE,
            self.key(),
        )
        ok = self.apply([t])
        assert ok == (amount <= self.wallet[player] - self.reserved[player])
        if ok:
            self.wallet[player] -= amount
            self.escrow += amount

    @rule(player=st.sampled_from(PLAYERS), data=st.data())
    def refund(self, player: str, data: st.DataObject) -> None:
        """A round's escrow pays back at most what its entries paid in (the database refuses the rest)."""
        amount = data.draw(st.integers(1, self.escrow + 1_000))
        t = Transfer.of(
            accounts.escrow(self.p("round"), ASSET),
            accounts.wallet(self.p(player), ASSET),
            amount,
            TransferKind.REFUND,
            self.key(),
        )
        ok = self.apply([t])
        assert ok == (amount <= self.escrow)
        if ok:
            self.escrow -= amount
            self.wallet[player] += amount

    @rule(player=st.sampled_from(PLAYERS), amount=st.integers(1, 3_000))
    def claim(self, player: str, amount: int) -> None:
        cid = self.key()
        ok = self.apply([reservation(cid, self.p(player), ASSET, amount)])
        assert ok == (amount <= self.wallet[player] - self.reserved[player])
        if ok:
            self.reserved[player] += amount
            self.open_claims[cid] = (player, amount)

    @precondition(lambda self: bool(self.open_claims))
    @rule(data=st.data(), paid=st.booleans())
    def resolve(self, data: st.DataObject, paid: bool) -> None:
        cid = data.draw(st.sampled_from(sorted(self.open_claims)))
        player, amount = self.open_claims.pop(cid)
        pending = reservation(cid, self.p(player), ASSET, amount)
        if paid:
            settle = Transfer.of(
                accounts.clearing(ASSET), accounts.external("stellar", ASSET), amount, TransferKind.PAYOUT_SETTLE, cid
            )
            assert self.apply([post_of(pending), settle])
            self.wallet[player] -= amount
        else:
            assert self.apply([void_of(pending)])
        self.reserved[player] -= amount
        self.done_claims.add(cid)

    @precondition(lambda self: bool(self.done_claims))
    @rule(data=st.data(), paid=st.booleans())
    def resolve_again(self, data: st.DataObject, paid: bool) -> None:
        """A second post/void of an already resolved reservation: refused or a no-op, never money."""
        cid = data.draw(st.sampled_from(sorted(self.done_claims)))

        async def go() -> None:
            async with self.engine.begin() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT debit_account_id, credit_account_id, amount FROM ledger_transfers "
                            "WHERE business_key = :k"
                        ),
                        {"k": f"claim_reserve|{cid}"},
                    )
                ).one()
                owner = (
                    await conn.execute(
                        text("SELECT owner_id FROM ledger_accounts WHERE id = :id"), {"id": row.debit_account_id}
                    )
                ).scalar_one()
                pending = reservation(cid, owner, ASSET, row.amount)
                try:
                    await self.ledger(conn).apply([post_of(pending, "retry") if paid else void_of(pending, "retry")])
                except LedgerError as err:
                    if err.code != "pending_already_resolved":
                        raise
                else:
                    raise AssertionError("a resolved reservation was resolved twice")

        self.run(go())

    @precondition(lambda self: bool(self.batches))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """Redelivery: an applied batch applied again moves nothing."""
        batch = data.draw(st.sampled_from(self.batches))

        async def go() -> None:
            async with self.engine.begin() as conn:
                result = await self.ledger(conn).apply(batch)
            assert not result.applied

        self.run(go())

    @invariant()
    def matches_database(self) -> None:
        async def go() -> None:
            async with self.engine.connect() as conn:
                sums = (
                    await conn.execute(
                        text(
                            "SELECT asset, sum(credits_posted - debits_posted), sum(credits_pending - debits_pending) "
                            "FROM ledger_accounts GROUP BY asset"
                        )
                    )
                ).all()
                assert all(r[1] == 0 and r[2] == 0 for r in sums), sums
                negative = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM ledger_accounts WHERE flags & 1 = 1 "
                            "AND debits_posted + debits_pending > credits_posted"
                        )
                    )
                ).scalar_one()
                assert negative == 0
                twice = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM (SELECT business_key FROM ledger_transfers GROUP BY business_key "
                            "HAVING count(*) > 1) d"
                        )
                    )
                ).scalar_one()
                assert twice == 0
                bal = await self.ledger(conn).balances(
                    [self.pool, *(accounts.wallet(self.p(pl), ASSET) for pl in PLAYERS)]
                )
            pool = bal[self.pool]
            assert (pool.credits_posted, pool.debits_posted) == (self.funded, self.paid)
            assert pool.debits_posted + pool.debits_pending + pool.available == pool.credits_posted
            for pl in PLAYERS:
                w = bal[accounts.wallet(self.p(pl), ASSET)]
                assert (w.posted, w.debits_pending) == (self.wallet[pl], self.reserved[pl]), pl
                assert w.available >= 0

        self.run(go())


def test_ledger_model_against_postgres(fresh_database: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(upgrade_to_head(ALEMBIC_INI, fresh_database))
        engine = create_engine(fresh_database, pool_size=2)
        LedgerMachine.loop = loop
        LedgerMachine.engine = engine
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=30,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
        loop.run_until_complete(engine.dispose())
    finally:
        loop.close()
