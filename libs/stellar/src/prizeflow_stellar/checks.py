"""`decode_and_check`: does this unsigned envelope do exactly what the SignatureRequested intent says?

The signer calls it before any key is touched. It works on the raw XDR (int64 stroops, SCVals), never on
re-parsed decimals, and every refusal carries a stable `SignatureRefusalCode`. Only canonical envelopes pass
(`prizeflow_stellar.envelopes`): the hash it returns is over the received bytes, so what was checked is
exactly what gets signed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from stellar_sdk import Address, MuxedAccount, scval, xdr

from prizeflow_contracts.events.signer import (
    ContractInvokeIntent,
    PaymentIntent,
    SignatureRefusalCode,
    SignatureRequested,
)
from prizeflow_stellar.assets import registry_code_of, stellar_asset
from prizeflow_stellar.builder import contract_args
from prizeflow_stellar.envelopes import EnvelopeError, ExactEnvelope, NonCanonicalEnvelopeError, exact_envelope

Code = SignatureRefusalCode


class IntentViolation(Exception):  # noqa: N818  (a verdict about a request, named for what it is)
    """The transaction is not exactly the intent, or not within the static policy."""

    def __init__(self, code: SignatureRefusalCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CheckPolicy:
    """The signer's static rules (from its settings)."""

    network_passphrase: str
    funding_account: str
    allowed_sources: frozenset[str]
    max_fee_stroops: int
    contract_id: str | None
    method_name: str
    allowed_assets: frozenset[str]
    # The asset a contract call pays in when the intent does not say.
    contract_asset: str | None = None
    # An upper time bound further than this from `now` is as good as none.
    max_validity_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class CheckedTransaction:
    """A transaction that matched its intent: what to sign (the received bytes) and what it moves."""

    exact: ExactEnvelope
    source_account: str
    fee: int
    max_time: int
    amounts: Mapping[str, int] = field(default_factory=dict)
    destinations: tuple[str, ...] = ()

    @property
    def tx_hash(self) -> bytes:
        """The hash of the received envelope's bytes on the signer's network."""
        return self.exact.tx_hash

    @property
    def tx_hash_hex(self) -> str:
        return self.exact.tx_hash_hex


def _account_of(muxed: xdr.MuxedAccount) -> str:
    return MuxedAccount.from_xdr_object(muxed).universal_account_id


def _fail(code: SignatureRefusalCode, detail: str) -> IntentViolation:
    return IntentViolation(code, detail)


def _decode(envelope_xdr: str, passphrase: str) -> tuple[ExactEnvelope, xdr.Transaction]:
    try:
        exact = exact_envelope(envelope_xdr, passphrase)
    except NonCanonicalEnvelopeError as err:
        raise _fail(Code.NON_CANONICAL_ENCODING, f"not canonical XDR: {err}") from err
    except EnvelopeError as err:
        raise _fail(Code.MALFORMED_XDR, str(err)) from err
    v1 = exact.xdr_envelope.v1
    assert v1 is not None
    if v1.signatures:
        raise _fail(Code.MALFORMED_XDR, "the envelope to sign already carries signatures")
    return exact, v1.tx


def _check_time_bounds(tx: xdr.Transaction, policy: CheckPolicy, now: int | None) -> int:
    cond = tx.cond
    bounds = None
    if cond.type == xdr.PreconditionType.PRECOND_TIME:
        bounds = cond.time_bounds
    elif cond.type == xdr.PreconditionType.PRECOND_V2 and cond.v2 is not None:
        bounds = cond.v2.time_bounds
    max_time = bounds.max_time.time_point.uint64 if bounds is not None else 0
    if max_time == 0:
        raise _fail(Code.MISSING_TIME_BOUNDS, "the transaction has no upper time bound")
    if policy.max_validity_seconds is not None and now is not None and max_time - now > policy.max_validity_seconds:
        raise _fail(
            Code.MISSING_TIME_BOUNDS,
            f"upper time bound {max_time} is more than {policy.max_validity_seconds}s away",
        )
    return int(max_time)


