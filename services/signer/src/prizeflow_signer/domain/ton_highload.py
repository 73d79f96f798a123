"""TON highload wallet v3 batch checks: the unsigned `MsgInner` must be exactly the batch's intents, within policy.

Checked (each a stable refusal code, the v4r2 checks' codes where they mean the same): the bytes are one canonical
highload v3 message of the shape this platform builds — an internal transfer to the wallet itself whose out-actions
are only `action_send_msg`s, no state init anywhere, nothing else (`malformed_xdr` / `non_canonical_encoding` /
`unexpected_operation`); from the configured wallet and subwallet (`wrong_source`); with the request's query id
(`seqno_mismatch`: the query id is this wallet's replay counter); `created_at` within the clock skew of now and
a timeout in (0, maximum] equal to the request's (`validity_out_of_window`); the expected send modes
(`unexpected_operation`); as many out-messages as intents, the n-th paying exactly the n-th intent (destination,
amount, bounce flag, asset and jetton: `destination_mismatch`, `amount_mismatch`, `bounce_mismatch`,
`jetton_mismatch`, `asset_not_allowed`, `fee_too_high`); at most `max_batch` transfers; the wallet's own gas (the
internal transfer's value) at most `max_internal_nanotons` (`fee_too_high`). Caps apply to the batch's sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prizeflow_contracts.events.signer import SignatureRefusalCode as Code
from prizeflow_contracts.events.signer import TonBatchSignatureRequested
from prizeflow_signer.domain.ton import TonJetton, check_transfer, violation
from prizeflow_ton.highload import HighloadBatch, parse_inner, signing_hash
from prizeflow_ton.messages import SEND_MODE, MalformedMessageError, NonCanonicalMessageError, from_b64


@dataclass(frozen=True, slots=True)
class TonHighloadPolicy:
    wallet: str  # raw: the highload wallet v3
    subwallet_id: int
    max_timeout_s: int  # a signed message can land for up to its timeout after created_at
    clock_skew_s: int  # |created_at - now| at most this
    max_internal_nanotons: int  # TON the wallet sends itself for the internal transaction's gas, at most
    max_batch: int  # transfers in one message, at most (<= 254)
    native_asset: str
    jettons: Mapping[str, TonJetton]  # by asset code: the master and the HIGHLOAD wallet's jetton wallet
    max_jetton_attach_nanotons: int
    max_forward_nanotons: int = 1


@dataclass(frozen=True, slots=True)
class CheckedTonBatch:
    batch: HighloadBatch
    signing_hash: bytes
    amounts: Mapping[str, int]  # summed by asset over the batch (jetton transfers also spend the TON they attach)
    destinations: tuple[str, ...]

    @property
    def live_until(self) -> int:
        """The last moment (unix seconds) the wallet may still accept it: `created_at + timeout`."""
        return self.batch.expires_at


def _parse(request: TonBatchSignatureRequested, policy: TonHighloadPolicy) -> HighloadBatch:
    if request.wallet != policy.wallet:
        raise violation(Code.WRONG_SOURCE, f"wallet {request.wallet} is not the configured highload wallet")
    try:
        return parse_inner(from_b64(request.unsigned_inner_boc), wallet=request.wallet)
    except NonCanonicalMessageError as err:
        raise violation(Code.NON_CANONICAL_ENCODING, str(err)) from err
    except MalformedMessageError as err:
        shape = ("out-message", "out-action", "message_to_send", "MsgInner", "internal_transfer")
        code = Code.UNEXPECTED_OPERATION if any(w in str(err) for w in shape) else Code.MALFORMED_XDR
        raise violation(code, str(err)) from err


def _check_header(b: HighloadBatch, request: TonBatchSignatureRequested, policy: TonHighloadPolicy, now: int) -> None:
    if b.subwallet_id != policy.subwallet_id:
        raise violation(Code.WRONG_SOURCE, f"subwallet {b.subwallet_id} is not {policy.subwallet_id}")
    if b.mode != SEND_MODE or b.action_mode != SEND_MODE:
        raise violation(Code.UNEXPECTED_OPERATION, f"send modes {b.mode}/{b.action_mode} are not {SEND_MODE}")
    if b.query_id.value != request.query_id:
        raise violation(Code.SEQNO_MISMATCH, f"message query id {b.query_id.value}, request says {request.query_id}")
    if b.created_at != request.created_at or abs(b.created_at - now) > policy.clock_skew_s:
        raise violation(
            Code.VALIDITY_OUT_OF_WINDOW,
            f"created_at {b.created_at} must equal the request's and lie within {policy.clock_skew_s} s of {now}",
        )
    if b.timeout != request.timeout or not 0 < b.timeout <= policy.max_timeout_s or b.expires_at <= now:
        raise violation(
            Code.VALIDITY_OUT_OF_WINDOW,
            f"timeout {b.timeout} must equal the request's, be at most {policy.max_timeout_s} s and end after {now}",
        )
    if b.internal_nanotons > policy.max_internal_nanotons:
        raise violation(Code.FEE_TOO_HIGH, f"{b.internal_nanotons} nanotons for the wallet's own gas")


def check_ton_batch_request(
    request: TonBatchSignatureRequested, policy: TonHighloadPolicy, *, now: int
) -> CheckedTonBatch:
    """Raise IntentViolation unless the unsigned MsgInner pays exactly the intents, in order, within policy."""
    if len(request.intents) > policy.max_batch:
        raise violation(Code.UNEXPECTED_OPERATION, f"{len(request.intents)} transfers, at most {policy.max_batch}")
    if [i.payout_id for i in request.intents] != list(request.payout_ids) or len(set(request.payout_ids)) != len(
        request.payout_ids
    ):
        # The live-signature rule is keyed by payout_ids: each must be paid once, by its own out-message.
        raise violation(Code.UNEXPECTED_OPERATION, "the intents must name the request's payout_ids, each once")
    batch = _parse(request, policy)
    _check_header(batch, request, policy, now)
    if len(batch.transfers) != len(request.intents):
        raise violation(
            Code.UNEXPECTED_OPERATION,
            f"the message sends {len(batch.transfers)} out-messages for {len(request.intents)} intents",
        )
    amounts: dict[str, int] = {}
    for t, intent in zip(batch.transfers, request.intents, strict=True):
        for asset, amount in check_transfer(t, intent, policy, wallet=policy.wallet).items():
            amounts[asset] = amounts.get(asset, 0) + amount
    return CheckedTonBatch(
        batch=batch,
        signing_hash=signing_hash(batch),
        amounts=amounts,
        destinations=tuple(t.destination for t in batch.transfers),
    )


__all__ = ["CheckedTonBatch", "TonHighloadPolicy", "check_ton_batch_request"]
