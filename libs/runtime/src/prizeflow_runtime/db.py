"""Async SQLAlchemy engine and session factory, plus the messaging tables every service owns."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from prizeflow_runtime.schema_compat import PHASES_TABLE, AppliedRevision
from prizeflow_runtime.settings import DatabaseTimeouts

messaging_metadata = MetaData()

outbox_table = Table(
    "outbox",
    messaging_metadata,
    # `seq` orders publication; the event id stays the dedup key downstream. A row lives until the relay has
    # published it (then it is deleted): the table is the queue of what is still to go out.
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("topic", String(255), nullable=False),
    Column("key", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def _inbox_columns() -> list[Column[Any]]:
    """The columns the inbox and its pre-partitioning predecessor share."""
    return [
        Column("consumer", String(128), primary_key=True),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("topic", String(255), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # SHA-256 of the record's bytes: the same event id arriving with a different body is refused
        # (`event_id_reused`) instead of vanishing as a duplicate. NULL only on rows from before it was kept.
        Column("digest", LargeBinary, nullable=True),
        # `refused`: the event was dead-lettered, and that is its outcome until an operator redrives it.
        Column(
            "outcome",
            String(16),
            CheckConstraint("outcome IN ('applied', 'refused')", name="inbox_outcome"),
            nullable=False,
            server_default="applied",
        ),
    ]


inbox_table = Table(
    "inbox",
    messaging_metadata,
    # The event's own CloudEvents `time` floored to the UTC hour: a redelivered record (same bytes) lands in the same
    # partition, and the same id with other bytes within that hour meets its first row. Rows live as long as their
    # partition, which `prizeflow_runtime.inbox_retention` drops past the dedup horizon (ADR 0008).
    Column(
        "occurred_hour",
        DateTime(timezone=True),
        CheckConstraint("extract(epoch FROM occurred_hour) % 3600 = 0", name="inbox_occurred_hour"),
        primary_key=True,
    ),
    *_inbox_columns(),
    PrimaryKeyConstraint("consumer", "event_id", "occurred_hour", name="inbox_pkey"),
    postgresql_partition_by="RANGE (occurred_hour)",
)

# The inbox as it was before it was partitioned (messaging step 5 renamed it, so no dedup row was lost): the claim
# still consults it until the maintenance empties it, once every event it remembers is past the horizon.
inbox_legacy_table = Table(
    "inbox_legacy",
    messaging_metadata,
    *_inbox_columns(),
    PrimaryKeyConstraint("consumer", "event_id", name="inbox_legacy_pkey"),
)
inbox_legacy_sealed_table = Table(
    "inbox_legacy_sealed",
    messaging_metadata,
    Column("sealed_at", DateTime(timezone=True), nullable=False),
)
# Up to where inbox partitions were dropped (one row): none is ever created again below it, so an event of that
# time finds no partition and is refused even if the horizon was raised since.
inbox_forgotten_table = Table(
    "inbox_forgotten",
    messaging_metadata,
    Column("dropped_before", DateTime(timezone=True), nullable=False),
)

dead_letters_table = Table(
    "dead_letters",
    messaging_metadata,
    # Every record a consumer refused or gave up on, with why, its bytes and what became of it. One row per
    # (consumer, digest): a replayed or redelivered refusal finds its row and adds nothing. The record also
    # goes to `<topic>.dlq` through the outbox, in the same transaction.
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("consumer", String(128), nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=True),  # NULL: the record had no readable id
    Column("event_type", String(255), nullable=True),
    Column("correlation_id", String(128), nullable=True),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", String(4000), nullable=False),
    Column("error_type", String(128), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column(
        "status",
        String(16),
        CheckConstraint("status IN ('open', 'redriven', 'discarded')", name="dead_letters_status"),
        nullable=False,
        server_default="open",
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(128), nullable=True),
    Column("decision_reason", String(1000), nullable=True),
    UniqueConstraint("consumer", "digest", name="dead_letters_once"),
)
Index(
    "dead_letters_open",
    dead_letters_table.c.consumer,
    dead_letters_table.c.id,
    postgresql_where=text("status = 'open'"),
)

Index(
    "dead_letters_by_correlation",
    dead_letters_table.c.correlation_id,
    postgresql_where=text("correlation_id IS NOT NULL"),
)

admin_audit_table = Table(
    "admin_audit",
    messaging_metadata,
    # One row per `AdminActionRecorded` staged in the outbox, in the same transaction (`outbox.add_events`):
    # the audit trail, queryable by correlation id. Append-only (ADMIN_AUDIT_DDL). No before/after views: who,
    # what, which object, why and when, nothing else.
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("action_id", String(128), nullable=False),
    Column("correlation_id", String(128), nullable=False),
    Column("service", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target_type", String(64), nullable=False),
    Column("target_id", String(128), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("actor_roles", String(64), nullable=False),  # comma-separated, sorted
    Column("reason", String(1000), nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("event_id", name="admin_audit_once"),
)
Index("admin_audit_by_correlation", admin_audit_table.c.correlation_id, admin_audit_table.c.occurred_at)

# Nobody rewrites the audit trail, not even the service that wrote it.
ADMIN_AUDIT_DDL = (
    """
    CREATE OR REPLACE FUNCTION prizeflow_admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'admin_audit is append-only' USING ERRCODE = 'restrict_violation'; END $$
    """,
    "DROP TRIGGER IF EXISTS admin_audit_append_only ON admin_audit",
    """
    CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION prizeflow_admin_audit_append_only()
    """,
)

# The inbox's partitions, listed and kept (ADR 0008): `prizeflow_runtime.inbox_retention` calls the second one.
INBOX_PARTITIONS_DDL = (
    """
    CREATE OR REPLACE FUNCTION prizeflow_inbox_partitions()
    RETURNS TABLE (name TEXT, lower_at TIMESTAMP WITH TIME ZONE, upper_at TIMESTAMP WITH TIME ZONE)
    LANGUAGE sql STABLE SET search_path = public, pg_temp SET "DateStyle" = 'ISO, YMD' SET "TimeZone" = 'UTC' AS $$
        SELECT c.relname::text, b[1]::timestamptz, b[2]::timestamptz
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid,
        LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') AS b
        WHERE i.inhparent = 'inbox'::regclass
        ORDER BY 2
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION prizeflow_inbox_maintain(
        keep_from TIMESTAMP WITH TIME ZONE, cover_until TIMESTAMP WITH TIME ZONE, width INTERVAL
    ) RETURNS SETOF TEXT
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET "DateStyle" = 'ISO, YMD'
    SET "TimeZone" = 'UTC' SET lock_timeout = '5s' AS $$
    DECLARE
        step_s NUMERIC := extract(epoch FROM width);
        cursor_at TIMESTAMP WITH TIME ZONE;
        upper_at TIMESTAMP WITH TIME ZONE;
        covering TIMESTAMP WITH TIME ZONE;
        next_lower TIMESTAMP WITH TIME ZONE;
        part RECORD;
        dropped TEXT[] := ARRAY[]::TEXT[];
    BEGIN
        IF width < interval '1 hour' OR extract(epoch FROM width) % 3600 <> 0
           OR keep_from > now() - interval '1 day' OR cover_until <= now() OR cover_until > now() + interval '60 days'
        THEN
            RAISE EXCEPTION 'inbox maintenance refused: keep from %, cover until %, width %',
                keep_from, cover_until, width USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM pg_advisory_xact_lock(hashtext('prizeflow_inbox_maintain'));
        -- Dropping waits for the claims on `inbox` (and a long reader, e.g. pg_dump, can hold it off): a drop that
        -- times out is rolled back to this block alone and tried at the next run, so the partitions ahead are
        -- still created below.
        BEGIN
            FOR part IN SELECT p.name, p.upper_at FROM prizeflow_inbox_partitions() p WHERE p.upper_at <= keep_from
            LOOP
                EXECUTE format('DROP TABLE %I', part.name);
                UPDATE inbox_forgotten SET dropped_before = greatest(dropped_before, part.upper_at);
                dropped := dropped || ('dropped ' || part.name);
            END LOOP;
        EXCEPTION WHEN lock_not_available THEN
            dropped := ARRAY['drops postponed: ' || SQLERRM];
        END;
        RETURN QUERY SELECT unnest(dropped);
        -- What was dropped never comes back, even if the horizon is raised later: an event of that time finds no
        -- partition and is refused, instead of meeting an empty one and applying a second time.
        SELECT greatest(to_timestamp(floor(extract(epoch FROM keep_from) / step_s) * step_s), max(f.dropped_before))
        INTO cursor_at FROM inbox_forgotten f;
        WHILE cursor_at < cover_until LOOP
            SELECT max(p.upper_at) INTO covering FROM prizeflow_inbox_partitions() p
            WHERE p.lower_at <= cursor_at AND p.upper_at > cursor_at;
            IF covering IS NOT NULL THEN
                cursor_at := covering;
                CONTINUE;
            END IF;
            upper_at := to_timestamp((floor(extract(epoch FROM cursor_at) / step_s) + 1) * step_s);
            SELECT min(p.lower_at) INTO next_lower FROM prizeflow_inbox_partitions() p WHERE p.lower_at > cursor_at;
            IF next_lower IS NOT NULL AND next_lower < upper_at THEN
                upper_at := next_lower;
            END IF;
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF inbox FOR VALUES FROM (%L) TO (%L)',
                'inbox_p' || to_char(cursor_at AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MI'), cursor_at, upper_at
            );
            RETURN NEXT 'created inbox_p' || to_char(cursor_at AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MI');
            cursor_at := upper_at;
        END LOOP;
        IF EXISTS (SELECT 1 FROM inbox_legacy_sealed WHERE sealed_at < keep_from - interval '1 day')
           AND EXISTS (SELECT 1 FROM inbox_legacy) THEN
            TRUNCATE inbox_legacy;
            RETURN NEXT 'emptied inbox_legacy';
        END IF;
    END $$
    """,
)

# Wakes the relay as soon as an outbox row commits; NOTIFY is transactional and deduplicated per txn.
OUTBOX_CHANNEL = "prizeflow_outbox"
OUTBOX_NOTIFY_DDL = (
    f"""
    CREATE OR REPLACE FUNCTION prizeflow_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$;
    """,
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    """
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION prizeflow_outbox_notify()
    """,
)


# A pooled connection that sat unused this long is pinged before it is lent out; one in use more recently is not.
PING_AFTER_IDLE_S = 5.0


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    timeouts: DatabaseTimeouts | None = None,
    ping_after_idle_s: float = PING_AFTER_IDLE_S,
) -> AsyncEngine:
    """`hide_parameters`: a statement's values (player ids, destinations) never appear in an error's text. Every
    connection carries `timeouts` (the settings' DATABASE_*_TIMEOUT_MS; their defaults when not given). Stale
    connections: see `ping_when_idle`."""
    limits = timeouts if timeouts is not None else DatabaseTimeouts.defaults()
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        echo=echo,
        hide_parameters=True,
        connect_args={"server_settings": limits.server_settings()},
    )
    ping_when_idle(engine, after_s=ping_after_idle_s)
    return engine


def ping_when_idle(engine: AsyncEngine, *, after_s: float) -> None:
    """Lend a pooled connection without a ping unless it sat unused `after_s` or longer, or its socket is closed.

    SQLAlchemy's `pool_pre_ping` pings at every checkout. With asyncpg that is three round trips (BEGIN, an empty
    statement, ROLLBACK) before every transaction: on a busy pool most of the statements PostgreSQL sees, and on an
    idle service half of its transactions. Here a checkout costs no round trip:
    - a connection whose socket the server closed (a restart, a failover, a terminated backend), once asyncpg has
      read the close, is never lent; the whole pool is recycled, as a failed pre-ping did, and the caller gets a
      new one (in the moment before asyncpg reads it, the connection is as one whose peer vanished, below);
    - a connection unused for `after_s` is pinged first (what goes stale silently sits idle: a dead peer behind a
      proxy or a NAT that drops quiet connections); one that fails its ping recycles the pool the same way;
    - any other is lent as it is. One whose peer vanished without closing it (no FIN reached us) and that was used
      within `after_s` fails its statement: SQLAlchemy recognises the disconnect and invalidates the pool, the
      transaction fails whole and its caller retries, as with a connection that breaks while lent out.
    """

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _idle_from(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _ping_if_idle(dbapi: Any, record: Any, _proxy: Any) -> None:
        raw = getattr(dbapi, "_connection", None)  # the asyncpg connection the adapter wraps
        if raw is not None and raw.is_closed():
            raise InvalidatePoolError("a pooled connection was closed by the server")
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < after_s:
            return  # new, or used a moment ago
        try:
            dbapi.ping()
        except Exception as err:
            raise InvalidatePoolError("a pooled connection failed its ping") from err


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_messaging_schema(engine: AsyncEngine) -> None:
    """Create outbox, inbox (with its partitions around now), dead letters, the admin audit and their triggers
    (tests and the demo; services use Alembic)."""
    async with engine.begin() as conn:
        await conn.run_sync(messaging_metadata.create_all)
        for ddl in (*OUTBOX_NOTIFY_DDL, *ADMIN_AUDIT_DDL, *INBOX_PARTITIONS_DDL):
            await conn.execute(text(ddl))
        await conn.execute(
            text(
                "INSERT INTO inbox_legacy_sealed (sealed_at) SELECT now() "
                "WHERE NOT EXISTS (SELECT 1 FROM inbox_legacy_sealed)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO inbox_forgotten (dropped_before) SELECT '-infinity' "
                "WHERE NOT EXISTS (SELECT 1 FROM inbox_forgotten)"
            )
        )
        await conn.execute(
            text(
                "SELECT count(*) FROM prizeflow_inbox_maintain(now() - interval '30 days', now() + interval '2 days', "
                "interval '1 day')"
            )
        )


async def driver_connection(conn: AsyncSession | AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, inside the transaction (and savepoint) SQLAlchemy opened on it:
    for what only the driver does, such as COPY.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it executes. A COPY sent straight
    to the driver as a transaction's first statement would run outside it, in autocommit, and survive a
    rollback (an outbox event published for a change that never happened): so the transaction is started
    first, the public way, when it has not been yet."""
    if isinstance(conn, AsyncSession):
        conn = await conn.connection()
    raw = await conn.get_raw_connection()
    if getattr(raw.dbapi_connection, "_transaction", True) is None and conn.in_transaction():
        await conn.exec_driver_sql("SELECT 1")
    return raw.driver_connection


async def read_schema_state(conn: AsyncConnection) -> tuple[str | None, dict[str, AppliedRevision]]:
    """The database's Alembic revision (None: never migrated) and `prizeflow_schema_phases` by revision (empty
    before the first migration that recorded phases)."""
    present = (
        await conn.execute(
            text("SELECT to_regclass('alembic_version') IS NOT NULL, to_regclass(:phases) IS NOT NULL"),
            {"phases": PHASES_TABLE},
        )
    ).one()
    revision: str | None = None
    if present[0]:
        heads = sorted((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all())
        revision = ",".join(heads) or None  # several heads: a revision no build expects, refused as unknown
    applied: dict[str, AppliedRevision] = {}
    if present[1]:
        rows = await conn.execute(text(f"SELECT revision, down_revision, phase FROM {PHASES_TABLE}"))  # noqa: S608 - a constant
        applied = {r.revision: AppliedRevision(r.revision, r.down_revision, r.phase) for r in rows}
    return revision, applied


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy asyncpg URL as a plain libpq DSN asyncpg.connect() accepts."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


__all__ = [
    "ADMIN_AUDIT_DDL",
    "INBOX_PARTITIONS_DDL",
    "OUTBOX_CHANNEL",
    "OUTBOX_NOTIFY_DDL",
    "admin_audit_table",
    "asyncpg_dsn",
    "create_engine",
    "create_messaging_schema",
    "dead_letters_table",
    "driver_connection",
    "inbox_forgotten_table",
    "inbox_legacy_sealed_table",
    "inbox_legacy_table",
    "inbox_table",
    "messaging_metadata",
    "outbox_table",
    "read_schema_state",
    "session_factory",
]
