"""Wallet v4r2 external messages carrying exactly one transfer: TON, or a jetton transfer (TEP-74) sent to our
own jetton wallet. Built by payouts, checked and signed by the signer, verified and applied by the emulator.

The bytes signed are the hash of the unsigned body cell (subwallet, valid_until, seqno, op 0, mode, one
internal message). Every parser here rebuilds what it parsed and refuses bytes that do not re-encode to the
same cell, so "what was checked" is "what is signed" is "what lands". The external message keeps its body in a
reference and carries no state init, so its cell hash is also its normalized hash (TEP-467): the provider
reference that survives resubmission.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pytoniq_core.boc.address import Address
from pytoniq_core.boc.builder import Builder
from pytoniq_core.boc.cell import Cell
from pytoniq_core.boc.slice import Slice
from pytoniq_core.tlb.block import CurrencyCollection
from pytoniq_core.tlb.transaction import InternalMsgInfo

from prizeflow_ton.addresses import TonAddress

JETTON_TRANSFER_OP: Final = 0x0F8A7EA5
WALLET_V4_SIMPLE_SEND: Final = 0
# Pay transfer fees separately (+1) and ignore errors of the action (+2): an unpayable transfer still consumes
# the seqno (the message lands, moves nothing), so the message can never be replayed later.
SEND_MODE: Final = 3
DEFAULT_SUBWALLET_ID: Final = 698983191  # 0x29a9a317: wallet v4r2's default for workchain 0


class TransferKind(StrEnum):
    TON = "ton"
    JETTON = "jetton"


class MalformedMessageError(ValueError):
    """The bytes are not one canonical wallet v4r2 message of the shape this platform sends."""


class NonCanonicalMessageError(MalformedMessageError):
    """The bytes parse but do not re-encode to the same cell: what would be signed is not what was checked."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """The one transfer of a message. For TON: `amount` nanotons to `destination`, carried by the internal
    message itself. For a jetton: the internal message goes to `jetton_wallet` (ours) carrying
    `attached_nanotons` for fees, and tells it to move `amount` jetton units to the owner `destination`."""

    kind: TransferKind
    destination: str  # raw form of the final recipient
    amount: int
    bounce: bool
    jetton_wallet: str | None = None  # raw; only for jettons
    attached_nanotons: int = 0  # only for jettons (the TON value is `amount` for TON)
    forward_nanotons: int = 0  # only for jettons: TON forwarded to the recipient with the notification
    response_destination: str | None = None  # only for jettons: where the excess returns (our wallet)
    query_id: int = 0  # only for jettons

    @property
    def message_to(self) -> str:
        return self.jetton_wallet if self.kind is TransferKind.JETTON and self.jetton_wallet else self.destination

    @property
    def message_value(self) -> int:
        return self.attached_nanotons if self.kind is TransferKind.JETTON else self.amount


@dataclass(frozen=True, slots=True)
class WalletMessage:
    """What an external message asks the wallet to do."""

    wallet: str  # raw
    subwallet_id: int
    valid_until: int
    seqno: int
    transfer: Transfer
    mode: int = SEND_MODE


def to_address(raw: str) -> Address:
    """pytoniq's Address of a raw `<wc>:<hex>` address."""
    wc, hex_part = raw.split(":")
    return Address((int(wc), bytes.fromhex(hex_part)))


def raw_of(address: Any) -> str:
    """The raw form of a parsed internal address; MalformedMessageError for addr_none or an external one."""
    if not isinstance(address, Address):
        raise MalformedMessageError("expected an internal address")
    return TonAddress.from_pytoniq(address).raw


def jetton_transfer_body(t: Transfer) -> Cell:
    """The TEP-74 transfer body of a jetton transfer (sent to our jetton wallet)."""
    if t.response_destination is None:
        raise ValueError("a jetton transfer needs a response destination")
    return (  # type: ignore[no-any-return]
        Builder()
        .store_uint(JETTON_TRANSFER_OP, 32)
        .store_uint(t.query_id, 64)
        .store_coins(t.amount)
        .store_address(to_address(t.destination))
        .store_address(to_address(t.response_destination))
        .store_bit(0)  # no custom payload
        .store_coins(t.forward_nanotons)
        .store_bit(0)  # forward payload: empty, inline
        .end_cell()
    )


