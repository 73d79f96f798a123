"""Webhook delivery against a real HTTP receiver on loopback: retries with backoff, attempts running out, holding
and releasing in an order, duplicates, the signature asked for at each attempt, an endpoint gone."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from prizeflow_emulator_kit.webhooks import (
    Deliverer,
    Delivery,
    DeliveryConfig,
    DeliveryState,
    ReleaseOrder,
    Target,
)

pytestmark = pytest.mark.integration  # a receiver listens on loopback


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (then 200), recording what came and when."""

    statuses: list[int] = field(default_factory=list)
    got: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((asyncio.get_running_loop().time(), dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    def events(self) -> list[str]:
        return [json.loads(body)["id"] for _, _, body in self.got]

    async def wait_for(self, n: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while len(self.got) < n:
                await asyncio.sleep(0.01)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = TestServer(app)
    await server.start_server()
    rec.url = str(server.make_url("/hook"))
    try:
        yield rec
    finally:
        await server.close()


def signed_to(url: str | None) -> Callable[[Delivery, int], Target | None]:
    def address(delivery: Delivery, timestamp: int) -> Target | None:
        return None if url is None else Target(url, {"X-Sig": f"{timestamp}:{len(delivery.body)}"})

    return address


def body(event_id: str) -> bytes:
    return json.dumps({"id": event_id}).encode()


async def settled(deliverer: Deliverer, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while any(d.state in (DeliveryState.QUEUED, DeliveryState.RETRYING) for d in deliverer.deliveries):
            await asyncio.sleep(0.01)


async def test_a_refused_delivery_is_retried_with_a_doubling_delay_until_it_is_taken(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 500]
    successes: list[str] = []
    deliverer = Deliverer(
        DeliveryConfig(retry_base_ms=100, max_attempts=5),
        signed_to(receiver.url),
        clock=lambda: 1_750_000_000,
        on_success=lambda d: successes.append(d.event_id),
    )
    try:
        (delivery,) = deliverer.submit("evt_1", "thing.happened", body("evt_1"), {"we_1": receiver.url})
        await receiver.wait_for(4)
        await settled(deliverer)
        times = [at for at, _, _ in receiver.got]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        for n, gap in enumerate(gaps):
            assert gap >= 0.1 * 2**n * 0.95, gaps  # 100 ms, 200 ms, 400 ms at least (a loaded machine is later)
        assert [a.status for a in delivery.attempts] == [500, 503, 500, 200]
        assert delivery.state is DeliveryState.SUCCEEDED
        assert successes == ["evt_1"]
        assert receiver.got[0][1]["X-Sig"] == f"1750000000:{len(body('evt_1'))}"
        assert [d.to_json()["state"] for d in deliverer.deliveries] == ["succeeded"]
    finally:
        await deliverer.close()


async def test_a_delivery_fails_once_its_attempts_run_out(receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    deliverer = Deliverer(DeliveryConfig(retry_base_ms=10, max_attempts=3), signed_to(receiver.url))
    try:
        (delivery,) = deliverer.submit("evt_2", "t", body("evt_2"), {"we_1": receiver.url})
        await settled(deliverer)
        assert delivery.state is DeliveryState.FAILED
        assert len(delivery.attempts) == 3
        assert len(receiver.got) == 3
    finally:
        await deliverer.close()


async def test_a_connection_refused_is_an_attempt_with_its_error() -> None:
    deliverer = Deliverer(DeliveryConfig(retry_base_ms=10, max_attempts=2), signed_to("http://127.0.0.1:9/nobody"))
    try:
        (delivery,) = deliverer.submit("evt_3", "t", body("evt_3"), {"we_1": "http://127.0.0.1:9/nobody"})
        await settled(deliverer)
        assert delivery.state is DeliveryState.FAILED
        assert [a.status for a in delivery.attempts] == [None, None]
        assert all(a.error for a in delivery.attempts)
    finally:
        await deliverer.close()


@pytest.mark.parametrize("order", list(ReleaseOrder))
async def test_held_deliveries_are_released_in_the_order_asked(receiver: Receiver, order: ReleaseOrder) -> None:
    deliverer = Deliverer(DeliveryConfig(hold=True), signed_to(receiver.url), rng=random.Random(3))
    try:
        ids = [f"evt_{n}" for n in range(6)]
        for event_id in ids:
            deliverer.submit(event_id, "t", body(event_id), {"we_1": receiver.url})
        await asyncio.sleep(0.05)
        assert receiver.got == []
        assert [d["state"] for d in deliverer.query({"state": "held"})] == ["held"] * 6
        (by_hand,) = deliverer.submit("evt_x", "t", body("evt_x"), {"we_1": receiver.url}, copies=1, hold=False)
        assert by_hand.state is DeliveryState.QUEUED
        await receiver.wait_for(1)  # a redelivery asked for by hand goes now, holding or not
        assert receiver.events() == ["evt_x"]
        receiver.got.clear()
        released = deliverer.release(order, seed=11)
        assert deliverer.config.hold is False
        await receiver.wait_for(6)
        expected = list(ids)
        if order is ReleaseOrder.REVERSE:
            expected.reverse()
        elif order is ReleaseOrder.SHUFFLE:
            random.Random(11).shuffle(expected)
            assert expected != ids
        assert receiver.events() == expected == [d.event_id for d in released]
    finally:
        await deliverer.close()


async def test_each_event_goes_as_many_times_as_asked_to_each_endpoint(receiver: Receiver) -> None:
    deliverer = Deliverer(DeliveryConfig(duplicates=2), signed_to(receiver.url))
    try:
        made = deliverer.submit("evt_d", "t", body("evt_d"), {"we_1": receiver.url, "we_2": receiver.url})
        assert sorted((d.endpoint_id, d.copy) for d in made) == [("we_1", 0), ("we_1", 1), ("we_2", 0), ("we_2", 1)]
        assert len(deliverer.submit("evt_e", "t", body("evt_e"), {"we_1": receiver.url}, copies=1)) == 1
        await receiver.wait_for(5)
        await settled(deliverer)
        assert sorted(receiver.events()) == ["evt_d"] * 4 + ["evt_e"]
        assert len(deliverer.attempts()) == 5
    finally:
        await deliverer.close()


async def test_a_stale_offset_is_fixed_when_the_event_is_recorded_and_signed_at_each_attempt(
    receiver: Receiver,
) -> None:
    deliverer = Deliverer(
        DeliveryConfig(timestamp_offset_s=-600, hold=True), signed_to(receiver.url), clock=lambda: 1000
    )
    try:
        deliverer.submit("evt_s", "t", body("evt_s"), {"we_1": receiver.url})
        deliverer.config.timestamp_offset_s = 0
        deliverer.submit("evt_t", "t", body("evt_t"), {"we_1": receiver.url})
        deliverer.release()
        await receiver.wait_for(2)
        assert [headers["X-Sig"].split(":")[0] for _, headers, _ in receiver.got] == ["400", "1000"]
    finally:
        await deliverer.close()


async def test_an_endpoint_gone_fails_the_delivery_and_a_reset_forgets_everything(receiver: Receiver) -> None:
    deliverer = Deliverer(DeliveryConfig(), signed_to(None))
    try:
        (gone,) = deliverer.submit("evt_g", "t", body("evt_g"), {"we_x": "http://was.here"})
        await settled(deliverer)
        assert gone.state is DeliveryState.FAILED
        assert gone.attempts[0].error == "endpoint gone"
        deliverer.config.hold = True
        deliverer.submit("evt_h", "t", body("evt_h"), {"we_x": "http://was.here"})
        deliverer.reset()
        assert (list(deliverer.deliveries), deliverer.held) == ([], [])
    finally:
        await deliverer.close()


def test_deliveries_recorded_before_the_loop_runs_wait_for_start() -> None:
    deliverer = Deliverer(DeliveryConfig(), signed_to("http://127.0.0.1:9/"))
    deliverer.submit("evt_b", "t", body("evt_b"), {"we_1": "http://127.0.0.1:9/"})
    assert [d.state for d in deliverer._before_start] == [DeliveryState.QUEUED]


def test_the_config_is_checked_before_any_change_is_applied() -> None:
    config = DeliveryConfig()
    config.update({"hold": True, "duplicates": 3, "timestamp_offset_s": -5})
    assert config.to_json()["duplicates"] == 3
    for bad in ({"nonsense": 1}, {"hold": 1}, {"duplicates": 0}, {"max_attempts": True}, {"retry_base_ms": "1"}):
        with pytest.raises(ValueError):
            config.update({"duplicates": 9, **bad})
        assert config.duplicates == 3
