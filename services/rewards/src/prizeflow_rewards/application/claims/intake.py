"""ClaimIntake: claim requests decided a batch at a time, over the unit of work (`prizeflow_runtime.group_commit`).

The batch is whatever arrived while the previous one committed: one `SubmitClaim.decide` in one transaction
(`uow.run`: a batch that loses a deadlock is run again whole; one that still loses fails every request alike,
`TransactionContendedError`). A request `decide` defers (a row of its player's that another transaction holds) is
set aside to its player's lane, decided again with `wait=True` while the batches go on.

A COMMIT whose connection is lost may have committed. The work tells it apart: it returned (its outcomes are kept)
and then the transaction failed as an outage, which only the COMMIT can do. The backend that was committing is
ended (`LostCommits.end`), so the transaction is over for good, then each request is answered by what the database
holds (`SubmitClaim.confirm`); a claim not there gets the outage (nothing of it was written). If that cannot be
made sure or read, every request gets `CommitOutcomeUnknownError`, whatever failed: a batch that may have committed
is never halved and decided again (a request without a key would be a second claim).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.claims.submit import Claimed, ClaimOutcome, ClaimRequest, Deferred, SubmitClaim
from prizeflow_rewards.application.ports import LostCommits
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.group_commit import GroupCommit, SetAside
from prizeflow_runtime.outages import is_outage
from prizeflow_runtime.uow import TransactionContendedError, UnitOfWork

log = logging.getLogger(__name__)


class CommitOutcomeUnknownError(Exception):
    """After a lost COMMIT, what was committed could not be read back (the database stayed out of reach): the
    caller cannot tell the client whether its request was written."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the connection was lost while committing and the outcome could not be read back")
        self.retry_after_s = retry_after_s


class ClaimIntake:
    """`submit(request)`: the request's answer, decided with the requests arriving with it."""

    def __init__(
        self,
        uow: UnitOfWork[Books],
        submit_claim: SubmitClaim,
        lost: LostCommits,
        *,
        metrics: RewardsMetrics | None = None,
        max_batch: int = 500,
        retry_after_s: int = 1,
    ) -> None:
        self.uow = uow
        self.submit_claim = submit_claim
        self.lost = lost
        self.metrics = metrics
        self.retry_after_s = retry_after_s
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
        decided: list[tuple[list[ClaimOutcome], int]] = []  # what the attempt's work returned, and its backend

        async def decide(books: Books) -> list[ClaimOutcome]:
            decided.clear()  # an attempt run again after a deadlock starts afresh
            outcomes = await self.submit_claim.decide(books, requests, wait=wait)
            decided.append((outcomes, await books.backend.pid()))
            return outcomes

        try:
            return [_answer(o, None) for o in await self.uow.run(decide)]
        except Exception as err:
            if not decided or not is_outage(err):
                raise  # nothing was committed
            lost = err
        log.warning("claims: an intake COMMIT lost its connection; answering from what the database holds")
        outcomes, pid = decided[0]
        try:
            await self.lost.end(pid)
            async with self.uow() as books:
                confirmed = await self.submit_claim.confirm(books, requests, outcomes)
        except Exception as read_err:
            log.warning("claims: a lost intake COMMIT could not be read back (%s)", type(read_err).__name__)
            raise CommitOutcomeUnknownError(self.retry_after_s) from read_err
        return [_answer(o, lost) for o in confirmed]

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


__all__ = ["ClaimIntake", "CommitOutcomeUnknownError"]
