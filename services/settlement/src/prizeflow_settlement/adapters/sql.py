"""SqlRoundStore and SqlRoundQueries: the rounds in PostgreSQL, read and written in bulk per transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import event, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_contracts.envelope import Envelope, StagedEvent
from prizeflow_contracts.events.game import PaidVia, RoundOpened
from prizeflow_contracts.events.settlement import ResultsSummary, RoundState
from prizeflow_contracts.money import Money
from prizeflow_runtime.db import driver_connection
from prizeflow_runtime.outbox import add_events
from prizeflow_settlement.adapters.tables import (
    round_allocations,
    round_disputes,
    round_fees,
    round_results,
    round_transitions,
    rounds,
)
from prizeflow_settlement.application.cursor import encode_cursor
from prizeflow_settlement.application.ports import (
    DisputeTrail,
    EntryKey,
    RoundPage,
    RoundStore,
    RoundTrail,
    TransitionTrail,
)
from prizeflow_settlement.domain.round import Entry, Round

_LOCK = text(
    """
    SELECT round_id, competition_id, correlation_id, state, version, entries_seen,
           entries_expected, pot, reached, closed_at, settled_at, voided_at, disputed, hold_reason, void_reason,
           results_summary::text AS results_summary
    FROM rounds WHERE round_id = ANY(CAST(:ids AS text[])) ORDER BY round_id FOR UPDATE
    """
)
# A round's terms, read apart from the lock: most are already in the SpecCache.
_SPECS = text("SELECT round_id, spec::text AS spec FROM rounds WHERE round_id = ANY(CAST(:ids AS text[]))")
_ENTRIES_BY_KEY = text(
    """
    SELECT e.round_id, e.entry_id, e.player_id, e.fee_asset, e.fee_amount, e.paid_via, e.recorded_at
    FROM round_entries e
    JOIN unnest(CAST(:r AS text[]), CAST(:e AS text[])) AS k(r, e) ON e.round_id = k.r AND e.entry_id = k.e
    UNION
    SELECT e.round_id, e.entry_id, e.player_id, e.fee_asset, e.fee_amount, e.paid_via, e.recorded_at
    FROM round_entries e
    JOIN unnest(CAST(:r AS text[]), CAST(:p AS text[])) AS k(r, p) ON e.round_id = k.r AND e.player_id = k.p
    UNION
    SELECT e.round_id, e.entry_id, e.player_id, e.fee_asset, e.fee_amount, e.paid_via, e.recorded_at
    FROM round_entries e WHERE e.round_id = ANY(CAST(:full AS text[]))
    """
)

# Column → PostgreSQL array element type, for the unnest-based bulk statements.
_ROUND_STATE_COLUMNS: dict[str, str] = {
    "round_id": "text",
    "state": "text",
    "entries_seen": "int",
    "entries_expected": "int",
    "pot": "bigint",
    "reached": "text",
    "closed_at": "timestamptz",
    "settled_at": "timestamptz",
    "voided_at": "timestamptz",
    "disputed": "bool",
    "hold_reason": "text",
    "void_reason": "text",
    "results_digest": "text",
    "results_summary": "text",
}
# How an unnested text value becomes the column's type.
_CONVERT = {
    "reached": "string_to_array(u.reached, ',')",
    "results_summary": "u.results_summary::jsonb",
    "spec": "u.spec::jsonb",
}
_NEW_ROUND_COLUMNS: dict[str, str] = {
    **_ROUND_STATE_COLUMNS,
    "competition_id": "text",
    "game_id": "text",
    "organizer_id": "text",
    "correlation_id": "text",
    "prize_source": "text",
    "asset": "text",
    "spec": "text",
    "opened_at": "timestamptz",
}
_UPDATE_COLUMNS = list(_ROUND_STATE_COLUMNS)
# Column names are module constants, never input; values are bound arrays.
_UPDATE_ROUNDS = text(
    "UPDATE rounds AS r SET "  # noqa: S608
    + ", ".join(f"{c} = {_CONVERT.get(c, 'u.' + c)}" for c in _UPDATE_COLUMNS if c != "round_id")
    + ", version = r.version + 1, updated_at = now() FROM unnest("
    + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in _ROUND_STATE_COLUMNS.items())
    + f") AS u({', '.join(_UPDATE_COLUMNS)}) WHERE r.round_id = u.round_id"
)
# Child tables are written with COPY, columns in this order.
_ENTRY_COLUMNS = ("round_id", "entry_id", "player_id", "fee_asset", "fee_amount", "paid_via", "recorded_at")
_RESULT_COLUMNS = ("round_id", "player_id", "rank", "score")
_TRANSITION_COLUMNS = ("round_id", "from_state", "to_state", "reason", "actor", "cause_id", "at")
_ALLOCATION_COLUMNS = ("round_id", "player_id", "rank", "asset", "amount", "source")
_FEE_COLUMNS = ("round_id", "party", "account_id", "asset", "amount")
_BULK_CACHE: dict[tuple[str, tuple[str, ...]], Any] = {}


async def _bulk_insert(s: AsyncSession, table: str, columns: dict[str, str], rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ... SELECT FROM unnest(arrays): one statement and one round trip for any number of rows."""
    if not rows:
        return
    key = (table, tuple(columns))
    stmt = _BULK_CACHE.get(key)
    if stmt is None:
        # Table and column names are module constants, never input; values are bound arrays.
        stmt = text(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT "  # noqa: S608
            + ", ".join(_CONVERT.get(c, "u." + c) for c in columns)
            + " FROM unnest("
            + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in columns.items())
            + f") AS u({', '.join(columns)})"
        )
        _BULK_CACHE[key] = stmt
    await s.execute(stmt, {c: [row[c] for row in rows] for c in columns})


