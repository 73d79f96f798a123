"""Reconciliation findings are about money, not keys: the exceptions of one difference are a chain.

A difference (provider, kind, what it is about) was one exception for good: money that moved again after it was
found (a second partial reversal, a fee raised after it was booked, a third payment after a duplicate was written
off) was dropped by the `(provider, kind, subject)` key. Now each exception is a link of its difference's chain and
claims only money the links before it did not:

- `about`: what the difference is about (`payout:<id>`, `payout:<id>:<asset>`, `line:<line id>`); NULL on the rows
  written before this step, whose `subject` is exactly that (they are their chains' first links).
- `link`: the exception's place in its chain (0 for the first), `absorbed`: the money the links before it claim.
  `subject` stays the unique natural key (`recon_exceptions_once`, which the previous release's `ON CONFLICT` names):
  `about` for the first link, `about#link` after; `recon_exceptions_link` is unique per (provider, kind, about,
  link) as well.
- Trigger `recon_exceptions_chain` (BEFORE INSERT): fills `about` for the previous release's inserts, holds the
  subject to that form, and refuses a new link that does not claim exactly what its chain does not hold (`link` =
  the links before it, `absorbed` = their money): money is never raised twice, nor a resolved exception reused.
  Inserts of one provider's exceptions are serialized (an advisory lock, the one a run takes before reading its
  chains). An insert whose subject is already there passes: its `ON CONFLICT` makes it nothing.
- CHECK: a later link is money (`amount` > 0), `absorbed` is never negative.
- `recon_exception_moves()`: what an exception is about now also covers `about`, `link` and `absorbed`.

Expand: columns with defaults or nullable, an index, a constraint and a trigger the previous release honours (it
inserts first links only, which the trigger completes).

Online since issue 56: the CHECK is added `NOT VALID` and validated after a commit, the unique index built
CONCURRENTLY, both before the trigger: writes to `recon_exceptions` never wait on a scan.

Downgrade: the trigger, the constraints and the columns go (the previous release's `(provider, kind, subject)` key
still holds every row), and `recon_exception_moves()` is 0017's again.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import create_index_concurrently, validate_constraint

revision = "0024"
down_revision = "0023"
phase = "expand"
branch_labels = None
depends_on = None

_MOVES = """
    CREATE OR REPLACE FUNCTION recon_exception_moves() RETURNS trigger LANGUAGE plpgsql AS $$
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
            NEW.amount, NEW.ours, NEW.theirs{new_chain})
           IS DISTINCT FROM (OLD.provider, OLD.kind, OLD.subject, OLD.severity, OLD.run_id, OLD.opened_at,
            OLD.payout_id, OLD.asset, OLD.amount, OLD.ours, OLD.theirs{old_chain}) THEN
            RAISE EXCEPTION 'recon_exceptions: what exception % is about never changes', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
"""

# Before the first commit, so they may run again: the columns, and the CHECK NOT VALID.
_COLUMNS = [
    """
    ALTER TABLE recon_exceptions
        ADD COLUMN IF NOT EXISTS about text,
        ADD COLUMN IF NOT EXISTS link integer NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS absorbed bigint NOT NULL DEFAULT 0
    """,
    """
    ALTER TABLE recon_exceptions DROP CONSTRAINT IF EXISTS recon_exceptions_chain_money,
        ADD CONSTRAINT recon_exceptions_chain_money CHECK (link >= 0 AND absorbed >= 0 AND (link = 0 OR amount > 0))
        NOT VALID
    """,
]

# After the last commit, with the revision's stamp.
_UP = [
    """
    CREATE FUNCTION recon_exception_chain() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        links integer;
        claimed bigint;
        named text;
    BEGIN
        NEW.about := coalesce(NEW.about, NEW.subject);
        named := NEW.about || CASE WHEN NEW.link = 0 THEN '' ELSE '#' || NEW.link END;
        IF NEW.subject IS DISTINCT FROM named THEN
            RAISE EXCEPTION 'recon_exceptions: link % of % must have the subject %', NEW.link, NEW.about, named
                USING ERRCODE = 'check_violation';
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('prizeflow-recon-exceptions:' || NEW.provider, 0));
        IF EXISTS (SELECT 1 FROM recon_exceptions
                   WHERE provider = NEW.provider AND kind = NEW.kind AND subject = NEW.subject) THEN
            RETURN NEW;
        END IF;
        SELECT count(*), coalesce(sum(amount), 0) INTO links, claimed FROM recon_exceptions
        WHERE provider = NEW.provider AND kind = NEW.kind
          AND (about = NEW.about OR (about IS NULL AND subject = NEW.about));
        IF (NEW.link, NEW.absorbed) IS DISTINCT FROM (links, claimed) THEN
            RAISE EXCEPTION 'recon_exceptions: % % claims from link % and % before it; its chain holds % links of %',
                NEW.kind, NEW.about, NEW.link, NEW.absorbed, links, claimed
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER recon_exceptions_chain BEFORE INSERT ON recon_exceptions
    FOR EACH ROW EXECUTE FUNCTION recon_exception_chain()
    """,
    _MOVES.format(new_chain=", NEW.about, NEW.link, NEW.absorbed", old_chain=", OLD.about, OLD.link, OLD.absorbed"),
]

_DOWN = [
    _MOVES.format(new_chain="", old_chain=""),
    "DROP TRIGGER recon_exceptions_chain ON recon_exceptions",
    "DROP FUNCTION recon_exception_chain()",
    "DROP INDEX recon_exceptions_link",
    "ALTER TABLE recon_exceptions DROP CONSTRAINT recon_exceptions_chain_money",
    "ALTER TABLE recon_exceptions DROP COLUMN absorbed, DROP COLUMN link, DROP COLUMN about",
]


def upgrade() -> None:
    for ddl in _COLUMNS:
        op.execute(ddl)
    validate_constraint("recon_exceptions", "recon_exceptions_chain_money")
    create_index_concurrently("recon_exceptions_link", "UNIQUE ON recon_exceptions (provider, kind, about, link)")
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