def internal_message(t: Transfer) -> Cell:
    info = InternalMsgInfo(
        ihr_disabled=True,
        bounce=t.bounce,
        bounced=False,
        src=None,  # type: ignore[arg-type] # addr_none: the wallet fills in its own address
        dest=to_address(t.message_to),
        value=CurrencyCollection(grams=t.message_value),
        ihr_fee=0,
        fwd_fee=0,
        created_lt=0,
        created_at=0,
    )
    b = Builder().store_cell(info.serialize()).store_bit(0)  # no state init, ever
    if t.kind is TransferKind.JETTON:
        b.store_bit(1).store_ref(jetton_transfer_body(t))
    else:
        b.store_bit(0)  # empty body, inline
    return b.end_cell()  # type: ignore[no-any-return]


def unsigned_body(m: WalletMessage) -> Cell:
    """The cell whose hash the wallet key signs."""
    return (  # type: ignore[no-any-return]
        Builder()
        .store_uint(m.subwallet_id, 32)
        .store_uint(m.valid_until, 32)
        .store_uint(m.seqno, 32)
        .store_uint(WALLET_V4_SIMPLE_SEND, 8)
        .store_uint(m.mode, 8)
        .store_ref(internal_message(m.transfer))
        .end_cell()
    )


def signing_hash(m: WalletMessage) -> bytes:
    return bytes(unsigned_body(m).hash)


def external_message(m: WalletMessage, signature: bytes) -> Cell:
    if len(signature) != 64:
        raise ValueError("an Ed25519 signature is 64 bytes")
    body = unsigned_body(m)
    signed = Builder().store_bytes(signature).store_cell(body).end_cell()
    return (  # type: ignore[no-any-return]
        Builder()
        .store_uint(0b10, 2)  # ext_in_msg_info$10
        .store_uint(0, 2)  # src: addr_none
        .store_address(to_address(m.wallet))
        .store_coins(0)  # import_fee
        .store_bit(0)  # no state init
        .store_bit(1)  # body in a reference
        .store_ref(signed)
        .end_cell()
    )


def to_b64(cell: Cell) -> str:
    return base64.b64encode(cell.to_boc()).decode()


def from_b64(boc: str) -> Cell:
    try:
        return Cell.one_from_boc(base64.b64decode(boc, validate=True))
    except Exception as err:
        raise MalformedMessageError("not a base64 bag of cells") from err


def message_hash(cell: Cell) -> str:
    """Lowercase hex of the external message's cell hash (its normalized hash, see module docstring)."""
    return bytes(cell.hash).hex()


def expect_end(s: Slice, what: str) -> None:
    """Refuse trailing bits or references: a parser reads the whole cell or nothing."""
    if s.remaining_bits or s.remaining_refs:
        raise MalformedMessageError(f"{what} has trailing data")


@dataclass(frozen=True, slots=True)
class JettonTransferBody:
    """A TEP-74 transfer body as this platform builds it: no custom payload, an empty inline forward payload."""

    query_id: int
    amount: int
    destination: str  # raw: the jettons' new owner
    response_destination: str  # raw: where the excess returns
    forward_nanotons: int


def parse_jetton_transfer_body(cell: Cell) -> JettonTransferBody:
    """The body of a jetton transfer this platform builds; MalformedMessageError for anything else (another op,
    a custom or forward payload, trailing data). Re-encoded: a body that does not rebuild to `cell` is refused."""
    try:
        body = cell.begin_parse()
        if body.remaining_bits < 32 or body.load_uint(32) != JETTON_TRANSFER_OP:
            raise MalformedMessageError("the out-message body is not a jetton transfer")
        query_id = body.load_uint(64)
        amount = body.load_coins()
        destination = raw_of(body.load_address())
        response = raw_of(body.load_address())
        if body.load_bit():
            raise MalformedMessageError("the jetton transfer carries a custom payload")
        forward = body.load_coins()
        if body.load_bit():
            raise MalformedMessageError("the jetton transfer carries a forward payload")
        expect_end(body, "the jetton transfer")
    except MalformedMessageError:
        raise
    except Exception as err:
        raise MalformedMessageError(f"unreadable jetton transfer ({type(err).__name__})") from err
    parsed = JettonTransferBody(
        query_id=int(query_id),
        amount=int(amount),
        destination=destination,
        response_destination=response,
        forward_nanotons=int(forward),
    )
    rebuilt = jetton_transfer_body(
        Transfer(
            kind=TransferKind.JETTON,
            destination=parsed.destination,
            amount=parsed.amount,
            bounce=True,
            forward_nanotons=parsed.forward_nanotons,
            response_destination=parsed.response_destination,
            query_id=parsed.query_id,
        )
    )
    if rebuilt.hash != cell.hash:
        raise NonCanonicalMessageError("the jetton transfer does not re-encode to the same cell")
    return parsed


