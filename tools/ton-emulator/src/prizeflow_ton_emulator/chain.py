"""The emulated chain, with no I/O: wallets (v4r2 and highload v3 semantics), plain accounts, jetton balances, a
mempool and blocks. The HTTP layer (server.py) and unit tests drive it; time comes from an injectable clock that
tests can move forward (valid_until expiry without waiting).

What a real wallet v4r2 does and this keeps: an external message is accepted only if its signature verifies
against the wallet's key, its subwallet id matches, `valid_until` is in the future and its seqno is the
wallet's; the same checks run again at inclusion. An included message consumes the seqno even when its
transfer cannot be paid (send mode 3 ignores action errors). A jetton transfer whose sender's jetton balance
is short bounces: the jetton wallet's transaction is aborted and nothing moves.

What a real highload wallet v3 does and this keeps (ton-blockchain/highload-wallet-contract-v3): an external
message is accepted only if its signature over MsgInner verifies, its subwallet id and timeout are the wallet's,
`now - timeout < created_at <= now`, and its query id is in neither processed set; the sets rotate as the
contract rotates them (`queries` becomes `old_queries` once `last_clean_time < now - timeout`, both are dropped
past twice the timeout). Inclusion marks the query id processed and sends the internal transfer to the wallet
itself (the external transaction's one out-message); the next block delivers it, and that second transaction
sends every transfer the balance can pay, in order, skipping the others (send mode +2 ignores errors).

Blocks: each `produce_block` is one masterchain block (seqno, `gen_utime`, the last lt it holds; block 0 at
creation). The `lag_s` fault makes the API node lag the chain: it answers from the newest block at least `lag_s`
seconds old, consistently — transactions, seqno, `processed?`, wallet information, masterchain info, block headers
(a newer block is unknown to it) — as a stuck liteserver or a behind load-balanced backend would. sendBoc still
reaches the real chain (validators check it against the current state).
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytoniq_core.crypto.signature import verify_sign

from prizeflow_emulator_kit.faults import Knobs
from prizeflow_ton import highload
from prizeflow_ton.addresses import parse_address
from prizeflow_ton.highload import (
    EXIT_ALREADY_EXECUTED,
    EXIT_INVALID_CREATED_AT,
    EXIT_INVALID_SIGNATURE,
    EXIT_INVALID_SUBWALLET,
    EXIT_INVALID_TIMEOUT,
    QueryId,
    SignedHighload,
)
from prizeflow_ton.messages import (
    DEFAULT_SUBWALLET_ID,
    MalformedMessageError,
    SignedExternal,
    Transfer,
    TransferKind,
    external_message,
    from_b64,
    jetton_transfer_body,
    parse_external,
    signing_hash,
    to_b64,
)

# Exit codes of wallet v4r2 when it refuses an external message (the message is then not accepted at all).
EXIT_EXPIRED, EXIT_BAD_SEQNO, EXIT_BAD_SUBWALLET, EXIT_BAD_SIGNATURE = 36, 33, 34, 35


class ApiError(Exception):
    """An error the HTTP API answers (toncenter shape: ok=false, code, error)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Faults(Knobs):
    """The network's faults (the emulator kit's knobs): rates are probabilities in [0, 1] drawn per call from the
    chain's seeded RNG."""

    outage: bool = False  # every /api/v2 call answers 503 (the API is down)
    unavailable_rate: float = 0.0  # sendBoc: 503, nothing accepted
    lost_response_rate: float = 0.0  # sendBoc: accepted, then the response fails (502): the sender cannot know
    not_included_rate: float = 0.0  # sendBoc: accepted (200 + hash), never included in a block
    delay_rate: float = 0.0  # sendBoc: the response is delayed by delay_ms (the message still applies)
    delay_ms: int = 0
    lag_s: int = 0  # the API node answers from the newest block at least this many seconds old
    # Owners (any address form) whose jetton wallets are frozen: they refuse every incoming internal_transfer
    # and bounce it back to the sending jetton wallet (a frozen USDT wallet).
    frozen_jetton_owners: list[str] = field(default_factory=list)

    def frozen(self, owner: str) -> bool:
        """Whether `owner`'s (raw) jetton wallets refuse incoming transfers."""
        return any(parse_address(o, workchains=frozenset({0, -1})).raw == owner for o in self.frozen_jetton_owners)


@dataclass
class Wallet:
    public_key: bytes
    subwallet_id: int = DEFAULT_SUBWALLET_ID
    seqno: int = 0
    history: list[tuple[int, int]] = field(default_factory=list)  # (lt, seqno from then on)

    def seqno_at(self, lt: int) -> int:
        """The seqno as of a block whose last lt is `lt`."""
        return next((n for at, n in reversed(self.history) if at <= lt), 0)


