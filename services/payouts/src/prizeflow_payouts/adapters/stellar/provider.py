"""The Stellar payout provider: classic payments (XLM, USDC) or the payout contract, signed by the signer service.

`create_payouts` only validates and records the payouts in the provider's books (`stellar_payouts`, answer
`pending`); an engine (one leader per database, a PostgreSQL advisory lock) turns queued payouts into envelopes
and drives each envelope to an end. `sync_status` reads the books. Never twice on the ledger:

- one lane per source account (the funding account or a channel account), one envelope in flight per lane
  (a unique index), the sequence number reserved with a compare-and-set on `stellar_lanes`;
- a payout is in at most one live envelope; it goes back to the queue only when that envelope is provably
  dead: `getTransaction` says NOT_FOUND while the network's latest ledger closed after the envelope's upper time
  bound, or after its sequence number was consumed by another transaction (read before getTransaction);
- an envelope is resubmitted unchanged until it lands or dies; only then a new one is built (new attempt);
- a failed transaction moved nothing: the payouts whose operation failed get its code, the others go back to
  the queue without penalty (a contract call that failed with many winners is split into single-winner calls);
- the signer signs at most one live transaction per payout, so payouts of a signed envelope that ended (failed,
  or dead by a consumed sequence number) are rebuilt only once its upper time bound has passed (plus a margin
  for the ledger clock): the signer cannot know the first can no longer land, and would refuse;
- a signed envelope is accepted only if it is exactly the transaction built (its hash over the received bytes
  equals the stored one) with a valid signature; anything else is never submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from stellar_sdk import Keypair
from stellar_sdk.exceptions import BadSignatureError

import prizeflow_stellar as ps
from prizeflow_contracts.envelope import Envelope, event_id_for, new_event
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError, is_retryable
from prizeflow_contracts.events.signer import (
    SignatureRefusalCode,
    SignatureRefused,
    SignatureRequested,
    TransactionSigned,
)
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutInstruction,
    PayoutLookup,
    ProviderCapabilities,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
    WebhookEvent,
)
from prizeflow_payouts.adapters.stellar import classify
from prizeflow_payouts.adapters.stellar import store as q
from prizeflow_payouts.adapters.stellar.rpc import RpcUnavailableError, SorobanRpcClient
from prizeflow_payouts.adapters.stellar.settings import StellarMode
from prizeflow_payouts.application.ports import CreateOutcome, ExternalSigningError
from prizeflow_runtime.outbox import add_events

log = logging.getLogger(__name__)

C = PayoutErrorCode
_ENGINE_LOCK_BASE: Final = 0x5354_454C_4C41_0000  # "STELLA..": one engine leader per provider per database
STELLAR_SCALE: Final = 7
# stellar_txs.error_code of a TransactionSigned that is not exactly the transaction built (never submitted).
SIGNED_ENVELOPE_MISMATCH: Final = "signed_envelope_mismatch"


def _live_until(tx: Mapping[str, Any]) -> int:
    """When a signed envelope's payouts may be rebuilt: once the signer would sign another transaction for them."""
    return int(tx["max_time"]) + ps.TIME_BOUND_MARGIN_S + 1


@dataclass(frozen=True)
class StellarOptions:
    name: str
    mode: StellarMode
    live_execution: bool
    network_passphrase: str
    rpc_url: str
    funding_account: str
    channel_accounts: tuple[str, ...]
    contract_id: str | None
    method_name: str
    contract_asset: str
    assets: tuple[str, ...]
    max_fee_stroops: int
    base_fee: int = ps.BASE_FEE_STROOPS
    max_ops_per_tx: int = 100
    validity_s: int = 60
    max_tx_attempts: int = 5
    poll_ms: int = 2500
    max_polls: int = 20
    reconcile_ms: int = 60_000
    resign_after_s: float = 5.0
    tick_s: float = 0.05
    source: str = "/prizeflow/payouts"
    rpc_timeout_s: float = 10.0

    @property
    def lanes(self) -> tuple[str, ...]:
        return self.channel_accounts or (self.funding_account,)


@dataclass(frozen=True, slots=True)
class ExternalSubmission:
    tx_id: str
    tx_hash: str
    payout_ids: tuple[str, ...]


def _now() -> float:
    return time.time()


def _attempts_exhausted(attempts: int, limit: int) -> bool:
    return attempts >= limit


