"""Reconciliation runs: a provider's window matched to our payouts (docs/adr/0011-reconciliation.md).

A run costs, per provider and window: one transaction to claim it, one per statement page (its lines staged with
the next cursor, so a run that stops resumes where it stopped), one to find the hours of the remembered history of
the payouts its statement names outside its range (read again from the provider, as it stands now: `_history`;
none for most windows), and one to match: our payouts for the window are
read with one statement, and what earlier exceptions already claim about them with another (under the provider's
lock: two runs never claim the same money), the findings written as exceptions (each the next link of its
difference's chain: a second run finds none again, money that moved since is a new one for exactly that), the run's
totals recorded and its staged lines dropped. No transaction is open across a provider call.

The schedule is a job (`ScheduledRuns`) on the runtime's scheduler: its pace, leadership and stopping are the
scheduler's, a tick is one pass over the due windows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from prizeflow_contracts.envelope import event_id_for
from prizeflow_contracts.errors import PayoutProviderError
from prizeflow_contracts.providers import StatementLine
from prizeflow_reconciliation.application.books import ReconciliationUnitOfWork
from prizeflow_reconciliation.application.ports import ReconMetricsPort, Run
from prizeflow_reconciliation.domain import Outcome, reconcile, stray_subjects
from prizeflow_reconciliation.statements import RailStatement, ReconError, StatementReader, Statements
from prizeflow_runtime.errors import ErrorKind

log = logging.getLogger(__name__)

MAX_WINDOW = timedelta(days=1)
HISTORY_HOURS = 48  # at most the latest this many hours of the named payouts' history are read again by a run
CATCH_UP = 24  # the schedule runs the last this many windows: one whose run failed is run again


@dataclass(frozen=True, slots=True)
class _Range:
    since: datetime
    until: datetime

    def holds(self, at: datetime) -> bool:
        return self.since <= at < self.until


def run_id_of(provider: str, since: datetime, until: datetime) -> str:
    return event_id_for("recon-run", provider, since.isoformat(), until.isoformat()).hex


@dataclass
class ReconGauges:
    """The exception queue's gauges, set from the database (every replica shows the same queue)."""

    uow: ReconciliationUnitOfWork
    metrics: ReconMetricsPort | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def refresh(self) -> None:
        if self.metrics is None:
            return
        async with self.uow() as books:
            rows = await books.exceptions.open_summary()
            last = await books.runs.last_completed()
        self.metrics.unresolved(rows, self.clock())
        self.metrics.last_completed(last)


