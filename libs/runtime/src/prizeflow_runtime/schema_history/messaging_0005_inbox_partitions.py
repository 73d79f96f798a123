"""Messaging step 5: the inbox is kept for a dedup horizon, not for ever (ADR 0008).

`inbox` becomes a table partitioned by RANGE on `occurred_hour`, the event's own CloudEvents `time` floored to the
UTC hour (a redelivered record carries the same bytes, so it lands in the same partition), with `occurred_hour` in
the primary key: the same id with other bytes within one hour still meets its first row and is refused. Whole
partitions older than the horizon are dropped by `prizeflow_inbox_maintain`, which also creates the ones ahead; it
is SECURITY DEFINER (the service's runtime role may not create or drop tables), serialised by an advisory lock,
idempotent, and refuses a horizon under a day. Both functions fix their `search_path` (`public`, then `pg_temp`:
a caller's temporary table cannot stand in for `inbox_forgotten`), `DateStyle` and `TimeZone` (partition bounds are
read back from their text form), whatever the caller's session says.

The existing table is not copied (O(1) on any size): it is renamed `inbox_legacy` and the claim still consults it,
so no dedup row is lost; it is emptied once it was sealed more than the horizon (plus a day) ago. `inbox_forgotten`
remembers up to where partitions were dropped: none is ever created again below it. A downgrade folds
the partitioned rows back into it. Frozen: never edit; add a step instead."""

from __future__ import annotations

from typing import Any

UPGRADE = (
    "ALTER TABLE inbox RENAME TO inbox_legacy",
    "ALTER TABLE inbox_legacy RENAME CONSTRAINT inbox_pkey TO inbox_legacy_pkey",
    "CREATE TABLE inbox_legacy_sealed (sealed_at TIMESTAMP WITH TIME ZONE NOT NULL)",
    "INSERT INTO inbox_legacy_sealed (sealed_at) VALUES (now())",
    "CREATE TABLE inbox_forgotten (dropped_before TIMESTAMP WITH TIME ZONE NOT NULL)",
    "INSERT INTO inbox_forgotten (dropped_before) VALUES ('-infinity')",
    """
    CREATE TABLE inbox (
        consumer VARCHAR(128) NOT NULL,
        event_id UUID NOT NULL,
        occurred_hour TIMESTAMP WITH TIME ZONE NOT NULL
            CONSTRAINT inbox_occurred_hour CHECK (extract(epoch FROM occurred_hour) % 3600 = 0),
        topic VARCHAR(255) NOT NULL,
        partition INTEGER NOT NULL,
        "offset" BIGINT NOT NULL,
        received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        digest BYTEA,
        outcome VARCHAR(16) NOT NULL DEFAULT 'applied'
            CONSTRAINT inbox_outcome CHECK (outcome IN ('applied', 'refused')),
        CONSTRAINT inbox_pkey PRIMARY KEY (consumer, event_id, occurred_hour)
    ) PARTITION BY RANGE (occurred_hour)
    """,
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
    "SELECT count(*) FROM prizeflow_inbox_maintain(now() - interval '30 days', now() + interval '2 days', "
    "interval '1 day')",
)

DOWNGRADE = (
    """
    INSERT INTO inbox_legacy (consumer, event_id, topic, partition, "offset", received_at, digest, outcome)
    SELECT DISTINCT ON (consumer, event_id) consumer, event_id, topic, partition, "offset", received_at, digest, outcome
    FROM inbox ORDER BY consumer, event_id, received_at
    ON CONFLICT (consumer, event_id) DO NOTHING
    """,
    "DROP FUNCTION IF EXISTS prizeflow_inbox_maintain(TIMESTAMP WITH TIME ZONE, TIMESTAMP WITH TIME ZONE, INTERVAL)",
    "DROP TABLE inbox",
    "DROP FUNCTION IF EXISTS prizeflow_inbox_partitions()",
    "DROP TABLE inbox_legacy_sealed",
    "DROP TABLE inbox_forgotten",
    "ALTER TABLE inbox_legacy RENAME CONSTRAINT inbox_legacy_pkey TO inbox_pkey",
    "ALTER TABLE inbox_legacy RENAME TO inbox",
)


def upgrade(op: Any) -> None:
    for ddl in UPGRADE:
        op.execute(ddl)


def downgrade(op: Any) -> None:
    for ddl in DOWNGRADE:
        op.execute(ddl)
