"""`POST /_emulator/discrepancies`: what a reconciliation must catch, injected into what a wallet's
`getTransactions` shows.

A payout of ours is one out-message of one of our wallet's transactions. `reference` names it by a hash (hex or
base64): the out-message's own (what the provider's books keep for a highload batch item, `out_msg_hash`), or the
external message's (a wallet v4r2 message carries one transfer: `ton_payouts.message_hash`, the payout's
provider reference). `line_id`s are those the statement gives: an out-message's hash (hex) for a payout, the
in-message's for a reversal, `<tx hash>:fee` for a transaction's fee.

- `unrequested`: a new transaction of our wallet (`source`, default the wallet that sent last) sends `amount`
  nanotons of TON to `destination` (an external message we never built: a leaked key); no fee shown for it.
- `duplicate`: the payout's external message applied again (as a replayed message lands twice): a new transaction
  of our wallet with the same in-message and a copy of the payout's out-message (a new hash).
- `reversal`: the destination sends `amount` (default: all of it) back to our wallet, its text comment the
  payout's hash as the reference named it, as a refund names what it refunds (TON payouts only).
- `missing`, `amount`, `destination`, `fee`: what `getTransactions` lists is rewritten (the chain is immutable: as
  a node serving a wrong history would): `missing` hides the transaction (a v4r2 one) or drops the out-message (a
  batch's), `amount` / `destination` rewrite the out-message (TON payouts only), `fee` adds `amount` nanotons to
  the transaction's fee.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
from typing import Any, Final

from prizeflow_ton.addresses import InvalidTonAddressError, parse_address
from prizeflow_ton_emulator.chain import Chain, Tx, _hash_bytes

KINDS: Final = frozenset({"unrequested", "missing", "amount", "destination", "duplicate", "reversal", "fee"})
NATIVE: Final = "TON"


class DiscrepancyError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _raw(address: str) -> str:
    return parse_address(address, workchains=frozenset({0, -1})).raw


def _comment(text: str) -> dict[str, Any]:
    """A text comment's `msg_data` as toncenter v2 shows it (op 0 then the text)."""
    return {"@type": "msg.dataText", "text": base64.b64encode(text.encode()).decode()}


