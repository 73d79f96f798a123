"""The Stellar rail's books as named stores on one session (`bind`), the statements of `store` behind verbs.

    async with self.uow() as books:     # the runtime's unit of work on the service's pool (`provider.uow`)
        rows = await books.payouts.by_keys(keys)
    async with leadership.uow() as books:  # the engine's: on the leader's connection (`leader`)
        if await books.envelopes.finish(tx.id, ...):
            await books.lanes.release_consumed(tx.lane, tx.id, tx.sequence)

A store never opens a transaction: whoever binds it does (the provider, the leader, or the signer-results consumer
whose inbox transaction it joins). A guarded change answers whether it moved the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.events.signer import SignatureRequested
from prizeflow_contracts.providers import PayoutInstruction
from prizeflow_payouts.adapters.stellar import store as sql
from prizeflow_payouts.adapters.stellar.states import (
    BookedPayout,
    Lane,
    NewEnvelope,
    PayoutRef,
    PayoutRow,
    QueuedPayout,
    StoredTx,
    TxRow,
    TxState,
)
from prizeflow_runtime.outbox import add_events


def _moved(result: Any) -> bool:
    """A compare-and-set took: exactly one row changed."""
    return cast("CursorResult[Any]", result).rowcount == 1


@dataclass(frozen=True, slots=True)
class RefusedEnvelope:
    """What a refused envelope held: its lane, the sequence it reserved there, its payouts."""

    lane: str
    sequence: int
    payout_ids: tuple[str, ...]


def _lanes(rows: Any) -> list[Lane]:
    return [Lane(account, None if seq is None else int(seq)) for account, seq in rows]


class SqlStellarLanes:
    """`stellar_lanes`: one source account each, the last sequence number used or reserved on it, its open envelope."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ensure(self, accounts: Sequence[str], role: str) -> None:
        for account in accounts:
            await self.session.execute(sql.ENSURE_LANE, {"account": account, "role": role})

    async def free(self, accounts: Sequence[str]) -> list[Lane]:
        """The lanes holding no open envelope."""
        return _lanes((await self.session.execute(sql.FREE_LANES, {"lanes": list(accounts)})).all())

    async def every(self, accounts: Sequence[str]) -> list[Lane]:
        """Every lane, held or not (build-only: its envelopes never hold one)."""
        return _lanes((await self.session.execute(sql.ALL_LANES, {"lanes": list(accounts)})).all())

    async def resync(self, lane: str, *, old: int | None, new: int) -> bool:
        """Take the network's sequence, if nobody changed the lane since `old` was read."""
        return _moved(await self.session.execute(sql.SET_LANE_SEQUENCE, {"lane": lane, "old": old, "new": new}))

    async def reserve(self, lane: str, *, seq: int, old: int, tx_id: str) -> bool:
        """The next sequence number and the lane for envelope `tx_id`, in one compare-and-set."""
        params = {"lane": lane, "seq": seq, "old": old, "tx": tx_id}
        return _moved(await self.session.execute(sql.RESERVE_LANE, params))

    async def reserve_sequence(self, lane: str, *, seq: int, old: int) -> bool:
        """Build-only: the next sequence number, the lane never held."""
        return _moved(await self.session.execute(sql.RESERVE_SEQUENCE, {"lane": lane, "seq": seq, "old": old}))

    async def release_consumed(self, lane: str, tx_id: str, seq: int) -> None:
        """Envelope `tx_id` landed and consumed `seq`."""
        await self.session.execute(sql.RELEASE_LANE_CONSUMED, {"lane": lane, "tx": tx_id, "seq": seq})

    async def release_to_resync(self, lane: str, tx_id: str, sequence: int | None) -> None:
        """Envelope `tx_id` never landed: `sequence` is what the lane holds now (None: read the network next time)."""
        await self.session.execute(sql.RELEASE_LANE_RESYNC, {"lane": lane, "tx": tx_id, "sequence": sequence})

    async def progress(self, accounts: Sequence[str]) -> list[tuple[str, int, float]]:
        """Each lane's highest sequence consumed by a landed envelope, and when it landed (unix seconds)."""
        rows = await self.session.execute(sql.SOURCE_PROGRESS, {"lanes": list(accounts)})
        return [(str(account), int(sequence), float(at)) for account, sequence, at in rows]


