"""Sanctions lists: fetched on a schedule from their publishers, stored once per new file, loaded by every replica
into its in-memory screen (docs/adr/0012-pay-only-whom-you-may.md).

`RefreshSanctionsLists.run()`: for each configured source, fetch the file (`ListSource`), and when its sha256 is
new, parse it whole and store it (`SanctionsListStore`, one transaction); then load into the screen whatever
version the database holds newest (another replica may have stored it). A file that cannot be fetched, is too
big, cannot be trusted, was published before the stored one, or was stored before and is not the newest (a
rollback, e.g. an older file of the same day served again) changes nothing: the previous version
stays loaded, the refusal is counted and logged.

`RefreshSanctionsLists.catch_up()`: before a gate runs, a process whose loaded versions are not the newest stored ones
loads those first (one small query, at most once a second), so no process gates against older lists than another
has stored (ADR 0012, re-screening).

`ListsScreen` is the `SanctionsScreen` the payout gate calls. Fail closed: while a configured source has never
loaded, `screen_destination` and `screen_person` raise `ScreeningUnavailable`; `missing_sources` names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from prizeflow_compliance.application.ports import (
    Identity,
    ScreeningMatch,
    ScreeningResult,
    ScreeningUnavailable,
)
from prizeflow_compliance.domain.sanctions import (
    SOURCES,
    Hit,
    ListEntry,
    ListIndex,
    SanctionsList,
    list_version,
    screen_destination_in,
)
from prizeflow_compliance.domain.sanctions_formats import ListFormatError, parse_list
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.providers import PayoutDestination
from prizeflow_runtime.audit import admin_action

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 128 * 1024 * 1024  # OFAC's sdn.xml is ~15 MB, the EU file ~25 MB
KEEP_VERSIONS = 3  # versions kept per source (the older ones are pruned); decisions name theirs in text


class ListFetchError(Exception):
    """The publisher gave no usable file (unreachable, an error status, bigger than allowed)."""


class StaleListError(Exception):
    """The file was published before the source's newest stored version: taking it would roll the list back (a
    stale mirror, a cache, someone in the middle), so entries listed since would stop matching."""


class ListSource(Protocol):
    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """The file's bytes; `ListFetchError` past `max_bytes` or on any failure."""
        ...


@dataclass(frozen=True, slots=True)
class ListVersion:
    """A stored version of one source's list: no entry, just what identifies it."""

    source: str
    version: str
    published_at: datetime
    fetched_at: datetime
    sha256: str
    entries: int


class SanctionsListStore(Protocol):
    async def is_newest(self, source: str, sha256: str) -> bool:
        """Whether the source's newest stored version is this file."""
        ...

    async def save(self, version: ListVersion, entries: Sequence[ListEntry], *, keep: int) -> bool:
        """Store a version and its entries in one transaction as the source's newest, prune the source's versions
        beyond the newest `keep`; False when that version was already stored, which is then left as it was (never
        made the newest again): another replica stored it first, or the publisher (or a cache) went back to an
        older file, which the caller refuses as a rollback."""
        ...

    async def latest(self) -> Sequence[ListVersion]:
        """The newest stored version of each source that has one."""
        ...

    async def entries(self, source: str, version: str) -> Sequence[ListEntry]: ...

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        """Events (the audit of an operator's refresh) through the outbox, in a transaction of their own."""
        ...


@dataclass(frozen=True, slots=True)
class LoadedList:
    version: ListVersion
    loaded_at: datetime
    index: ListIndex


# How many screened destinations a process remembers for the loaded lists (then it starts again: a bound, not an LRU).
SCREENED_DESTINATIONS_KEPT = 100_000


