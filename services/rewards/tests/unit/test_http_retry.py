"""A write route whose transaction loses a deadlock is run again, whole; after its attempts the answer is a 503
problem with Retry-After, never a 500 (the HTTP layer and the claim intake on the unit of work over fake sessions,
and a flaky use case: no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.di import Provide
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry

from prizeflow_rewards.adapters.backend_pg import SqlLostCommits
from prizeflow_rewards.adapters.books import bind
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.claims import Claim, ClaimIntake
from prizeflow_rewards.application.claims.submit import ClaimRequest
from prizeflow_rewards.application.fx import FxDesk, IssueQuote, QuoteMarket
from prizeflow_rewards.domain.claims import ClaimStatus
from prizeflow_rewards.entrypoints.http import DEPENDENCIES, router
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.http import create_app
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_runtime.uow import ContentionRetry

IDENTITY = DevIdentity.generate()
AUDIENCE = "prizeflow-rewards"
BODY = {
    "asset": "USDC",
    "amount": 1_000,
    "destination": {"type": "stellar_account", "address": "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"},
}


class Deadlock(Exception):
    sqlstate = "40P01"


class FakeDriver:
    _transaction = object()  # a transaction is open on it

    def get_server_pid(self) -> int:
        return 4242


class FakeSession:
    """A session with a transaction, and the little of SQLAlchemy's connection that `driver_connection` reads (the
    intake notes the backend that commits its batch)."""

    dbapi_connection = FakeDriver()
    driver_connection = FakeDriver()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        yield

    async def get_raw_connection(self) -> FakeSession:
        return self

    def in_transaction(self) -> bool:
        return True


class FakeSessions:
    """Stands in for an async_sessionmaker; counts the transactions begun."""

    def __init__(self) -> None:
        self.begun = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeSession]:
        self.begun += 1
        yield FakeSession()


class FlakySubmit:
    """A SubmitClaim that loses a deadlock `failures` times, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def decide(
        self, books: Books, requests: Sequence[ClaimRequest], *, wait: bool = False
    ) -> list[tuple[Claim, bool]]:
        self.calls += 1
        if self.calls <= self.failures:
            raise Deadlock("deadlock detected")
        [r] = requests
        claim = Claim(
            id="cl-1",
            player_id=r.player_id,
            asset=r.asset,
            amount=r.amount,
            destination=r.destination.model_dump(mode="json"),
            status=ClaimStatus.APPROVED,
            hold_code=None,
            hold_detail=None,
            rejection_code=None,
            payout_request_id="pr-cl-1",
            correlation_id="cl-1",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        return [(claim, True)]


@asynccontextmanager
async def client_for(submit: FlakySubmit, sessions: FakeSessions) -> AsyncIterator[tuple[Any, RewardsMetrics]]:
    metrics = RewardsMetrics.create(CollectorRegistry())
    retry = ContentionRetry(attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002, retry_after_s=2)
    uow: SqlUnitOfWork[Books] = SqlUnitOfWork(
        sessions,  # type: ignore[arg-type]
        bind,
        retry=retry,
        on_retry=lambda outcome: metrics.transaction_retries.labels(outcome).inc(),
    )
    intake = ClaimIntake(
        uow,
        submit,  # type: ignore[arg-type]
        SqlLostCommits(sessions),  # type: ignore[arg-type]
        metrics=metrics,
        retry_after_s=retry.retry_after_s,
    )
    dependencies = {name: Provide(lambda: None, sync_to_thread=False) for name in DEPENDENCIES}
    dependencies["claim_intake"] = Provide(lambda: intake, sync_to_thread=False)
    # A claim without a quote calls neither; the handler is injected with both.
    market, issue = QuoteMarket(uow, None, FxDesk()), IssueQuote(uow, None, FxDesk())
    dependencies["quote_market"] = Provide(lambda: market, sync_to_thread=False)
    dependencies["issue_quote"] = Provide(lambda: issue, sync_to_thread=False)
    app = create_app(
        service_name="rewards",
        route_handlers=[router()],
        registry=CollectorRegistry(),
        auth=IDENTITY.verifier(audience=AUDIENCE),
        dependencies=dependencies,
    )
    async with AsyncTestClient(app) as client:
        yield client, metrics


def player() -> dict[str, str]:
    return {"Authorization": f"Bearer {IDENTITY.issue('p-1', ['player'], audience=AUDIENCE)}"}


def retries(metrics: RewardsMetrics, outcome: str) -> float:
    return float(metrics.transaction_retries.labels(outcome)._value.get())


@pytest.mark.parametrize("failures", [1, 2])
async def test_a_claim_that_loses_a_deadlock_is_run_again_and_succeeds(failures: int) -> None:
    submit, sessions = FlakySubmit(failures), FakeSessions()
    async with client_for(submit, sessions) as (client, metrics):
        r = await client.post("/claims/", json=BODY, headers=player())
    assert r.status_code == 201, r.text
    assert r.json()["claim_id"] == "cl-1"
    assert (submit.calls, sessions.begun) == (failures + 1, failures + 1)  # a new transaction each time
    assert retries(metrics, "retried") == failures


async def test_a_claim_still_losing_after_its_attempts_is_a_503_with_retry_after() -> None:
    submit, sessions = FlakySubmit(failures=99), FakeSessions()
    async with client_for(submit, sessions) as (client, metrics):
        r = await client.post("/claims/", json=BODY, headers=player())
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "2"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "transaction_contended"
    assert r.json()["status"] == 503
    assert submit.calls == 3
    assert (retries(metrics, "retried"), retries(metrics, "gave_up")) == (2, 1)


class LostCommit(FakeSession):
    @asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        yield
        raise ConnectionResetError("connection lost during COMMIT")  # it may have committed


class Unreachable(FakeSession):
    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("database down")


class LostCommitSessions(FakeSessions):
    """The first transaction's COMMIT loses its connection; the database cannot be read after that."""

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeSession]:
        self.begun += 1
        yield LostCommit() if self.begun == 1 else Unreachable()


async def test_a_lost_commit_that_cannot_be_read_back_says_so_and_is_never_decided_again() -> None:
    """Whether the batch committed is unknown: not a 'nothing was changed' 503, and never halved and decided again
    (a request without a key would become a second claim)."""
    submit, sessions = FlakySubmit(failures=0), LostCommitSessions()
    async with client_for(submit, sessions) as (client, _):
        r = await client.post("/claims/", json=BODY, headers=player())
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "commit_outcome_unknown"
    assert r.headers["retry-after"] == "2"
    assert submit.calls == 1
