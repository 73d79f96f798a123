"""Deliveries past their retention are deleted in batches; newer ones, and their dedup keys, stay (ADR 0008)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_webhooks.adapters.books import bind
from prizeflow_webhooks.application.retention import PruneDeliveries

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)

_ROW = text(
    """
    INSERT INTO deliveries (provider, provider_type, provider_event_id, kind, outcome, ignored_reason,
        correlation_id, correlation_generated, confirmed, body, body_sha256, signature_timestamp, received_at)
    VALUES ('stripe', 'stripe', :pid, 'payout.paid', 'ignored', 'unknown_kind', :pid, true, false, 'x', :sha, 1, :at)
    """
)


async def test_deliveries_past_their_retention_are_deleted_batch_by_batch(db_url: str) -> None:
    engine = create_engine(db_url, pool_size=2)
    try:
        async with engine.begin() as conn:
            for n, age in enumerate([40, 35, 31, 29, 1, 0]):
                sha = hashlib.sha256(str(n).encode()).hexdigest()
                await conn.execute(_ROW, {"pid": f"evt_{n}", "sha": sha, "at": NOW - timedelta(days=age)})
        uow = SqlUnitOfWork(session_factory(engine), bind)
        prune = PruneDeliveries(uow, retention=timedelta(days=30), batch=2, clock=lambda: NOW)
        assert await prune() == 3
        assert await prune() == 0  # nothing more to do
        async with engine.connect() as conn:
            kept = (await conn.execute(text("SELECT provider_event_id FROM deliveries ORDER BY id"))).scalars()
            assert list(kept) == ["evt_3", "evt_4", "evt_5"]
            index = await conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'deliveries_received_brin'")
            )
        assert "USING brin (received_at)" in str(index)
    finally:
        await engine.dispose()