def parse_internal_message(cell: Cell) -> Transfer:
    """One out-message (MessageRelaxed) as this platform builds it: no source, no state init, TON with an empty
    inline body or a jetton transfer body in a reference. The caller re-encodes the whole message it is part of."""
    s = cell.begin_parse()
    try:
        info = InternalMsgInfo.deserialize(s)
    except Exception as err:
        raise MalformedMessageError("the out-message is not an internal message") from err
    if info.src is not None or info.bounced or not info.ihr_disabled:
        raise MalformedMessageError("the out-message header is not one this platform builds")
    if s.load_bit():
        raise MalformedMessageError("the out-message carries a state init")
    dest = raw_of(info.dest)
    if not s.load_bit():
        expect_end(s, "the out-message")
        return Transfer(kind=TransferKind.TON, destination=dest, amount=int(info.value.grams), bounce=info.bounce)
    body_cell = s.load_ref()
    expect_end(s, "the out-message")
    body = parse_jetton_transfer_body(body_cell)
    return Transfer(
        kind=TransferKind.JETTON,
        destination=body.destination,
        amount=body.amount,
        bounce=info.bounce,
        jetton_wallet=dest,
        attached_nanotons=int(info.value.grams),
        forward_nanotons=body.forward_nanotons,
        response_destination=body.response_destination,
        query_id=body.query_id,
    )


def parse_unsigned(cell: Cell, *, wallet: str) -> WalletMessage:
    """The message an unsigned body asks for; NonCanonicalMessageError if it does not rebuild to `cell`."""
    try:
        s = cell.begin_parse()
        subwallet, valid_until, seqno, op = s.load_uint(32), s.load_uint(32), s.load_uint(32), s.load_uint(8)
        if op != WALLET_V4_SIMPLE_SEND:
            raise MalformedMessageError(f"wallet op {op} is not a simple send")
        if s.remaining_refs != 1 or s.remaining_bits != 8:
            raise MalformedMessageError("a message must carry exactly one out-message and nothing else")
        mode = s.load_uint(8)
        transfer = parse_internal_message(s.load_ref())
    except MalformedMessageError:
        raise
    except Exception as err:
        raise MalformedMessageError(f"unreadable wallet message ({type(err).__name__})") from err
    message = WalletMessage(
        wallet=wallet, subwallet_id=subwallet, valid_until=valid_until, seqno=seqno, transfer=transfer, mode=mode
    )
    if unsigned_body(message).hash != cell.hash:
        raise NonCanonicalMessageError("the message does not re-encode to the same cell")
    return message


@dataclass(frozen=True, slots=True)
class SignedExternal:
    message: WalletMessage
    signature: bytes
    hash: str  # message_hash of the external message


def parse_external(cell: Cell) -> SignedExternal:
    """An external message as the emulator receives it: header, signature, and the wallet message."""
    try:
        s = cell.begin_parse()
        if s.load_uint(2) != 0b10 or s.load_uint(2) != 0:
            raise MalformedMessageError("not an inbound external message from addr_none")
        wallet = raw_of(s.load_address())
        if s.load_coins() != 0 or s.load_bit():
            raise MalformedMessageError("import fee or state init present")
        if not s.load_bit():
            raise MalformedMessageError("the body must be in a reference")
        body = s.load_ref().begin_parse()
        expect_end(s, "the external message")
        signature = bytes(body.load_bytes(64))
        rest = body.to_cell()
    except MalformedMessageError:
        raise
    except Exception as err:
        raise MalformedMessageError(f"unreadable external message ({type(err).__name__})") from err
    message = parse_unsigned(rest, wallet=wallet)
    rebuilt = external_message(message, signature)
    if rebuilt.hash != cell.hash:
        raise NonCanonicalMessageError("the external message does not re-encode to the same cell")
    return SignedExternal(message=message, signature=signature, hash=message_hash(cell))


__all__ = [
    "DEFAULT_SUBWALLET_ID",
    "JETTON_TRANSFER_OP",
    "SEND_MODE",
    "JettonTransferBody",
    "MalformedMessageError",
    "NonCanonicalMessageError",
    "SignedExternal",
    "Transfer",
    "TransferKind",
    "WalletMessage",
    "expect_end",
    "external_message",
    "from_b64",
    "internal_message",
    "jetton_transfer_body",
    "message_hash",
    "parse_external",
    "parse_internal_message",
    "parse_jetton_transfer_body",
    "parse_unsigned",
    "raw_of",
    "signing_hash",
    "to_address",
    "to_b64",
    "unsigned_body",
]
