"""`TonWalletProvider`: pays TON, or a jetton such as USDT, from one wallet v4r2 — or, with `wallet_version:
highload_v3`, from a highload wallet v3 in batches (`batching.py`: many payouts per message, many messages in
flight) — signed by the signer service. What follows is the v4r2 lane.

`create_payout` only queues the payout in the provider's books (`ton_payouts`) and answers `pending`; a driver
(one per provider across replicas: an advisory lock) sends one message at a time:

1. no message in flight: take the oldest queued payout, read the wallet's seqno, build the message (valid for
   `validity_s`), store it and stage a TonSignatureRequested in the outbox, in one transaction;
2. signed (TonMessageSigned, checked to be exactly the message built): send the SAME message again every pass
   until it is seen among the wallet's transactions or `valid_until` (+ margin) has passed;
3. seen: paid (its out-message exists, and for a jetton the jetton wallet did not bounce it) or failed with
   `insufficient_provider_funds` (the seqno was consumed, nothing moved; a jetton bounce is read from the jetton
   wallet's out-messages); seen in our wallet but the jetton wallet's transaction not yet: landed, outcome
   pending, waited for (never expired). Not seen (paged back by lt to its build time) after `valid_until` +
   margin, the wallet's seqno unmoved and no sendBoc answering "seqno moved": it provably never lands, so the
   payout is queued again for a new message (a new request id: never a reused number) with the seqno read
   again (`max_messages` times, then failed `tx_expired`, retryable by the worker). A moved seqno without our
   transaction (also for an unsigned or out-of-band message) stops the wallet: an operator resolves it.

The provider reference is the external message's hash (its normalized hash: no state init, body in a ref).
A paid payout's result carries its network fee in nanotons of TON (`ton_payouts.fee`, recorded by the driver from
the landed transaction: a v4r2 message's whole fee, a batch item's share of its batch's two transactions, split as
the statement splits them), so payouts books it and reconciliation matches the statement's FEE lines.
A retryable failure is reported once as `failed`; afterwards `sync_status` answers `payout_not_found` (nothing
moved, creating again with the same key is safe) and `create_payout` queues it again.

The provider's tables are its books (books.py), bound like every other store: the bootstrap hands the rail the
service's pool (`bind_database`), and every part of the rail goes through the one unit of work built on it
(`uow`: `async with self.uow() as books:`); the signer's answers are applied on the inbox's own session.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
    StatementPage,
    WebhookEvent,
)
from prizeflow_payouts.adapters.ton.batching import TonBatchDriver
from prizeflow_payouts.adapters.ton.books import SqlTonBooks, ton_books
from prizeflow_payouts.adapters.ton.driver import TonDriver
from prizeflow_payouts.adapters.ton.options import TonOptions
from prizeflow_payouts.adapters.ton.signatures import BATCHES, MESSAGES, TonSignatures, TonSubmission
from prizeflow_payouts.adapters.ton.statement import TonStatement
from prizeflow_payouts.adapters.ton.toncenter import ToncenterClient
from prizeflow_payouts.application.ports import RailProgress, SourceProgress
from prizeflow_runtime.jobs import Scheduled, Scheduler, Tick
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_ton.addresses import InvalidTonAddressError, parse_address

log = logging.getLogger(__name__)
C = PayoutErrorCode
P = ProviderPayoutStatus
# The driver's longest pause while passes find nothing in flight and nothing due; a payout queued here wakes it.
IDLE_MAX_S = 5.0


def _row(mapping: Any) -> dict[str, Any]:
    return dict(mapping) if mapping is not None else {}


class _DriverPass:
    """One pass of the driver: at once again while it changes something; `poll_s` later while something is in
    flight or due; otherwise an idle pause, doubling from `poll_s` up to `IDLE_MAX_S` (a wake, a payout queued or a
    signature back in this process, ends it). A pass that fails is logged and the next one waits `poll_s`."""

    def __init__(self, provider: TonWalletProvider) -> None:
        self.provider = provider

    async def tick(self) -> Tick:
        if not self.provider.running:
            return self.provider.o.poll_s
        try:
            if await self.provider.tick():
                return 0.0
        except Exception:
            log.exception("ton driver pass failed; retrying", extra={"provider": self.provider.name})
            return self.provider.o.poll_s
        return self.provider.o.poll_s if self.provider.driver.waiting else False


class TonWalletProvider:
    provider_type = ProviderType.TON_WALLET

    def __init__(
        self,
        options: TonOptions,
        *,
        client: ToncenterClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.o = options
        self.name = options.name
        self.client = client or ToncenterClient(options.api_url, api_key=options.api_key, timeout_s=options.timeout_s)
        self.clock = clock
        self._uow: SqlUnitOfWork[SqlTonBooks] | None = None
        # The driver's passes, a job on the process's scheduler (`schedule`); they stand by while not `running`.
        self._driving: Scheduled | None = None
        self.running = False
        self.driver: TonDriver | TonBatchDriver = (
            TonBatchDriver(options, self.client, uow=self._books, clock=clock)
            if options.highload
            else TonDriver(options, self.client, uow=self._books, clock=clock)
        )
        # One signature pipeline, once per message format: a v4r2 message is a batch of one.
        self.signatures = TonSignatures(options, MESSAGES, uow=self._books, wake=self.wake, clock=clock)
        self.batch_signatures = TonSignatures(options, BATCHES, uow=self._books, wake=self.wake, clock=clock)
        self.statements = TonStatement(options, self.client, self._books)

    @property
    def native(self) -> str:
        """The chain's own asset (fees are paid in it): the provider's non-jetton asset, else TON."""
        return next((a.code for a in self.o.assets.values() if not a.is_jetton), "TON")

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def bind_database(self, engine: AsyncEngine) -> None:
        self._uow = ton_books(engine, self.name)

    @property
    def uow(self) -> SqlUnitOfWork[SqlTonBooks]:
        """The rail's unit of work (books.py): each use begins a session and commits it when the block ends."""
        if self._uow is None:
            raise RuntimeError(f"ton provider {self.name!r} has no database: bootstrap binds one")
        return self._uow

    def _books(self) -> AbstractAsyncContextManager[SqlTonBooks]:
        """One unit of work, on the pool bound by then (the parts are built before the bootstrap binds it)."""
        return self.uow()

    def schedule(self, jobs: Scheduler) -> None:
        """The driver's passes on the process's scheduler (the bootstrap's, as for every rail)."""
        if self._driving is None:
            self._driving = jobs.every(
                self.o.poll_s,
                _DriverPass(self),
                name=f"ton-driver-{self.name}",
                idle_max_s=max(IDLE_MAX_S, self.o.poll_s),
                cancel_on_stop=True,
            )

    async def start(self) -> None:
        await self.client.start()
        self.running = True
        self.wake()

    async def close(self) -> None:
        """After the scheduler stopped the passes (the bootstrap's shutdown order)."""
        self.running = False
        await self.client.close()

    def wake(self) -> None:
        """A payout created or a signature back: the driver's next pass now, not after `poll_s`."""
        if self._driving is not None:
            self._driving.wake()

    # -- validation --------------------------------------------------------------------------------------------

    def _error(self, code: PayoutErrorCode, message: str, **kw: Any) -> PayoutError:
        return PayoutError.of(code, message, provider=self.name, **kw)

    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:  # noqa: PLR0911 - one per rule
        dest = instruction.destination
        if instruction.amount.asset not in self.o.assets:
            return self._error(C.UNSUPPORTED_ASSET, f"{instruction.amount.asset} is not paid by {self.name}")
        if dest.type is not DestinationType.TON_WALLET:
            return self._error(C.INVALID_DESTINATION, f"{self.name} pays ton_wallet destinations only")
        if dest.memo is not None:
            return self._error(C.INVALID_DESTINATION, "a TON payout carries no memo")
        try:
            address = parse_address(dest.address)
        except InvalidTonAddressError as err:
            return self._error(C.INVALID_DESTINATION, str(err))
        if address.test_only and not self.o.testnet:
            return self._error(C.INVALID_DESTINATION, "a testnet-only address on mainnet")
        ours = {self.o.wallet, *(a.jetton_wallet for a in self.o.assets.values() if a.jetton_wallet)}
        if address.raw in ours:
            return self._error(C.INVALID_DESTINATION, "the destination is the paying wallet itself")
        return None

    # -- the contract ------------------------------------------------------------------------------------------

    async def quote(self, instruction: PayoutInstruction) -> Quote:
        err = self.validate(instruction)
        if err is not None:
            raise PayoutProviderError(err)
        asset = self.o.assets[instruction.amount.asset]
        fee = Money(asset=self.native, amount=asset.attach_nanotons if asset.is_jetton else 0)
        return Quote(amount=instruction.amount, fee=fee, receive_amount=instruction.amount)

    async def create_payouts(self, instructions: Sequence[PayoutInstruction]) -> Sequence[ProviderPayoutResult]:
        """Queue each (highload lane: the driver batches what is queued; one answer per instruction, in order)."""
        return [await self.create_payout(i) for i in instructions]

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        err = self.validate(instruction)
        if err is not None:
            return ProviderPayoutResult(status=P.FAILED, idempotency_key=instruction.idempotency_key, error=err)
        address = parse_address(instruction.destination.address)
        key = instruction.idempotency_key
        async with self.uow() as books:
            # Either form of the address is accepted; the books hold the raw one (and never bounce: store.py).
            queued = await books.payouts.queue(
                key,
                payout_id=instruction.payout_id,
                asset=instruction.amount.asset,
                amount=instruction.amount.amount,
                destination=address.raw,
            )
            row = _row(queued)
            same = (row["payout_id"], row["asset"], row["amount"], row["destination"]) == (
                instruction.payout_id,
                instruction.amount.asset,
                instruction.amount.amount,
                address.raw,
            )
            if not same:
                error = self._error(C.DUPLICATE_REQUEST, "this idempotency key names another payout")
                return ProviderPayoutResult(status=P.FAILED, idempotency_key=instruction.idempotency_key, error=error)
            if row["state"] == "failed" and row["retryable"]:
                row = _row(await books.payouts.requeue_failed(key))
        self.wake()
        return self._result(row)

    def _result(self, row: Mapping[str, Any]) -> ProviderPayoutResult:
        key = str(row["idempotency_key"])
        ref = row["message_hash"]
        state = row["state"]
        if state == "paid":
            return ProviderPayoutResult(
                status=P.PAID,
                idempotency_key=key,
                provider_ref=ref,
                tx_hash=row["tx_hash"],
                fee=self._fee(row),
                raw_status="landed",
            )
        if state == "failed":
            error = PayoutError.of(
                C(row["error_code"]),
                row["detail"] or row["error_code"],
                provider=self.name,
                retryable=bool(row["retryable"]),
            )
            return ProviderPayoutResult(status=P.FAILED, idempotency_key=key, provider_ref=ref, error=error)
        status = P.SUBMITTED if ref is not None else P.PENDING
        return ProviderPayoutResult(status=status, idempotency_key=key, provider_ref=ref, raw_status=state)

    def _fee(self, row: Mapping[str, Any]) -> Money | None:
        """The network fee the payout's transaction cost it, in nanotons of the native asset, as the statement's
        FEE lines show it: a v4r2 message's whole transaction fee, a batch item's share of its batch's
        (`ton_payouts.fee`, recorded when the driver read the transaction). None: not known, or nothing."""
        fee = row.get("fee")
        if fee is None or int(fee) <= 0:
            return None
        return Money(asset=self.native, amount=int(fee))

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        async with self.uow() as books:
            row = await books.payouts.get(lookup.idempotency_key)
            if row is None:
                raise PayoutProviderError.of(C.PAYOUT_NOT_FOUND, "no such payout in the TON books", provider=self.name)
            if row["state"] == "failed" and row["retryable"]:
                if row["reported"]:
                    raise PayoutProviderError.of(
                        C.PAYOUT_NOT_FOUND,
                        f"the last attempt failed ({row['error_code']}) and moved nothing: create again",
                        provider=self.name,
                    )
                await books.payouts.reported(lookup.idempotency_key)
        return self._result(row)

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        raise PayoutProviderError.of(
            C.UNSUPPORTED_OPERATION, "a TON payout cannot be cancelled once queued", provider=self.name
        )

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise PayoutProviderError.of(C.UNSUPPORTED_OPERATION, "the TON provider has no webhooks", provider=self.name)

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """What the wallet's transactions did in [since, until) (`statement.py`); `ListsStatement`."""
        return await self.statements.statement(since, until, cursor)

    # -- delegated: the driver, the signatures -----------------------------------------------------------------

    async def tick(self) -> bool:
        """One driver pass; True if it changed something."""
        return await self.driver.tick()

    async def on_signer_results(self, session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None:
        # Each answers only its own request ids (ton_messages / ton_batches): both run, whatever the version.
        await self.signatures.on_signer_results(session, envelopes)
        await self.batch_signatures.on_signer_results(session, envelopes)

    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None:
        if self.o.highload:
            return await self.batch_signatures.unsigned_transaction(payout_id)
        return await self.signatures.unsigned_transaction(payout_id)

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> TonSubmission:
        if self.o.highload:
            return await self.batch_signatures.submit_signed(payout_id, signed_xdr)
        return await self.signatures.submit_signed(payout_id, signed_xdr)

    # -- progress (the `progress` part; the worker's gauges: the "source stuck" alert reads them) ----------------------

    async def progress(self) -> RailProgress:
        """v4r2: the last seqno a message of ours consumed; highload: the last batch's query sequence number."""
        async with self.uow() as books:
            landed = await (books.batches.progress() if self.o.highload else books.wallet_progress())
            waiting = await books.payouts.oldest_waiting_s()
        seqno, at = (landed[0] + 1, landed[1]) if landed is not None else (0, 0.0)
        return RailProgress(sources=(SourceProgress("wallet", seqno, at),), oldest_waiting_s=waiting)


__all__ = ["TonWalletProvider"]
