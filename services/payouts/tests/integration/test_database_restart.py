"""PostgreSQL restarts (every backend of the database terminated) while a worker's batch is at its provider: the
provider's answers are recorded at once on a new connection, the pass goes on, and nothing waits out its lease.
The pooled connection the recording would take was used a moment before (never pinged: `ping_when_idle`); the
server closed its socket, so the pool is recycled before it is lent (found by an adversarial review)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from prizeflow_payouts.bootstrap import compose
from prizeflow_payouts.entrypoints.kafka import request_command
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit.payouts import WEBHOOK_SECRET_ENV, fetch, providers_file, request, settings_for

pytestmark = pytest.mark.integration


async def terminate_every_backend(db: str) -> None:
    """What a restart does to a database's connections (the server closes each socket)."""
    admin = await asyncpg.connect(asyncpg_dsn(db))
    others = (  # clients only: an autovacuum worker on a freshly migrated database is started again at once
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'"
    )
    try:
        for row in await admin.fetch(others):
            await admin.execute("SELECT pg_terminate_backend($1, 5000)", row["pid"])  # returns once it has exited
    finally:
        await admin.close()


async def test_a_restart_while_a_batch_is_at_its_provider_costs_it_nothing(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, "test-webhook-secret")
    parts = compose(settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix))
    try:
        command = request_command(request(address="success:p1"))  # as the requests consumer builds it
        async with parts.uow() as books:
            await parts.create.execute(books, [command])
        create = parts.worker.calls.create

        async def answered_then_restart(*args: Any, **kwargs: Any) -> Any:
            answers = await create(*args, **kwargs)
            await terminate_every_backend(db)  # the provider answered; the database restarts before it is recorded
            return answers

        monkeypatch.setattr(parts.worker.calls, "create", answered_then_restart)
        await parts.worker.run_pass()  # raised InterfaceError (connection is closed) when the pool lent the dead one
        rows = await fetch(db, "SELECT state FROM payouts WHERE idempotency_key = $1", command.idempotency_key)
        assert [r["state"] for r in rows] == ["paid"]  # not `submitting` until its lease ends
    finally:
        await parts.runtime.engine.dispose()
