"""Highload wallet v3 external messages carrying a batch of transfers (TON and jettons, mixed) in one out-action
list. Built by payouts, checked and signed by the signer, verified and applied by the emulator.

The layout is the published contract's (ton-blockchain/highload-wallet-contract-v3, `scheme.tlb`):

    msg_body$_ signature:bits512 ^MsgInner = ExternalInMsgBody;
    _ subwallet_id:uint32 message_to_send:^Cell send_mode:uint8 query_id:QueryId created_at:uint64
      timeout:uint22 = MsgInner;
    _ shift:uint13 bit_number:(## 10) { bit_number < 1023 } = QueryId;
    internal_transfer#ae42e5a4 query_id:uint64 actions:^(OutList n) = InternalMsgBody n;

The key signs the hash of `MsgInner`. `message_to_send` is an internal message from the wallet to itself whose
body is `internal_transfer`; the wallet (`recv_internal`, sender = itself) installs its `actions` as the
transaction's out-actions (c5): one `action_send_msg#0ec3c86d mode:uint8 out_msg:^MessageRelaxed` per transfer.
So a batch lands in two wallet transactions: the external one, whose only out-message is the internal transfer
to itself, and the internal one, whose out-messages are the transfers that could be paid (every action carries
+2, ignore errors: a transfer the balance cannot pay is skipped, the others go).

Replay protection is the query id, not a seqno: the wallet accepts a message only while
`created_at > now - timeout` and `created_at <= now`, and only once per query id (kept in two generations of
processed sets, rotated every `timeout`). Every parser here rebuilds what it parsed and refuses bytes that do not
re-encode to the same cell, exactly like the v4r2 ones (`messages.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pytoniq_core.boc.builder import Builder
from pytoniq_core.boc.cell import Cell
from pytoniq_core.tlb.block import CurrencyCollection
from pytoniq_core.tlb.transaction import InternalMsgInfo

from prizeflow_ton.messages import (
    SEND_MODE,
    MalformedMessageError,
    NonCanonicalMessageError,
    Transfer,
    expect_end,
    internal_message,
    message_hash,
    parse_internal_message,
    raw_of,
    to_address,
)

INTERNAL_TRANSFER_OP: Final = 0xAE42E5A4
ACTION_SEND_MSG: Final = 0x0EC3C86D
MAX_ACTIONS: Final = 254  # the contract's wrappers leave one of the 255 actions a transaction may have
SHIFT_BITS: Final = 13
BIT_NUMBER_BITS: Final = 10
MAX_SHIFT: Final = 2**SHIFT_BITS - 1  # 8191
MAX_BIT_NUMBER: Final = 1022  # a processed-set cell holds 1023 bits
QUERY_ID_CYCLE: Final = (MAX_SHIFT + 1) * (MAX_BIT_NUMBER + 1)  # 8,380,416 distinct query ids
TIMEOUT_BITS: Final = 22
MAX_TIMEOUT: Final = 2**TIMEOUT_BITS - 1
DEFAULT_HIGHLOAD_SUBWALLET_ID: Final = 0x10AD  # the contract's README recommends it (distinct from wallets')

# Exit codes of highload wallet v3 (its `recv_external` throws before accepting: the message is not accepted).
EXIT_INVALID_SIGNATURE: Final = 33
EXIT_INVALID_SUBWALLET: Final = 34
EXIT_INVALID_CREATED_AT: Final = 35
EXIT_ALREADY_EXECUTED: Final = 36  # this query id is in the processed set: a message with it landed
EXIT_INVALID_MESSAGE_TO_SEND: Final = 37  # thrown after commit: the query id is consumed, nothing is sent
EXIT_INVALID_TIMEOUT: Final = 38


class QueryIdError(ValueError):
    """Not a highload v3 query id (shift 0..8191, bit number 0..1022)."""


@dataclass(frozen=True, slots=True, order=True)
class QueryId:
    """A highload v3 query id: the processed-set cell `shift` and the bit `bit_number` in it."""

    shift: int
    bit_number: int

    def __post_init__(self) -> None:
        if not 0 <= self.shift <= MAX_SHIFT or not 0 <= self.bit_number <= MAX_BIT_NUMBER:
            raise QueryIdError(f"query id ({self.shift}, {self.bit_number}) is out of range")

    @property
    def value(self) -> int:
        """The 23-bit number (`shift << 10 | bit_number`): what `processed?` and the jetton query ids take."""
        return (self.shift << BIT_NUMBER_BITS) | self.bit_number

    @classmethod
    def from_value(cls, value: int) -> QueryId:
        return cls(value >> BIT_NUMBER_BITS, value & (2**BIT_NUMBER_BITS - 1))

    @classmethod
    def from_sequence(cls, n: int) -> QueryId:
        """The n-th query id of a wallet's sequence (cycling every QUERY_ID_CYCLE messages)."""
        n %= QUERY_ID_CYCLE
        return cls(n // (MAX_BIT_NUMBER + 1), n % (MAX_BIT_NUMBER + 1))


@dataclass(frozen=True, slots=True)
class HighloadBatch:
    """What a highload v3 external message asks the wallet to do: send `transfers`, in order, each with
    `action_mode`, from an internal transfer to itself carrying `internal_nanotons` (its gas) sent with `mode`."""

    wallet: str  # raw
    subwallet_id: int
    query_id: QueryId
    created_at: int
    timeout: int
    transfers: tuple[Transfer, ...]
    internal_nanotons: int
    mode: int = SEND_MODE
    action_mode: int = SEND_MODE

    @property
    def expires_at(self) -> int:
        """The first moment (unix seconds, the chain's clock) the wallet refuses it: `created_at + timeout`."""
        return self.created_at + self.timeout


def out_list(transfers: tuple[Transfer, ...], mode: int) -> Cell:
    """`OutList n`: each cell holds the previous list (first ref) and one `action_send_msg` (second ref)."""
    if not 1 <= len(transfers) <= MAX_ACTIONS:
        raise ValueError(f"a batch carries 1 to {MAX_ACTIONS} transfers, not {len(transfers)}")
    cell: Cell = Builder().end_cell()
    for t in transfers:
        cell = (
            Builder()
            .store_ref(cell)
            .store_uint(ACTION_SEND_MSG, 32)
            .store_uint(mode, 8)
            .store_ref(internal_message(t))
            .end_cell()
        )
    return cell


def internal_transfer(b: HighloadBatch) -> Cell:
    """`message_to_send`: the wallet's internal message to itself, its `internal_transfer` body in a reference."""
    body = (
        Builder()
        .store_uint(INTERNAL_TRANSFER_OP, 32)
        .store_uint(b.query_id.value, 64)
        .store_ref(out_list(b.transfers, b.action_mode))
        .end_cell()
    )
    info = InternalMsgInfo(
        ihr_disabled=True,
        bounce=False,  # to itself: nothing to bounce back to
        bounced=False,
        src=None,  # type: ignore[arg-type] # addr_none: the wallet fills in its own address
        dest=to_address(b.wallet),
        value=CurrencyCollection(grams=b.internal_nanotons),
        ihr_fee=0,
        fwd_fee=0,
        created_lt=0,
        created_at=0,
    )
    return Builder().store_cell(info.serialize()).store_bit(0).store_bit(1).store_ref(body).end_cell()  # type: ignore[no-any-return]


def inner(b: HighloadBatch) -> Cell:
    """`MsgInner`: the cell whose hash the wallet key signs."""
    if not 0 < b.timeout <= MAX_TIMEOUT:
        raise ValueError(f"timeout {b.timeout} is out of range")
    return (  # type: ignore[no-any-return]
        Builder()
        .store_uint(b.subwallet_id, 32)
        .store_ref(internal_transfer(b))
        .store_uint(b.mode, 8)
        .store_uint(b.query_id.shift, SHIFT_BITS)
        .store_uint(b.query_id.bit_number, BIT_NUMBER_BITS)
        .store_uint(b.created_at, 64)
        .store_uint(b.timeout, TIMEOUT_BITS)
        .end_cell()
    )


def signing_hash(b: HighloadBatch) -> bytes:
    return bytes(inner(b).hash)


def external_message(b: HighloadBatch, signature: bytes) -> Cell:
    if len(signature) != 64:
        raise ValueError("an Ed25519 signature is 64 bytes")
    body = Builder().store_bytes(signature).store_ref(inner(b)).end_cell()
    return (  # type: ignore[no-any-return]
        Builder()
        .store_uint(0b10, 2)  # ext_in_msg_info$10
        .store_uint(0, 2)  # src: addr_none
        .store_address(to_address(b.wallet))
        .store_coins(0)  # import_fee
        .store_bit(0)  # no state init
        .store_bit(1)  # body in a reference: the cell hash is the normalized hash (TEP-467)
        .store_ref(body)
        .end_cell()
    )


def _parse_actions(cell: Cell) -> tuple[tuple[Transfer, ...], int]:
    """The transfers of an `OutList`, in execution order, and their one send mode."""
    found: list[Transfer] = []
    modes: set[int] = set()
    current = cell
    while current.refs or current.bits:
        if len(found) >= MAX_ACTIONS:
            raise MalformedMessageError(f"more than {MAX_ACTIONS} out-actions")
        s = current.begin_parse()
        if s.remaining_refs != 2 or s.remaining_bits != 40:
            raise MalformedMessageError("an out-action list cell must be ^prev, action_send_msg, mode, ^out-message")
        prev = s.load_ref()
        if s.load_uint(32) != ACTION_SEND_MSG:
            raise MalformedMessageError("an out-action other than action_send_msg")
        modes.add(s.load_uint(8))
        found.append(parse_internal_message(s.load_ref()))
        current = prev
    if not found:
        raise MalformedMessageError("an out-action list with no out-message")
    if len(modes) != 1:
        raise MalformedMessageError("the out-messages must share one send mode")
    return tuple(reversed(found)), modes.pop()


def _parse_internal_transfer(cell: Cell, wallet: str) -> tuple[int, int, tuple[Transfer, ...], int]:
    """`message_to_send`: (value, internal_transfer query id, transfers, action mode)."""
    s = cell.begin_parse()
    try:
        info = InternalMsgInfo.deserialize(s)
    except Exception as err:
        raise MalformedMessageError("message_to_send is not an internal message") from err
    if info.src is not None or info.bounced or info.bounce or not info.ihr_disabled:
        raise MalformedMessageError("message_to_send's header is not one this platform builds")
    if raw_of(info.dest) != wallet:
        raise MalformedMessageError("message_to_send must go to the wallet itself")
    if s.load_bit():
        raise MalformedMessageError("message_to_send carries a state init")
    if not s.load_bit():
        raise MalformedMessageError("message_to_send's body must be in a reference")
    body = s.load_ref().begin_parse()
    expect_end(s, "message_to_send")
    if body.remaining_bits != 96 or body.remaining_refs != 1 or body.load_uint(32) != INTERNAL_TRANSFER_OP:
        raise MalformedMessageError("message_to_send's body is not internal_transfer")
    query_id = body.load_uint(64)
    transfers, mode = _parse_actions(body.load_ref())
    return int(info.value.grams), int(query_id), transfers, mode


def parse_inner(cell: Cell, *, wallet: str) -> HighloadBatch:
    """The batch a `MsgInner` asks for; NonCanonicalMessageError if it does not rebuild to `cell`."""
    try:
        s = cell.begin_parse()
        if s.remaining_refs != 1 or s.remaining_bits != 32 + 8 + SHIFT_BITS + BIT_NUMBER_BITS + 64 + TIMEOUT_BITS:
            raise MalformedMessageError("MsgInner must be exactly its fields and one message_to_send")
        subwallet = s.load_uint(32)
        message_to_send = s.load_ref()
        mode = s.load_uint(8)
        shift, bit_number = s.load_uint(SHIFT_BITS), s.load_uint(BIT_NUMBER_BITS)
        created_at, timeout = s.load_uint(64), s.load_uint(TIMEOUT_BITS)
        if bit_number > MAX_BIT_NUMBER:
            raise MalformedMessageError(f"bit number {bit_number} is out of range")
        query_id = QueryId(shift, bit_number)
        value, inner_query_id, transfers, action_mode = _parse_internal_transfer(message_to_send, wallet)
        if inner_query_id != query_id.value:
            raise MalformedMessageError("internal_transfer's query id is not the message's")
    except MalformedMessageError:
        raise
    except Exception as err:
        raise MalformedMessageError(f"unreadable highload message ({type(err).__name__})") from err
    if timeout == 0:
        raise MalformedMessageError("a highload message's timeout is never 0")
    batch = HighloadBatch(
        wallet=wallet,
        subwallet_id=int(subwallet),
        query_id=query_id,
        created_at=int(created_at),
        timeout=int(timeout),
        transfers=transfers,
        internal_nanotons=value,
        mode=int(mode),
        action_mode=action_mode,
    )
    if inner(batch).hash != cell.hash:
        raise NonCanonicalMessageError("the highload message does not re-encode to the same cell")
    return batch


@dataclass(frozen=True, slots=True)
class SignedHighload:
    batch: HighloadBatch
    signature: bytes
    hash: str  # message_hash of the external message
    inner_hash: str  # hex: the signed hash (the same for every signature of this batch)


def _external_parts(cell: Cell) -> tuple[str, Cell]:
    """(wallet, body cell) of an inbound external message in the one form this platform sends."""
    s = cell.begin_parse()
    if s.load_uint(2) != 0b10 or s.load_uint(2) != 0:
        raise MalformedMessageError("not an inbound external message from addr_none")
    wallet = raw_of(s.load_address())
    if s.load_coins() != 0 or s.load_bit():
        raise MalformedMessageError("import fee or state init present")
    if not s.load_bit():
        raise MalformedMessageError("the body must be in a reference")
    body = s.load_ref()
    expect_end(s, "the external message")
    return wallet, body


def external_destination(cell: Cell) -> str:
    """The wallet an external message is addressed to (raw), whatever wallet it is for."""
    try:
        return _external_parts(cell)[0]
    except MalformedMessageError:
        raise
    except Exception as err:
        raise MalformedMessageError(f"unreadable external message ({type(err).__name__})") from err


def signed_inner_hash(body: Cell) -> str | None:
    """The signed hash (hex) of a highload external body (signature + ^MsgInner), or None for another shape:
    how a landed message is recognised whoever signed it (a transaction's in-message body)."""
    if body.refs and len(body.refs) == 1 and len(body.bits) == 512:
        return bytes(body.refs[0].hash).hex()
    return None


def parse_external(cell: Cell) -> SignedHighload:
    """A highload external message as the emulator receives it: header, signature and the batch."""
    try:
        wallet, body_cell = _external_parts(cell)
        body = body_cell.begin_parse()
        if body.remaining_bits != 512 or body.remaining_refs != 1:
            raise MalformedMessageError("a highload body is a signature and one MsgInner reference")
        signature = bytes(body.load_bytes(64))
        inner_cell = body.load_ref()
    except MalformedMessageError:
        raise
    except Exception as err:
        raise MalformedMessageError(f"unreadable external message ({type(err).__name__})") from err
    batch = parse_inner(inner_cell, wallet=wallet)
    if external_message(batch, signature).hash != cell.hash:
        raise NonCanonicalMessageError("the external message does not re-encode to the same cell")
    return SignedHighload(
        batch=batch, signature=signature, hash=message_hash(cell), inner_hash=bytes(inner_cell.hash).hex()
    )


__all__ = [
    "ACTION_SEND_MSG",
    "DEFAULT_HIGHLOAD_SUBWALLET_ID",
    "EXIT_ALREADY_EXECUTED",
    "EXIT_INVALID_CREATED_AT",
    "EXIT_INVALID_MESSAGE_TO_SEND",
    "EXIT_INVALID_SIGNATURE",
    "EXIT_INVALID_SUBWALLET",
    "EXIT_INVALID_TIMEOUT",
    "INTERNAL_TRANSFER_OP",
    "MAX_ACTIONS",
    "MAX_TIMEOUT",
    "QUERY_ID_CYCLE",
    "HighloadBatch",
    "QueryId",
    "QueryIdError",
    "SignedHighload",
    "external_destination",
    "external_message",
    "inner",
    "internal_transfer",
    "out_list",
    "parse_external",
    "parse_inner",
    "signed_inner_hash",
    "signing_hash",
]