@dataclass
class HighloadWallet:
    """A highload wallet v3's state: key, subwallet, timeout and the two generations of processed query ids
    (`shift -> bitmask of bit numbers`), as the contract's storage holds them."""

    public_key: bytes
    subwallet_id: int
    timeout: int
    old_queries: dict[int, int] = field(default_factory=dict)
    queries: dict[int, int] = field(default_factory=dict)
    last_clean_time: int = 0
    history: list[tuple[int, dict[int, int], dict[int, int], int]] = field(default_factory=list)  # lt, storage

    def as_of(self, lt: int) -> HighloadWallet:
        """The wallet's storage as of a block whose last lt is `lt` (before any inclusion: empty sets)."""
        old, new, last = next(((o, n, c) for at, o, n, c in reversed(self.history) if at <= lt), ({}, {}, 0))
        return HighloadWallet(self.public_key, self.subwallet_id, self.timeout, dict(old), dict(new), last)

    def cleaned(self, now: int) -> tuple[dict[int, int], dict[int, int], int]:
        """(old_queries, queries, last_clean_time) after the contract's rotation at `now` (not stored)."""
        old, new, last = self.old_queries, self.queries, self.last_clean_time
        if last < now - self.timeout:
            old, new = new, {}
            if last < now - 2 * self.timeout:
                old = {}
            last = now
        return old, new, last

    def processed(self, q: QueryId, *, now: int | None = None) -> bool:
        """The `processed?` get-method: with `now`, as after a rotation at that moment (`need_clean`)."""
        old, new, _ = self.cleaned(now) if now is not None else (self.old_queries, self.queries, 0)
        return any(bool(gen.get(q.shift, 0) >> q.bit_number & 1) for gen in (old, new))

    def mark(self, q: QueryId, now: int, lt: int) -> None:
        self.old_queries, self.queries, self.last_clean_time = self.cleaned(now)
        self.queries[q.shift] = self.queries.get(q.shift, 0) | (1 << q.bit_number)
        self.history.append((lt, dict(self.old_queries), dict(self.queries), self.last_clean_time))


MASTER_SHARD = "-9223372036854775808"


@dataclass(frozen=True, slots=True)
class Block:
    """A masterchain block: its seqno, `gen_utime` and the last lt of what it holds."""

    seqno: int
    utime: int
    end_lt: int

    def hash(self, kind: str) -> str:
        return base64.b64encode(hashlib.sha256(f"{kind}/{self.seqno}".encode()).digest()).decode()

    def id(self) -> dict[str, Any]:
        return {"@type": "ton.blockIdExt", "workchain": -1, "shard": MASTER_SHARD, "seqno": self.seqno,
                "root_hash": self.hash("root"), "file_hash": self.hash("file")}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PendingInternal:
    """The internal transfer a highload wallet sent itself: delivered (its second transaction) next block."""

    wallet: str
    hash: str  # hex
    value: int
    batch: highload.HighloadBatch
    body: str  # base64 BOC of the internal_transfer body
    created_lt: int = 0


@dataclass
class Tx:
    """One transaction; getTransactions shows it in toncenter v2's shape (`aborted` is kept here, not shown: v2
    has no such field, a bounce is read from the out-messages)."""

    account: str
    lt: int
    utime: int
    in_msg: dict[str, Any]
    out_msgs: list[dict[str, Any]]
    aborted: bool
    fee: int
    # What getTransactions shows instead, after an injected discrepancy (`discrepancies.py`): the chain keeps
    # what was applied (balances, transfers_to, tryLocateResultTx).
    hidden: bool = False
    listed_out_msgs: list[dict[str, Any]] | None = None
    listed_fee_extra: int = 0

    @property
    def hash(self) -> str:
        digest = hashlib.sha256(f"{self.account}/{self.lt}".encode()).digest()
        return base64.b64encode(digest).decode()

    def view(self) -> dict[str, Any]:
        fee = self.fee + self.listed_fee_extra
        return {
            "@type": "raw.transaction",
            "utime": self.utime,
            "transaction_id": {"@type": "internal.transactionId", "lt": str(self.lt), "hash": self.hash},
            "fee": str(fee),
            "storage_fee": "0",
            "other_fee": str(fee),
            "in_msg": self.in_msg,
            "out_msgs": self.out_msgs if self.listed_out_msgs is None else self.listed_out_msgs,
        }


def _hash_bytes(text: str) -> bytes:
    """A transaction or message hash as toncenter takes it: hex or base64 (standard or URL-safe)."""
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError as err:
        raise ApiError(400, "a hash is hex or base64") from err


def _friendly(raw: str) -> str:
    return parse_address(raw, workchains=frozenset({0, -1})).friendly(bounceable=True)


def _b64(hex_hash: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_hash)).decode()


