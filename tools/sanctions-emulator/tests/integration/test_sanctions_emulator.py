"""The emulated publishers serve each list at its path in its official format (what payouts' parsers read), and a
published entry makes a new version: another digest, a later date, the entry in it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from prizeflow_compliance.domain.sanctions_formats import parse_list
from prizeflow_sanctions_emulator.server import KNOWN, PATHS, create_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    runner = web.AppRunner(create_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        await runner.cleanup()


async def fetch(client: httpx.AsyncClient, source: str) -> bytes:
    response = await client.get(PATHS[source])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    return response.content


async def test_every_list_is_served_in_its_format(client: httpx.AsyncClient) -> None:
    counts = {}
    for source in PATHS:
        counts[source] = len(parse_list(source, await fetch(client, source)).entries)
    assert counts == {"ofac_sdn": 180, "ofac_consolidated": 80, "eu": 150, "un": 120}
    sdn = parse_list("ofac_sdn", await fetch(client, "ofac_sdn"))
    addresses = {a.split(":", 1)[1] for e in sdn.entries for a in e.addresses}
    assert set(KNOWN.values()) <= addresses
    health = await client.get("/health/ready")
    assert health.status_code == 200


@pytest.mark.parametrize("source", list(PATHS))
async def test_a_published_entry_is_a_new_version(client: httpx.AsyncClient, source: str) -> None:
    before = parse_list(source, await fetch(client, source))
    entry: dict[str, object] = {"name": "Quorvath Ellisande", "aliases": ["Q. Ellisande"], "birth_date": "1969-08-07"}
    if source.startswith("ofac"):
        entry["addresses"] = [{"currency": "XBT", "address": "bc1qfictionalfictionalfictional0000000"}]
    created = await client.post(f"/_emulator/lists/{source}/entries", json=entry)
    assert created.status_code == 201
    uid = created.json()["uid"]
    after = parse_list(source, await fetch(client, source))
    assert after.published_at > before.published_at
    assert len(after.entries) == len(before.entries) + 1
    added = next(e for e in after.entries if e.uid == uid)
    assert added.names[0] == "Quorvath Ellisande"
    assert "1969-08-07" in added.birth_dates
    if source.startswith("ofac"):
        assert added.addresses == ("XBT:bc1qfictionalfictionalfictional0000000",)


async def test_a_bad_entry_is_refused(client: httpx.AsyncClient) -> None:
    assert (await client.post("/_emulator/lists/un/entries", json={"name": ""})).status_code == 400
    assert (
        await client.post("/_emulator/lists/un/entries", json={"name": "A B", "birth_date": "x"})
    ).status_code == 400
    assert (await client.post("/_emulator/lists/nobody/entries", json={"name": "A B"})).status_code == 404


async def test_a_file_is_served_byte_for_byte_until_the_next_entry(client: httpx.AsyncClient) -> None:
    """What a compromised publisher or cache could serve (another encoding, a DTD): the bytes as they were put."""
    data = '<?xml version="1.0" encoding="UTF-16"?><sdnList/>'.encode("utf-16-le")
    put = await client.put("/_emulator/lists/ofac_sdn/file", content=data)
    assert put.status_code == 201
    assert await fetch(client, "ofac_sdn") == data
    assert (await client.put("/_emulator/lists/nobody/file", content=data)).status_code == 404
    await client.post("/_emulator/lists/ofac_sdn/entries", json={"name": "Quorvath Ellisande"})
    assert len(parse_list("ofac_sdn", await fetch(client, "ofac_sdn")).entries) == 181


async def test_a_publisher_fails_on_purpose_then_serves_again(client: httpx.AsyncClient) -> None:
    """The kit's faults on a list download: down (503) for the next two, then served; the request log shows it."""
    armed = await client.post(
        "/_emulator/faults", json={"kind": "server_error", "path_prefix": PATHS["un"], "count": 2}
    )
    assert armed.status_code == 200
    assert [(await client.get(PATHS["un"])).status_code for _ in range(3)] == [503, 503, 200]
    assert (await client.get(PATHS["eu"])).status_code == 200  # only the list the rule names
    await client.post("/_emulator/faults", json={"kind": "connection_reset", "path_prefix": PATHS["eu"]})
    with pytest.raises(httpx.TransportError):
        await client.get(PATHS["eu"])
    logged = (await client.get("/_emulator/requests", params={"path": PATHS["un"]})).json()["requests"]
    assert [(r["status"], r["fault"]) for r in logged] == [(503, "server_error"), (503, "server_error"), (200, None)]
    assert (await client.post("/_emulator/faults", json={"kind": "ledger_delay"})).status_code == 400
