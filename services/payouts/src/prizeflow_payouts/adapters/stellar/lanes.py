"""Lanes and sequence numbers: queued payouts become one envelope per free source account.

One lane per source account (the funding account or a channel account), one envelope in flight per lane (a
unique index); the next sequence number is reserved with a compare-and-set on `stellar_lanes`, in the same
transaction as the envelope and its payouts. A lane whose sequence is unknown is read from the network first.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import prizeflow_stellar as ps
from prizeflow_payouts.adapters.stellar import rules
from prizeflow_payouts.adapters.stellar.leader import EngineLeadership
from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_payouts.adapters.stellar.rpc import RpcUnavailableError, SorobanRpcClient
from prizeflow_payouts.adapters.stellar.settings import StellarMode
from prizeflow_payouts.adapters.stellar.signing import sign_event
from prizeflow_payouts.adapters.stellar.states import Lane, NewEnvelope, QueuedPayout, TxKind, TxState

log = logging.getLogger(__name__)

_BUILT_ONLY_CHECK_IN_S = 10 * 365 * 86400  # a build-only envelope is never driven


class LaneMovedError(Exception):
    """A lane's row changed between reading and reserving it (another engine, or a resync)."""


def fee_level(options: StellarOptions) -> rules.FeeLevel:
    return rules.FeeLevel(options.base_fee, options.max_fee_stroops)


def now() -> float:
    return time.time()


