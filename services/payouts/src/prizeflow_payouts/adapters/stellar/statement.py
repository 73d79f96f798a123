"""The Stellar statement (`ListsStatement`): what the network did with the distribution and channel accounts.

Read with Stellar RPC's `getTransactions` (the only API the provider speaks; Horizon's per-account
`/accounts/{id}/payments` would spare the scan of other accounts' transactions on a public network), from the
first ledger closed at or after `since` (a binary search over `startLedger`), then by its cursor; every envelope is
decoded here. A line's payout comes from the provider's own books, since our envelopes carry no memo:
`stellar_txs` holds, for each transaction hash we built, its payouts in operation order (a payment batch's `n`-th
payment, a contract call's `n`-th winner, is `payout_ids[n]`). A transaction we did not build is linked by its memo
when it names one of ours: MEMO_RETURN (a refund, Stellar's own convention) or MEMO_HASH (a re-sent payout).

Lines: PAYOUT for each payment (or contract winner) out of our accounts to another account; FEE for the fee a
transaction whose source is one of our accounts was charged (XLM, stroops), split over its payouts the way
`fee_share` books it on the payout (a charge above the envelope's fee on the first payout); REVERSAL for a payment
into our accounts that names one of our transactions; CREDIT for any other payment into them from outside (a float
top-up: money in, a finding unless a person places it). Payments between our own accounts move nothing: left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from stellar_sdk import Asset as SdkAsset
from stellar_sdk import MuxedAccount, scval, xdr

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import StatementLine, StatementLineKind, StatementPage
from prizeflow_payouts.adapters.stellar.books import StellarBooks
from prizeflow_payouts.adapters.stellar.states import BookedPayout
from prizeflow_stellar.assets import canonical, registry_code_of

C = PayoutErrorCode
PAGE_LIMIT: Final = 200  # Stellar RPC's largest getTransactions page
FEE_ASSET: Final = "XLM"


def fee_share(fee: int, payouts: int, place: int) -> int:
    """A transaction's fee as its payouts carry it: an even share each, the remainder on the first."""
    if payouts <= 0:
        return fee
    share, rest = divmod(fee, payouts)
    return share + (rest if place == 0 else 0)


@dataclass(frozen=True, slots=True)
class ListedTx:
    """One `getTransactions` entry, decoded."""

    tx_hash: str
    success: bool
    created_at: datetime
    tx: xdr.Transaction
    fee_charged: int

    @classmethod
    def from_rpc(cls, doc: Mapping[str, Any]) -> ListedTx:
        env = xdr.TransactionEnvelope.from_xdr(str(doc["envelopeXdr"]))
        if env.v1 is not None:
            tx = env.v1.tx
        elif env.fee_bump is not None and env.fee_bump.tx.inner_tx.v1 is not None:
            tx = env.fee_bump.tx.inner_tx.v1.tx
        else:
            raise ValueError("a v0 envelope (pre-protocol 13) is not read")
        result = xdr.TransactionResult.from_xdr(str(doc["resultXdr"]))
        return cls(
            tx_hash=str(doc["txHash"]).lower(),
            success=doc.get("status") == "SUCCESS",
            created_at=datetime.fromtimestamp(int(doc["createdAt"]), UTC),
            tx=tx,
            fee_charged=result.fee_charged.int64,
        )

    def memo_hash(self) -> str | None:
        """The transaction hash a MEMO_RETURN or MEMO_HASH names."""
        memo = self.tx.memo
        raw = memo.ret_hash if memo.type == xdr.MemoType.MEMO_RETURN else None
        raw = memo.hash if memo.type == xdr.MemoType.MEMO_HASH else raw
        return raw.hash.hex() if raw is not None else None


@dataclass(frozen=True, slots=True)
class Books:
    """What our books say about the transactions of a page: hash → payout ids in place order, and the payouts."""

    txs: Mapping[str, tuple[str, ...]]
    payouts: Mapping[str, BookedPayout]

    def linked(self, tx_hash: str | None, counterpart: str, asset: str) -> str | None:
        """The payout of our transaction `tx_hash` whose destination is `counterpart` (and asset `asset`)."""
        for payout_id in self.txs.get(tx_hash or "", ()):
            booked = self.payouts.get(payout_id)
            if booked is not None and booked.destination == counterpart and booked.asset == asset:
                return payout_id
        return None


@dataclass(frozen=True, slots=True)
class _Move:
    place: int
    spender: str  # the G account the money left
    destination: str  # as payouts store it: G..., or M... for a muxed destination
    receiver: str  # the G account behind it
    asset: str
    amount: int
    raw_type: str


def _g(muxed: xdr.MuxedAccount) -> str:
    return MuxedAccount.from_xdr_object(muxed).account_id