async def _copy(s: AsyncSession, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """COPY rows into `table` inside the session's transaction: the cheapest bulk insert for the process
    and for PostgreSQL alike (constraints, foreign keys included, are checked as for an INSERT)."""
    if rows:
        raw = await driver_connection(s)
        await raw.copy_records_to_table(table, records=rows, columns=columns)


def _round_row(r: Round) -> dict[str, Any]:
    """The mutable columns (`Round.snapshot()`), `reached` and `results_summary` as the text the SQL casts."""
    results = r.results
    return {
        "round_id": r.round_id,
        "state": r.state.value,
        "version": r.version,
        "entries_seen": r.entries_seen,
        "entries_expected": r.entries_expected,
        "pot": r.pot,
        "closed_at": r.closed_at,
        "settled_at": r.settled_at,
        "voided_at": r.voided_at,
        "disputed": r.disputed,
        "hold_reason": r.hold_reason,
        "void_reason": r.void_reason,
        "reached": ",".join(sorted(s.value for s in r.reached)),
        "results_digest": results.digest if results else None,
        "results_summary": results.model_dump_json() if results else None,
    }


_FINISHED = frozenset({RoundState.SETTLED, RoundState.VOIDED})


class SpecCache:
    """Round terms (the validated RoundOpened) by round id, so the hot path neither reads nor re-validates
    them for every event of a round.

    Sound because a round's terms never change once the round exists: the code never updates them and a
    trigger (migration 0004) refuses any UPDATE that would, and rounds are never deleted. A spec is cached
    only when its row is known to be committed: as read by `lock_rounds` (the first statement of its
    transaction on `rounds`, so it sees committed rows only), or after the commit of the transaction that
    opened the round. A rolled-back RoundOpened never reaches the cache. A round that settled or was voided
    leaves it once that is committed (events of a finished round are late duplicates at most), so it holds the
    live rounds, not the last `capacity` ever opened: ~3 KB each, a full cache of 20,000 was 60 MB that a soak read
    as a leak. Bounded all the same: the oldest entry goes first; a miss costs one extra query for the whole poll.
    Capacity 0 disables it.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._specs: dict[str, RoundOpened] = {}

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, round_id: str) -> RoundOpened | None:
        return self._specs.get(round_id)

    def put(self, round_id: str, spec: RoundOpened) -> None:
        if not self.capacity:
            return
        specs = self._specs
        if round_id not in specs and len(specs) >= self.capacity:
            del specs[next(iter(specs))]
        specs[round_id] = spec

    def put_many(self, specs: Iterable[tuple[str, RoundOpened]]) -> None:
        for round_id, spec in specs:
            self.put(round_id, spec)

    def forget(self, round_ids: Iterable[str]) -> None:
        for round_id in round_ids:
            self._specs.pop(round_id, None)


def _round_from_row(row: Any, spec: RoundOpened) -> Round:
    """The aggregate from its locked row; the JSON column arrives as text and is validated straight from it
    (half the time of decoding to dicts first)."""
    summary = row.results_summary
    return Round(
        round_id=row.round_id,
        competition_id=row.competition_id,
        correlation_id=row.correlation_id,
        state=RoundState(row.state),
        spec=spec,
        version=row.version,
        entries_seen=row.entries_seen,
        entries_expected=row.entries_expected,
        pot=row.pot,
        closed_at=row.closed_at,
        settled_at=row.settled_at,
        voided_at=row.voided_at,
        results=ResultsSummary.model_validate_json(summary) if summary is not None else None,
        disputed=row.disputed,
        hold_reason=row.hold_reason,
        void_reason=row.void_reason,
        reached={RoundState(s) for s in row.reached},
        had_results=summary is not None,
    )


class SqlRoundStore(RoundStore):
    def __init__(self, session: AsyncSession, specs: SpecCache | None = None) -> None:
        self.session = session
        self.specs = specs if specs is not None else SpecCache(0)

    async def lock_rounds(
        self,
        round_ids: Collection[str],
        *,
        entry_keys: Sequence[EntryKey] = (),
        full_entries_for: Collection[str] = (),
    ) -> dict[str, Round]:
        if not round_ids:
            return {}
        locked = (await self.session.execute(_LOCK, {"ids": sorted(round_ids)})).all()
        specs = self.specs
        terms: dict[str, RoundOpened] = {}
        missing: list[str] = []
        for row in locked:
            if (spec := specs.get(row.round_id)) is None:
                missing.append(row.round_id)
            else:
                terms[row.round_id] = spec
        if missing:
            for row in await self.session.execute(_SPECS, {"ids": missing}):
                terms[row.round_id] = spec = RoundOpened.model_validate_json(row.spec)
                specs.put(row.round_id, spec)
        found = {row.round_id: _round_from_row(row, terms[row.round_id]) for row in locked}
        full = [rid for rid in full_entries_for if rid in found]
        keys = [k for k in entry_keys if k.round_id in found]
        if keys or full:
            rows = await self.session.execute(
                _ENTRIES_BY_KEY,
                {
                    "r": [k.round_id for k in keys],
                    "e": [k.entry_id for k in keys],
                    "p": [k.player_id for k in keys],
                    "full": full,
                },
            )
            for row in rows:
                r = found[row.round_id]
                r.entries[row.entry_id] = Entry(
                    row.entry_id,
                    row.player_id,
                    Money(asset=row.fee_asset, amount=row.fee_amount),
                    PaidVia(row.paid_via),
                    row.recorded_at,
                )
                r.players[row.player_id] = row.entry_id
        for rid in full:
            found[rid].all_entries_loaded = True
        return found

    async def save(self, changed: Sequence[Round]) -> None:
        """Everything the batch changed, one bulk statement per table (unnest arrays: one round trip each)."""
        s = self.session
        new = [r for r in changed if r.is_new]
        dirty = [r for r in changed if r.dirty and not r.is_new]
        await _bulk_insert(s, "rounds", _NEW_ROUND_COLUMNS, [self._new_row(r) for r in new])
        if new and self.specs.capacity:
            # The terms of the rounds opened here are known: cached once (and only if) the rows are committed.
            opened = [(r.round_id, r.spec) for r in new]
            event.listen(s.sync_session, "after_commit", lambda _: self.specs.put_many(opened), once=True)
        finished = [r.round_id for r in changed if r.state in _FINISHED]
        if finished and self.specs.capacity:
            event.listen(s.sync_session, "after_commit", lambda _: self.specs.forget(finished), once=True)
        if dirty:
            rows = [_round_row(r) for r in dirty]
            await s.execute(_UPDATE_ROUNDS, {c: [row[c] for row in rows] for c in _UPDATE_COLUMNS})
        await _copy(
            s,
            "round_entries",
            _ENTRY_COLUMNS,
            [
                (r.round_id, e.entry_id, e.player_id, e.fee.asset, e.fee.amount, e.paid_via.value, e.recorded_at)
                for r in changed
                for e in r.pending_entries
            ],
        )
        replaced = [r.round_id for r in changed if r.pending_results is not None and r.had_results]
        if replaced:
            await s.execute(round_results.delete().where(round_results.c.round_id.in_(replaced)))
        await _copy(
            s,
            "round_results",
            _RESULT_COLUMNS,
            [
                (r.round_id, p.player_id, p.rank, p.score)
                for r in changed
                if r.pending_results is not None
                for p in r.pending_results.placements
            ],
        )
        await _copy(
            s,
            "round_transitions",
            _TRANSITION_COLUMNS,
            [
                (
                    r.round_id,
                    t.from_state.value if t.from_state else None,
                    t.to_state.value,
                    t.reason,
                    t.actor,
                    t.cause_id,
                    t.at,
                )
                for r in changed
                for t in r.pending_transitions
            ],
        )
        splits = [r.pending_split for r in changed if r.pending_split is not None]
        await _copy(
            s,
            "round_allocations",
            _ALLOCATION_COLUMNS,
            [
                (split.round_id, a.player_id, a.rank, split.asset, a.amount, a.source.value)
                for split in splits
                for a in split.allocations
            ],
        )
        await _copy(
            s,
            "round_fees",
            _FEE_COLUMNS,
            [
                (split.round_id, f.party.value, f.account_id, f.amount.asset, f.amount.amount)
                for split in splits
                for f in split.fees
            ],
        )
        disputes = [
            {
                "round_id": r.round_id,
                "existing_digest": d.existing.digest,
                "conflicting_digest": d.conflicting.digest,
                "conflicting": [p.model_dump(mode="json") for p in d.placements],
                "status": "open",
                "opened_at": d.at,
            }
            for r in changed
            for d in r.pending_disputes
        ]
        if disputes:
            await s.execute(pg_insert(round_disputes).on_conflict_do_nothing(), disputes)
        for r in changed:
            if r.resolved_disputes:
                await s.execute(
                    update(round_disputes)
                    .where(round_disputes.c.round_id == r.round_id, round_disputes.c.status == "open")
                    .values(status="resolved", resolved_at=func.now(), resolved_by=_last_actor(r))
                )
        for r in changed:
            r.clear_pending()

    async def add_events(self, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        await add_events(self.session, events)

    @staticmethod
    def _new_row(r: Round) -> dict[str, Any]:
        spec = r.spec
        return {
            **_round_row(r),
            "competition_id": r.competition_id,
            "game_id": spec.game_id,
            "organizer_id": spec.organizer_id,
            "correlation_id": r.correlation_id,
            "prize_source": spec.prize_source.value,
            "asset": spec.prize.asset,
            "spec": spec.model_dump_json(),
            "opened_at": spec.opened_at,
        }


def _last_actor(r: Round) -> str | None:
    return next((t.actor for t in reversed(r.pending_transitions) if t.actor), None) or r.last_actor


def sql_store_factory(sessions: async_sessionmaker[AsyncSession], specs: SpecCache | None = None) -> Any:
    """A RoundStoreFactory: each `async with` is one transaction, committed on a clean exit."""

    @asynccontextmanager
    async def open_store() -> AsyncIterator[RoundStore]:
        async with sessions() as session, session.begin():
            yield SqlRoundStore(session, specs)

    def factory() -> AbstractAsyncContextManager[RoundStore]:
        return open_store()

    return factory


_SUMMARY_COLS = (
    rounds.c.round_id,
    rounds.c.competition_id,
    rounds.c.game_id,
    rounds.c.state,
    rounds.c.prize_source,
    rounds.c.asset,
    rounds.c.entries_seen,
    rounds.c.entries_expected,
    rounds.c.pot,
    rounds.c.disputed,
    rounds.c.hold_reason,
    rounds.c.opened_at,
    rounds.c.closed_at,
    rounds.c.settled_at,
    rounds.c.voided_at,
    rounds.c.version,
)


class SqlRoundQueries:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def list_rounds(
        self,
        *,
        state: RoundState | None,
        competition_id: str | None,
        disputed: bool | None,
        after: str | None,
        limit: int,
    ) -> RoundPage:
        q = select(*_SUMMARY_COLS).order_by(rounds.c.round_id).limit(limit + 1)
        if state is not None:
            q = q.where(rounds.c.state == state.value)
        if competition_id is not None:
            q = q.where(rounds.c.competition_id == competition_id)
        if disputed is not None:
            q = q.where(rounds.c.disputed.is_(disputed))
        if after is not None:
            q = q.where(rounds.c.round_id > after)
        async with self.sessions() as s:
            rows = [dict(row._mapping) for row in await s.execute(q)]
        more = len(rows) > limit
        items = rows[:limit]
        return RoundPage(items=items, next_cursor=encode_cursor(items[-1]["round_id"]) if more else None)

    async def rounds_of(self, correlation_id: str, *, limit: int) -> list[RoundTrail]:
        """`RoundTimelineQueries`: the rounds of one flow, with their transitions and disputes (three reads)."""
        async with self.sessions() as s:
            found = (
                await s.execute(
                    select(
                        rounds.c.round_id, rounds.c.state, rounds.c.asset, rounds.c.prize_source, rounds.c.settled_at
                    )
                    .where(rounds.c.correlation_id == correlation_id)
                    .order_by(rounds.c.opened_at, rounds.c.round_id)
                    .limit(limit)
                )
            ).all()
            ids = [r.round_id for r in found]
            if not ids:
                return []
            moves = await s.execute(
                select(
                    round_transitions.c.round_id,
                    round_transitions.c.from_state,
                    round_transitions.c.to_state,
                    round_transitions.c.reason,
                    round_transitions.c.actor,
                    round_transitions.c.at,
                )
                .where(round_transitions.c.round_id.in_(ids))
                .order_by(round_transitions.c.id)
            )
            paid = await s.execute(
                select(
                    round_allocations.c.round_id, func.count(), func.coalesce(func.sum(round_allocations.c.amount), 0)
                )
                .where(round_allocations.c.round_id.in_(ids))
                .group_by(round_allocations.c.round_id)
            )
            disputes = await s.execute(
                select(
                    round_disputes.c.round_id,
                    round_disputes.c.status,
                    round_disputes.c.opened_at,
                    round_disputes.c.resolved_at,
                )
                .where(round_disputes.c.round_id.in_(ids))
                .order_by(round_disputes.c.id)
            )
            transitions: dict[str, list[TransitionTrail]] = {i: [] for i in ids}
            for m in moves:
                transitions[m.round_id].append(TransitionTrail(m.from_state, m.to_state, m.reason, m.actor, m.at))
            totals = {p[0]: (int(p[1]), int(p[2])) for p in paid}
            opened: dict[str, list[DisputeTrail]] = {i: [] for i in ids}
            for d in disputes:
                opened[d.round_id].append(DisputeTrail(d.status, d.opened_at, d.resolved_at))
        return [
            RoundTrail(
                round_id=r.round_id,
                state=r.state,
                asset=r.asset,
                prize_source=r.prize_source,
                settled_at=r.settled_at,
                allocations=totals.get(r.round_id, (0, 0))[0],
                allocated=totals.get(r.round_id, (0, 0))[1],
                transitions=transitions[r.round_id],
                disputes=opened[r.round_id],
            )
            for r in found
        ]

    async def get_round(self, round_id: str) -> dict[str, Any] | None:
        async with self.sessions() as s:
            row = (
                await s.execute(
                    select(*_SUMMARY_COLS, rounds.c.spec, rounds.c.correlation_id, rounds.c.void_reason,
                           rounds.c.results_summary).where(rounds.c.round_id == round_id)
                )
            ).first()  # fmt: skip
            if row is None:
                return None
            out = dict(row._mapping)

            async def rows(q: Any) -> list[dict[str, Any]]:
                return [dict(r._mapping) for r in await s.execute(q)]

            out["history"] = await rows(
                select(
                    round_transitions.c.from_state,
                    round_transitions.c.to_state,
                    round_transitions.c.reason,
                    round_transitions.c.actor,
                    round_transitions.c.cause_id,
                    round_transitions.c.at,
                )
                .where(round_transitions.c.round_id == round_id)
                .order_by(round_transitions.c.id)
            )
            out["allocations"] = await rows(
                select(
                    round_allocations.c.player_id,
                    round_allocations.c.rank,
                    round_allocations.c.asset,
                    round_allocations.c.amount,
                    round_allocations.c.source,
                )
                .where(round_allocations.c.round_id == round_id)
                .order_by(round_allocations.c.rank, round_allocations.c.player_id)
            )
            out["fees"] = await rows(
                select(round_fees.c.party, round_fees.c.account_id, round_fees.c.asset, round_fees.c.amount).where(
                    round_fees.c.round_id == round_id
                )
            )
            out["disputes"] = await rows(
                select(
                    round_disputes.c.existing_digest,
                    round_disputes.c.conflicting_digest,
                    round_disputes.c.status,
                    round_disputes.c.opened_at,
                    round_disputes.c.resolved_at,
                    round_disputes.c.resolved_by,
                )
                .where(round_disputes.c.round_id == round_id)
                .order_by(round_disputes.c.id)
            )
        return out

    async def count_by_state(self) -> dict[str, int]:
        async with self.sessions() as s:
            result = await s.execute(select(rounds.c.state, func.count()).group_by(rounds.c.state))
            return {str(row[0]): int(row[1]) for row in result}


__all__ = ["SpecCache", "SqlRoundQueries", "SqlRoundStore", "sql_store_factory"]
