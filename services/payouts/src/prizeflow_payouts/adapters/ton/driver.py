"""`TonDriver`: the one loop that moves a `ton_wallet` provider's payouts (one message in flight per wallet).

See the provider's docstring for the rules; every pass runs in one unit of work (`uow`: the rail's, books.py)
under an advisory lock taken in it, so one replica drives a wallet at a time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_contracts.envelope import Envelope, event_id_for, new_event
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.events.signer import TonSignatureRequested, TonTransferIntent
from prizeflow_payouts.adapters.ton import rules
from prizeflow_payouts.adapters.ton.books import Row, TonBooks
from prizeflow_payouts.adapters.ton.freshness import NodeFreshness
from prizeflow_payouts.adapters.ton.jetton import REFUSED_DETAIL, Hop, destination_hop
from prizeflow_payouts.adapters.ton.options import TonOptions
from prizeflow_payouts.adapters.ton.toncenter import ChainMessage, ChainTx, TonApiError, ToncenterClient
from prizeflow_ton.addresses import InvalidTonAddressError, canonical
from prizeflow_ton.messages import WalletMessage, to_b64, unsigned_body

log = logging.getLogger(__name__)
C = PayoutErrorCode
_PAGE: Final = 100  # toncenter's getTransactions page limit
_MAX_PAGES: Final = 20  # paged back by lt; past this without reaching the message's build time: inconclusive
_SLACK_S: Final = 120  # clock skew allowed between us and the chain's utime when deciding "older than the message"
_SEQNO_MOVED: Final = C.TX_BAD_SEQ.value  # a sendBoc refused with exit code 33: the wallet's seqno moved


@dataclass(frozen=True, slots=True)
class Landing:
    """The message's wallet transaction was found: it consumed the seqno. `pending`: a jetton transfer whose
    jetton wallet transaction, or the destination's jetton wallet transaction it sent the jettons on to, is not
    seen yet (landed, outcome unknown: never expired nor rebuilt)."""

    tx: ChainTx
    error: PayoutError | None = None
    pending: bool = False


class TonDriver:
    def __init__(
        self,
        options: TonOptions,
        client: ToncenterClient,
        *,
        uow: Callable[[], AbstractAsyncContextManager[TonBooks]],
        clock: Callable[[], float],
    ) -> None:
        self.o = options
        self.name = options.name
        self.client = client
        self.uow = uow  # one pass's unit of work (books.py)
        self.clock = clock
        self.freshness = NodeFreshness(self.name, client, clock)
        # The last pass found a message in flight or a payout due: the next pass is `poll_s` away, not an idle pause.
        self.waiting = False

    def _error(self, code: PayoutErrorCode, message: str) -> PayoutError:
        return PayoutError.of(code, message, provider=self.name)

    async def tick(self) -> bool:
        """One pass; True if it changed something (the loop goes again at once)."""
        self.waiting = False
        async with self.uow() as books:
            if not await books.lead():
                return False  # another replica drives this wallet
            message = await books.in_flight()
            if message is not None:
                self.waiting = True
                return await self._drive(books, message)
            return await self._build_next(books)

    def _request_event(self, request: TonSignatureRequested, n: int) -> Envelope[TonSignatureRequested]:
        return new_event(
            request,
            source=self.o.source,
            correlation_id=request.payout_ids[0],
            subject=request.request_id,
            event_id=event_id_for("ton-sign-request", request.request_id, n),
        )

    async def _build_next(self, books: TonBooks) -> bool:
        payout = await books.next_queued()
        if payout is None:
            return False
        self.waiting = True
        try:
            seqno = await self.client.seqno(self.o.wallet)
        except TonApiError as err:
            log.warning("ton seqno unavailable", extra={"provider": self.name, "code": err.code.value})
            return False
        last = await books.last_landed_seqno(self.o.wallet)
        if last is not None and seqno <= last:
            return False  # the API has not caught up with our last landed message yet
        latest = await books.last_message()
        if (
            latest is not None
            and latest["state"] != "landed"
            and seqno > int(latest["seqno"])
            and (last is None or int(latest["seqno"]) > last)
        ):
            # Only our messages move this wallet's seqno, and none of ours landed at that one: one we expired
            # consumed it after all (the API lagged past its valid_until + margin), or another sender did. Never
            # build on top of that.
            return await self._seqno_moved_past(books, latest)
        asset = self.o.assets[payout["asset"]]
        transfer = rules.transfer(asset, payout, wallet=self.o.wallet)  # a batch of one: the lane's own rule
        message = WalletMessage(
            wallet=self.o.wallet,
            subwallet_id=self.o.subwallet_id,
            valid_until=int(self.clock()) + self.o.validity_s,
            seqno=seqno,
            transfer=transfer,
        )
        # Never reuse a number for a payout (REQUEUE_FAILED resets `messages`, the per-cycle count): the rows kept.
        n = await books.messages_built(payout["idempotency_key"]) + 1
        digest = hashlib.sha256(f"{self.name}/{payout['idempotency_key']}/{n}/{seqno}".encode()).hexdigest()
        request = TonSignatureRequested(
            request_id=f"ton-{digest[:40]}",
            payout_ids=[payout["payout_id"]],
            wallet=self.o.wallet,
            unsigned_body_boc=to_b64(unsigned_body(message)),
            seqno=seqno,
            valid_until=message.valid_until,
            intent=TonTransferIntent(
                payout_id=payout["payout_id"],
                destination=transfer.destination,
                asset=asset.code,
                amount=transfer.amount,
                bounce=transfer.bounce,
                jetton_master=asset.jetton_master,
                jetton_wallet=asset.jetton_wallet,
            ),
        )
        await books.add_message(
            request_id=request.request_id,
            key=payout["idempotency_key"],
            payout_id=payout["payout_id"],
            wallet=self.o.wallet,
            seqno=seqno,
            valid_until=message.valid_until,
            request=request.model_dump_json(),
        )
        await books.stage([self._request_event(request, 1)])
        log.info("ton message built", extra={"provider": self.name, "request_id": request.request_id, "seqno": seqno})
        return True

    async def _drive(self, books: TonBooks, message: Row) -> bool:
        if message["state"] == "awaiting_signature":
            return await self._drive_unsigned(books, message)
        if message["state"] == "external":
            if self.clock() > int(message["valid_until"]) + self.o.expiry_margin_s:
                return await self._expire_unsent(books, message, "not signed out of band before valid_until")
            return False
        return await self._drive_signed(books, message)

    async def _drive_unsigned(self, books: TonBooks, message: Row) -> bool:
        now = self.clock()
        if now > int(message["valid_until"]) + self.o.expiry_margin_s:
            return await self._expire_unsent(books, message, "never signed before valid_until")
        if now - message["updated_at"].timestamp() >= self.o.resign_after_s:
            n = await books.sign_again(message["request_id"])
            request = TonSignatureRequested.model_validate_json(message["request"])
            await books.stage([self._request_event(request, n)])
        return False

    async def _drive_signed(self, books: TonBooks, message: Row) -> bool:
        now = self.clock()
        valid_until = int(message["valid_until"])
        deadline = valid_until + self.o.expiry_margin_s
        # Past its time: the node's time is read BEFORE the transactions and seqno a "never landed" rests on.
        node_time = await self.freshness.node_time() if now > deadline else None
        try:
            landing = await self._landing(message)
        except TonApiError as err:
            log.warning("ton transactions unavailable", extra={"provider": self.name, "code": err.code.value})
            return False
        if landing is not None:
            return await self._landed_or_wait(books, message, landing)
        if now <= valid_until:
            moved = None
            try:
                await self.client.send_boc(message["signed_boc"])
            except TonApiError as err:  # a refusal (seqno moved: maybe ours landed) is read from the chain next
                log.info("ton message send refused", extra={"provider": self.name, "code": err.code.value})
                if err.code is C.TX_BAD_SEQ:  # evidence it may have landed: this message is never expired now
                    moved = _SEQNO_MOVED
            await books.sent(message["request_id"], seqno_moved=moved)
            return False
        if now > deadline:
            return await self._expire_if_unconsumed(books, message, node_time)
        return False

    async def _consumed_by_an_earlier_message(self, books: TonBooks, message: Row) -> bool:
        """The in-flight message's seqno moved without it: an earlier message of ours at that seqno, expired on a
        lagging node's word, may have consumed it. If its transaction is found, the in-flight message can never
        land: it is closed (its payout queued again), then the earlier one recorded as landed late."""
        earlier = [
            m for m in await books.expired_at_seqno(int(message["seqno"])) if m["request_id"] != message["request_id"]
        ]
        for candidate in earlier:
            try:
                landing = await self._landing(candidate)
            except TonApiError as err:
                log.warning("ton transactions unavailable", extra={"provider": self.name, "code": err.code.value})
                return False
            if landing is not None and not landing.pending:
                await self._expire(books, message, "its seqno was consumed by an earlier message of ours")
                return await self._landed_late(books, candidate, landing.tx, landing.error)
        return False

    async def _seqno_moved_past(self, books: TonBooks, latest: Row) -> bool:
        """The wallet's seqno is past our last message, which is not landed: look for its transaction (and of any
        message of ours expired at that seqno). Found: it landed late, recorded now (its payout paid, or failed if
        it paid nothing). Not found: nothing is built until it is (the index lags) or an operator resolves it."""
        for message in await books.expired_at_seqno(int(latest["seqno"])):
            try:
                landing = await self._landing(message)
            except TonApiError as err:
                log.warning("ton transactions unavailable", extra={"provider": self.name, "code": err.code.value})
                return False
            if landing is not None and not landing.pending:
                return await self._landed_late(books, message, landing.tx, landing.error)
        log.error(
            "ton wallet seqno moved past our last message without its transaction found: not building",
            extra={"provider": self.name, "request_id": latest["request_id"], "seqno": latest["seqno"]},
        )
        return False

    async def _landed_late(self, books: TonBooks, message: Row, tx: ChainTx, error: PayoutError | None) -> bool:
        await books.landed_late(message, (tx.hash, tx.fee), error)
        log.error(
            "ton message landed after it was expired (the API lagged): recorded, nothing sent again",
            extra={"provider": self.name, "payout_id": message["payout_id"], "paid": error is None},
        )
        return True

    async def _expire_if_unconsumed(self, books: TonBooks, message: Row, node_time: int | None) -> bool:
        """Past valid_until and not found among the wallet's transactions since it was built: dead only if the
        wallet's seqno is still the message's (nothing consumed it), no sendBoc answered "seqno moved", and the
        node's view is from past valid_until + margin (`node_time`, read before those reads, and the seqno
        answer's own block). Else it may have landed: never build another while that is unresolved."""
        try:
            read = await self.client.seqno_at(self.o.wallet)
            if read.value <= int(message["seqno"]) and message["error_code"] != _SEQNO_MOVED:
                deadline = int(message["valid_until"]) + self.o.expiry_margin_s
                if not self.freshness.fresh(message["request_id"], deadline, node_time, read.block_time):
                    return False  # the node may not show a landing yet: wait
                return await self._expire(books, message, "not included before valid_until")
        except TonApiError as err:
            log.warning("ton expiry check unavailable", extra={"provider": self.name, "code": err.code.value})
            return False
        if await self._consumed_by_an_earlier_message(books, message):
            return True
        log.error(
            "ton message seqno consumed but its transaction not found: not rebuilding",
            extra={"provider": self.name, "request_id": message["request_id"], "seqno": message["seqno"]},
        )
        return False

    async def _find(self, address: str, in_hash: str, *, since: float) -> ChainTx | None:
        """The transaction of `address` whose in-message is `in_hash`, paged back by lt until one older than
        `since` (minus slack: older ones cannot hold it). Not found in `_MAX_PAGES` pages: a TonApiError (the
        caller concludes nothing)."""
        cursor: tuple[int, str] | None = None
        for _ in range(_MAX_PAGES):
            if cursor is None:
                page = await self.client.transactions(address, limit=_PAGE)
            else:
                page = await self.client.transactions(address, limit=_PAGE, lt=cursor[0], tx_hash=cursor[1])
                page = [t for t in page if t.lt < cursor[0]]  # the page starts at the cursor (inclusive)
            for t in page:
                if t.in_msg is not None and t.in_msg.hash == in_hash:
                    return t
            if not page or page[-1].utime < since - _SLACK_S:
                return None
            cursor = (page[-1].lt, page[-1].hash)
        raise TonApiError(C.PROVIDER_UNAVAILABLE, f"{_MAX_PAGES * _PAGE} transactions read, not back to the message")

    def _onward(self, jtx: ChainTx) -> list[ChainMessage]:
        """Our jetton wallet's out-messages other than a bounce back to our wallet (toncenter v2 has no
        `aborted`): the internal_transfer onward to the destination's jetton wallet, when it sent one."""
        try:
            return [m for m in jtx.out_msgs if canonical(m.destination) != self.o.wallet]
        except InvalidTonAddressError as err:
            raise TonApiError(C.PROVIDER_UNAVAILABLE, f"unreadable out-message destination: {err}") from None

    async def _jetton_landing(self, tx: ChainTx, jetton_wallet: str, jtx: ChainTx) -> Landing:
        """What our jetton wallet did, then what the destination's jetton wallet did (jetton.py): nothing onward
        (only a bounce to our wallet, or nothing) moved no jetton; onward, paid only once the destination's jetton
        wallet took it; it bouncing the jettons back to ours fails the payout, terminally."""
        onward = self._onward(jtx)
        if not onward:
            return Landing(tx, self._error(C.INSUFFICIENT_PROVIDER_FUNDS, "our jetton wallet bounced the transfer"))
        hop = await destination_hop(self.client, jetton_wallet, onward)
        if hop is Hop.PENDING:
            return Landing(tx, pending=True)
        if hop is Hop.REFUSED:
            return Landing(tx, self._error(C.DESTINATION_BLOCKED, REFUSED_DETAIL))
        return Landing(tx)

    async def _landing(self, message: Mapping[str, Any]) -> Landing | None:
        """The wallet transaction of this message and what it did, or None (not seen since it was built)."""
        tx = await self._find(self.o.wallet, message["message_hash"], since=message["created_at"].timestamp())
        if tx is None:
            return None
        if not tx.out_msgs:
            return Landing(tx, self._error(C.INSUFFICIENT_PROVIDER_FUNDS, "landed but the wallet could not pay"))
        request = TonSignatureRequested.model_validate_json(message["request"])
        jetton_wallet = request.intent.jetton_wallet
        if jetton_wallet is None:
            return Landing(tx)
        jtx = await self._find(jetton_wallet, tx.out_msgs[0].hash, since=tx.utime)
        if jtx is None:
            return Landing(tx, pending=True)  # landed in the wallet; the jetton wallet's part not seen yet
        return await self._jetton_landing(tx, jetton_wallet, jtx)

    async def _landed_or_wait(self, books: TonBooks, message: Row, landing: Landing) -> bool:
        if not landing.pending:
            return await self._landed(books, message, landing.tx, landing.error)
        late = self.clock() - landing.tx.utime > self.o.validity_s + self.o.expiry_margin_s
        (log.error if late else log.info)(
            "ton jetton transfer landed in our wallet; its jetton wallets' transactions not all seen yet: waiting",
            extra={"provider": self.name, "request_id": message["request_id"], "late": late},
        )
        return False

    async def _expire_unsent(self, books: TonBooks, message: Row, why: str) -> bool:
        """An unsigned or out-of-band message past valid_until: an operator's tool may have broadcast it, so it
        is dead only if the wallet's seqno did not move on a node whose view is from past valid_until + margin;
        else never rebuild (an operator resolves it)."""
        node_time = await self.freshness.node_time()  # before the seqno it vouches for
        try:
            read = await self.client.seqno_at(self.o.wallet)
        except TonApiError as err:
            log.warning("ton expiry check unavailable", extra={"provider": self.name, "code": err.code.value})
            return False
        seqno = read.value
        if seqno <= int(message["seqno"]):
            deadline = int(message["valid_until"]) + self.o.expiry_margin_s
            if not self.freshness.fresh(message["request_id"], deadline, node_time, read.block_time):
                return False
            return await self._expire(books, message, why)
        if await self._consumed_by_an_earlier_message(books, message):
            return True
        log.error(
            "ton message seqno consumed while it was not signed here: not rebuilding",
            extra={"provider": self.name, "request_id": message["request_id"], "seqno": message["seqno"]},
        )
        return False

    async def _landed(self, books: TonBooks, message: Row, tx: ChainTx, error: PayoutError | None) -> bool:
        # The message's one transaction's fee is the payout's (the statement's FEE line of that transaction).
        await books.landed(message, (tx.hash, tx.fee), error)
        if error is None:
            log.info("ton payout landed", extra={"provider": self.name, "payout_id": message["payout_id"]})
        else:
            log.warning("ton payout landed without paying", extra={"provider": self.name, "code": error.code.value})
        return True

    async def _expire(self, books: TonBooks, message: Row, why: str) -> bool:
        await books.expire(
            message, why, code=C.TX_EXPIRED.value, max_messages=self.o.max_messages, now=datetime.now(UTC)
        )
        log.info("ton message expired", extra={"provider": self.name, "request_id": message["request_id"]})
        return True


__all__ = ["TonDriver"]
