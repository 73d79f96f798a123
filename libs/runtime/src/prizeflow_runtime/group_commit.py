"""Group commit: concurrent requests share one transaction, each still gets its own answer.

A request that finds no commit in flight starts one at once (a lone request waits for nobody); requests arriving
while a commit is in flight wait and share the next one, up to `max_batch`. So the batch grows with the load by
itself: one transaction per request when it is quiet, one per several hundred under a burst, with no timer.

`commit` decides a whole batch in one transaction and returns one outcome per request, in order: its result, or
the exception that request alone gets (a refusal: the others are unaffected).

A batch must never wait on a row only some of its requests need: one row held by a stuck transaction would hold
up every request of the batch, and every request queued behind it, for the whole lock timeout. So `commit` takes
such rows without waiting (NOWAIT, SKIP LOCKED, a try-lock) and answers a request whose row is busy with
`SetAside(key)`, `key` naming what it waits for: that request is not decided by the batch. It goes to the lane
of its key, where `wait` commits the requests set aside on that key together, waiting for their rows (with the
database's lock timeout), in a task of its own while the batches go on; requests set aside on a key while its
lane commits share the lane's next commit. At most `lanes` lanes commit at once (each holds a connection while it
waits); the others queue holding nothing. `wait` may set a request aside again (its row was taken again between
its wait and its lock): it goes round its lane again, in at most `rounds` commits in all (its batch's and its
lane's), then `SetAside` is its answer. Without a `wait`, `SetAside` is the request's answer at once.

If `commit` itself raises, the batch failed as a whole: an outage (`is_outage`: the database or a dependency is
down), a statement or lock timeout (a row wanted by the whole batch, or waited for by a lane, was held past its
limit: halving would only wait the full timeout again in each half) or the given `shared` exceptions (contention
that outlasted its retries) go to every request of the batch. A failure `commit` can pin on requests it raises as
`Culprits` (their positions in the batch, each with its error): those requests get their errors and the rest of
the batch is committed again at once, one more commit whatever the batch's size (issue 56). Anything else may be
one request's fault without saying whose, so the batch is halved and each half committed again, until the request
that fails is alone with its error: log2(n) more commits for one poisoned request, never one transaction per
request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prizeflow_runtime.outages import is_database_timeout, is_outage

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")

Commit = Callable[[Sequence[Req]], Awaitable[Sequence[Res | BaseException]]]


class SetAside(Exception):  # noqa: N818 - an outcome that says what happens next, not a failure of the code
    """A request `commit` did not decide because a row it needs is held by another transaction: returned as that
    request's outcome (never raised by `commit`). `key` names what it waits for (one lane per key); it stays out
    of the message, which a service may log."""

    def __init__(self, key: Hashable) -> None:
        super().__init__("the request waits for a row another transaction holds")
        self.key = key


class Culprits(Exception):  # noqa: N818 - names the requests a failure is theirs, not a failure of its own
    """Raised by `commit` when it failed because of some of its requests and knows which: `failed` maps each one's
    position in the batch to the error it gets; nothing of the batch was committed. The others are committed again,
    in one more commit."""

    def __init__(self, failed: dict[int, BaseException]) -> None:
        super().__init__(f"{len(failed)} request(s) broke the batch")
        self.failed = failed


@dataclass(slots=True)
class _Waiter(Generic[Req, Res]):
    request: Req
    future: asyncio.Future[Res]
    rounds: int = 0  # how many times it was set aside


class GroupCommit(Generic[Req, Res]):
    def __init__(
        self,
        commit: Commit[Req, Res],
        *,
        name: str,
        max_batch: int = 500,
        concurrency: int = 1,
        shared: tuple[type[BaseException], ...] = (),
        observe: Callable[[int, float], None] | None = None,
        wait: Commit[Req, Res] | None = None,
        lanes: int = 4,
        rounds: int = 3,
    ) -> None:
        if max_batch < 1 or concurrency < 1 or lanes < 1 or rounds < 1:
            raise ValueError("max_batch, concurrency, lanes and rounds must be at least 1")
        self.commit = commit
        self.name = name
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.shared = shared
        self.observe = observe  # (batch size, seconds) of each batch's commit: a metric
        self.wait = wait
        self.rounds = rounds
        self._pending: list[_Waiter[Req, Res]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._lanes: dict[Hashable, list[_Waiter[Req, Res]]] = {}
        self._aside = 0  # requests in the lanes, waiting for a round or in one
        self._lane_tasks: set[asyncio.Task[None]] = set()
        self._lane_slots = asyncio.Semaphore(lanes)

    async def submit(self, request: Req) -> Res:
        """The request's own outcome: its result, or its exception raised here."""
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._pending.append(_Waiter(request, future))
        if len(self._flushers) < self.concurrency:
            task = asyncio.create_task(self._flush(), name=f"{self.name}-group-commit")
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        # Shielded: a client that hangs up does not cancel a commit other requests share (its own request is
        # decided all the same, as it would be had it arrived alone).
        return await asyncio.shield(future)

    @property
    def waiting(self) -> int:
        """Requests waiting for the next batch."""
        return len(self._pending)

    @property
    def set_aside(self) -> int:
        """Requests in a lane: waiting for a row another transaction holds."""
        return self._aside

    async def _flush(self) -> None:
        me = asyncio.current_task()
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                try:
                    await self._commit_or_halve(batch, self.commit, observe=True)
                except BaseException as err:  # cancelled at shutdown: nobody may wait for an answer for ever
                    _fail(batch, err if isinstance(err, Exception) else RuntimeError(f"{self.name}: stopped"))
                    raise
        finally:
            # In the same step as the empty check above, with no await between: a request appended after it finds
            # this flusher gone and starts one (the done callback runs a loop iteration later, by which time a
            # request may have been appended and counted this finished task as its flusher, then waited for ever).
            if me is not None:
                self._flushers.discard(me)

    async def _commit_or_halve(
        self, batch: list[_Waiter[Req, Res]], commit: Commit[Req, Res], *, observe: bool = False
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            outcomes = await commit([w.request for w in batch])
        except Exception as err:  # noqa: BLE001 - whatever failed is handed to the requests waiting on it
            await self._failed(batch, commit, err, observe=observe)
            return
        if len(outcomes) != len(batch):
            # Committed, but not one answer per request: a bug in `commit`. Never halved (committing again would
            # redo what is committed); every request gets the error.
            _fail(batch, RuntimeError(f"{self.name}: {len(outcomes)} outcomes for a batch of {len(batch)}"))
            return
        if observe and self.observe is not None:
            try:
                self.observe(len(batch), loop.time() - started)
            except Exception:  # a metric must not keep answers from the requests
                log.exception("%s: observing a group commit failed", self.name)
        for waiter, outcome in zip(batch, outcomes, strict=True):
            if waiter.future.done():
                continue
            if isinstance(outcome, SetAside) and self.wait is not None and waiter.rounds + 1 < self.rounds:
                waiter.rounds += 1
                self._to_lane(outcome.key, waiter)
            elif isinstance(outcome, BaseException):
                waiter.future.set_exception(outcome)
            else:
                waiter.future.set_result(outcome)

    async def _failed(
        self, batch: list[_Waiter[Req, Res]], commit: Commit[Req, Res], err: Exception, *, observe: bool
    ) -> None:
        """A commit of `batch` raised `err`: its culprits answered and the rest committed again (`Culprits`), or the
        batch halved, or every request answered with it (module docstring)."""
        named = {i: e for i, e in err.failed.items() if 0 <= i < len(batch)} if isinstance(err, Culprits) else {}
        if named:
            log.warning("%s: %d of a group commit of %d broke it; the rest again", self.name, len(named), len(batch))
            for i, e in named.items():
                _fail([batch[i]], e)
            if rest := [w for i, w in enumerate(batch) if i not in named]:
                await self._commit_or_halve(rest, commit, observe=observe)
            return
        if len(batch) > 1 and not self._whole_batch(err):
            half = len(batch) // 2
            log.warning(
                "%s: a group commit of %d failed (%s); committing each half again",
                self.name,
                len(batch),
                type(err).__name__,
            )
            await self._commit_or_halve(batch[:half], commit, observe=observe)
            await self._commit_or_halve(batch[half:], commit, observe=observe)
            return
        _fail(batch, err)

    def _whole_batch(self, err: Exception) -> bool:
        """A failure that is no one request's fault, so halving would not isolate it (module docstring)."""
        return is_outage(err) or is_database_timeout(err) or isinstance(err, self.shared)

    def _to_lane(self, key: Hashable, waiter: _Waiter[Req, Res]) -> None:
        self._aside += 1
        lane = self._lanes.get(key)
        if lane is not None:  # its lane is committing or queued for a slot: the waiter joins its next commit
            lane.append(waiter)
            return
        self._lanes[key] = [waiter]
        task = asyncio.create_task(self._lane(key), name=f"{self.name}-lane")
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_tasks.discard)

    async def _lane(self, key: Hashable) -> None:
        """Commits the requests set aside on `key` with `wait`, round after round, until none is left."""
        assert self.wait is not None
        while True:
            async with self._lane_slots:
                batch = self._lanes[key]
                self._lanes[key] = []  # set aside on `key` from now on: the next round
                try:
                    await self._commit_or_halve(batch, self.wait)
                except BaseException as err:  # cancelled at shutdown: nobody may wait for an answer for ever
                    _fail(batch, err if isinstance(err, Exception) else RuntimeError(f"{self.name}: stopped"))
                    left = self._lanes.pop(key, [])
                    self._aside -= len(left)
                    _fail(left, RuntimeError(f"{self.name}: stopped"))
                    raise
                finally:
                    self._aside -= len(batch)  # answered, or back in a lane (counted again there)
            # The empty check and the removal in one step (no await between): a request set aside on `key` after
            # it finds no lane and starts one; one set aside before it is in the list and gets another round.
            if not self._lanes[key]:
                del self._lanes[key]
                return

    async def stop(self) -> None:
        """Let the commits in flight and the lanes finish (their requests are waiting for them)."""
        while self._flushers or self._lane_tasks:
            await asyncio.gather(*self._flushers, *self._lane_tasks, return_exceptions=True)


def _fail(batch: Sequence[_Waiter[Any, Any]], err: BaseException) -> None:
    for waiter in batch:
        if not waiter.future.done():
            waiter.future.set_exception(err)


__all__ = ["Culprits", "GroupCommit", "SetAside"]
