"""SQLAlchemy Core views of the payouts tables (the DDL itself is the Alembic history)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, Table, Text

metadata = MetaData()

payouts = Table(
    "payouts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("payout_request_id", Text),
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    Column("claim_id", Text),
    Column("player_id", Text),
    Column("requested_by", Text),
    Column("asset", Text),
    Column("amount", BigInteger),
    Column("destination_type", Text),
    Column("destination_address", Text),
    Column("destination_memo", Text),
    Column("provider_type", Text),
    Column("provider_name", Text),
    Column("state", Text),
    Column("approval_policy", Text),
    Column("correlation_id", Text),
    Column("cause_event_id", Text),
    Column("attempts", Integer),
    Column("max_attempts", Integer),
    Column("available_at", DateTime(timezone=True)),
    Column("sync_first", Boolean),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)

history = Table(
    "payout_history",
    metadata,
    Column("payout_id", Text),
    Column("from_state", Text),
    Column("to_state", Text),
    Column("at", DateTime(timezone=True)),
    Column("actor", Text),
    Column("reason", Text),
    Column("error_code", Text),
    Column("attempt", Integer),
)

attempts = Table(
    "payout_attempts",
    metadata,
    Column("payout_id", Text),
    Column("attempt", Integer),
    Column("kind", Text),
    Column("worker", Text),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("outcome", Text),
    Column("error_code", Text),
    Column("detail", Text),
)

approvals = Table(
    "payout_approvals",
    metadata,
    Column("payout_id", Text),
    Column("approver_id", Text),
    Column("decided_at", DateTime(timezone=True)),
    Column("reason", Text),
    Column("correlation_id", Text),
)


refusals = Table(
    "payout_request_refusals",
    metadata,
    Column("claim_id", Text, primary_key=True),
    Column("payout_request_id", Text),
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    Column("code", Text),
    Column("detail", Text),
    Column("correlation_id", Text),
    Column("refused_at", DateTime(timezone=True)),
)
__all__ = ["approvals", "attempts", "history", "metadata", "payouts", "refusals"]
