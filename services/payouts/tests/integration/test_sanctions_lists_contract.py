"""The sanctions lists' store contract: each case runs on the in-memory store the unit tests use (`tests/support`)
and on `SqlSanctionsLists` on a migrated database (migration 0020). A fake that drifts from its SQL fails here."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from compliance_fakes import MemorySanctionsLists

from prizeflow_compliance.adapters.sanctions import SqlSanctionsLists
from prizeflow_compliance.application.sanctions import ListVersion, SanctionsListStore
from prizeflow_compliance.domain.sanctions import EntryKind, ListEntry
from prizeflow_runtime.db import create_engine, session_factory

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest, db: str) -> AsyncIterator[SanctionsListStore]:
    if request.param == "memory":
        yield MemorySanctionsLists()
        return
    engine = create_engine(db, pool_size=2)
    try:
        yield SqlSanctionsLists(session_factory(engine))
    finally:
        await engine.dispose()


def version(name: str, *, fetched: int, source: str = "ofac_sdn", sha: str | None = None) -> ListVersion:
    """A version fetched `fetched` hours after T0."""
    at = T0 + timedelta(hours=fetched)
    digest = hashlib.sha256((sha or f"{source}/{name}").encode()).hexdigest()
    return ListVersion(source, name, at - timedelta(hours=1), at, digest, 2)


def entries(*uids: str) -> list[ListEntry]:
    return [
        ListEntry(uid, EntryKind.INDIVIDUAL, (f"Listed {uid}", f"alias {uid}"), (f"XBT:1{uid}",), ("1970-01",))
        for uid in uids
    ]


async def test_a_saved_version_is_the_newest_and_its_entries_come_back_by_uid(store: SanctionsListStore) -> None:
    v1 = version("2026-11-20", fetched=0)
    assert await store.save(v1, entries("sdn-2", "sdn-1"), keep=3)
    assert await store.is_newest("ofac_sdn", v1.sha256)
    assert not await store.is_newest("ofac_sdn", "0" * 64)
    assert not await store.is_newest("un", v1.sha256)  # a source never stored has no newest
    assert list(await store.latest()) == [v1]
    assert list(await store.entries("ofac_sdn", "2026-11-20")) == entries("sdn-1", "sdn-2")
    assert list(await store.entries("ofac_sdn", "2026-11-19")) == []


async def test_a_version_stored_twice_is_kept_as_it_was(store: SanctionsListStore) -> None:
    v1 = version("2026-11-20", fetched=0)
    assert await store.save(v1, entries("sdn-1"), keep=3)
    again = version("2026-11-20", fetched=5, sha="sha-served-again")
    assert not await store.save(again, entries("sdn-9"), keep=3)
    assert list(await store.latest()) == [v1]  # never made the newest again
    assert list(await store.entries("ofac_sdn", "2026-11-20")) == entries("sdn-1")


async def test_the_newest_is_the_version_fetched_last_per_source(store: SanctionsListStore) -> None:
    older, newer = version("2026-11-20", fetched=0), version("2026-11-21", fetched=24)
    un = version("2026-11-19", fetched=3, source="un")
    assert await store.save(newer, entries("sdn-1"), keep=3)
    assert await store.save(older, entries("sdn-1"), keep=3)  # a late replica's older file: stored, not newest
    assert await store.save(un, entries("un-1"), keep=3)
    assert sorted(await store.latest(), key=lambda v: v.source) == [newer, un]
    assert await store.is_newest("ofac_sdn", newer.sha256)
    assert not await store.is_newest("ofac_sdn", older.sha256)


async def test_each_save_keeps_the_sources_newest_versions_only(store: SanctionsListStore) -> None:
    un = version("2026-11-01", fetched=0, source="un")
    assert await store.save(un, entries("un-1"), keep=2)
    for day in range(3):
        assert await store.save(version(f"2026-11-2{day}", fetched=day + 1), entries(f"sdn-{day}"), keep=2)
    assert list(await store.entries("ofac_sdn", "2026-11-20")) == []  # pruned, with its entries
    assert list(await store.entries("ofac_sdn", "2026-11-21")) == entries("sdn-1")
    assert list(await store.entries("ofac_sdn", "2026-11-22")) == entries("sdn-2")
    assert list(await store.entries("un", "2026-11-01")) == entries("un-1")  # another source's untouched


async def test_one_file_is_stored_as_one_version_only(store: SanctionsListStore) -> None:
    assert await store.save(version("2026-11-20", fetched=0, sha="the file"), entries("sdn-1"), keep=3)
    with pytest.raises(Exception):  # noqa: B017  # UNIQUE (source, sha256): IntegrityError or ValueError
        await store.save(version("2026-11-21", fetched=1, sha="the file"), entries("sdn-1"), keep=3)
    assert [v.version for v in await store.latest()] == ["2026-11-20"]