class ListsScreen:
    """The `SanctionsScreen`: every configured source's newest loaded list, in memory. Swapping a list in is one
    assignment of a new mapping, so a screening in progress sees one consistent set of versions."""

    def __init__(self, sources: Sequence[str], *, threshold: int, metrics: ComplianceMetrics | None = None) -> None:
        unknown = [s for s in sources if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown sanctions sources {unknown} (known: {', '.join(SOURCES)})")
        if not 0 <= threshold <= 1000:
            raise ValueError("the name threshold is 0-1000")
        self.sources = tuple(dict.fromkeys(sources))
        self.threshold = threshold
        self._metrics = metrics
        self._lists: Mapping[str, LoadedList] = {}
        # Destinations already screened against the lists in `_screened_against` (the very mapping: a list swapped
        # in is a new one, which empties this): a destination is screened once per set of list versions, not at
        # request and again at send and at every payout of a player who uses it again.
        self._screened: dict[tuple[str, str, str | None], tuple[ScreeningMatch, ...]] = {}
        self._screened_against: Mapping[str, LoadedList] | None = None
        self._waiting: list[asyncio.Future[None]] = []  # `wait_ready` callers, answered once every list is loaded

    # -- state -------------------------------------------------------------------------------------------------
    @property
    def missing_sources(self) -> tuple[str, ...]:
        return tuple(s for s in self.sources if s not in self._lists)

    @property
    def ready(self) -> bool:
        return not self.missing_sources

    async def wait_ready(self, timeout: float) -> bool:
        """Until every configured list is loaded (a process just started loads them in the background), at most
        `timeout` seconds; whether it is ready."""
        if not self.ready:
            loaded = asyncio.get_running_loop().create_future()
            self._waiting.append(loaded)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(loaded), timeout)
            finally:
                if loaded in self._waiting:
                    self._waiting.remove(loaded)
        return self.ready

    def loaded(self) -> Mapping[str, LoadedList]:
        return self._lists

    def install(self, version: ListVersion, index: ListIndex, *, at: datetime) -> None:
        self._lists = {**self._lists, version.source: LoadedList(version, at, index)}
        if self.ready:
            waiting, self._waiting = self._waiting, []
            for loaded in waiting:
                if not loaded.done():
                    loaded.set_result(None)

    def versions(self) -> Mapping[str, str]:
        return {s: loaded.version.version for s, loaded in self._lists.items()}

    # -- screening ---------------------------------------------------------------------------------------------
    def _current(self) -> Mapping[str, LoadedList]:
        lists = self._lists
        missing = tuple(s for s in self.sources if s not in lists)
        if missing:
            raise ScreeningUnavailable(missing)
        return lists

    def screen_destination(self, destination: PayoutDestination) -> ScreeningResult:
        """The destination's address and, where its rail reads the memo, every address the memo carries
        (`screen_destination_in`), against every loaded list."""
        lists = self._current()
        if self._screened_against is not lists or len(self._screened) >= SCREENED_DESTINATIONS_KEPT:
            self._screened, self._screened_against = {}, lists
        key = (destination.type.value, destination.address, destination.memo)
        found = self._screened.get(key)
        if found is None:
            found = self._screened[key] = tuple(
                _match(source, hit)
                for source, loaded in lists.items()
                for hit in screen_destination_in(loaded.index, destination)
            )
        return self._result("destination", lists, list(found))

    def screen_person(self, identity: Identity) -> ScreeningResult:
        lists = self._current()
        names = (identity.full_name, *identity.aliases)
        matches = [
            _match(source, hit)
            for source, loaded in lists.items()
            for hit in loaded.index.match_name(names, threshold=self.threshold, born=identity.birth_date)
        ]
        return self._result("player", lists, matches)

    def _result(self, subject: str, lists: Mapping[str, LoadedList], matches: list[ScreeningMatch]) -> ScreeningResult:
        if self._metrics is not None:
            self._metrics.screenings.labels(subject, "hit" if matches else "clear").inc()
        matches.sort(key=lambda m: (-m.score, m.source, m.entry_uid))
        return ScreeningResult(
            matches=tuple(matches),
            versions={s: loaded.version.version for s, loaded in lists.items()},
            threshold=self.threshold,
        )


