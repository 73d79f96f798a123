"""Three indexes of `payouts` fewer, one more: a payout's insert and its paid update each write one index entry fewer.

- `payouts_destination_players` (destination, time, player) replaces `payouts_destination_window` (destination,
  time). The gate's window facts (`SqlHoldStore.gate_facts`) read the player's payouts over the longest window once,
  and take the destination's sums over the player's own rows from that scan; the other players' rows to the
  destination are read through this index, bounded by the window as before, with `player_id` below or above the
  player's tested on the index entries: the player's own rows are skipped without a visit to the table, where the
  destination's scan visited every row of the window again. The player's first use of a destination keeps
  `payouts_player_destination` (player, destination, time): its oldest row is the first entry it reads.
- `payouts_leases` (lease end of `submitting` rows) goes: since 0030 the worker finds expired leases through
  `payouts_due_order`, and nothing else orders or selects leases by it (the stuck-lease gauge counts the few
  `submitting` rows by `payouts_state_created`).
- `payouts_provider_ref` (provider type, provider ref) goes: `payouts_by_provider_ref` (0017) answers every lookup
  by a provider's reference (a provider event's payout, reconciliation's matches), the type a filter on its rows.

An expand step: dropping an index relaxes nothing the previous release's code meets (its statements keep their
meaning, and its destination scan reads the new index by its first two columns, bounded by the window as before).
Online (issue 56): the index is built CONCURRENTLY and the three are dropped CONCURRENTLY, outside the revision's
transaction (`prizeflow_runtime.migrations`): writes to `payouts` never wait on the upgrade, whatever the table's size.

Revision ID: 0031
Revises: 0030
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import create_index_concurrently, drop_index_concurrently

revision = "0031"
down_revision = "0030"
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index_concurrently(
        "payouts_destination_players",
        "ON payouts (destination_key, created_at, player_id) WHERE destination_key IS NOT NULL",
    )
    for name in ("payouts_destination_window", "payouts_leases", "payouts_provider_ref"):
        drop_index_concurrently(name)


def downgrade() -> None:
    op.execute(
        "CREATE INDEX payouts_provider_ref ON payouts (provider_type, provider_ref) WHERE provider_ref IS NOT NULL"
    )
    op.execute("CREATE INDEX payouts_leases ON payouts (lease_until) WHERE state = 'submitting'")
    op.execute(
        "CREATE INDEX payouts_destination_window ON payouts (destination_key, created_at) "
        "WHERE destination_key IS NOT NULL"
    )
    op.execute("DROP INDEX payouts_destination_players")