class StellarPayoutProvider:
    """`RewardPayoutProvider` + `BatchPayoutProvider` + `ManagedProvider` for Stellar/Soroban."""

    provider_type = ProviderType.STELLAR

    def __init__(self, options: StellarOptions, *, database_url: str) -> None:
        self.o = options
        self.capabilities = ProviderCapabilities(
            supports_cancel=False,
            supports_quote=True,
            supports_webhooks=False,
            async_confirmation=True,
            requires_signature=True,
            supports_batching=True,
            assets=options.assets,
            destination_types=(DestinationType.STELLAR_ACCOUNT,),
        )
        self._database_url = database_url
        self._db: AsyncEngine | None = None
        self.rpc = SorobanRpcClient(options.rpc_url, timeout_s=options.rpc_timeout_s)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.wake = asyncio.Event()
        self._leader: AsyncConnection | None = None
        self._base_fee = options.base_fee
        self._network_time = 0
        self._network_time_at = 0.0
        self._sync_waiters: list[tuple[str, asyncio.Future[Mapping[str, Any] | None]]] = []
        self._sync_flush: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._db is not None:
                return
            from prizeflow_runtime.db import create_engine

            # Kept only once the lanes are ensured: a start that failed (database down) is retried whole.
            db = create_engine(self._database_url, pool_size=5)
            try:
                await self.rpc.start()
                async with db.begin() as conn:
                    for lane in self.o.lanes:
                        role = "channel" if self.o.channel_accounts else "funding"
                        await conn.execute(q.ENSURE_LANE, {"account": lane, "role": role})
            except BaseException:
                await db.dispose()
                raise
            self._db = db
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name=f"stellar-engine-{self.o.name}")

    async def close(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._leader is not None:
            with contextlib.suppress(Exception):
                await self._leader.close()
            self._leader = None
        await self.rpc.close()
        if self._db is not None:
            await self._db.dispose()
            self._db = None

    async def _engine(self) -> AsyncEngine:
        if self._db is None:
            await self.start()
        assert self._db is not None
        return self._db

    # -- validation (before anything is built) --------------------------------------------------------------
    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:  # noqa: PLR0911 - one exit per rule
        """Why this payout can never be paid by this provider, or None. Checked at the API and again here."""
        name = self.o.name
        dest = instruction.destination
        if dest.type is not DestinationType.STELLAR_ACCOUNT:
            return PayoutError.of(
                C.INVALID_DESTINATION, "stellar pays stellar_account destinations only", provider=name
            )
        kind = ps.address_kind(dest.address)
        if kind is ps.AddressKind.MUXED:
            return PayoutError.of(
                C.INVALID_DESTINATION,
                "muxed (M...) destinations are not supported: the signer's PaymentIntent accepts G... accounts only",
                provider=name,
            )
        if kind is not ps.AddressKind.ACCOUNT:
            return PayoutError.of(
                C.INVALID_DESTINATION,
                f"{dest.address!r} is not a valid Stellar account (StrKey checksum)",
                provider=name,
            )
        if dest.memo is not None:
            return PayoutError.of(
                C.INVALID_DESTINATION, "memos are not supported by the Stellar provider", provider=name
            )
        money = instruction.amount
        if money.asset not in self.o.assets or money.asset not in ps.supported_asset_codes():
            return PayoutError.of(C.UNSUPPORTED_ASSET, f"{money.asset} is not payable on Stellar here", provider=name)
        if self.o.mode is StellarMode.CONTRACT and money.asset != self.o.contract_asset:
            return PayoutError.of(
                C.UNSUPPORTED_ASSET,
                f"the payout contract pays {self.o.contract_asset}, not {money.asset}",
                provider=name,
            )
        if ASSETS[money.asset].scale != STELLAR_SCALE:
            return PayoutError.of(C.UNSUPPORTED_ASSET, f"{money.asset} is not a 7-decimal asset", provider=name)
        try:
            ps.check_stroops(money.amount)
        except ps.AmountError as err:
            return PayoutError.of(C.AMOUNT_ABOVE_MAXIMUM, str(err), provider=name)
        if not ps.is_valid_idempotency_key(instruction.idempotency_key):
            return PayoutError.of(C.INVALID_REQUEST, "idempotency key must be [A-Za-z0-9:_-]{1,255}", provider=name)
        if dest.address in (self.o.funding_account, *self.o.channel_accounts):
            return PayoutError.of(C.INVALID_DESTINATION, "a payout cannot go to our own source account", provider=name)
        return None

    # -- RewardPayoutProvider -------------------------------------------------------------------------------
    async def quote(self, instruction: PayoutInstruction) -> Quote:
        err = self.validate(instruction)
        if err is not None:
            raise PayoutProviderError(err)
        per_op = self._base_fee
        return Quote(
            quote_id=None,
            amount=instruction.amount,
            fee=Money(asset="XLM", amount=per_op),
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
            db = await self._engine()
            try:
                async with db.begin() as conn:
                    await conn.execute(
                        q.INSERT_PAYOUTS,
                        {
                            "provider": self.o.name,
                            "keys": [i.idempotency_key for _, i in valid],
                            "ids": [i.payout_id for _, i in valid],
                            "assets": [i.amount.asset for _, i in valid],
                            "amounts": [i.amount.amount for _, i in valid],
                            "dests": [i.destination.address for _, i in valid],
                        },
                    )
                    rows = (
                        (await conn.execute(q.PAYOUTS_BY_KEY, {"keys": [i.idempotency_key for _, i in valid]}))
                        .mappings()
                        .all()
                    )
            except Exception as err:  # the books are unreachable: nothing recorded, or we do not know
                raise PayoutProviderError.of(
                    C.TIMEOUT_UNKNOWN_OUTCOME, f"stellar books unavailable: {type(err).__name__}", provider=self.o.name
                ) from err
            by_key = {r["idempotency_key"]: r for r in rows}
            for n, instr in valid:
                row = by_key.get(instr.idempotency_key)
                if row is None:
                    results[n] = PayoutProviderError.of(C.INTERNAL_ERROR, "payout not recorded", provider=self.o.name)
                elif (row["payout_id"], row["asset"], int(row["amount"]), row["destination"]) != (
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
                    results[n] = self._result(dict(row))
            self.wake.set()
        return [r for r in results if r is not None]

    def _result(self, row: Mapping[str, Any]) -> ProviderPayoutResult:
        state = row["state"]
        key = row["idempotency_key"]
        ref = f"stellar:{row['payout_id']}"[:255]
        if state == "paid":
            return ProviderPayoutResult(
                status=ProviderPayoutStatus.PAID,
                idempotency_key=key,
                provider_ref=ref,
                tx_hash=row["tx_hash"],
                raw_status="paid",
            )
        if state == "failed":
            code = PayoutErrorCode(row["error_code"])
            # The provider already retried what could be retried (new envelopes): its failure is final.
            error = PayoutError.of(
                code,
                (row["error_detail"] or code.value)[:2000],
                provider=self.o.name,
                provider_code=row["error_code"],
                retryable=False,
            )
            return ProviderPayoutResult(
                status=ProviderPayoutStatus.FAILED,
                idempotency_key=key,
                provider_ref=ref,
                error=error,
                raw_status="failed",
            )
        return ProviderPayoutResult(
            status=ProviderPayoutStatus.PENDING if state == "queued" else ProviderPayoutStatus.SUBMITTED,
            idempotency_key=key,
            provider_ref=ref,
            tx_hash=row.get("current_hash"),
            raw_status=state,
        )

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        row = await self._lookup(lookup.idempotency_key)
        if row is None:
            raise PayoutProviderError.of(
                C.PAYOUT_NOT_FOUND, "stellar: no payout under this idempotency key", provider=self.o.name
            )
        return self._result(row)

    async def _lookup(self, key: str) -> Mapping[str, Any] | None:
        """Concurrent lookups of one event-loop turn share one query (the worker syncs hundreds at a time)."""
        fut: asyncio.Future[Mapping[str, Any] | None] = asyncio.get_running_loop().create_future()
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
            db = await self._engine()
            async with db.connect() as conn:
                rows = (await conn.execute(q.PAYOUTS_BY_KEY, {"keys": list({k for k, _ in waiters})})).mappings().all()
        except Exception as err:  # noqa: BLE001 - handed to every waiter
            for _, fut in waiters:
                if not fut.done():
                    fut.set_exception(
                        PayoutProviderError.of(C.PROVIDER_UNAVAILABLE, f"stellar books: {err}", provider=self.o.name)
                    )
            return
        by_key = {r["idempotency_key"]: dict(r) for r in rows}
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

    # -- the engine -----------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                if await self._lead():
                    busy = await self.tick()
            except Exception:
                log.exception("stellar engine pass failed; retrying")
                await self._drop_leadership()
                await asyncio.sleep(0.5)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.o.tick_s if self._leader else 1.0)
                self.wake.clear()

    async def _lead(self) -> bool:
        """One engine per provider per database: a session advisory lock, released if the process dies."""
        if self._leader is not None:
            return True
        db = await self._engine()
        conn = await db.connect()
        key = _ENGINE_LOCK_BASE + (zlib.crc32(self.o.name.encode()) & 0xFFFF)
        got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar()
        await conn.commit()
        if got:
            self._leader = conn
            log.info("stellar engine leads", extra={"provider": self.o.name})
            return True
        await conn.close()
        return False

    async def _drop_leadership(self) -> None:
        if self._leader is not None:
            with contextlib.suppress(Exception):
                await self._leader.close()
            self._leader = None

    async def tick(self) -> bool:
        """One pass: drive open envelopes, then build new ones on free lanes. True if there was work."""
        driven = await self._drive_open()
        return await self._build() or driven

    # -- building -----------------------------------------------------------------------------------------
    async def _build(self) -> bool:
        db = await self._engine()
        async with db.connect() as conn:
            if self.o.live_execution:
                lanes = (await conn.execute(q.FREE_LANES, {"lanes": list(self.o.lanes)})).all()
            else:
                lanes = (
                    await conn.execute(
                        text("SELECT account, sequence FROM stellar_lanes WHERE account = ANY(:l)"),
                        {"l": list(self.o.lanes)},
                    )
                ).all()
        if lanes and time.monotonic() - self._network_time_at > 0.5:
            # Time bounds follow the network's clock (its latest ledger close), not only ours.
            try:
                latest = await self.rpc.call("getLatestLedger")
                self._network_time = int(latest.get("closeTime") or 0)
                self._network_time_at = time.monotonic()
            except RpcUnavailableError as err:
                log.warning("getLatestLedger failed: %s", err)
        built = 0
        for lane, stored in lanes:
            sequence = stored if stored is not None else await self._resync(lane, None)
            if sequence is None:
                continue
            made = await self._build_on(lane, int(sequence))
            if made == 0:
                break
            built += made
        return built > 0

    async def _resync(self, lane: str, old: int | None) -> int | None:
        """Read the lane's sequence from the network and store it if nobody changed the lane (compare-and-set)."""
        try:
            info = await self.rpc.account(lane)
        except RpcUnavailableError as err:
            log.warning("sequence resync of %s failed: %s", lane, err)
            return None
        if info is None:
            log.error("source account %s does not exist on the network", lane)
            return None
        db = await self._engine()
        async with db.begin() as conn:
            res = await conn.execute(q.SET_LANE_SEQUENCE, {"lane": lane, "old": old, "new": info.sequence})
        return info.sequence if res.rowcount == 1 else None

    async def _build_on(self, lane: str, current: int) -> int:
        db = await self._engine()
        limit = self.o.max_ops_per_tx
        assets = [self.o.contract_asset] if self.o.mode is StellarMode.CONTRACT else list(self.o.assets)
        async with db.begin() as conn:
            rows = (
                (await conn.execute(q.QUEUED, {"provider": self.o.name, "limit": limit, "assets": assets}))
                .mappings()
                .all()
            )
            if not rows:
                return 0
            if rows[0]["isolate"]:
                rows = rows[:1]
            tx_id = f"stx-{uuid.uuid4().hex}"
            seq = current + 1
            valid_until = max(int(_now()), self._network_time) + self.o.validity_s
            operation_source = self.o.funding_account if self.o.channel_accounts else None
            fee_level = self._base_fee
            try:
                built = await self._assemble(
                    lane=lane,
                    seq=seq,
                    rows=[dict(r) for r in rows],
                    valid_until=valid_until,
                    operation_source=operation_source,
                    base_fee=fee_level,
                )
            except (ps.BuildError, ps.AmountError, ps.InvalidAddressError, ValueError) as err:
                log.error("could not build a transaction: %s", err)
                ids = [r["payout_id"] for r in rows]
                if len(ids) == 1:
                    await conn.execute(q.FAIL_QUEUED, {"ids": ids, "detail": str(err)[:1000]})
                else:  # find the culprit: build them one by one
                    await conn.execute(q.ISOLATE, {"ids": ids})
                return 1
            except RpcUnavailableError as err:
                log.warning("simulation unavailable: %s", err)
                return 0
            live = self.o.live_execution
            reserve = q.RESERVE_LANE if live else q.RESERVE_SEQUENCE
            res = await conn.execute(reserve, {"lane": lane, "seq": seq, "old": current, "tx": tx_id})
            if res.rowcount != 1:
                raise _LaneMoved(lane)
            request = built.signature_request(
                request_id=tx_id, network_passphrase=self.o.network_passphrase, max_fee_stroops=self.o.max_fee_stroops
            )
            await conn.execute(
                q.INSERT_TX,
                {
                    "id": tx_id,
                    "provider": self.o.name,
                    "lane": lane,
                    "sequence": seq,
                    "kind": "contract" if self.o.mode is StellarMode.CONTRACT else "payments",
                    "payout_ids": list(built.payout_ids),
                    "state": "signing" if live else "built",
                    "unsigned_xdr": built.envelope_xdr,
                    "sign_request": request.model_dump_json(),
                    "tx_hash": built.tx_hash,
                    "fee": built.fee,
                    "max_time": built.max_time,
                    "sign_requests": 1 if live else 0,
                    "check_in_s": self.o.resign_after_s if live else 10 * 365 * 86400,
                },
            )
            await conn.execute(q.ASSIGN_PAYOUTS, {"tx": tx_id, "payout_ids": list(built.payout_ids)})
            if live:
                await add_events(conn, [self._sign_event(tx_id, request, 1)])
        log.info(
            "stellar transaction built",
            extra={"tx_id": tx_id, "lane": lane, "sequence": seq, "payouts": len(rows), "live": live},
        )
        return 1

    async def _assemble(
        self,
        *,
        lane: str,
        seq: int,
        rows: Sequence[Mapping[str, Any]],
        valid_until: int,
        operation_source: str | None,
        base_fee: int,
    ) -> ps.BuiltTransaction:
        if self.o.mode is StellarMode.PAYMENTS:
            return ps.build_payments(
                source_account=lane,
                sequence=seq,
                payments=[
                    ps.PaymentInstruction(r["payout_id"], r["destination"], r["asset"], int(r["amount"])) for r in rows
                ],
                network_passphrase=self.o.network_passphrase,
                valid_until=valid_until,
                base_fee=base_fee,
                operation_source=operation_source,
            )
        assert self.o.contract_id is not None
        winners = [ps.Winner(r["payout_id"], r["destination"], int(r["amount"])) for r in rows]
        common: dict[str, Any] = {
            "source_account": lane,
            "sequence": seq,
            "contract_id": self.o.contract_id,
            "winners": winners,
            "network_passphrase": self.o.network_passphrase,
            "valid_until": valid_until,
            "method": self.o.method_name,
            "asset_code": self.o.contract_asset,
            "base_fee": base_fee,
            "operation_source": operation_source,
        }
        draft = ps.build_contract_invoke(**common)
        sim = await self.rpc.simulate(draft.envelope_xdr)
        return ps.build_contract_invoke(**common, simulation=ps.Simulation.from_rpc(sim))

    def _sign_event(self, tx_id: str, request: SignatureRequested, n: int) -> Envelope[SignatureRequested]:
        return new_event(
            request,
            source=self.o.source,
            correlation_id=tx_id,
            subject=tx_id,
            event_id=event_id_for("stellar-sign-request", tx_id, n),
        )

    # -- driving envelopes ----------------------------------------------------------------------------------
    async def _drive_open(self) -> bool:
        db = await self._engine()
        async with db.connect() as conn:
            due = (await conn.execute(q.DUE_TXS, {"provider": self.o.name, "limit": 256})).mappings().all()
        if not due:
            return False
        await asyncio.gather(*(self._drive_one(dict(tx)) for tx in due))
        return True

    async def _drive_one(self, tx: dict[str, Any]) -> None:
        try:
            state = tx["state"]
            if state == "signing":
                await self._signing(tx)
            elif state == "external":
                await self._maybe_dead(tx, C.TX_EXPIRED)
            elif state == "signed":
                await self._submit(tx, expected="signed")
            elif state == "submitted":
                await self._poll(tx)
        except RpcUnavailableError as err:
            log.warning("rpc unavailable for %s: %s", tx["id"], err)
            await self._mark(tx, tx["state"], check_in_s=self.o.poll_ms / 1000, last_status="rpc_unavailable")
        except _LaneMoved:
            log.warning("lane of %s moved meanwhile", tx["id"])

    async def _mark(self, tx: Mapping[str, Any], state: str, *, check_in_s: float, **kw: Any) -> bool:
        db = await self._engine()
        async with db.begin() as conn:
            res = await conn.execute(
                q.MARK_TX,
                {
                    "id": tx["id"],
                    "expected": tx["state"],
                    "state": state,
                    "check_in_s": check_in_s,
                    "error_code": kw.get("error_code"),
                    "detail": kw.get("detail"),
                    "last_status": kw.get("last_status"),
                    "submitted": kw.get("submitted", 0),
                    "polled": kw.get("polled", 0),
                },
            )
        return bool(res.rowcount == 1)

    def _poll_delay(self, polls: int) -> float:
        return (self.o.poll_ms if polls < self.o.max_polls else self.o.reconcile_ms) / 1000

    async def _signing(self, tx: Mapping[str, Any]) -> None:
        """No answer from the signer yet (a dead signer, a lost message): ask again, same request id."""
        if _now() > int(tx["max_time"]):
            await self._maybe_dead(tx, C.SIGNER_UNAVAILABLE)
            return
        raw = tx["sign_request"]
        request = (
            SignatureRequested.model_validate_json(raw)
            if isinstance(raw, str)
            else SignatureRequested.model_validate(raw)
        )
        n = int(tx["sign_requests"]) + 1
        db = await self._engine()
        async with db.begin() as conn:
            res = await conn.execute(
                q.RESEND_SIGN, {"id": tx["id"], "seen": tx["sign_requests"], "check_in_s": self.o.resign_after_s}
            )
            if res.rowcount == 1:
                await add_events(conn, [self._sign_event(tx["id"], request, n)])
                log.info("signature requested again", extra={"tx_id": tx["id"], "request": n})

    async def _submit(self, tx: Mapping[str, Any], *, expected: str) -> None:
        try:
            answer = await self.rpc.send_transaction(tx["signed_xdr"])
        except RpcUnavailableError:
            # Unknown: it may have been accepted. From now on it is polled (and resubmitted unchanged).
            await self._mark(tx, "submitted", check_in_s=self.o.poll_ms / 1000, submitted=1, last_status="unknown")
            return
        status = str(answer.get("status"))
        if status in ("PENDING", "DUPLICATE"):
            await self._mark(tx, "submitted", check_in_s=self.o.poll_ms / 1000, submitted=1, last_status=status)
            return
        if status == "TRY_AGAIN_LATER":
            await self._mark(
                tx,
                "submitted",
                check_in_s=self.o.poll_ms / 1000,
                submitted=1,
                last_status=status,
                error_code=C.RATE_LIMITED.value,
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
            "submitted",
            check_in_s=self.o.poll_ms / 1000,
            submitted=1,
            last_status=f"ERROR:{code}",
            error_code=classify.tx_code(code).value,
            detail=f"sendTransaction: {code}",
        )

    async def _poll(self, tx: Mapping[str, Any]) -> None:
        got = await self.rpc.get_transaction(tx["tx_hash"])
        status = got.get("status")
        if status in ("SUCCESS", "FAILED"):
            await self._landed(tx, got)
            return
        close_time = int(got.get("latestLedgerCloseTime") or 0)
        if close_time > int(tx["max_time"]):
            await self._dead(tx, self._death_code(tx))
            return
        last = str(tx.get("last_status") or "")
        if last.startswith("ERROR:") and last.removeprefix("ERROR:") in classify.STOP_RESUBMITTING:
            await self._mark(tx, "submitted", check_in_s=self._poll_delay(int(tx["polls"])), polled=1)
            return
        # Not landed, not expired: resubmit the SAME envelope (a dropped or not yet accepted one gets in).
        await self._mark(tx, "submitted", check_in_s=0, polled=1)
        refreshed = {**tx, "polls": int(tx["polls"]) + 1}
        await self._submit(refreshed, expected="submitted")

    def _death_code(self, tx: Mapping[str, Any]) -> PayoutErrorCode:
        code = tx.get("error_code")
        if code in {c.value for c in PayoutErrorCode}:
            return PayoutErrorCode(code)
        return C.TX_EXPIRED

    async def _maybe_dead(self, tx: Mapping[str, Any], code: PayoutErrorCode) -> None:
        """Dead only if the network says NOT_FOUND after a ledger that closed past the upper time bound."""
        got = await self.rpc.get_transaction(tx["tx_hash"])
        if got.get("status") in ("SUCCESS", "FAILED"):
            await self._landed(tx, got)
            return
        if int(got.get("latestLedgerCloseTime") or 0) > int(tx["max_time"]):
            await self._dead(tx, code)
            return
        wait = max(self.o.poll_ms / 1000, min(5.0, int(tx["max_time"]) + 1 - _now()))
        await self._mark(tx, tx["state"], check_in_s=wait)

    async def _bad_seq(self, tx: Mapping[str, Any]) -> None:
        """tx_bad_seq: read the account's sequence FIRST, then the transaction, then decide."""
        info = await self.rpc.account(tx["lane"])
        got = await self.rpc.get_transaction(tx["tx_hash"])
        if got.get("status") in ("SUCCESS", "FAILED"):
            await self._landed(tx, got)
            return
        chain = info.sequence if info is not None else None
        if chain is not None and chain >= int(tx["sequence"]):
            # Its sequence number was consumed by another transaction: this envelope can never land.
            await self._dead(tx, C.TX_BAD_SEQ, lane_sequence=chain)
            return
        # Right sequence (a transient refusal) or a gap ahead of the network: keep the envelope, resubmit it
        # unchanged; if the gap never fills, its time bound ends it.
        await self._mark(
            tx,
            "submitted",
            check_in_s=self.o.poll_ms / 1000,
            submitted=1,
            last_status="ERROR:tx_bad_seq",
            error_code=C.TX_BAD_SEQ.value,
        )

    async def _landed(self, tx: Mapping[str, Any], got: Mapping[str, Any]) -> None:
        ok = got.get("status") == "SUCCESS"
        result_xdr = str(got.get("resultXdr") or "")
        result_code = ps.transaction_result_code(result_xdr) if result_xdr else ("tx_success" if ok else "tx_failed")
        op_codes = ps.operation_result_codes(result_xdr) if result_xdr and not ok else []
        ledger = int(got.get("ledger") or 0) or None
        db = await self._engine()
        async with db.begin() as conn:
            res = await conn.execute(
                q.FINISH_TX,
                {
                    "id": tx["id"],
                    "expected": list(q.OPEN_TX_STATES),
                    "state": "success" if ok else "failed",
                    "ledger": ledger,
                    "result_code": result_code,
                    "op_codes": op_codes or None,
                    "error_code": None if ok else C.TX_FAILED.value,
                },
            )
            if res.rowcount != 1:
                return
            await conn.execute(
                q.RELEASE_LANE_CONSUMED, {"lane": tx["lane"], "tx": tx["id"], "seq": int(tx["sequence"])}
            )
            if ok:
                await conn.execute(q.PAID, {"tx": tx["id"], "tx_hash": tx["tx_hash"], "ledger": ledger})
                if self._base_fee > self.o.base_fee:
                    self._base_fee = max(self.o.base_fee, self._base_fee // 2)
            else:
                await self._after_failed_tx(conn, tx, result_code, op_codes)
        log.info(
            "stellar transaction landed", extra={"tx_id": tx["id"], "ok": ok, "ledger": ledger, "code": result_code}
        )

    async def _after_failed_tx(
        self, conn: AsyncConnection, tx: Mapping[str, Any], result_code: str, op_codes: Sequence[str]
    ) -> None:
        """Nothing moved. The payouts whose operation failed get its code; the others are queued again."""
        payout_ids = list(tx["payout_ids"])
        attempts: dict[str, int] = dict((await conn.execute(q.PAYOUT_ATTEMPTS, {"tx": tx["id"]})).all())
        culprits: dict[str, PayoutErrorCode] = {}
        if tx["kind"] == "payments" and len(op_codes) == len(payout_ids):
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
            await conn.execute(
                q.REQUEUE,
                {
                    "tx": tx["id"],
                    "payout_ids": innocent,
                    "isolate": isolate,
                    "refund": 1,
                    "delay_s": 0,
                    "live_until": _live_until(tx),
                    "error_code": None,
                    "detail": f"batch failed ({result_code}) because of another payout",
                },
            )
        for pid, code in culprits.items():
            detail = f"{result_code}: {code.value}"
            if is_retryable(code) and not _attempts_exhausted(attempts.get(pid, 1), self.o.max_tx_attempts):
                await conn.execute(
                    q.REQUEUE,
                    {
                        "tx": tx["id"],
                        "payout_ids": [pid],
                        "isolate": True,
                        "refund": 0,
                        "delay_s": min(60.0, 2.0 * attempts.get(pid, 1)),
                        "live_until": _live_until(tx),
                        "error_code": code.value,
                        "detail": detail,
                    },
                )
            else:
                await conn.execute(
                    q.FAIL, {"tx": tx["id"], "payout_ids": [pid], "error_code": code.value, "detail": detail}
                )

    async def _dead(self, tx: Mapping[str, Any], code: PayoutErrorCode, *, lane_sequence: int | None = None) -> None:
        """The envelope never landed and never will: its payouts go back to the queue (or fail when exhausted)."""
        db = await self._engine()
        async with db.begin() as conn:
            res = await conn.execute(
                q.FINISH_TX,
                {
                    "id": tx["id"],
                    "expected": [tx["state"]],
                    "state": "dead",
                    "ledger": None,
                    "result_code": None,
                    "op_codes": None,
                    "error_code": code.value,
                },
            )
            if res.rowcount != 1:
                return
            await conn.execute(q.RELEASE_LANE_RESYNC, {"lane": tx["lane"], "tx": tx["id"], "sequence": lane_sequence})
            await self._requeue_or_fail(conn, tx, code)
        if code is C.TX_INSUFFICIENT_FEE:
            ops = max(1, len(tx["payout_ids"]))
            self._base_fee = min(self._base_fee * 2, max(self.o.base_fee, self.o.max_fee_stroops // (ops + 1)))
        log.warning("stellar transaction dead", extra={"tx_id": tx["id"], "code": code.value})

    async def _requeue_or_fail(self, conn: AsyncConnection, tx: Mapping[str, Any], code: PayoutErrorCode) -> None:
        attempts: dict[str, int] = dict((await conn.execute(q.PAYOUT_ATTEMPTS, {"tx": tx["id"]})).all())
        retry = [p for p, n in attempts.items() if is_retryable(code) and n < self.o.max_tx_attempts]
        give_up = [p for p in attempts if p not in retry]
        if retry:
            await conn.execute(
                q.REQUEUE,
                {
                    "tx": tx["id"],
                    "payout_ids": retry,
                    "isolate": False,
                    "refund": 0,
                    "delay_s": 0,
                    "live_until": _live_until(tx),
                    "error_code": code.value,
                    "detail": f"envelope {tx['tx_hash']} never landed ({code.value})",
                },
            )
        if give_up:
            await conn.execute(
                q.FAIL,
                {
                    "tx": tx["id"],
                    "payout_ids": give_up,
                    "error_code": code.value,
                    "detail": f"envelope {tx['tx_hash']} never landed ({code.value}); attempts exhausted",
                },
            )

    # -- signer results (consumer `payouts-signer-results`, inside the runtime's inbox transaction) -----------
    async def on_signer_results(self, session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None:
        for env in envelopes:
            data = env.data
            if isinstance(data, TransactionSigned):
                await self._signed(session, data)
            elif isinstance(data, SignatureRefused):
                await self._refused(session, data)
        self.wake.set()

    async def _signed(self, session: AsyncSession, data: TransactionSigned) -> None:
        """Accept the envelope only if it is exactly the transaction built here, validly signed by `signed_by`."""
        params = {"id": data.request_id, "provider": self.o.name}
        row = (await session.execute(q.TX_FOR_SIGNATURE, params)).mappings().first()
        if row is None or row["state"] not in ("signing", "external"):
            return  # not ours, or decided meanwhile (a duplicate or late answer)
        tx = dict(row)
        why = self._not_the_transaction_built(data, tx)
        if why is not None:
            log.error(
                "signed envelope refused",
                extra={"request_id": data.request_id, "code": SIGNED_ENVELOPE_MISMATCH, "reason": why},
            )
            detail = f"signed envelope refused, never submitted: {why}"
            await session.execute(
                q.SIGNED_REFUSED, {**params, "error_code": SIGNED_ENVELOPE_MISMATCH, "detail": detail[:1000]}
            )
            return
        await session.execute(
            q.SIGNED,
            {**params, "tx_hash": tx["tx_hash"], "signed_xdr": data.signed_xdr, "signed_by": data.signed_by},
        )

    def _not_the_transaction_built(self, data: TransactionSigned, tx: Mapping[str, Any]) -> str | None:
        """Why `data` is not the stored transaction with a valid signature of its signer, or None."""
        try:
            signed = ps.exact_envelope(data.signed_xdr, self.o.network_passphrase)
        except ps.NonCanonicalEnvelopeError as err:
            return f"not canonical XDR ({err})"
        except ps.EnvelopeError as err:
            return f"undecodable ({err})"
        built = ps.exact_envelope(tx["unsigned_xdr"], self.o.network_passphrase)
        if signed.tx_hash_hex != tx["tx_hash"] or signed.transaction_bytes != built.transaction_bytes:
            return f"transaction {signed.tx_hash_hex} is not the one built ({tx['tx_hash']})"
        if data.tx_hash != tx["tx_hash"]:
            return f"the answer names transaction {data.tx_hash}, not the one built ({tx['tx_hash']})"
        if not signed.signed_by(data.signed_by):
            return f"no valid signature of {data.signed_by} over the transaction built"
        return None

    async def _refused(self, session: AsyncSession, data: SignatureRefused) -> None:
        params = {"id": data.request_id, "provider": self.o.name, "detail": data.detail[:1000]}
        if data.code is SignatureRefusalCode.BACKEND_UNAVAILABLE:
            await session.execute(
                q.SIGNER_RETRY_LATER,
                {**params, "error_code": C.SIGNER_UNAVAILABLE.value, "check_in_s": self.o.resign_after_s},
            )
            return
        if data.code is SignatureRefusalCode.EXTERNAL_SIGNING_REQUIRED:
            await session.execute(q.EXTERNAL, params)
            return
        row = (
            await session.execute(q.REFUSED, {**params, "error_code": f"signature_refused:{data.code.value}"})
        ).first()
        if row is None:
            return
        lane, seq, payout_ids = row
        await session.execute(q.RELEASE_LANE_RESYNC, {"lane": lane, "tx": data.request_id, "sequence": int(seq) - 1})
        detail = f"signer refused: {data.code.value}: {data.detail}"[:1000]
        if data.code is SignatureRefusalCode.LIVE_SIGNATURE_EXISTS:
            # Not a verdict on the payouts: an earlier transaction signed for them may still land. Never fail
            # them now (it could pay them); rebuild once the signer says it can no longer land.
            until = data.live_until if data.live_until is not None else int(_now()) + self.o.validity_s
            await session.execute(
                q.REQUEUE,
                {
                    "tx": data.request_id,
                    "payout_ids": list(payout_ids),
                    "isolate": False,
                    "refund": 1,
                    "delay_s": 0,
                    "live_until": until + 1,
                    "error_code": None,
                    "detail": detail,
                },
            )
            return
        if data.code in (SignatureRefusalCode.OVER_TX_CAP,) and len(payout_ids) > 1:
            await session.execute(
                q.REQUEUE,
                {
                    "tx": data.request_id,
                    "payout_ids": list(payout_ids),
                    "isolate": True,
                    "refund": 1,
                    "delay_s": 0,
                    "live_until": 0,
                    "error_code": None,
                    "detail": detail,
                },
            )
            return
        await session.execute(
            q.FAIL,
            {
                "tx": data.request_id,
                "payout_ids": list(payout_ids),
                "error_code": C.SIGNATURE_REFUSED.value,
                "detail": detail,
            },
        )

    # -- external signing (admin API) ---------------------------------------------------------------------
    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None:
        db = await self._engine()
        async with db.connect() as conn:
            p = (await conn.execute(q.PAYOUT_BY_ID, {"id": payout_id})).mappings().first()
            if p is None or p["provider"] != self.o.name:
                return None
            txs = (await conn.execute(q.TXS_OF_PAYOUT, {"payout_id": payout_id})).mappings().all()
            current = None
            if p["tx_id"] is not None:
                current = (await conn.execute(q.TX_BY_ID, {"id": p["tx_id"]})).mappings().first()
        out: dict[str, Any] = {
            "payout_id": payout_id,
            "provider_state": p["state"],
            "network_passphrase": self.o.network_passphrase,
            "attempts": [
                {k: (v if not isinstance(v, datetime) else v.isoformat()) for k, v in dict(t).items()} for t in txs
            ],
            "transaction": None,
        }
        if current is not None:
            out["transaction"] = {
                "tx_id": current["id"],
                "state": current["state"],
                "source_account": current["lane"],
                "sequence": str(current["sequence"]),
                "tx_hash": current["tx_hash"],
                "unsigned_xdr": current["unsigned_xdr"],
                "fee": int(current["fee"]),
                "max_time": int(current["max_time"]),
                "payout_ids": list(current["payout_ids"]),
                "awaiting_signature": current["state"] in ("signing", "external"),
            }
        return out

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> ExternalSubmission:
        db = await self._engine()
        async with db.connect() as conn:
            p = (await conn.execute(q.PAYOUT_BY_ID, {"id": payout_id})).mappings().first()
            tx = (
                (await conn.execute(q.TX_BY_ID, {"id": p["tx_id"]})).mappings().first()
                if p is not None and p["tx_id"] is not None
                else None
            )
        if p is None or p["provider"] != self.o.name:
            raise ExternalSigningError(404, "payout_not_found", f"no Stellar payout {payout_id}")
        if tx is None or tx["state"] not in ("signing", "external"):
            state = tx["state"] if tx is not None else p["state"]
            raise ExternalSigningError(409, "not_awaiting_signature", f"no transaction awaits a signature ({state})")
        if _now() >= int(tx["max_time"]):
            raise ExternalSigningError(409, "tx_expired", "the transaction's time bound has passed; it will be rebuilt")
        try:
            signed = ps.exact_envelope(signed_xdr, self.o.network_passphrase)
        except ps.NonCanonicalEnvelopeError as err:
            raise ExternalSigningError(
                422, "non_canonical_xdr", f"the envelope does not re-encode to the bytes posted: {err}"
            ) from err
        except ps.EnvelopeError as err:
            raise ExternalSigningError(422, "malformed_xdr", f"not a transaction envelope: {err}") from err
        built = ps.exact_envelope(tx["unsigned_xdr"], self.o.network_passphrase)
        if signed.tx_hash_hex != tx["tx_hash"] or signed.transaction_bytes != built.transaction_bytes:
            raise ExternalSigningError(
                422, "tx_hash_mismatch", "this is a different transaction from the one built for this payout"
            )
        await self._verify_signatures(signed)
        async with db.begin() as conn:
            res = await conn.execute(
                q.SIGNED,
                {
                    "id": tx["id"],
                    "provider": self.o.name,
                    "tx_hash": tx["tx_hash"],
                    "signed_xdr": signed_xdr,  # exactly the bytes verified (canonical: nothing re-encoded)
                    "signed_by": "external",
                },
            )
        if res.rowcount != 1:
            raise ExternalSigningError(409, "not_awaiting_signature", "the transaction moved on meanwhile")
        self.wake.set()
        return ExternalSubmission(tx["id"], tx["tx_hash"], tuple(tx["payout_ids"]))

    async def _verify_signatures(self, env: ps.ExactEnvelope) -> None:
        """Every spending account (source, operation sources) has valid signatures reaching its medium threshold,
        over the hash of the stored transaction's bytes."""
        tx = env.sdk_envelope.transaction
        spenders = {tx.source.account_id}
        for op in tx.operations:
            if op.source is not None:
                spenders.add(op.source.account_id)
        tx_hash = env.tx_hash
        for account in sorted(spenders):
            try:
                info = await self.rpc.account(account)
            except RpcUnavailableError as err:
                raise ExternalSigningError(503, "rpc_unavailable", str(err)) from err
            signers = info.signers if info is not None else {account: 1}
            threshold = max(1, info.med_threshold if info is not None else 1)
            weight = 0
            for key, w in signers.items():
                kp = Keypair.from_public_key(key)
                for sig in env.signatures:
                    if sig.hint.signature_hint != kp.signature_hint():
                        continue
                    try:
                        kp.verify(tx_hash, sig.signature.signature)
                    except BadSignatureError:
                        continue
                    weight += w
                    break
            if weight < threshold:
                raise ExternalSigningError(
                    422, "signature_invalid", f"the signatures are not valid for source account {account}"
                )


class _LaneMoved(Exception):  # noqa: N818 - internal signal
    """A lane's row changed between reading and reserving it (another engine, or a resync)."""


__all__ = ["ExternalSigningError", "ExternalSubmission", "StellarOptions", "StellarPayoutProvider"]