class SqlStellarEnvelopes:
    """`stellar_txs`: the envelopes built, and every move of `states.TX_TRANSITIONS` as a guarded change."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def due(self, provider: str, limit: int) -> list[TxRow]:
        rows = await self.session.execute(sql.DUE_TXS, {"provider": provider, "limit": limit})
        return [TxRow.from_row(r) for r in rows.mappings()]

    async def next_due_in(self, provider: str) -> float | None:
        """Seconds until an open envelope is due for a check or a queued payout's wait ends; None if neither."""
        seconds = (await self.session.execute(sql.NEXT_DUE_IN, {"provider": provider})).scalar_one()
        return None if seconds is None else float(seconds)

    async def record(self, envelope: NewEnvelope) -> None:
        params = {
            "id": envelope.id,
            "provider": envelope.provider,
            "lane": envelope.lane,
            "sequence": envelope.sequence,
            "kind": envelope.kind.value,
            "payout_ids": list(envelope.payout_ids),
            "state": envelope.state.value,
            "unsigned_xdr": envelope.unsigned_xdr,
            "sign_request": envelope.sign_request,
            "tx_hash": envelope.tx_hash,
            "fee": envelope.fee,
            "max_time": envelope.max_time,
            "sign_requests": envelope.sign_requests,
            "check_in_s": envelope.check_in_s,
        }
        await self.session.execute(sql.INSERT_TX, params)

    async def request_signatures(self, events: Sequence[Envelope[SignatureRequested]]) -> None:
        """The SignatureRequested of envelopes, staged in the outbox in this transaction."""
        await add_events(self.session, events)

    async def mark(
        self,
        tx_id: str,
        *,
        expected: TxState,
        state: TxState,
        check_in_s: float,
        error_code: str | None = None,
        detail: str | None = None,
        last_status: str | None = None,
        submitted: int = 0,
        polled: int = 0,
    ) -> bool:
        """Move (or re-mark) an envelope still in `expected`, to be checked again `check_in_s` later."""
        params = {
            "id": tx_id,
            "expected": expected.value,
            "state": state.value,
            "check_in_s": check_in_s,
            "error_code": error_code,
            "detail": detail,
            "last_status": last_status,
            "submitted": submitted,
            "polled": polled,
        }
        return _moved(await self.session.execute(sql.MARK_TX, params))

    async def ask_signature_again(self, tx_id: str, *, seen: int, check_in_s: float) -> bool:
        """Count one more SignatureRequested, if no other was counted since `seen`."""
        params = {"id": tx_id, "seen": seen, "check_in_s": check_in_s}
        return _moved(await self.session.execute(sql.RESEND_SIGN, params))

    async def finish(
        self,
        tx_id: str,
        *,
        expected: Sequence[TxState],
        state: TxState,
        ledger: int | None,
        result_code: str | None,
        op_codes: Sequence[str] | None,
        error_code: str | None,
    ) -> bool:
        """End an envelope still in one of `expected`: landed (success, failed) or dead."""
        params = {
            "id": tx_id,
            "expected": [s.value for s in expected],
            "state": state.value,
            "ledger": ledger,
            "result_code": result_code,
            "op_codes": list(op_codes) if op_codes else None,
            "error_code": error_code,
        }
        return _moved(await self.session.execute(sql.FINISH_TX, params))

    async def by_id(self, tx_id: str) -> StoredTx | None:
        row = (await self.session.execute(sql.TX_BY_ID, {"id": tx_id})).mappings().first()
        return StoredTx.from_row(row) if row is not None else None

    async def attempts_of(self, payout_id: str) -> list[dict[str, Any]]:
        """Every envelope built for a payout, oldest first, as operators see them."""
        rows = await self.session.execute(sql.TXS_OF_PAYOUT, {"payout_id": payout_id})
        return [dict(r) for r in rows.mappings()]

    async def by_hashes(self, provider: str, hashes: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Our envelopes among `hashes`: hash -> payout ids in place order."""
        rows = await self.session.execute(sql.TXS_BY_HASH, {"provider": provider, "hashes": list(hashes)})
        return {str(r.tx_hash): tuple(r.payout_ids) for r in rows}

    async def for_signature(self, tx_id: str, provider: str) -> StoredTx | None:
        params = {"id": tx_id, "provider": provider}
        row = (await self.session.execute(sql.TX_FOR_SIGNATURE, params)).mappings().first()
        return StoredTx.from_row(row) if row is not None else None

    async def signed(self, tx_id: str, provider: str, *, tx_hash: str, signed_xdr: str, signed_by: str) -> bool:
        """Keep exactly these signed bytes of an envelope awaiting them: it is submitted next."""
        params = {"id": tx_id, "provider": provider, "tx_hash": tx_hash, "signed_xdr": signed_xdr}
        return _moved(await self.session.execute(sql.SIGNED, {**params, "signed_by": signed_by}))

    async def reject_signed(self, tx_id: str, provider: str, *, error_code: str, detail: str) -> None:
        """A signed envelope that is not the one built: never submitted, it waits out its time bound."""
        params = {"id": tx_id, "provider": provider, "error_code": error_code, "detail": detail}
        await self.session.execute(sql.SIGNED_REFUSED, params)

    async def ask_signer_later(
        self, tx_id: str, provider: str, *, error_code: str, detail: str, check_in_s: float
    ) -> None:
        params = {"id": tx_id, "provider": provider, "error_code": error_code, "detail": detail}
        await self.session.execute(sql.SIGNER_RETRY_LATER, {**params, "check_in_s": check_in_s})

    async def await_operator(self, tx_id: str, provider: str, *, detail: str) -> None:
        """The signer wants an operator's signature (`external`)."""
        await self.session.execute(sql.EXTERNAL, {"id": tx_id, "provider": provider, "detail": detail})

    async def refuse(self, tx_id: str, provider: str, *, error_code: str, detail: str) -> RefusedEnvelope | None:
        """The signer refused it: never signed. None if it was decided meanwhile."""
        params = {"id": tx_id, "provider": provider, "error_code": error_code, "detail": detail}
        row = (await self.session.execute(sql.REFUSED, params)).first()
        if row is None:
            return None
        lane, sequence, payout_ids = row
        return RefusedEnvelope(str(lane), int(sequence), tuple(payout_ids))


class SqlStellarPayouts:
    """`stellar_payouts`: the payouts handed to the rail, queued until an envelope holds them, then paid or failed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, provider: str, instructions: Sequence[PayoutInstruction]) -> None:
        """Queue the payouts; one already recorded under its idempotency key is left as it is."""
        params = {
            "provider": provider,
            "keys": [i.idempotency_key for i in instructions],
            "ids": [i.payout_id for i in instructions],
            "assets": [i.amount.asset for i in instructions],
            "amounts": [i.amount.amount for i in instructions],
            "dests": [i.destination.address for i in instructions],
        }
        await self.session.execute(sql.INSERT_PAYOUTS, params)

    async def by_keys(self, keys: Sequence[str]) -> list[PayoutRow]:
        rows = await self.session.execute(sql.PAYOUTS_BY_KEY, {"keys": list(keys)})
        return [PayoutRow.from_row(r) for r in rows.mappings()]

    async def by_id(self, payout_id: str) -> PayoutRef | None:
        row = (await self.session.execute(sql.PAYOUT_BY_ID, {"id": payout_id})).mappings().first()
        return PayoutRef.from_row(row) if row is not None else None

    async def booked(self, provider: str, payout_ids: Sequence[str]) -> dict[str, BookedPayout]:
        rows = await self.session.execute(sql.PAYOUTS_BY_ID, {"provider": provider, "ids": list(payout_ids)})
        return {
            str(r.payout_id): BookedPayout(str(r.payout_id), str(r.destination), str(r.asset), int(r.amount))
            for r in rows
        }

    async def any_due(self, provider: str, *, assets: Sequence[str]) -> bool:
        """Whether a queued payout is due (nothing locked, nothing read but the queue's index)."""
        params = {"provider": provider, "assets": list(assets)}
        return bool((await self.session.execute(sql.ANY_DUE, params)).scalar_one())

    async def take_queued(self, provider: str, *, limit: int, assets: Sequence[str]) -> list[QueuedPayout]:
        """The next queued payouts due, locked for this transaction (others' locked ones skipped)."""
        params = {"provider": provider, "limit": limit, "assets": list(assets)}
        return [QueuedPayout.from_row(r) for r in (await self.session.execute(sql.QUEUED, params)).mappings()]

    async def assign(self, tx_id: str, payout_ids: Sequence[str]) -> None:
        """Those still queued go into envelope `tx_id` (one more attempt each)."""
        await self.session.execute(sql.ASSIGN_PAYOUTS, {"tx": tx_id, "payout_ids": list(payout_ids)})

    async def fail_unbuildable(self, payout_ids: Sequence[str], detail: str) -> None:
        """Still queued, and no envelope can be built for them: failed (`invalid_request`)."""
        await self.session.execute(sql.FAIL_QUEUED, {"ids": list(payout_ids), "detail": detail})

    async def isolate(self, payout_ids: Sequence[str]) -> None:
        """Still queued: from now on each in an envelope of its own."""
        await self.session.execute(sql.ISOLATE, {"ids": list(payout_ids)})

    async def paid(self, tx_id: str, *, tx_hash: str, ledger: int | None) -> None:
        await self.session.execute(sql.PAID, {"tx": tx_id, "tx_hash": tx_hash, "ledger": ledger})

    async def attempts(self, tx_id: str) -> dict[str, int]:
        """The payouts envelope `tx_id` still holds, and how many envelopes each was given so far."""
        rows = await self.session.execute(sql.PAYOUT_ATTEMPTS, {"tx": tx_id})
        return {str(payout_id): int(n) for payout_id, n in rows}

    async def requeue(
        self,
        tx_id: str,
        payout_ids: Sequence[str],
        *,
        isolate: bool,
        refund: int,
        delay_s: float,
        live_until: int,
        error_code: str | None,
        detail: str,
    ) -> None:
        """Back to the queue from envelope `tx_id`: not before `delay_s`, nor before `live_until` (unix seconds)."""
        params = {
            "tx": tx_id,
            "payout_ids": list(payout_ids),
            "isolate": isolate,
            "refund": refund,
            "delay_s": delay_s,
            "live_until": live_until,
            "error_code": error_code,
            "detail": detail,
        }
        await self.session.execute(sql.REQUEUE, params)

    async def fail(self, tx_id: str, payout_ids: Sequence[str], *, error_code: str, detail: str) -> None:
        """Failed for good, out of envelope `tx_id`."""
        params = {"tx": tx_id, "payout_ids": list(payout_ids), "error_code": error_code, "detail": detail}
        await self.session.execute(sql.FAIL, params)

    async def oldest_waiting_s(self, provider: str) -> float:
        """How long the oldest payout not landed yet has waited (queued, or in an open envelope)."""
        return float(await self.session.scalar(sql.OLDEST_WAITING, {"provider": provider}) or 0)


class SqlStellarEngineLocks:
    """`stellar_engine_locks`: one identity per provider name, never reused (the second key of its engine's lock)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_id(self, provider: str) -> int:
        """The provider's identity, its row made first if need be (insert on conflict: race-free)."""
        await self.session.execute(sql.ENSURE_ENGINE_LOCK, {"provider": provider})
        return int((await self.session.execute(sql.ENGINE_LOCK_ID, {"provider": provider})).scalar_one())


@dataclass(frozen=True, slots=True)
class StellarBooks:
    """What the rail reads, locks, writes and stages in its one transaction."""

    lanes: SqlStellarLanes
    envelopes: SqlStellarEnvelopes
    payouts: SqlStellarPayouts
    engine_locks: SqlStellarEngineLocks


def bind(session: AsyncSession) -> StellarBooks:
    """Every Stellar store on one session (a unit of work's, the leader's, or the consumer's inbox transaction)."""
    return StellarBooks(
        lanes=SqlStellarLanes(session),
        envelopes=SqlStellarEnvelopes(session),
        payouts=SqlStellarPayouts(session),
        engine_locks=SqlStellarEngineLocks(session),
    )


__all__ = [
    "RefusedEnvelope",
    "SqlStellarEngineLocks",
    "SqlStellarEnvelopes",
    "SqlStellarLanes",
    "SqlStellarPayouts",
    "StellarBooks",
    "bind",
]
