"""The Stellar payout provider: classic payments (XLM, USDC) or the payout contract, signed by the signer service.

This facade implements the payouts provider ports. `create_payouts` only validates and records the payouts in
the provider's books (`stellar_payouts`, answer `pending`); `sync_status` reads the books. The rest lives beside
it, one job per module:

- `engine` + `leader`: one engine per provider per database (an advisory lock keyed without collisions), which
  `lanes` (envelopes on free source accounts, sequence numbers reserved by compare-and-set) and `driver` (each
  open envelope to an end, by the transition table of `states`) run for;
- `signing`: the signer's answers; `external`: operators' signatures through the admin API.

The database pool is the service's own, handed over by bootstrap (`bind_database`); a provider built with a
`database_url` (a standalone process, tests) opens and owns one instead. The rail's tables are its named stores
(`books.StellarBooks`): each step here, in `external` and in `statement` is one unit of work of the runtime on that
pool (`uow()`); the engine's run on the leader's session (`leader`); the signer's answers on the consumer's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
    StatementPage,
    WebhookEvent,
)
from prizeflow_payouts.adapters.stellar.books import StellarBooks, bind
from prizeflow_payouts.adapters.stellar.driver import EnvelopeDriver
from prizeflow_payouts.adapters.stellar.engine import StellarEngine
from prizeflow_payouts.adapters.stellar.external import ExternalSigning, ExternalSubmission
from prizeflow_payouts.adapters.stellar.lanes import LaneBuilder, fee_level
from prizeflow_payouts.adapters.stellar.leader import EngineLeadership
from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_payouts.adapters.stellar.rpc import SorobanRpcClient
from prizeflow_payouts.adapters.stellar.signing import SIGNED_ENVELOPE_MISMATCH, SignerResultsSink
from prizeflow_payouts.adapters.stellar.statement import FEE_ASSET, StellarStatement, fee_share
from prizeflow_payouts.adapters.stellar.states import PayoutRow, PayoutState, TxKind
from prizeflow_payouts.adapters.stellar.validation import refusal
from prizeflow_payouts.application.ports import (
    CreateOutcome,
    ExternalSigningError,
    RailProgress,
    SourceProgress,
)
from prizeflow_runtime.jobs import Scheduler
from prizeflow_runtime.sql_uow import SqlUnitOfWork, unit_of_work

C = PayoutErrorCode
_OWN_POOL_SIZE = 5


class StellarPayoutProvider:
    """The Stellar/Soroban rail's parts (`factory.stellar_rail`): payouts, batches, engine, signatures, statement."""

    provider_type = ProviderType.STELLAR

    def __init__(
        self, options: StellarOptions, *, engine: AsyncEngine | None = None, database_url: str | None = None
    ) -> None:
        self.o = options
        self._pool = engine
        self._database_url = database_url
        self._owned: AsyncEngine | None = None
        self._books: SqlUnitOfWork[StellarBooks] | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self.rpc = SorobanRpcClient(options.rpc_url, timeout_s=options.rpc_timeout_s)
        self.fees = fee_level(options)
        self.leadership = EngineLeadership(options.name)
        self.driver = EnvelopeDriver(options, self.rpc, self.fees, self.leadership)
        self.builder = LaneBuilder(options, self.rpc, self.fees, self.leadership)
        self.engine = StellarEngine(
            options,
            leadership=self.leadership,
            driver=self.driver,
            builder=self.builder,
            db=self._database,
        )
        self.signer_results = SignerResultsSink(options)
        self.external = ExternalSigning(options, self.rpc, self.uow)
        self.statements = StellarStatement(
            name=options.name,
            accounts=frozenset((options.funding_account, *options.channel_accounts)),
            contract_asset=options.contract_asset,
            rpc=self.rpc,
            uow=self.uow,
        )
        self._sync_waiters: list[tuple[str, asyncio.Future[PayoutRow | None]]] = []
        self._sync_flush: asyncio.Task[None] | None = None

    def bind_database(self, engine: AsyncEngine) -> None:
        """The service's pool (bootstrap): used, never disposed, by this provider."""
        if self._started:
            raise RuntimeError("bind the database before the provider starts")
        self._pool = engine

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            # Kept only once the books are ready: a start that failed (database down) is retried whole.
            db = self._pool
            if db is None:
                if self._database_url is None:
                    raise RuntimeError(f"stellar provider {self.o.name!r} has no database: bootstrap binds one")
                from prizeflow_runtime.db import create_engine

                db = self._owned = create_engine(self._database_url, pool_size=_OWN_POOL_SIZE)
            uow = unit_of_work(db, bind)
            try:
                await self.rpc.start()
                async with uow() as books:
                    await books.lanes.ensure(self.o.lanes, self.o.lane_role)
                    await self.leadership.ensure_key(books)
            except BaseException:
                if self._owned is not None:
                    await self._owned.dispose()
                    self._owned = None
                raise
            self._pool, self._books = db, uow
            self._started = True
            self.engine.start()

    def schedule(self, jobs: Scheduler) -> None:
        """The engine's passes on the process's scheduler (the bootstrap's, as for every rail)."""
        self.engine.schedule(jobs)

    async def close(self) -> None:
        await self.engine.stop()
        await self.rpc.close()
        self._started = False
        if self._owned is not None:
            await self._owned.dispose()
            self._owned = None
            self._pool = None
            self._books = None

    async def _database(self) -> AsyncEngine:
        """The pool, once the provider started (the engine's leader holds its lock on one of its connections)."""
        if not self._started:
            await self.start()
        assert self._pool is not None
        return self._pool

    @asynccontextmanager
    async def uow(self) -> AsyncIterator[StellarBooks]:
        """One unit of work of the runtime on the rail's books; the provider starts first if need be."""
        await self._database()
        assert self._books is not None
        async with self._books() as books:
            yield books

    # -- validation (before anything is built) --------------------------------------------------------------
    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:
        """Why this payout can never be paid by this provider, or None. Checked at the API and again here."""
        return refusal(self.o, instruction)

    # -- RewardPayoutProvider -------------------------------------------------------------------------------
    async def quote(self, instruction: PayoutInstruction) -> Quote:
        err = self.validate(instruction)
        if err is not None:
            raise PayoutProviderError(err)
        return Quote(
            quote_id=None,
            amount=instruction.amount,
            fee=Money(asset="XLM", amount=self.fees.current),
            receive_amount=instruction.amount,
        )

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        (out,) = await self.create_payouts([instruction])
        if isinstance(out, PayoutProviderError):
            raise out
        return out

    async def create_payouts(self, instructions: Sequence[PayoutInstruction]) -> list[CreateOutcome]:
        results: list[CreateOutcome | None] = [None] * len(instructions)
        valid: list[tuple[int, PayoutInstruction]] = []
        for n, instr in enumerate(instructions):
            err = self.validate(instr)
            if err is not None:
                results[n] = ProviderPayoutResult(
                    status=ProviderPayoutStatus.FAILED, idempotency_key=instr.idempotency_key, error=err
                )
            else:
                valid.append((n, instr))
        if valid:
            await self._database()  # a provider that cannot start says so as such, not as an unknown outcome
            try:
                async with self.uow() as books:
                    await books.payouts.record(self.o.name, [i for _, i in valid])
                    rows = await books.payouts.by_keys([i.idempotency_key for _, i in valid])
            except Exception as err:  # the books are unreachable: nothing recorded, or we do not know
                raise PayoutProviderError.of(
                    C.TIMEOUT_UNKNOWN_OUTCOME, f"stellar books unavailable: {type(err).__name__}", provider=self.o.name
                ) from err
            by_key = {r.idempotency_key: r for r in rows}
            for n, instr in valid:
                row = by_key.get(instr.idempotency_key)
                if row is None:
                    results[n] = PayoutProviderError.of(C.INTERNAL_ERROR, "payout not recorded", provider=self.o.name)
                elif (row.payout_id, row.asset, row.amount, row.destination) != (
                    instr.payout_id,
                    instr.amount.asset,
                    instr.amount.amount,
                    instr.destination.address,
                ):
                    results[n] = ProviderPayoutResult(
                        status=ProviderPayoutStatus.FAILED,
                        idempotency_key=instr.idempotency_key,
                        error=PayoutError.of(
                            C.DUPLICATE_REQUEST, "idempotency key used for a different payout", provider=self.o.name
                        ),
                    )
                else:
                    results[n] = self._result(row)
            self.engine.wake()
        return [r for r in results if r is not None]

    def _result(self, row: PayoutRow) -> ProviderPayoutResult:
        key = row.idempotency_key
        ref = f"stellar:{row.payout_id}"[:255]
        if row.state is PayoutState.PAID:
            return ProviderPayoutResult(
                status=ProviderPayoutStatus.PAID,
                idempotency_key=key,
                provider_ref=ref,
                tx_hash=row.tx_hash,
                fee=self._fee(row),
                raw_status=row.state.value,
            )
        if row.state is PayoutState.FAILED:
            code = PayoutErrorCode(str(row.error_code))  # CHECK: a failed payout has its code
            # The provider already retried what could be retried (new envelopes): its failure is final.
            error = PayoutError.of(
                code,
                (row.error_detail or code.value)[:2000],
                provider=self.o.name,
                provider_code=row.error_code,
                retryable=False,
            )
            return ProviderPayoutResult(
                status=ProviderPayoutStatus.FAILED,
                idempotency_key=key,
                provider_ref=ref,
                error=error,
                raw_status=row.state.value,
            )
        return ProviderPayoutResult(
            status=ProviderPayoutStatus.PENDING if row.state is PayoutState.QUEUED else ProviderPayoutStatus.SUBMITTED,
            idempotency_key=key,
            provider_ref=ref,
            tx_hash=row.current_hash,
            raw_status=row.state.value,
        )

    @staticmethod
    def _fee(row: PayoutRow) -> Money | None:
        """The payout's share of its transaction's network fee (XLM stroops), as the statement's FEE line shows it:
        the envelope's fee is what the network charges at most (the emulator charges all of it)."""
        if row.tx_fee is None or row.payout_id not in row.tx_payout_ids:
            return None
        share = fee_share(row.tx_fee, len(row.tx_payout_ids), row.tx_payout_ids.index(row.payout_id))
        return Money(asset=FEE_ASSET, amount=share) if share > 0 else None

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        row = await self._lookup(lookup.idempotency_key)
        if row is None:
            raise PayoutProviderError.of(
                C.PAYOUT_NOT_FOUND, "stellar: no payout under this idempotency key", provider=self.o.name
            )
        return self._result(row)

    async def _lookup(self, key: str) -> PayoutRow | None:
        """Concurrent lookups of one event-loop turn share one query (the worker syncs hundreds at a time)."""
        fut: asyncio.Future[PayoutRow | None] = asyncio.get_running_loop().create_future()
        self._sync_waiters.append((key, fut))
        if self._sync_flush is None or self._sync_flush.done():
            self._sync_flush = asyncio.create_task(self._flush_lookups())
        return await fut

    async def _flush_lookups(self) -> None:
        await asyncio.sleep(0)
        waiters, self._sync_waiters = self._sync_waiters, []
        if not waiters:
            return
        try:
            async with self.uow() as books:
                rows = await books.payouts.by_keys(list({k for k, _ in waiters}))
        except Exception as err:  # noqa: BLE001 - handed to every waiter
            for _, fut in waiters:
                if not fut.done():
                    fut.set_exception(
                        PayoutProviderError.of(C.PROVIDER_UNAVAILABLE, f"stellar books: {err}", provider=self.o.name)
                    )
            return
        by_key = {r.idempotency_key: r for r in rows}
        for key, fut in waiters:
            if not fut.done():
                fut.set_result(by_key.get(key))

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        raise PayoutProviderError.of(
            C.UNSUPPORTED_OPERATION, "a Stellar payout cannot be cancelled once handed over", provider=self.o.name
        )

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise PayoutProviderError.of(
            C.UNSUPPORTED_OPERATION, "the Stellar provider has no webhooks", provider=self.o.name
        )

    # -- progress (the `progress` part; the worker's gauges; any replica, read from the books) -------------------------
    async def progress(self) -> RailProgress:
        names = self.o.lane_names
        async with self.uow() as books:
            rows = await books.lanes.progress(list(names))
            waiting = await books.payouts.oldest_waiting_s(self.o.name)
        sources = tuple(
            SourceProgress(names[account], sequence, advanced_at)
            for account, sequence, advanced_at in sorted(rows, key=lambda r: names[r[0]])
        )
        return RailProgress(sources=sources, oldest_waiting_s=max(0.0, waiting))

    # -- ListsStatement (reconciliation) ----------------------------------------------------------------------
    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """What the network did with the funding and channel accounts in [since, until) (`statement.py`)."""
        return await self.statements.statement(since, until, cursor)

    # -- the engine -----------------------------------------------------------------------------------------
    async def tick(self) -> bool:
        """One engine pass (leader only)."""
        return await self.engine.tick()

    # -- SignerResultsSink (consumer `payouts-signer-results`, inside the runtime's inbox transaction) ---------
    async def on_signer_results(self, session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None:
        await self.signer_results.apply(session, envelopes)
        self.engine.wake()

    # -- ExternalSigning (admin API) -------------------------------------------------------------------------
    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None:
        return await self.external.unsigned_transaction(payout_id)

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> ExternalSubmission:
        done = await self.external.submit_signed(payout_id, signed_xdr)
        self.engine.wake()
        return done

    # -- settlement rules, reachable for direct tests on books of the caller's transaction ------------------
    async def _after_failed_tx(
        self, books: StellarBooks, tx: Mapping[str, Any], result_code: str, op_codes: Sequence[str]
    ) -> None:
        await self.driver.after_failed_tx(
            books,
            tx_id=tx["id"],
            kind=TxKind(tx["kind"]),
            payout_ids=list(tx["payout_ids"]),
            max_time=int(tx["max_time"]),
            result_code=result_code,
            op_codes=op_codes,
        )

    async def _requeue_or_fail(self, books: StellarBooks, tx: Mapping[str, Any], code: PayoutErrorCode) -> None:
        await self.driver.requeue_or_fail(
            books, tx_id=tx["id"], tx_hash=tx["tx_hash"], max_time=int(tx["max_time"]), code=code
        )


__all__ = [
    "SIGNED_ENVELOPE_MISMATCH",
    "ExternalSigningError",
    "ExternalSubmission",
    "StellarOptions",
    "StellarPayoutProvider",
]