def _match(source: str, hit: Hit) -> ScreeningMatch:
    return ScreeningMatch(source=source, entry_uid=hit.uid, entry_name=hit.entry_name, kind=hit.kind, score=hit.score)


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    source: str
    outcome: str  # "loaded" (a new version stored), "unchanged", "error"
    detail: str = ""


class RefreshSanctionsLists:
    """Fetch, check, store and load the configured lists (see the module's docstring)."""

    def __init__(
        self,
        *,
        urls: Mapping[str, str],
        source: ListSource,
        store: SanctionsListStore,
        screen: ListsScreen,
        metrics: ComplianceMetrics | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = KEEP_VERSIONS,
        catch_up_s: float = 1.0,
    ) -> None:
        self.urls = dict(urls)
        self.list_source = source
        self.store = store
        self.screen = screen
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = asyncio.Lock()
        self._loading = asyncio.Lock()  # one load at a time (the schedule's, a gate's catch-up)
        self.catch_up_s = catch_up_s  # how long a catch-up's look at the newest stored versions stands
        self._looked = -float("inf")  # monotonic time of the last catch-up's look
        # Called once a load changed the screen's versions (bootstrap: the re-screen of verified players wakes).
        self.on_loaded: Callable[[], None] | None = None

    async def run(self, sources: Sequence[str] | None = None) -> list[RefreshOutcome]:
        """One pass over every source (or those named), then a load of what the database holds newest. An
        operator's refresh and the schedule's do not overlap (one lock)."""
        async with self._lock:
            await self.load()  # another replica may have stored what this one is missing
            wanted = self.urls if sources is None else {s: self.urls[s] for s in sources if s in self.urls}
            outcomes = [await self._refresh(source, url) for source, url in wanted.items()]
            await self.load()
            return outcomes

    async def refresh_now(
        self, *, actor_user_id: str, actor_roles: frozenset[str], correlation_id: str, service: str, source: str
    ) -> list[RefreshOutcome]:
        """An operator's refresh: a pass now, audited (who asked, what each source's outcome and version is)."""
        outcomes = await self.run()
        versions = self.screen.versions()
        audit = admin_action(
            actor_user_id=actor_user_id,
            actor_roles=actor_roles,
            action="sanctions_lists.refresh",
            target_type="sanctions_lists",
            target_id="configured",  # every configured source; `after` names each
            after={o.source: f"{o.outcome} {versions.get(o.source, 'not loaded')}" for o in outcomes},
            service=service,
            source=source,
            correlation_id=correlation_id,
            occurred_at=datetime.now(UTC),
        )
        await self.store.add_events([audit])
        return outcomes

    async def _refresh(self, source: str, url: str) -> RefreshOutcome:
        now = datetime.now(UTC)
        try:
            data = await self.list_source.fetch(url, max_bytes=self.max_bytes)
            if len(data) > self.max_bytes:
                raise ListFetchError(f"{len(data)} bytes, more than the {self.max_bytes} allowed")
            sha = hashlib.sha256(data).hexdigest()
            if await self.store.is_newest(source, sha):
                outcome = RefreshOutcome(source, "unchanged")
            else:
                parsed = await asyncio.to_thread(parse_list, source, data)
                newest = next((v for v in await self.store.latest() if v.source == source), None)
                if newest is not None and parsed.published_at < newest.published_at:
                    raise StaleListError(
                        f"{source}: published {parsed.published_at:%Y-%m-%d}, older than the stored {newest.version}"
                    )
                version = _version(parsed, sha, now)
                stored = await self.store.save(version, parsed.entries, keep=self.keep)
                if not stored and not await self.store.is_newest(source, sha):
                    # A file stored before that is not the newest (an older file of the same day served again):
                    # made the newest again, it would make every verified player stale and clear those listed since.
                    raise StaleListError(f"{source}: {version.version} was stored before and is not the newest")
                outcome = RefreshOutcome(source, "loaded" if stored else "unchanged", version.version)
                log.info(
                    "sanctions list stored",
                    extra={"source": source, "version": version.version, "entries": version.entries},
                )
        except (ListFetchError, ListFormatError, StaleListError) as err:
            log.warning("sanctions list refused; the loaded version stays", extra={"source": source, "error": str(err)})
            outcome = RefreshOutcome(source, "error", str(err))
        except Exception as err:  # a database hiccup: counted, and the next pass tries again
            log.exception("sanctions list refresh failed", extra={"source": source})
            outcome = RefreshOutcome(source, "error", type(err).__name__)
        if self.metrics is not None:
            self.metrics.list_refreshes.labels(source, outcome.outcome).inc()
            if outcome.outcome != "error":
                self.metrics.list_refreshed_at.labels(source).set(now.timestamp())
        return outcome

    async def catch_up(self) -> None:
        """Before a gate: load the newest stored versions if they are not the loaded ones (another replica stored
        them since this one's last refresh). One query (`latest`) at most every `catch_up_s`; the entries are read
        only when a version changed."""
        if time.monotonic() - self._looked < self.catch_up_s:
            return
        self._looked = time.monotonic()
        await self.load()

    async def load(self) -> None:
        """Load into the screen every configured source whose newest stored version is not the loaded one."""
        async with self._loading:
            await self._load()

    async def _load(self) -> None:
        loaded = self.screen.loaded()
        changed = False
        for version in await self.store.latest():
            if version.source not in self.screen.sources:
                continue
            current = loaded.get(version.source)
            if current is not None and current.version.version == version.version:
                continue
            entries = await self.store.entries(version.source, version.version)
            if len(entries) != version.entries:
                # Pruned by another replica meanwhile, or not written whole: an index short of entries would screen
                # them clear. The loaded version stays (or the source stays missing: fail closed); the next pass reads
                # the newest again.
                log.error(
                    "sanctions list read back short; not loaded",
                    extra={"source": version.source, "version": version.version, "entries": len(entries)},
                )
                continue
            index = await asyncio.to_thread(ListIndex.build, entries)
            self.screen.install(version, index, at=datetime.now(UTC))
            changed = True
            log.info("sanctions list loaded", extra={"source": version.source, "version": version.version})
            if self.metrics is not None:
                self.metrics.list_entries.labels(version.source).set(len(index))
                self.metrics.list_published_at.labels(version.source).set(version.published_at.timestamp())
        if changed and self.on_loaded is not None:
            self.on_loaded()


