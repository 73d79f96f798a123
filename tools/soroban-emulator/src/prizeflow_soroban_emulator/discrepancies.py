"""`POST /_emulator/discrepancies`: what a reconciliation must catch, injected into what the network shows.

On Stellar our payouts carry no memo: a payout is the `n`-th payment of one of our transactions (the `n`-th
winner of a payout-contract call), so `reference` is `<tx hash>:<n>` (`n` = the payout's place in the
transaction, as `stellar_txs.payout_ids` holds it) or a bare `<tx hash>` for a transaction with one payout.

- `unrequested`: a new transaction pays `amount` of `asset` from our account (`source`, default the account the
  last payment sent through `sendTransaction` came from) to `destination`, no memo; its transaction source is
  another account (a compromised co-signer), so it neither pays our fee nor consumes our sequence numbers.
- `duplicate`: a new transaction pays the payout's payment again from the same account, memo hash = the payout's
  transaction hash (how a re-sent payout names the one it repeats).
- `reversal`: the destination pays `amount` (default: all of it) back to the account it came from, memo return =
  the payout's transaction hash (Stellar's MEMO_RETURN: "the hash of the transaction being refunded").
- `missing`, `amount`, `destination`, `fee`: the ledger is immutable, so these change what `getTransactions` lists
  for the payout's transaction (as a node serving a wrong history would), never what was applied: `missing`
  drops the transaction (or, in a batch, turns the payout's payment into a no-money `bumpSequence` and a
  contract winner's amount into 0), `amount`/`destination` rewrite the payment, `fee` adds `amount` stroops to
  the transaction's `feeCharged` (a fee is the transaction's, not one payment's: the statement shows a charge
  above the envelope's fee on the transaction's first payout, so name that one to see it on the payout).
"""

from __future__ import annotations

from typing import Any, Final

from stellar_sdk import Account, Keypair, MuxedAccount, StrKey, TransactionBuilder, scval, xdr
from stellar_sdk import Asset as SdkAsset
from stellar_sdk.memo import HashMemo, Memo, ReturnHashMemo

from prizeflow_soroban_emulator.ledger import (
    Ledger,
    Outcome,
    Payment,
    TxStatus,
    _payment_result,
    _result_xdr,
)
from prizeflow_stellar.amounts import from_stroops
from prizeflow_stellar.assets import canonical, stellar_asset

KINDS: Final = frozenset({"unrequested", "missing", "amount", "destination", "duplicate", "reversal", "fee"})
INJECTED_FEE: Final = 100


