"""Sanctions lists on real PostgreSQL: a refresh stores each new file once (one transaction), every replica loads
the newest stored version, a file that cannot be trusted (malformed, oversized) changes nothing, and old versions
are pruned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from prizeflow_compliance.adapters.sanctions import HttpListSource, SqlSanctionsLists
from prizeflow_compliance.application.ports import Identity
from prizeflow_compliance.application.sanctions import (
    DEFAULT_MAX_BYTES,
    KEEP_VERSIONS,
    ListFetchError,
    ListsScreen,
    RefreshSanctionsLists,
)
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_payouts.bootstrap import build, compose
from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_sanctions_emulator.server import KNOWN, PATHS, Emulator, create_app
from prizeflow_testkit import eventually, provision_test_topics, wait_ready
from prizeflow_testkit.db import fetch
from prizeflow_testkit.payouts import providers_file, running, settings_for, token
from prizeflow_testkit.sanctions import sanctions_emulator

pytestmark = pytest.mark.integration

SOURCES = ("ofac_sdn", "ofac_consolidated", "eu", "un")
URLS = {s: f"http://lists.test{PATHS[s]}" for s in SOURCES}


class EmulatedPublishers:
    """`ListSource` over the emulator's state (the files it serves), with a fault per URL."""

    def __init__(self) -> None:
        self.emulator = Emulator()
        self.replace: dict[str, bytes] = {}

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        source = next(s for s, u in URLS.items() if u == url)
        data = self.replace.get(source, self.emulator.lists[source].body.encode())
        if len(data) > max_bytes:
            raise ListFetchError(f"more than {max_bytes} bytes")
        return data


@pytest.fixture
async def store(db: str) -> AsyncIterator[SqlSanctionsLists]:
    engine = create_engine(db)
    try:
        yield SqlSanctionsLists(session_factory(engine))
    finally:
        await engine.dispose()


def replica(
    store: SqlSanctionsLists, publishers: EmulatedPublishers, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> RefreshSanctionsLists:
    screen = ListsScreen(SOURCES, threshold=920)
    return RefreshSanctionsLists(urls=URLS, source=publishers, store=store, screen=screen, max_bytes=max_bytes)


async def stored(store: SqlSanctionsLists) -> list[tuple[str, str, int, int]]:
    async with store.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT v.source, v.version, v.entries, (SELECT count(*) FROM sanctions_list_entries e "
                "WHERE e.source = v.source AND e.version = v.version) FROM sanctions_list_versions v "
                "ORDER BY v.source, v.fetched_at"
            )
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_refresh_stores_once_and_every_replica_loads_the_newest(store: SqlSanctionsLists) -> None:
    publishers = EmulatedPublishers()
    first = replica(store, publishers)
    assert first.screen.missing_sources == SOURCES
    outcomes = await first.run()
    assert [o.outcome for o in outcomes] == ["loaded"] * 4
    assert first.screen.ready
    rows = await stored(store)
    assert [(s, n, c) for s, _, n, c in rows] == [
        ("eu", 150, 150), ("ofac_consolidated", 80, 80), ("ofac_sdn", 180, 180), ("un", 120, 120)
    ]  # fmt: skip
    assert [o.outcome for o in await first.run()] == ["unchanged"] * 4
    stellar = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=KNOWN["stellar_account"])
    assert first.screen.screen_destination(stellar).hit

    # The publisher adds a party: a new version, stored by one replica, loaded by another from the database.
    eth = "0x" + "5e" * 20
    publishers.emulator.publish(
        "ofac_sdn",
        {
            "name": "Zorander Quillfeather",
            "addresses": [{"currency": "ETH", "address": eth}],
            "birth_date": "1971-03-04",
        },
    )
    before = first.screen.versions()["ofac_sdn"]
    assert [o.outcome for o in await first.run()] == ["loaded", "unchanged", "unchanged", "unchanged"]
    after = first.screen.versions()["ofac_sdn"]
    assert after != before
    assert after.startswith("2026-11-22+")
    destination = PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=eth.upper().replace("0X", "0x"))
    result = first.screen.screen_destination(destination)
    assert [(m.source, m.kind, m.entry_name) for m in result.matches] == [
        ("ofac_sdn", "address", "Zorander Quillfeather")
    ]
    assert result.versions["ofac_sdn"] == after

    second = replica(store, EmulatedPublishers())  # its publishers still serve the old file: it loads, never stores
    await second.load()
    assert second.screen.versions() == first.screen.versions()
    # Its own pass fetches that older file: refused (never stored as the newest again), nothing rolls back.
    by_source = {o.source: o.outcome for o in await second.run()}
    assert by_source["ofac_sdn"] == "error"
    assert second.screen.versions() == first.screen.versions()
    await first.load()
    assert first.screen.versions()["ofac_sdn"] == after
    person = second.screen.screen_person(Identity(full_name="Quillfeather Zorander"))
    assert [m.entry_uid for m in person.matches if m.source == "ofac_sdn"]