@dataclass
class ReconcileWindows:
    """`run` one provider's window on request, `run_due` the windows the schedule owes."""

    uow: ReconciliationUnitOfWork
    statements: Statements
    gauges: ReconGauges
    slack: timedelta = timedelta(minutes=15)
    window: timedelta = timedelta(hours=1)
    lease_s: float = 300.0
    owner: str = "payouts"
    ledger: bool = True  # compare each payout with what the ledger booked (off only where rewards does not run)
    metrics: ReconMetricsPort | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def rail_of(self, provider: str) -> tuple[RailStatement, StatementReader]:
        try:
            rail = self.statements.get(provider)
        except LookupError:
            raise ReconError(ErrorKind.NOT_FOUND, "provider_not_found", f"no provider {provider}") from None
        if rail.reader is None:
            raise ReconError(
                ErrorKind.CONFLICT, "no_statement", f"provider {provider} cannot list what it did (no statement)"
            )
        return rail, rail.reader

    def providers(self) -> list[str]:
        return self.statements.listed()

    def slack_of(self, rail: RailStatement) -> timedelta:
        """How long after a window ends its statement is complete: the schedule's slack, or longer for a rail that
        lists a movement late (`RailStatement.lists_within`)."""
        return max(self.slack, rail.lists_within)

    async def run(self, provider: str, since: datetime, until: datetime, *, requested_by: str) -> str:
        """Reconcile one provider's window to completion; the run's id. The same window again is the same run:
        a completed one is not run again, a stopped one resumes from its last staged page. The gauges are read
        again afterwards, whatever came of it."""
        try:
            return await self._run(provider, since, until, requested_by=requested_by)
        finally:
            await self.gauges.refresh()

    async def _run(self, provider: str, since: datetime, until: datetime, *, requested_by: str) -> str:
        if since >= until:
            raise ReconError(ErrorKind.BAD_REQUEST, "invalid_window", "since must be before until")
        if until - since > MAX_WINDOW:
            raise ReconError(
                ErrorKind.BAD_REQUEST,
                "window_too_long",
                f"a run covers at most {MAX_WINDOW}; run a longer period in parts",
            )
        rail, reader = self.rail_of(provider)
        slack = self.slack_of(rail)
        if until + slack > self.clock():
            # A window run before its late lines can be listed would be completed for good without them.
            raise ReconError(
                ErrorKind.BAD_REQUEST,
                "window_not_closed",
                f"a window of {provider} is reconciled once it ended {int(slack.total_seconds())} s ago "
                "(its late lines listed)",
            )
        run_id = run_id_of(provider, since, until)
        started = self.clock()
        async with self.uow() as books:
            run = await books.runs.claim_run(
                run_id, provider, since, until, owner=self.owner, lease_s=self.lease_s, at=started, by=requested_by
            )
        if run is None:
            raise ReconError(ErrorKind.CONFLICT, "run_in_progress", f"the run of this window is running ({run_id})")
        if run.state == "completed":
            return run_id
        try:
            outcome, opened = await self._fetch_and_match(rail, reader, run)
        except PayoutProviderError as err:
            await self._failed(run_id, provider, f"{err.error.code}: {err.error.message}"[:500], started)
            raise ReconError(ErrorKind.UNAVAILABLE, "provider_unavailable", f"{provider}: {err.error.code}") from err
        except ReconError:
            raise  # the run is another replica's now: nothing of ours to record
        except Exception:
            await self._failed(run_id, provider, "internal error (see the service's log)", started)
            raise
        log.info(
            "reconciliation run completed",
            extra={"provider": provider, "run_id": run_id, "lines": outcome.lines, "exceptions": opened},
        )
        self._observe(provider, "completed", started)
        return run_id

    async def _stage(self, reader: StatementReader, run: Run, slack: timedelta) -> None:
        """The statement, page by page, from where a stopped run left it."""
        cursor, page, fetched = run.cursor, run.pages, run.fetched
        while not fetched:
            got = await reader.statement(run.since - slack, run.until + slack, cursor)
            page += 1
            async with self.uow() as books:
                held = await books.runs.stage_page(
                    run.run_id,
                    page,
                    got.lines,
                    got.next_cursor,
                    owner=self.owner,
                    lease_s=self.lease_s,
                    at=self.clock(),
                )
            if not held:
                raise ReconError(ErrorKind.CONFLICT, "run_in_progress", f"another replica took run {run.run_id} over")
            cursor, fetched = got.next_cursor, got.next_cursor is None

    async def _history(
        self, reader: StatementReader, run: Run, slack: timedelta
    ) -> tuple[list[_Range], list[StatementLine]]:
        """The provider's lines as they stand now over the hours of the remembered history of the payouts this run's
        statement names (one transaction to find those hours, then the provider read outside it): a line changed
        since an earlier run remembered it (a fee raised on the same balance transaction) is judged as it is now, and
        one no longer listed is withdrawn. Most windows name no payout with history elsewhere: no read at all."""
        read_from, read_to = run.since - slack, run.until + slack
        async with self.uow() as books:
            store = books.runs
            staged = await store.staged_lines(run.run_id)
            keys = sorted({line.reference for line in staged if line.reference})
            refs = sorted({line.provider_ref for line in staged if line.provider_ref})
            ours = await store.our_payouts(run.provider, run.since, run.until, keys, refs, with_ledger=False)
            remembered = await store.remembered(run.provider, [p.payout_id for p in ours])
        hours = sorted(
            {
                line.occurred_at.replace(minute=0, second=0, microsecond=0)
                for line in remembered
                if not read_from <= line.occurred_at < read_to
            }
        )[-HISTORY_HOURS:]
        ranges = [_Range(h, h + timedelta(hours=1)) for h in hours]
        lines: list[StatementLine] = []
        for r in ranges:
            cursor: str | None = None
            while True:
                got = await reader.statement(r.since, r.until, cursor)
                lines += got.lines
                if (cursor := got.next_cursor) is None:
                    break
        return ranges, lines

    async def _fetch_and_match(self, rail: RailStatement, reader: StatementReader, run: Run) -> tuple[Outcome, int]:
        """Stage the statement and read its payouts' history again, then match it in one transaction."""
        slack = self.slack_of(rail)
        await self._stage(reader, run, slack)
        reread, history = await self._history(reader, run, slack)
        async with self.uow() as books:
            store = books.runs
            lines = await store.staged_lines(run.run_id)
            keys = sorted({line.reference for line in lines if line.reference})
            refs = sorted({line.provider_ref for line in lines if line.provider_ref})
            ours = await store.our_payouts(run.provider, run.since, run.until, keys, refs, with_ledger=self.ledger)
            if rail.settler is None:
                # Only a rail a person settles has unknown outcomes for the queue; the others' syncs settle theirs.
                ours = [replace(p, unknown_outcome=False) for p in ours]
            # What earlier runs saw of these payouts outside what this run read: a payout's whole history at its
            # provider, whichever window. Inside the range read, the provider's statement as it stands now is the truth
            # (a line it listed once and lists no more is gone).
            seen = {line.line_id for line in lines}
            read = [_Range(run.since - slack, run.until + slack), *reread]
            remembered = [
                line
                for line in await store.remembered(run.provider, [p.payout_id for p in ours])
                if line.line_id not in seen
            ]
            # The history read again (`_history`): a remembered line's current version, the ones it no longer lists
            # withdrawn (found, not matched here; kept remembered: the evidence is not ours to delete, and a line the
            # provider re-dated elsewhere is still money that moved); the rest of what was remembered as it was seen.
            current = {line.line_id: line for line in history if line.line_id not in seen}
            withdrawn = [
                line
                for line in remembered
                if line.line_id not in current and any(r.holds(line.occurred_at) for r in read)
            ]
            lines += [current.get(line.line_id, line) for line in remembered if line not in withdrawn]
            known = seen | {line.line_id for line in remembered}
            lines += [line for line in history if line.line_id not in known]  # listed since, dated back there
            adjustments = await store.ledger_adjustments(run.provider, run.since, run.until) if self.ledger else None
            chains = await store.chains(
                run.provider,
                [p.payout_id for p in ours],
                [
                    *stray_subjects(lines, ours, since=run.since, until=run.until),
                    *(f"line:{w.line_id}" for w in withdrawn),
                ],
            )
            outcome = reconcile(
                lines,
                ours,
                since=run.since,
                until=run.until,
                adjustments=adjustments,
                fees_inside=rail.fees_inside,
                chains=chains,
                withdrawn=withdrawn,
            )
            now = self.clock()
            await store.remember(run.provider, outcome.named)
            if not await store.finish_run(run.run_id, outcome, 0, now, owner=self.owner):
                raise ReconError(ErrorKind.CONFLICT, "run_in_progress", f"another replica took run {run.run_id} over")
            opened = await store.open_exceptions(run.run_id, run.provider, outcome.findings, now)
            await store.answer(run.run_id, run.provider, outcome.answered, now)
            recorded = await books.payouts.record_fees(run.provider, outcome.fees_learned, run_id=run.run_id, at=now)
            if recorded != len(outcome.fees_learned):
                # Another run recorded a fee of one of these payouts after this one read them: what this run matched
                # against its own learned fee may hide the rest. Rolled back whole; the window runs again.
                raise ReconError(
                    ErrorKind.CONFLICT,
                    "fees_recorded_meanwhile",
                    f"run {run.run_id}: {len(outcome.fees_learned) - recorded} payouts' fees were recorded by another "
                    "run meanwhile; run the window again",
                )
        return outcome, opened

    async def _failed(self, run_id: str, provider: str, error: str, started: datetime) -> None:
        async with self.uow() as books:
            await books.runs.fail_run(run_id, error, self.clock(), owner=self.owner)
        self._observe(provider, "failed", started)

    def _observe(self, provider: str, outcome: str, started: datetime) -> None:
        if self.metrics is None:
            return
        now = self.clock()
        self.metrics.run_finished(provider, outcome, (now - started).total_seconds(), now)

    def due_window(self, slack: timedelta | None = None) -> tuple[datetime, datetime]:
        """The last window that has ended at least `slack` ago (the schedule's; its late lines are listed by then)."""
        step = self.window.total_seconds()
        edge = (self.clock() - (self.slack if slack is None else slack)).timestamp()
        until = datetime.fromtimestamp(edge - edge % step, UTC)
        return until - self.window, until

    async def run_due(self, windows: int = CATCH_UP) -> None:
        """Every provider with a statement, over the last `windows` due windows, oldest first (what the schedule
        runs): a completed window costs one query, one whose run failed or never ran is run again."""
        last = {p: self.due_window(self.slack_of(self.statements.get(p)))[0] for p in self.providers()}
        for back in range(windows - 1, -1, -1):
            for provider, last_since in last.items():
                since = last_since - back * self.window
                try:
                    # The gauges are read once per pass, by the schedule, not after each of its runs.
                    await self._run(provider, since, since + self.window, requested_by="schedule")
                except ReconError as err:
                    if err.code != "run_in_progress":
                        log.warning(
                            "scheduled reconciliation did not complete", extra={"provider": provider, "code": err.code}
                        )


@dataclass
class ScheduledRuns:
    """The schedule, a job: its first tick runs the last due window only (a process that starts does not hold its
    consumers up with a day of catching up), every later one the last `CATCH_UP` windows; the gauges each time."""

    windows: ReconcileWindows
    gauges: ReconGauges
    _first: bool = field(default=True, init=False)

    async def tick(self) -> bool:
        count, self._first = (1 if self._first else CATCH_UP), False
        await self.windows.run_due(count)
        await self.gauges.refresh()
        return True


__all__ = ["CATCH_UP", "MAX_WINDOW", "ReconGauges", "ReconcileWindows", "ScheduledRuns", "run_id_of"]
