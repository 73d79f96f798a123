"""Sanctions lists as loaded from their publishers (docs/adr/0012-pay-only-whom-you-may.md).

- `sanctions_list_versions`: one row per (source, version) a replica stored: the publisher's date, when it was
  last fetched (the newest of a source is the one fetched last), the file's sha256 and how many entries it has.
  A source keeps its last few versions; older ones are pruned with their entries (ON DELETE CASCADE). A decision
  records the version it was judged with as text, so pruning never breaks a decision's record.
- `sanctions_list_entries`: the entries of each version: the list's own id, its kind, its names (primary first),
  its digital currency addresses (`<currency>:<address>`) and its dates of birth as the list publishes them. All
  of it is the publisher's public data about listed parties; nothing of a player is ever stored here.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
phase = "expand"
branch_labels = None
depends_on = None

_UP: list[str] = [
    """
    CREATE TABLE sanctions_list_versions (
        source text NOT NULL,
        version text NOT NULL,
        published_at timestamptz NOT NULL,
        fetched_at timestamptz NOT NULL,
        stored_at timestamptz NOT NULL DEFAULT now(),
        sha256 text NOT NULL,
        entries integer NOT NULL,
        PRIMARY KEY (source, version),
        CONSTRAINT sanctions_list_versions_source CHECK (source IN ('ofac_sdn', 'ofac_consolidated', 'eu', 'un')),
        CONSTRAINT sanctions_list_versions_sha256 CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        CONSTRAINT sanctions_list_versions_entries CHECK (entries > 0),
        CONSTRAINT sanctions_list_versions_one_file UNIQUE (source, sha256)
    )
    """,
    "CREATE INDEX sanctions_list_versions_newest ON sanctions_list_versions (source, fetched_at DESC)",
    """
    CREATE TABLE sanctions_list_entries (
        source text NOT NULL,
        version text NOT NULL,
        uid text NOT NULL,
        kind text NOT NULL,
        names text[] NOT NULL,
        addresses text[] NOT NULL DEFAULT '{}',
        birth_dates text[] NOT NULL DEFAULT '{}',
        PRIMARY KEY (source, version, uid),
        FOREIGN KEY (source, version) REFERENCES sanctions_list_versions (source, version) ON DELETE CASCADE,
        CONSTRAINT sanctions_list_entries_kind CHECK (kind IN ('individual', 'entity', 'vessel', 'aircraft')),
        CONSTRAINT sanctions_list_entries_named CHECK (cardinality(names) > 0 OR cardinality(addresses) > 0)
    )
    """,
]

_DOWN: list[str] = [
    "DROP TABLE sanctions_list_entries",
    "DROP TABLE sanctions_list_versions",
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
