"""The payout worker: claim due payouts in batches (`send_claims.py`, through the compliance gate), call their
providers, record what they answered (a job on the runtime's scheduler; the gauges and the disagreement checks are
jobs of their own: `gauges.py`, `disagreements.py`).

Never twice at the provider:
- a claim is `FOR UPDATE SKIP LOCKED` and moves the rows to `submitting` with a lease (token + deadline) and
  COMMITS before any provider is called, so two workers never hold one payout;
- a result is written only if the row is still `submitting` under the same token (a webhook or a reclaim that
  got there first wins; the late result is dropped, and the reclaim will have synced);
- any attempt after the first, and any row reclaimed after a lease expired (a crashed worker), asks the
  provider first (`sync_status`, same idempotency key) and creates only on `payout_not_found`;
- an unknown outcome is never declared failed for good: once attempts are exhausted it waits in
  `submitted` for a confirmation.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.gate import PayoutGate
from prizeflow_payouts.application.handoff import Handed
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.provider_calls import Call, ProviderCalls
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry
from prizeflow_payouts.application.send_claims import Claimed, claim_due
from prizeflow_payouts.application.transitions import ChangeBuilder
from prizeflow_payouts.domain.deny import DENIED_DETAIL, NOTHING_DENIED, DenyList
from prizeflow_payouts.domain.payout import AttemptLog, Change, Payout
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.jobs import Tick
from prizeflow_runtime.uow import UnitOfWork

log = logging.getLogger(__name__)
S = PayoutState


@dataclass
class WorkerResult:
    processed: int = 0
    submitted: int = 0
    confirmed: int = 0
    failed: int = 0

    def __add__(self, other: WorkerResult) -> WorkerResult:
        return WorkerResult(
            self.processed + other.processed,
            self.submitted + other.submitted,
            self.confirmed + other.confirmed,
            self.failed + other.failed,
        )


@dataclass(frozen=True)
class WorkerConfig:
    batch_size: int = 500
    interval_s: float = 0.1
    idle_max_s: float = 5.0  # the longest sleep after a pass that found nothing (until the next due, at most this)
    lease_s: float = 60.0
    provider_timeout_s: float = 10.0
    concurrency: int = 64
    gauges_interval_s: float = 5.0
    # An outcome unknown this long needs an operator (`unknown_outcome` of the stuck gauge), unless the rail says
    # otherwise (`RailTerms.operator_after_s`).
    operator_after_s: float = 1800.0
    # How often a pass reads the provider's current status of the payouts a provider report disagreed with.
    checks_interval_s: float = 2.0
    # A job's pass claims the next batch while the last ones are at their providers (claim ∥ send), for as long as
    # full batches are due, up to this many batches; then it returns and runs again at once.
    batches_per_pass: int = 8
    sends_in_flight: int = 2  # batches at their providers (or being recorded) while the next one is claimed
    # A restore's recovery window (PAYOUTS_SYNC_FIRST_UNTIL, docs/runbooks/restore.md): until then every payout
    # asks its provider before it is sent, however it got here (created from a replayed request, approved again,
    # approved before the target and never picked up), and a rail that cannot look at the provider's own books
    # sends nothing: the payout waits for a person.
    sync_first_until: datetime | None = None


class PayoutWorker:
    def __init__(
        self,
        *,
        uow: UnitOfWork[Books],
        registry: ProviderRegistry,
        builder: ChangeBuilder,
        config: WorkerConfig,
        metrics: PayoutMetrics | None = None,
        worker_id: str | None = None,
        deny: DenyList = NOTHING_DENIED,
        gate: PayoutGate | None = None,
    ) -> None:
        self.uow = uow
        self.deny = deny
        # The compliance gate, again in the claim's transaction: an approved payout no provider has seen that fails
        # it now (a list refreshed, a policy tightened, a new hit) goes back to pending_approval, never out.
        self.gate = gate
        self.registry = registry
        self.builder = builder
        self.config = config
        self.metrics = metrics
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self._started = False  # logged at its first pass (what a deployment's readiness watch looks for)
        self.calls = ProviderCalls(
            registry, timeout_s=config.provider_timeout_s, concurrency=config.concurrency, metrics=metrics
        )
        # Payouts claimed for this worker by the transactions that created them, once committed (`DirectSends`).
        self.handed = Handed(
            self.worker_id, config.lease_s, config.batch_size, config.sends_in_flight, config.provider_timeout_s
        )

    async def release_handed(self) -> int:
        """Once the worker's job has stopped: the payouts still waiting here end their lease now, so that another
        replica's pass claims them at once (asking their provider first) instead of a lease later."""
        waiting = self.handed.drain()
        if not waiting:
            return 0
        async with self.uow() as books:
            released = await books.payouts.end_leases([(p.id, p.lease_token) for p in waiting if p.lease_token])
        log.info("%d payouts handed over and not sent: their leases ended for another worker", released)
        return released

    def recovering(self) -> bool:
        until = self.config.sync_first_until
        return until is not None and _now() < until

    # -- the job ----------------------------------------------------------------------------------------------
    async def tick(self) -> Tick:
        """One pass, a job on the runtime's scheduler: again at once while a full batch was found, `interval_s`
        after work, and (the scheduler's idle back-off) doubling up to `idle_max_s` while passes find nothing. A
        wake (a request consumed, an approval made here) ends any pause and restarts the doubling."""
        if not self._started:
            self._started = True
            log.info("payout worker started", extra={"worker": self.worker_id})
        result, more = await self.run_pass()
        if more:
            return 0.0  # more is due: no pause
        if result.processed > 0:
            return True
        return await self._until_due()

    async def _until_due(self) -> Tick:
        """After a pass that found nothing: sleep until the books say the next payout is due, at most `idle_max_s`
        (work another replica creates is that replica's worker's; the cap bounds what no wake announces). Something
        due now that the pass did not get (another replica's claim held it) falls back to the idle doubling."""
        async with self.uow() as books:
            due_in = await books.payouts.next_due_in(providers=self._pollable())
        if due_in is None:
            return self.config.idle_max_s
        if due_in <= 0:
            return False
        return min(max(due_in, self.config.interval_s), self.config.idle_max_s)

    def _pollable(self) -> list[str]:
        return [e.name for e in self.registry if e.polls_status]

    async def run_pass(self) -> tuple[WorkerResult, bool]:
        """The job's pass: due payouts in pipelined batches (`submit_pipelined`), then a sync of submitted ones;
        whether more is due beside the result."""
        submitted, more = await self.submit_pipelined()
        return submitted + await self.sync_submitted(), more

    async def run_once(self) -> WorkerResult:
        return await self.submit_due() + await self.sync_submitted()

    # -- submission -------------------------------------------------------------------------------------------
    async def submit_due(self) -> WorkerResult:
        """One batch: claimed (committed), sent to its providers, their answers recorded."""
        return await self._send(await self._claim_due())

    async def submit_pipelined(self) -> tuple[WorkerResult, bool]:
        """Batches while full ones are due (at most `batches_per_pass`), each claimed while the batches before it
        are at their providers (at most `sends_in_flight` of them): a claim's transaction overlaps the calls and the
        recording of earlier batches, never their rows (a batch sent is `submitting` under its lease, so no claim
        finds it), and one claim runs at a time (claims never scan rows another claim holds). Every batch claimed
        here is sent and recorded here, whatever fails, but for a cancellation (a stop that outlasts its grace): it
        cancels the sends in flight too, whose payouts stay `submitting` under their lease until a later pass asks
        their provider first (`sync_first`). Whether more is due (the last batch was full) is returned beside the
        result."""
        total, more = WorkerResult(), False
        sending: deque[asyncio.Task[WorkerResult]] = deque()
        due = True  # a claim may find more due
        try:
            for n in range(self.config.batches_per_pass):
                # Payouts handed over by their creation's transaction first: already claimed, they cost a pass
                # nothing but the sending. What is due is claimed at each pass's first batch and whenever nothing
                # handed over waits, so neither starves the other.
                handed = self.handed.take()
                if handed:
                    sending.append(asyncio.create_task(self._send(Claimed(handed))))
                if due and (n == 0 or not handed):
                    batch = await self._claim_due()
                    due = batch.full
                    if batch.payouts:
                        sending.append(asyncio.create_task(self._send(batch)))
                more = due or self.handed.waiting
                if not more:
                    break
                while len(sending) >= self.config.sends_in_flight:
                    total += await sending.popleft()
        except BaseException:
            # The batches at their providers are recorded (on a cancellation, cancelled with this pass).
            await asyncio.gather(*sending, return_exceptions=True)
            raise
        for outcome in await asyncio.gather(*sending, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
            total += outcome
        return total, more

    async def _claim_due(self) -> Claimed:
        if self.gate is not None:
            await self.gate.catch_up()  # the newest stored lists first (one query, at most once a second)
        async with self.uow() as books:
            return await claim_due(
                books,
                self.gate,
                owner=self.worker_id,
                batch_size=self.config.batch_size,
                lease_s=self.config.lease_s,
                now=_now(),
            )

    async def _send(self, batch: Claimed) -> WorkerResult:
        claimed = batch.payouts
        if not claimed:
            return WorkerResult()
        calls = await self._submit_calls(batch)
        done = _now()
        changes = []
        for rec, call in zip(claimed, calls, strict=True):
            entry = self.registry.get(rec.provider_name)
            change = (
                self._deferred(rec, call, done)
                if call.deferred
                else self._change_for(rec, S.SUBMITTING, call, done, entry)
            )
            if change is not None:
                change.attempt_log = self._attempt_log(rec, call)
                changes.append(change)
        async with self.uow() as books:
            applied = await books.payouts.apply(changes, at=done)
        return self._account(claimed, applied, lost=len(changes) - len(applied))

    async def _submit_calls(self, batch: Claimed) -> list[Call]:
        claimed = batch.payouts
        calls: list[Call | None] = [None] * len(claimed)
        # 1. Anything that may already be at the provider is asked first, with the same idempotency key.
        recovering = self.recovering()
        sync_idx = [n for n, rec in enumerate(claimed) if rec.sync_first or recovering]
        synced = await asyncio.gather(*(self.calls.sync(claimed[n]) for n in sync_idx))
        for n, call in zip(sync_idx, synced, strict=True):
            if call.error is not None and call.error.code is PayoutErrorCode.PAYOUT_NOT_FOUND:
                terms = self.registry.get(claimed[n].provider_name).rail.terms
                if recovering and not terms.finds_payouts_at_provider:
                    # The rail looked in records restored with the rest: the payout may have been sent after the
                    # restore's target. Nothing is sent; it waits, in doubt, for a person who reads the rail's books.
                    call.error = _unverifiable(call.error)
                    calls[n] = call
                    log.warning(
                        "recovery window: payout not sent, its rail cannot vouch", extra={"payout_id": claimed[n].id}
                    )
                continue  # not at the provider: created below, with the same idempotency key
            if call.error is not None:
                # The provider could not say whether it holds the payout (outage, rate limit, a key rotated...):
                # whatever that error is, the outcome of the earlier attempt is still unknown. Judged as a known
                # failure, it would end the payout for good once attempts ran out and void its reservation while
                # the provider may have paid it.
                call.error = _still_unknown(call.error)
            calls[n] = call
        # 2. A destination denied since the request was accepted is never sent (nothing is at the provider: a payout
        # that may be was asked above, and its answer stands).
        for n, rec in enumerate(claimed):
            if calls[n] is None and self.deny.denies(rec.instruction().destination):
                now = _now()
                denied = PayoutError.of(PayoutErrorCode.DESTINATION_BLOCKED, DENIED_DETAIL)
                calls[n] = Call("create", now, now, error=denied)
                log.warning("payout to a denied destination not sent", extra={"payout_id": rec.id})
            elif calls[n] is None and rec.id in batch.screened_out:
                # Screened again before this attempt (`send_claims`): listed since the first one. Nothing is at the
                # provider, so it ends here, for good: its reservation goes back, a person sees the decision.
                now = _now()
                blocked = PayoutError.of(
                    PayoutErrorCode.DESTINATION_BLOCKED, "sanctions screening hit before a retry (compliance gate)"
                )
                calls[n] = Call("create", now, now, error=blocked)
                log.warning("payout retry to a listed destination not sent", extra={"payout_id": rec.id})
            elif calls[n] is None and rec.id in batch.awaiting_screening:
                # Screened again before this attempt: the screening cannot answer until the player's re-screen (or
                # the missing list). Nothing is at the provider (asked above): it is not created now.
                now = _now()
                waits = PayoutError.of(PayoutErrorCode.PAYOUT_NOT_FOUND, AWAITING_SCREENING_DETAIL)
                calls[n] = Call("create", now, now, error=waits, deferred=True)
                log.info("payout retry waits for the player's screening", extra={"payout_id": rec.id})
        # 3. The rest is created, batched per provider where the provider takes batches.
        to_create = [n for n in range(len(claimed)) if calls[n] is None]
        by_provider: dict[str, list[int]] = {}
        for n in to_create:
            by_provider.setdefault(claimed[n].provider_name, []).append(n)
        results = await asyncio.gather(
            *(
                self.calls.create(self.registry.get(name), [claimed[n] for n in idx])
                for name, idx in by_provider.items()
            )
        )
        for idx, outs in zip(by_provider.values(), results, strict=True):
            for n, call in zip(idx, outs, strict=True):
                calls[n] = call
        return [c for c in calls if c is not None]

    def _change_for(
        self, rec: Payout, expected: PayoutState, call: Call, now: datetime, entry: ProviderEntry
    ) -> Change | None:
        if call.result is not None:
            return self.builder.from_result(
                rec,
                expected,
                call.result,
                now=now,
                actor=self.worker_id,
                token=rec.lease_token,
                polls_status=entry.polls_status,
                returns=entry.rail.terms.returns,
            )
        assert call.error is not None
        if expected is S.SUBMITTED and call.error.code is not PayoutErrorCode.PAYOUT_NOT_FOUND:
            # A sync that got no answer says nothing about the payout: ask again later.
            polls = rec.sync_polls + 1
            return Change(
                record=rec,
                expected=S.SUBMITTED,
                to=S.SUBMITTED,
                token=rec.lease_token,
                sync_polls=polls,
                next_sync_at=self.builder.poll_at(now, polls, polls_status=True),
            )
        return self.builder.from_error(rec, expected, call.error, now=now, actor=self.worker_id, token=rec.lease_token)

    def _deferred(self, rec: Payout, call: Call, now: datetime) -> Change:
        """A retry not created because its screening waits: a retryable failure, due again after the retries'
        backoff (it grows with each wait, up to its cap), and the attempt its claim took is given back (the payout's
        `max_attempts` grows by one), so waiting never ends a payout for good."""
        assert call.error is not None
        consumed = rec.previous_state is not S.SUBMITTING  # a resumed lease's claim takes no attempt
        kept = replace(rec, max_attempts=max(rec.max_attempts + consumed, rec.attempts + 1))
        change = self.builder.from_error(
            kept, S.SUBMITTING, call.error, now=now, actor=self.worker_id, token=rec.lease_token
        )
        change.max_attempts = kept.max_attempts
        return change

    def _attempt_log(self, rec: Payout, call: Call) -> AttemptLog:
        err = call.error or (call.result.error if call.result else None)
        return AttemptLog(
            attempt=max(rec.attempts, 1),
            kind=call.kind,
            worker=self.worker_id,
            started_at=call.started,
            finished_at=call.finished,
            outcome=call.result.status.value if call.result else "error",
            error_code=err.code.value if err else None,
            detail=err.message[:500] if err else None,
        )

    def _account(self, claimed: Sequence[Payout], applied: Sequence[Change], *, lost: int) -> WorkerResult:
        result = WorkerResult(processed=len(claimed))
        for ch in applied:
            if ch.to is S.SUBMITTED and ch.expected is S.SUBMITTING:
                result.submitted += 1
            elif ch.to in (S.PAID, S.RETURNED):
                result.confirmed += 1
            elif ch.to is S.FAILED:
                result.failed += 1
        if self.metrics is not None:
            self._count_moves(self.metrics, applied)
        if lost:
            log.info("%d results dropped: their payouts moved on meanwhile (webhook or reclaim)", lost)
        if self.metrics is not None:
            for key in ("processed", "submitted", "confirmed", "failed"):
                self.metrics.worker_runs.labels(key).inc(getattr(result, key))
        return result

    @staticmethod
    def _count_moves(metrics: PayoutMetrics, applied: Sequence[Change]) -> None:
        """Transitions and confirmation times of a batch: one labelled child lookup per label set, not per payout."""
        moved = Counter((ch.to.value, ch.record.provider_name) for ch in applied if ch.to is not ch.expected)
        for (to, provider), n in moved.items():
            metrics.transitions.labels(to, provider).inc(n)
        paid_now = _now()
        waited: dict[str, list[float]] = {}
        for ch in applied:
            if ch.to is S.PAID and ch.expected is not S.PAID:
                waited.setdefault(ch.record.provider_name, []).append(
                    max(0.0, (paid_now - ch.record.created_at).total_seconds())
                )
        for name, seconds in waited.items():
            child = metrics.confirm_seconds.labels(name)
            for value in seconds:
                child.observe(value)

    # -- status sync of submitted payouts (confirm-later providers) ---------------------------------------------
    async def sync_submitted(self) -> WorkerResult:
        pollable = self._pollable()
        if not pollable:
            return WorkerResult()
        async with self.uow() as books:
            claimed = await books.payouts.claim_for_sync(
                owner=self.worker_id,
                providers=pollable,
                limit=self.config.batch_size,
                lease_s=self.config.lease_s,
            )
        if not claimed:
            return WorkerResult()
        calls = await asyncio.gather(*(self.calls.sync(rec) for rec in claimed))
        done = _now()
        changes = []
        for rec, call in zip(claimed, calls, strict=True):
            change = self._change_for(rec, S.SUBMITTED, call, done, self.registry.get(rec.provider_name))
            if change is not None:
                if change.to is not S.SUBMITTED:
                    change.attempt_log = self._attempt_log(rec, call)
                changes.append(change)
        async with self.uow() as books:
            applied = await books.payouts.apply(changes, at=done)
        return self._account(claimed, applied, lost=len(changes) - len(applied))


def _now() -> datetime:
    return datetime.now(UTC)


AWAITING_SCREENING_DETAIL = (
    "not created: its screening waits (the player's re-screen against the loaded lists, or a list not loaded); "
    "asked again after the backoff"
)


def _unverifiable(error: PayoutError) -> PayoutError:
    """In a restore's recovery window, a rail whose records were restored with ours says it has no such payout."""
    return PayoutError.of(
        PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME,
        "recovery window: this rail answers from payouts' own records, restored older than its books; a person "
        "checks the rail before anything is sent (docs/runbooks/restore.md)",
        provider=error.provider,
        provider_code=error.provider_code,
    )


def _still_unknown(error: PayoutError) -> PayoutError:
    """A sync-first that got no answer: the payout may be at the provider (never a final failure)."""
    return PayoutError.of(
        PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME,
        f"may be at the provider: its status could not be read ({error.code.value}: {error.message})"[:1000],
        provider=error.provider,
        provider_code=error.provider_code,
    )


__all__ = ["AWAITING_SCREENING_DETAIL", "Call", "PayoutWorker", "WorkerConfig", "WorkerResult"]
