"""`SanctionsListStore` on PostgreSQL (migration 0020): a version and its entries in one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_compliance.application.sanctions import ListVersion
from prizeflow_compliance.domain.sanctions import EntryKind, ListEntry
from prizeflow_contracts.envelope import Envelope
from prizeflow_runtime.outbox import add_events

BATCH = 5000  # entries per INSERT (arrays unnested server-side)

_IS_NEWEST = text(
    "SELECT sha256 = :sha FROM sanctions_list_versions WHERE source = :source ORDER BY fetched_at DESC LIMIT 1"
)

_SAVE_VERSION = text(
    """
    INSERT INTO sanctions_list_versions (source, version, published_at, fetched_at, sha256, entries)
    VALUES (:source, :version, :published_at, :fetched_at, :sha256, :entries)
    ON CONFLICT (source, version) DO NOTHING
    RETURNING true AS inserted
    """
)

_SAVE_ENTRIES = text(
    """
    INSERT INTO sanctions_list_entries (source, version, uid, kind, names, addresses, birth_dates)
    SELECT :source, :version, e.uid, e.kind,
           ARRAY(SELECT jsonb_array_elements_text(CAST(e.names AS jsonb))),
           ARRAY(SELECT jsonb_array_elements_text(CAST(e.addresses AS jsonb))),
           ARRAY(SELECT jsonb_array_elements_text(CAST(e.births AS jsonb)))
    FROM unnest(CAST(:uids AS text[]), CAST(:kinds AS text[]), CAST(:names AS text[]), CAST(:addresses AS text[]),
                CAST(:births AS text[])) AS e(uid, kind, names, addresses, births)
    """
)

_PRUNE = text(
    """
    DELETE FROM sanctions_list_versions
    WHERE source = :source AND version NOT IN (
        SELECT version FROM sanctions_list_versions WHERE source = :source ORDER BY fetched_at DESC LIMIT :keep
    )
    """
)

_LATEST = text(
    """
    SELECT DISTINCT ON (source) source, version, published_at, fetched_at, sha256, entries
    FROM sanctions_list_versions ORDER BY source, fetched_at DESC
    """
)

_ENTRIES = text(
    "SELECT uid, kind, names, addresses, birth_dates FROM sanctions_list_entries "
    "WHERE source = :source AND version = :version ORDER BY uid"
)


class SqlSanctionsLists:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def is_newest(self, source: str, sha256: str) -> bool:
        async with self.sessions() as session:
            return bool((await session.execute(_IS_NEWEST, {"source": source, "sha": sha256})).scalar())

    async def save(self, version: ListVersion, entries: Sequence[ListEntry], *, keep: int) -> bool:
        key = {"source": version.source, "version": version.version}
        async with self.sessions() as session, session.begin():
            inserted = (
                await session.execute(
                    _SAVE_VERSION,
                    {
                        **key,
                        "published_at": version.published_at,
                        "fetched_at": version.fetched_at,
                        "sha256": version.sha256,
                        "entries": version.entries,
                    },
                )
            ).scalar_one_or_none()
            if inserted:
                for start in range(0, len(entries), BATCH):
                    await session.execute(_SAVE_ENTRIES, {**key, **_columns(entries[start : start + BATCH])})
            await session.execute(_PRUNE, {"source": version.source, "keep": keep})
        return bool(inserted)

    async def latest(self) -> list[ListVersion]:
        async with self.sessions() as session:
            rows = (await session.execute(_LATEST)).mappings().all()
        return [ListVersion(**dict(row)) for row in rows]

    async def entries(self, source: str, version: str) -> list[ListEntry]:
        async with self.sessions() as session:
            rows = (await session.execute(_ENTRIES, {"source": source, "version": version})).all()
        return [
            ListEntry(
                uid=uid, kind=EntryKind(kind), names=tuple(names), addresses=tuple(addresses), birth_dates=tuple(births)
            )
            for uid, kind, names, addresses, births in rows
        ]

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        async with self.sessions() as session, session.begin():
            await add_events(session, events)


def _columns(entries: Sequence[ListEntry]) -> dict[str, list[str]]:
    return {
        "uids": [e.uid for e in entries],
        "kinds": [e.kind.value for e in entries],
        "names": [json.dumps(list(e.names)) for e in entries],
        "addresses": [json.dumps(list(e.addresses)) for e in entries],
        "births": [json.dumps(list(e.birth_dates)) for e in entries],
    }


__all__ = ["SqlSanctionsLists"]