def _check_payment(
    index: int, op: xdr.Operation, want: PaymentIntent, policy: CheckPolicy, amounts: dict[str, int]
) -> str:
    if op.body.type != xdr.OperationType.PAYMENT or op.body.payment_op is None:
        raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index} is {op.body.type.name}, intent says payment")
    pay = op.body.payment_op
    if want.asset not in policy.allowed_assets:
        raise _fail(Code.ASSET_NOT_ALLOWED, f"operation {index}: asset {want.asset} is not allowed")
    code = registry_code_of(pay.asset)
    if code is None or code not in policy.allowed_assets:
        raise _fail(Code.ASSET_NOT_ALLOWED, f"operation {index} pays an asset that is not allowed")
    if code != want.asset:
        raise _fail(Code.ASSET_NOT_ALLOWED, f"operation {index} pays {code}, intent says {want.asset}")
    if pay.asset.to_xdr_bytes() != stellar_asset(code).to_xdr_object().to_xdr_bytes():
        raise _fail(Code.NON_CANONICAL_ENCODING, f"operation {index} encodes {code} in a non-canonical form")
    destination = _account_of(pay.destination)
    if destination != want.destination:
        raise _fail(Code.DESTINATION_MISMATCH, f"operation {index} pays {destination}, intent says {want.destination}")
    amount = pay.amount.int64
    if amount != want.amount_stroops:
        raise _fail(Code.AMOUNT_MISMATCH, f"operation {index} pays {amount} stroops, intent says {want.amount_stroops}")
    amounts[code] += amount
    return destination


def _same(a: xdr.SCVal, b: xdr.SCVal) -> bool:
    return bool(a.to_xdr_bytes() == b.to_xdr_bytes())


def _check_winners(index: int, got: xdr.SCVal, want: ContractInvokeIntent) -> list[str]:
    if got.type != xdr.SCValType.SCV_VEC or got.vec is None:
        raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index}: the winners argument is not a vector")
    pairs = got.vec.sc_vec
    if len(pairs) != len(want.winners):
        raise _fail(
            Code.DESTINATION_MISMATCH, f"operation {index} pays {len(pairs)} winners, intent says {len(want.winners)}"
        )
    destinations = []
    for n, (pair, winner) in enumerate(zip(pairs, want.winners, strict=True)):
        items = pair.vec.sc_vec if pair.type == xdr.SCValType.SCV_VEC and pair.vec is not None else []
        if len(items) != 2:
            raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index}: winner {n} is not an (address, i128) pair")
        try:
            address = scval.from_address(items[0]).address
            amount = scval.from_int128(items[1])
        except (ValueError, TypeError) as err:
            raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index}: winner {n} has the wrong types") from err
        if address != winner.address:
            raise _fail(
                Code.DESTINATION_MISMATCH, f"operation {index}: winner {n} is {address}, intent says {winner.address}"
            )
        if amount != winner.amount_stroops:
            raise _fail(
                Code.AMOUNT_MISMATCH,
                f"operation {index}: winner {n} gets {amount}, intent says {winner.amount_stroops}",
            )
        destinations.append(address)
    return destinations


