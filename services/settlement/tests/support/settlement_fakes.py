"""In-memory stores of the settlement service, for its unit tests; `tests/integration/test_store_contracts.py` holds
each to its PostgreSQL adapter.

`FakeRoundStore` keeps what SQL keeps (the round's row, its entries apart) and a locked round is rebuilt from it
as `SqlRoundStore.lock_rounds` rebuilds it: only the entries asked for, every entry (and `all_entries_loaded`) only
for `full_entries_for`, nothing of what a use case set on a round object but never saved.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from prizeflow_contracts.envelope import Envelope, StagedEvent, decode
from prizeflow_settlement.application.books import Books
from prizeflow_settlement.application.ports import EntryKey
from prizeflow_settlement.domain.round import Entry, Round
from prizeflow_testkit.uow import FakeUnitOfWork


@dataclass
class FakeRoundStore:
    saved: dict[str, Round] = field(default_factory=dict)  # the rows: no entries, nothing pending
    entries: dict[str, dict[str, Entry]] = field(default_factory=dict)  # round id → entry id → entry

    async def lock_rounds(
        self,
        round_ids: Collection[str],
        *,
        entry_keys: Sequence[EntryKey] = (),
        full_entries_for: Collection[str] = (),
    ) -> dict[str, Round]:
        found = {rid: copy.deepcopy(self.saved[rid]) for rid in sorted(round_ids) if rid in self.saved}
        for key in entry_keys:
            if key.round_id in found:
                for e in self.entries.get(key.round_id, {}).values():
                    if e.entry_id == key.entry_id or e.player_id == key.player_id:
                        _know(found[key.round_id], e)
        for rid in full_entries_for:
            if rid in found:
                for e in self.entries.get(rid, {}).values():
                    _know(found[rid], e)
                found[rid].all_entries_loaded = True
        return found

    async def save(self, rounds: Sequence[Round]) -> None:
        for r in rounds:
            if r.is_new or r.dirty:
                self.entries.setdefault(r.round_id, {}).update((e.entry_id, e) for e in r.pending_entries)
                row = copy.deepcopy(r)
                row.version = r.version if r.is_new else r.version + 1  # the UPDATE counts versions
                row.clear_pending()
                row.entries, row.players, row.all_entries_loaded = {}, {}, False
                row.cause_id = row.last_actor = None
                self.saved[r.round_id] = row
            r.clear_pending()


def _know(r: Round, e: Entry) -> None:
    r.entries[e.entry_id] = e
    r.players[e.player_id] = e.entry_id


@dataclass
class FakeOutbox:
    """What consumers downstream would read: staged events decoded from their bytes, in order."""

    events: list[Envelope[Any]] = field(default_factory=list)

    async def stage(self, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        self.events.extend(decode(e.payload) if isinstance(e, StagedEvent) else e for e in events)


@dataclass
class SettlementFakes:
    """The fakes, the books holding them, and a unit of work over those books."""

    rounds: FakeRoundStore = field(default_factory=FakeRoundStore)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    books: Books = field(init=False)
    uow: FakeUnitOfWork[Books] = field(init=False)

    def __post_init__(self) -> None:
        self.books = Books(rounds=self.rounds, outbox=self.outbox)
        self.uow = FakeUnitOfWork(self.books)


__all__ = ["FakeOutbox", "FakeRoundStore", "SettlementFakes"]
