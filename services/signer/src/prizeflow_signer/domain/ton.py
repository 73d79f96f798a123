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
from typing import Protocol

from prizeflow_contracts.events.signer import SignatureRefusalCode as Code
from prizeflow_contracts.events.signer import TonSignatureRequested, TonTransferIntent
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


class TonAssets(Protocol):
    """What a TON policy says about assets: which one is plain TON, which jettons (through our jetton wallet of
    which master), and the TON a jetton transfer may carry."""

    @property
    def native_asset(self) -> str: ...
    @property
    def jettons(self) -> Mapping[str, TonJetton]: ...
    @property
    def max_jetton_attach_nanotons(self) -> int: ...
    @property
    def max_forward_nanotons(self) -> int: ...


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

    @property
    def destinations(self) -> tuple[str, ...]:
        """As a batch's: one message is a batch of one."""
        return (self.destination,)

    @property
    def live_until(self) -> int:
        """The last moment (unix seconds) the wallet may still accept it: its `valid_until`."""
        return self.message.valid_until


def violation(code: Code, detail: str) -> IntentViolation:
    return IntentViolation(code, detail)


def _parse(request: TonSignatureRequested, policy: TonPolicy) -> WalletMessage:
    if request.wallet != policy.wallet:
        raise violation(Code.WRONG_SOURCE, f"wallet {request.wallet} is not the configured TON wallet")
    try:
        message = parse_unsigned(from_b64(request.unsigned_body_boc), wallet=request.wallet)
    except NonCanonicalMessageError as err:
        raise violation(Code.NON_CANONICAL_ENCODING, str(err)) from err
    except MalformedMessageError as err:
        code = Code.UNEXPECTED_OPERATION if "out-message" in str(err) else Code.MALFORMED_XDR
        raise violation(code, str(err)) from err
    return message


def _check_header(message: WalletMessage, request: TonSignatureRequested, policy: TonPolicy, now: int) -> None:
    if message.subwallet_id != policy.subwallet_id:
        raise violation(Code.WRONG_SOURCE, f"subwallet {message.subwallet_id} is not {policy.subwallet_id}")
    if message.mode != SEND_MODE:
        raise violation(Code.UNEXPECTED_OPERATION, f"send mode {message.mode} is not {SEND_MODE}")
    if message.seqno != request.seqno:
        raise violation(Code.SEQNO_MISMATCH, f"message seqno {message.seqno}, request says {request.seqno}")
    if message.valid_until != request.valid_until or not now < message.valid_until <= now + policy.max_validity_s:
        raise violation(
            Code.VALIDITY_OUT_OF_WINDOW,
            f"valid_until {message.valid_until} must equal the request's and lie in ({now}, "
            f"{now + policy.max_validity_s}]",
        )


def check_asset(t: Transfer, intent: TonTransferIntent, policy: TonAssets, *, wallet: str) -> dict[str, int]:
    """The amounts by asset one transfer spends (a jetton transfer also spends the TON it attaches). A jetton goes
    through `wallet`'s own jetton wallet of the configured master, its excess back to `wallet`."""
    if intent.asset == policy.native_asset:
        if t.kind is not TransferKind.TON or intent.jetton_master is not None:
            raise violation(Code.JETTON_MISMATCH, f"{intent.asset} is paid as plain TON, not as a jetton")
        return {intent.asset: t.amount}
    jetton = policy.jettons.get(intent.asset)
    if jetton is None:
        raise violation(Code.ASSET_NOT_ALLOWED, f"this signer signs no TON transfer of {intent.asset}")
    if (
        t.kind is not TransferKind.JETTON
        or intent.jetton_master != jetton.master
        or intent.jetton_wallet != jetton.wallet
        or t.jetton_wallet != jetton.wallet
        or t.response_destination != wallet
    ):
        raise violation(Code.JETTON_MISMATCH, f"{intent.asset} must go through our jetton wallet {jetton.wallet}")
    if t.attached_nanotons > policy.max_jetton_attach_nanotons or t.forward_nanotons > policy.max_forward_nanotons:
        raise violation(Code.FEE_TOO_HIGH, f"{t.attached_nanotons} nanotons attached to a jetton transfer")
    return {intent.asset: t.amount, policy.native_asset: t.attached_nanotons}


def check_transfer(t: Transfer, intent: TonTransferIntent, policy: TonAssets, *, wallet: str) -> dict[str, int]:
    """One transfer against its intent: destination, amount, bounce flag, then the asset (`check_asset`)."""
    if t.destination != intent.destination:
        raise violation(Code.DESTINATION_MISMATCH, f"the message pays {t.destination}, intent {intent.destination}")
    if t.amount != intent.amount:
        raise violation(Code.AMOUNT_MISMATCH, f"the message moves {t.amount}, intent {intent.amount}")
    if t.bounce != intent.bounce:
        raise violation(Code.BOUNCE_MISMATCH, f"bounce flag {t.bounce}, intent {intent.bounce}")
    return check_asset(t, intent, policy, wallet=wallet)


def check_ton_request(request: TonSignatureRequested, policy: TonPolicy, *, now: int) -> CheckedTonMessage:
    """Raise IntentViolation unless the unsigned body is exactly the intent, within policy."""
    if request.intent.payout_id not in request.payout_ids:
        # The live-signature rule is keyed by payout_ids: an intent for another payout would slip past it.
        raise violation(Code.UNEXPECTED_OPERATION, "the intent's payout is not among the request's payout_ids")
    message = _parse(request, policy)
    _check_header(message, request, policy, now)
    amounts = check_transfer(message.transfer, request.intent, policy, wallet=policy.wallet)
    return CheckedTonMessage(
        message=message, signing_hash=signing_hash(message), amounts=amounts, destination=message.transfer.destination
    )


__all__ = [
    "CheckedTonMessage",
    "TonAssets",
    "TonJetton",
    "TonPolicy",
    "check_asset",
    "check_ton_request",
    "check_transfer",
    "violation",
]
