"""What the payout lifecycle publishes to the deployable's other contexts: two views, so that reconciliation and
compliance read the lifecycle's rows without naming its tables (issue 58, "contexts own their data";
tests/architecture/test_context_data.py holds every context to the tables it owns and the views others publish).

- `payout_facts`: a payout as the other contexts read it (reconciliation's matching, exceptions and exports;
  compliance's order of re-screens). A plain projection of `payouts` (no join, no aggregate): PostgreSQL plans a
  query of it as the same query of the table, with the same indexes. The destination's address is in it for
  reconciliation's matching only; exports never select it.
- `payout_gate_decisions`: the gate's decisions (`compliance_decisions`), for compliance's record of a player.

What another context changes on a payout goes through the lifecycle's own port in its transaction
(`prizeflow_reconciliation.statements.PayoutReturns`: a return, a fee a statement was the first to carry).

An expand step: a view is new; nothing the previous release reads changes. Online: creating a view locks
the tables it reads no more than a SELECT does, for a moment.

Revision ID: 0032
Revises: 0031
"""

from __future__ import annotations

from alembic import op

revision = "0032"
down_revision = "0031"
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW payout_facts AS
        SELECT id, idempotency_key, claim_id, player_id, correlation_id, created_at, updated_at, state, hold_code,
               provider_name, provider_type, provider_ref, asset, amount, fee_asset, fee_amount, destination_type,
               destination_address, paid_at, outcome_unknown_since, next_attempt_at, attempts
        FROM payouts
        """
    )
    op.execute(
        """
        CREATE VIEW payout_gate_decisions AS
        SELECT id, payout_id, claim_id, player_id, stage, action, hold_code, reasons, policy_version, list_versions,
               decided_at
        FROM compliance_decisions
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS payout_gate_decisions")
    op.execute("DROP VIEW IF EXISTS payout_facts")
