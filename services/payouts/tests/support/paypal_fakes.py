"""The PayPal rail's books in memory (`PayPalBooks`), for its unit tests; held to `SqlPayPalBooks` by
tests/integration/test_paypal_books.py (the same cases on both). A unit of work that raises leaves nothing."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from prizeflow_payouts.adapters.paypal.book import Batch, Item, PayPalItems


@dataclass
class _State:
    batches: dict[tuple[str, str], Batch] = field(default_factory=dict)
    items: dict[tuple[str, str], Item] = field(default_factory=dict)
    made: dict[tuple[str, str], datetime] = field(default_factory=dict)  # a batch's `created_at`


class MemoryPayPalItems:
    def __init__(self, state: _State, clock: Callable[[], datetime]) -> None:
        self.s = state
        self.clock = clock

    async def enter(
        self, provider: str, batch: str, items: Sequence[Item], body: Callable[[list[str]], dict[str, Any]]
    ) -> list[str]:
        if (provider, batch) in self.s.batches:
            raise ValueError("a batch id is entered once")
        entered = []
        for item in items:
            if (provider, item.idempotency_key) not in self.s.items:
                self.s.items[provider, item.idempotency_key] = replace(
                    item, sender_batch_id=batch, payout_item_id=None, transaction_id=None
                )
                entered.append(item.idempotency_key)
        if entered:
            self.s.batches[provider, batch] = Batch(batch, copy.deepcopy(body(entered)), None)
            self.s.made[provider, batch] = self.clock()
        return entered

    async def items(self, provider: str, keys: Sequence[str]) -> dict[str, Item]:
        return {k: self.s.items[provider, k] for k in keys if (provider, k) in self.s.items}

    async def batch(self, provider: str, sender_batch_id: str) -> Batch | None:
        return self.s.batches.get((provider, sender_batch_id))

    async def answered(self, provider: str, sender_batch_id: str, payout_batch_id: str) -> bool:
        batch = self.s.batches.get((provider, sender_batch_id))
        if batch is None or batch.payout_batch_id not in (None, payout_batch_id):
            return False
        if any(
            b.payout_batch_id == payout_batch_id and (p, b.sender_batch_id) != (provider, sender_batch_id)
            for (p, _), b in self.s.batches.items()
            if p == provider
        ):
            raise ValueError("one PayPal batch is one of ours")  # the unique index
        self.s.batches[provider, sender_batch_id] = replace(batch, payout_batch_id=payout_batch_id)
        return True

    async def refused(self, provider: str, sender_batch_id: str) -> None:
        batch = self.s.batches.get((provider, sender_batch_id))
        if batch is None or batch.payout_batch_id is not None:
            return
        del self.s.batches[provider, sender_batch_id]
        del self.s.made[provider, sender_batch_id]
        for key in [k for k, i in self.s.items.items() if k[0] == provider and i.sender_batch_id == sender_batch_id]:
            del self.s.items[key]

    async def seen(self, provider: str, key: str, payout_item_id: str, transaction_id: str | None) -> None:
        item = self.s.items.get((provider, key))
        if item is None or item.payout_item_id not in (None, payout_item_id):
            return
        tx = transaction_id if transaction_id is not None else item.transaction_id
        self.s.items[provider, key] = replace(item, payout_item_id=payout_item_id, transaction_id=tx)

    async def keys_of(self, provider: str, refs: Sequence[str]) -> dict[str, tuple[str, str]]:
        wanted = set(refs)
        found: dict[str, tuple[str, str]] = {}
        for (p, key), item in self.s.items.items():
            if p != provider or item.payout_item_id is None:
                continue
            for ref in (item.payout_item_id, item.transaction_id):
                if ref is not None and ref in wanted:
                    found[ref] = (key, item.payout_item_id)
        return found

    async def answered_between(self, provider: str, since: datetime, until: datetime) -> list[str]:
        made = sorted((at, b) for (p, b), at in self.s.made.items() if p == provider and since <= at < until)
        found = (self.s.batches[provider, b].payout_batch_id for _, b in made)
        return [f for f in found if f is not None]


class MemoryPayPalBooks:
    """`PayPalBooks` in memory: a unit of work works on a copy, kept only when it returns."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.state = _State()
        self.clock = clock
        self.units: list[str] = []  # what each unit of work was for, in order

    @asynccontextmanager
    async def __call__(self, what: str) -> AsyncIterator[PayPalItems]:
        self.units.append(what)
        work = copy.deepcopy(self.state)
        yield MemoryPayPalItems(work, self.clock)
        self.state = work


__all__ = ["MemoryPayPalBooks", "MemoryPayPalItems"]