def _expires_at(ext: SignedExternal | SignedHighload) -> int:
    """The first moment the wallet refuses the message."""
    return ext.batch.expires_at if isinstance(ext, SignedHighload) else ext.message.valid_until


def _external_body(ext: SignedExternal | SignedHighload) -> Any:
    """The body cell of the external message as sent (what toncenter shows as the in-message's `msg_data`)."""
    if isinstance(ext, SignedHighload):
        return highload.external_message(ext.batch, ext.signature).refs[0]
    return external_message(ext.message, ext.signature).refs[0]


@dataclass
class Chain:
    fee_nanotons: int = 3_000_000
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    faults: Faults = field(default_factory=Faults)
    wallets: dict[str, Wallet] = field(default_factory=dict)
    highload_wallets: dict[str, HighloadWallet] = field(default_factory=dict)
    internal_queue: list[PendingInternal] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)  # nanotons by raw address
    jetton_wallets: dict[str, tuple[str, str]] = field(default_factory=dict)  # jetton wallet -> (master, owner)
    jetton_balances: dict[tuple[str, str], int] = field(default_factory=dict)  # (master, owner) -> units
    mempool: dict[str, SignedExternal | SignedHighload] = field(default_factory=dict)  # by hash, arrival order
    dropped: set[str] = field(default_factory=set)  # accepted but never to be included (fault)
    transactions: dict[str, list[Tx]] = field(default_factory=dict)  # by raw account, oldest first
    included: dict[str, int] = field(default_factory=dict)  # message hash -> lt of the wallet transaction
    counters: dict[str, int] = field(default_factory=dict)  # what happened, for tests (`/emulator/stats`)
    offset_s: float = 0.0
    lt: int = 1_000_000
    block: int = 0
    blocks: list[Block] = field(default_factory=list)  # masterchain blocks, oldest first (block 0 at creation)

    def __post_init__(self) -> None:
        if not self.blocks:
            self.blocks.append(Block(self.block, self.now(), self.lt))

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def now(self) -> int:
        return int(self.clock() + self.offset_s)

    def lagging(self) -> bool:
        return self.faults.lag_s > 0

    def visible(self) -> Block:
        """The newest block the API node has: the last one, or with `lag_s` the newest at least that old."""
        if not self.lagging():
            return self.blocks[-1]
        cutoff = self.now() - self.faults.lag_s
        return next((b for b in reversed(self.blocks) if b.utime <= cutoff), self.blocks[0])

    def masterchain_info(self) -> dict[str, Any]:
        """toncenter v2 `getMasterchainInfo`."""
        return {"@type": "blocks.masterchainInfo", "last": self.visible().id(), "init": self.blocks[0].id(),
                "state_root_hash": self.visible().hash("state")}  # fmt: skip

    def block_header(self, workchain: int, shard: str, seqno: int, root_hash: str | None = None) -> dict[str, Any]:
        """toncenter v2 `getBlockHeader` of a masterchain block the node has."""
        if workchain != -1 or str(shard) != MASTER_SHARD:
            raise ApiError(500, "LITE_SERVER_UNKNOWN: the emulator has masterchain blocks only")
        if not 0 <= seqno <= self.visible().seqno:
            raise ApiError(500, f"LITE_SERVER_NOTREADY: block {seqno} is not in db")
        block = self.blocks[seqno]
        if root_hash and root_hash != block.hash("root"):
            raise ApiError(500, "LITE_SERVER_UNKNOWN: root hash mismatch")
        prev = [self.blocks[seqno - 1].id()] if seqno else []
        return {"@type": "blocks.header", "id": block.id(), "global_id": -217, "version": 0, "flags": 1,
                "after_merge": False, "after_split": False, "before_split": False, "want_merge": False,
                "want_split": False, "validator_list_hash_short": 0, "catchain_seqno": 0, "min_ref_mc_seqno": 0,
                "is_key_block": False, "prev_key_block_seqno": 0, "start_lt": str(block.end_lt),
                "end_lt": str(block.end_lt), "gen_utime": block.utime, "vert_seqno": 0,
                "prev_blocks": prev}  # fmt: skip

    def run_get_method(self, address: str, method: str, stack: list[int]) -> dict[str, Any]:
        """toncenter v2 `runGetMethod` (`seqno`, `processed?`): `smc.runResult`, naming the block it read."""
        if method == "seqno":
            value = self.seqno(address)
        elif method == "processed?":
            if len(stack) != 2:
                raise ApiError(400, "processed? takes [query_id, need_clean]")
            value = -1 if self.processed(address, stack[0], need_clean=stack[1] != 0) else 0
        else:
            raise ApiError(400, f"the emulator runs only the `seqno` and `processed?` get-methods, not {method!r}")
        last_tx = {"@type": "internal.transactionId", "lt": "0", "hash": ""}
        return {"@type": "smc.runResult", "gas_used": 0, "stack": [["num", hex(value)]], "exit_code": 0,
                "block_id": self.visible().id(), "last_transaction_id": last_tx}  # fmt: skip

    # -- setup (admin) -----------------------------------------------------------------------------------------

    def add_wallet(self, address: str, public_key: bytes, *, balance: int, subwallet_id: int) -> str:
        raw = parse_address(address).raw
        self.wallets[raw] = Wallet(public_key=public_key, subwallet_id=subwallet_id)
        self.balances[raw] = balance
        return raw

    def add_highload_wallet(
        self, address: str, public_key: bytes, *, balance: int, subwallet_id: int, timeout: int
    ) -> str:
        """A highload wallet v3 (again: its balance and settings set anew, its processed query ids kept, as funding
        a deployed wallet would)."""
        raw = parse_address(address).raw
        wallet = HighloadWallet(public_key=public_key, subwallet_id=subwallet_id, timeout=timeout)
        if (known := self.highload_wallets.get(raw)) is not None:
            wallet.old_queries, wallet.queries = known.old_queries, known.queries
            wallet.last_clean_time = known.last_clean_time
            wallet.history = known.history
        self.highload_wallets[raw] = wallet
        self.balances[raw] = balance
        return raw

    def add_jetton(self, *, master: str, owner: str, jetton_wallet: str, balance: int) -> None:
        master_raw, owner_raw, wallet_raw = (parse_address(a).raw for a in (master, owner, jetton_wallet))
        self.jetton_wallets[wallet_raw] = (master_raw, owner_raw)
        self.jetton_balances[(master_raw, owner_raw)] = balance

    def jetton_wallet_of(self, master: str, owner: str) -> str:
        """The jetton wallet of `owner` (the emulator's own derivation for owners never declared)."""
        for wallet, (m, o) in self.jetton_wallets.items():
            if (m, o) == (master, owner):
                return wallet
        derived = "0:" + hashlib.sha256(f"{master}/{owner}".encode()).hexdigest()
        self.jetton_wallets[derived] = (master, owner)
        return derived

    # -- API -------------------------------------------------------------------------------------------------

    def _refuse(self, exit_code: int, why: str) -> ApiError:
        return ApiError(
            500,
            "LITE_SERVER_UNKNOWN: cannot apply external message to current state : External message was not "
            f"accepted (exitcode={exit_code}: {why})",
        )

    def _verify(self, ext: SignedExternal) -> None:
        m = ext.message
        wallet = self.wallets.get(m.wallet)
        if wallet is None:
            raise ApiError(500, "LITE_SERVER_UNKNOWN: account is not initialized (no wallet at this address)")
        if m.valid_until <= self.now():
            raise self._refuse(EXIT_EXPIRED, "valid_until passed")
        if m.seqno != wallet.seqno:
            raise self._refuse(EXIT_BAD_SEQNO, f"seqno {m.seqno} is not the wallet's {wallet.seqno}")
        if m.subwallet_id != wallet.subwallet_id:
            raise self._refuse(EXIT_BAD_SUBWALLET, "subwallet id")
        if not verify_sign(wallet.public_key, signing_hash(m), ext.signature):
            raise self._refuse(EXIT_BAD_SIGNATURE, "signature")

    def _verify_highload(self, ext: SignedHighload) -> None:
        """The checks of the contract's recv_external, in its order (none of them changes the wallet)."""
        b = ext.batch
        wallet = self.highload_wallets.get(b.wallet)
        if wallet is None:
            raise ApiError(500, "LITE_SERVER_UNKNOWN: account is not initialized (no wallet at this address)")
        now = self.now()
        if not verify_sign(wallet.public_key, bytes.fromhex(ext.inner_hash), ext.signature):
            raise self._refuse(EXIT_INVALID_SIGNATURE, "signature")
        if b.subwallet_id != wallet.subwallet_id:
            raise self._refuse(EXIT_INVALID_SUBWALLET, "subwallet id")
        if b.timeout != wallet.timeout:
            raise self._refuse(EXIT_INVALID_TIMEOUT, "timeout")
        if not now - wallet.timeout < b.created_at <= now:
            raise self._refuse(EXIT_INVALID_CREATED_AT, f"created_at {b.created_at} not in ({now - b.timeout}, {now}]")
        if wallet.processed(b.query_id, now=now):
            raise self._refuse(EXIT_ALREADY_EXECUTED, f"query id {b.query_id.value} already executed")

    def _parse(self, boc: str) -> SignedExternal | SignedHighload:
        try:
            cell = from_b64(boc)
            if highload.external_destination(cell) in self.highload_wallets:
                return highload.parse_external(cell)
            return parse_external(cell)
        except MalformedMessageError as err:
            raise ApiError(400, f"failed to parse the message: {err}") from err

    def _check(self, ext: SignedExternal | SignedHighload) -> None:
        if isinstance(ext, SignedHighload):
            self._verify_highload(ext)
        else:
            self._verify(ext)

    def send_boc(self, boc: str) -> str:
        """Accept an external message into the mempool; returns its hash (hex). The same message again is
        accepted again and changes nothing (one mempool entry per hash)."""
        ext = self._parse(boc)
        if isinstance(ext, SignedExternal) and ext.hash in self.included:
            raise self._refuse(EXIT_BAD_SEQNO, "already included")
        self._check(ext)
        self.count("accepted")
        if ext.hash not in self.mempool and self.rng.random() < self.faults.not_included_rate:
            self.dropped.add(ext.hash)
        self.mempool.setdefault(ext.hash, ext)
        return ext.hash

    def seqno(self, address: str) -> int:
        wallet = self.wallets.get(parse_address(address).raw)
        if parse_address(address).raw in self.highload_wallets:
            raise ApiError(500, "runGetMethod: a highload wallet v3 has no seqno (exit code 11)")
        if wallet is None:
            raise ApiError(500, "runGetMethod: the account is not active (exit code -13)")
        return wallet.seqno_at(self.visible().end_lt) if self.lagging() else wallet.seqno

    def processed(self, address: str, query_id: int, *, need_clean: bool) -> bool:
        """The highload wallet's `processed?(query_id, need_clean)` get-method."""
        wallet = self.highload_wallets.get(parse_address(address).raw)
        if wallet is None:
            raise ApiError(500, "runGetMethod: not a highload wallet v3 (exit code 11)")
        if self.lagging():
            block = self.visible()
            then = wallet.as_of(block.end_lt)
            return then.processed(QueryId.from_value(query_id), now=block.utime if need_clean else None)
        return wallet.processed(QueryId.from_value(query_id), now=self.now() if need_clean else None)

    def wallet_information(self, address: str) -> dict[str, Any]:
        raw = parse_address(address, workchains=frozenset({0, -1})).raw
        hl = self.highload_wallets.get(raw)
        if hl is not None:
            return {"wallet": True, "balance": str(self.balances.get(raw, 0)), "account_state": "active",
                    "wallet_type": "highload v3", "wallet_id": hl.subwallet_id, "timeout": hl.timeout}  # fmt: skip
        wallet = self.wallets.get(raw)
        info: dict[str, Any] = {"wallet": wallet is not None, "balance": str(self.balances.get(raw, 0))}
        if wallet is None:
            info["account_state"] = "active" if raw in self.balances else "uninitialized"
            return info
        seqno = wallet.seqno_at(self.visible().end_lt) if self.lagging() else wallet.seqno
        return {**info, "account_state": "active", "wallet_type": "wallet v4 r2", "seqno": seqno,
                "wallet_id": wallet.subwallet_id}  # fmt: skip

    def get_transactions(
        self,
        address: str,
        *,
        limit: int,
        lt: int | None = None,
        tx_hash: str | None = None,
        to_lt: int | None = None,
    ) -> list[dict[str, Any]]:
        """toncenter v2 `getTransactions`: newest first; `lt` + `hash`: start at that transaction (inclusive) and go
        back; `to_lt`: stop before the transactions at or below that logical time (0: no bound)."""
        raw = parse_address(address, workchains=frozenset({0, -1})).raw
        shown = self.visible().end_lt if self.lagging() else self.lt
        history = self.transactions.get(raw, [])
        if lt is not None and tx_hash is not None:
            at = next((t for t in history if t.lt == lt), None)
            if at is None or _hash_bytes(tx_hash) != base64.b64decode(at.hash):
                raise ApiError(500, "LITE_SERVER_UNKNOWN: cannot find transaction with this lt and hash")
        txs = [
            t
            for t in reversed(history)
            if (lt is None or t.lt <= lt) and t.lt <= shown and (not to_lt or t.lt > to_lt) and not t.hidden
        ]
        return [t.view() for t in txs[:limit]]

    # -- blocks ----------------------------------------------------------------------------------------------

    def produce_block(self) -> int:
        """Include every includable mempool message (in arrival order); drop expired or stale ones."""
        self.block += 1
        delivered, self.internal_queue = self.internal_queue, []
        for pending in delivered:
            self._internal_transfer(pending)
        for h, ext in list(self.mempool.items()):
            if h in self.dropped:
                if _expires_at(ext) <= self.now():
                    del self.mempool[h]
                continue
            del self.mempool[h]
            try:
                self._check(ext)
            except ApiError:
                continue  # a real validator drops it too: seqno moved on, query id used, or it expired
            if isinstance(ext, SignedHighload):
                self._include_highload(ext)
            else:
                self._include(ext)
        self.blocks.append(Block(self.block, self.now(), self.lt))
        return self.block

    def _next_lt(self) -> int:
        self.lt += 1000
        return self.lt

    def _record(self, account: str, tx: Tx) -> None:
        self.transactions.setdefault(account, []).append(tx)

    def _include_highload(self, ext: SignedHighload) -> None:
        """The external transaction: the query id is marked processed (committed even if nothing can be sent);
        its one out-message is the internal transfer to the wallet itself, when the balance pays it."""
        b = ext.batch
        wallet = self.highload_wallets[b.wallet]
        self.included[ext.hash] = self._next_lt()
        wallet.mark(b.query_id, self.now(), self.included[ext.hash])
        self.count("included")
        self.balances[b.wallet] = max(0, self.balances.get(b.wallet, 0) - self.fee_nanotons)
        out: list[dict[str, Any]] = []
        if self.balances[b.wallet] >= b.internal_nanotons:
            self.balances[b.wallet] -= b.internal_nanotons
            internal_hash = hashlib.sha256(f"internal_transfer/{ext.hash}".encode()).hexdigest()
            body = to_b64(highload.internal_transfer(b).refs[0])
            lt = self.included[ext.hash]
            out.append(
                self._msg(
                    internal_hash, b.wallet, b.wallet, b.internal_nanotons, bounce=False, body=body, created_lt=lt + 1
                )
            )
            self.internal_queue.append(
                PendingInternal(b.wallet, internal_hash, b.internal_nanotons, b, body, created_lt=lt + 1)
            )
        in_msg = self._msg(ext.hash, "", b.wallet, 0, bounce=False, body=to_b64(_external_body(ext)))
        tx = Tx(b.wallet, self.included[ext.hash], self.now(), in_msg, out, aborted=False, fee=self.fee_nanotons)
        self._record(b.wallet, tx)

    def _internal_transfer(self, p: PendingInternal) -> None:
        """The wallet's second transaction: every transfer the balance can pay, in order; the others skipped."""
        lt = self._next_lt()
        self.balances[p.wallet] = self.balances.get(p.wallet, 0) + p.value
        self.balances[p.wallet] = max(0, self.balances[p.wallet] - self.fee_nanotons)
        out: list[dict[str, Any]] = []
        bounced: list[Tx] = []
        for n, t in enumerate(p.batch.transfers):
            value = t.message_value
            if self.balances[p.wallet] < value:
                self.count("actions_skipped")
                continue  # send mode +2: this action fails alone
            self.balances[p.wallet] -= value
            out_hash = hashlib.sha256(f"out/{p.hash}/{n}".encode()).hexdigest()
            body = to_b64(jetton_transfer_body(t)) if t.kind is TransferKind.JETTON else ""
            created = lt + 1 + len(out)
            out.append(
                self._msg(out_hash, p.wallet, t.message_to, value, bounce=t.bounce, body=body, created_lt=created)
            )
            if t.kind is TransferKind.JETTON:
                self._jetton(p.wallet, t, out_hash, created)
            elif (back := self._native(p.wallet, t, value, out_hash, created)) is not None:
                bounced.append(back)
        in_msg = self._msg(p.hash, p.wallet, p.wallet, p.value, bounce=False, body=p.body, created_lt=p.created_lt)
        self._record(p.wallet, Tx(p.wallet, lt, self.now(), in_msg, out, aborted=False, fee=self.fee_nanotons))
        for back in bounced:
            self._record(p.wallet, back)

    def _msg(
        self, h: str, src: str, dest: str, value: int, *, bounce: bool, body: str = "", created_lt: int = 0
    ) -> dict[str, Any]:
        """A `raw.message`; `created_lt`: the lt its sender's transaction created it at (0 for an external one)."""
        return {"@type": "raw.message", "hash": _b64(h), "source": _friendly(src) if src else "",
                "destination": _friendly(dest) if dest else "", "value": str(value), "bounce": bounce,
                "created_lt": str(created_lt), "msg_data": {"@type": "msg.dataRaw", "body": body}}  # fmt: skip

    def _include(self, ext: SignedExternal) -> None:
        m, t = ext.message, ext.message.transfer
        wallet = self.wallets[m.wallet]
        wallet.seqno += 1
        self.included[ext.hash] = self._next_lt()
        wallet.history.append((self.included[ext.hash], wallet.seqno))
        self.count("included")
        fee = self.fee_nanotons
        self.balances[m.wallet] = max(0, self.balances.get(m.wallet, 0) - fee)
        out: list[dict[str, Any]] = []
        bounced: Tx | None = None
        value = t.message_value
        if self.balances[m.wallet] >= value:  # else: mode 3 ignores the failed action; seqno is consumed anyway
            self.balances[m.wallet] -= value
            out_hash = hashlib.sha256(f"out/{ext.hash}".encode()).hexdigest()
            body = to_b64(jetton_transfer_body(t)) if t.kind is TransferKind.JETTON else ""
            created = self.included[ext.hash] + 1
            out.append(
                self._msg(out_hash, m.wallet, t.message_to, value, bounce=t.bounce, body=body, created_lt=created)
            )
            if t.kind is TransferKind.JETTON:
                self._jetton(m.wallet, t, out_hash, created)
            else:
                bounced = self._native(m.wallet, t, value, out_hash, created)
        in_msg = self._msg(ext.hash, "", m.wallet, 0, bounce=False, body=to_b64(_external_body(ext)))
        tx = Tx(m.wallet, self.included[ext.hash], self.now(), in_msg, out, aborted=False, fee=fee)
        self._record(m.wallet, tx)
        if bounced is not None:
            self._record(m.wallet, bounced)

    def _initialised(self, account: str) -> bool:
        return (
            account in self.wallets
            or account in self.highload_wallets
            or account in self.jetton_wallets
            or self.balances.get(account, 0) > 0
        )

    def _native(self, sender: str, t: Transfer, value: int, in_hash: str, created_lt: int) -> Tx | None:
        """The destination's transaction of a TON transfer. An uninitialised account (no contract, no balance)
        cannot run a bounceable message: its transaction is aborted and bounces the value (less the fee) back to
        the sender, whose later transaction takes it (returned: the caller records it after the sender's own); a
        non-bounceable one is credited (the account then holds it, uninitialised), as on the real chain."""
        lt = self._next_lt()
        in_msg = self._msg(in_hash, sender, t.destination, value, bounce=t.bounce, created_lt=created_lt)
        if t.bounce and not self._initialised(t.destination):
            self.count("native_bounced")
            back = max(0, value - self.fee_nanotons)
            bounce_hash = hashlib.sha256(f"bounce/{in_hash}".encode()).hexdigest()
            bounce = self._msg(bounce_hash, t.destination, sender, back, bounce=False, created_lt=lt + 1)
            self._record(t.destination, Tx(t.destination, lt, self.now(), in_msg, [bounce], aborted=True, fee=0))
            self.balances[sender] = self.balances.get(sender, 0) + back
            return Tx(sender, self._next_lt(), self.now(), bounce, [], aborted=False, fee=0)
        self.balances[t.destination] = self.balances.get(t.destination, 0) + value
        self._record(t.destination, Tx(t.destination, lt, self.now(), in_msg, [], aborted=False, fee=0))
        return None

    def _jetton(self, sender: str, t: Transfer, in_hash: str, created_lt: int) -> None:
        """Our jetton wallet's transaction (the `transfer` from its owner), then the destination's jetton wallet's
        (the `internal_transfer`), in the same block: it credits the destination and sends the excess to the
        response destination and a notification to its owner, or, frozen, is aborted and bounces the jettons back
        to our jetton wallet, whose third transaction takes them back."""
        jetton_wallet = t.message_to
        owner_of = self.jetton_wallets.get(jetton_wallet)
        key = (owner_of[0], sender) if owner_of is not None else None
        in_msg = self._msg(in_hash, sender, jetton_wallet, t.attached_nanotons, bounce=t.bounce, created_lt=created_lt)
        lt = self._next_lt()
        if owner_of is None or owner_of[1] != sender or key is None or self.jetton_balances.get(key, 0) < t.amount:
            # Not the sender's jetton wallet, or short of jettons: the jetton wallet throws and bounces.
            bounce_hash = hashlib.sha256(f"bounce/{in_hash}".encode()).hexdigest()
            back = max(0, t.attached_nanotons - self.fee_nanotons)
            out = (
                [self._msg(bounce_hash, jetton_wallet, sender, back, bounce=False, created_lt=lt + 1)]
                if t.bounce
                else []
            )
            if t.bounce:
                self.balances[sender] = self.balances.get(sender, 0) + back
            self._record(jetton_wallet, Tx(jetton_wallet, lt, self.now(), in_msg, out, aborted=True, fee=0))
            return
        master = owner_of[0]
        self.jetton_balances[key] -= t.amount
        dest_wallet = self.jetton_wallet_of(master, t.destination)
        internal_hash = hashlib.sha256(f"internal_transfer/{in_hash}".encode()).hexdigest()
        value = max(0, t.attached_nanotons - self.fee_nanotons)
        internal = self._msg(internal_hash, jetton_wallet, dest_wallet, value, bounce=True, created_lt=lt + 1)
        self._record(jetton_wallet, Tx(jetton_wallet, lt, self.now(), in_msg, [internal], aborted=False, fee=0))
        self._internal_transfer_in(jetton_wallet, dest_wallet, t, internal=internal, key=key, master=master)

    def _internal_transfer_in(
        self,
        source: str,
        dest_wallet: str,
        t: Transfer,
        *,
        internal: dict[str, Any],
        key: tuple[str, str],
        master: str,
    ) -> None:
        """The destination's jetton wallet processing the internal_transfer from ours (`source`)."""
        internal_hash = base64.b64decode(internal["hash"]).hex()
        value = int(internal["value"])
        lt = self._next_lt()
        if self.faults.frozen(t.destination):
            self.count("jetton_bounced_by_destination")
            bounce_hash = hashlib.sha256(f"bounce/{internal_hash}".encode()).hexdigest()
            back = max(0, value - self.fee_nanotons)
            bounce = self._msg(bounce_hash, dest_wallet, source, back, bounce=False, created_lt=lt + 1)
            self._record(dest_wallet, Tx(dest_wallet, lt, self.now(), internal, [bounce], aborted=True, fee=0))
            # Our jetton wallet's on_bounce: the jettons are its owner's again (nothing sent).
            back_lt = self._next_lt()
            self.jetton_balances[key] = self.jetton_balances.get(key, 0) + t.amount
            self.balances[source] = self.balances.get(source, 0) + back
            self._record(source, Tx(source, back_lt, self.now(), bounce, [], aborted=False, fee=0))
            return
        dest_key = (master, t.destination)
        self.jetton_balances[dest_key] = self.jetton_balances.get(dest_key, 0) + t.amount
        out: list[dict[str, Any]] = []
        if t.forward_nanotons:
            notify = hashlib.sha256(f"notification/{internal_hash}".encode()).hexdigest()
            out.append(self._msg(notify, dest_wallet, t.destination, t.forward_nanotons, bounce=False,
                                 created_lt=lt + 1 + len(out)))  # fmt: skip
        if t.response_destination:
            excess = hashlib.sha256(f"excess/{internal_hash}".encode()).hexdigest()
            rest = max(0, value - t.forward_nanotons - self.fee_nanotons)
            out.append(self._msg(excess, dest_wallet, t.response_destination, rest, bounce=False,
                                 created_lt=lt + 1 + len(out)))  # fmt: skip
        self._record(dest_wallet, Tx(dest_wallet, lt, self.now(), internal, out, aborted=False, fee=0))

    def locate_result(self, source: str, destination: str, created_lt: int) -> dict[str, Any]:
        """toncenter v2 `tryLocateResultTx`: the transaction of `destination` whose in-message `source` created
        at `created_lt` (as the node sees it: a lagging node does not have newer ones); not there: 404."""
        src = parse_address(source, workchains=frozenset({0, -1})).raw
        raw = parse_address(destination, workchains=frozenset({0, -1})).raw
        shown = self.visible().end_lt if self.lagging() else self.lt
        for t in self.transactions.get(raw, []):
            m = t.in_msg
            if t.lt > shown or int(m.get("created_lt") or 0) != created_lt or not m.get("source"):
                continue
            if parse_address(m["source"], workchains=frozenset({0, -1})).raw == src:
                return t.view()
        raise ApiError(404, "Tx not found")

    def transfers_to(self, wallet: str, destination: str) -> dict[str, int]:
        """How many TON transfers `wallet` made to `destination`, and how many jetton transfers its jetton wallets
        made to `destination`'s jetton wallet that it took (neither bounced by ours nor by the destination's)."""
        src, dest = parse_address(wallet).raw, parse_address(destination).raw
        ton = sum(1 for t in self.transactions.get(src, []) for o in t.out_msgs
                  if parse_address(o["destination"]).raw == dest)  # fmt: skip
        jettons = 0
        for jw, (_master, owner) in list(self.jetton_wallets.items()):
            if owner != src:
                continue
            for t in self.transactions.get(jw, []):
                if t.aborted:
                    continue
                for o in t.out_msgs:
                    target = parse_address(o["destination"]).raw
                    if self.jetton_wallets.get(target, ("", ""))[1] != dest:
                        continue
                    taken = [d for d in self.transactions.get(target, []) if d.in_msg["hash"] == o["hash"]]
                    jettons += sum(1 for d in taken if not d.aborted)
        return {"ton": ton, "jetton": jettons}

    def jetton_balance(self, master: str, owner: str) -> int:
        return self.jetton_balances.get((parse_address(master).raw, parse_address(owner).raw), 0)

    def balance(self, address: str) -> int:
        return self.balances.get(parse_address(address).raw, 0)


__all__ = ["MASTER_SHARD", "ApiError", "Block", "Chain", "Faults", "HighloadWallet", "PendingInternal", "Tx", "Wallet"]
