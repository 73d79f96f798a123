"""Final states are final: the transition table in PostgreSQL, and the provider's reports that disagree with it.

- Trigger `payouts_transition_allowed`: a change of `payouts.state` must follow a path of
  `prizeflow_payouts.domain.state.TRANSITIONS` (frozen here; a unit test holds the two equal). One statement may
  write several steps (a retry's claim, `failed → approved → submitting`), but no path leaves a final state: paid
  only goes on to returned; returned, cancelled and rejected go nowhere. The table has no `failed → paid`.
- Trigger `payouts_final_failure_stays` (0008) now keeps a final failure a final failure: it may no longer become
  `paid`/`returned` (its reservation went back to the player's wallet; the provider's contrary word is a
  disagreement a person decides, below).
- Table `payout_disagreements`: a provider report that contradicts where a payout is (paid after a final failure or
  a return, a reversal after paid, anything for a payout never sent). `checking` until the provider's current
  status was read: `stale` when it agrees with us (an old snapshot), `contradiction` when it does not (raised for a
  person, alert `PrizeflowFinalStateContradicted`), `acknowledged` by that person (audited). At most one open
  (`checking` or `contradiction`) per payout; a closed one never changes (trigger).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
phase = "expand"
branch_labels = None
depends_on = None

# (from, to): prizeflow_payouts.domain.state.TRANSITIONS as of this revision.
ALLOWED = (
    ("requested", "pending_approval"),
    ("requested", "approved"),
    ("requested", "cancelled"),
    ("pending_approval", "approved"),
    ("pending_approval", "rejected"),
    ("pending_approval", "cancelled"),
    ("approved", "submitting"),
    ("approved", "cancelled"),
    ("approved", "paid"),
    ("submitting", "submitted"),
    ("submitting", "paid"),
    ("submitting", "failed"),
    ("submitting", "cancelled"),
    ("submitted", "paid"),
    ("submitted", "failed"),
    ("submitted", "cancelled"),
    ("paid", "returned"),
    ("failed", "approved"),
    ("failed", "cancelled"),
)


def reachable(pairs: tuple[tuple[str, str], ...]) -> set[tuple[str, str]]:
    """Every (from, to) a path of allowed moves joins: one UPDATE may write several steps at once (a retry's claim
    writes failed → approved → submitting; a provider's `returned` for a submitted payout, submitted → paid →
    returned), each with its history row. A final state has no way out, so none has one here either."""
    closure = set(pairs)
    while True:
        more = {(a, d) for a, b in closure for c, d in closure if b == c} - closure
        if not more:
            return closure
        closure |= more


_PAIRS = ", ".join(f"('{a}', '{b}')" for a, b in sorted(reachable(ALLOWED)))
STATUSES = "'accepted', 'pending', 'submitted', 'paid', 'failed', 'cancelled', 'returned'"
STATES = (
    "'requested', 'pending_approval', 'approved', 'submitting', 'submitted', 'paid', 'failed', 'cancelled', "
    "'rejected', 'returned'"
)

_UP = [
    f"""
    CREATE FUNCTION payout_transition_allowed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (OLD.state, NEW.state) NOT IN ({_PAIRS}) THEN
            RAISE EXCEPTION 'payout %: % -> % is not a transition of the payout state machine',
                OLD.id, OLD.state, NEW.state USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER payouts_transition_allowed BEFORE UPDATE OF state ON payouts
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION payout_transition_allowed()
    """,
    "DROP TRIGGER payouts_final_failure_stays ON payouts",
    """
    CREATE TRIGGER payouts_final_failure_stays BEFORE UPDATE ON payouts
    FOR EACH ROW
    WHEN (OLD.state = 'failed' AND OLD.finished_at IS NOT NULL
          AND NOT (NEW.state = 'failed' AND NEW.finished_at IS NOT NULL))
    EXECUTE FUNCTION payout_final_failure_stays()
    """,
    f"""
    CREATE TABLE payout_disagreements (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        payout_id text NOT NULL REFERENCES payouts (id),
        provider text NOT NULL,
        payout_state text NOT NULL CHECK (payout_state IN ({STATES})),
        reported text NOT NULL CHECK (reported IN ({STATUSES})),
        source_ref text,
        status text NOT NULL DEFAULT 'checking'
            CHECK (status IN ('checking', 'stale', 'contradiction', 'acknowledged')),
        provider_status_now text CHECK (provider_status_now IN ({STATUSES}, 'not_found', 'unknown')),
        checks int NOT NULL DEFAULT 0 CHECK (checks >= 0),
        next_check_at timestamptz,
        detail text CHECK (length(detail) <= 1000),
        created_at timestamptz NOT NULL DEFAULT now(),
        checked_at timestamptz,
        acknowledged_by text,
        acknowledged_reason text CHECK (length(acknowledged_reason) BETWEEN 1 AND 1000),
        acknowledged_at timestamptz,
        CONSTRAINT payout_disagreements_checking_is_due CHECK ((status = 'checking') = (next_check_at IS NOT NULL)),
        CONSTRAINT payout_disagreements_concluded_when_checked
            CHECK (status = 'checking' OR (checked_at IS NOT NULL AND provider_status_now IS NOT NULL)),
        CONSTRAINT payout_disagreements_acknowledged_by_someone CHECK (
            (status = 'acknowledged')
            = (acknowledged_by IS NOT NULL AND acknowledged_reason IS NOT NULL AND acknowledged_at IS NOT NULL)
        )
    )
    """,
    """
    CREATE UNIQUE INDEX payout_disagreements_one_open ON payout_disagreements (payout_id)
        WHERE status IN ('checking', 'contradiction')
    """,
    "CREATE INDEX payout_disagreements_due ON payout_disagreements (next_check_at) WHERE status = 'checking'",
    "CREATE INDEX payout_disagreements_status ON payout_disagreements (status, id)",
    """
    CREATE FUNCTION payout_disagreement_moves() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.status = NEW.status AND OLD.status = 'checking' THEN
            RETURN NEW;  -- another check is due
        END IF;
        IF (OLD.status, NEW.status) NOT IN (('checking', 'stale'), ('checking', 'contradiction'),
                                            ('contradiction', 'acknowledged')) THEN
            RAISE EXCEPTION 'payout disagreement %: % -> % is not allowed (a concluded check is final)',
                OLD.id, OLD.status, NEW.status USING ERRCODE = 'check_violation';
        END IF;
        IF (OLD.payout_id, OLD.reported, OLD.payout_state, OLD.source_ref)
           IS DISTINCT FROM (NEW.payout_id, NEW.reported, NEW.payout_state, NEW.source_ref) THEN
            RAISE EXCEPTION 'payout disagreement %: what was reported is evidence, never rewritten', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER payout_disagreements_move BEFORE UPDATE ON payout_disagreements
    FOR EACH ROW EXECUTE FUNCTION payout_disagreement_moves()
    """,
    """
    CREATE FUNCTION payout_disagreement_kept() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'payout disagreement %: evidence is never deleted', OLD.id USING ERRCODE = 'check_violation';
    END $$
    """,
    """
    CREATE TRIGGER payout_disagreements_kept BEFORE DELETE ON payout_disagreements
    FOR EACH ROW EXECUTE FUNCTION payout_disagreement_kept()
    """,
]

_DOWN = [
    "DROP TABLE payout_disagreements",
    "DROP FUNCTION payout_disagreement_moves()",
    "DROP FUNCTION payout_disagreement_kept()",
    "DROP TRIGGER payouts_final_failure_stays ON payouts",
    """
    CREATE TRIGGER payouts_final_failure_stays BEFORE UPDATE ON payouts
    FOR EACH ROW
    WHEN (OLD.state = 'failed' AND OLD.finished_at IS NOT NULL
          AND NOT (NEW.state IN ('paid', 'returned') OR (NEW.state = 'failed' AND NEW.finished_at IS NOT NULL)))
    EXECUTE FUNCTION payout_final_failure_stays()
    """,
    "DROP TRIGGER payouts_transition_allowed ON payouts",
    "DROP FUNCTION payout_transition_allowed()",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
