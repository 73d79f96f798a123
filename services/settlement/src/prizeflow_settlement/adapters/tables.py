"""The settlement tables (SQLAlchemy Core). The DDL itself lives in the Alembic history (migrations/)."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

rounds = Table(
    "rounds",
    metadata,
    Column("round_id", String(128), primary_key=True),
    Column("competition_id", String(128), nullable=False),
    Column("game_id", String(128), nullable=False),
    Column("organizer_id", String(128)),
    Column("correlation_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("prize_source", String(16), nullable=False),
    Column("asset", String(16), nullable=False),
    Column("spec", JSONB, nullable=False),
    Column("entries_seen", Integer, nullable=False),
    Column("entries_expected", Integer),
    Column("pot", BigInteger, nullable=False),
    Column("reached", ARRAY(Text), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("settled_at", DateTime(timezone=True)),
    Column("voided_at", DateTime(timezone=True)),
    Column("disputed", Boolean, nullable=False),
    Column("hold_reason", String(64)),
    Column("void_reason", Text),
    Column("results_digest", String(64)),
    Column("results_summary", JSONB),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)

round_entries = Table(
    "round_entries",
    metadata,
    Column("round_id", String(128), primary_key=True),
    Column("entry_id", String(128), primary_key=True),
    Column("player_id", String(128), nullable=False),
    Column("fee_asset", String(16), nullable=False),
    Column("fee_amount", BigInteger, nullable=False),
    Column("paid_via", String(16), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

round_results = Table(
    "round_results",
    metadata,
    Column("round_id", String(128), primary_key=True),
    Column("player_id", String(128), primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("score", BigInteger, nullable=False),
)

round_transitions = Table(
    "round_transitions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("round_id", String(128), nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("reason", Text),
    Column("actor", String(128)),
    Column("cause_id", String(128)),
    Column("at", DateTime(timezone=True), nullable=False),
)

round_allocations = Table(
    "round_allocations",
    metadata,
    Column("round_id", String(128), primary_key=True),
    Column("player_id", String(128), primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("asset", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("source", String(8), nullable=False),
)

round_fees = Table(
    "round_fees",
    metadata,
    Column("round_id", String(128), primary_key=True),
    Column("party", String(16), primary_key=True),
    Column("account_id", String(128), nullable=False),
    Column("asset", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
)

round_disputes = Table(
    "round_disputes",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("round_id", String(128), nullable=False),
    Column("existing_digest", String(64), nullable=False),
    Column("conflicting_digest", String(64), nullable=False),
    Column("conflicting", JSONB, nullable=False),
    Column("status", String(16), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolved_by", String(128)),
)
