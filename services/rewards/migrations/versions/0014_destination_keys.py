"""One destination key for every spelling of a destination (docs/adr/0012-pay-only-whom-you-may.md).

`destination_key` v2 is sha256 of `v2|<n>:<spelling>|<m>:<memo>` (each field prefixed with its length), where the
spelling of a TON address is its raw form and of anything else the address without whitespace, case-folded, and the
memo counts only for the types whose rails read one (`MEMO_TYPES`: crypto_address, the exchange's tag), stripped,
an all-digit one as its number (v1 hashed `type|address|memo` as typed, so one wallet re-spelled was another
destination for `destination_limit` and the new-destination cooldown). Here, in SQL, so the policy's windows, first
use and a retried claim's idempotency carry over:
- `prizeflow_destination_spelling(address)` and `prizeflow_destination_key(type, address, memo)` (payouts' 0023 has
  the same) stay, with the trigger `claims_destination_key` (BEFORE INSERT OR UPDATE of `destination` or the key):
  every claim written with a destination stores its v2 key, whatever the writer computed. During a rolling deploy
  the previous release's pods still write v1 keys (this step runs before them, ADR 0010): their claims count in the
  windows, and one retried on a new pod compares v2 with v2 (not `idempotency_key_reused`).
- `claims.destination_key`: recomputed from the claim's own `destination`.
- `payout_destinations` (PRIMARY KEY (player_id, destination_key)): each row moves to its new key (the claims
  holding its old key name the destination); spellings of one destination that are now one key become one row
  keeping the earliest `first_seen_at`. A row no claim names (none is written without one) keeps its key. No trigger
  can re-key a first use written later by an old pod (it stores no address): it only makes that destination look new
  once more (its cooldown applies again: stricter).

Online since issue 56: the functions, the first-use rows' moves and the trigger commit first (the trigger's lock on
`claims` held for that commit only); the claims' keys are then rewritten a range of 1,000 ids at a time, each range
its own transaction, so claims never wait for the rewrite. Each step may run again (CREATE OR REPLACE, the moves
ON CONFLICT, claims already right not written).

Downgrade: the trigger is dropped first (it would turn them back into v2), then the v1 keys are recomputed from the
claims' `destination` (`type|address|memo` as stored), and each player's merged first-use row is split back per old
key, first seen at the later of the merged row's time and the player's first claim to that spelling (never earlier
than the v1 code had it, so no cooldown is shortened). The key functions go last.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0002 import update_in_id_ranges

revision = "0014"
down_revision = "0013"
phase = "expand"
branch_labels = None
depends_on = None


def _crc16_table() -> list[int]:
    """CRC-16/XMODEM by byte (polynomial 0x1021): the checksum of a user-friendly TON address."""
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
        table.append(crc)
    return table


# `prizeflow_contracts.providers.destination_spelling`, `destination_memo` and `destination_key` (v2) as of this
# revision, in SQL (a revision never imports live code: copied here; tests/integration/test_destination_keys.py holds
# them equal to the code, and to payouts' 0023). They stay: the trigger below calls them on every claim written.
# Addresses and memos are printable ASCII (`ProviderRef`, the memo's pattern): whitespace and case are folded for
# ASCII, which is all they can hold; lengths are in characters.
_WHITESPACE = r"E' \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f'"
_MEMO_TYPES = "'crypto_address'"  # `MEMO_TYPES`: the types whose rails read a memo (the exchange's tag)
_FUNCTIONS = [
    rf"""
    CREATE OR REPLACE FUNCTION prizeflow_destination_spelling(address text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE
        compact text := translate(address, {_WHITESPACE}, '');
        decoded bytea;
        crc int := 0;
    BEGIN
        IF compact ~ '^(0|-1):[0-9a-fA-F]{{64}}$' THEN
            RETURN split_part(compact, ':', 1) || ':' || translate(split_part(compact, ':', 2), 'ABCDEF', 'abcdef');
        END IF;
        IF compact ~ '^[A-Za-z0-9+/_-]{{48}}$' THEN
            DECLARE
                crc_table CONSTANT int[] := ARRAY{_crc16_table()};  -- only for what may be a TON address
            BEGIN
                decoded := decode(translate(compact, '-_', '+/'), 'base64');
                FOR i IN 0..33 LOOP
                    crc := ((crc << 8) & 65535) # crc_table[(((crc >> 8) # get_byte(decoded, i)) & 255) + 1];
                END LOOP;
            END;
            IF crc = ((get_byte(decoded, 34) << 8) | get_byte(decoded, 35))
               AND (get_byte(decoded, 0) & 127) IN (17, 81)  -- bounceable 0x11, non-bounceable 0x51 (| 0x80 test-only)
               AND get_byte(decoded, 1) IN (0, 255)  -- workchain 0 or -1
            THEN
                RETURN CASE get_byte(decoded, 1) WHEN 255 THEN '-1' ELSE '0' END || ':'
                    || encode(substring(decoded FROM 3 FOR 32), 'hex');
            END IF;
        END IF;
        RETURN translate(compact, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
    END $$
    """,
    rf"""
    CREATE OR REPLACE FUNCTION prizeflow_destination_key(type text, address text, memo text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    DECLARE
        spelling text := prizeflow_destination_spelling(address);
        tag text := CASE WHEN type IN ({_MEMO_TYPES}) THEN btrim(coalesce(memo, ''), {_WHITESPACE}) ELSE '' END;
    BEGIN
        IF tag ~ '^[0-9]+$' THEN
            tag := coalesce(nullif(ltrim(tag, '0'), ''), '0');
        END IF;
        RETURN encode(sha256(convert_to(
            'v2|' || length(spelling) || ':' || spelling || '|' || length(tag) || ':' || tag, 'UTF8')), 'hex');
    END $$
    """,
]
_DROP_FUNCTIONS = [
    "DROP FUNCTION prizeflow_destination_key(text, text, text)",
    "DROP FUNCTION prizeflow_destination_spelling(text)",
]
# A claim's `destination` is the PayoutDestination as JSON (type, address, memo). The v1 formula and the helpers
# over it, only while a step rewrites keys (created and dropped in it).
_HELPERS = [
    """
    CREATE OR REPLACE FUNCTION prizeflow_destination_key_v1(type text, address text, memo text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT encode(sha256(convert_to(type || '|' || address || '|' || coalesce(memo, ''), 'UTF8')), 'hex')
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION prizeflow_claim_key_v1(destination jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT prizeflow_destination_key_v1(destination->>'type', destination->>'address', destination->>'memo')
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION prizeflow_claim_key_v2(destination jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT prizeflow_destination_key(destination->>'type', destination->>'address', destination->>'memo')
    $$
    """,
]
_DROP_HELPERS = [
    "DROP FUNCTION IF EXISTS prizeflow_claim_key_v2(jsonb)",
    "DROP FUNCTION IF EXISTS prizeflow_claim_key_v1(jsonb)",
    "DROP FUNCTION IF EXISTS prizeflow_destination_key_v1(text, text, text)",
]
# The database owns the key: whatever a writer computed (a pod of the previous release, during a rolling deploy,
# still writes v1 keys), a claim with a destination stores the key of that destination. So windows count its
# amount, and a claim stored by an old pod and retried on a new one compares v2 with v2 (idempotency).
_TRIGGER = [
    """
    CREATE OR REPLACE FUNCTION claim_destination_key() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.destination_key := prizeflow_destination_key(
            NEW.destination->>'type', NEW.destination->>'address', NEW.destination->>'memo');
        RETURN NEW;
    END $$
    """,
    "DROP TRIGGER IF EXISTS claims_destination_key ON claims",
    """
    CREATE TRIGGER claims_destination_key BEFORE INSERT OR UPDATE OF destination, destination_key ON claims
    FOR EACH ROW WHEN (NEW.destination->>'address' IS NOT NULL) EXECUTE FUNCTION claim_destination_key()
    """,
]
_DROP_TRIGGER = [
    "DROP TRIGGER claims_destination_key ON claims",
    "DROP FUNCTION claim_destination_key()",
]


_UP = [
    *_FUNCTIONS,
    *_HELPERS,
    # Each player's old key -> new key, from their claims (every first-use row was written with a claim), read
    # before any claim's key changes.
    """
    CREATE TEMPORARY TABLE destination_key_moves ON COMMIT DROP AS
    SELECT DISTINCT c.player_id, c.destination_key AS old_key, prizeflow_claim_key_v2(c.destination) AS new_key
    FROM claims c WHERE c.destination->>'address' IS NOT NULL
    """,
    "CREATE INDEX ON destination_key_moves (player_id, old_key)",
    "ANALYZE destination_key_moves",
    """
    INSERT INTO payout_destinations (player_id, destination_key, first_seen_at)
    SELECT d.player_id, m.new_key, min(d.first_seen_at)
    FROM payout_destinations d
    JOIN destination_key_moves m ON m.player_id = d.player_id AND m.old_key = d.destination_key
    WHERE m.new_key <> m.old_key
    GROUP BY d.player_id, m.new_key
    ON CONFLICT (player_id, destination_key)
        DO UPDATE SET first_seen_at = least(payout_destinations.first_seen_at, excluded.first_seen_at)
    """,
    """
    DELETE FROM payout_destinations d USING destination_key_moves m
    WHERE d.player_id = m.player_id AND d.destination_key = m.old_key AND m.new_key <> m.old_key
    """,
    "DROP TABLE destination_key_moves",
    # Last in the transaction: creating the trigger locks out writers of claims until this commits, at once.
    *_TRIGGER,
]
# Every claim's key through the trigger (the same formula), a range of ids at a time, each range committed on its
# own: row locks on one range for one statement, never the table's writes for the whole rewrite. Claims already
# right are not written; one written since the trigger's commit has its v2 key already.
_NOT_REKEYED = "destination->>'address' IS NOT NULL AND destination_key <> prizeflow_claim_key_v2(destination)"

_DOWN = [
    *_DROP_TRIGGER,  # first: it would rewrite the v1 keys below to v2
    *_HELPERS,
    """
    CREATE TEMPORARY TABLE destination_key_moves ON COMMIT DROP AS
    SELECT c.player_id, prizeflow_claim_key_v2(c.destination) AS new_key,
           prizeflow_claim_key_v1(c.destination) AS old_key, min(c.created_at) AS first_claim_at
    FROM claims c WHERE c.destination->>'address' IS NOT NULL GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO payout_destinations (player_id, destination_key, first_seen_at)
    SELECT m.player_id, m.old_key, greatest(d.first_seen_at, m.first_claim_at)
    FROM destination_key_moves m
    JOIN payout_destinations d ON d.player_id = m.player_id AND d.destination_key = m.new_key
    WHERE m.new_key <> m.old_key
    ON CONFLICT (player_id, destination_key) DO NOTHING
    """,
    """
    DELETE FROM payout_destinations d USING destination_key_moves m
    WHERE d.player_id = m.player_id AND d.destination_key = m.new_key AND m.new_key <> m.old_key
    """,
    """
    UPDATE claims c SET destination_key = k.key
    FROM (SELECT id, prizeflow_claim_key_v1(destination) AS key FROM claims WHERE destination->>'address' IS NOT NULL) k
    WHERE k.id = c.id AND c.destination_key <> k.key
    """,
    "DROP TABLE destination_key_moves",
    *_DROP_HELPERS,
    *_DROP_FUNCTIONS,
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)
    # A range's statement is what a money-path write of one of its rows waits for: 1,000 rows a range keep that wait
    # far below the writers' lock timeout on a loaded machine (5,000 once made one wait past 400 ms in make test).
    update_in_id_ranges("claims", "destination_key = destination_key", _NOT_REKEYED, rows=1_000)
    for statement in _DROP_HELPERS:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
