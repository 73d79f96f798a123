"""Unsigned transactions for payouts: a classic payments batch, or one call of the payout contract.

Every transaction has an upper time bound and the sequence number the caller reserved; what is built is
returned with the intent the signer will hold it to (`BuiltTransaction.signature_request`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from stellar_sdk import Account, TransactionBuilder, scval, xdr

from prizeflow_contracts.events.signer import (
    MAX_OPERATIONS,
    ContractInvokeIntent,
    ContractWinner,
    IntendedOperation,
    PaymentIntent,
    ScArg,
    ScArgType,
    SignatureRequested,
)
from prizeflow_stellar.amounts import INT64_MAX, check_stroops, from_stroops
from prizeflow_stellar.assets import stellar_asset
from prizeflow_stellar.strkeys import AddressKind, validate_destination

DEFAULT_METHOD_NAME: Final = "distribute_winnings"
BASE_FEE_STROOPS: Final = 100


class BuildError(ValueError):
    """The inputs cannot make a valid payout transaction (caught before anything is signed or sent)."""


@dataclass(frozen=True, slots=True)
class PaymentInstruction:
    """One classic payment of a batch."""

    payout_id: str
    destination: str
    asset_code: str
    amount_stroops: int


@dataclass(frozen=True, slots=True)
class Winner:
    """One `(address, i128 amount)` entry of the payout contract call."""

    payout_id: str
    address: str
    amount_stroops: int


@dataclass(frozen=True, slots=True)
class Simulation:
    """What `simulateTransaction` returned that assembling an invoke needs."""

    transaction_data: str
    min_resource_fee: int
    auth: tuple[str, ...] = ()

    @classmethod
    def from_rpc(cls, result: Mapping[str, Any]) -> Simulation:
        """From the JSON-RPC `result` of simulateTransaction; raises BuildError on a simulation error."""
        if result.get("error"):
            raise BuildError(f"simulation failed: {result['error']}")
        results = result.get("results") or [{}]
        return cls(
            transaction_data=str(result["transactionData"]),
            min_resource_fee=int(result["minResourceFee"]),
            auth=tuple(results[0].get("auth") or ()),
        )


@dataclass(frozen=True, slots=True)
class BuiltTransaction:
    """An unsigned envelope and the intent it implements."""

    envelope_xdr: str
    tx_hash: str
    source_account: str
    sequence: int
    fee: int
    min_time: int
    max_time: int
    intent: tuple[IntendedOperation, ...]
    payout_ids: tuple[str, ...] = field(default=())

    def signature_request(
        self, *, request_id: str, network_passphrase: str, max_fee_stroops: int
    ) -> SignatureRequested:
        """The SignatureRequested payload for this transaction."""
        return SignatureRequested(
            request_id=request_id,
            payout_ids=list(self.payout_ids),
            unsigned_xdr=self.envelope_xdr,
            network_passphrase=network_passphrase,
            source_account=self.source_account,
            intent=list(self.intent),
            max_fee_stroops=max_fee_stroops,
        )


def _builder(source_account: str, sequence: int, network_passphrase: str, base_fee: int) -> TransactionBuilder:
    validate_destination(source_account, allow_muxed=False)
    if not 0 < sequence <= INT64_MAX:
        raise BuildError(f"sequence {sequence} is outside 1..int64 max")
    # stellar-sdk's Account holds the account's CURRENT sequence and the builder uses the next one.
    return TransactionBuilder(Account(source_account, sequence - 1), network_passphrase, base_fee=base_fee)


def _bounds(valid_from: int, valid_until: int) -> tuple[int, int]:
    if valid_until <= 0:
        raise BuildError("every payout transaction needs an upper time bound (valid_until > 0)")
    if not 0 <= valid_from < valid_until:
        raise BuildError(f"time bounds {valid_from}..{valid_until} are empty")
    return valid_from, valid_until


def _finish(
    builder: TransactionBuilder, intent: Sequence[IntendedOperation], payout_ids: Sequence[str]
) -> BuiltTransaction:
    env = builder.build()
    tx = env.transaction
    bounds = tx.preconditions.time_bounds if tx.preconditions is not None else None
    assert bounds is not None
    return BuiltTransaction(
        envelope_xdr=env.to_xdr(),
        tx_hash=env.hash_hex(),
        source_account=tx.source.account_id,
        sequence=tx.sequence,
        fee=tx.fee,
        min_time=bounds.min_time,
        max_time=bounds.max_time,
        intent=tuple(intent),
        payout_ids=tuple(payout_ids),
    )


def payment_intent(p: PaymentInstruction) -> PaymentIntent:
    return PaymentIntent(
        payout_id=p.payout_id, destination=p.destination, asset=p.asset_code, amount_stroops=p.amount_stroops
    )


def build_payments(
    *,
    source_account: str,
    sequence: int,
    payments: Sequence[PaymentInstruction],
    network_passphrase: str,
    valid_until: int,
    valid_from: int = 0,
    base_fee: int = BASE_FEE_STROOPS,
    operation_source: str | None = None,
) -> BuiltTransaction:
    """A batch of ≤100 classic payments from one account, with `sequence` as the transaction's sequence number.

    With channel accounts, `source_account` is the channel (it pays the fee and owns the sequence) and
    `operation_source` the funding account the payments come from.
    """
    if not 1 <= len(payments) <= MAX_OPERATIONS:
        raise BuildError(f"a payments batch has 1..{MAX_OPERATIONS} payments, got {len(payments)}")
    if len({p.payout_id for p in payments}) != len(payments):
        raise BuildError("a payout appears twice in one batch")
    builder = _builder(source_account, sequence, network_passphrase, base_fee)
    builder.add_time_bounds(*_bounds(valid_from, valid_until))
    for p in payments:
        validate_destination(p.destination, allow_muxed=True)
        check_stroops(p.amount_stroops)
        builder.append_payment_op(
            destination=p.destination,
            asset=stellar_asset(p.asset_code),
            amount=from_stroops(p.amount_stroops),
            source=operation_source,
        )
    intent = [payment_intent(p) for p in payments]
    return _finish(builder, intent, [p.payout_id for p in payments])


def scarg_to_scval(arg: ScArg) -> xdr.SCVal:
    """An intent argument as the SCVal the contract receives."""
    t, v = arg.type, arg.value
    converters: dict[ScArgType, Any] = {
        ScArgType.ADDRESS: scval.to_address,
        ScArgType.I128: lambda x: scval.to_int128(int(x)),
        ScArgType.U128: lambda x: scval.to_uint128(int(x)),
        ScArgType.I64: lambda x: scval.to_int64(int(x)),
        ScArgType.U64: lambda x: scval.to_uint64(int(x)),
        ScArgType.U32: lambda x: scval.to_uint32(int(x)),
        ScArgType.BOOL: lambda x: scval.to_bool(x == "true"),
        ScArgType.SYMBOL: scval.to_symbol,
        ScArgType.STRING: scval.to_string,
        ScArgType.BYTES: lambda x: scval.to_bytes(bytes.fromhex(x)),
    }
    result: xdr.SCVal = converters[t](v)
    return result


def winners_scval(winners: Sequence[Winner] | Sequence[ContractWinner]) -> xdr.SCVal:
    """`Vec<(Address, i128)>` in the given order."""
    pairs = []
    for w in winners:
        address = w.address
        amount = w.amount_stroops
        pairs.append(scval.to_vec([scval.to_address(address), scval.to_int128(amount)]))
    return scval.to_vec(pairs)


def contract_args(intent: ContractInvokeIntent) -> list[xdr.SCVal]:
    """The exact argument list an invoke intent stands for: `args`, then the winners vector if any."""
    values = [scarg_to_scval(a) for a in intent.args]
    if intent.winners:
        values.append(winners_scval(intent.winners))
    return values


def invoke_intent(
    *,
    contract_id: str,
    method: str,
    winners: Sequence[Winner],
    asset_code: str | None,
    leading_args: Sequence[ScArg] = (),
) -> ContractInvokeIntent:
    return ContractInvokeIntent(
        payout_ids=[w.payout_id for w in winners],
        contract_id=contract_id,
        method=method,
        args=list(leading_args),
        winners=[
            ContractWinner(payout_id=w.payout_id, address=w.address, amount_stroops=w.amount_stroops) for w in winners
        ],
        asset=asset_code,
    )


def build_contract_invoke(
    *,
    source_account: str,
    sequence: int,
    contract_id: str,
    winners: Sequence[Winner],
    network_passphrase: str,
    valid_until: int,
    method: str = DEFAULT_METHOD_NAME,
    asset_code: str | None = None,
    leading_args: Sequence[ScArg] = (),
    valid_from: int = 0,
    base_fee: int = BASE_FEE_STROOPS,
    operation_source: str | None = None,
    simulation: Simulation | None = None,
) -> BuiltTransaction:
    """One `method(…leading_args, Vec<(Address, i128)>)` call of the payout contract.

    Without `simulation` the result is what to send to simulateTransaction; with it, the assembled
    transaction (footprint, resources and auth from the simulation, fee = base fee + minimum resource fee).
    """
    if not 1 <= len(winners) <= MAX_OPERATIONS:
        raise BuildError(f"a contract payout has 1..{MAX_OPERATIONS} winners, got {len(winners)}")
    if len({w.payout_id for w in winners}) != len(winners):
        raise BuildError("a payout appears twice in one contract call")
    validate_destination(contract_id, allow_muxed=False, allow_contract=True)
    for w in winners:
        if validate_destination(w.address, allow_muxed=False, allow_contract=True) is AddressKind.MUXED:
            raise BuildError("a contract winner cannot be a muxed account")
        check_stroops(w.amount_stroops)
    intent = invoke_intent(
        contract_id=contract_id, method=method, winners=winners, asset_code=asset_code, leading_args=leading_args
    )
    # stellar-sdk adds the transaction data's resource fee to the inclusion fee itself.
    builder = _builder(source_account, sequence, network_passphrase, base_fee)
    builder.add_time_bounds(*_bounds(valid_from, valid_until))
    auth = [xdr.SorobanAuthorizationEntry.from_xdr(a) for a in simulation.auth] if simulation else None
    builder.append_invoke_contract_function_op(
        contract_id, method, contract_args(intent), auth=auth, source=operation_source
    )
    if simulation is not None:
        builder.set_soroban_data(simulation.transaction_data)
    return _finish(builder, [intent], intent.payout_ids)


__all__ = [
    "BASE_FEE_STROOPS",
    "DEFAULT_METHOD_NAME",
    "BuildError",
    "BuiltTransaction",
    "PaymentInstruction",
    "Simulation",
    "Winner",
    "build_contract_invoke",
    "build_payments",
    "contract_args",
    "invoke_intent",
    "payment_intent",
    "scarg_to_scval",
    "winners_scval",
]