class Injector:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def _ours(self) -> set[str]:
        return set(self.chain.wallets) | set(self.chain.highload_wallets)

    def inject(self, body: dict[str, Any]) -> str | None:
        kind = body.get("kind")
        if kind not in KINDS:
            raise DiscrepancyError(400, f"kind must be one of {sorted(KINDS)}")
        if kind == "unrequested":
            return self._unrequested(body)
        tx, index = self._payout(body.get("reference"))
        out = (tx.out_msgs if tx.listed_out_msgs is None else tx.listed_out_msgs)[index]
        if kind == "fee":
            tx.listed_fee_extra += _amount(body, required=True)
            return f"{_hex(tx.hash)}:fee"
        if kind == "missing":
            self._missing(tx, index)
            return None
        if kind == "duplicate":
            return self._duplicate(tx, index)
        if str(out.get("msg_data", {}).get("body") or ""):
            raise DiscrepancyError(400, f"{kind} is emulated for TON payouts only, not jetton transfers")
        if kind == "reversal":
            return self._reversal(tx, out, body)
        listed = self._listed(tx)
        if kind == "amount":
            listed[index]["value"] = str(_amount(body, required=True))
        else:
            listed[index]["destination"] = _friendly(_destination(body))
        return _hex(out["hash"])

    # -- finding the payout ------------------------------------------------------------------------------------

    def _payout(self, reference: Any) -> tuple[Tx, int]:
        """Our wallet's transaction and the place of the payout's out-message in it."""
        if not isinstance(reference, str) or not reference:
            raise DiscrepancyError(400, "reference (the payout's out-message or external message hash) is required")
        try:
            wanted = _hash_bytes(reference)
        except Exception as err:
            raise DiscrepancyError(400, "reference is a hash, hex or base64") from err
        for wallet in self._ours():
            for tx in self.chain.transactions.get(wallet, []):
                outs = [(n, o) for n, o in enumerate(tx.out_msgs) if _raw(o["destination"]) != wallet]
                for n, o in outs:
                    if base64.b64decode(o["hash"]) == wanted:
                        return tx, self._place(tx, n)
                if base64.b64decode(tx.in_msg["hash"]) == wanted and not tx.in_msg.get("source"):
                    if len(outs) != 1:
                        raise DiscrepancyError(400, "that message sent no transfer, or several: name the out-message")
                    return tx, self._place(tx, outs[0][0])
        raise DiscrepancyError(404, "no transfer of our wallets has that hash")

    @staticmethod
    def _place(tx: Tx, n: int) -> int:
        """The out-message's place in the listed out-messages."""
        if tx.listed_out_msgs is None:
            return n
        wanted = tx.out_msgs[n]["hash"]
        for m, o in enumerate(tx.listed_out_msgs):
            if o["hash"] == wanted:
                return m
        raise DiscrepancyError(404, "that transfer is already missing from the listing")

    @staticmethod
    def _listed(tx: Tx) -> list[dict[str, Any]]:
        if tx.listed_out_msgs is None:
            tx.listed_out_msgs = copy.deepcopy(tx.out_msgs)
        return tx.listed_out_msgs

    # -- edits and new transactions ------------------------------------------------------------------------------

    def _missing(self, tx: Tx, index: int) -> None:
        listed = self._listed(tx)
        others = [o for n, o in enumerate(listed) if n != index and _raw(o["destination"]) != tx.account]
        if not others and not tx.in_msg.get("source"):
            tx.hidden = True  # a v4r2 message's one transfer: the whole transaction is gone
            return
        del listed[index]

    def _new_tx(self, account: str, in_msg: dict[str, Any], out_msgs: list[dict[str, Any]]) -> Tx:
        chain = self.chain
        tx = Tx(account, chain._next_lt(), chain.now(), in_msg, out_msgs, aborted=False, fee=0)
        chain._record(account, tx)
        chain.count("discrepancies_landed")
        return tx

    def _unrequested(self, body: dict[str, Any]) -> str:
        amount = _amount(body, required=True)
        if body.get("asset", NATIVE) != NATIVE:
            raise DiscrepancyError(400, "an unrequested transfer is emulated in TON only")
        destination = _destination(body)
        source = body.get("source")
        wallet = _raw(source) if isinstance(source, str) and source else self._last_sender()
        if wallet not in self._ours():
            raise DiscrepancyError(400, "source is not a wallet of the emulator")
        chain = self.chain
        out_hash = hashlib.sha256(b"unrequested/" + os.urandom(16)).hexdigest()
        ext_hash = hashlib.sha256(b"external/" + os.urandom(16)).hexdigest()
        lt = chain.lt + 1000
        out = chain._msg(out_hash, wallet, destination, amount, bounce=False, created_lt=lt + 1)
        self._new_tx(wallet, chain._msg(ext_hash, "", wallet, 0, bounce=False), [out])
        chain.balances[wallet] = max(0, chain.balances.get(wallet, 0) - amount)
        chain.balances[destination] = chain.balances.get(destination, 0) + amount
        return out_hash

    def _last_sender(self) -> str:
        latest: tuple[int, str] | None = None
        for wallet in self._ours():
            for tx in self.chain.transactions.get(wallet, []):
                if tx.out_msgs and (latest is None or tx.lt > latest[0]):
                    latest = (tx.lt, wallet)
        if latest is None:
            raise DiscrepancyError(400, "no wallet has sent anything yet: name it as `source`")
        return latest[1]

    def _duplicate(self, tx: Tx, index: int) -> str:
        listed = tx.out_msgs if tx.listed_out_msgs is None else tx.listed_out_msgs
        original = listed[index]
        out_hash = hashlib.sha256(f"duplicate/{original['hash']}/{os.urandom(8).hex()}".encode()).hexdigest()
        again = {**copy.deepcopy(original), "hash": _b64(bytes.fromhex(out_hash))}
        self._new_tx(tx.account, copy.deepcopy(tx.in_msg), [again])
        value = int(original["value"])
        self.chain.balances[tx.account] = max(0, self.chain.balances.get(tx.account, 0) - value)
        return out_hash

    def _reversal(self, tx: Tx, out: dict[str, Any], body: dict[str, Any]) -> str:
        chain = self.chain
        sender = _raw(out["destination"])
        amount = _amount(body, required=False) or int(out["value"])
        # The refund names the payout as the books know it: a v4r2 message by its external hash, a batch item by
        # its out-message hash.
        named = tx.in_msg["hash"] if not tx.in_msg.get("source") else out["hash"]
        comment = _hex(named)
        in_hash = hashlib.sha256(f"refund/{out['hash']}/{os.urandom(8).hex()}".encode()).hexdigest()
        in_msg = chain._msg(in_hash, sender, tx.account, amount, bounce=False, created_lt=chain.lt + 1)
        in_msg["msg_data"] = _comment(comment)
        in_msg["message"] = comment
        self._new_tx(tx.account, in_msg, [])
        chain.balances[sender] = max(0, chain.balances.get(sender, 0) - amount)
        chain.balances[tx.account] = chain.balances.get(tx.account, 0) + amount
        return in_hash


def _amount(body: dict[str, Any], *, required: bool) -> int:
    value = body.get("amount")
    if value is None and not required:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise DiscrepancyError(400, "amount must be a positive integer (minor units: nanotons)")
    return value


def _destination(body: dict[str, Any]) -> str:
    value = body.get("destination")
    if not isinstance(value, str) or not value:
        raise DiscrepancyError(400, "destination (a TON address) is required")
    try:
        return _raw(value)
    except InvalidTonAddressError as err:
        raise DiscrepancyError(400, f"destination: {err}") from err


def _friendly(raw: str) -> str:
    return parse_address(raw, workchains=frozenset({0, -1})).friendly(bounceable=True)


__all__ = ["KINDS", "DiscrepancyError", "Injector"]