class DiscrepancyError(ValueError):
    """A request the emulator cannot honour (HTTP 400 or 404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _account(muxed: xdr.MuxedAccount) -> str:
    return MuxedAccount.from_xdr_object(muxed).account_id


def _is_invoke(tx: xdr.Transaction) -> bool:
    return bool(tx.operations) and tx.operations[0].body.type == xdr.OperationType.INVOKE_HOST_FUNCTION


def _winners(op: xdr.Operation) -> list[xdr.SCVal]:
    fn = op.body.invoke_host_function_op
    call = fn.host_function.invoke_contract if fn is not None else None
    if call is None or not call.args or call.args[-1].vec is None:
        return []
    return list(call.args[-1].vec.sc_vec)


def _slot(tx: xdr.Transaction, n: int) -> tuple[int, int | None]:
    """(operation index, winner index) of the `n`-th payout of a transaction."""
    if _is_invoke(tx):
        if not 0 <= n < len(_winners(tx.operations[0])):
            raise DiscrepancyError(404, f"the contract call has no winner {n}")
        return 0, n
    if not 0 <= n < len(tx.operations) or tx.operations[n].body.type != xdr.OperationType.PAYMENT:
        raise DiscrepancyError(404, f"the transaction has no payment {n}")
    return n, None


def _slots(tx: xdr.Transaction) -> int:
    return len(_winners(tx.operations[0])) if _is_invoke(tx) else len(tx.operations)


class Injector:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def inject(self, body: dict[str, Any]) -> str | None:
        kind = body.get("kind")
        if kind not in KINDS:
            raise DiscrepancyError(400, f"kind must be one of {sorted(KINDS)}")
        if kind == "unrequested":
            return self._unrequested(body)
        tx_hash, n, outcome = self._payout(body.get("reference"))
        if kind == "missing":
            self._missing(outcome, n)
            return None
        if kind == "fee":
            outcome.listed_fee_extra += _amount(body, required=True)
            return f"{tx_hash}:0:fee"  # a fee is the transaction's: the statement shows its excess on place 0
        if kind == "amount":
            self._rewrite(outcome, n, amount=_amount(body, required=True), asset=body.get("asset"))
        elif kind == "destination":
            self._rewrite(outcome, n, destination=_destination(body))
        elif kind == "duplicate":
            return self._repeat(tx_hash, outcome, n)
        else:
            return self._reversal(tx_hash, outcome, n, body)
        return f"{tx_hash}:{n}"

    # -- finding the payout ------------------------------------------------------------------------------------

    def _payout(self, reference: Any) -> tuple[str, int, Outcome]:
        if not isinstance(reference, str) or not reference:
            raise DiscrepancyError(400, "reference (<tx hash>[:<n>]) is required for this kind")
        tx_hash, _, place = reference.lower().partition(":")
        outcome = self.ledger.outcomes.get(tx_hash)
        if outcome is None or outcome.status is not TxStatus.SUCCESS:
            raise DiscrepancyError(404, f"no successful transaction {tx_hash}")
        tx = _tx(outcome.envelope_xdr)
        if place:
            try:
                n = int(place)
            except ValueError as err:
                raise DiscrepancyError(400, "the reference's place is an integer") from err
        elif _slots(tx) == 1:
            n = 0
        else:
            raise DiscrepancyError(400, f"the transaction holds {_slots(tx)} payouts: name one as <tx hash>:<n>")
        _slot(tx, n)
        return tx_hash, n, outcome

    def _paid(self, outcome: Outcome, n: int) -> tuple[str, str, SdkAsset, int]:
        """(spender, destination, asset, amount) of the payout as applied."""
        tx = _tx(outcome.envelope_xdr)
        op_index, winner = _slot(tx, n)
        op = tx.operations[op_index]
        spender = _account(op.source_account) if op.source_account is not None else _account(tx.source_account)
        if winner is None:
            pay = op.body.payment_op
            assert pay is not None
            return spender, _account(pay.destination), SdkAsset.from_xdr_object(pay.asset), pay.amount.int64
        pair = _winners(op)[winner].vec
        assert pair is not None
        address = scval.from_address(pair.sc_vec[0]).address
        contract_asset = self.ledger.contract_asset
        code, _, issuer = contract_asset.partition(":")
        sdk_asset = SdkAsset.native() if contract_asset == "native" else SdkAsset(code, issuer)
        return spender, address, sdk_asset, scval.from_int128(pair.sc_vec[1])

    # -- listing edits -----------------------------------------------------------------------------------------

    def _missing(self, outcome: Outcome, n: int) -> None:
        tx = _tx(outcome.listed_envelope_xdr or outcome.envelope_xdr)
        if _slots(tx) == 1:
            outcome.hidden = True
            return
        env = xdr.TransactionEnvelope.from_xdr(outcome.listed_envelope_xdr or outcome.envelope_xdr)
        assert env.v1 is not None
        op_index, winner = _slot(env.v1.tx, n)
        op = env.v1.tx.operations[op_index]
        if winner is None:
            op.body = xdr.OperationBody(
                type=xdr.OperationType.BUMP_SEQUENCE,
                bump_sequence_op=xdr.BumpSequenceOp(bump_to=xdr.SequenceNumber(xdr.Int64(0))),
            )
        else:
            pair = _winners(op)[winner].vec
            assert pair is not None
            pair.sc_vec[1] = scval.to_int128(0)
        outcome.listed_envelope_xdr = str(env.to_xdr())

    def _rewrite(
        self, outcome: Outcome, n: int, *, amount: int | None = None, asset: Any = None, destination: str | None = None
    ) -> None:
        env = xdr.TransactionEnvelope.from_xdr(outcome.listed_envelope_xdr or outcome.envelope_xdr)
        assert env.v1 is not None
        op_index, winner = _slot(env.v1.tx, n)
        op = env.v1.tx.operations[op_index]
        if winner is None:
            pay = op.body.payment_op
            assert pay is not None
            if amount is not None:
                pay.amount = xdr.Int64(amount)
            if asset is not None:
                pay.asset = _asset(asset).to_xdr_object()
            if destination is not None:
                pay.destination = MuxedAccount(destination).to_xdr_object()
        else:
            pair = _winners(op)[winner].vec
            assert pair is not None
            if asset is not None:
                raise DiscrepancyError(400, "a contract payout's asset is the contract's: change its amount only")
            if amount is not None:
                pair.sc_vec[1] = scval.to_int128(amount)
            if destination is not None:
                pair.sc_vec[0] = scval.to_address(destination)
        outcome.listed_envelope_xdr = str(env.to_xdr())

    # -- new transactions --------------------------------------------------------------------------------------

    def _unrequested(self, body: dict[str, Any]) -> str:
        amount = _amount(body, required=True)
        sdk_asset = _asset(body.get("asset"))
        destination = _destination(body)
        source = body.get("source") or next(
            (p.source for p in reversed(self.ledger.payments) if p.kind in ("payment", "contract")), None
        )
        if not isinstance(source, str) or not StrKey.is_valid_ed25519_public_key(source):
            raise DiscrepancyError(400, "no distribution account known yet: name it as `source`")
        tx_hash = self._land(Keypair.random().public_key, [(source, destination, sdk_asset, amount)], None)
        return f"{tx_hash}:0"

    def _repeat(self, tx_hash: str, outcome: Outcome, n: int) -> str:
        spender, destination, sdk_asset, amount = self._paid(outcome, n)
        memo = HashMemo(bytes.fromhex(tx_hash))
        new = self._land(Keypair.random().public_key, [(spender, destination, sdk_asset, amount)], memo)
        return f"{new}:0"

    def _reversal(self, tx_hash: str, outcome: Outcome, n: int, body: dict[str, Any]) -> str:
        spender, destination, sdk_asset, paid = self._paid(outcome, n)
        amount = _amount(body, required=False) or paid
        memo = ReturnHashMemo(bytes.fromhex(tx_hash))
        new = self._land(destination, [(destination, spender, sdk_asset, amount)], memo)
        return f"{new}:0"

    def _land(self, tx_source: str, payments: list[tuple[str, str, SdkAsset, int]], memo: Memo | None) -> str:
        """A transaction applied in a ledger of its own (money moved as far as the balances allow), unsigned:
        the listing shows what landed, not who signed it."""
        lg = self.ledger
        lg.close_ledger()
        source = lg.accounts.get(tx_source)
        builder = TransactionBuilder(
            Account(tx_source, source.sequence if source else lg.sequence << 32), lg.passphrase, INJECTED_FEE
        )
        builder.add_time_bounds(0, 0)
        if memo is not None:
            builder.add_memo(memo)
        for spender, destination, sdk_asset, amount in payments:
            builder.append_payment_op(destination, sdk_asset, from_stroops(amount), source=spender)
        env = builder.build()
        tx_hash = env.hash_hex()
        fee = INJECTED_FEE * len(payments)
        if source is not None:
            source.sequence += 1
            source.balances["native"] = max(0, source.balances.get("native", 0) - fee)
        results = []
        for index, (spender, destination, sdk_asset, amount) in enumerate(payments):
            key = canonical(sdk_asset)
            for account, delta in ((spender, -amount), (destination, amount)):
                held = lg.accounts.get(account)
                if held is not None and key in held.balances:
                    held.balances[key] = max(0, held.balances[key] + delta)
            lg.payments.append(Payment(lg.sequence, tx_hash, index, spender, destination, key, amount, "injected"))
            results.append(_payment_result(xdr.PaymentResultCode.PAYMENT_SUCCESS))
        lg.outcomes[tx_hash] = Outcome(
            TxStatus.SUCCESS,
            lg.sequence,
            lg.close_time,
            str(env.to_xdr()),
            _result_xdr(xdr.TransactionResultCode.txSUCCESS, fee, results),
            len(lg.outcomes) + 1,
        )
        if lg.state_file is not None:
            lg.save(lg.state_file)
        lg._count("discrepancies_landed")
        return tx_hash


def _tx(envelope_xdr: str) -> xdr.Transaction:
    env = xdr.TransactionEnvelope.from_xdr(envelope_xdr)
    if env.v1 is None:
        raise DiscrepancyError(400, "only v1 envelopes are emulated")
    return env.v1.tx


def _amount(body: dict[str, Any], *, required: bool) -> int:
    value = body.get("amount")
    if value is None and not required:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise DiscrepancyError(400, "amount must be a positive integer (minor units: stroops)")
    return value


def _asset(code: Any) -> SdkAsset:
    if code is None:
        return SdkAsset.native()
    try:
        return stellar_asset(str(code))
    except ValueError as err:
        raise DiscrepancyError(400, f"asset: {err}") from err


def _destination(body: dict[str, Any]) -> str:
    value = body.get("destination")
    if not isinstance(value, str) or not StrKey.is_valid_ed25519_public_key(value):
        raise DiscrepancyError(400, "destination must be a G... account")
    return value


__all__ = ["KINDS", "DiscrepancyError", "Injector"]