def _check_invoke(  # noqa: PLR0912 - one branch per rule, in the order refusals are reported
    index: int, op: xdr.Operation, want: ContractInvokeIntent, policy: CheckPolicy, amounts: dict[str, int]
) -> list[str]:
    body = op.body.invoke_host_function_op
    if op.body.type != xdr.OperationType.INVOKE_HOST_FUNCTION or body is None:
        raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index} is {op.body.type.name}, intent says a contract call")
    fn = body.host_function
    if fn.type != xdr.HostFunctionType.HOST_FUNCTION_TYPE_INVOKE_CONTRACT or fn.invoke_contract is None:
        raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index} is {fn.type.name}, not a contract call")
    call = fn.invoke_contract
    if policy.contract_id is None or want.contract_id != policy.contract_id:
        raise _fail(
            Code.CONTRACT_MISMATCH, f"intent names contract {want.contract_id}, which is not the payout contract"
        )
    contract = Address.from_xdr_sc_address(call.contract_address).address
    if contract != want.contract_id:
        raise _fail(Code.CONTRACT_MISMATCH, f"operation {index} calls {contract}, intent says {want.contract_id}")
    method = call.function_name.sc_symbol.decode(errors="replace")
    if want.method != policy.method_name:
        raise _fail(Code.METHOD_MISMATCH, f"intent names method {want.method}, only {policy.method_name} is allowed")
    if method != want.method:
        raise _fail(Code.METHOD_MISMATCH, f"operation {index} calls {method}, intent says {want.method}")
    if not want.winners:
        raise _fail(Code.UNEXPECTED_OPERATION, "a contract call must name its winners, or no cap could apply")
    asset = want.asset or policy.contract_asset
    if asset is None or asset not in policy.allowed_assets:
        raise _fail(Code.ASSET_NOT_ALLOWED, f"the contract pays in {asset}, which is not allowed")
    expected = contract_args(want)
    got = list(call.args)
    lead = len(expected) - 1
    if len(got) != len(expected):
        raise _fail(
            Code.UNEXPECTED_OPERATION, f"operation {index} passes {len(got)} arguments, intent says {len(expected)}"
        )
    for n in range(lead):
        if not _same(got[n], expected[n]):
            raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index}: argument {n} differs from the intent")
    destinations = _check_winners(index, got[lead], want)
    for n, entry in enumerate(body.auth):
        if entry.credentials.type != xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT:
            raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index}: auth entry {n} is not source-account auth")
        root = entry.root_invocation
        if root.sub_invocations:
            raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index}: auth entry {n} authorizes sub-invocations")
        if root.function.contract_fn is None or root.function.contract_fn.to_xdr_bytes() != call.to_xdr_bytes():
            raise _fail(Code.UNEXPECTED_OPERATION, f"operation {index}: auth entry {n} authorizes another call")
    amounts[asset] += sum(w.amount_stroops for w in want.winners)
    return destinations


def decode_and_check(
    envelope_xdr: str, request: SignatureRequested, policy: CheckPolicy, *, now: int | None = None
) -> CheckedTransaction:
    """Decode `envelope_xdr` and check it against the request's intent and the static policy.

    Raises `IntentViolation(code, detail)` on the first difference.
    """
    if request.network_passphrase != policy.network_passphrase:
        raise _fail(Code.WRONG_NETWORK, "the request is for another network than the signer's")
    exact, tx = _decode(envelope_xdr, policy.network_passphrase)
    source = _account_of(tx.source_account)
    if source != request.source_account:
        raise _fail(Code.WRONG_SOURCE, f"transaction source {source} is not the request's {request.source_account}")
    if source not in policy.allowed_sources:
        raise _fail(Code.WRONG_SOURCE, f"{source} is not an allowed source account")
    fee = tx.fee.uint32
    limit = min(policy.max_fee_stroops, request.max_fee_stroops)
    if fee > limit:
        raise _fail(Code.FEE_TOO_HIGH, f"fee {fee} stroops is over the maximum {limit}")
    max_time = _check_time_bounds(tx, policy, now)
    if tx.memo.type != xdr.MemoType.MEMO_NONE:
        raise _fail(Code.UNEXPECTED_OPERATION, "the transaction carries a memo the intent does not name")
    ops = tx.operations
    if len(ops) != len(request.intent):
        word = "extra" if len(ops) > len(request.intent) else "missing"
        raise _fail(
            Code.UNEXPECTED_OPERATION, f"{word} operation: {len(ops)} operations, intent has {len(request.intent)}"
        )
    invokes = sum(1 for op in ops if op.body.type == xdr.OperationType.INVOKE_HOST_FUNCTION)
    if invokes and len(ops) > 1:
        raise _fail(Code.UNEXPECTED_OPERATION, "a contract call must be the only operation of its transaction")
    amounts: dict[str, int] = defaultdict(int)
    destinations: list[str] = []
    for index, (op, want) in enumerate(zip(ops, request.intent, strict=True)):
        op_source = _account_of(op.source_account) if op.source_account is not None else source
        if op_source != policy.funding_account:
            raise _fail(Code.WRONG_SOURCE, f"operation {index} spends from {op_source}, not the funding account")
        if isinstance(want, PaymentIntent):
            destinations.append(_check_payment(index, op, want, policy, amounts))
        else:
            destinations.extend(_check_invoke(index, op, want, policy, amounts))
    return CheckedTransaction(
        exact=exact,
        source_account=source,
        fee=fee,
        max_time=max_time,
        amounts=dict(amounts),
        destinations=tuple(destinations),
    )


__all__ = ["CheckPolicy", "CheckedTransaction", "IntentViolation", "decode_and_check"]
