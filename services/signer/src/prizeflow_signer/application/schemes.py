"""The signing schemes: each request type's own part of the one `SignPipeline` (how its bytes are checked against
its intent, and how the signed answer is made). Everything else — replay, caps, one live signature per payout,
the backends, audit, the answer's event id — is the pipeline's, the same for all.

- `StellarScheme` (`SignatureRequested`): a Stellar transaction envelope, checked by `prizeflow_stellar.checks`; the
  answer is the received envelope plus the signature (`TransactionSigned`).
- `TonWalletScheme` (`TonSignatureRequested`): a TON wallet v4r2 message paying one payout, a batch of one
  (`domain/ton.py`); the answer is the external message (`TonMessageSigned`), live until its `valid_until`.
- `TonHighloadScheme` (`TonBatchSignatureRequested`): a highload wallet v3 message paying up to 254 payouts
  (`domain/ton_highload.py`); the answer is the external message (`TonBatchSigned`), live until
  `created_at + timeout`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pytoniq_core.boc.cell import Cell
from stellar_sdk import Keypair

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.events.signer import (
    SignatureRefusalCode,
    SignatureRequested,
    TonBatchSignatureRequested,
    TonBatchSigned,
    TonMessageSigned,
    TonSignatureRequested,
    TransactionSigned,
)
from prizeflow_signer.application.sign_pipeline import Signable
from prizeflow_signer.domain.ton import TonPolicy, check_ton_request
from prizeflow_signer.domain.ton_highload import TonHighloadPolicy, check_ton_batch_request
from prizeflow_stellar.checks import CheckPolicy, IntentViolation, decode_and_check
from prizeflow_ton import highload
from prizeflow_ton import messages as ton_messages
from prizeflow_ton.addresses import parse_address

Code = SignatureRefusalCode


@dataclass(frozen=True)
class StellarScheme:
    policy: CheckPolicy
    request_type = SignatureRequested
    answer = TransactionSigned
    name = "stellar"
    amount_unit = "stroops"
    signs = "transaction"

    def source_account(self, request: SignatureRequested) -> str:
        return request.source_account

    def check(self, request: SignatureRequested, *, now: int) -> Signable:
        checked = decode_and_check(request.unsigned_xdr, request, self.policy, now=now)

        def seal(signature: bytes, public_key: str) -> EventPayload:
            hint = Keypair.from_public_key(public_key).signature_hint()
            return TransactionSigned(
                request_id=request.request_id,
                payout_ids=request.payout_ids,
                signed_xdr=checked.exact.with_signature(hint, signature),
                tx_hash=checked.tx_hash_hex,
                signed_by=public_key,
            )

        return Signable(
            signing_hash=checked.tx_hash,
            live_until=checked.max_time,
            amounts=checked.amounts,
            destinations=checked.destinations,
            source_account=checked.source_account,
            seal=seal,
        )

    def replayed(self, previous: EventPayload) -> dict[str, str | None]:
        """The stored answer's transaction and signing key (a refusal has neither)."""
        return {"tx_hash": getattr(previous, "tx_hash", None), "signed_by": getattr(previous, "signed_by", None)}


def wallet_label(wallet: str) -> str:
    """A TON wallet as the audit's 56-character column can hold it: its user-friendly form."""
    return parse_address(wallet, workchains=frozenset({0, -1})).friendly(bounceable=True)


TonRequest = TonSignatureRequested | TonBatchSignatureRequested


def _ton_signable(
    request: TonRequest,
    *,
    signing_hash: bytes,
    live_until: int,
    amounts: Mapping[str, int],
    destinations: tuple[str, ...],
    external: Callable[[bytes], Cell],
    answer: type[TonMessageSigned | TonBatchSigned],
) -> Signable:
    """A TON message, one transfer or a batch: the answer is the external message (its key as raw hex)."""

    def seal(signature: bytes, public_key: str) -> EventPayload:
        message = external(signature)
        return answer(
            request_id=request.request_id,
            payout_ids=request.payout_ids,
            signed_boc=ton_messages.to_b64(message),
            message_hash=ton_messages.message_hash(message),
            signed_by=Keypair.from_public_key(public_key).raw_public_key().hex(),
        )

    return Signable(
        signing_hash=signing_hash,
        live_until=live_until,
        amounts=amounts,
        destinations=destinations,
        source_account=wallet_label(request.wallet),
        seal=seal,
    )


@dataclass(frozen=True)
class TonWalletScheme:
    policy: TonPolicy | None  # None: this signer signs no TON message (every request is refused, wrong_source)
    request_type = TonSignatureRequested
    answer = TonMessageSigned
    name = "ton_wallet"
    amount_unit = ""
    signs = "message"

    def source_account(self, request: TonSignatureRequested) -> str:
        return wallet_label(request.wallet)

    def check(self, request: TonSignatureRequested, *, now: int) -> Signable:
        if self.policy is None:
            raise IntentViolation(Code.WRONG_SOURCE, "this signer is configured for no TON wallet")
        checked = check_ton_request(request, self.policy, now=now)
        return _ton_signable(
            request,
            signing_hash=checked.signing_hash,
            live_until=checked.live_until,
            amounts=checked.amounts,
            destinations=checked.destinations,
            external=lambda signature: ton_messages.external_message(checked.message, signature),
            answer=TonMessageSigned,
        )

    def replayed(self, previous: EventPayload) -> dict[str, str | None]:
        return {}


@dataclass(frozen=True)
class TonHighloadScheme:
    policy: TonHighloadPolicy | None  # None: no highload wallet configured (every request refused, wrong_source)
    request_type = TonBatchSignatureRequested
    answer = TonBatchSigned
    name = "ton_highload"
    amount_unit = ""
    signs = "message"

    def source_account(self, request: TonBatchSignatureRequested) -> str:
        return wallet_label(request.wallet)

    def check(self, request: TonBatchSignatureRequested, *, now: int) -> Signable:
        if self.policy is None:
            raise IntentViolation(Code.WRONG_SOURCE, "this signer is configured for no highload TON wallet")
        checked = check_ton_batch_request(request, self.policy, now=now)
        return _ton_signable(
            request,
            signing_hash=checked.signing_hash,
            live_until=checked.live_until,
            amounts=checked.amounts,
            destinations=checked.destinations,
            external=lambda signature: highload.external_message(checked.batch, signature),
            answer=TonBatchSigned,
        )

    def replayed(self, previous: EventPayload) -> dict[str, str | None]:
        return {}


__all__ = ["StellarScheme", "TonHighloadScheme", "TonWalletScheme", "wallet_label"]
