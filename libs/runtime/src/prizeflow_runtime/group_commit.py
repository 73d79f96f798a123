"""Group commit: concurrent requests share one transaction, each still gets its own answer.

A request that finds no commit in flight starts one at once (a lone request waits for nobody); requests arriving
while a commit is in flight wait and share the next one, up to `max_batch`. So the batch grows with the load by
itself: one transaction per request when it is quiet, one per several hundred under a burst, with no timer.

`commit` decides a whole batch in one transaction and returns one outcome per request, in order: its result, or
the exception that request alone gets (a refusal: the others are unaffected). If `commit` itself raises, the
batch failed as a whole: an outage (`is_outage`: the database or a dependency is down) or the given `shared`
exceptions (contention that outlasted its retries) go to every request of the batch; anything else may be one
request's fault, so the batch is halved and each half committed again, until the request that fails is alone
with its error. That is log2(n) more commits for one poisoned request, never one transaction per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from prizeflow_runtime.outages import is_outage

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")


class GroupCommit(Generic[Req, Res]):
    def __init__(
        self,
        commit: Callable[[Sequence[Req]], Awaitable[Sequence[Res | BaseException]]],
        *,
        name: str,
        max_batch: int = 500,
        concurrency: int = 1,
        shared: tuple[type[BaseException], ...] = (),
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError("max_batch and concurrency must be at least 1")
        self.commit = commit
        self.name = name
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.shared = shared
        self.observe = observe  # (batch size, seconds) of each commit: a metric
        self._pending: list[tuple[Req, asyncio.Future[Res]]] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def submit(self, request: Req) -> Res:
        """The request's own outcome: its result, or its exception raised here."""
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if len(self._flushers) < self.concurrency:
            task = asyncio.create_task(self._flush(), name=f"{self.name}-group-commit")
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        # Shielded: a client that hangs up does not cancel a commit other requests share (its own request is
        # decided all the same, as it would be had it arrived alone).
        return await asyncio.shield(future)

    @property
    def waiting(self) -> int:
        return len(self._pending)

    async def _flush(self) -> None:
        me = asyncio.current_task()
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                try:
                    await self._commit_or_halve(batch)
                except BaseException as err:  # cancelled at shutdown: nobody may wait for an answer for ever
                    _fail(batch, err if isinstance(err, Exception) else RuntimeError(f"{self.name}: stopped"))
                    raise
        finally:
            # In the same step as the empty check above, with no await between: a request appended after it finds
            # this flusher gone and starts one (the done callback runs a loop iteration later, by which time a
            # request may have been appended and counted this finished task as its flusher, then waited for ever).
            if me is not None:
                self._flushers.discard(me)

    async def _commit_or_halve(self, batch: list[tuple[Req, asyncio.Future[Res]]]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            outcomes = await self.commit([request for request, _ in batch])
        except Exception as err:  # noqa: BLE001 - whatever failed is handed to the requests waiting on it
            if len(batch) > 1 and not is_outage(err) and not isinstance(err, self.shared):
                half = len(batch) // 2
                log.warning(
                    "%s: a group commit of %d failed (%s); committing each half again",
                    self.name,
                    len(batch),
                    type(err).__name__,
                )
                await self._commit_or_halve(batch[:half])
                await self._commit_or_halve(batch[half:])
                return
            _fail(batch, err)
            return
        if len(outcomes) != len(batch):
            # Committed, but not one answer per request: a bug in `commit`. Never halved (committing again would
            # redo what is committed); every request gets the error.
            _fail(batch, RuntimeError(f"{self.name}: {len(outcomes)} outcomes for a batch of {len(batch)}"))
            return
        if self.observe is not None:
            try:
                self.observe(len(batch), loop.time() - started)
            except Exception:  # a metric must not keep answers from the requests
                log.exception("%s: observing a group commit failed", self.name)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def stop(self) -> None:
        """Let the commits in flight finish (their requests are waiting for them)."""
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)


def _fail(batch: Sequence[tuple[object, asyncio.Future[Res]]], err: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(err)


__all__ = ["GroupCommit"]
