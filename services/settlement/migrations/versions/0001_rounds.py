"""Messaging tables and the round tables, with the rules the database itself enforces.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0001

revision = "0001"
down_revision = None
phase = "expand"
branch_labels = None
depends_on = None

STATES = "('open', 'closed', 'resolved', 'settled', 'voided')"

DDL = [
    f"""
    CREATE TABLE rounds (
        round_id          varchar(128) PRIMARY KEY,
        competition_id    varchar(128) NOT NULL,
        game_id           varchar(128) NOT NULL,
        organizer_id      varchar(128),
        correlation_id    varchar(128) NOT NULL,
        state             varchar(16)  NOT NULL CONSTRAINT rounds_state_valid CHECK (state IN {STATES}),
        version           integer      NOT NULL DEFAULT 0 CHECK (version >= 0),
        prize_source      varchar(16)  NOT NULL CHECK (prize_source IN ('sponsored', 'entry_pot')),
        asset             varchar(16)  NOT NULL,
        spec              jsonb        NOT NULL,
        entries_seen      integer      NOT NULL DEFAULT 0 CHECK (entries_seen >= 0),
        entries_expected  integer      CHECK (entries_expected >= 0),
        pot               bigint       NOT NULL DEFAULT 0 CHECK (pot >= 0),
        reached           text[]       NOT NULL,
        opened_at         timestamptz  NOT NULL,
        closed_at         timestamptz,
        settled_at        timestamptz,
        voided_at         timestamptz,
        disputed          boolean      NOT NULL DEFAULT false,
        hold_reason       varchar(64),
        void_reason       text,
        results_digest    varchar(64)  CHECK (results_digest ~ '^[0-9a-f]{{64}}$'),
        results_summary   jsonb,
        created_at        timestamptz  NOT NULL DEFAULT now(),
        updated_at        timestamptz  NOT NULL DEFAULT now(),
        CONSTRAINT rounds_closed_has_time CHECK (state = 'open' OR state = 'voided' OR closed_at IS NOT NULL),
        CONSTRAINT rounds_resolved_has_results
            CHECK (state NOT IN ('resolved', 'settled') OR results_digest IS NOT NULL),
        CONSTRAINT rounds_settled_has_time CHECK (state <> 'settled' OR settled_at IS NOT NULL),
        CONSTRAINT rounds_voided_has_time
            CHECK (state <> 'voided' OR (voided_at IS NOT NULL AND void_reason IS NOT NULL))
    )
    """,
    "CREATE INDEX rounds_state_idx ON rounds (state, round_id)",
    "CREATE INDEX rounds_competition_idx ON rounds (competition_id, round_id)",
    "CREATE INDEX rounds_disputed_idx ON rounds (round_id) WHERE disputed",
    """
    CREATE TABLE round_entries (
        round_id     varchar(128) NOT NULL REFERENCES rounds (round_id),
        entry_id     varchar(128) NOT NULL,
        player_id    varchar(128) NOT NULL,
        fee_asset    varchar(16)  NOT NULL,
        fee_amount   bigint       NOT NULL CHECK (fee_amount >= 0),
        paid_via     varchar(16)  NOT NULL CHECK (paid_via IN ('wallet', 'external')),
        recorded_at  timestamptz  NOT NULL,
        PRIMARY KEY (round_id, entry_id),
        CONSTRAINT round_entries_one_per_player UNIQUE (round_id, player_id)
    )
    """,
    """
    CREATE TABLE round_results (
        round_id   varchar(128) NOT NULL REFERENCES rounds (round_id),
        player_id  varchar(128) NOT NULL,
        rank       integer      NOT NULL CHECK (rank >= 1),
        score      bigint       NOT NULL,
        PRIMARY KEY (round_id, player_id)
    )
    """,
    f"""
    CREATE TABLE round_transitions (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        round_id    varchar(128) NOT NULL REFERENCES rounds (round_id),
        from_state  varchar(16)  CHECK (from_state IN ('open', 'closed', 'resolved')),
        to_state    varchar(16)  NOT NULL CHECK (to_state IN {STATES}),
        reason      text,
        actor       varchar(128),
        cause_id    varchar(128),
        at          timestamptz  NOT NULL,
        CONSTRAINT round_transitions_legal CHECK (
            (from_state IS NULL AND to_state = 'open')
            OR (from_state = 'open' AND to_state IN ('closed', 'voided'))
            OR (from_state = 'closed' AND to_state IN ('resolved', 'voided'))
            OR (from_state = 'resolved' AND to_state IN ('settled', 'voided'))
        ),
        -- a round enters each state at most once
        CONSTRAINT round_transitions_once UNIQUE (round_id, to_state)
    )
    """,
    """
    CREATE TABLE round_allocations (
        round_id   varchar(128) NOT NULL REFERENCES rounds (round_id),
        player_id  varchar(128) NOT NULL,
        rank       integer      NOT NULL CHECK (rank >= 1),
        asset      varchar(16)  NOT NULL,
        amount     bigint       NOT NULL CHECK (amount > 0),
        source     varchar(8)   NOT NULL CHECK (source IN ('pool', 'pot')),
        PRIMARY KEY (round_id, player_id)
    )
    """,
    """
    CREATE TABLE round_fees (
        round_id    varchar(128) NOT NULL REFERENCES rounds (round_id),
        party       varchar(16)  NOT NULL CHECK (party IN ('platform', 'organizer')),
        account_id  varchar(128) NOT NULL,
        asset       varchar(16)  NOT NULL,
        amount      bigint       NOT NULL CHECK (amount > 0),
        PRIMARY KEY (round_id, party)
    )
    """,
    """
    CREATE TABLE round_disputes (
        id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        round_id            varchar(128) NOT NULL REFERENCES rounds (round_id),
        existing_digest     varchar(64)  NOT NULL,
        conflicting_digest  varchar(64)  NOT NULL,
        conflicting         jsonb        NOT NULL,
        status              varchar(16)  NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
        opened_at           timestamptz  NOT NULL,
        resolved_at         timestamptz,
        resolved_by         varchar(128),
        CONSTRAINT round_disputes_distinct CHECK (existing_digest <> conflicting_digest),
        CONSTRAINT round_disputes_once UNIQUE (round_id, conflicting_digest),
        CONSTRAINT round_disputes_resolved_has_time CHECK (status = 'open' OR resolved_at IS NOT NULL)
    )
    """,
]


def upgrade() -> None:
    messaging_0001.upgrade(op)
    for statement in DDL:
        op.execute(statement)


def downgrade() -> None:
    for table in (
        "round_disputes",
        "round_fees",
        "round_allocations",
        "round_transitions",
        "round_results",
        "round_entries",
        "rounds",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    messaging_0001.downgrade(op)
