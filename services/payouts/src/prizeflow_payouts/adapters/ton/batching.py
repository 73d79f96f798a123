"""`TonBatchDriver`: the highload wallet v3 lane of a `ton_wallet` provider (`wallet_version: highload_v3`).

Queued payouts of the wallet are grouped into batches of up to `batch_size` (one payout per destination and asset
in a batch; a payout requeued after the signer refused its batch goes alone), one highload message and ONE
signature request per batch (`payout_ids` lists all of them). Several batches are in flight at once (no seqno),
at most `max_batches_in_flight`. Each pass, in one unit of work of the rail's books (books.py) under the
provider's advisory lock taken in it:

1. every live batch is driven: unsigned ones are asked again (`resign_after_s`); a signed one is looked for among
   the wallet's transactions (its external message's hash) and, not found, sent again (the SAME message) while
   `created_at + timeout` has not passed;
2. found: its external transaction's only out-message is the internal transfer to the wallet itself, and the
   wallet's NEXT transaction (whose in-message is that transfer) holds the batch's out-messages: each payout is
   read from them — TON by destination and amount, a jetton by our jetton wallet and its TEP-74 body (the
   payout's own jetton query id, amount and owner), then the jetton wallet's transaction and the destination's
   jetton wallet's (`tryLocateResultTx`: paid only if it took the jettons, failed `destination_blocked` if it
   bounced them back) as on the v4r2 path (jetton.py).
   A payout with no out-message was skipped by the wallet (its balance could not pay it; send mode +2 skips that
   transfer alone): failed `insufficient_provider_funds`, nothing moved — concluded only when every out-message
   of that transaction is accounted for (one that cannot be read stops the conclusion: an operator looks);
3. not found after `created_at + timeout` + `expiry_margin_s`, paged back by lt to its build time, no sendBoc
   answered "already executed" (exit code 36), the wallet's `processed?` says its query id is not in the
   processed sets, and the node's view is from past that moment (its latest masterchain block's time, read at
   the start of the pass before any of those reads, and the block the `processed?` answer names: freshness.py;
   a lagging node is waited for, never trusted): it provably never lands. Its payouts are queued again (new
   batch, new query id), or failed `tx_expired` (retryable by the worker) after `max_messages` messages;
4. batches are built while fewer than `max_batches_in_flight` are live: a partial batch once its oldest payout
   has waited `batch_linger_s`. Query ids follow a per-wallet sequence; one is used again only when no message
   with it can land or still sit in the processed sets (the database refuses otherwise).

Unsigned or out-of-band batches past their time expire only if no wallet transaction carries their signed hash
(any signature) and the query id is not processed; else the lane logs and waits for an operator.

Why a pass stays ONE unit of work across its toncenter calls (steps 1-3 read the chain between locking the batches
and writing what it showed; step 4 calls no provider):

- its exclusivity is `pg_try_advisory_xact_lock`, transaction-scoped: a commit between the read and the write
  releases it, and another replica may judge the same batch from its own reads (landed on one node, expired on a
  lagging one) and write its verdict too;
- each write is guarded by the state it names, but a verdict moves several rows whose guards do not see each
  other (expiry: batch, items, then payouts back to `queued`; landing: item, then payout from `sending`). A stale
  expiry written after a newer pass rebuilt those payouts into another batch finds them `sending` again and
  queues them twice (paid twice); a stale landing marks a payout of the newer batch paid. Splitting needs every
  write to re-lock the batch, compare it with what was read and drop a stale verdict, and each transition to
  check its row count before the next: not done here;
- building takes the next query sequence number as `max + 1`: safe only while one pass builds at a time.

So the live batches (`FOR UPDATE`) and the payouts a pass moves stay locked across its toncenter calls, each
bounded by the client's `timeout_s`: a signer answer for one of them waits for the pass.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_contracts.envelope import Envelope, event_id_for, new_event
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.events.signer import TonBatchSignatureRequested, TonTransferIntent
from prizeflow_payouts.adapters.ton import rules
from prizeflow_payouts.adapters.ton.books import Row, SqlTonBooks
from prizeflow_payouts.adapters.ton.freshness import NodeFreshness
from prizeflow_payouts.adapters.ton.jetton import REFUSED_DETAIL, Hop, destination_hop
from prizeflow_payouts.adapters.ton.options import TonOptions
from prizeflow_payouts.adapters.ton.pager import Pass
from prizeflow_payouts.adapters.ton.statement import shares_of
from prizeflow_payouts.adapters.ton.toncenter import ChainMessage, ChainTx, TonApiError, ToncenterClient
from prizeflow_ton.addresses import InvalidTonAddressError, canonical
from prizeflow_ton.highload import EXIT_ALREADY_EXECUTED, HighloadBatch, QueryId, inner
from prizeflow_ton.messages import TransferKind, to_b64

log = logging.getLogger(__name__)
C = PayoutErrorCode
ALREADY_EXECUTED: Final = "already_executed"  # a sendBoc of this batch answered exit code 36


class TonBatchDriver:
    def __init__(
        self,
        options: TonOptions,
        client: ToncenterClient,
        *,
        uow: Callable[[], AbstractAsyncContextManager[SqlTonBooks]],
        clock: Callable[[], float],
    ) -> None:
        self.o = options
        self.name = options.name
        self.client = client
        self.uow = uow  # one pass's unit of work (books.py)
        self.clock = clock
        # The last pass found a batch in flight or payouts due: the next pass is `poll_s` away, not an idle pause.
        self.waiting = False
        self.freshness = NodeFreshness(self.name, client, clock)
        self._jetton_wallets = {a.jetton_wallet: a for a in options.assets.values() if a.jetton_wallet}

    def _error(self, code: PayoutErrorCode, message: str) -> PayoutError:
        return PayoutError.of(code, message, provider=self.name)

    async def tick(self) -> bool:
        """One pass; True if it changed something (the loop goes again at once)."""
        self.waiting = False
        async with self.uow() as books:
            if not await books.lead():
                return False  # another replica drives this wallet
            if await books.batches.v4r2_messages_live():
                log.error(
                    "ton provider switched to highload_v3 with wallet v4r2 messages still live: not batching",
                    extra={"provider": self.name},
                )
                return False
            run = Pass(self.client)
            changed = False
            driven = await books.batches.driven()
            self.waiting = bool(driven)
            if any(b["state"] != "landed" and self.clock() > self._deadline(b) for b in driven):
                run.node_time = await self.freshness.node_time()  # before any read a verdict rests on
            for batch in driven:
                try:
                    changed |= await self._drive(books, run, batch)
                except TonApiError as err:
                    log.warning(
                        "ton batch check unavailable",
                        extra={"provider": self.name, "request_id": batch["request_id"], "code": err.code.value},
                    )
            live = await books.batches.live()
            while live < self.o.max_batches_in_flight and await self._build(books):
                live += 1
                changed = True
            return changed

    # -- building --------------------------------------------------------------------------------------------

    async def _build(self, books: SqlTonBooks) -> bool:
        rows = await books.batches.due_payouts(min(4 * self.o.batch_size, 1000))
        self.waiting = self.waiting or bool(rows)
        group = rules.group(rows, self.o.batch_size)
        if not group:
            return False
        full = len(group) >= self.o.batch_size or bool(group[0]["solo"])
        if not full and float(rows[0]["waited_s"] or 0) < self.o.batch_linger_s:
            return False  # a partial batch waits a moment for company
        seqno = await books.batches.next_query_seqno(self.o.wallet)
        query = QueryId.from_sequence(seqno)
        created_at = int(self.clock()) - self.o.created_at_lag_s
        busy = await books.batches.query_id_busy_until(self.o.wallet, query.value, created_at)
        if busy is not None:
            log.error(
                "ton highload query id still in use: not building",
                extra={"provider": self.name, "query_id": query.value, "free_at": busy},
            )
            return False
        transfers = tuple(
            rules.transfer(self.o.assets[r["asset"]], r, wallet=self.o.wallet, query_id=(query.value << 8) | n)
            for n, r in enumerate(group)
        )
        batch = HighloadBatch(
            wallet=self.o.wallet,
            subwallet_id=self.o.subwallet_id,
            query_id=query,
            created_at=created_at,
            timeout=self.o.highload_timeout_s,
            transfers=transfers,
            internal_nanotons=self.o.internal_nanotons,
        )
        cell = inner(batch)
        digest = hashlib.sha256(f"{self.name}/{self.o.wallet}/{seqno}".encode()).hexdigest()
        request = TonBatchSignatureRequested(
            request_id=f"tonb-{digest[:40]}",
            payout_ids=[r["payout_id"] for r in group],
            wallet=self.o.wallet,
            unsigned_inner_boc=to_b64(cell),
            query_id=query.value,
            created_at=created_at,
            timeout=batch.timeout,
            intents=[
                TonTransferIntent(
                    payout_id=r["payout_id"],
                    destination=t.destination,
                    asset=r["asset"],
                    amount=t.amount,
                    bounce=t.bounce,
                    jetton_master=self.o.assets[r["asset"]].jetton_master,
                    jetton_wallet=self.o.assets[r["asset"]].jetton_wallet,
                )
                for r, t in zip(group, transfers, strict=True)
            ],
        )
        for r in group:
            await books.payouts.sending(r["idempotency_key"])
        await books.batches.add(
            {
                "request_id": request.request_id,
                "wallet": self.o.wallet,
                "query_seqno": seqno,
                "query_id": query.value,
                "created_at": created_at,
                "timeout": batch.timeout,
                "payouts": len(group),
                "inner_hash": bytes(cell.hash).hex(),
                "request": request.model_dump_json(),
            },
            [
                {
                    "position": n,
                    "key": r["idempotency_key"],
                    "payout_id": r["payout_id"],
                    "asset": r["asset"],
                    "amount": int(r["amount"]),
                    "destination": r["destination"],
                    "jetton_query_id": t.query_id if t.kind is TransferKind.JETTON else None,
                }
                for n, (r, t) in enumerate(zip(group, transfers, strict=True))
            ],
        )
        await books.stage([self._request_event(request, 1)])
        log.info(
            "ton batch built",
            extra={"provider": self.name, "request_id": request.request_id, "payouts": len(group), "seqno": seqno},
        )
        return True

    def _request_event(self, request: TonBatchSignatureRequested, n: int) -> Envelope[TonBatchSignatureRequested]:
        return new_event(
            request,
            source=self.o.source,
            correlation_id=request.payout_ids[0],
            subject=request.request_id,
            event_id=event_id_for("ton-batch-sign-request", request.request_id, n),
        )

    # -- driving ---------------------------------------------------------------------------------------------

    async def _drive(self, books: SqlTonBooks, run: Pass, b: dict[str, Any]) -> bool:
        if b["state"] == "landed":
            return await self._resolve(books, run, b, None)
        if b["state"] in ("awaiting_signature", "external"):
            return await self._drive_unsigned(books, run, b)
        return await self._drive_signed(books, run, b)

    def _deadline(self, b: Mapping[str, Any]) -> int:
        """created_at + timeout + margin: past it, a batch not seen landed may be declared dead."""
        return int(b["created_at_chain"]) + int(b["timeout_s"]) + self.o.expiry_margin_s

    async def _drive_unsigned(self, books: SqlTonBooks, run: Pass, b: dict[str, Any]) -> bool:
        now = self.clock()
        if now > self._deadline(b):
            return await self._expire_unsent(books, run, b, f"not signed before it expired ({b['state']})")
        if b["state"] == "awaiting_signature" and now - b["updated_at"].timestamp() >= self.o.resign_after_s:
            n = await books.batches.sign_again(b["request_id"])
            request = TonBatchSignatureRequested.model_validate_json(b["request"])
            await books.stage([self._request_event(request, n)])
        return False

    async def _drive_signed(self, books: SqlTonBooks, run: Pass, b: dict[str, Any]) -> bool:
        now = self.clock()
        expires_at = int(b["created_at_chain"]) + int(b["timeout_s"])
        tx = await run.of(self.o.wallet).find(rules.in_hash(b["message_hash"]), since=b["created_at"].timestamp())
        if tx is not None:
            await books.batches.landed(b["request_id"], tx.hash, tx.fee)
            b.update(state="landed", external_tx_hash=tx.hash, external_fee=tx.fee)
            await self._resolve(books, run, b, tx)
            return True
        if now < expires_at:
            try:
                await self.client.send_boc(b["signed_boc"])
            except TonApiError as err:  # read from the chain next pass; "already executed" is evidence
                log.info("ton batch send refused", extra={"provider": self.name, "code": err.code.value})
                if err.exit_code == EXIT_ALREADY_EXECUTED:
                    detail = "a sendBoc answered exit code 36: its query id is processed (it may have landed)"
                    await books.batches.already_executed(b["request_id"], ALREADY_EXECUTED, detail)
            await books.batches.sent(b["request_id"])
            return False
        if now > self._deadline(b):
            return await self._expire_if_dead(books, run, b)
        return False

    async def _expire_if_dead(self, books: SqlTonBooks, run: Pass, b: Mapping[str, Any]) -> bool:
        """Past created_at + timeout (+ margin) and not among the wallet's transactions since it was built: dead
        only if no sendBoc answered "already executed", its query id is not in the wallet's processed sets, and
        the node's view is from past that deadline (the pass's node time, the `processed?` answer's block)."""
        if b["error_code"] == ALREADY_EXECUTED:
            log.error(
                "ton batch query id processed but its transaction not found: not rebuilding",
                extra={"provider": self.name, "request_id": b["request_id"], "query_id": b["query_id"]},
            )
            return False
        if not self.freshness.fresh(b["request_id"], self._deadline(b), run.node_time):
            return False  # the node may not show a landing yet: wait
        read = await self.client.processed_at(self.o.wallet, int(b["query_id"]))
        if read.value:
            log.error(
                "ton batch query id processed but its transaction not found: not rebuilding",
                extra={"provider": self.name, "request_id": b["request_id"], "query_id": b["query_id"]},
            )
            return False
        if not self.freshness.fresh(b["request_id"], self._deadline(b), run.node_time, read.block_time):
            return False
        return await self._expire(books, b, "not included before created_at + timeout")

    async def _expire_unsent(self, books: SqlTonBooks, run: Pass, b: Mapping[str, Any], why: str) -> bool:
        """An unsigned or out-of-band batch past its time: an operator's tool may have broadcast it, so it is dead
        only if no wallet transaction carries its signed hash, its query id is not processed, and the node's view
        is from past its deadline."""
        since = b["created_at"].timestamp()
        landed = await run.of(self.o.wallet).find(rules.carries_inner(b["inner_hash"]), since=since)
        read = await self.client.processed_at(self.o.wallet, int(b["query_id"])) if landed is None else None
        if landed is not None or (read is not None and read.value):
            log.error(
                "ton batch landed while it was not signed here: not rebuilding",
                extra={"provider": self.name, "request_id": b["request_id"], "query_id": b["query_id"]},
            )
            return False
        assert read is not None
        if not self.freshness.fresh(b["request_id"], self._deadline(b), run.node_time, read.block_time):
            return False  # the node may not show a landing yet: wait
        return await self._expire(books, b, why)

    async def _expire(self, books: SqlTonBooks, b: Mapping[str, Any], why: str) -> bool:
        items = await books.batches.items(b["request_id"])
        await books.batches.closed(b["request_id"], "expired", C.TX_EXPIRED.value, why)
        for key in (i["idempotency_key"] for i in items if i["state"] == "in_flight"):
            await books.payouts.expired(
                key, code=C.TX_EXPIRED.value, max_messages=self.o.max_messages, now=datetime.now(UTC)
            )
        log.info("ton batch expired", extra={"provider": self.name, "request_id": b["request_id"]})
        return True

    # -- reading a landed batch ------------------------------------------------------------------------------

    def _raw(self, address: str) -> str:
        try:
            return canonical(address)
        except InvalidTonAddressError as err:
            raise TonApiError(C.PROVIDER_UNAVAILABLE, f"unreadable address in a transaction: {err}") from None

    async def _resolve(self, books: SqlTonBooks, run: Pass, b: Mapping[str, Any], tx: ChainTx | None) -> bool:
        """The payouts of a landed batch, from the wallet's second transaction (the internal transfer's)."""
        items = await books.batches.items(b["request_id"])
        if not any(i["state"] == "in_flight" for i in items):
            return False
        wallet = run.of(self.o.wallet)
        since = b["created_at"].timestamp()
        if tx is None and b.get("internal_tx_hash") is not None:
            known = await wallet.find(lambda t: t.hash == b["internal_tx_hash"], since=since)
            if known is not None:
                return await self._settle(books, run, b, items, known)
        if tx is None:
            tx = await wallet.find(lambda t: t.hash == b["external_tx_hash"], since=since)
            if tx is None:
                log.warning("ton batch's external transaction not shown again yet", extra={"provider": self.name})
                return False
        if not tx.out_msgs:  # the query id is consumed; the wallet could not even pay its internal transfer
            error = self._error(C.INSUFFICIENT_PROVIDER_FUNDS, "landed, but the wallet could not pay its own gas")
            return await self._fail_rest(books, b, items, error)
        second = await self._internal_transaction(run, b, tx)
        if second is None:
            return False
        if b.get("internal_tx_hash") is None:
            await books.batches.internal_landed(b["request_id"], second.hash, second.fee)
        return await self._settle(books, run, b, items, second)

    async def _internal_transaction(self, run: Pass, b: Mapping[str, Any], tx: ChainTx) -> ChainTx | None:
        """The wallet's transaction of the internal transfer the external one sent itself (None: not yet)."""
        to_self = [m for m in tx.out_msgs if self._raw(m.destination) == self.o.wallet]
        if len(tx.out_msgs) != 1 or not to_self:
            log.error(
                "ton batch's external transaction sent something other than its internal transfer: not concluding",
                extra={"provider": self.name, "request_id": b["request_id"]},
            )
            return None
        second = await run.of(self.o.wallet).find(rules.in_hash(to_self[0].hash), since=tx.utime)
        if second is None:
            late = self.clock() - tx.utime > self.o.expiry_margin_s + 60
            (log.error if late else log.info)(
                "ton batch landed; its internal transaction not seen yet: waiting",
                extra={"provider": self.name, "request_id": b["request_id"], "late": late},
            )
        return second

    async def _settle(
        self, books: SqlTonBooks, run: Pass, b: Mapping[str, Any], items: list[dict[str, Any]], tx: ChainTx
    ) -> bool:
        outs, unreadable = rules.read_outs(tx, self._jetton_wallets)
        claimed: dict[int, rules.Out] = {}
        free = list(outs)
        for item in items:  # every item, settled ones too: each out-message is accounted for once
            found = next((o for o in free if rules.matches(self.o.assets[item["asset"]], item, o)), None)
            if found is not None:
                claimed[int(item["position"])] = found
                free.remove(found)
        unaccounted = unreadable + len(free)
        fees = await self._item_fees(books, b, items, sorted(claimed), tx)
        changed = False
        for item in items:
            if item["state"] != "in_flight":
                continue
            out = claimed.get(int(item["position"]))
            if out is None:
                if unaccounted:
                    log.error(
                        "ton batch transaction has out-messages that cannot be read back: payout not concluded",
                        extra={"provider": self.name, "request_id": b["request_id"], "payout_id": item["payout_id"]},
                    )
                    continue
                error = self._error(
                    C.INSUFFICIENT_PROVIDER_FUNDS, "the wallet skipped this transfer (balance short): nothing moved"
                )
                changed |= await self._item_failed(books, b, item, error, None)
                continue
            asset = self.o.assets[item["asset"]]
            if not asset.is_jetton:
                changed |= await self._item_paid(books, b, item, out.message, tx, fees.get(int(item["position"])))
                continue
            assert asset.jetton_wallet is not None
            jtx = await run.of(asset.jetton_wallet).find(rules.in_hash(out.message.hash), since=tx.utime)
            if jtx is None:
                late = self.clock() - tx.utime > self.o.expiry_margin_s + 60
                (log.error if late else log.info)(
                    "ton batch jetton transfer sent; its jetton wallet transaction not seen yet: waiting",
                    extra={"provider": self.name, "payout_id": item["payout_id"], "late": late},
                )
                continue
            onward = [m for m in jtx.out_msgs if self._raw(m.destination) != self.o.wallet]
            if not onward:  # only a bounce back to our wallet, or nothing (toncenter v2 has no `aborted`)
                error = self._error(C.INSUFFICIENT_PROVIDER_FUNDS, "our jetton wallet bounced the transfer")
                changed |= await self._item_failed(books, b, item, error, out.message.hash)
                continue
            hop = await destination_hop(self.client, asset.jetton_wallet, onward)
            if hop is Hop.PENDING:
                late = self.clock() - jtx.utime > self.o.expiry_margin_s + 60
                (log.error if late else log.info)(
                    "ton batch jetton transfer sent on; the destination's jetton wallet transaction not found yet: "
                    "waiting",
                    extra={"provider": self.name, "payout_id": item["payout_id"], "late": late},
                )
            elif hop is Hop.REFUSED:
                error = self._error(C.DESTINATION_BLOCKED, REFUSED_DETAIL)
                changed |= await self._item_failed(books, b, item, error, out.message.hash)
            else:
                changed |= await self._item_paid(books, b, item, out.message, tx, fees.get(int(item["position"])))
        return changed

    async def _item_fees(
        self, books: SqlTonBooks, b: Mapping[str, Any], items: list[dict[str, Any]], carried: list[int], tx: ChainTx
    ) -> dict[int, int]:
        """Each carried item's share of the batch's transaction fees (external + internal, in nanotons), over the
        items whose out-message `tx` carried, in position order, as the statement splits them (`shares_of`).
        Recorded once (the first read). The external fee unknown (landed before migration 0018): none."""
        recorded = {int(i["position"]): int(i["fee"]) for i in items if i.get("fee") is not None}
        external = b.get("external_fee")
        if external is None or not carried:
            return recorded
        shares = shares_of((int(external), tx.fee), len(carried))
        fees: dict[int, int] = {}
        for position, share in zip(carried, shares, strict=True):
            if position in recorded:
                fees[position] = recorded[position]
                continue
            await books.batches.item_fee(b["request_id"], position, share)
            fees[position] = share
        return fees

    async def _item_paid(  # noqa: PLR0917 - the item, what paid it and its fee
        self,
        books: SqlTonBooks,
        b: Mapping[str, Any],
        item: Mapping[str, Any],
        out: ChainMessage,
        tx: ChainTx,
        fee: int | None,
    ) -> bool:
        await books.batches.item_paid(b["request_id"], int(item["position"]), out.hash)
        await books.payouts.paid(item["idempotency_key"], message_hash=b["message_hash"], tx_hash=tx.hash, fee=fee)
        log.info("ton batch payout landed", extra={"provider": self.name, "payout_id": item["payout_id"]})
        return True

    async def _item_failed(
        self, books: SqlTonBooks, b: Mapping[str, Any], item: Mapping[str, Any], error: PayoutError, out_msg: str | None
    ) -> bool:
        await books.batches.item_failed(b["request_id"], int(item["position"]), out_msg, error)
        await books.payouts.failed(
            item["idempotency_key"], code=error.code.value, retryable=error.retryable, detail=error.message
        )
        log.warning(
            "ton batch payout landed without paying",
            extra={"provider": self.name, "payout_id": item["payout_id"], "code": error.code.value},
        )
        return True

    async def _fail_rest(self, books: SqlTonBooks, b: Mapping[str, Any], items: list[Row], error: PayoutError) -> bool:
        changed = False
        for item in items:
            if item["state"] == "in_flight":
                changed |= await self._item_failed(books, b, item, error, None)
        return changed


__all__ = ["ALREADY_EXECUTED", "TonBatchDriver"]
