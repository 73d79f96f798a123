"""One destination key for every spelling of a destination (docs/adr/0012-pay-only-whom-you-may.md).

`destination_key` v2 is sha256 of `v2|<n>:<spelling>|<m>:<memo>` (each field prefixed with its length), where the
spelling of a TON address is its raw form and of anything else the address without whitespace, case-folded, and the
memo counts only for the types whose rails read one (`MEMO_TYPES`: crypto_address, the exchange's tag), stripped,
an all-digit one as its number (v1 hashed `type|address|memo` as typed, so one wallet re-spelled was another
destination for a limit, first use and a clearance). Here, in SQL:
- `prizeflow_destination_spelling(address)` and `prizeflow_destination_key(type, address, memo)` stay, with the
  trigger `payouts_destination_key` (BEFORE INSERT OR UPDATE of the destination columns or the key): every payout
  written with a destination stores its v2 key, whatever the writer computed. During a rolling deploy the previous
  release's pods still write v1 keys (this step runs before them, ADR 0010): their payouts count in every window.
- `payouts.destination_key`: every key 0021 (or the code since) wrote is recomputed from the payout's own columns;
  the payouts 0021 left NULL (older than the longest window) stay NULL.
- `screening_clearances` of a destination: each one is copied to its destination's new key (the payout it was
  cleared on, or any payout of that old key, names the destination); clearances of one entry for spellings that
  are now one key become one (the unique constraint; the earliest kept). The table is append-only evidence: the
  rows under the old keys stay, and no v2 key can equal them (another hash input).
- `compliance_decisions` hold no destination key (their reasons name list entries): nothing to do.

Online since issue 56: the functions, the clearances' copies and the trigger commit first (the trigger's lock on
`payouts` held for that commit only); the keys are then rewritten a range of 1,000 ids at a time, each range its own
transaction, so the money path's writes never wait for the rewrite. Each step may run again (CREATE OR REPLACE, the
copies ON CONFLICT DO NOTHING, rows already right not written).

Downgrade: the trigger is dropped first (it would turn them back into v2), then the v1 keys are recomputed from the
payouts' columns (the v1 formula is `type|address|memo` as stored);
clearances keep both rows, so nothing is lost either way, but a clearance recorded after the upgrade under a v2 key
is not copied back (the v1 code holds that destination again: fail closed). The key functions go last.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0002 import update_in_id_ranges

revision = "0023"
down_revision = "0022"
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
# them equal, rewards' 0014 creates the very same two functions). They stay: the triggers below (and rewards') call
# them on every write of a destination. Addresses and memos are printable ASCII (`ProviderRef`, the memo's
# pattern): whitespace and case are folded for ASCII, which is all they can hold; lengths are in characters.
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
# The v1 formula, only while a step rewrites keys (created and dropped in it).
_V1 = """
    CREATE OR REPLACE FUNCTION prizeflow_destination_key_v1(type text, address text, memo text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT encode(sha256(convert_to(type || '|' || address || '|' || coalesce(memo, ''), 'UTF8')), 'hex')
    $$
    """
_DROP_V1 = "DROP FUNCTION IF EXISTS prizeflow_destination_key_v1(text, text, text)"
# The database owns the key: whatever a writer computed (a pod of the previous release, during a rolling deploy,
# still writes v1 keys), a payout stores the key of its own destination columns.
_TRIGGER = [
    """
    CREATE OR REPLACE FUNCTION payout_destination_key() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.destination_key := prizeflow_destination_key(
            NEW.destination_type, NEW.destination_address, NEW.destination_memo);
        RETURN NEW;
    END $$
    """,
    "DROP TRIGGER IF EXISTS payouts_destination_key ON payouts",
    """
    CREATE TRIGGER payouts_destination_key
    BEFORE INSERT OR UPDATE OF destination_type, destination_address, destination_memo, destination_key ON payouts
    FOR EACH ROW WHEN (NEW.destination_address IS NOT NULL) EXECUTE FUNCTION payout_destination_key()
    """,
]
_DROP_TRIGGER = [
    "DROP TRIGGER payouts_destination_key ON payouts",
    "DROP FUNCTION payout_destination_key()",
]


_UP = [
    *_FUNCTIONS,
    _V1,
    # Old key -> new key of every destination a clearance names, read before any payout's key changes.
    """
    CREATE TEMPORARY TABLE destination_key_moves ON COMMIT DROP AS
    SELECT DISTINCT c.subject_key AS old_key,
           prizeflow_destination_key(p.destination_type, p.destination_address, p.destination_memo) AS new_key
    FROM screening_clearances c
    JOIN payouts p ON p.id = c.payout_id OR p.destination_key = c.subject_key
    WHERE c.subject_kind = 'destination'
        AND prizeflow_destination_key_v1(p.destination_type, p.destination_address, p.destination_memo) = c.subject_key
    """,
    """
    INSERT INTO screening_clearances (subject_kind, subject_key, source, entry_uid, cleared_by, payout_id, cleared_at)
    SELECT DISTINCT ON (m.new_key, c.source, c.entry_uid)
           'destination', m.new_key, c.source, c.entry_uid, c.cleared_by, c.payout_id, c.cleared_at
    FROM screening_clearances c JOIN destination_key_moves m ON m.old_key = c.subject_key
    WHERE c.subject_kind = 'destination'
    ORDER BY m.new_key, c.source, c.entry_uid, c.cleared_at, c.id
    ON CONFLICT (subject_kind, subject_key, source, entry_uid) DO NOTHING
    """,
    "DROP TABLE destination_key_moves",
    # Last in the transaction: creating the trigger locks out writers of `payouts` until this commits, at once.
    *_TRIGGER,
]
# Every payout's key through the trigger (the same formula), a range of ids at a time, each range committed on its
# own: row locks on one range for one statement, never the table's writes for the whole rewrite. Rows already right
# are not written; a payout written since the trigger's commit has its v2 key already.
_NOT_REKEYED = (
    "destination_key IS NOT NULL "
    "AND destination_key <> prizeflow_destination_key(destination_type, destination_address, destination_memo)"
)

_DOWN = [
    *_DROP_TRIGGER,  # first: it would rewrite the v1 keys below to v2
    _V1,
    """
    UPDATE payouts
    SET destination_key = prizeflow_destination_key_v1(destination_type, destination_address, destination_memo)
    WHERE destination_key IS NOT NULL
    """,
    _DROP_V1,
    *_DROP_FUNCTIONS,
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)
    # A range's statement is what a money-path write of one of its rows waits for: 1,000 rows a range keep that wait
    # far below the writers' lock timeout on a loaded machine (5,000 once made one wait past 400 ms in make test).
    update_in_id_ranges("payouts", "destination_key = destination_key", _NOT_REKEYED, rows=1_000)
    op.execute(_DROP_V1)


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
