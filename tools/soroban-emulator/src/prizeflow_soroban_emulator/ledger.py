"""The emulated ledger: accounts, a mempool, ledgers closing on a clock, and what actually got paid.

Pure state plus stellar-sdk verification; the JSON-RPC server drives it. Everything runs on one event loop,
so no locking is needed.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from stellar_sdk import Address, Keypair, MuxedAccount, StrKey, scval, xdr
from stellar_sdk import TransactionEnvelope as SdkEnvelope
from stellar_sdk.exceptions import BadSignatureError

from prizeflow_soroban_emulator.settings import Faults
from prizeflow_stellar.amounts import to_stroops
from prizeflow_stellar.assets import canonical, stellar_asset

PROTOCOL_VERSION: Final = 22
RETENTION_LEDGERS: Final = 17280
SIM_INSTRUCTIONS: Final = 2_000_000
SIM_RESOURCE_FEE_BASE: Final = 50_000
SIM_RESOURCE_FEE_PER_WINNER: Final = 1_000


class SendStatus(StrEnum):
    PENDING = "PENDING"
    DUPLICATE = "DUPLICATE"
    TRY_AGAIN_LATER = "TRY_AGAIN_LATER"
    ERROR = "ERROR"


class TxStatus(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    NOT_FOUND = "NOT_FOUND"


@dataclass
class AccountState:
    account_id: str
    sequence: int
    # canonical asset ("native", "USDC:G...") → stroops; a non-native key is a trustline
    balances: dict[str, int]
    signers: dict[str, int]  # ed25519 public key → weight (the master key included)
    med_threshold: int = 0


@dataclass
class Payment:
    """One movement the emulated ledger applied: what tests check "paid exactly once" against."""

    ledger: int
    tx_hash: str
    op_index: int
    source: str
    destination: str
    asset: str
    amount: int
    kind: str  # "payment" | "contract" | "injected" (a discrepancy, `discrepancies.py`)


@dataclass
class Pending:
    hash: str
    envelope_xdr: str
    source: str
    sequence: int
    ops: int
    received_at: float
    dropped: bool = False


@dataclass
class Outcome:
    """A transaction that landed. The `listed_*` fields are what `getTransactions` shows instead, after an injected
    discrepancy (`discrepancies.py`); `getTransaction` and the balances keep what was applied."""

    status: TxStatus
    ledger: int
    created_at: int
    envelope_xdr: str
    result_xdr: str
    application_order: int
    listed_envelope_xdr: str | None = None
    listed_fee_extra: int = 0
    hidden: bool = False


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _result_xdr(code: xdr.TransactionResultCode, fee: int, ops: list[xdr.OperationResult] | None = None) -> str:
    result = xdr.TransactionResult(
        fee_charged=xdr.Int64(fee),
        result=xdr.TransactionResultResult(code=code, results=ops if ops is not None else None),
        ext=xdr.TransactionResultExt(0),
    )
    if code in (xdr.TransactionResultCode.txSUCCESS, xdr.TransactionResultCode.txFAILED) and ops is None:
        result.result.results = []
    return str(result.to_xdr())


def _payment_result(code: xdr.PaymentResultCode) -> xdr.OperationResult:
    return xdr.OperationResult(
        code=xdr.OperationResultCode.opINNER,
        tr=xdr.OperationResultTr(type=xdr.OperationType.PAYMENT, payment_result=xdr.PaymentResult(code=code)),
    )


def _invoke_result(ok: bool) -> xdr.OperationResult:
    code = (
        xdr.InvokeHostFunctionResultCode.INVOKE_HOST_FUNCTION_SUCCESS
        if ok
        else xdr.InvokeHostFunctionResultCode.INVOKE_HOST_FUNCTION_TRAPPED
    )
    return xdr.OperationResult(
        code=xdr.OperationResultCode.opINNER,
        tr=xdr.OperationResultTr(
            type=xdr.OperationType.INVOKE_HOST_FUNCTION,
            invoke_host_function_result=xdr.InvokeHostFunctionResult(
                code=code, success=xdr.Hash(b"\x00" * 32) if ok else None
            ),
        ),
    )


def _account_id(muxed: xdr.MuxedAccount) -> str:
    """The G account behind a (possibly muxed) account: balances live there."""
    return MuxedAccount.from_xdr_object(muxed).account_id


@dataclass
class Ledger:
    """The emulated network state."""

    passphrase: str
    capacity_ops: int
    faults: Faults = field(default_factory=Faults)
    contract_id: str | None = None
    method_name: str = "distribute_winnings"
    contract_asset: str = "native"
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    state_file: Path | None = None
    sequence: int = 1
    close_time: int = 0
    accounts: dict[str, AccountState] = field(default_factory=dict)
    mempool: dict[str, Pending] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    payments: list[Payment] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    # ledger sequence → its close time (unix seconds), for the ledgers still retained
    ledger_times: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.close_time = int(self.clock())
        self.ledger_times[self.sequence] = self.close_time
        self.network_id = hashlib.sha256(self.passphrase.encode()).digest()

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- admin -------------------------------------------------------------------------------------------

    def create_account(
        self,
        account_id: str,
        balances: dict[str, str] | None = None,
        *,
        signers: dict[str, int] | None = None,
        med_threshold: int = 0,
        master_weight: int = 1,
        sequence: int | None = None,
    ) -> AccountState:
        """Create (or top up) an account, friendbot-like. Balances are decimal strings by registry code."""
        if not StrKey.is_valid_ed25519_public_key(account_id):
            raise RpcError(-32602, f"invalid account id {account_id!r}")
        acct = self.accounts.get(account_id)
        if acct is None:
            # Like the real network, a new account's sequence is its creation ledger << 32.
            acct = AccountState(
                account_id=account_id,
                sequence=sequence if sequence is not None else self.sequence << 32,
                balances={"native": 0},
                signers={account_id: master_weight} if master_weight else {},
                med_threshold=med_threshold,
            )
            self.accounts[account_id] = acct
        for code, amount in (balances or {}).items():
            key = canonical(stellar_asset(code))
            acct.balances[key] = acct.balances.get(key, 0) + to_stroops(amount, allow_zero=True)
        for key, weight in (signers or {}).items():
            if not StrKey.is_valid_ed25519_public_key(key):
                raise RpcError(-32602, f"invalid signer {key!r}")
            if weight:
                acct.signers[key] = weight
            else:
                acct.signers.pop(key, None)
        return acct

    # -- reads -------------------------------------------------------------------------------------------

    def oldest_ledger(self) -> int:
        return max(1, self.sequence - RETENTION_LEDGERS)

    def ledger_time(self, sequence: int) -> int:
        """The close time of a retained ledger (the oldest known one for a ledger before the emulator's start)."""
        if sequence in self.ledger_times:
            return self.ledger_times[sequence]
        return min(self.ledger_times.values(), default=self.close_time)

    def account_entry_xdr(self, acct: AccountState) -> str:
        master = acct.signers.get(acct.account_id, 0)
        thresholds = bytes([master, 0, acct.med_threshold, 0])
        signers = [
            xdr.Signer(
                key=xdr.SignerKey(
                    xdr.SignerKeyType.SIGNER_KEY_TYPE_ED25519, ed25519=xdr.Uint256(StrKey.decode_ed25519_public_key(k))
                ),
                weight=xdr.Uint32(w),
            )
            for k, w in sorted(acct.signers.items())
            if k != acct.account_id
        ]
        entry = xdr.AccountEntry(
            account_id=Keypair.from_public_key(acct.account_id).xdr_account_id(),
            balance=xdr.Int64(acct.balances.get("native", 0)),
            seq_num=xdr.SequenceNumber(xdr.Int64(acct.sequence)),
            num_sub_entries=xdr.Uint32(len(signers) + len(acct.balances) - 1),
            inflation_dest=None,
            flags=xdr.Uint32(0),
            home_domain=xdr.String32(b""),
            thresholds=xdr.Thresholds(thresholds),
            signers=signers,
            ext=xdr.AccountEntryExt(0),
        )
        return str(xdr.LedgerEntryData(type=xdr.LedgerEntryType.ACCOUNT, account=entry).to_xdr())

    def trustline_entry_xdr(self, acct: AccountState, asset_key: str) -> str | None:
        if asset_key not in acct.balances or asset_key == "native":
            return None
        code, _, issuer = asset_key.partition(":")
        from stellar_sdk import Asset

        entry = xdr.TrustLineEntry(
            account_id=Keypair.from_public_key(acct.account_id).xdr_account_id(),
            asset=Asset(code, issuer).to_trust_line_asset_xdr_object(),
            balance=xdr.Int64(acct.balances[asset_key]),
            limit=xdr.Int64(2**63 - 1),
            flags=xdr.Uint32(1),
            ext=xdr.TrustLineEntryExt(0),
        )
        return str(xdr.LedgerEntryData(type=xdr.LedgerEntryType.TRUSTLINE, trust_line=entry).to_xdr())

    def ledger_entries(self, keys: list[str]) -> list[dict[str, Any]]:
        out = []
        for key_xdr in keys:
            try:
                key = xdr.LedgerKey.from_xdr(key_xdr)
            except Exception as err:
                raise RpcError(-32602, f"invalid ledger key: {type(err).__name__}") from err
            if key.type == xdr.LedgerEntryType.ACCOUNT and key.account is not None:
                ed = key.account.account_id.account_id.ed25519
                assert ed is not None
                acct = self.accounts.get(StrKey.encode_ed25519_public_key(ed.uint256))
                data = self.account_entry_xdr(acct) if acct else None
            elif key.type == xdr.LedgerEntryType.TRUSTLINE and key.trust_line is not None:
                from stellar_sdk import Asset

                ed = key.trust_line.account_id.account_id.ed25519
                assert ed is not None
                owner = StrKey.encode_ed25519_public_key(ed.uint256)
                acct = self.accounts.get(owner)
                tl = key.trust_line.asset
                alpha = tl.alpha_num4 or tl.alpha_num12
                if acct is None or alpha is None:
                    data = None
                else:
                    asset = Asset.from_xdr_object(
                        xdr.Asset(type=tl.type, alpha_num4=tl.alpha_num4, alpha_num12=tl.alpha_num12)
                    )
                    data = self.trustline_entry_xdr(acct, canonical(asset))
            else:
                data = None
            if data is not None:
                out.append({"key": key_xdr, "xdr": data, "lastModifiedLedgerSeq": self.sequence})
        return out

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        base = {
            "latestLedger": self.sequence,
            "latestLedgerCloseTime": str(self.close_time),
            "oldestLedger": self.oldest_ledger(),
            "oldestLedgerCloseTime": str(self.ledger_time(self.oldest_ledger())),
        }
        outcome = self.outcomes.get(tx_hash)
        if outcome is None:
            return {**base, "status": TxStatus.NOT_FOUND.value, "txHash": tx_hash}
        return {
            **base,
            "status": outcome.status.value,
            "txHash": tx_hash,
            "ledger": outcome.ledger,
            "createdAt": str(outcome.created_at),
            "applicationOrder": outcome.application_order,
            "feeBump": False,
            "envelopeXdr": outcome.envelope_xdr,
            "resultXdr": outcome.result_xdr,
            "resultMetaXdr": "",
        }

    # -- simulate ----------------------------------------------------------------------------------------

    def simulate(self, envelope_xdr: str) -> dict[str, Any]:
        try:
            raw = xdr.TransactionEnvelope.from_xdr(envelope_xdr)
        except Exception as err:
            raise RpcError(-32602, f"invalid transaction: {type(err).__name__}") from err
        tx = raw.v1.tx if raw.v1 is not None else None
        if (
            tx is None
            or len(tx.operations) != 1
            or tx.operations[0].body.type != xdr.OperationType.INVOKE_HOST_FUNCTION
        ):
            return {"error": "simulation needs exactly one InvokeHostFunction operation", "latestLedger": self.sequence}
        fn = tx.operations[0].body.invoke_host_function_op.host_function  # type: ignore[union-attr]
        call = fn.invoke_contract
        if call is None:
            return {"error": "only contract calls are emulated", "latestLedger": self.sequence}
        contract = Address.from_xdr_sc_address(call.contract_address).address
        method = call.function_name.sc_symbol.decode()
        if self.contract_id is not None and (contract != self.contract_id or method != self.method_name):
            return {"error": f"HostError: contract {contract} has no function {method}", "latestLedger": self.sequence}
        winners = self._winners(call.args)
        if winners is None:
            return {"error": "HostError: the last argument must be Vec<(Address, i128)>", "latestLedger": self.sequence}
        instance = xdr.LedgerKey(
            type=xdr.LedgerEntryType.CONTRACT_DATA,
            contract_data=xdr.LedgerKeyContractData(
                contract=call.contract_address,
                key=xdr.SCVal(xdr.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE),
                durability=xdr.ContractDataDurability.PERSISTENT,
            ),
        )
        fee = SIM_RESOURCE_FEE_BASE + SIM_RESOURCE_FEE_PER_WINNER * len(winners)
        data = xdr.SorobanTransactionData(
            ext=xdr.SorobanTransactionDataExt(0),
            resources=xdr.SorobanResources(
                footprint=xdr.LedgerFootprint(read_only=[instance], read_write=[]),
                instructions=xdr.Uint32(SIM_INSTRUCTIONS),
                disk_read_bytes=xdr.Uint32(1024),
                write_bytes=xdr.Uint32(256 * len(winners)),
            ),
            resource_fee=xdr.Int64(fee),
        )
        return {
            "transactionData": data.to_xdr(),
            "minResourceFee": str(fee),
            "results": [{"auth": [], "xdr": scval.to_void().to_xdr()}],
            "events": [],
            "cost": {"cpuInsns": str(SIM_INSTRUCTIONS), "memBytes": "0"},
            "latestLedger": self.sequence,
        }

    @staticmethod
    def _winners(args: list[xdr.SCVal]) -> list[tuple[str, int]] | None:
        if not args or args[-1].type != xdr.SCValType.SCV_VEC or args[-1].vec is None:
            return None
        out = []
        for pair in args[-1].vec.sc_vec:
            if pair.type != xdr.SCValType.SCV_VEC or pair.vec is None or len(pair.vec.sc_vec) != 2:
                return None
            try:
                out.append((scval.from_address(pair.vec.sc_vec[0]).address, scval.from_int128(pair.vec.sc_vec[1])))
            except (ValueError, TypeError):
                return None
        return out

    # -- send ----------------------------------------------------------------------------------------------

    def _error(self, tx_hash: str, code: xdr.TransactionResultCode) -> dict[str, Any]:
        self._count(f"send_error_{code.name}")
        return {
            "status": SendStatus.ERROR.value,
            "hash": tx_hash,
            "errorResultXdr": _result_xdr(code, 0),
            "latestLedger": self.sequence,
            "latestLedgerCloseTime": str(self.close_time),
        }

    def _reply(self, status: SendStatus, tx_hash: str) -> dict[str, Any]:
        self._count(f"send_{status.value.lower()}")
        return {
            "status": status.value,
            "hash": tx_hash,
            "latestLedger": self.sequence,
            "latestLedgerCloseTime": str(self.close_time),
        }

    def _authorized(self, env: SdkEnvelope, tx_hash: bytes, accounts: set[str]) -> bool:
        """Every account the transaction spends from has signatures reaching its medium threshold."""
        valid: set[str] = set()
        for sig in env.signatures:
            for acct_id in accounts:
                acct = self.accounts[acct_id]
                for key in acct.signers:
                    kp = Keypair.from_public_key(key)
                    if kp.signature_hint() != sig.signature_hint:
                        continue
                    try:
                        kp.verify(tx_hash, sig.signature)
                    except BadSignatureError:
                        continue
                    valid.add(key)
        for acct_id in accounts:
            acct = self.accounts[acct_id]
            weight = sum(w for k, w in acct.signers.items() if k in valid)
            if weight == 0 or weight < acct.med_threshold:
                return False
        return True

    def send(self, envelope_xdr: str) -> dict[str, Any]:  # noqa: PLR0911,PLR0912 - one exit per Stellar result code
        try:
            env = SdkEnvelope.from_xdr(envelope_xdr, self.passphrase)
            raw = xdr.TransactionEnvelope.from_xdr(envelope_xdr)
        except Exception as err:
            raise RpcError(-32602, f"invalid transaction: {type(err).__name__}") from err
        if raw.v1 is None:
            raise RpcError(-32602, "only v1 transaction envelopes are emulated")
        tx = raw.v1.tx
        tx_hash_bytes = env.hash()
        tx_hash = tx_hash_bytes.hex()
        if tx_hash in self.mempool:
            return self._reply(SendStatus.DUPLICATE, tx_hash)
        faults = self.faults
        if self.rng.random() < faults.try_again_later_rate:
            return self._reply(SendStatus.TRY_AGAIN_LATER, tx_hash)
        source = _account_id(tx.source_account)
        acct = self.accounts.get(source)
        if acct is None:
            return self._error(tx_hash, xdr.TransactionResultCode.txNO_ACCOUNT)
        queued = [p.sequence for p in self.mempool.values() if p.source == source and not p.dropped]
        expected = max([acct.sequence, *queued]) + 1
        seq = tx.seq_num.sequence_number.int64
        if seq != expected or self.rng.random() < faults.bad_seq_rate:
            return self._error(tx_hash, xdr.TransactionResultCode.txBAD_SEQ)
        ops = len(tx.operations)
        if not ops:
            return self._error(tx_hash, xdr.TransactionResultCode.txMISSING_OPERATION)
        resource_fee = tx.ext.soroban_data.resource_fee.int64 if tx.ext.soroban_data is not None else 0
        if tx.fee.uint32 - resource_fee < faults.min_base_fee * ops or self.rng.random() < faults.insufficient_fee_rate:
            return self._error(tx_hash, xdr.TransactionResultCode.txINSUFFICIENT_FEE)
        bounds = env.transaction.preconditions.time_bounds if env.transaction.preconditions else None
        now = int(self.clock())
        if bounds is not None and bounds.max_time and now > bounds.max_time:
            return self._error(tx_hash, xdr.TransactionResultCode.txTOO_LATE)
        if bounds is not None and now < bounds.min_time:
            return self._error(tx_hash, xdr.TransactionResultCode.txTOO_EARLY)
        spenders = {source}
        for op in tx.operations:
            if op.source_account is not None:
                spenders.add(_account_id(op.source_account))
        if any(s not in self.accounts for s in spenders):
            return self._error(tx_hash, xdr.TransactionResultCode.txNO_ACCOUNT)
        if not self._authorized(env, tx_hash_bytes, spenders):
            return self._error(tx_hash, xdr.TransactionResultCode.txBAD_AUTH)
        if acct.balances.get("native", 0) < tx.fee.uint32:
            return self._error(tx_hash, xdr.TransactionResultCode.txINSUFFICIENT_BALANCE)
        dropped = self.rng.random() < faults.drop_after_accept_rate
        self.mempool[tx_hash] = Pending(tx_hash, envelope_xdr, source, seq, ops, self.clock(), dropped=dropped)
        if dropped:
            self._count("dropped_after_accept")
        return self._reply(SendStatus.PENDING, tx_hash)

    # -- close -------------------------------------------------------------------------------------------

    def close_ledger(self) -> int:
        """Close one ledger: include queued transactions (FIFO, ≤ capacity ops), apply them, return how many."""
        self.sequence += 1
        # Never backwards, and never ahead of the clock: ledgers closed faster than one a second (a test's 300 ms)
        # share their second, as the network's close times follow real time (a statement dates its lines by them).
        self.close_time = max(self.close_time, int(self.clock()))
        self.ledger_times[self.sequence] = self.close_time
        self.ledger_times.pop(self.sequence - RETENTION_LEDGERS - 1, None)
        included = 0
        budget = self.capacity_ops
        for tx_hash in list(self.mempool):
            pending = self.mempool[tx_hash]
            if pending.dropped:
                del self.mempool[tx_hash]
                continue
            if pending.ops > budget:
                continue
            acct = self.accounts[pending.source]
            if pending.sequence != acct.sequence + 1:
                if pending.sequence <= acct.sequence:
                    del self.mempool[tx_hash]  # its sequence number was consumed by another transaction
                continue  # waits for its predecessor (a later ledger)
            del self.mempool[tx_hash]
            env = SdkEnvelope.from_xdr(pending.envelope_xdr, self.passphrase)
            max_time = (
                env.transaction.preconditions.time_bounds.max_time
                if env.transaction.preconditions and env.transaction.preconditions.time_bounds
                else 0
            )
            if max_time and self.close_time > max_time:
                continue  # expired in the queue: never included, like the real network
            budget -= pending.ops
            included += 1
            self._apply(pending, len(self.outcomes) + 1)
        if self.state_file is not None:
            self.save(self.state_file)
        self._count("ledgers_closed")
        return included

    def _apply(self, pending: Pending, order: int) -> None:
        raw = xdr.TransactionEnvelope.from_xdr(pending.envelope_xdr)
        assert raw.v1 is not None
        tx = raw.v1.tx
        acct = self.accounts[pending.source]
        fee = tx.fee.uint32
        acct.sequence = pending.sequence
        acct.balances["native"] -= fee
        balances: dict[str, dict[str, int]] = {}  # copies of the touched accounts; committed only on success
        moves: list[Payment] = []
        results: list[xdr.OperationResult] = []
        ok = True
        for index, op in enumerate(tx.operations):
            spender = _account_id(op.source_account) if op.source_account is not None else pending.source
            if op.body.type == xdr.OperationType.PAYMENT and op.body.payment_op is not None:
                pay = op.body.payment_op
                from stellar_sdk import Asset

                asset = canonical(Asset.from_xdr_object(pay.asset))
                code = self._pay(balances, spender, _account_id(pay.destination), asset, pay.amount.int64)
                results.append(_payment_result(code))
                if code == xdr.PaymentResultCode.PAYMENT_SUCCESS:
                    moves.append(
                        Payment(
                            self.sequence,
                            pending.hash,
                            index,
                            spender,
                            _account_id(pay.destination),
                            asset,
                            pay.amount.int64,
                            "payment",
                        )
                    )
                else:
                    ok = False
            elif op.body.type == xdr.OperationType.INVOKE_HOST_FUNCTION and op.body.invoke_host_function_op is not None:
                call = op.body.invoke_host_function_op.host_function.invoke_contract
                winners = self._winners(call.args) if call is not None else None
                step_ok = winners is not None
                for address, amount in winners or []:
                    if not address.startswith("G"):
                        step_ok = False
                        break
                    code = self._pay(balances, spender, address, self.contract_asset, amount)
                    if code != xdr.PaymentResultCode.PAYMENT_SUCCESS:
                        step_ok = False
                        break
                    moves.append(
                        Payment(
                            self.sequence,
                            pending.hash,
                            index,
                            spender,
                            address,
                            self.contract_asset,
                            amount,
                            "contract",
                        )
                    )
                results.append(_invoke_result(step_ok))
                ok = ok and step_ok
            else:
                results.append(xdr.OperationResult(code=xdr.OperationResultCode.opNOT_SUPPORTED))
                ok = False
        if ok:
            for key, bal in balances.items():
                self.accounts[key].balances = bal
            self.payments.extend(moves)
        status = TxStatus.SUCCESS if ok else TxStatus.FAILED
        tx_code = xdr.TransactionResultCode.txSUCCESS if ok else xdr.TransactionResultCode.txFAILED
        self.outcomes[pending.hash] = Outcome(
            status, self.sequence, self.close_time, pending.envelope_xdr, _result_xdr(tx_code, fee, results), order
        )
        self._count(f"tx_{status.value.lower()}")

    def _pay(
        self, balances: dict[str, dict[str, int]], source: str, dest: str, asset: str, amount: int
    ) -> xdr.PaymentResultCode:
        for key in (source, dest):
            if key not in balances and key in self.accounts:
                balances[key] = dict(self.accounts[key].balances)
        if dest not in balances:
            return xdr.PaymentResultCode.PAYMENT_NO_DESTINATION
        if asset not in balances[dest]:
            return xdr.PaymentResultCode.PAYMENT_NO_TRUST
        if asset not in balances[source]:
            return xdr.PaymentResultCode.PAYMENT_SRC_NO_TRUST
        if balances[source][asset] < amount:
            return xdr.PaymentResultCode.PAYMENT_UNDERFUNDED
        balances[source][asset] -= amount
        balances[dest][asset] += amount
        return xdr.PaymentResultCode.PAYMENT_SUCCESS

    # -- persistence ---------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "close_time": self.close_time,
            "accounts": {k: asdict(v) for k, v in self.accounts.items()},
            "outcomes": {k: {**asdict(v), "status": v.status.value} for k, v in self.outcomes.items()},
            "payments": [asdict(p) for p in self.payments],
            "ledger_times": {str(k): v for k, v in self.ledger_times.items()},
        }

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        tmp.replace(path)

    def load(self, path: Path) -> None:
        doc = json.loads(path.read_text())
        self.sequence = doc["sequence"]
        self.close_time = doc["close_time"]
        self.accounts = {k: AccountState(**v) for k, v in doc["accounts"].items()}
        self.outcomes = {k: Outcome(**{**v, "status": TxStatus(v["status"])}) for k, v in doc["outcomes"].items()}
        self.payments = [Payment(**p) for p in doc["payments"]]
        self.ledger_times = {int(k): int(v) for k, v in doc.get("ledger_times", {}).items()} or {
            self.sequence: self.close_time
        }
