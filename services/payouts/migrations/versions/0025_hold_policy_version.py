"""What a compliance hold showed the people who release it: the risk policy's version and findings (issue 43).

A person who releases a `policy` hold decides the findings it showed them, under the version it showed them. The
hold now records both, so the gate can tell whether a later decision is still that one: a version activated since
that refuses the payout (for any reason, the same rule tightened included), or a finding they were not shown, holds
it again for people (docs/adr/0012-pay-only-whom-you-may.md, item 7).

- `payouts.hold_policy_version` (bigint) and `payouts.hold_findings` (a JSON array of `<finding>@<rule>` and
  `undecided@<what>`, `prizeflow_payouts.domain.compliance.gate.policy_findings`), written with every hold; both or
  neither (CHECK).
- The policy holds open now get them from the decision that made them (the newest `hold` decision of the payout,
  when it is a `policy` one), so a hold made before this step is released as it was shown. A hold without them (no
  such decision, or written by the previous release during the rollout) releases nothing: the gate asks people
  again (fail closed).

Online since issue 56: the columns are added plain, their CHECKs `NOT VALID` and validated after a commit, and the
backfill runs after that commit (row locks only): writes to `payouts` never wait on a scan.

Downgrade: the columns go (the code before this step never reads them).

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import validate_constraint

revision = "0025"
down_revision = "0024"
phase = "expand"
branch_labels = None
depends_on = None

# The CHECKs under the names PostgreSQL gave them when they were inline (<table>_<column>_check).
_CHECKS = {
    "payouts_hold_policy_version_check": "hold_policy_version >= 0",
    "payouts_hold_findings_check": "jsonb_typeof(hold_findings) = 'array'",
    "payouts_hold_policy_whole": "(hold_policy_version IS NULL) = (hold_findings IS NULL)",
}

# Before the first commit, so they may run again.
_COLUMNS = [
    """
    ALTER TABLE payouts
        ADD COLUMN IF NOT EXISTS hold_policy_version bigint,
        ADD COLUMN IF NOT EXISTS hold_findings jsonb
    """,
    *(
        f"ALTER TABLE payouts DROP CONSTRAINT IF EXISTS {name}, ADD CONSTRAINT {name} CHECK ({rule}) NOT VALID"
        for name, rule in _CHECKS.items()
    ),
]

# After the last commit, with the revision's stamp (row locks, not the ALTER's table lock).
_UP = [
    # `policy_findings` as of this revision, from a decision's recorded reasons (`Verdict.reasons()`: one per hit
    # with its rule; one `undecided` whose detail joins the deferred rules with "; ").
    """
    UPDATE payouts p SET hold_policy_version = d.policy_version, hold_findings = d.findings
    FROM (
        SELECT DISTINCT ON (c.payout_id) c.payout_id, c.hold_code, c.policy_version,
            (SELECT coalesce(jsonb_agg(DISTINCT f.key ORDER BY f.key), '[]'::jsonb) FROM (
                SELECT (r ->> 'finding') || '@' || (r ->> 'rule') AS key
                FROM jsonb_array_elements(c.reasons) AS r WHERE r ? 'rule'
                UNION
                SELECT 'undecided@' || u
                FROM jsonb_array_elements(c.reasons) AS r, unnest(string_to_array(r ->> 'detail', '; ')) AS u
                WHERE r ->> 'finding' = 'undecided'
            ) AS f) AS findings
        FROM compliance_decisions c
        WHERE c.action = 'hold'
        ORDER BY c.payout_id, c.id DESC
    ) AS d
    WHERE p.id = d.payout_id AND p.hold_code = 'policy' AND d.hold_code = 'policy'
    """,
]

_DOWN = [
    """
    ALTER TABLE payouts DROP CONSTRAINT IF EXISTS payouts_hold_policy_whole,
        DROP COLUMN IF EXISTS hold_findings, DROP COLUMN IF EXISTS hold_policy_version
    """,
]


def upgrade() -> None:
    for statement in _COLUMNS:
        op.execute(statement)
    for name in _CHECKS:
        validate_constraint("payouts", name)
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
