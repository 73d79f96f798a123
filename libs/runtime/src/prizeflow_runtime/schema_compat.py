"""Whether a service's code may run against its database's schema (issue 33, docs/runbooks/upgrade.md).

A service is built for one chain of Alembic revisions (`ExpectedSchema`, a constant in its package: the wheel does
not ship the migrations). Every migration declares a phase: an *expand* step only adds (the previous release's code
keeps working against it), a *contract* step removes or renames what an earlier release stopped using. The
migrations environment records each applied revision's phase in `prizeflow_schema_phases`, in the upgrade's own
transaction (`prizeflow_runtime.migrations`), so a running service can judge revisions newer than itself without
importing code it was not built with:

- the database at the service's head: compatible;
- ahead, and every revision between the service's head and the database's is an expand step: compatible (a
  rolling upgrade runs the new release's migrations first while this release keeps serving);
- behind, ahead through a contract step, or at a revision neither this build nor the table knows: refused, naming
  the service, the database's revision and the one expected.

Pure: no I/O library is imported here (the reading is `ServiceRuntime`'s, the writing the migrations').
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

PHASES_TABLE: Final = "prizeflow_schema_phases"


class Phase(StrEnum):
    EXPAND = "expand"
    CONTRACT = "contract"


@dataclass(frozen=True)
class ExpectedSchema:
    """The revisions a build's code runs against, base first: its head is the last."""

    service: str
    revisions: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.revisions:
            raise ValueError(f"{self.service}: an expected schema names at least one revision")

    @property
    def head(self) -> str:
        return self.revisions[-1]


@dataclass(frozen=True)
class AppliedRevision:
    """One row of `prizeflow_schema_phases`: a revision the database went through, and its phase."""

    revision: str
    down_revision: str | None
    phase: str


class SchemaMismatchError(RuntimeError):
    """The database's schema is not one this build can run against: the process must not serve or consume."""

    def __init__(self, service: str, database_revision: str | None, expected: str, reason: str) -> None:
        self.service = service
        self.database_revision = database_revision
        self.expected = expected
        self.reason = reason
        at = database_revision if database_revision is not None else "no revision (migrations never ran)"
        super().__init__(f"{service}: database schema at {at}, this build expects {expected}: {reason}")


def check_compatible(
    expected: ExpectedSchema, database_revision: str | None, applied: Mapping[str, AppliedRevision]
) -> tuple[str, ...]:
    """The expand revisions the database is ahead by (empty at the head); `SchemaMismatchError` when this build
    must not run against it. `applied` is `prizeflow_schema_phases` by revision."""
    head = expected.head

    def refuse(reason: str) -> SchemaMismatchError:
        return SchemaMismatchError(expected.service, database_revision, head, reason)

    if database_revision is None:
        raise refuse("run this release's migrations first")
    if database_revision == head:
        return ()
    if database_revision in expected.revisions:
        raise refuse("the database is behind: run this release's migrations first")
    ahead: list[str] = []
    current: str | None = database_revision
    while current != head:
        row = applied.get(current) if current is not None else None
        if current is None or row is None or current in ahead:
            raise refuse(
                f"revision {current} is unknown to this build and not recorded in {PHASES_TABLE} as coming after "
                f"{head}: deploy the release the database was migrated for"
            )
        if row.phase != Phase.EXPAND:
            raise refuse(
                f"the database is ahead through {row.phase} step {current}, which removes what this build may still "
                "use: deploy the release that ran it (a rollback past a contract step is a restore)"
            )
        ahead.append(current)
        current = row.down_revision
    return tuple(reversed(ahead))


__all__ = ["PHASES_TABLE", "AppliedRevision", "ExpectedSchema", "Phase", "SchemaMismatchError", "check_compatible"]
