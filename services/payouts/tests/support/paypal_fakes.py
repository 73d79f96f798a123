"""The PayPal rail's ports in memory, for its unit tests: its books (`MemoryPayPalBooks`, held to `SqlPayPalBooks`
by tests/integration/test_paypal_books.py, the same cases on both; a unit of work that raises leaves nothing) and
PayPal's API as far as the rail uses it (`FakePayPal`, an httpx transport's handler answering as PayPal does)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderType,
)
from prizeflow_payouts.adapters.paypal.book import Batch, Item, PayPalItems
from prizeflow_payouts.adapters.paypal.client import PayPalOptions


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


OPTIONS = PayPalOptions(
    name="paypal",
    provider_type=ProviderType.PAYPAL,
    api_base="https://paypal.test",
    assets=("USD",),
    email_subject="You have a prize",
    note="Your prize",
    timeout_s=2.0,
)


class FakePayPal:
    """PayPal's Payouts API as far as the rail uses it: batches under `PayPal-Request-Id` (the same id answers the
    first batch), items whose state a test sets, Transaction Search, and faults a test arms."""

    def __init__(self) -> None:
        self.batches: dict[str, dict[str, Any]] = {}  # payout_batch_id -> {request_id, items}
        self.by_request: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.tokens = 0
        self.fail_next: list[httpx.Response | Exception] = []
        self.lose_answer = False  # the next POST is carried out and its answer lost
        self.transactions: list[dict[str, Any]] = []

    def item(self, key: str) -> dict[str, Any]:
        return next(i for b in self.batches.values() for i in b["items"] if i["payout_item"]["sender_item_id"] == key)

    def set_state(self, key: str, state: str, **extra: Any) -> None:
        self.item(key).update(transaction_status=state, **extra)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if path == "/v1/oauth2/token":
            self.tokens += 1
            return httpx.Response(200, json={"access_token": f"T{self.tokens}", "expires_in": 32400})
        assert request.headers["Authorization"].startswith("Bearer T")
        if self.fail_next:
            fault = self.fail_next.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault
        if request.method == "POST" and path == "/v1/payments/payouts":
            return self._create(request)
        if request.method == "GET" and path.startswith("/v1/payments/payouts/"):
            batch_id = path.rsplit("/", 1)[1]
            b = self.batches[batch_id]
            header = {"payout_batch_id": batch_id, "batch_status": "SUCCESS"}
            return httpx.Response(200, json={"batch_header": header, "items": b["items"], "total_page": 1})
        if request.method == "GET" and path.startswith("/v1/payments/payouts-item/"):
            item_id = path.rsplit("/", 1)[1]
            return httpx.Response(200, json=self._item_by_id(item_id))
        if request.method == "POST" and path.endswith("/cancel"):
            item = self._item_by_id(path.split("/")[-2])
            if item["transaction_status"] != "UNCLAIMED":
                return httpx.Response(422, json={"name": "ITEM_CANCELLATION_FAILED"})
            item["transaction_status"] = "RETURNED"
            return httpx.Response(200, json=item)
        if path == "/v1/reporting/transactions":
            details = [{"transaction_info": t} for t in self.transactions]
            return httpx.Response(200, json={"transaction_details": details, "page": 1, "total_pages": 1})
        return httpx.Response(404, json={"name": "RESOURCE_NOT_FOUND"})

    def _item_by_id(self, item_id: str) -> dict[str, Any]:
        return next(i for b in self.batches.values() for i in b["items"] if i["payout_item_id"] == item_id)

    def _create(self, request: httpx.Request) -> httpx.Response:
        request_id = request.headers["PayPal-Request-Id"]
        body = json.loads(request.content)
        if request_id not in self.by_request:
            batch_id = f"PB{len(self.batches) + 1}"
            self.by_request[request_id] = batch_id
            items = [
                {
                    "payout_item_id": f"{batch_id}I{n}",
                    "transaction_id": f"{batch_id}T{n}",
                    "transaction_status": "PENDING",
                    "payout_batch_id": batch_id,
                    "payout_item_fee": {"currency": "USD", "value": "0.25"},
                    "payout_item": {k: v for k, v in i.items() if k != "note"},
                }
                for n, i in enumerate(body["items"])
            ]
            self.batches[batch_id] = {"request_id": request_id, "items": items}
        batch_id = self.by_request[request_id]
        if self.lose_answer:
            self.lose_answer = False
            raise httpx.ReadTimeout("the answer was lost")
        header = {
            "payout_batch_id": batch_id,
            "batch_status": "PENDING",
            "sender_batch_header": body["sender_batch_header"],
        }
        return httpx.Response(201, json={"batch_header": header})


def pay(key: str, amount: int = 1_250, to: str = "player@example.com") -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=f"po-{key}",
        idempotency_key=key,
        amount=Money(asset="USD", amount=amount),
        destination=PayoutDestination(type=DestinationType.PAYPAL, address=to),
    )


def lookup(key: str, amount: int = 1_250) -> PayoutLookup:
    return PayoutLookup(payout_id=f"po-{key}", idempotency_key=key, amount=Money(asset="USD", amount=amount))


def result(outcome: Any) -> ProviderPayoutResult:
    assert isinstance(outcome, ProviderPayoutResult), outcome
    return outcome


__all__ = ["OPTIONS", "FakePayPal", "MemoryPayPalBooks", "MemoryPayPalItems", "lookup", "pay", "result"]
