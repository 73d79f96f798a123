"""Reconciliation's ports: the stores of its unit of work (`books.py`), by what they keep, and its metrics.

`RunStore` is the runs' side (a window claimed, its statement staged page by page, matched under the provider's
lock, its findings opened as exceptions); `ExceptionStore` the queue's (an exception locked, taken, proposed,
resolved, each step on record). Both are bound to one transaction with the payout lifecycle's `PayoutReturns` and the
outbox, so a decision, the payout it returns and the events it stages commit together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.providers import StatementLine
from prizeflow_reconciliation.domain import Action, Chain, ExceptionKind, ExceptionState, Finding, OurPayout, Outcome


@dataclass(frozen=True, slots=True)
class Actor:
    """Who decides, as the admin API authenticated them."""

    user_id: str
    roles: frozenset[str]
    correlation_id: str


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    provider: str
    since: datetime
    until: datetime
    state: str
    cursor: str | None
    fetched: bool
    pages: int


@dataclass(frozen=True, slots=True)
class ReconException:
    id: int
    provider: str
    kind: ExceptionKind
    state: ExceptionState
    owner: str | None
    payout_id: str | None
    asset: str | None
    amount: int | None
    proposal: dict[str, Any] | None
    correlation_id: str
    player_id: str | None
    underpaid: bool = False  # the provider paid less than our payout (its first line)


@dataclass(frozen=True, slots=True)
class Resolution:
    action: Action
    reason: str
    resolved_by: tuple[str, ...]
    adjustment_id: str | None = None


class RunStore(Protocol):
    """A run's tables, and what a run reads of our payouts, the ledger and the exceptions already found."""

    async def claim_run(
        self,
        run_id: str,
        provider: str,
        since: datetime,
        until: datetime,
        *,
        owner: str,
        lease_s: float,
        at: datetime,
        by: str,
    ) -> Run | None:
        """The run of this window, created if new, leased to `owner` unless completed; None while another owner's
        lease runs. A completed run is returned as is (a run of the same window is the same run)."""
        ...

    async def stage_page(
        self,
        run_id: str,
        page: int,
        lines: Sequence[StatementLine],
        next_cursor: str | None,
        *,
        owner: str,
        lease_s: float,
        at: datetime,
    ) -> bool:
        """Keep a page's lines (a line seen again is kept once) and where the next page starts, renewing the lease;
        False (nothing kept) once `owner` no longer holds the run."""
        ...

    async def staged_lines(self, run_id: str) -> list[StatementLine]: ...

    async def our_payouts(
        self,
        provider: str,
        since: datetime,
        until: datetime,
        keys: Sequence[str],
        refs: Sequence[str],
        *,
        with_ledger: bool,
    ) -> list[OurPayout]:
        """Our payouts of `provider` paid in the window, those any key (idempotency key or payout id) or provider
        reference names, and those whose outcome is unknown; `with_ledger`: each with what the ledger booked."""
        ...

    async def ledger_adjustments(self, provider: str, since: datetime, until: datetime) -> dict[str, int]:
        """Per asset, what the ledger booked in the window for this provider's resolved exceptions."""
        ...

    async def remembered(self, provider: str, payout_ids: Sequence[str]) -> list[StatementLine]:
        """The lines earlier runs saw naming these payouts."""
        ...

    async def remember(self, provider: str, named: Sequence[tuple[str, StatementLine]]) -> None:
        """Keep the lines that name payouts of ours (each once), for later runs."""
        ...

    async def chains(
        self, provider: str, payout_ids: Sequence[str], subjects: Sequence[str]
    ) -> dict[tuple[ExceptionKind, str], Chain]:
        """What the exceptions already found about these payouts and stray lines (`line:<id>`) claim, per (kind,
        subject), whatever their state; taken under the provider's lock, held to the end of the transaction, so no
        other run extends these chains meanwhile."""
        ...

    async def open_exceptions(self, run_id: str, provider: str, findings: Sequence[Finding], at: datetime) -> int:
        """One exception per finding not already known by its natural key (provider, kind, `Finding.key`); how many
        were new."""
        ...

    async def answer(
        self, run_id: str, provider: str, answered: Sequence[tuple[ExceptionKind, str]], at: datetime
    ) -> int:
        """Close the unresolved exceptions of these differences that the statement answers (acknowledged by the
        run, on record); how many."""
        ...

    async def finish_run(self, run_id: str, outcome: Outcome, opened: int, at: datetime, *, owner: str) -> bool:
        """The run's outcome, if `owner` still holds it (False: another replica took it over; write nothing)."""
        ...

    async def fail_run(self, run_id: str, error: str, at: datetime, *, owner: str) -> None: ...

    async def last_completed(self) -> list[tuple[str, datetime]]:
        """(provider, when its last run completed)."""
        ...


class ExceptionStore(Protocol):
    """The exception queue's rows and their history."""

    async def exception(self, exception_id: int, *, for_update: bool = False) -> ReconException | None: ...

    async def take(self, exception_id: int, owner: str, at: datetime) -> None: ...

    async def propose(self, exception_id: int, proposal: Mapping[str, Any], at: datetime) -> None: ...

    async def resolve(self, exception_id: int, resolution: Resolution, at: datetime) -> None: ...

    async def add_history(self, exception_id: int, actor: str, what: str, reason: str | None, at: datetime) -> None: ...

    async def open_summary(self) -> list[tuple[str, str, str, int, datetime]]:
        """(provider, kind, severity, unresolved count, oldest opened_at) of unresolved exceptions."""
        ...


class Outbox(Protocol):
    """Events staged in the transaction, published by the relay once it commits."""

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None: ...


class ReconQueries(Protocol):
    """The admin API's reads: runs and exceptions as rows (each read in its own short transaction)."""

    async def runs(self, *, provider: str | None, limit: int) -> list[dict[str, Any]]: ...

    async def run(self, run_id: str) -> dict[str, Any] | None: ...

    async def exceptions(
        self, filters: Mapping[str, str | None], *, limit: int, offset: int
    ) -> list[dict[str, Any]]: ...

    async def exception(self, exception_id: int) -> dict[str, Any] | None:
        """The exception with its `history`."""
        ...

    def exceptions_opened(
        self, since: datetime, until: datetime, provider: str | None, *, chunk: int = 5000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every exception opened in [since, until), oldest first, `chunk` rows at a time."""
        ...


class ReconMetricsPort(Protocol):
    def run_finished(self, provider: str, outcome: str, seconds: float, at: datetime) -> None: ...

    def unresolved(self, rows: Sequence[tuple[str, str, str, int, datetime]], now: datetime) -> None: ...

    def last_completed(self, rows: Sequence[tuple[str, datetime]]) -> None: ...


__all__ = [
    "Actor",
    "ExceptionStore",
    "Outbox",
    "ReconException",
    "ReconMetricsPort",
    "ReconQueries",
    "Resolution",
    "Run",
    "RunStore",
]
