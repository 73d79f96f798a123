"""Group commit: requests share commits, each gets its own outcome, one poisoned request fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from prizeflow_runtime.group_commit import GroupCommit


class Refused(Exception):
    pass


class Poisoned(Exception):
    pass


class Contended(Exception):
    pass


class Store:
    """Commits batches of ints: a negative one is refused on its own; `poison` fails any batch holding it."""

    def __init__(self, poison: int | None = None, error: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.poison = poison
        self.error = error
        self.gate = asyncio.Event()
        self.gate.set()

    async def commit(self, batch: Sequence[int]) -> list[int | BaseException]:
        await self.gate.wait()
        self.batches.append(list(batch))
        if self.error is not None:
            raise self.error
        if self.poison is not None and self.poison in batch:
            raise Poisoned(f"{self.poison} breaks the batch")
        return [Refused(str(n)) if n < 0 else n * 10 for n in batch]


async def test_a_lone_request_commits_at_once_and_requests_arriving_meanwhile_share_the_next_commit() -> None:
    store = Store()
    group = GroupCommit(store.commit, name="t")
    assert await group.submit(1) == 10
    store.gate.clear()
    first = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0)  # the first commit is in flight, waiting on the gate
    rest = [asyncio.create_task(group.submit(n)) for n in range(3, 103)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await first == 20
    assert await asyncio.gather(*rest) == [n * 10 for n in range(3, 103)]
    assert [len(b) for b in store.batches] == [1, 1, 100]


async def test_a_refused_request_gets_its_own_error_and_the_batch_still_commits_once() -> None:
    store = Store()
    group = GroupCommit(store.commit, name="t")
    store.gate.clear()
    tasks = [asyncio.create_task(group.submit(n)) for n in (1, -2, 3)]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert (results[0], results[2]) == (10, 30)
    assert isinstance(results[1], Refused)
    assert store.batches == [[1, -2, 3]]


async def test_a_request_that_breaks_its_batch_is_isolated_by_halving_not_one_commit_per_request() -> None:
    store = Store(poison=137)
    group = GroupCommit(store.commit, name="t", max_batch=500)
    store.gate.clear()
    tasks = [asyncio.create_task(group.submit(n)) for n in range(500)]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[137], Poisoned)
    assert [r for i, r in enumerate(results) if i != 137] == [n * 10 for n in range(500) if n != 137]
    # Each halving commits two halves; only the half holding the poison is halved again: 1 + 2 * log2(500).
    assert len(store.batches) <= 1 + 2 * 9
    committed = [n for b in store.batches if 137 not in b for n in b]
    assert sorted(committed) == [n for n in range(500) if n != 137]  # every other request committed exactly once


@pytest.mark.parametrize("error", [ConnectionRefusedError("database down"), Contended("lost 4 times")])
async def test_an_outage_or_a_shared_failure_is_every_requests_answer_without_halving(error: Exception) -> None:
    store = Store(error=error)
    group = GroupCommit(store.commit, name="t", shared=(Contended,))
    store.gate.clear()
    tasks = [asyncio.create_task(group.submit(n)) for n in range(8)]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is error for r in results)
    assert len(store.batches) == 1


async def test_a_caller_that_hangs_up_does_not_cancel_the_commit_it_shares() -> None:
    store = Store()
    group = GroupCommit(store.commit, name="t")
    store.gate.clear()
    leaver = asyncio.create_task(group.submit(1))
    stayer = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0)
    leaver.cancel()
    store.gate.set()
    assert await stayer == 20
    await group.stop()
    assert [n for b in store.batches for n in b] == [1, 2]  # the leaver's request was decided all the same


async def test_batches_never_exceed_max_batch() -> None:
    store = Store()
    group = GroupCommit(store.commit, name="t", max_batch=7)
    store.gate.clear()
    tasks = [asyncio.create_task(group.submit(n)) for n in range(30)]
    await asyncio.sleep(0)
    store.gate.set()
    await asyncio.gather(*tasks)
    assert max(len(b) for b in store.batches) == 7
    assert sorted(n for b in store.batches for n in b) == list(range(30))
