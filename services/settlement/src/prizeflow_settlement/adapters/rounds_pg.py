"""SqlRoundStore: the rounds in PostgreSQL, locked, read and written in bulk in the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.events.game import PaidVia, RoundOpened
from prizeflow_contracts.events.settlement import ResultsSummary, RoundState
from prizeflow_contracts.money import Money
from prizeflow_runtime.db import driver_connection
from prizeflow_settlement.adapters.spec_cache import SpecCache
from prizeflow_settlement.adapters.tables import round_disputes, round_results
from prizeflow_settlement.application.ports import EntryKey
from prizeflow_settlement.domain.round import FINAL_STATES, Entry, Round

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
# The open disputes of every round the batch resolved, in one statement.
_RESOLVE_DISPUTES = text(
    """
    UPDATE round_disputes AS d SET status = 'resolved', resolved_at = now(), resolved_by = u.actor
    FROM unnest(CAST(:rounds AS text[]), CAST(:actors AS text[])) AS u(round_id, actor)
    WHERE d.round_id = u.round_id AND d.status = 'open'
    """
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


class SqlRoundStore:
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
        finished = [r.round_id for r in changed if r.state in FINAL_STATES]
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
        resolved = [(r.round_id, _last_actor(r)) for r in changed if r.resolved_disputes]
        if resolved:
            await s.execute(_RESOLVE_DISPUTES, {"rounds": [r for r, _ in resolved], "actors": [a for _, a in resolved]})
        for r in changed:
            r.clear_pending()

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


__all__ = ["SqlRoundStore"]
