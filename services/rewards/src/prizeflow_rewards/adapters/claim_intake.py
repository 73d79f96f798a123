"""Claim intake on PostgreSQL: claim requests decided a batch at a time (`prizeflow_runtime.group_commit`).

The batch is whatever arrived while the previous one committed (one `SubmitClaim.decide` in one transaction). A
request `decide` defers (a row of its player's that another transaction holds) is set aside to its player's lane,
decided again with `wait=True` while the batches go on. A batch that loses a deadlock is run again whole; one
that still loses fails every request alike (`TransactionContendedError`).

A COMMIT whose connection is lost may have committed: the lost backend is ended (`end_lost_backend`), then each
request is answered by what the database holds (`SubmitClaim.confirm`); a claim not there gets the outage (nothing
of it was written). If that cannot be read, every request gets `CommitOutcomeUnknownError`, whatever failed the
read: a batch that may have committed is never halved and decided again (a request without a key would be a
second claim).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_rewards.adapters.transactions import (
    CommitLostError,
    CommitOutcomeUnknownError,
    RetryPolicy,
    TransactionContendedError,
    end_lost_backend,
    retry_transaction,
    run_committing,
)
from prizeflow_rewards.application.claims.submit import Claimed, ClaimOutcome, ClaimRequest, Deferred, SubmitClaim
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.group_commit import GroupCommit, SetAside

log = logging.getLogger(__name__)


class PgClaimIntake:
    """`submit(request)`: the request's answer, decided with the requests arriving with it."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        submit_claim: SubmitClaim,
        *,
        retry: RetryPolicy,
        metrics: RewardsMetrics | None = None,
        max_batch: int = 500,
    ) -> None:
        self.sessions = sessions
        self.submit_claim = submit_claim
        self.retry = retry
        self.metrics = metrics
        self.group: GroupCommit[ClaimRequest, Claimed] = GroupCommit(
            self._batch,
            name="claims",
            max_batch=max_batch,
            shared=(TransactionContendedError, CommitOutcomeUnknownError),
            observe=self._observe,
            wait=self._lane,
        )
        if metrics is not None:
            metrics.claim_intake_waiting.set_function(lambda: self.group.waiting)
            metrics.claim_intake_set_aside.set_function(lambda: self.group.set_aside)

    async def submit(self, request: ClaimRequest) -> Claimed:
        return await self.group.submit(request)

    @property
    def waiting(self) -> int:
        return self.group.waiting

    async def stop(self) -> None:
        """Let the batches in flight and the lanes finish (their requests are waiting for them)."""
        await self.group.stop()

    async def _batch(self, requests: Sequence[ClaimRequest]) -> list[Claimed | BaseException]:
        return await self._decide(requests, wait=False)

    async def _lane(self, requests: Sequence[ClaimRequest]) -> list[Claimed | BaseException]:
        return await self._decide(requests, wait=True)

    async def _decide(self, requests: Sequence[ClaimRequest], *, wait: bool) -> list[Claimed | BaseException]:
        async def decide(session: AsyncSession) -> list[ClaimOutcome]:
            return await self.submit_claim.decide(session, requests, wait=wait)

        try:
            outcomes: list[ClaimOutcome | None] = list(
                await retry_transaction(
                    lambda: run_committing(self.sessions, decide), policy=self.retry, on_retry=self._count_retry
                )
            )
            lost: Exception | None = None
        except CommitLostError as err:
            log.warning("claims: an intake COMMIT lost its connection; answering from what the database holds")
            decided = cast("list[ClaimOutcome]", err.outcome)  # what `decide` returned
            lost = err.__cause__ if isinstance(err.__cause__, Exception) else err
            try:
                await end_lost_backend(self.sessions, err.backend_pid)
                async with self.sessions() as session, session.begin():
                    outcomes = await self.submit_claim.confirm(session, requests, decided)
            except Exception as read_err:
                log.warning("claims: a lost intake COMMIT could not be read back (%s)", type(read_err).__name__)
                raise CommitOutcomeUnknownError(self.retry.retry_after_s) from read_err
        return [_answer(o, lost) for o in outcomes]

    def _count_retry(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.transaction_retries.labels(outcome).inc()

    def _observe(self, size: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.claim_batch.observe(size)
            self.metrics.claim_batch_seconds.observe(seconds)


def _answer(outcome: ClaimOutcome | None, lost: Exception | None) -> Claimed | BaseException:
    """A request's outcome as the group commit takes it: a deferred request is set aside (decided again, waiting
    for its player's rows); a claim a lost COMMIT did not write is answered with the outage."""
    if isinstance(outcome, Deferred):
        return SetAside(outcome.player_id)
    if outcome is None:
        assert lost is not None
        return lost
    return outcome


__all__ = ["PgClaimIntake"]
