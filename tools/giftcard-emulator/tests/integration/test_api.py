"""The emulator as a process: auth, the API's JSON, faults, and webhooks signed as Tremendous signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from prizeflow_testkit.giftcard import GiftCardAdmin, GiftCardEmulator, giftcard_emulator
from prizeflow_testkit.stripe import WebhookReceiver

pytestmark = pytest.mark.integration

KEY = "webhook-private-key-for-tests"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiftCardEmulator]:
    with giftcard_emulator(tmp_path_factory.mktemp("giftcard") / "emulator.log") as em:
        yield em


@pytest.fixture
async def admin(emulator: GiftCardEmulator) -> AsyncIterator[GiftCardAdmin]:
    async with emulator.admin() as client:
        await client.reset()
        yield client


@pytest.fixture
async def api(emulator: GiftCardEmulator) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    async with httpx.AsyncClient(base_url=emulator.api_base, headers=headers, timeout=5) as client:
        yield client


def body(external_id: str, email: str = "ann@example.com") -> str:
    return json.dumps(
        {
            "external_id": external_id,
            "payment": {"funding_source_id": "balance"},
            "reward": {
                "value": {"denomination": 25.10, "currency_code": "USD"},
                "delivery": {"method": "EMAIL"},
                "recipient": {"name": "Player", "email": email},
                "products": ["OKMHM2X2OHYV"],
            },
        }
    )


async def test_auth_orders_products_and_rewards(admin: GiftCardAdmin, api: httpx.AsyncClient) -> None:
    anonymous = await api.get("/products", headers={"Authorization": "Bearer nope"})
    assert anonymous.status_code == 401
    assert "errors" in anonymous.json()
    products = (await api.get("/products")).json()["products"]
    assert {"OKMHM2X2OHYV", "ET0ZVETV5ILN"} <= {p["id"] for p in products}
    first = await api.post("/orders", content=body("po-a"))
    again = await api.post("/orders", content=body("po-a"))
    assert (first.status_code, again.status_code) == (201, 201)
    order: dict[str, Any] = first.json()["order"]
    assert again.json()["order"]["id"] == order["id"]
    assert order["status"] == "EXECUTED"
    assert order["rewards"][0]["value"] == {"denomination": 25.1, "currency_code": "USD"}
    found = (await api.get("/orders", params={"external_id": "po-a"})).json()["orders"]
    assert [o["id"] for o in found] == [order["id"]]
    reward = (await api.get(f"/rewards/{order['rewards'][0]['id']}")).json()["reward"]
    assert reward["delivery"]["status"] == "SUCCEEDED"
    assert (await api.get("/orders/NOPE")).status_code == 404
    assert (await admin.stats())["orders_created"] == 1


async def test_faults_timeout_after_success_stores_the_order(admin: GiftCardAdmin, api: httpx.AsyncClient) -> None:
    await admin.fault("rate_limit", method="POST", path_prefix="/api/v2/orders")
    assert (await api.post("/orders", content=body("po-b"))).status_code == 429
    await admin.fault("timeout_after_success", method="POST", path_prefix="/api/v2/orders", delay_ms=2000)
    with pytest.raises(httpx.ReadTimeout):
        await api.post("/orders", content=body("po-b"), timeout=0.3)
    assert len((await api.get("/orders", params={"external_id": "po-b"})).json()["orders"]) == 1
    assert (await admin.stats())["orders_created"] == 1


async def test_webhooks_are_signed_duplicated_and_reordered(admin: GiftCardAdmin, api: httpx.AsyncClient) -> None:
    async with WebhookReceiver("/hooks") as hook:
        await admin.webhooks(url=hook.url, private_key=KEY, duplicates=2, hold=True)
        await api.post("/orders", content=body("po-c"))
        assert await admin.release(reverse=True) == 2
        got = await hook.wait_for(4)
        names = [json.loads(d.body)["event"] for d in got]
        assert names == ["REWARDS.DELIVERY.SUCCEEDED"] * 2 + ["ORDERS.CREATED"] * 2
        for d in got:
            expected = "sha256=" + hmac.new(KEY.encode(), d.body.encode(), hashlib.sha256).hexdigest()
            assert d.headers["Tremendous-Webhook-Signature"] == expected
        assert json.loads(got[0].body)["payload"]["resource"]["type"] == "rewards"
