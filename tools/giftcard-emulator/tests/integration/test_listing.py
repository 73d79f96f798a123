"""The orders listing and the discrepancies endpoint over HTTP: Tremendous' paging and filters, validation errors in
its shape, and `POST /_emulator/discrepancies` answering the line it made."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from prizeflow_testkit.giftcard import GiftCardAdmin, GiftCardEmulator, giftcard_emulator

pytestmark = pytest.mark.integration


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


async def order(api: httpx.AsyncClient, external_id: str) -> dict[str, object]:
    body = {
        "external_id": external_id,
        "payment": {"funding_source_id": "balance"},
        "reward": {
            "value": {"denomination": 10, "currency_code": "USD"},
            "delivery": {"method": "EMAIL"},
            "recipient": {"name": "Player", "email": "ann@example.com"},
            "products": ["OKMHM2X2OHYV"],
        },
    }
    resp = await api.post("/orders", content=json.dumps(body))
    assert resp.status_code == 201, resp.text
    created: dict[str, object] = resp.json()["order"]
    return created


async def test_orders_page_newest_first_within_a_created_at_range(admin: GiftCardAdmin, api: httpx.AsyncClient) -> None:
    made = [await order(api, f"po-{n}") for n in range(3)]
    since = str(made[0]["created_at"])
    first = (await api.get("/orders", params={"created_at[gte]": since, "limit": 2})).json()
    assert first["total_count"] == 3
    assert [o["external_id"] for o in first["orders"]] == ["po-2", "po-1"]
    rest = (await api.get("/orders", params={"created_at[gte]": since, "limit": 2, "offset": 2})).json()
    assert [o["id"] for o in rest["orders"]] == [made[0]["id"]]
    before = (await api.get("/orders", params={"created_at[lte]": "2000-01-01T00:00:00Z"})).json()
    assert before == {"orders": [], "total_count": 0}
    refused = await api.get("/orders", params={"limit": 500})
    assert refused.status_code == 400
    assert "limit" in refused.json()["errors"]["payload"]


async def test_discrepancies_answer_the_line_they_made_and_refuse_what_they_cannot(
    emulator: GiftCardEmulator, admin: GiftCardAdmin, api: httpx.AsyncClient
) -> None:
    made = await order(api, "po-1")
    async with httpx.AsyncClient(base_url=emulator.url + "/_emulator", timeout=5) as http:
        fee = await http.post("/discrepancies", json={"kind": "fee", "reference": "po-1", "amount": 50})
        assert (fee.status_code, fee.json()) == (201, {"line_id": f"{made['id']}:fee"})
        assert (
            await http.post("/discrepancies", json={"kind": "fee", "reference": "po-9", "amount": 1})
        ).status_code == 404
        assert (await http.post("/discrepancies", json={"kind": "teleport", "reference": "po-1"})).status_code == 400
        assert (
            await http.post("/discrepancies", json={"kind": "fee", "reference": "po-1", "amount": "1"})
        ).status_code == 400
        missing = await http.post("/discrepancies", json={"kind": "missing", "reference": "po-1"})
        assert (missing.status_code, missing.json()) == (201, {"line_id": None})
    assert (await api.get("/orders", params={"external_id": "po-1"})).json() == {"orders": [], "total_count": 0}