async def test_an_untrustworthy_file_changes_nothing(store: SqlSanctionsLists) -> None:
    publishers = EmulatedPublishers()
    refresh = replica(store, publishers, max_bytes=1_000_000)
    await refresh.run()
    loaded, rows = dict(refresh.screen.versions()), await stored(store)
    good = publishers.emulator.lists["un"].body.encode()
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><CONSOLIDATED_LIST dateGenerated="2026-12-01"/>'
    for bad in (good[: len(good) // 2], good.replace(b"<DATAID>", b"<DATAID>x", 1) + b"<trailing/>", bomb, good * 20):
        publishers.replace["un"] = bad
        outcomes = {o.source: o for o in await refresh.run()}
        assert outcomes["un"].outcome == "error"
        assert {o.outcome for s, o in outcomes.items() if s != "un"} == {"unchanged"}
        assert await stored(store) == rows
        assert refresh.screen.versions() == loaded


async def test_old_versions_are_pruned(store: SqlSanctionsLists) -> None:
    publishers = EmulatedPublishers()
    refresh = replica(store, publishers)
    await refresh.run()
    for n in range(KEEP_VERSIONS + 1):
        publishers.emulator.publish("eu", {"name": f"Fictional Person Number{n}"})
        await refresh.run()
    eu = [r for r in await stored(store) if r[0] == "eu"]
    assert len(eu) == KEEP_VERSIONS
    assert eu[-1][1] == refresh.screen.versions()["eu"]
    assert eu[-1][2] == eu[-1][3] == 150 + KEEP_VERSIONS + 1


async def test_admin_api_lists_and_an_audited_refresh(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """The API process loads the lists at start (its schedule), shows them to staff, and refreshes on an admin's
    word only, audited."""
    sources = ",".join(f"{s}={u}" for s, u in URLS.items())
    settings = settings_for(
        db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix, payouts_sanctions_sources=sources
    )
    await provision_test_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_suffix, settings.kafka_topics)
    parts = compose(settings)
    assert parts.sanctions is not None
    publishers = EmulatedPublishers()
    parts.sanctions.refresh.list_source = publishers
    async with AsyncTestClient(build(settings, parts=parts)) as client:
        await wait_ready(client)
        ops = token(settings, "olga", "ops")

        async def lists() -> list[dict[str, Any]]:
            answer = await client.get("/v1/admin/compliance/screening/lists", headers=ops)
            assert answer.status_code == 200
            body: list[dict[str, Any]] = answer.json()
            return body

        shown = await eventually(lists, lambda rows: all(r["version"] for r in rows))
        assert {r["source"]: r["entries"] for r in shown} == {
            "ofac_sdn": 180, "ofac_consolidated": 80, "eu": 150, "un": 120
        }  # fmt: skip
        assert (
            await client.get("/v1/admin/compliance/screening/lists", headers=token(settings, "p", "player"))
        ).status_code == 403
        refused = await client.post("/v1/admin/compliance/screening/refresh", headers=ops)
        assert refused.status_code == 403
        publishers.emulator.publish("un", {"name": "Fictional Newcomer Entry"})
        refreshed = await client.post(
            "/v1/admin/compliance/screening/refresh",
            headers={**token(settings, "adam", "admin"), "X-Correlation-Id": "cr-sanctions-1"},
        )
        assert refreshed.status_code == 200
        un = next(r for r in refreshed.json() if r["source"] == "un")
        assert un["entries"] == 121
        assert un["version"] != next(r for r in shown if r["source"] == "un")["version"]
    audit = await fetch(
        db, "SELECT actor, action, target_type FROM admin_audit WHERE action = 'sanctions_lists.refresh'"
    )
    assert [tuple(r) for r in audit] == [("adam", "sanctions_lists.refresh", "sanctions_lists")]


async def test_http_source_reads_the_emulator_and_caps_the_size() -> None:
    runner = web.AppRunner(create_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        source = HttpListSource(timeout_s=10)
        data = await source.fetch(base + PATHS["un"], max_bytes=DEFAULT_MAX_BYTES)
        assert data.startswith(b"<?xml")
        with pytest.raises(ListFetchError, match="more than"):
            await source.fetch(base + PATHS["eu"], max_bytes=10_000)
        with pytest.raises(ListFetchError, match="HTTP 404"):
            await source.fetch(base + "/nowhere.xml", max_bytes=DEFAULT_MAX_BYTES)
    finally:
        await runner.cleanup()


async def test_http_source_follows_redirects_only_to_the_hosts_it_is_given() -> None:
    """A redirect on the publisher's own host is followed; to another host only when PAYOUTS_SANCTIONS_REDIRECT_HOSTS
    names it: on Kubernetes that is the allow-list the egress proxy enforces, so the refusal names the host to add."""
    lists = create_app()

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(str(request.url.with_path(PATHS["un"]).with_host(request.query["to"])))

    lists.router.add_get("/moved.xml", moved)
    runner = web.AppRunner(lists)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        same_host = f"http://127.0.0.1:{port}/moved.xml?to=127.0.0.1"
        other_host = f"http://127.0.0.1:{port}/moved.xml?to=localhost"
        assert (await HttpListSource(timeout_s=10).fetch(same_host, max_bytes=DEFAULT_MAX_BYTES)).startswith(b"<?xml")
        with pytest.raises(ListFetchError, match="redirected to localhost, which is not in PAYOUTS_SANCTIONS_REDIRECT"):
            await HttpListSource(timeout_s=10).fetch(other_host, max_bytes=DEFAULT_MAX_BYTES)
        allowed = HttpListSource(timeout_s=10, redirect_hosts=["localhost"])
        assert (await allowed.fetch(other_host, max_bytes=DEFAULT_MAX_BYTES)).startswith(b"<?xml")
    finally:
        await runner.cleanup()


async def test_an_older_file_of_the_same_day_served_again_is_refused_as_a_rollback(store: SqlSanctionsLists) -> None:
    """The publisher (or a cache in between) serves file A, then B of the same day, then A again: A is not made the
    newest again (every verified player would go stale, and those listed in B since would come out clear): refused,
    counted as an error, B stays the newest and loaded."""
    publishers = EmulatedPublishers()
    refresh = replica(store, publishers)
    await refresh.run()
    first = publishers.emulator.lists["un"].body.encode()
    publishers.replace["un"] = first + b"\n"  # another file (another sha256), the same publication date
    assert {o.source: o.outcome for o in await refresh.run()}["un"] == "loaded"
    newest = refresh.screen.versions()["un"]
    days = {v.partition("+")[0] for s, v, _, _ in await stored(store) if s == "un"}
    assert len(days) == 1  # both files: one publication day
    rows = await stored(store)
    publishers.replace["un"] = first  # the older file again
    outcome = {o.source: o for o in await refresh.run()}["un"]
    assert outcome.outcome == "error"
    assert "stored before and is not the newest" in outcome.detail
    assert await stored(store) == rows
    assert refresh.screen.versions()["un"] == newest
    other = replica(store, EmulatedPublishers())  # a replica starting now loads B, the newest
    await other.load()
    assert other.screen.versions()["un"] == newest


def smuggling_file(codec: str) -> bytes:
    """Issue 43: an OFAC-shaped file, published after the fixture, declaring an entity that the entry uses, encoded
    UTF-16 without a byte-order mark, so its bytes hold no ASCII `<!DOCTYPE` or `<!ENTITY`."""
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        '<!DOCTYPE sdnList [<!ENTITY who "Smuggled Entity Name">]>'
        '<sdnList xmlns="http://tempuri.org/sdnList.xsd"><publshInformation><Publish_Date>12/24/2026</Publish_Date>'
        "</publshInformation><sdnEntry><uid>99001</uid><lastName>&who;</lastName><sdnType>Entity</sdnType>"
        "</sdnEntry></sdnList>"
    )
    data = text.encode(codec)
    assert b"<!DOCTYPE" not in data
    assert b"<!ENTITY" not in data
    return data


async def test_a_utf16_list_declaring_an_entity_is_refused_and_the_stored_version_stays(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """The emulator (a process) serves the file; the payouts API process fetches it over HTTP on an admin's refresh:
    refused (counted as an error), nothing stored, the version it had stays loaded and the newest."""
    with sanctions_emulator(tmp_path / "sanctions.log") as emulator:
        settings = settings_for(
            db,
            kafka_bootstrap,
            providers_file(tmp_path),
            topic_suffix=topic_suffix,
            payouts_sanctions_sources=emulator.sources(PATHS),
            payouts_worker_enabled=False,
        )
        async with running(settings) as (_parts, client), emulator.admin() as publisher:
            ops, admin = token(settings, "olga", "ops"), token(settings, "adam", "admin")

            async def lists() -> dict[str, str | None]:
                answer = await client.get("/v1/admin/compliance/screening/lists", headers=ops)
                assert answer.status_code == 200
                return {r["source"]: r["version"] for r in answer.json()}

            async def refused() -> float:
                """The refusals of ofac_sdn counted on /metrics."""
                exposition = (await client.get("/metrics")).text
                return sum(
                    s.value
                    for family in text_string_to_metric_families(exposition)
                    for s in family.samples
                    if s.name == "prizeflow_payouts_sanctions_list_refreshes_total"
                    and s.labels == {"source": "ofac_sdn", "outcome": "error"}
                )

            loaded = await eventually(lists, lambda versions: all(versions.values()), timeout=60)
            rows = await fetch(db, "SELECT source, version, sha256 FROM sanctions_list_versions ORDER BY source")
            for codec in ("utf-16-le", "utf-16-be"):
                before = await refused()
                await publisher.serve_file("ofac_sdn", smuggling_file(codec))
                refreshed = await client.post("/v1/admin/compliance/screening/refresh", headers=admin)
                assert refreshed.status_code == 200, refreshed.text
                assert {r["source"]: r["version"] for r in refreshed.json()} == loaded
                assert await refused() == before + 1
                assert (
                    await fetch(db, "SELECT source, version, sha256 FROM sanctions_list_versions ORDER BY source")
                    == rows
                )
                smuggled = await fetch(
                    db, "SELECT count(*) AS n FROM sanctions_list_entries WHERE 'Smuggled Entity Name' = ANY(names)"
                )
                assert smuggled[0]["n"] == 0
