"""The TON rail's rules, pure (no I/O): what goes into a message, which payouts share one, and how a landed
transaction's out-messages are read back into payouts. The wallet v4r2 driver (one payout a message) and the
highload v3 lane (a batch a message) apply the same rules: a single payout is a batch of one.

Like `domain/compliance/gate.py`'s `decide`: frozen inputs (rows of the rail's books, the chain's transactions as
`toncenter.py` parses them), one answer each, unit-tested without the books or the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prizeflow_payouts.adapters.ton.options import TonAsset
from prizeflow_payouts.adapters.ton.toncenter import ChainMessage, ChainTx
from prizeflow_ton.addresses import InvalidTonAddressError, canonical
from prizeflow_ton.highload import signed_inner_hash
from prizeflow_ton.messages import (
    JettonTransferBody,
    MalformedMessageError,
    Transfer,
    TransferKind,
    from_b64,
    parse_jetton_transfer_body,
)


def transfer(asset: TonAsset, payout: Mapping[str, Any], *, wallet: str, query_id: int = 0) -> Transfer:
    """The transfer that pays `payout` (a row of `ton_payouts`) from `wallet`. A jetton always bounces (a jetton
    wallet that refuses sends the jettons back to ours) and carries `query_id`, the payout's own in a batch (its
    out-message is read back by it; 0 for a message of one payout); TON bounces as the payout says."""
    if asset.is_jetton:
        return Transfer(
            kind=TransferKind.JETTON,
            destination=payout["destination"],
            amount=int(payout["amount"]),
            bounce=True,
            jetton_wallet=asset.jetton_wallet,
            attached_nanotons=asset.attach_nanotons,
            forward_nanotons=1,
            response_destination=wallet,
            query_id=query_id,
        )
    return Transfer(
        kind=TransferKind.TON,
        destination=payout["destination"],
        amount=int(payout["amount"]),
        bounce=bool(payout["bounce"]),
    )


def group(rows: Sequence[Mapping[str, Any]], batch_size: int) -> list[Mapping[str, Any]]:
    """The next batch of queued payouts (`rows` in queue order): one payout per destination and asset, at most
    `batch_size`; a `solo` payout (requeued after the signer refused its batch) goes alone."""
    chosen: list[Mapping[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for r in rows:
        if r["solo"]:
            if not chosen:
                return [r]
            continue
        if (r["asset"], r["destination"]) in seen:
            continue
        chosen.append(r)
        seen.add((r["asset"], r["destination"]))
        if len(chosen) >= batch_size:
            break
    return chosen


def in_hash(h: str) -> Callable[[ChainTx], bool]:
    """A transaction whose in-message has this hash."""
    return lambda t: t.in_msg is not None and t.in_msg.hash == h


def carries_inner(inner_hash: str) -> Callable[[ChainTx], bool]:
    """A transaction whose external in-message is a highload message of this signed hash, whoever signed it."""

    def match(t: ChainTx) -> bool:
        if t.in_msg is None or not t.in_msg.body:
            return False
        try:
            return signed_inner_hash(from_b64(t.in_msg.body)) == inner_hash
        except MalformedMessageError:
            return False

    return match


@dataclass(frozen=True, slots=True)
class Out:
    """One out-message of a batch transaction, read: its raw destination and, sent to one of our jetton wallets,
    its jetton transfer body."""

    message: ChainMessage
    destination: str
    jetton: JettonTransferBody | None = None


def read_outs(tx: ChainTx, jetton_wallets: Mapping[str, Any]) -> tuple[list[Out], int]:
    """The transaction's out-messages as ours can be recognised (`jetton_wallets`: our jetton wallets, raw), and
    how many could not be read (one unreadable stops a conclusion about the others: an operator looks)."""
    outs: list[Out] = []
    unreadable = 0
    for m in tx.out_msgs:
        try:
            dest = canonical(m.destination)
        except InvalidTonAddressError:
            unreadable += 1
            continue
        if dest in jetton_wallets:
            try:
                outs.append(Out(m, dest, parse_jetton_transfer_body(from_b64(m.body))))
            except MalformedMessageError:
                unreadable += 1
            continue
        outs.append(Out(m, dest))
    return outs, unreadable


def matches(asset: TonAsset, item: Mapping[str, Any], out: Out) -> bool:
    """Whether `out` pays batch item `item`: a jetton by our jetton wallet and its TEP-74 body (the item's own
    query id, amount and owner); TON by destination and amount."""
    if asset.is_jetton:
        body = out.jetton
        return bool(
            out.destination == asset.jetton_wallet
            and body is not None
            and body.query_id == item["jetton_query_id"]
            and body.amount == int(item["amount"])
            and body.destination == item["destination"]
        )
    return out.jetton is None and out.destination == item["destination"] and out.message.value == int(item["amount"])


__all__ = ["Out", "carries_inner", "group", "in_hash", "matches", "read_outs", "transfer"]
