"""The emulator as a process (testkit harness): Open Exchange Rates' shapes and errors, exact decimals on the wire,
publications and staleness on the clock, the schedule, faults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from prizeflow_testkit.rates import RatesAdmin, RatesAdminError, RatesEmulator, rates_emulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RatesEmulator]:
    env = {"RATES_EMULATOR_PUBLISH_S": "3600", "RATES_EMULATOR_RATES": "INR:83.4125"}
    with rates_emulator(tmp_path_factory.mktemp("rates") / "emulator.log", env=env) as em:
        yield em


@pytest.fixture
async def admin(emulator: RatesEmulator) -> AsyncIterator[RatesAdmin]:
    async with emulator.admin() as client:
        await client.reset()
        yield client


@pytest.fixture
async def api(emulator: RatesEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emulator.api_base, params={"app_id": emulator.app_id}, timeout=5) as client:
        yield client


def decimals(resp: httpx.Response) -> dict[str, Any]:
    """What a real adapter must do: JSON numbers parsed as Decimal, never float."""
    doc: dict[str, Any] = json.loads(resp.text, parse_float=Decimal, parse_int=Decimal)
    return doc


async def test_latest_is_open_exchange_rates_shape_with_exact_decimals(
    api: httpx.AsyncClient, admin: RatesAdmin
) -> None:
    await admin.set_rates({"INR": "83.123457", "EUR": "0.9"})
    resp = await api.get("/latest.json", params={"symbols": "INR,EUR,XXX"})
    assert resp.status_code == 200
    doc = decimals(resp)
    assert set(doc) == {"disclaimer", "license", "timestamp", "base", "rates"}
    assert doc["base"] == "USD"
    assert doc["rates"] == {"EUR": Decimal("0.9"), "INR": Decimal("83.123457")}
    assert '"INR":83.123457' in resp.text  # written exactly, as a JSON number
    crossed = decimals(await api.get("/latest.json", params={"base": "EUR", "symbols": "INR"}))
    assert crossed["rates"]["INR"] == Decimal("92.359397")  # 83.123457 / 0.9, half-even to six places
    assert (await admin.quote("EUR"))["rates"]["INR"] == "92.359397"


async def test_errors_are_oxr_shaped(emulator: RatesEmulator, api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=emulator.api_base) as anonymous:
        missing = await anonymous.get("/latest.json")
        invalid = await anonymous.get("/latest.json", params={"app_id": "nope"})
        by_header = await anonymous.get("/latest.json", headers={"Authorization": f"Token {emulator.app_id}"})
        listed = await anonymous.get("/currencies.json")  # no App ID needed
    assert missing.json() == {
        "error": True,
        "status": 401,
        "message": "missing_app_id",
        "description": missing.json()["description"],
    }
    assert (invalid.status_code, invalid.json()["message"]) == (401, "invalid_app_id")
    assert by_header.status_code == 200
    assert listed.json()["INR"] == "Indian Rupee"
    bad_base = await api.get("/latest.json", params={"base": "XXX"})
    assert (bad_base.status_code, bad_base.json()["message"]) == (400, "invalid_base")
    assert (await api.get("/nope.json")).json()["message"] == "not_found"


async def test_publications_follow_the_clock_and_a_frozen_provider_goes_stale(
    api: httpx.AsyncClient, admin: RatesAdmin
) -> None:
    first = decimals(await api.get("/latest.json", params={"symbols": "INR"}))
    await admin.move("INR", to="84", publish=False)
    assert decimals(await api.get("/latest.json"))["rates"]["INR"] == Decimal("83.4125")  # not published yet
    await admin.advance(3600)
    published = decimals(await api.get("/latest.json", params={"symbols": "INR"}))
    assert published["rates"]["INR"] == Decimal("84")
    assert published["timestamp"] - first["timestamp"] == 3600
    await admin.freeze()
    await admin.move("INR", by_bps=-100)
    await admin.advance(5 * 3600)
    stale = decimals(await api.get("/latest.json", params={"symbols": "INR"}))
    assert stale == published  # the same snapshot, five hours old by the clock
    with pytest.raises(RatesAdminError) as refused:
        await admin.publish()
    assert refused.value.status == 409
    await admin.freeze(frozen=False)
    fresh = decimals(await api.get("/latest.json", params={"symbols": "INR"}))
    assert fresh["rates"]["INR"] == Decimal("83.16")
    assert fresh["timestamp"] > stale["timestamp"]


async def test_a_scheduled_move_and_end_of_day_rates(api: httpx.AsyncClient, admin: RatesAdmin) -> None:
    await admin.schedule(7200, {"INR": "85.25"})
    assert len((await admin.board())["schedule"]) == 1
    await admin.advance(7200 + 3600)
    latest = decimals(await api.get("/latest.json", params={"symbols": "INR"}))
    assert latest["rates"]["INR"] == Decimal("85.25")
    day = (await admin.board())["published"]["timestamp"]
    today = datetime.fromtimestamp(day, UTC).date().isoformat()
    eod = decimals(await api.get(f"/historical/{today}.json", params={"symbols": "INR"}))
    assert eod["rates"]["INR"] == Decimal("85.25")
    assert (await api.get("/historical/2999-01-01.json")).json()["message"] == "not_available"
    assert (await api.get("/historical/yesterday.json")).json()["message"] == "invalid_date"


async def test_faults_and_the_request_log(api: httpx.AsyncClient, admin: RatesAdmin) -> None:
    await admin.fault("rate_limit")
    limited = await api.get("/latest.json")
    assert (limited.status_code, limited.json()["message"]) == (429, "access_restricted")
    await admin.fault("outage")
    down = await api.get("/latest.json")
    assert down.status_code == 502
    assert down.headers["Content-Type"].startswith("text/html")
    await admin.fault("connection_reset")
    with pytest.raises(httpx.TransportError):
        await api.get("/latest.json")
    assert (await api.get("/latest.json", params={"base": "INR"})).status_code == 200
    logged = await admin.requests(path="/api/latest.json")
    assert [r["fault"] for r in logged] == ["rate_limit", "outage", "connection_reset", None]
    assert logged[-1]["base"] == "INR"


async def test_a_free_plan_only_quotes_against_usd(tmp_path_factory: pytest.TempPathFactory) -> None:
    log = tmp_path_factory.mktemp("rates-free") / "emulator.log"
    with rates_emulator(log, env={"RATES_EMULATOR_PLAN": "free"}) as em:
        async with httpx.AsyncClient(base_url=em.api_base, params={"app_id": em.app_id}) as client:
            refused = await client.get("/latest.json", params={"base": "EUR"})
            assert (refused.status_code, refused.json()["message"]) == (403, "not_allowed")
            assert (await client.get("/latest.json")).status_code == 200