class ScheduledRefresh:
    """The refresh as a job on the runtime's scheduler: every source at once, then every `every_s`; in between,
    every `retry_s`, only the sources that have never loaded (a process that cannot screen holds payouts, so it keeps
    asking for those alone)."""

    def __init__(
        self,
        refresh: RefreshSanctionsLists,
        *,
        every_s: float,
        retry_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh = refresh
        self.every_s = every_s
        self.retry_s = retry_s
        self.clock = clock
        self._due = -math.inf

    async def tick(self) -> float:
        """One pass; the seconds until the next one."""
        screen = self.refresh.screen
        try:
            if self.clock() >= self._due:
                self._due = self.clock() + self.every_s
                await self.refresh.run()
            elif missing := screen.missing_sources:
                await self.refresh.run(missing)
        except Exception:
            log.exception("sanctions refresh failed; trying again at the next tick")
        left = max(0.0, self._due - self.clock())
        return left if screen.ready else min(self.retry_s, left)


def _version(parsed: SanctionsList, sha: str, now: datetime) -> ListVersion:
    return ListVersion(
        source=parsed.source,
        version=list_version(parsed.published_at, sha),
        published_at=parsed.published_at,
        fetched_at=now,
        sha256=sha,
        entries=len(parsed.entries),
    )


__all__ = [
    "DEFAULT_MAX_BYTES",
    "KEEP_VERSIONS",
    "ListFetchError",
    "ListSource",
    "ListVersion",
    "ListsScreen",
    "LoadedList",
    "RefreshOutcome",
    "RefreshSanctionsLists",
    "SanctionsListStore",
    "ScheduledRefresh",
    "StaleListError",
]
