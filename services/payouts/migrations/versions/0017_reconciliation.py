"""Reconciliation with the providers' books: runs, their staged statement lines, and the exception queue.

- `recon_runs`: one per (provider, window); a run of the same window is the same run (idempotent), its fetched
  pages staged in `recon_run_lines` with the cursor of the next (resumable), deleted when the run completes.
- `recon_exceptions`: one per (provider, kind, subject): two runs that find one difference find one exception.
  Its state moves only along open → investigating → resolved (trigger), what it is about (and the money at stake)
  never changes, a resolved one never moves again and needs a resolution; a money action, or closing a critical
  one, needs two different people (CHECK).
- `recon_exception_history`: append-only, who did what and why.
- Indexes on `payouts` by provider and paid time (a run's window), by creation (the finance export) and by the
  provider's reference.
- `recon_payout_lines`: every statement line that named a payout of ours, kept per provider and line id, so a later
  run sees a payout's whole history at its provider (paid again in the next window, paid while in flight).
- `ledger_postings`: what the ledger booked on a rail's external account (`LedgerPosted` from rewards), once per
  ledger transfer, append-only: a run compares it with each payout.

Online since issue 56: the indexes on `payouts` are built CONCURRENTLY first, outside the revision's transaction
(writes to `payouts` never wait on them); the new tables follow in one transaction with the revision's stamp.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import create_index_concurrently

revision = "0017"
down_revision = "0016"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE TABLE recon_runs (
        id text PRIMARY KEY,
        provider text NOT NULL,
        since timestamptz NOT NULL,
        until timestamptz NOT NULL,
        state text NOT NULL DEFAULT 'running',
        cursor text,
        fetched boolean NOT NULL DEFAULT false,
        pages integer NOT NULL DEFAULT 0,
        lease_owner text,
        lease_until timestamptz,
        lines integer NOT NULL DEFAULT 0,
        matched integer NOT NULL DEFAULT 0,
        exceptions integer NOT NULL DEFAULT 0,
        totals jsonb NOT NULL DEFAULT '[]'::jsonb,
        error text,
        requested_by text NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz,
        CONSTRAINT recon_runs_window UNIQUE (provider, since, until),
        CONSTRAINT recon_runs_window_ordered CHECK (since < until),
        CONSTRAINT recon_runs_state CHECK (state IN ('running', 'completed', 'failed')),
        CONSTRAINT recon_runs_finished CHECK ((state = 'running') = (finished_at IS NULL))
    )
    """,
    "CREATE INDEX recon_runs_recent ON recon_runs (provider, started_at DESC)",
    """
    CREATE TABLE recon_run_lines (
        run_id text NOT NULL REFERENCES recon_runs (id) ON DELETE CASCADE,
        line_id text NOT NULL,
        page integer NOT NULL,
        line jsonb NOT NULL,
        PRIMARY KEY (run_id, line_id)
    )
    """,
    """
    CREATE TABLE recon_exceptions (
        id bigserial PRIMARY KEY,
        provider text NOT NULL,
        kind text NOT NULL,
        subject text NOT NULL,
        severity text NOT NULL,
        state text NOT NULL DEFAULT 'open',
        owner text,
        run_id text NOT NULL REFERENCES recon_runs (id),
        payout_id text,
        asset text,
        amount bigint,
        detail text NOT NULL,
        ours jsonb,
        theirs jsonb NOT NULL DEFAULT '[]'::jsonb,
        proposal jsonb,
        resolution text,
        resolution_reason text,
        resolved_by text[],
        resolved_at timestamptz,
        adjustment_id text UNIQUE,
        correlation_id text NOT NULL,
        opened_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        CONSTRAINT recon_exceptions_once UNIQUE (provider, kind, subject),
        CONSTRAINT recon_exceptions_state CHECK (state IN ('open', 'investigating', 'resolved')),
        CONSTRAINT recon_exceptions_severity CHECK (severity IN ('critical', 'high', 'medium')),
        CONSTRAINT recon_exceptions_amount CHECK (amount IS NULL OR amount >= 0),
        CONSTRAINT recon_exceptions_resolved CHECK (
            (state = 'resolved')
            = (resolution IS NOT NULL AND resolved_at IS NOT NULL AND resolution_reason IS NOT NULL)
        ),
        CONSTRAINT recon_exceptions_two_people CHECK (
            resolution IS NULL OR (resolution = 'acknowledge' AND severity <> 'critical')
            OR (cardinality(resolved_by) = 2 AND resolved_by[1] <> resolved_by[2])
        ),
        CONSTRAINT recon_exceptions_investigated CHECK (state <> 'investigating' OR owner IS NOT NULL)
    )
    """,
    "CREATE INDEX recon_exceptions_unresolved ON recon_exceptions (opened_at) WHERE state <> 'resolved'",
    "CREATE INDEX recon_exceptions_payout ON recon_exceptions (payout_id) WHERE payout_id IS NOT NULL",
    """
    CREATE FUNCTION recon_exception_moves() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.state = 'resolved' THEN
            RAISE EXCEPTION 'recon_exceptions: exception % is resolved and never moves again', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.state = 'open' AND OLD.state <> 'open' THEN
            RAISE EXCEPTION 'recon_exceptions: exception % cannot go back to open', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        IF (NEW.provider, NEW.kind, NEW.subject, NEW.severity, NEW.run_id, NEW.opened_at, NEW.payout_id, NEW.asset,
            NEW.amount, NEW.ours, NEW.theirs)
           IS DISTINCT FROM (OLD.provider, OLD.kind, OLD.subject, OLD.severity, OLD.run_id, OLD.opened_at,
            OLD.payout_id, OLD.asset, OLD.amount, OLD.ours, OLD.theirs) THEN
            RAISE EXCEPTION 'recon_exceptions: what exception % is about never changes', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER recon_exceptions_moves BEFORE UPDATE ON recon_exceptions
    FOR EACH ROW EXECUTE FUNCTION recon_exception_moves()
    """,
    """
    CREATE TABLE recon_exception_history (
        exception_id bigint NOT NULL REFERENCES recon_exceptions (id),
        at timestamptz NOT NULL,
        actor text NOT NULL,
        what text NOT NULL,
        reason text
    )
    """,
    "CREATE INDEX recon_exception_history_of ON recon_exception_history (exception_id, at)",
    """
    CREATE FUNCTION recon_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'recon_exception_history is append-only' USING ERRCODE = 'check_violation';
    END $$
    """,
    """
    CREATE TRIGGER recon_exception_history_append_only BEFORE UPDATE OR DELETE ON recon_exception_history
    FOR EACH ROW EXECUTE FUNCTION recon_history_append_only()
    """,
    """
    CREATE TABLE recon_payout_lines (
        provider text NOT NULL,
        line_id text NOT NULL,
        payout_id text NOT NULL,
        occurred_at timestamptz NOT NULL,
        line jsonb NOT NULL,
        PRIMARY KEY (provider, line_id)
    )
    """,
    "CREATE INDEX recon_payout_lines_of ON recon_payout_lines (payout_id)",
    """
    CREATE TABLE ledger_postings (
        transfer_id text PRIMARY KEY,
        kind text NOT NULL,
        provider_type text NOT NULL,
        asset text NOT NULL,
        amount bigint NOT NULL,
        claim_id text,
        payout_id text,
        adjustment_id text,
        posted_at timestamptz NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ledger_postings_kind CHECK (kind IN ('payout', 'return', 'adjustment')),
        CONSTRAINT ledger_postings_amount CHECK (amount > 0),
        CONSTRAINT ledger_postings_names CHECK (
            (kind = 'adjustment' AND adjustment_id IS NOT NULL) OR (kind <> 'adjustment' AND payout_id IS NOT NULL)
        )
    )
    """,
    "CREATE INDEX ledger_postings_payout ON ledger_postings (payout_id) WHERE payout_id IS NOT NULL",
    "CREATE INDEX ledger_postings_adjustment ON ledger_postings (adjustment_id) WHERE adjustment_id IS NOT NULL",
    """
    CREATE FUNCTION ledger_postings_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger_postings is append-only: the ledger never changes a posting'
            USING ERRCODE = 'check_violation';
    END $$
    """,
    """
    CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_postings_append_only()
    """,
]

