"""TON intent checks: the unsigned wallet message must be exactly the intent, within policy.

Checked (each a stable refusal code): the bytes are one canonical wallet v4r2 simple send (exactly one
out-message, no state init, nothing else: `malformed_xdr` / `non_canonical_encoding` / `unexpected_operation`),
from the configured wallet and subwallet (`wrong_source`), with the request's seqno (`seqno_mismatch`), valid
until a moment in (now, now + max validity] (`validity_out_of_window`), to the intent's destination
(`destination_mismatch`) with its amount (`amount_mismatch`) and bounce flag (`bounce_mismatch`); a jetton goes
through OUR jetton wallet of the configured master, with its excess back to our wallet and bounded TON attached
(`jetton_mismatch`); the asset must be one this signer signs TON for (`asset_not_allowed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prizeflow_contracts.events.signer import SignatureRefusalCode as Code
from prizeflow_contracts.events.signer import TonSignatureRequested
from prizeflow_stellar.checks import IntentViolation
from prizeflow_ton.messages import (
    SEND_MODE,
    MalformedMessageError,
    NonCanonicalMessageError,
    Transfer,
    TransferKind,
    WalletMessage,
    from_b64,
    parse_unsigned,
    signing_hash,
)


@dataclass(frozen=True, slots=True)
class TonJetton:
    """A jetton this signer signs transfers of: its master and OUR jetton wallet of that master (raw forms)."""

    master: str
    wallet: str


@dataclass(frozen=True, slots=True)
class TonPolicy:
    wallet: str  # raw
    subwallet_id: int
    max_validity_s: int
    native_asset: str  # the asset code paid as plain TON
    jettons: Mapping[str, TonJetton]  # by asset code
    max_jetton_attach_nanotons: int  # TON attached to a jetton transfer for its fees, at most
    max_forward_nanotons: int = 1


@dataclass(frozen=True, slots=True)
class CheckedTonMessage:
    message: WalletMessage
    signing_hash: bytes
    amounts: Mapping[str, int]  # by asset; a jetton transfer also spends the TON it attaches
    destination: str


def _violation(code: Code, detail: str) -> IntentViolation:
    return IntentViolation(code, detail)


def _parse(request: TonSignatureRequested, policy: TonPolicy) -> WalletMessage:
    if request.wallet != policy.wallet:
        raise _violation(Code.WRONG_SOURCE, f"wallet {request.wallet} is not the configured TON wallet")
    try:
        message = parse_unsigned(from_b64(request.unsigned_body_boc), wallet=request.wallet)
    except NonCanonicalMessageError as err:
        raise _violation(Code.NON_CANONICAL_ENCODING, str(err)) from err
    except MalformedMessageError as err:
        code = Code.UNEXPECTED_OPERATION if "out-message" in str(err) else Code.MALFORMED_XDR
        raise _violation(code, str(err)) from err
    return message


def _check_header(message: WalletMessage, request: TonSignatureRequested, policy: TonPolicy, now: int) -> None:
    if message.subwallet_id != policy.subwallet_id:
        raise _violation(Code.WRONG_SOURCE, f"subwallet {message.subwallet_id} is not {policy.subwallet_id}")
    if message.mode != SEND_MODE:
        raise _violation(Code.UNEXPECTED_OPERATION, f"send mode {message.mode} is not {SEND_MODE}")
    if message.seqno != request.seqno:
        raise _violation(Code.SEQNO_MISMATCH, f"message seqno {message.seqno}, request says {request.seqno}")
    if message.valid_until != request.valid_until or not now < message.valid_until <= now + policy.max_validity_s:
        raise _violation(
            Code.VALIDITY_OUT_OF_WINDOW,
            f"valid_until {message.valid_until} must equal the request's and lie in ({now}, "
            f"{now + policy.max_validity_s}]",
        )


def _check_asset(t: Transfer, request: TonSignatureRequested, policy: TonPolicy) -> dict[str, int]:
    """The amounts by asset the message spends (a jetton transfer also spends the TON it attaches)."""
    intent = request.intent
    if intent.asset == policy.native_asset:
        if t.kind is not TransferKind.TON or intent.jetton_master is not None:
            raise _violation(Code.JETTON_MISMATCH, f"{intent.asset} is paid as plain TON, not as a jetton")
        return {intent.asset: t.amount}
    jetton = policy.jettons.get(intent.asset)
    if jetton is None:
        raise _violation(Code.ASSET_NOT_ALLOWED, f"this signer signs no TON transfer of {intent.asset}")
    if (
        t.kind is not TransferKind.JETTON
        or intent.jetton_master != jetton.master
        or intent.jetton_wallet != jetton.wallet
        or t.jetton_wallet != jetton.wallet
        or t.response_destination != policy.wallet
    ):
        raise _violation(Code.JETTON_MISMATCH, f"{intent.asset} must go through our jetton wallet {jetton.wallet}")
    if t.attached_nanotons > policy.max_jetton_attach_nanotons or t.forward_nanotons > policy.max_forward_nanotons:
        raise _violation(Code.FEE_TOO_HIGH, f"{t.attached_nanotons} nanotons attached to a jetton transfer")
    return {intent.asset: t.amount, policy.native_asset: t.attached_nanotons}


def check_ton_request(request: TonSignatureRequested, policy: TonPolicy, *, now: int) -> CheckedTonMessage:
    """Raise IntentViolation unless the unsigned body is exactly the intent, within policy."""
    if request.intent.payout_id not in request.payout_ids:
        # The live-signature rule is keyed by payout_ids: an intent for another payout would slip past it.
        raise _violation(Code.UNEXPECTED_OPERATION, "the intent's payout is not among the request's payout_ids")
    message = _parse(request, policy)
    _check_header(message, request, policy, now)
    intent, t = request.intent, message.transfer
    if t.destination != intent.destination:
        raise _violation(Code.DESTINATION_MISMATCH, f"the message pays {t.destination}, intent {intent.destination}")
    if t.amount != intent.amount:
        raise _violation(Code.AMOUNT_MISMATCH, f"the message moves {t.amount}, intent {intent.amount}")
    if t.bounce != intent.bounce:
        raise _violation(Code.BOUNCE_MISMATCH, f"bounce flag {t.bounce}, intent {intent.bounce}")
    amounts = _check_asset(t, request, policy)
    return CheckedTonMessage(
        message=message, signing_hash=signing_hash(message), amounts=amounts, destination=t.destination
    )


__all__ = ["CheckedTonMessage", "TonJetton", "TonPolicy", "check_ton_request"]
