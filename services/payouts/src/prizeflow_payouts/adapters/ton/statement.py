"""The TON statement (`ListsStatement`): what the paying wallet's transactions did, from toncenter v2's
`getTransactions` (newest first, paged back by the last transaction's `lt` and `hash`, inclusive: its repeat is
dropped) until a transaction older than the window.

A line's payout comes from the provider's books, since a TON transfer of ours carries no comment: a wallet v4r2
transaction is the one external message we built (`ton_messages.message_hash` = its in-message, the payout's
provider reference), a highload batch's transfer is the out-message the driver recorded
(`ton_batch_items.out_msg_hash`). Lines:

- PAYOUT for each out-message to another account: TON (`value`), or a jetton transfer to our jetton wallet
  (amount and owner read from its TEP-74 body); `destination` in the payout's own form when it is the payout's
  account, else the raw form;
- FEE for each transaction's `fee` (nanotons, the native asset): a v4r2 message's on its payout (the fee the
  driver recorded for it, `ton_payouts.fee`, reported as the paid result's fee); a batch's external and internal
  transactions' split over the items whose out-message the internal transaction carried, in position order
  (`fee_share`, as the driver recorded each item's share when it read them: `ton_batch_items.fee`; a batch
  recorded before those shares: its paid items), a fee above what the driver recorded for the transaction on
  the first of them (one difference, one finding); none of ours: no reference;
- REVERSAL for an incoming transfer whose text comment is the hash of one of our payouts (a refund naming what
  it refunds); CREDIT for any other plain incoming transfer (no body, or a text comment) from outside our wallets
  (a top-up: money in, a finding unless a person places it); a message whose body is no text (a jetton wallet's
  excess returned after each jetton payout, a bounce) is left out. Not read: our jetton wallet's own transactions
  (a jetton transfer it bounced shows here as sent, a jetton top-up not at all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import StatementLine, StatementLineKind, StatementPage
from prizeflow_payouts.adapters.ton.books import SqlTonBooks
from prizeflow_payouts.adapters.ton.options import TonOptions
from prizeflow_payouts.adapters.ton.toncenter import ChainMessage, ChainTx, TonApiError
from prizeflow_ton.addresses import InvalidTonAddressError, canonical
from prizeflow_ton.messages import MalformedMessageError, from_b64, parse_jetton_transfer_body

C = PayoutErrorCode
PAGE_LIMIT: Final = 100  # toncenter v2's largest getTransactions page


def fee_share(fee: int, payouts: int, place: int) -> int:
    """A transaction's fee as its payouts carry it: an even share each, the remainder on the first."""
    if payouts <= 0:
        return fee
    share, rest = divmod(fee, payouts)
    return share + (rest if place == 0 else 0)


def shares_of(fees: Sequence[int], payouts: int) -> list[int]:
    """What each of `payouts` payouts carries of its transactions' `fees` (`fee_share` of each, summed), in
    place order: a batch item's recorded fee. The shares sum to the fees exactly."""
    return [sum(fee_share(fee, payouts, place) for fee in fees) for place in range(payouts)]


def tx_fee_share(charged: int, recorded: int | None, payouts: int, place: int) -> int:
    """A transaction's fee line for the payout at `place`: the fee the driver recorded for the transaction split
    as it split it, anything charged above that on the first payout (a node's listing showing more than the
    transaction cost when it landed names one transaction, not each of its payouts)."""
    if recorded is None or charged < recorded:
        return fee_share(charged, payouts, place)
    return fee_share(recorded, payouts, place) + (charged - recorded if place == 0 else 0)


