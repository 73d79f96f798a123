"""The compliance context's outward ports in memory, one fake each, for the tests of the gate, the verification
records and the screening schedule: the KYC vendor (`FakeKyc`), the sanctions screen (`FakeScreen`) and the lists'
store (`MemorySanctionsLists`, held to `SqlSanctionsLists` by tests/integration/test_sanctions_lists_contract.py, the
same cases on both)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from prizeflow_compliance.application.ports import (
    Identity,
    KycProviderError,
    KycReview,
    KycSession,
    ScreeningMatch,
    ScreeningResult,
)
from prizeflow_compliance.application.sanctions import ListVersion
from prizeflow_compliance.domain.sanctions import ListEntry
from prizeflow_contracts.policy import VerificationStatus
from prizeflow_contracts.providers import PayoutDestination

LIST_SOURCES = frozenset({"ofac_sdn", "ofac_consolidated", "eu", "un"})  # what the lists' tables take
# The name the vendor gives for every applicant: personal data, which no log, event or row may hold.
SECRET_NAME = "Ivan Sanctionedovich Testperson"


@dataclass
class FakeKyc:
    """A vendor: one applicant per player (`app-<player>`), a scripted review per applicant (pending until one is
    given), one identity for all. `fail` refuses starts and reviews (an outage, an unknown applicant), `identity_fail`
    the identity; every call is counted by name (`calls`)."""

    name: str = "sumsub"
    reviews: dict[str, KycReview] = field(default_factory=dict)
    fail: KycProviderError | None = None
    identity_fail: KycProviderError | None = None
    person: Identity = field(
        default_factory=lambda: Identity(full_name=SECRET_NAME, birth_date=date(1970, 1, 2), country="DE")
    )
    session_until: datetime | None = None  # when a started session expires (an hour from now by default)
    calls: list[str] = field(default_factory=list)

    async def start(self, player_id: str) -> KycSession:
        self.calls.append("start")
        if self.fail is not None:
            raise self.fail
        until = self.session_until or datetime.now(UTC) + timedelta(hours=1)
        return KycSession(f"app-{player_id}", f"https://kyc.test/flow/app-{player_id}", until)

    async def review(self, reference: str) -> KycReview:
        self.calls.append("review")
        if self.fail is not None:
            raise self.fail
        return self.reviews.get(reference, KycReview(reference, VerificationStatus.PENDING, None, "init"))

    async def identity(self, reference: str) -> Identity:
        self.calls.append("identity")
        if self.identity_fail is not None:
            raise self.identity_fail
        return self.person


@dataclass
class FakeScreen:
    """The sanctions screen over in-memory lists: an address (`addresses`) or a person's full name (`persons`) → the
    uids of the entries that name it, matched on the first list loaded (`loaded`: list → version). Every person
    screened is kept (`screened`)."""

    addresses: dict[str, list[str]] = field(default_factory=dict)
    persons: dict[str, list[str]] = field(default_factory=dict)
    loaded: dict[str, str] = field(default_factory=lambda: {"ofac_sdn": "2026-11-20"})
    screened: list[Identity] = field(default_factory=list)
    destinations: bool = True  # False: a destination screened is a test failure (a use case that screens persons only)

    @property
    def source(self) -> str:
        return next(iter(self.loaded), "ofac_sdn")

    def screen_destination(self, destination: PayoutDestination) -> ScreeningResult:
        if not self.destinations:
            raise AssertionError("not a destination")
        matches = tuple(
            ScreeningMatch(self.source, uid, f"Listed {uid}", "address", 1000)
            for uid in self.addresses.get(destination.address, [])
        )
        return ScreeningResult(matches, dict(self.loaded), 900)

    def screen_person(self, identity: Identity) -> ScreeningResult:
        self.screened.append(identity)
        matches = tuple(
            ScreeningMatch(self.source, uid, f"Listed {uid}", "name", 950)
            for uid in self.persons.get(identity.full_name, [])
        )
        return ScreeningResult(matches, dict(self.loaded), 900)

    def versions(self) -> Mapping[str, str]:
        return dict(self.loaded)


class MemorySanctionsLists:
    """The sanctions lists' store (`SanctionsListStore`) in memory, as `SqlSanctionsLists` keeps it: a source's
    newest version is the one fetched last; a version stored twice is kept as it was (`save` answers False); each
    save keeps the source's newest `keep` versions; entries come back by uid. Outbox events are kept (`events`)."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], ListVersion] = {}
        self.rows: dict[tuple[str, str], tuple[ListEntry, ...]] = {}
        self.events: list[Any] = []

    def _of(self, source: str) -> list[ListVersion]:
        return sorted((v for v in self.versions.values() if v.source == source), key=lambda v: v.fetched_at)

    async def is_newest(self, source: str, sha256: str) -> bool:
        mine = self._of(source)
        return bool(mine) and mine[-1].sha256 == sha256

    async def save(self, version: ListVersion, entries: Sequence[ListEntry], *, keep: int) -> bool:
        # What the table's constraints refuse (migration 0020), refused here too.
        if version.source not in LIST_SOURCES or not re.fullmatch(r"[0-9a-f]{64}", version.sha256):
            raise ValueError(f"not a stored list version: {version.source} {version.sha256}")
        if version.entries <= 0:
            raise ValueError("a stored list version has entries")
        key = (version.source, version.version)
        if any(v.sha256 == version.sha256 and (v.source, v.version) != key for v in self.versions.values()):
            raise ValueError(f"{version.source}: this file is stored as another version")  # UNIQUE (source, sha256)
        inserted = key not in self.versions
        if inserted:
            self.versions[key] = version
            self.rows[key] = tuple(entries)
        for old in self._of(version.source)[:-keep] if keep > 0 else self._of(version.source):
            del self.versions[old.source, old.version]
            self.rows.pop((old.source, old.version), None)
        return inserted

    async def latest(self) -> list[ListVersion]:
        sources = sorted({v.source for v in self.versions.values()})
        return [self._of(source)[-1] for source in sources]

    async def entries(self, source: str, version: str) -> Sequence[ListEntry]:
        return sorted(self.rows.get((source, version), ()), key=lambda e: e.uid)

    async def add_events(self, events: Sequence[Any]) -> None:
        self.events.extend(events)


__all__ = ["SECRET_NAME", "FakeKyc", "FakeScreen", "MemorySanctionsLists"]
