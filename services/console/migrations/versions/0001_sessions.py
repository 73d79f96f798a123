"""Console sessions held on the server: the cookie carries only an unguessable session id, this row is the truth.

A session ends when its person signs out, when an admin ends every session of that person (audited in
`console_session_ends`), when it idles past the idle timeout or lives past the absolute one: whichever replica
serves the next request reads the row and refuses it. The access token the console calls the services with
lives here, never in the cookie.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
phase = "expand"
branch_labels = None
depends_on = None

DDL = [
    """
    CREATE TABLE console_sessions (
        id_hash         bytea        PRIMARY KEY CHECK (length(id_hash) = 32),
        subject         text         NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
        name            text         CHECK (length(name) <= 200),
        roles           text[]       NOT NULL,
        access_token    text         NOT NULL CHECK (length(access_token) BETWEEN 1 AND 16384),
        token_expires_at timestamptz NOT NULL,
        created_at      timestamptz  NOT NULL,
        last_seen_at    timestamptz  NOT NULL,
        ended_at        timestamptz,
        end_reason      text         CHECK (end_reason IN ('signed_out', 'ended_by_admin', 'expired_idle',
                                                           'expired_absolute')),
        CONSTRAINT console_sessions_ended_with_a_reason CHECK ((ended_at IS NULL) = (end_reason IS NULL)),
        CONSTRAINT console_sessions_seen_after_created CHECK (last_seen_at >= created_at)
    )
    """,
    "CREATE INDEX console_sessions_live_by_subject ON console_sessions (subject) WHERE ended_at IS NULL",
    "CREATE INDEX console_sessions_by_age ON console_sessions (created_at)",
    """
    CREATE FUNCTION console_session_stays_ended() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'console session of %: an ended session never starts again', OLD.subject
            USING ERRCODE = 'check_violation';
    END $$
    """,
    """
    CREATE TRIGGER console_sessions_stay_ended BEFORE UPDATE ON console_sessions
    FOR EACH ROW WHEN (OLD.ended_at IS NOT NULL AND NEW.ended_at IS DISTINCT FROM OLD.ended_at)
    EXECUTE FUNCTION console_session_stays_ended()
    """,
    """
    CREATE TABLE console_session_ends (
        id              bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        actor           text         NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
        actor_roles     text[]       NOT NULL,
        subject         text         NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
        reason          text         NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
        sessions_ended  int          NOT NULL CHECK (sessions_ended >= 0),
        at              timestamptz  NOT NULL
    )
    """,
    """
    CREATE FUNCTION console_session_end_kept() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'an audit record is never rewritten or deleted' USING ERRCODE = 'check_violation';
    END $$
    """,
    """
    CREATE TRIGGER console_session_ends_kept BEFORE UPDATE OR DELETE ON console_session_ends
    FOR EACH ROW EXECUTE FUNCTION console_session_end_kept()
    """,
]


def upgrade() -> None:
    for ddl in DDL:
        op.execute(ddl)


def downgrade() -> None:
    op.execute("DROP TABLE console_session_ends")
    op.execute("DROP FUNCTION console_session_end_kept()")
    op.execute("DROP TABLE console_sessions")
    op.execute("DROP FUNCTION console_session_stays_ended()")