def _shown(muxed: xdr.MuxedAccount) -> str:
    return MuxedAccount.from_xdr_object(muxed).universal_account_id


def _asset_code(asset: xdr.Asset) -> str:
    sdk = SdkAsset.from_xdr_object(asset)
    return registry_code_of(sdk) or canonical(sdk)


def moves(tx: xdr.Transaction, contract_asset: str) -> list[_Move]:
    """The money a transaction moved, place by place (a payment's place is its operation index; a payout-contract
    call's winners are places 0.. of its one operation)."""
    out: list[_Move] = []
    tx_source = _g(tx.source_account)
    for index, op in enumerate(tx.operations):
        spender = _g(op.source_account) if op.source_account is not None else tx_source
        body = op.body
        if body.type == xdr.OperationType.PAYMENT and body.payment_op is not None:
            pay = body.payment_op
            out.append(
                _Move(
                    index,
                    spender,
                    _shown(pay.destination),
                    _g(pay.destination),
                    _asset_code(pay.asset),
                    pay.amount.int64,
                    "payment",
                )
            )
        elif body.type == xdr.OperationType.INVOKE_HOST_FUNCTION and body.invoke_host_function_op is not None:
            call = body.invoke_host_function_op.host_function.invoke_contract
            if call is None or not call.args or call.args[-1].vec is None:
                continue
            for place, pair in enumerate(call.args[-1].vec.sc_vec):
                if pair.vec is None or len(pair.vec.sc_vec) != 2:
                    continue
                try:
                    address = scval.from_address(pair.vec.sc_vec[0]).address
                    amount = scval.from_int128(pair.vec.sc_vec[1])
                except (TypeError, ValueError):
                    continue
                if amount > 0:
                    out.append(_Move(place, spender, address, address, contract_asset, amount, "contract_transfer"))
    return out


def lines_of(
    listed: Sequence[ListedTx], books: Books, *, accounts: frozenset[str], contract_asset: str
) -> list[StatementLine]:
    """The statement lines of listed transactions (already cut to the window), in listing order."""
    lines: list[StatementLine] = []
    for t in listed:
        ours = books.txs.get(t.tx_hash)
        memo_hash = t.memo_hash()
        if t.success:
            for m in moves(t.tx, contract_asset):
                out, into = m.spender in accounts, m.receiver in accounts
                if out and not into:
                    if ours is not None:
                        ref = ours[m.place] if m.place < len(ours) else None
                    else:
                        ref = books.linked(memo_hash, m.destination, m.asset)
                    lines.append(_line(t, m, StatementLineKind.PAYOUT, ref, m.destination))
                elif into and not out:
                    ref = books.linked(memo_hash, m.spender, m.asset)
                    kind = StatementLineKind.REVERSAL if ref is not None else StatementLineKind.CREDIT
                    lines.append(_line(t, m, kind, ref, m.spender))
        if _g(t.tx.source_account) in accounts and t.fee_charged > 0:
            payouts = ours or ()
            if not payouts:
                lines.append(_fee(t, f"{t.tx_hash}:fee", t.fee_charged, None))
            # Shares of what the envelope offered, as the payouts booked them; a charge above it (never on the
            # real network: the fee is a maximum) shows on the first payout, the chain naming no other.
            offered = t.tx.fee.uint32
            excess = max(0, t.fee_charged - offered)
            for place, payout_id in enumerate(payouts):
                share = fee_share(t.fee_charged - excess, len(payouts), place) + (excess if place == 0 else 0)
                if share:
                    lines.append(_fee(t, f"{t.tx_hash}:{place}:fee", share, payout_id))
    return lines


def _line(t: ListedTx, m: _Move, kind: StatementLineKind, ref: str | None, destination: str) -> StatementLine:
    return StatementLine(
        line_id=f"{t.tx_hash}:{m.place}",
        kind=kind,
        occurred_at=t.created_at,
        asset=m.asset,
        amount=m.amount,
        reference=ref,
        provider_ref=f"stellar:{ref}" if ref is not None else None,
        destination=destination,
        raw_type={StatementLineKind.PAYOUT: m.raw_type, StatementLineKind.REVERSAL: f"{m.raw_type} (memo return)"}.get(
            kind, f"{m.raw_type} (incoming)"
        ),
    )


def _fee(t: ListedTx, line_id: str, amount: int, ref: str | None) -> StatementLine:
    return StatementLine(
        line_id=line_id,
        kind=StatementLineKind.FEE,
        occurred_at=t.created_at,
        asset=FEE_ASSET,
        amount=amount,
        reference=ref,
        provider_ref=f"stellar:{ref}" if ref is not None else None,
        raw_type="fee_charged" if t.success else "fee_charged (failed transaction)",
    )


