"""The stores' contract: each test runs against the in-memory fakes the pipeline's tests use (`tests/support`) and
against the PostgreSQL stores on a migrated database, through the same unit of work (pyeventsourcing's abstract
recorder tests: one body of tests, one fixture per implementation). A fake that drifts from its SQL store — lets a
request be answered twice, replaces a transaction that can still land, keeps what a rollback undid — fails here."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from signer_fakes import AlreadyAnsweredError, SignerFakes
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.signer import SignatureRefusalCode, SignatureRefused
from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_signer.adapters.books import bind
from prizeflow_signer.application.books import Books
from prizeflow_signer.application.ports import AuditRecord
from prizeflow_signer.domain.policy import LiveSignature

pytestmark = pytest.mark.integration

ALEMBIC_INI = str(Path(__file__).parents[2] / "alembic.ini")
A, B = "a" * 64, "b" * 64


@dataclass
class Harness:
    """One implementation of the books: its unit of work, and what its audit and outbox hold (in order)."""

    uow: UnitOfWork[Books]
    audited: Callable[[], Awaitable[list[AuditRecord]]]
    pending: Callable[[], Awaitable[list[uuid.UUID]]]  # the event ids staged, in order


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_to_head(ALEMBIC_INI, fresh_database)
    eng = create_engine(fresh_database, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture(params=["fake", "sql"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """Synchronous, so that only the SQL case asks for a database (`getfixturevalue`)."""
    if request.param == "fake":
        fakes = SignerFakes()

        async def fake_audited() -> list[AuditRecord]:
            return list(fakes.audit.records)

        async def fake_pending() -> list[uuid.UUID]:
            return [e.id for e in fakes.outbox.emitted]

        return Harness(fakes.uow, fake_audited, fake_pending)
    engine: AsyncEngine = request.getfixturevalue("engine")

    async def sql_audited() -> list[AuditRecord]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT request_id, event_id::text AS event_id, correlation_id, decision, backend, code, detail, "
                    "tx_hash, source_account, signed_by, amounts, payout_ids FROM signer_audit ORDER BY id"
                )
            )
            return [AuditRecord(**{**r._mapping, "payout_ids": tuple(r.payout_ids)}) for r in rows]

    async def sql_pending() -> list[uuid.UUID]:
        async with engine.connect() as conn:
            return list((await conn.execute(text("SELECT event_id FROM outbox ORDER BY seq"))).scalars())

    return Harness(SqlUnitOfWork(session_factory(engine), bind), sql_audited, sql_pending)


def refusal(request_id: str) -> Any:
    payload = SignatureRefused(
        request_id=request_id, payout_ids=["po-1"], code=SignatureRefusalCode.OVER_TX_CAP, detail="too much"
    )
    return new_event(payload, source="/prizeflow/signer", correlation_id="flow-1")


async def test_a_request_has_one_answer(harness: Harness) -> None:
    async with harness.uow() as books:
        assert await books.results.get("req-1") is None
        await books.results.save("req-1", "refused", "{answer}")
    async with harness.uow() as books:
        assert await books.results.get("req-1") == "{answer}"
    with pytest.raises((AlreadyAnsweredError, IntegrityError)):
        async with harness.uow() as books:
            await books.results.save("req-1", "signed", "{another}")
    async with harness.uow() as books:
        assert await books.results.get("req-1") == "{answer}"


async def test_an_answer_rolled_back_was_never_given(harness: Harness) -> None:
    with pytest.raises(RuntimeError, match="crash"):
        async with harness.uow() as books:
            await books.results.save("req-1", "refused", "{answer}")
            raise RuntimeError("crash")
    async with harness.uow() as books:
        assert await books.results.get("req-1") is None


async def test_spend_is_summed_by_asset_over_the_window(harness: Harness) -> None:
    async with harness.uow() as books:
        await books.spend.lock()
        assert await books.spend.spent_in_window(["XLM"]) == {}
        for request_id, amounts in (("req-1", {"XLM": 5, "USDC": 2}), ("req-2", {"XLM": 7})):
            await books.results.save(request_id, "signed", "{}")  # a spend row belongs to a stored answer
            await books.spend.record(request_id, amounts)
        await books.spend.record("req-3", {})  # nothing moved: nothing recorded
    async with harness.uow() as books:
        await books.spend.lock()
        assert await books.spend.spent_in_window(["USDC", "XLM", "EURC"]) == {"XLM": 12, "USDC": 2}
        assert await books.spend.spent_in_window(["USDC"]) == {"USDC": 2}


async def test_one_live_transaction_per_payout(harness: Harness) -> None:
    async with harness.uow() as books:
        await books.signatures.record(request_id="r-a", tx_hash=A, max_time=1_000, payout_ids=["p", "q"], now=900)
        # The same transaction again (another request id, later): its row, and its max time, are kept.
        await books.signatures.record(request_id="r-a2", tx_hash=A, max_time=1_500, payout_ids=["p"], now=950)
    async with harness.uow() as books:
        live = await books.signatures.live(["p", "q", "x"])
    assert live == {"p": LiveSignature(A, 1_000), "q": LiveSignature(A, 1_000)}
    with pytest.raises(Exception, match="can still land"):
        async with harness.uow() as books:
            await books.signatures.record(request_id="r-b", tx_hash=B, max_time=2_000, payout_ids=["q", "p"], now=1_000)
    async with harness.uow() as books:
        assert await books.signatures.live(["p", "q"]) == {"p": LiveSignature(A, 1_000), "q": LiveSignature(A, 1_000)}
        await books.signatures.record(request_id="r-b", tx_hash=B, max_time=2_000, payout_ids=["p"], now=1_001)
    async with harness.uow() as books:
        assert await books.signatures.live(["p", "q"]) == {"p": LiveSignature(B, 2_000), "q": LiveSignature(A, 1_000)}


async def test_every_decision_is_audited_as_recorded(harness: Harness) -> None:
    event_id = str(uuid.uuid4())
    signed = AuditRecord(
        request_id="req-1", event_id=event_id, correlation_id="flow-1", decision="signed", backend="hot_key",
        tx_hash=A, source_account="G" + "A" * 55, signed_by="G" + "B" * 55, amounts={"XLM": 5}, payout_ids=("po-1",),
    )  # fmt: skip
    refused = AuditRecord(
        request_id="req-2", event_id=event_id, correlation_id="flow-2", decision="refused", backend="pkcs11",
        code="over_tx_cap", detail="x" * 2_100, payout_ids=("po-2", "po-3"),
    )  # fmt: skip
    async with harness.uow() as books:
        await books.audit.record(signed)
        await books.audit.record(refused)
    with pytest.raises(RuntimeError, match="crash"):
        async with harness.uow() as books:
            await books.audit.record(signed)
            raise RuntimeError("crash")
    assert await harness.audited() == [signed, dataclasses.replace(refused, detail="x" * 2_000)]  # 2000 chars kept


async def test_a_key_longer_than_its_column_is_refused_and_nothing_is_kept(harness: Harness) -> None:
    """`source_account` and `signed_by` hold 56 characters (a Stellar key, a TON wallet's label): a TON key as raw hex
    (64) is refused by both, and the transaction keeps nothing."""
    raw = AuditRecord(
        request_id="req-9", event_id=str(uuid.uuid4()), correlation_id="flow-9", decision="replayed", backend="hot_key",
        signed_by="ab" * 32,
    )  # fmt: skip
    with pytest.raises(Exception, match="too long"):
        async with harness.uow() as books:
            await books.audit.record(raw)
    assert await harness.audited() == []


async def test_an_answer_staged_again_goes_out_under_its_own_id(harness: Harness) -> None:
    first, second = refusal("req-1"), refusal("req-2")
    async with harness.uow() as books:
        await books.outbox.stage(first)
        await books.outbox.stage_again(first)  # still waiting to go out: it goes once
    async with harness.uow() as books:
        await books.outbox.stage_again(second)  # gone already (or never staged): staged anew
    with pytest.raises(RuntimeError, match="crash"):
        async with harness.uow() as books:
            await books.outbox.stage(refusal("req-3"))
            raise RuntimeError("crash")
    staged = await harness.pending()
    assert set(staged) == {first.id, second.id}
    assert staged[-1] == second.id
