"""Reconciliation use cases: run a provider's window, and the exception queue people resolve
(docs/adr/0011-reconciliation.md).

A run costs, per provider and window: one transaction to claim it, one per statement page (its lines staged with
the next cursor, so a run that stops resumes where it stopped), and one to match: our payouts for the window are
read with one statement, and what earlier exceptions already claim about them with another (under the provider's
lock: two runs never claim the same money), the findings written as exceptions (each the next link of its
difference's chain: a second run finds none again, money that moved since is a new one for exactly that), the run's
totals recorded and its staged lines dropped. No transaction is open across a provider call.

Resolving: `acknowledge` is one person's, on record with a reason. A money action (write-off, fee, return, an
unknown outcome settled) is proposed by one person and executed when a second, different one holding the approver
or admin role confirms the same action; it then moves money only through the ledger's normal paths: a
`ReconciliationAdjusted` event rewards posts once, or the payout's own paid → returned transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from prizeflow_contracts.envelope import Envelope, event_id_for, new_event
from prizeflow_contracts.errors import PayoutProviderError
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.payouts import AdjustmentKind, LedgerPosted, ReconciliationAdjusted
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_contracts.providers import (
    ListsStatement,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    StatementLine,
)
from prizeflow_payouts.application.admin import Actor
from prizeflow_payouts.application.ports import PayoutRepository
from prizeflow_payouts.application.registry import ProviderRegistry
from prizeflow_payouts.application.transitions import ChangeBuilder
from prizeflow_payouts.domain.payout import Change
from prizeflow_payouts.domain.reconciliation import (
    ACTIONS,
    MONEY_ACTIONS,
    SEVERITY,
    Action,
    Chain,
    ExceptionKind,
    ExceptionState,
    Finding,
    OurPayout,
    Outcome,
    Severity,
    may_move,
    reconcile,
    stray_subjects,
)
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.errors import ErrorKind, UseCaseError

log = logging.getLogger(__name__)

SECOND_PERSON_ROLES = frozenset({"approver", "admin"})
MAX_WINDOW = timedelta(days=1)
CATCH_UP = 24  # the schedule runs the last this many windows: one whose run failed is run again


class ReconError(UseCaseError):
    """A reconciliation request refused: rendered as problem details by the HTTP app (kind → status)."""


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


class ReconStore(Protocol):
    """Reconciliation's tables, in one transaction (with the payouts' own, `payouts`)."""

    payouts: PayoutRepository

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

    async def exception(self, exception_id: int, *, for_update: bool = False) -> ReconException | None: ...

    async def take(self, exception_id: int, owner: str, at: datetime) -> None: ...

    async def propose(self, exception_id: int, proposal: Mapping[str, Any], at: datetime) -> None: ...

    async def resolve(self, exception_id: int, resolution: Resolution, at: datetime) -> None: ...

    async def add_history(self, exception_id: int, actor: str, what: str, reason: str | None, at: datetime) -> None: ...

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None: ...

    async def open_summary(self) -> list[tuple[str, str, str, int, datetime]]:
        """(provider, kind, severity, unresolved count, oldest opened_at) of unresolved exceptions."""
        ...

    async def last_completed(self) -> list[tuple[str, datetime]]: ...


class LedgerPostings(Protocol):
    """What the ledger booked on the rails' accounts (`LedgerPosted`), kept once per ledger transfer."""

    async def record(self, postings: Sequence[LedgerPosted]) -> None: ...


