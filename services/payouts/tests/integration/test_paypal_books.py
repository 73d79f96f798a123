"""The PayPal rail's books' contract: each case runs on the in-memory books the unit tests use (`tests/support`)
and on `SqlPayPalBooks` on a migrated database (migration 0033). A fake that drifts from its SQL fails here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from paypal_fakes import MemoryPayPalBooks

from prizeflow_payouts.adapters.paypal.book import Item, PayPalBooks, SqlPayPalBooks
from prizeflow_runtime.db import create_engine

pytestmark = pytest.mark.integration

P = "paypal"


@pytest.fixture(params=["memory", "postgres"])
async def books(request: pytest.FixtureRequest, db: str) -> AsyncIterator[PayPalBooks]:
    if request.param == "memory":
        yield MemoryPayPalBooks()
        return
    engine = create_engine(db, pool_size=2)
    try:
        yield SqlPayPalBooks(engine)
    finally:
        await engine.dispose()


def item(key: str, batch: str = "b-1", amount: int = 1_250) -> Item:
    return Item(key, f"po-{key}", "USD", amount, batch)


def body(batch: str) -> Any:
    return lambda keys: {
        "sender_batch_header": {"sender_batch_id": batch},
        "items": [{"sender_item_id": k} for k in keys],
    }


async def test_a_payout_is_in_one_batch_only_and_the_batch_keeps_the_request_as_sent(books: PayPalBooks) -> None:
    async with books("enter") as b:
        first = await b.enter(P, "b-1", [item("k1"), item("k2")], body("b-1"))
    async with books("enter") as b:
        second = await b.enter(P, "b-2", [item("k2", "b-2"), item("k3", "b-2")], body("b-2"))
    assert (first, second) == (["k1", "k2"], ["k3"])
    async with books("read") as b:
        found = await b.items(P, ["k1", "k2", "k3", "k4"])
        b2 = await b.batch(P, "b-2")
    assert {k: i.sender_batch_id for k, i in found.items()} == {"k1": "b-1", "k2": "b-1", "k3": "b-2"}
    assert b2 is not None
    assert b2.payout_batch_id is None
    assert [i["sender_item_id"] for i in b2.body["items"]] == ["k3"]  # what was entered, and only that


async def test_a_batch_with_nothing_new_is_not_kept(books: PayPalBooks) -> None:
    async with books("enter") as b:
        await b.enter(P, "b-1", [item("k1")], body("b-1"))
    async with books("enter") as b:
        assert await b.enter(P, "b-2", [item("k1", "b-2")], body("b-2")) == []
    async with books("read") as b:
        assert await b.batch(P, "b-2") is None


async def test_an_answered_batch_keeps_its_id_and_is_never_forgotten(books: PayPalBooks) -> None:
    async with books("enter") as b:
        await b.enter(P, "b-1", [item("k1")], body("b-1"))
    async with books("answered") as b:
        assert await b.answered(P, "b-1", "PB-1")
        assert await b.answered(P, "b-1", "PB-1")  # the same answer again
        assert not await b.answered(P, "b-1", "PB-2")  # never overwritten
        await b.refused(P, "b-1")  # an answered batch exists at PayPal: it stays
    async with books("read") as b:
        batch = await b.batch(P, "b-1")
        assert batch is not None
        assert batch.payout_batch_id == "PB-1"
        assert set(await b.items(P, ["k1"])) == {"k1"}


async def test_a_refused_batch_goes_with_its_items_so_they_may_be_sent_again(books: PayPalBooks) -> None:
    async with books("enter") as b:
        await b.enter(P, "b-1", [item("k1"), item("k2")], body("b-1"))
    async with books("forget") as b:
        await b.refused(P, "b-1")
    async with books("enter") as b:
        assert await b.enter(P, "b-2", [item("k1", "b-2")], body("b-2")) == ["k1"]
    async with books("read") as b:
        assert await b.batch(P, "b-1") is None
        assert (await b.items(P, ["k1", "k2"]))["k1"].sender_batch_id == "b-2"
        assert "k2" not in await b.items(P, ["k2"])


async def test_paypals_ids_of_an_item_are_kept_once_and_name_it_in_the_statement(books: PayPalBooks) -> None:
    async with books("enter") as b:
        await b.enter(P, "b-1", [item("k1"), item("k2")], body("b-1"))
    async with books("seen") as b:
        await b.seen(P, "k1", "ITEM1", "TX1")
        await b.seen(P, "k1", "ITEM9", "TX9")  # another item's ids never replace the first
        await b.seen(P, "k2", "ITEM2", None)
    async with books("read") as b:
        assert (await b.items(P, ["k1"]))["k1"].payout_item_id == "ITEM1"
        assert await b.keys_of(P, ["TX1", "ITEM2", "TX9", "OTHER"]) == {
            "TX1": ("k1", "ITEM1"),
            "ITEM2": ("k2", "ITEM2"),
        }
        assert await b.keys_of("another", ["TX1"]) == {}


async def test_the_batches_paypal_answered_are_listed_by_when_they_were_made(books: PayPalBooks) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    for batch, key in (("b-1", "k1"), ("b-2", "k2"), ("b-3", "k3")):
        async with books("enter") as b:
            await b.enter(P, batch, [item(key, batch)], body(batch))
    async with books("answered") as b:
        await b.answered(P, "b-1", "PB-1")
        await b.answered(P, "b-3", "PB-3")  # b-2 was never answered
    after = datetime.now(UTC) + timedelta(minutes=1)
    async with books("read") as b:
        assert await b.answered_between(P, before, after) == ["PB-1", "PB-3"]
        assert await b.answered_between(P, after, after + timedelta(hours=1)) == []
        assert await b.answered_between("another", before, after) == []


async def test_a_unit_of_work_that_fails_leaves_nothing(books: PayPalBooks) -> None:
    with pytest.raises(RuntimeError):
        async with books("enter") as b:
            await b.enter(P, "b-1", [item("k1")], body("b-1"))
            raise RuntimeError("the process died before the commit")
    async with books("read") as b:
        assert await b.items(P, ["k1"]) == {}
        assert await b.batch(P, "b-1") is None