_PAYOUTS_INDEXES = {
    # A run reads a provider's payouts paid in its window; the finance export reads payouts by creation.
    "payouts_paid_in": "ON payouts (provider_name, paid_at) WHERE paid_at IS NOT NULL",
    "payouts_created": "ON payouts (created_at, id)",
    # A run looks payouts up by the provider's reference its lines carry (the (provider_type, provider_ref) index
    # cannot serve that): without it the lookup reads the whole table, growing with it (docs/capacity.md).
    "payouts_by_provider_ref": "ON payouts (provider_ref) WHERE provider_ref IS NOT NULL",
}

_DOWN = [
    "DROP TABLE recon_payout_lines",
    "DROP INDEX payouts_by_provider_ref",
    "DROP INDEX payouts_created",
    "DROP INDEX payouts_paid_in",
    "DROP TABLE ledger_postings",
    "DROP FUNCTION ledger_postings_append_only()",
    "DROP TABLE recon_exception_history",
    "DROP FUNCTION recon_history_append_only()",
    "DROP TABLE recon_exceptions",
    "DROP FUNCTION recon_exception_moves()",
    "DROP TABLE recon_run_lines",
    "DROP TABLE recon_runs",
]


def upgrade() -> None:
    # First: nothing precedes them, so a retry after a failed build has nothing to run again but them.
    for name, definition in _PAYOUTS_INDEXES.items():
        create_index_concurrently(name, definition)
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