class LaneBuilder:
    """Builds envelopes on free lanes (leader only: every write goes through the leader's `uow()`)."""

    def __init__(
        self, options: StellarOptions, rpc: SorobanRpcClient, fees: rules.FeeLevel, leadership: EngineLeadership
    ) -> None:
        self.o = options
        self.rpc = rpc
        self.fees = fees
        self.leadership = leadership
        self._network_time = 0
        self._network_time_at = 0.0

    async def build(self) -> bool:
        """An envelope on each free lane that has queued payouts. True if one was built (or refused)."""
        lanes = await self._lanes()
        if lanes and time.monotonic() - self._network_time_at > 0.5:
            # Time bounds follow the network's clock (its latest ledger close), not only ours.
            try:
                latest = await self.rpc.call("getLatestLedger")
                self._network_time = int(latest.get("closeTime") or 0)
                self._network_time_at = time.monotonic()
            except RpcUnavailableError as err:
                log.warning("getLatestLedger failed: %s", err)
        built = 0
        for lane in lanes:
            sequence = lane.sequence if lane.sequence is not None else await self.resync(lane.account, None)
            if sequence is None:
                continue
            made = await self._build_on(lane.account, sequence)
            if made == 0:
                break
            built += made
        return built > 0

    async def _lanes(self) -> list[Lane]:
        """The lanes to build on: none while no queued payout is due, so an idle pass asks the network nothing."""
        async with self.leadership.uow() as books:
            if not await books.payouts.any_due(self.o.name, assets=self._assets()):
                return []
            if self.o.live_execution:
                return await books.lanes.free(self.o.lanes)
            return await books.lanes.every(self.o.lanes)

    def _assets(self) -> list[str]:
        return [self.o.contract_asset] if self.o.mode is StellarMode.CONTRACT else list(self.o.assets)

    async def resync(self, lane: str, old: int | None) -> int | None:
        """Read the lane's sequence from the network and store it if nobody changed the lane (compare-and-set)."""
        try:
            info = await self.rpc.account(lane)
        except RpcUnavailableError as err:
            log.warning("sequence resync of %s failed: %s", lane, err)
            return None
        if info is None:
            log.error("source account %s does not exist on the network", lane)
            return None
        async with self.leadership.uow() as books:
            taken = await books.lanes.resync(lane, old=old, new=info.sequence)
        return info.sequence if taken else None

    async def _build_on(self, lane: str, current: int) -> int:
        limit = self.o.max_ops_per_tx
        assets = self._assets()
        live = self.o.live_execution
        async with self.leadership.uow() as books:
            rows = await books.payouts.take_queued(self.o.name, limit=limit, assets=assets)
            if not rows:
                return 0
            rows = rules.batch(rows)
            tx_id = f"stx-{uuid.uuid4().hex}"
            seq = current + 1
            valid_until = rules.valid_until(now(), self._network_time, self.o.validity_s)
            try:
                built = await self._assemble(lane=lane, seq=seq, rows=rows, valid_until=valid_until)
            except (ps.BuildError, ps.AmountError, ps.InvalidAddressError, ValueError) as err:
                log.error("could not build a transaction: %s", err)
                ids = [r.payout_id for r in rows]
                if rules.on_build_error(len(ids)) is rules.BuildFailure.FAIL:
                    await books.payouts.fail_unbuildable(ids, str(err)[:1000])
                else:  # find the culprit: build them one by one
                    await books.payouts.isolate(ids)
                return 1
            except RpcUnavailableError as err:
                log.warning("simulation unavailable: %s", err)
                return 0
            if live:
                reserved = await books.lanes.reserve(lane, seq=seq, old=current, tx_id=tx_id)
            else:
                reserved = await books.lanes.reserve_sequence(lane, seq=seq, old=current)
            if not reserved:
                raise LaneMovedError(lane)
            request = built.signature_request(
                request_id=tx_id, network_passphrase=self.o.network_passphrase, max_fee_stroops=self.o.max_fee_stroops
            )
            await books.envelopes.record(
                NewEnvelope(
                    id=tx_id,
                    provider=self.o.name,
                    lane=lane,
                    sequence=seq,
                    kind=TxKind.CONTRACT if self.o.mode is StellarMode.CONTRACT else TxKind.PAYMENTS,
                    payout_ids=tuple(built.payout_ids),
                    state=TxState.SIGNING if live else TxState.BUILT,
                    unsigned_xdr=built.envelope_xdr,
                    sign_request=request.model_dump_json(),
                    tx_hash=built.tx_hash,
                    fee=built.fee,
                    max_time=built.max_time,
                    sign_requests=1 if live else 0,
                    check_in_s=self.o.resign_after_s if live else _BUILT_ONLY_CHECK_IN_S,
                )
            )
            await books.payouts.assign(tx_id, built.payout_ids)
            if live:
                await books.envelopes.request_signatures([sign_event(self.o.source, tx_id, request, 1)])
        log.info(
            "stellar transaction built",
            extra={"tx_id": tx_id, "lane": lane, "sequence": seq, "payouts": len(rows), "live": live},
        )
        return 1

    async def _assemble(
        self, *, lane: str, seq: int, rows: Sequence[QueuedPayout], valid_until: int
    ) -> ps.BuiltTransaction:
        operation_source = self.o.funding_account if self.o.channel_accounts else None
        if self.o.mode is StellarMode.PAYMENTS:
            return ps.build_payments(
                source_account=lane,
                sequence=seq,
                payments=[ps.PaymentInstruction(r.payout_id, r.destination, r.asset, r.amount) for r in rows],
                network_passphrase=self.o.network_passphrase,
                valid_until=valid_until,
                base_fee=self.fees.current,
                operation_source=operation_source,
            )
        assert self.o.contract_id is not None
        winners = [ps.Winner(r.payout_id, r.destination, r.amount) for r in rows]
        common: dict[str, Any] = {
            "source_account": lane,
            "sequence": seq,
            "contract_id": self.o.contract_id,
            "winners": winners,
            "network_passphrase": self.o.network_passphrase,
            "valid_until": valid_until,
            "method": self.o.method_name,
            "asset_code": self.o.contract_asset,
            "base_fee": self.fees.current,
            "operation_source": operation_source,
        }
        draft = ps.build_contract_invoke(**common)
        sim = await self.rpc.simulate(draft.envelope_xdr)
        return ps.build_contract_invoke(**common, simulation=ps.Simulation.from_rpc(sim))


__all__ = ["LaneBuilder", "LaneMovedError", "fee_level"]
