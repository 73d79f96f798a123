"""Exact envelopes: the bytes that were checked are the bytes that are hashed, signed and submitted.

stellar-sdk decodes leniently and re-encodes canonically: a zero-padded 12-character asset code reads as the
4-character one, padding bytes and boolean or optional flags are not checked, and trailing bytes can be left
unread. Hashing its re-encoding would sign (or accept) a transaction other than the one received. So an
envelope is accepted only if every re-encoding of it is byte-identical to what was received, and its hash
is computed from the received bytes themselves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from stellar_sdk import Keypair, TransactionEnvelope, xdr
from stellar_sdk.exceptions import BadSignatureError
from xdrlib3 import Unpacker  # stellar-sdk's XDR runtime: its generated classes unpack from it

_UINT32 = struct.Struct(">I")

TIME_BOUND_MARGIN_S: Final = 5
"""How long after its upper time bound a signed transaction still counts as able to land: the network's
ledger clock may lag ours. The signer refuses a second transaction for a payout until then, and payouts
waits as long before it asks for one."""


class EnvelopeError(ValueError):
    """Not a v1 transaction envelope (undecodable, another envelope type)."""


class NonCanonicalEnvelopeError(EnvelopeError):
    """It decodes, but not back to the same bytes: what would be signed is not what was received."""


@dataclass(frozen=True, slots=True)
class ExactEnvelope:
    """A v1 transaction envelope exactly as received, with the hash of exactly those bytes."""

    raw: bytes
    tx_end: int  # offset of the signatures array: raw[4:tx_end] is the transaction
    tx_hash: bytes
    xdr_envelope: xdr.TransactionEnvelope
    sdk_envelope: TransactionEnvelope

    @property
    def tx_hash_hex(self) -> str:
        return self.tx_hash.hex()

    @property
    def transaction_bytes(self) -> bytes:
        return self.raw[4 : self.tx_end]

    @property
    def signatures(self) -> tuple[xdr.DecoratedSignature, ...]:
        assert self.xdr_envelope.v1 is not None
        return tuple(self.xdr_envelope.v1.signatures)

    def with_signature(self, hint: bytes, signature: bytes) -> str:
        """The received envelope plus one signature, base64; the transaction bytes are left untouched."""
        if len(hint) != 4 or len(signature) != 64:
            raise ValueError("an Ed25519 decorated signature is a 4-byte hint and a 64-byte signature")
        count = len(self.signatures) + 1
        added = xdr.DecoratedSignature(xdr.SignatureHint(hint), xdr.Signature(signature)).to_xdr_bytes()
        out = self.raw[: self.tx_end] + _UINT32.pack(count) + self.raw[self.tx_end + 4 :] + added
        return base64.b64encode(out).decode()

    def signed_by(self, public_key: str) -> bool:
        """A signature of `public_key` over this envelope's hash is attached (False for an invalid key)."""
        try:
            key = Keypair.from_public_key(public_key)
        except ValueError:  # stellar-sdk's invalid-key errors are ValueErrors
            return False
        for sig in self.signatures:
            if sig.hint.signature_hint != key.signature_hint():
                continue
            try:
                key.verify(self.tx_hash, sig.signature.signature)
            except BadSignatureError:
                continue
            return True
        return False


def network_id(passphrase: str) -> bytes:
    return hashlib.sha256(passphrase.encode()).digest()


def exact_envelope(envelope_xdr: str, network_passphrase: str) -> ExactEnvelope:
    """Decode a base64 v1 envelope that is canonical in every respect; its hash is over the received bytes.

    Raises NonCanonicalEnvelopeError when the input decodes but re-encodes differently, EnvelopeError when it
    does not decode as a v1 transaction envelope at all.
    """
    try:
        raw = base64.b64decode(envelope_xdr, validate=True)
    except (binascii.Error, ValueError) as err:
        raise EnvelopeError("not base64") from err
    if base64.b64encode(raw).decode() != envelope_xdr:
        raise NonCanonicalEnvelopeError("the base64 text is not the canonical encoding of its bytes")
    unpacker = Unpacker(raw)
    try:
        parsed = xdr.TransactionEnvelope.unpack(unpacker)
    except Exception as err:  # xdrlib and the generated classes raise assorted errors on bad input
        raise EnvelopeError(f"not a transaction envelope: {type(err).__name__}") from err
    if unpacker.get_position() != len(raw):
        raise NonCanonicalEnvelopeError(f"{len(raw) - unpacker.get_position()} bytes follow the envelope")
    if parsed.type != xdr.EnvelopeType.ENVELOPE_TYPE_TX or parsed.v1 is None:
        raise EnvelopeError("only v1 transaction envelopes (no v0, no fee bumps)")
    if parsed.to_xdr_bytes() != raw:
        raise NonCanonicalEnvelopeError("the XDR re-encodes differently (padding, flag or length bytes)")
    try:
        sdk = TransactionEnvelope.from_xdr_object(parsed, network_passphrase)
        again = sdk.to_xdr_object().to_xdr_bytes()
    except Exception as err:  # stellar-sdk's model raises assorted errors on values it cannot represent
        raise EnvelopeError(f"not a transaction stellar-sdk can read: {type(err).__name__}") from err
    if again != raw:
        raise NonCanonicalEnvelopeError("stellar-sdk reads it as another transaction (e.g. a zero-padded asset code)")
    tx_end = len(raw) - 4 - sum(len(s.to_xdr_bytes()) for s in parsed.v1.signatures)
    if raw[tx_end : tx_end + 4] != _UINT32.pack(len(parsed.v1.signatures)):
        raise NonCanonicalEnvelopeError("the signatures array is not where the transaction ends")
    # TransactionSignaturePayload = network id ‖ ENVELOPE_TYPE_TX ‖ Transaction: the envelope's own prefix.
    tx_hash = hashlib.sha256(network_id(network_passphrase) + raw[:tx_end]).digest()
    if tx_hash != sdk.hash():
        raise NonCanonicalEnvelopeError("stellar-sdk hashes another transaction")
    return ExactEnvelope(raw=raw, tx_end=tx_end, tx_hash=tx_hash, xdr_envelope=parsed, sdk_envelope=sdk)


__all__ = [
    "TIME_BOUND_MARGIN_S",
    "EnvelopeError",
    "ExactEnvelope",
    "NonCanonicalEnvelopeError",
    "exact_envelope",
    "network_id",
]