class ReconTransactions(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[ReconStore]: ...


@runtime_checkable
class SettlesUnknownOutcome(Protocol):
    """A rail whose unknown outcomes a person settles (the exchange): record what the provider's history shows."""

    async def settle_unknown_outcome(self, payout_id: str, found_ref: str | None, actor: str) -> None: ...


class ReconMetricsPort(Protocol):
    def run_finished(self, provider: str, outcome: str, seconds: float, at: datetime) -> None: ...

    def unresolved(self, rows: Sequence[tuple[str, str, str, int, datetime]], now: datetime) -> None: ...

    def last_completed(self, rows: Sequence[tuple[str, datetime]]) -> None: ...


def needs_two_people(kind: ExceptionKind, action: Action) -> bool:
    """A money action, or closing a difference where money left that Prizeflow did not send, takes two people."""
    return action in MONEY_ACTIONS or SEVERITY[kind] is Severity.CRITICAL


def run_id_of(provider: str, since: datetime, until: datetime) -> str:
    return event_id_for("recon-run", provider, since.isoformat(), until.isoformat()).hex


@dataclass
class Reconciliation:
    """Runs (`run`, `run_due`) and the exception queue's decisions (`take`, `resolve`)."""

    transactions: ReconTransactions
    registry: ProviderRegistry
    builder: ChangeBuilder
    service: str
    source: str
    slack: timedelta = timedelta(minutes=15)
    window: timedelta = timedelta(hours=1)
    lease_s: float = 300.0
    owner: str = "payouts"
    ledger: bool = True  # compare each payout with what the ledger booked (off only where rewards does not run)
    metrics: ReconMetricsPort | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    # -- runs -------------------------------------------------------------------------------------------------
    def statement_of(self, provider: str) -> ListsStatement:
        try:
            entry = self.registry.get(provider)
        except LookupError:
            raise ReconError(ErrorKind.NOT_FOUND, "provider_not_found", f"no provider {provider}") from None
        if not isinstance(entry.provider, ListsStatement):
            raise ReconError(
                ErrorKind.CONFLICT, "no_statement", f"provider {provider} cannot list what it did (no statement)"
            )
        return entry.provider

    def providers(self) -> list[str]:
        return [e.name for e in self.registry if isinstance(e.provider, ListsStatement)]

    async def run(self, provider: str, since: datetime, until: datetime, *, requested_by: str) -> str:
        """Reconcile one provider's window to completion; the run's id. The same window again is the same run:
        a completed one is not run again, a stopped one resumes from its last staged page. The gauges are read
        again afterwards, whatever came of it."""
        try:
            return await self._run(provider, since, until, requested_by=requested_by)
        finally:
            await self.refresh_metrics()

    async def _run(self, provider: str, since: datetime, until: datetime, *, requested_by: str) -> str:
        if since >= until:
            raise ReconError(ErrorKind.BAD_REQUEST, "invalid_window", "since must be before until")
        if until - since > MAX_WINDOW:
            raise ReconError(
                ErrorKind.BAD_REQUEST,
                "window_too_long",
                f"a run covers at most {MAX_WINDOW}; run a longer period in parts",
            )
        if until + self.slack > self.clock():
            # A window run before its late lines can be listed would be completed for good without them.
            raise ReconError(
                ErrorKind.BAD_REQUEST,
                "window_not_closed",
                f"a window is reconciled once it ended {int(self.slack.total_seconds())} s ago (its late lines listed)",
            )
        statement = self.statement_of(provider)
        run_id = run_id_of(provider, since, until)
        started = self.clock()
        async with self.transactions() as books:
            run = await books.claim_run(
                run_id, provider, since, until, owner=self.owner, lease_s=self.lease_s, at=started, by=requested_by
            )
        if run is None:
            raise ReconError(ErrorKind.CONFLICT, "run_in_progress", f"the run of this window is running ({run_id})")
        if run.state == "completed":
            return run_id
        try:
            outcome, opened = await self._fetch_and_match(statement, run)
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

    async def _fetch_and_match(self, statement: ListsStatement, run: Run) -> tuple[Outcome, int]:
        """Stage the statement page by page (from where a stopped run left it), then match it in one transaction."""
        cursor, page, fetched = run.cursor, run.pages, run.fetched
        while not fetched:
            got = await statement.statement(run.since - self.slack, run.until + self.slack, cursor)
            page += 1
            async with self.transactions() as books:
                held = await books.stage_page(
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
        async with self.transactions() as books:
            lines = await books.staged_lines(run.run_id)
            keys = sorted({line.reference for line in lines if line.reference})
            refs = sorted({line.provider_ref for line in lines if line.provider_ref})
            ours = await books.our_payouts(run.provider, run.since, run.until, keys, refs, with_ledger=self.ledger)
            if not isinstance(statement, SettlesUnknownOutcome):
                # Only a rail a person settles has unknown outcomes for the queue; the others' syncs settle theirs.
                ours = [replace(p, unknown_outcome=False) for p in ours]
            # What earlier runs saw of these payouts outside what this run read: a payout's whole history at its
            # provider, whichever window. Inside the range read, the provider's statement as it stands now is the truth
            # (a line it listed once and lists no more is gone).
            seen = {line.line_id for line in lines}
            read_from, read_to = run.since - self.slack, run.until + self.slack
            lines += [
                line
                for line in await books.remembered(run.provider, [p.payout_id for p in ours])
                if line.line_id not in seen and not read_from <= line.occurred_at < read_to
            ]
            adjustments = await books.ledger_adjustments(run.provider, run.since, run.until) if self.ledger else None
            chains = await books.chains(
                run.provider,
                [p.payout_id for p in ours],
                stray_subjects(lines, ours, since=run.since, until=run.until),
            )
            outcome = reconcile(
                lines,
                ours,
                since=run.since,
                until=run.until,
                adjustments=adjustments,
                fees_inside=bool(getattr(statement, "fees_inside_payout", False)),
                chains=chains,
            )
            now = self.clock()
            await books.remember(run.provider, outcome.named)
            if not await books.finish_run(run.run_id, outcome, 0, now, owner=self.owner):
                raise ReconError(ErrorKind.CONFLICT, "run_in_progress", f"another replica took run {run.run_id} over")
            opened = await books.open_exceptions(run.run_id, run.provider, outcome.findings, now)
            await books.answer(run.run_id, run.provider, outcome.answered, now)
        return outcome, opened

    async def _failed(self, run_id: str, provider: str, error: str, started: datetime) -> None:
        async with self.transactions() as books:
            await books.fail_run(run_id, error, self.clock(), owner=self.owner)
        self._observe(provider, "failed", started)

    def _observe(self, provider: str, outcome: str, started: datetime) -> None:
        if self.metrics is None:
            return
        now = self.clock()
        self.metrics.run_finished(provider, outcome, (now - started).total_seconds(), now)

    async def refresh_metrics(self) -> None:
        if self.metrics is None:
            return
        async with self.transactions() as books:
            rows = await books.open_summary()
            last = await books.last_completed()
        self.metrics.unresolved(rows, self.clock())
        self.metrics.last_completed(last)

    def due_window(self) -> tuple[datetime, datetime]:
        """The last window that has ended at least `slack` ago (its late lines are listed by then)."""
        step = self.window.total_seconds()
        edge = (self.clock() - self.slack).timestamp()
        until = datetime.fromtimestamp(edge - edge % step, UTC)
        return until - self.window, until

    async def run_due(self, windows: int = CATCH_UP) -> None:
        """Every provider with a statement, over the last `windows` due windows, oldest first (what the schedule
        runs): a completed window costs one query, one whose run failed or never ran is run again."""
        last_since, _ = self.due_window()
        for back in range(windows - 1, -1, -1):
            since = last_since - back * self.window
            for provider in self.providers():
                try:
                    # The gauges are read once per pass, by the schedule, not after each of its runs.
                    await self._run(provider, since, since + self.window, requested_by="schedule")
                except ReconError as err:
                    if err.code != "run_in_progress":
                        log.warning(
                            "scheduled reconciliation did not complete", extra={"provider": provider, "code": err.code}
                        )

    async def schedule(self, stop: asyncio.Event, *, every_s: float) -> None:
        """The scheduled runs: at once the last due window (a process that starts does not hold its consumers up
        with a day of catching up), then every `every_s` the last `CATCH_UP` windows, and the gauges each time."""
        windows = 1
        while not stop.is_set():
            try:
                await self.run_due(windows)
                await self.refresh_metrics()
            except Exception:
                log.exception("reconciliation schedule failed; trying again at the next tick")
            windows = CATCH_UP
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every_s)

    # -- the exception queue ----------------------------------------------------------------------------------
    async def _locked(self, books: ReconStore, exception_id: int) -> ReconException:
        exc = await books.exception(exception_id, for_update=True)
        if exc is None:
            raise ReconError(ErrorKind.NOT_FOUND, "exception_not_found", f"no exception {exception_id}")
        if exc.state is ExceptionState.RESOLVED:
            raise ReconError(ErrorKind.CONFLICT, "already_resolved", f"exception {exception_id} is resolved")
        return exc

    def _audit(
        self,
        actor: Actor,
        action: str,
        exc: ReconException,
        *,
        reason: str | None,
        after: dict[str, str],
        now: datetime,
    ) -> Envelope[AdminActionRecorded]:
        return admin_action(
            actor_user_id=actor.user_id,
            actor_roles=actor.roles,
            action=action,
            target_type="recon_exception",
            target_id=str(exc.id),
            reason=reason,
            before={"state": exc.state.value},
            after=after,
            service=self.service,
            source=self.source,
            correlation_id=exc.correlation_id,
            occurred_at=now,
        )

    async def take(self, exception_id: int, actor: Actor, reason: str | None) -> str:
        """The caller owns the exception and investigates it."""
        now = self.clock()
        async with self.transactions() as books:
            exc = await self._locked(books, exception_id)
            if not may_move(exc.state, ExceptionState.INVESTIGATING):
                raise ReconError(ErrorKind.CONFLICT, "illegal_transition", f"exception {exc.id} is {exc.state.value}")
            await books.take(exc.id, actor.user_id, now)
            await books.add_history(exc.id, actor.user_id, "take", reason, now)
            await books.add_events(
                [self._audit(actor, "recon.take", exc, reason=reason, after={"state": "investigating"}, now=now)]
            )
        return ExceptionState.INVESTIGATING.value

    async def resolve(
        self, exception_id: int, actor: Actor, action: Action, reason: str, params: Mapping[str, str] | None = None
    ) -> str:
        """`resolved`, or `proposed` for a money action still waiting for its second person."""
        now = self.clock()
        given = dict(params or {})
        async with self.transactions() as books:
            exc = await self._locked(books, exception_id)
            self._check(exc, actor, action, given)
            if not needs_two_people(exc.kind, action):
                await self._finish(books, exc, actor, Resolution(action, reason, (actor.user_id,)), now)
                return ExceptionState.RESOLVED.value
            if exc.proposal is None:
                await self._propose(books, exc, actor, action, reason, given, now)
                return "proposed"
            resolution, given = self._confirmed(exc, actor, action, reason, given)
            if action in (Action.WRITE_OFF, Action.BOOK_FEE):
                resolution = await self._adjust(books, exc, resolution, now)
            elif action is Action.MARK_RETURNED:
                await self._returned(books.payouts, exc, actor, now)
            if action not in (Action.SETTLE_FOUND, Action.SETTLE_NOT_MADE):
                await self._finish(books, exc, actor, resolution, now)
                return ExceptionState.RESOLVED.value
            settler = self._settler(exc)
        # The rail's own book is settled in its own transaction (compare-and-set from `submitting`, so a repeat
        # changes nothing), then the exception: should the second fail, confirming again finishes it.
        found = given.get("withdrawal_id") if action is Action.SETTLE_FOUND else None
        await settler.settle_unknown_outcome(exc.payout_id or "", found, actor.user_id)
        async with self.transactions() as books:
            exc = await self._locked(books, exception_id)
            await self._finish(books, exc, actor, resolution, self.clock())
        return ExceptionState.RESOLVED.value

    @staticmethod
    def _check(exc: ReconException, actor: Actor, action: Action, params: Mapping[str, str]) -> None:
        if action not in ACTIONS[exc.kind]:
            raise ReconError(
                ErrorKind.CONFLICT,
                "action_not_allowed",
                f"{action.value} does not resolve {exc.kind.value}; allowed: "
                + ", ".join(a.value for a in ACTIONS[exc.kind]),
            )
        if exc.player_id is not None and actor.user_id == exc.player_id:
            raise ReconError(ErrorKind.FORBIDDEN, "self_review", "nobody resolves a difference about their own payout")
        if action is Action.SETTLE_FOUND and not params.get("withdrawal_id") and not exc.proposal:
            raise ReconError(ErrorKind.BAD_REQUEST, "withdrawal_id_required", "settle_found needs the provider's id")

    async def _propose(  # noqa: PLR0917 - the decision's whole context
        self,
        books: ReconStore,
        exc: ReconException,
        actor: Actor,
        action: Action,
        reason: str,
        params: dict[str, str],
        now: datetime,
    ) -> None:
        proposal = {
            "action": action.value,
            "proposed_by": actor.user_id,
            "proposed_at": now.isoformat(),
            "reason": reason,
            "params": params,
            # What the second person confirms: the money at stake as the first saw it.
            "asset": exc.asset,
            "amount": exc.amount,
        }
        await books.propose(exc.id, proposal, now)
        await books.add_history(exc.id, actor.user_id, f"propose {action.value}", reason, now)
        await books.add_events(
            [self._audit(actor, "recon.propose", exc, reason=reason, after={"proposal": action.value}, now=now)]
        )

    @staticmethod
    def _confirmed(
        exc: ReconException, actor: Actor, action: Action, reason: str, params: dict[str, str]
    ) -> tuple[Resolution, dict[str, str]]:
        """The second person's confirmation of exactly the standing proposal (its action, its parameters, the money
        it was about), or its refusal."""
        proposal = exc.proposal
        assert proposal is not None
        proposed = dict(proposal.get("params") or {})
        if params and params != proposed:
            raise ReconError(
                ErrorKind.CONFLICT,
                "proposal_differs",
                "a second person confirms what was proposed, not other parameters; acknowledge it or propose anew",
            )
        if (proposal.get("asset"), proposal.get("amount")) != (exc.asset, exc.amount):
            raise ReconError(ErrorKind.CONFLICT, "exception_changed", "the money at stake changed since the proposal")
        if proposal["action"] != action.value:
            raise ReconError(
                ErrorKind.CONFLICT,
                "proposal_differs",
                f"{proposal['proposed_by']} proposed {proposal['action']}; confirm that, or acknowledge it",
            )
        if proposal["proposed_by"] == actor.user_id:
            raise ReconError(ErrorKind.FORBIDDEN, "self_approval", "a second person confirms a money action")
        if not SECOND_PERSON_ROLES & actor.roles:
            raise ReconError(
                ErrorKind.FORBIDDEN, "approver_role_required", "the second person holds the approver or admin role"
            )
        people = (str(proposal["proposed_by"]), actor.user_id)
        return Resolution(action, reason, people), proposed

    async def _finish(
        self, books: ReconStore, exc: ReconException, actor: Actor, resolution: Resolution, now: datetime
    ) -> None:
        await books.resolve(exc.id, resolution, now)
        await books.add_history(exc.id, actor.user_id, resolution.action.value, resolution.reason, now)
        after = {"state": "resolved", "resolution": resolution.action.value}
        await books.add_events(
            [
                self._audit(
                    actor, f"recon.{resolution.action.value}", exc, reason=resolution.reason, after=after, now=now
                )
            ]
        )
        if self.metrics is not None:
            rows = await books.open_summary()
            self.metrics.unresolved(rows, now)

    def _settler(self, exc: ReconException) -> SettlesUnknownOutcome:
        provider = self.registry.get(exc.provider).provider
        if not isinstance(provider, SettlesUnknownOutcome) or exc.payout_id is None:
            raise ReconError(ErrorKind.CONFLICT, "not_settleable", f"{exc.provider} has no unknown outcome to settle")
        return provider

    async def _adjust(
        self, books: ReconStore, exc: ReconException, resolution: Resolution, now: datetime
    ) -> Resolution:
        if exc.asset is None or exc.asset not in ASSETS or not exc.amount or not ASSETS[exc.asset].redeemable:
            raise ReconError(
                ErrorKind.CONFLICT,
                "not_bookable",
                f"exception {exc.id} has no amount of a ledger asset to book ({exc.amount} {exc.asset})",
            )
        if exc.kind is ExceptionKind.AMOUNT_MISMATCH and exc.underpaid:
            raise ReconError(
                ErrorKind.CONFLICT,
                "not_a_loss",
                f"the provider paid less than payout {exc.payout_id}: nothing left the platform to write off; "
                "acknowledge it with what was done for the player",
            )
        adjustment_id = f"recon-{exc.id}"
        entry = self.registry.get(exc.provider)
        event = ReconciliationAdjusted(
            adjustment_id=adjustment_id,
            exception_id=exc.id,
            kind=AdjustmentKind.FEE if resolution.action is Action.BOOK_FEE else AdjustmentKind.WRITE_OFF,
            provider=entry.type,
            provider_name=entry.name,
            amount=Money(asset=exc.asset, amount=exc.amount),
            payout_id=exc.payout_id,
            approved_by=list(resolution.resolved_by),
            reason=resolution.reason,
            adjusted_at=now,
        )
        await books.add_events(
            [
                new_event(
                    event,
                    source=self.source,
                    correlation_id=exc.correlation_id,
                    event_id=event_id_for("recon-adjustment", adjustment_id),
                )
            ]
        )
        return Resolution(resolution.action, resolution.reason, resolution.resolved_by, adjustment_id)

    async def _returned(self, repo: PayoutRepository, exc: ReconException, actor: Actor, now: datetime) -> None:
        """The payout never reached the player (missing, reversed, paid elsewhere): paid → returned, the wallet
        credited back by rewards on `PayoutReturned`, as for a provider's own return."""
        rec = await repo.get(exc.payout_id or "", for_update=True) if exc.payout_id else None
        if rec is None:
            raise ReconError(ErrorKind.CONFLICT, "no_payout", f"exception {exc.id} names no payout")
        if rec.state is not PayoutState.PAID:
            raise ReconError(ErrorKind.CONFLICT, "not_paid", f"payout {rec.id} is {rec.state.value}")
        if exc.kind is ExceptionKind.UNRECORDED_REVERSAL and (exc.amount or 0) < rec.amount:
            raise ReconError(
                ErrorKind.CONFLICT,
                "partial_reversal",
                f"the provider gave back {exc.amount} of {rec.amount}: returning the payout would credit the player "
                "more than came back; acknowledge it with what was done",
            )
        result = ProviderPayoutResult(
            status=ProviderPayoutStatus.RETURNED,
            idempotency_key=rec.idempotency_key,
            provider_ref=rec.provider_ref,
            raw_status="reconciliation",
        )
        change = self.builder.from_result(
            rec, PayoutState.PAID, result, now=now, actor=actor.user_id, token=None, polls_status=False, cause=None
        )
        if change is None or change.to is not PayoutState.RETURNED:
            raise ReconError(ErrorKind.CONFLICT, "not_returnable", f"payout {rec.id} cannot be returned")
        applied: list[Change] = await repo.apply([change], at=now)
        if not applied:
            raise ReconError(ErrorKind.CONFLICT, "concurrent_change", f"payout {rec.id} changed meanwhile; try again")


__all__ = [
    "LedgerPostings",
    "ReconError",
    "ReconException",
    "ReconStore",
    "ReconTransactions",
    "Reconciliation",
    "Resolution",
    "Run",
    "SettlesUnknownOutcome",
    "run_id_of",
]
