"""Currency conversion at claim time (docs/adr/0015-currency-conversion.md).

- `fx_quotes`: a quote offered to a player (its pair, amounts, rate, spread, expiry), locked once by the claim that
  takes it. CHECKs hold the rounding rule's arithmetic (spread + net = source, amounts positive, spread below the
  source), the currency codes, and a lock that names a claim and its time together; the trigger
  `fx_quotes_locked_once` refuses changing a quote's terms or its lock once it has one, and a claim id locking two
  quotes (UNIQUE).
- `claims`: the quote a claim locked and what its payout pays (`payout_asset`, `payout_amount`), all set or none,
  the target another asset than the claim's; a quote backs one claim (UNIQUE, FOREIGN KEY).
- `fx_reconciliations`: the FX accounts' daily reconciliation, one row per (day, asset).
- The ledger's account kinds gain `fx_position`.

Expand: old code writes claims without the new columns (all NULL: an unconverted claim).

Online since issue 56: the claims' columns are added plain and every constraint on `claims` and `ledger_accounts`
`NOT VALID`, validated after a commit (the new kinds' CHECK then takes the old one's name), and the quote's unique
index is built CONCURRENTLY before it becomes the constraint: writes to either table never wait on a scan.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import create_index_concurrently, validate_constraint

revision = "0015"
down_revision = "0014"
phase = "expand"
branch_labels = None
depends_on = None

_KINDS_BEFORE = (
    "'player_wallet', 'campaign_pool', 'treasury', 'platform_revenue', 'organizer_revenue', 'payout_clearing', "
    "'provider_external', 'entry_escrow', 'provider_clearing', 'player_receivable'"
)
_KINDS = _KINDS_BEFORE + ", 'fx_position'"
_CODE = "'^[A-Z]{2,5}$'"

# The CHECKs of the claims' new columns, under the names they had inline.
_CLAIMS_CHECKS = {
    "claims_payout_asset_code": f"payout_asset ~ {_CODE}",
    "claims_payout_amount_positive": "payout_amount > 0",
    "claims_fx_spread": "fx_spread >= 0 AND fx_spread < amount",
    "claims_fx_rate_positive": "fx_rate > 0",
    "claims_conversion_whole": """
        (quote_id IS NULL AND payout_asset IS NULL AND payout_amount IS NULL AND fx_spread IS NULL
         AND fx_rate IS NULL)
        OR (quote_id IS NOT NULL AND payout_asset IS NOT NULL AND payout_amount IS NOT NULL
            AND fx_spread IS NOT NULL AND fx_rate IS NOT NULL AND payout_asset <> asset)""",
}

# Before the first commit, so they may run again. The inline REFERENCES was named claims_quote_id_fkey.
_UP = [
    "ALTER TABLE ledger_accounts DROP CONSTRAINT IF EXISTS ledger_accounts_kind_check_new, "
    f"ADD CONSTRAINT ledger_accounts_kind_check_new CHECK (kind IN ({_KINDS})) NOT VALID",
    f"""
    CREATE TABLE IF NOT EXISTS fx_quotes (
        id text PRIMARY KEY,
        player_id text NOT NULL,
        source_asset text NOT NULL CONSTRAINT fx_quotes_source_code CHECK (source_asset ~ {_CODE}),
        target_asset text NOT NULL CONSTRAINT fx_quotes_target_code CHECK (target_asset ~ {_CODE}),
        source_amount bigint NOT NULL CONSTRAINT fx_quotes_source_positive CHECK (source_amount > 0),
        spread_bps integer NOT NULL CONSTRAINT fx_quotes_spread_bps CHECK (spread_bps >= 0 AND spread_bps < 10000),
        spread_amount bigint NOT NULL CONSTRAINT fx_quotes_spread_nonnegative CHECK (spread_amount >= 0),
        net_amount bigint NOT NULL CONSTRAINT fx_quotes_net_positive CHECK (net_amount > 0),
        target_amount bigint NOT NULL CONSTRAINT fx_quotes_target_positive CHECK (target_amount > 0),
        rate numeric NOT NULL CONSTRAINT fx_quotes_rate_positive CHECK (rate > 0),
        rate_timestamp timestamptz NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        claim_id text UNIQUE,
        locked_at timestamptz,
        CONSTRAINT fx_quotes_distinct_assets CHECK (source_asset <> target_asset),
        CONSTRAINT fx_quotes_parts_sum CHECK (spread_amount + net_amount = source_amount),
        CONSTRAINT fx_quotes_expiry_after_creation CHECK (expires_at > created_at),
        CONSTRAINT fx_quotes_lock_whole CHECK ((claim_id IS NULL) = (locked_at IS NULL))
    )
    """,
    "CREATE INDEX IF NOT EXISTS fx_quotes_player ON fx_quotes (player_id, created_at)",
    """
    CREATE OR REPLACE FUNCTION fx_quotes_locked_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.claim_id IS NOT NULL AND NEW.claim_id IS DISTINCT FROM OLD.claim_id THEN
            RAISE EXCEPTION 'fx quote % is locked by claim %', OLD.id, OLD.claim_id USING ERRCODE = 'check_violation';
        END IF;
        IF (NEW.player_id, NEW.source_asset, NEW.target_asset, NEW.source_amount, NEW.spread_bps, NEW.spread_amount,
            NEW.net_amount, NEW.target_amount, NEW.rate, NEW.expires_at)
           IS DISTINCT FROM
           (OLD.player_id, OLD.source_asset, OLD.target_asset, OLD.source_amount, OLD.spread_bps, OLD.spread_amount,
            OLD.net_amount, OLD.target_amount, OLD.rate, OLD.expires_at) THEN
            RAISE EXCEPTION 'fx quote % terms are immutable', OLD.id USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE OR REPLACE TRIGGER fx_quotes_locked_once BEFORE UPDATE ON fx_quotes
    FOR EACH ROW EXECUTE FUNCTION fx_quotes_locked_once()
    """,
    """
    CREATE OR REPLACE FUNCTION fx_quotes_locked_once_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'fx quote % is locked by claim %: it stays', OLD.id, OLD.claim_id
            USING ERRCODE = 'restrict_violation';
    END $$
    """,
    "CREATE OR REPLACE TRIGGER fx_quotes_no_delete BEFORE DELETE ON fx_quotes FOR EACH ROW "
    "WHEN (OLD.claim_id IS NOT NULL) EXECUTE FUNCTION fx_quotes_locked_once_delete()",
    """
    ALTER TABLE claims
        ADD COLUMN IF NOT EXISTS quote_id text,
        ADD COLUMN IF NOT EXISTS payout_asset text,
        ADD COLUMN IF NOT EXISTS payout_amount bigint,
        ADD COLUMN IF NOT EXISTS fx_spread bigint,
        ADD COLUMN IF NOT EXISTS fx_rate numeric
    """,
    *(
        f"ALTER TABLE claims DROP CONSTRAINT IF EXISTS {name}, ADD CONSTRAINT {name} CHECK ({rule}) NOT VALID"
        for name, rule in _CLAIMS_CHECKS.items()
    ),
    "ALTER TABLE claims DROP CONSTRAINT IF EXISTS claims_quote_id_fkey, "
    "ADD CONSTRAINT claims_quote_id_fkey FOREIGN KEY (quote_id) REFERENCES fx_quotes (id) NOT VALID",
]
_VALIDATED = (
    ("ledger_accounts", "ledger_accounts_kind_check_new"),
    *(("claims", name) for name in _CLAIMS_CHECKS),
    ("claims", "claims_quote_id_fkey"),
)

# After the last commit, with the revision's stamp: brief locks, no scan (the unique index is built by then).
_FINALLY = [
    "ALTER TABLE claims ADD CONSTRAINT claims_one_per_quote UNIQUE USING INDEX claims_one_per_quote",
    "ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check",
    "ALTER TABLE ledger_accounts RENAME CONSTRAINT ledger_accounts_kind_check_new TO ledger_accounts_kind_check",
    """
    CREATE TABLE fx_reconciliations (
        day date NOT NULL,
        asset text NOT NULL,
        ledger_position bigint NOT NULL,
        booked_position bigint NOT NULL,
        difference bigint NOT NULL,
        checked_at timestamptz NOT NULL,
        PRIMARY KEY (day, asset),
        CONSTRAINT fx_reconciliations_difference CHECK (difference = ledger_position - booked_position)
    )
    """,
]
_DOWN = [
    "DROP TABLE fx_reconciliations",
    "ALTER TABLE claims DROP CONSTRAINT claims_conversion_whole",
    "ALTER TABLE claims DROP COLUMN fx_rate, DROP COLUMN fx_spread, DROP COLUMN payout_amount, "
    "DROP COLUMN payout_asset, DROP COLUMN quote_id",
    "DROP TABLE fx_quotes",
    "DROP FUNCTION fx_quotes_locked_once()",
    "DROP FUNCTION fx_quotes_locked_once_delete()",
    "ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check",
    f"ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check CHECK (kind IN ({_KINDS_BEFORE}))",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)
    for table, name in _VALIDATED:
        validate_constraint(table, name)
    create_index_concurrently("claims_one_per_quote", "UNIQUE ON claims (quote_id)")
    for ddl in _FINALLY:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