def _raw(address: str) -> str | None:
    try:
        return canonical(address)
    except (InvalidTonAddressError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Books:
    """What the provider's books say about a page's hashes."""

    by_message: Mapping[str, str] = field(default_factory=dict)  # external message hash → payout id
    by_out: Mapping[str, str] = field(default_factory=dict)  # batch item out-message hash → payout id
    by_tx: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # batch transaction hash → payout ids
    tx_fees: Mapping[str, int] = field(default_factory=dict)  # batch transaction hash → its fee as recorded
    refs: Mapping[str, str | None] = field(default_factory=dict)  # payout id → provider reference
    shown: Mapping[str, str] = field(default_factory=dict)  # payout id → its destination as payouts hold it

    def named(self, comment: str) -> str | None:
        key = comment.strip().lower()
        return self.by_out.get(key) or self.by_message.get(key)

    def destination(self, payout_id: str | None, raw: str) -> str:
        shown = self.shown.get(payout_id or "")
        return shown if shown is not None and _raw(shown) == raw else raw


@dataclass(frozen=True, slots=True)
class _Transfer:
    message: ChainMessage
    asset: str
    amount: int
    destination: str  # raw
    raw_type: str


def transfers(tx: ChainTx, options: TonOptions) -> list[_Transfer]:
    """What a transaction of the wallet sent to other accounts (its self-transfers left out)."""
    jettons = {a.jetton_wallet: a.code for a in options.assets.values() if a.jetton_wallet}
    native = next((a.code for a in options.assets.values() if not a.is_jetton), "TON")
    out: list[_Transfer] = []
    for m in tx.out_msgs:
        dest = _raw(m.destination)
        if dest is None or dest == options.wallet:
            continue
        if dest in jettons:
            try:
                body = parse_jetton_transfer_body(from_b64(m.body))
            except (MalformedMessageError, ValueError):
                continue  # not a transfer of ours: nothing we can name
            out.append(_Transfer(m, jettons[dest], body.amount, body.destination, "jetton_transfer"))
        else:
            out.append(_Transfer(m, native, m.value, dest, "transfer"))
    return out


def _incoming(m: ChainMessage, sender: str, at: datetime, asset: str, books: Books) -> list[StatementLine]:
    """A transfer into the wallet from outside our wallets: a REVERSAL when its comment names one of our payouts, a
    CREDIT when it is plain (no body, or a text comment: a top-up), else nothing (a body that is no text: a jetton
    wallet's excess returned after a payout, a bounce, is the chain's machinery, not money anyone sent us)."""
    ref = books.named(m.comment) if m.comment else None
    if ref is not None:
        kind, raw_type = StatementLineKind.REVERSAL, "incoming transfer (refund comment)"
        named = {"reference": ref, "provider_ref": books.refs.get(ref), "destination": books.destination(ref, sender)}
    elif m.value > 0 and (m.comment or not m.body):
        kind, raw_type, named = StatementLineKind.CREDIT, "incoming transfer", {}
    else:
        return []
    return [
        StatementLine(
            line_id=m.hash, kind=kind, occurred_at=at, asset=asset, amount=m.value, raw_type=raw_type, **named
        )
    ]


def lines_of(txs: Sequence[ChainTx], books: Books, options: TonOptions) -> list[StatementLine]:
    """The statement lines of the wallet's transactions (already cut to the window), in listing order."""
    native = next((a.code for a in options.assets.values() if not a.is_jetton), "TON")
    ours = {options.wallet, *(a.jetton_wallet for a in options.assets.values() if a.jetton_wallet)}
    lines: list[StatementLine] = []
    for tx in txs:
        at = datetime.fromtimestamp(tx.utime, UTC)
        external = tx.in_msg is not None and not tx.in_msg.source
        sent = books.by_message.get(tx.in_msg.hash) if external and tx.in_msg is not None else None
        carried: list[str] = []
        for t in transfers(tx, options):
            ref = books.by_out.get(t.message.hash) or sent
            if ref is not None and ref not in carried:
                carried.append(ref)
            lines.append(
                StatementLine(
                    line_id=t.message.hash,
                    kind=StatementLineKind.PAYOUT,
                    occurred_at=at,
                    asset=t.asset,
                    amount=t.amount,
                    reference=ref,
                    provider_ref=books.refs.get(ref) if ref is not None else None,
                    destination=books.destination(ref, t.destination),
                    raw_type=t.raw_type,
                )
            )
        m = tx.in_msg
        sender = _raw(m.source) if m is not None and m.source else None
        if m is not None and sender is not None and sender not in ours:
            lines.extend(_incoming(m, sender, at, native, books))
        if tx.fee > 0:
            # A v4r2 message that landed without paying still cost its payout the fee.
            payouts = list(books.by_tx.get(tx.hash, ())) or carried or ([sent] if sent is not None else [])
            if len(payouts) <= 1:
                ref = payouts[0] if payouts else None
                lines.append(_fee(tx, at, native, f"{tx.hash}:fee", tx.fee, ref, books))
            else:
                for place, payout_id in enumerate(payouts):
                    share = tx_fee_share(tx.fee, books.tx_fees.get(tx.hash), len(payouts), place)
                    if share:
                        lines.append(_fee(tx, at, native, f"{tx.hash}:fee:{place}", share, payout_id, books))
    return lines


def _fee(  # noqa: PLR0917 - one line's fields
    tx: ChainTx, at: datetime, asset: str, line_id: str, amount: int, ref: str | None, books: Books
) -> StatementLine:
    return StatementLine(
        line_id=line_id,
        kind=StatementLineKind.FEE,
        occurred_at=at,
        asset=asset,
        amount=amount,
        reference=ref,
        provider_ref=books.refs.get(ref) if ref is not None else None,
        raw_type="total_fees",
    )


class TonStatement:
    """`statement(since, until, cursor)` of one TON provider: its wallet, its TON API, its books."""

    def __init__(
        self,
        options: TonOptions,
        client: Any,
        uow: Callable[[], AbstractAsyncContextManager[SqlTonBooks]],
        *,
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        self.o = options
        self.client = client  # ToncenterClient
        self.uow = uow  # the rail's unit of work (books.py): the page's names read in one
        self.page_limit = page_limit

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        lt: int | None = None
        tx_hash: str | None = None
        if cursor is not None:
            try:
                lt_text, tx_hash = cursor.split(":", 1)
                lt = int(lt_text)
            except ValueError as err:
                raise PayoutProviderError.of(
                    C.INVALID_REQUEST, "ton statement: a bad cursor", provider=self.o.name
                ) from err
        asked = self.page_limit + (1 if cursor is not None else 0)
        try:
            txs = await self.client.transactions(self.o.wallet, limit=asked, lt=lt, tx_hash=tx_hash)
        except TonApiError as err:
            raise PayoutProviderError.of(err.code, f"ton statement: {err.message}", provider=self.o.name) from err
        done = len(txs) < asked
        if cursor is not None and txs and (txs[0].lt, txs[0].hash) == (lt, tx_hash):
            txs = txs[1:]  # the cursor's own transaction, listed on the previous page
        inside: list[ChainTx] = []
        for tx in txs:
            if tx.utime >= until.timestamp():
                continue
            if tx.utime < since.timestamp():
                done = True
                break
            inside.append(tx)
        books = await self.books(inside)
        lines = lines_of(inside, books, self.o)
        next_cursor = None if done or not txs else f"{txs[-1].lt}:{txs[-1].hash}"
        return StatementPage(lines=tuple(lines), next_cursor=next_cursor)

    async def books(self, txs: Sequence[ChainTx]) -> Books:
        messages = sorted({h for tx in txs for h in _hashes(tx)})
        tx_hashes = sorted({tx.hash for tx in txs})
        if not messages and not tx_hashes:
            return Books()
        try:
            async with self.uow() as books:
                by_message = await books.names.payouts_by_message(messages)
                by_out = await books.names.payouts_by_out_message(messages)
                by_tx, tx_fees = _batch_books(await books.names.batch_items_of(tx_hashes), tx_hashes)
                ids = sorted({*by_message.values(), *by_out.values(), *(p for ps in by_tx.values() for p in ps)})
                refs: dict[str, str | None] = {}
                shown: dict[str, str] = {}
                for r in await books.names.references(ids):
                    refs[str(r.payout_id)] = None if r.message_hash is None else str(r.message_hash)
                    if r.destination_address is not None:
                        shown[str(r.payout_id)] = str(r.destination_address)
        except Exception as err:
            raise PayoutProviderError.of(
                C.PROVIDER_UNAVAILABLE,
                f"ton statement: the provider's books: {type(err).__name__}",
                provider=self.o.name,
            ) from err
        return Books(by_message=by_message, by_out=by_out, by_tx=by_tx, tx_fees=tx_fees, refs=refs, shown=shown)


def _batch_books(rows: Sequence[Any], tx_hashes: Sequence[str]) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """Per batch transaction of the page: the payouts its fee is split over (the items the driver recorded a fee
    share for, in position order; a batch with none recorded: its paid items) and the fee recorded for it."""
    batches: dict[str, list[Any]] = {}
    for r in rows:
        batches.setdefault(str(r.request_id), []).append(r)
    wanted = set(tx_hashes)
    by_tx: dict[str, tuple[str, ...]] = {}
    tx_fees: dict[str, int] = {}
    for items in batches.values():
        shared = [r for r in items if r.fee is not None]
        payouts = tuple(str(r.payout_id) for r in (shared or [r for r in items if r.state == "paid"]))
        first = items[0]
        for h, fee in ((first.external_tx_hash, first.external_fee), (first.internal_tx_hash, first.internal_fee)):
            if h is None or str(h) not in wanted or not payouts:
                continue
            by_tx[str(h)] = payouts
            if shared and fee is not None:
                tx_fees[str(h)] = int(fee)
    return by_tx, tx_fees


def _hashes(tx: ChainTx) -> list[str]:
    """The message hashes of a transaction the books may name: its in-message, its out-messages, a refund's
    comment."""
    out = [m.hash for m in tx.out_msgs]
    if tx.in_msg is not None:
        out.append(tx.in_msg.hash)
        comment = tx.in_msg.comment.strip().lower()
        if len(comment) == 64 and all(c in "0123456789abcdef" for c in comment):
            out.append(comment)
    return out


__all__ = ["PAGE_LIMIT", "Books", "TonStatement", "fee_share", "lines_of", "shares_of", "transfers", "tx_fee_share"]