class StellarStatement:
    """`statement(since, until, cursor)` of one Stellar provider: its accounts, its RPC, its books."""

    def __init__(
        self,
        *,
        name: str,
        accounts: frozenset[str],
        contract_asset: str,
        rpc: Any,
        uow: Callable[[], AbstractAsyncContextManager[StellarBooks]],
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        self.name = name
        self.accounts = accounts
        self.contract_asset = contract_asset
        self.rpc = rpc
        self.uow = uow  # the provider's: one unit of work on the rail's books
        self.page_limit = page_limit

    def _unavailable(self, what: str, err: Exception) -> PayoutProviderError:
        return PayoutProviderError.of(
            C.PROVIDER_UNAVAILABLE, f"stellar statement: {what}: {type(err).__name__}", provider=self.name
        )

    async def _call(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            result = await self.rpc.call("getTransactions", params)
        except Exception as err:  # RpcUnavailableError and anything malformed
            raise self._unavailable("getTransactions", err) from err
        if not isinstance(result, dict) or not isinstance(result.get("transactions"), list):
            raise PayoutProviderError.of(
                C.PROVIDER_UNAVAILABLE, "stellar statement: getTransactions answered no list", provider=self.name
            )
        return result

    async def _first_at(self, ledger: int) -> tuple[int | None, dict[str, Any]]:
        """The close time of the first transaction at or after `ledger` (None: none), and the page it came on."""
        page = await self._call({"startLedger": ledger, "pagination": {"limit": 1}})
        txs = page["transactions"]
        return (int(txs[0]["createdAt"]) if txs else None), page

    async def start_ledger(self, since: datetime) -> int | None:
        """The first retained ledger whose transactions are all at or after `since` (None: nothing after it)."""
        try:
            health = await self.rpc.call("getHealth")
            oldest, latest = int(health["oldestLedger"]), int(health["latestLedger"])
        except Exception as err:
            raise self._unavailable("getHealth", err) from err
        first_oldest, probe = await self._first_at(oldest)
        # A window older than what the node retains cannot be listed here: never answer it as empty.
        if oldest > 1 and int(probe.get("oldestLedgerCloseTimestamp") or 0) > since.timestamp():
            raise PayoutProviderError.of(
                C.PROVIDER_UNAVAILABLE, "stellar statement: the RPC no longer retains the window", provider=self.name
            )
        lo, hi = oldest, latest + 1
        while lo < hi:
            mid = (lo + hi) // 2
            at = first_oldest if mid == oldest else (await self._first_at(mid))[0]
            if at is None or at >= since.timestamp():
                hi = mid
            else:
                lo = mid + 1
        return lo if lo <= latest else None

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        if cursor is None:
            start = await self.start_ledger(since)
            if start is None:
                return StatementPage(lines=())
            params: dict[str, Any] = {"startLedger": start, "pagination": {"limit": self.page_limit}}
        else:
            params = {"pagination": {"cursor": cursor, "limit": self.page_limit}}
        page = await self._call(params)
        entries = page["transactions"]
        done = len(entries) < self.page_limit
        listed: list[ListedTx] = []
        for doc in entries:
            try:
                t = ListedTx.from_rpc(doc)
            except (KeyError, TypeError, ValueError) as err:
                raise self._unavailable("an unreadable transaction", err) from err
            if t.created_at >= until:
                done = True
                break
            if t.created_at >= since:
                listed.append(t)
        books = await self.books([t for t in listed if self._touches(t)])
        lines = lines_of(listed, books, accounts=self.accounts, contract_asset=self.contract_asset)
        next_cursor = None if done or not entries else str(page.get("cursor") or "") or None
        return StatementPage(lines=tuple(lines), next_cursor=next_cursor)

    def _touches(self, t: ListedTx) -> bool:
        if _g(t.tx.source_account) in self.accounts:
            return True
        for op in t.tx.operations:
            if op.source_account is not None and _g(op.source_account) in self.accounts:
                return True
            pay = op.body.payment_op
            if pay is not None and _g(pay.destination) in self.accounts:
                return True
        return False

    async def books(self, listed: Sequence[ListedTx]) -> Books:
        hashes = sorted({h for t in listed for h in (t.tx_hash, t.memo_hash()) if h})
        if not hashes:
            return Books({}, {})
        try:
            async with self.uow() as books:
                txs = await books.envelopes.by_hashes(self.name, hashes)
                linked = sorted({p for t in listed if t.tx_hash not in txs for p in txs.get(t.memo_hash() or "", ())})
                payouts = await books.payouts.booked(self.name, linked)
        except Exception as err:
            raise self._unavailable("the provider's books", err) from err
        return Books(txs, payouts)


__all__ = ["PAGE_LIMIT", "BookedPayout", "Books", "ListedTx", "StellarStatement", "fee_share", "lines_of", "moves"]
