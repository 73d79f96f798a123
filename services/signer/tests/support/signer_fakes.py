"""In-memory stores of the signer, for its tests; `tests/integration/test_store_contracts.py` holds each to its
PostgreSQL adapter (what the tables refuse, the fakes refuse: a second answer to a request id, replacing a payout's
transaction that can still land)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prizeflow_contracts.envelope import Envelope
from prizeflow_signer.application.books import Books
from prizeflow_signer.application.ports import AuditRecord
from prizeflow_signer.domain.policy import LiveSignature
from prizeflow_testkit.uow import FakeUnitOfWork


class AlreadyAnsweredError(Exception):
    """`signer_results`' primary key: a request id has one answer."""


class StillLiveError(Exception):
    """`signer_payout_signatures`' trigger: a transaction that can still land is not replaced."""


@dataclass
class FakeResultStore:
    saved: dict[str, str] = field(default_factory=dict)  # request id → encoded result envelope
    outcomes: dict[str, str] = field(default_factory=dict)

    async def get(self, request_id: str) -> str | None:
        return self.saved.get(request_id)

    async def save(self, request_id: str, outcome: str, envelope: str) -> None:
        if request_id in self.saved:
            raise AlreadyAnsweredError(f"request {request_id} was answered before")
        self.saved[request_id] = envelope
        self.outcomes[request_id] = outcome


@dataclass
class FakeSpendStore:
    """Spend rows with the (wall-clock) time they were signed at, as `signed_at` defaults to now()."""

    rows: list[tuple[str, str, int, float]] = field(default_factory=list)  # request id, asset, amount, signed at
    locks: int = 0

    @property
    def spent(self) -> dict[str, int]:
        """Everything recorded, by asset."""
        out: dict[str, int] = {}
        for _, asset, amount, _ in self.rows:
            out[asset] = out.get(asset, 0) + amount
        return out

    async def lock(self) -> None:
        self.locks += 1

    async def spent_in_window(self, assets: Sequence[str]) -> dict[str, int]:
        since = time.time() - 24 * 3600
        out: dict[str, int] = {}
        for _, asset, amount, at in self.rows:
            if asset in assets and at > since:
                out[asset] = out.get(asset, 0) + amount
        return out

    async def record(self, request_id: str, amounts: Mapping[str, int]) -> None:
        now = time.time()
        self.rows.extend((request_id, asset, amount, now) for asset, amount in amounts.items())


@dataclass
class FakeSignatureStore:
    by_payout: dict[str, LiveSignature] = field(default_factory=dict)

    async def live(self, payout_ids: Sequence[str]) -> dict[str, LiveSignature]:
        return {p: self.by_payout[p] for p in payout_ids if p in self.by_payout}

    async def record(
        self, *, request_id: str, tx_hash: str, max_time: int, payout_ids: Sequence[str], now: int
    ) -> None:
        for p in payout_ids:
            old = self.by_payout.get(p)
            if old is not None and old.tx_hash != tx_hash and now <= old.max_time:
                raise StillLiveError(f"payout {p}: transaction {old.tx_hash} can still land until {old.max_time}")
        for p in payout_ids:
            old = self.by_payout.get(p)
            if old is None or old.tx_hash != tx_hash:  # the same transaction again keeps its row
                self.by_payout[p] = LiveSignature(tx_hash, max_time)


SIGNER_KEY_CHARS = 56


@dataclass
class FakeAuditStore:
    records: list[AuditRecord] = field(default_factory=list)

    async def record(self, record: AuditRecord) -> None:
        for name in ("source_account", "signed_by"):  # varchar(56): a Stellar key's length, a TON wallet's label
            if len(getattr(record, name) or "") > SIGNER_KEY_CHARS:
                raise ValueError(f"value too long for {name} (varchar({SIGNER_KEY_CHARS}))")
        detail = record.detail[:2000] if record.detail else None  # the column keeps 2000 characters
        self.records.append(dataclasses.replace(record, detail=detail))


@dataclass
class FakeOutbox:
    """Every staging, in order: a re-emitted answer appears again (under its own id)."""

    emitted: list[Envelope[Any]] = field(default_factory=list)

    async def stage(self, envelope: Envelope[Any]) -> None:
        self.emitted.append(envelope)

    async def stage_again(self, envelope: Envelope[Any]) -> None:
        self.emitted.append(envelope)


@dataclass
class SignerFakes:
    """The fakes, the books holding them, and a unit of work over those books."""

    results: FakeResultStore = field(default_factory=FakeResultStore)
    spend: FakeSpendStore = field(default_factory=FakeSpendStore)
    signatures: FakeSignatureStore = field(default_factory=FakeSignatureStore)
    audit: FakeAuditStore = field(default_factory=FakeAuditStore)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    books: Books = field(init=False)
    uow: FakeUnitOfWork[Books] = field(init=False)

    def __post_init__(self) -> None:
        self.books = Books(
            results=self.results, spend=self.spend, signatures=self.signatures, audit=self.audit, outbox=self.outbox
        )
        self.uow = FakeUnitOfWork(self.books)


__all__ = [
    "AlreadyAnsweredError",
    "FakeAuditStore",
    "FakeOutbox",
    "FakeResultStore",
    "FakeSignatureStore",
    "FakeSpendStore",
    "SignerFakes",
    "StillLiveError",
]
