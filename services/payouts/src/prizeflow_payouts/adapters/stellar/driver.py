"""Drives each open envelope to an end, one move of `states.TX_TRANSITIONS` at a time. Never twice on the ledger:

- a payout is in at most one live envelope; it goes back to the queue only when that envelope is provably dead:
  `getTransaction` says NOT_FOUND while the network's latest ledger closed after the envelope's upper time
  bound, or after its sequence number was consumed by another transaction (read before getTransaction);
- an envelope is resubmitted unchanged until it lands or dies; only then a new one is built (new attempt);
- a failed transaction moved nothing: the payouts whose operation failed get its code, the others go back to
  the queue without penalty (a contract call that failed with many winners is split into single-winner calls);
- the signer signs at most one live transaction per payout, so payouts of a signed envelope that ended (failed,
  or dead by a consumed sequence number) are rebuilt only once its upper time bound has passed (plus a margin
  for the ledger clock): the signer cannot know the first can no longer land, and would refuse.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import prizeflow_stellar as ps
from prizeflow_contracts.errors import PayoutErrorCode, is_retryable
from prizeflow_contracts.events.signer import SignatureRequested
from prizeflow_payouts.adapters.stellar import classify
from prizeflow_payouts.adapters.stellar.books import StellarBooks
from prizeflow_payouts.adapters.stellar.lanes import LaneMovedError, now
from prizeflow_payouts.adapters.stellar.leader import EngineLeadership
from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_payouts.adapters.stellar.rpc import RpcUnavailableError, SorobanRpcClient
from prizeflow_payouts.adapters.stellar.rules import FeeLevel
from prizeflow_payouts.adapters.stellar.signing import sign_event
from prizeflow_payouts.adapters.stellar.states import (
    OPEN_TX_STATES,
    TxKind,
    TxRow,
    TxState,
    live_until,
    require_transition,
)

log = logging.getLogger(__name__)

C = PayoutErrorCode
T = TxState
_DUE_LIMIT = 256


def attempts_exhausted(attempts: int, limit: int) -> bool:
    return attempts >= limit


class EnvelopeDriver:
    """One pass over the envelopes due (leader only: every write goes through the leader's `uow()`)."""

    def __init__(
        self, options: StellarOptions, rpc: SorobanRpcClient, fees: FeeLevel, leadership: EngineLeadership
    ) -> None:
        self.o = options
        self.rpc = rpc
        self.fees = fees
        self.leadership = leadership

    async def drive_open(self) -> bool:
        async with self.leadership.uow() as books:
            due = await books.envelopes.due(self.o.name, _DUE_LIMIT)
        if not due:
            return False
        await asyncio.gather(*(self.drive_one(tx) for tx in due))
        return True

    async def next_due_in(self) -> float | None:
        """Seconds until the engine has timed work (`SqlStellarEnvelopes.next_due_in`)."""
        async with self.leadership.uow() as books:
            return await books.envelopes.next_due_in(self.o.name)

    async def drive_one(self, tx: TxRow) -> None:
        try:
            if tx.state is T.SIGNING:
                await self._signing(tx)
            elif tx.state is T.EXTERNAL:
                await self._maybe_dead(tx, C.TX_EXPIRED)
            elif tx.state is T.SIGNED:
                await self._submit(tx)
            elif tx.state is T.SUBMITTED:
                await self._poll(tx)
        except RpcUnavailableError as err:
            log.warning("rpc unavailable for %s: %s", tx.id, err)
            await self._mark(tx, tx.state, check_in_s=self.o.poll_ms / 1000, last_status="rpc_unavailable")
        except LaneMovedError:
            log.warning("lane of %s moved meanwhile", tx.id)

    async def _mark(self, tx: TxRow, state: TxState, *, check_in_s: float, **kw: Any) -> bool:
        require_transition(tx.state, state)
        async with self.leadership.uow() as books:
            return await books.envelopes.mark(tx.id, expected=tx.state, state=state, check_in_s=check_in_s, **kw)

    def _poll_delay(self, polls: int) -> float:
        return (self.o.poll_ms if polls < self.o.max_polls else self.o.reconcile_ms) / 1000

    async def _signing(self, tx: TxRow) -> None:
        """No answer from the signer yet (a dead signer, a lost message): ask again, same request id."""
        if now() > tx.max_time:
            await self._maybe_dead(tx, C.SIGNER_UNAVAILABLE)
            return
        raw = tx.sign_request
        request = (
            SignatureRequested.model_validate_json(raw)
            if isinstance(raw, str)
            else SignatureRequested.model_validate(raw)
        )
        n = tx.sign_requests + 1
        require_transition(tx.state, T.SIGNING)
        async with self.leadership.uow() as books:
            if await books.envelopes.ask_signature_again(
                tx.id, seen=tx.sign_requests, check_in_s=self.o.resign_after_s
            ):
                await books.envelopes.request_signatures([sign_event(self.o.source, tx.id, request, n)])
                log.info("signature requested again", extra={"tx_id": tx.id, "request": n})

    async def _submit(self, tx: TxRow) -> None:
        poll_s = self.o.poll_ms / 1000
        assert tx.signed_xdr is not None  # the table's CHECK: a signed or submitted envelope has its bytes
        try:
            answer = await self.rpc.send_transaction(tx.signed_xdr)
        except RpcUnavailableError:
            # Unknown: it may have been accepted. From now on it is polled (and resubmitted unchanged).
            await self._mark(tx, T.SUBMITTED, check_in_s=poll_s, submitted=1, last_status="unknown")
            return
        status = str(answer.get("status"))
        if status in ("PENDING", "DUPLICATE"):
            await self._mark(tx, T.SUBMITTED, check_in_s=poll_s, submitted=1, last_status=status)
            return
        if status == "TRY_AGAIN_LATER":
            await self._mark(
                tx, T.SUBMITTED, check_in_s=poll_s, submitted=1, last_status=status, error_code=C.RATE_LIMITED.value
            )
            return
        code = ps.transaction_result_code(answer["errorResultXdr"]) if answer.get("errorResultXdr") else "tx_failed"
        if code == "tx_bad_seq":
            await self._bad_seq(tx)
            return
        if code == "tx_too_late":
            await self._maybe_dead(tx, C.TX_EXPIRED)
            return
        await self._mark(
            tx,
            T.SUBMITTED,
            check_in_s=poll_s,
            submitted=1,
            last_status=f"ERROR:{code}",
            error_code=classify.tx_code(code).value,
            detail=f"sendTransaction: {code}",
        )

    async def _poll(self, tx: TxRow) -> None:
        got = await self.rpc.get_transaction(tx.tx_hash)
        status = got.get("status")
        if status in ("SUCCESS", "FAILED"):
            await self._landed(tx, got)
            return
        close_time = int(got.get("latestLedgerCloseTime") or 0)
        if close_time > tx.max_time:
            await self._dead(tx, self._death_code(tx))
            return
        last = tx.last_status or ""
        if last.startswith("ERROR:") and last.removeprefix("ERROR:") in classify.STOP_RESUBMITTING:
            await self._mark(tx, T.SUBMITTED, check_in_s=self._poll_delay(tx.polls), polled=1)
            return
        # Not landed, not expired: resubmit the SAME envelope (a dropped or not yet accepted one gets in).
        await self._mark(tx, T.SUBMITTED, check_in_s=0, polled=1)
        await self._submit(dataclasses.replace(tx, polls=tx.polls + 1))

    @staticmethod
    def _death_code(tx: TxRow) -> PayoutErrorCode:
        if tx.error_code in {c.value for c in PayoutErrorCode}:
            return PayoutErrorCode(tx.error_code)
        return C.TX_EXPIRED

    async def _maybe_dead(self, tx: TxRow, code: PayoutErrorCode) -> None:
        """Dead only if the network says NOT_FOUND after a ledger that closed past the upper time bound."""
        got = await self.rpc.get_transaction(tx.tx_hash)
        if got.get("status") in ("SUCCESS", "FAILED"):
            await self._landed(tx, got)
            return
        if int(got.get("latestLedgerCloseTime") or 0) > tx.max_time:
            await self._dead(tx, code)
            return
        wait = max(self.o.poll_ms / 1000, min(5.0, tx.max_time + 1 - now()))
        await self._mark(tx, tx.state, check_in_s=wait)

    async def _bad_seq(self, tx: TxRow) -> None:
        """tx_bad_seq: read the account's sequence FIRST, then the transaction, then decide."""
        info = await self.rpc.account(tx.lane)
        got = await self.rpc.get_transaction(tx.tx_hash)
        if got.get("status") in ("SUCCESS", "FAILED"):
            await self._landed(tx, got)
            return
        chain = info.sequence if info is not None else None
        if chain is not None and chain >= tx.sequence:
            # Its sequence number was consumed by another transaction: this envelope can never land.
            await self._dead(tx, C.TX_BAD_SEQ, lane_sequence=chain)
            return
        # Right sequence (a transient refusal) or a gap ahead of the network: keep the envelope, resubmit it
        # unchanged; if the gap never fills, its time bound ends it.
        await self._mark(
            tx,
            T.SUBMITTED,
            check_in_s=self.o.poll_ms / 1000,
            submitted=1,
            last_status="ERROR:tx_bad_seq",
            error_code=C.TX_BAD_SEQ.value,
        )

    async def _landed(self, tx: TxRow, got: Mapping[str, Any]) -> None:
        ok = got.get("status") == "SUCCESS"
        result_xdr = str(got.get("resultXdr") or "")
        result_code = ps.transaction_result_code(result_xdr) if result_xdr else ("tx_success" if ok else "tx_failed")
        op_codes = ps.operation_result_codes(result_xdr) if result_xdr and not ok else []
        ledger = int(got.get("ledger") or 0) or None
        end = require_transition(tx.state, T.SUCCESS if ok else T.FAILED)
        async with self.leadership.uow() as books:
            finished = await books.envelopes.finish(
                tx.id,
                expected=OPEN_TX_STATES,
                state=end,
                ledger=ledger,
                result_code=result_code,
                op_codes=op_codes,
                error_code=None if ok else C.TX_FAILED.value,
            )
            if not finished:
                return
            await books.lanes.release_consumed(tx.lane, tx.id, tx.sequence)
            if ok:
                await books.payouts.paid(tx.id, tx_hash=tx.tx_hash, ledger=ledger)
                self.fees.relax()
            else:
                await self.after_failed_tx(
                    books,
                    tx_id=tx.id,
                    kind=tx.kind,
                    payout_ids=tx.payout_ids,
                    max_time=tx.max_time,
                    result_code=result_code,
                    op_codes=op_codes,
                )
        log.info("stellar transaction landed", extra={"tx_id": tx.id, "ok": ok, "ledger": ledger, "code": result_code})

    async def after_failed_tx(
        self,
        books: StellarBooks,
        *,
        tx_id: str,
        kind: TxKind,
        payout_ids: Sequence[str],
        max_time: int,
        result_code: str,
        op_codes: Sequence[str],
    ) -> None:
        """Nothing moved. The payouts whose operation failed get its code; the others are queued again."""
        payout_ids = list(payout_ids)
        attempts = await books.payouts.attempts(tx_id)
        culprits: dict[str, PayoutErrorCode] = {}
        if kind is TxKind.PAYMENTS and len(op_codes) == len(payout_ids):
            for pid, op in zip(payout_ids, op_codes, strict=True):
                mapped = classify.op_code(op)
                if mapped is not None:
                    culprits[pid] = mapped
        elif len(payout_ids) == 1:
            culprits[payout_ids[0]] = (
                classify.op_code(op_codes[0]) or C.TX_FAILED if op_codes else classify.tx_code(result_code)
            )
        innocent = [p for p in payout_ids if p not in culprits]
        if innocent:
            isolate = not culprits  # we could not tell who failed it: one by one from now on
            await books.payouts.requeue(
                tx_id,
                innocent,
                isolate=isolate,
                refund=1,
                delay_s=0,
                live_until=live_until(max_time),
                error_code=None,
                detail=f"batch failed ({result_code}) because of another payout",
            )
        for pid, code in culprits.items():
            detail = f"{result_code}: {code.value}"
            if is_retryable(code) and not attempts_exhausted(attempts.get(pid, 1), self.o.max_tx_attempts):
                await books.payouts.requeue(
                    tx_id,
                    [pid],
                    isolate=True,
                    refund=0,
                    delay_s=min(60.0, 2.0 * attempts.get(pid, 1)),
                    live_until=live_until(max_time),
                    error_code=code.value,
                    detail=detail,
                )
            else:
                await books.payouts.fail(tx_id, [pid], error_code=code.value, detail=detail)

    async def _dead(self, tx: TxRow, code: PayoutErrorCode, *, lane_sequence: int | None = None) -> None:
        """The envelope never landed and never will: its payouts go back to the queue (or fail when exhausted)."""
        require_transition(tx.state, T.DEAD)
        async with self.leadership.uow() as books:
            died = await books.envelopes.finish(
                tx.id,
                expected=[tx.state],
                state=T.DEAD,
                ledger=None,
                result_code=None,
                op_codes=None,
                error_code=code.value,
            )
            if not died:
                return
            await books.lanes.release_to_resync(tx.lane, tx.id, lane_sequence)
            await self.requeue_or_fail(books, tx_id=tx.id, tx_hash=tx.tx_hash, max_time=tx.max_time, code=code)
        if code is C.TX_INSUFFICIENT_FEE:
            self.fees.raise_for(len(tx.payout_ids))
        log.warning("stellar transaction dead", extra={"tx_id": tx.id, "code": code.value})

    async def requeue_or_fail(
        self, books: StellarBooks, *, tx_id: str, tx_hash: str, max_time: int, code: PayoutErrorCode
    ) -> None:
        attempts = await books.payouts.attempts(tx_id)
        retry = [p for p, n in attempts.items() if is_retryable(code) and n < self.o.max_tx_attempts]
        give_up = [p for p in attempts if p not in retry]
        if retry:
            await books.payouts.requeue(
                tx_id,
                retry,
                isolate=False,
                refund=0,
                delay_s=0,
                live_until=live_until(max_time),
                error_code=code.value,
                detail=f"envelope {tx_hash} never landed ({code.value})",
            )
        if give_up:
            await books.payouts.fail(
                tx_id,
                give_up,
                error_code=code.value,
                detail=f"envelope {tx_hash} never landed ({code.value}); attempts exhausted",
            )


__all__ = ["EnvelopeDriver", "attempts_exhausted"]
