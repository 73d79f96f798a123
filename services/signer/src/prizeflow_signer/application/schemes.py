"""The signing schemes: each request type's own part of the one `SignPipeline` (how its bytes are checked against
its intent, and how the signed answer is made). Everything else — replay, caps, one live signature per payout,
the backends, audit, the answer's event id — is the pipeline's, the same for all.

- `StellarScheme` (`SignatureRequested`): a Stellar transaction envelope, checked by `prizeflow_stellar.checks`; the
  answer is the received envelope plus the signature (`TransactionSigned`).
- `TonScheme`: one scheme for TON's two wallets, each a `TonWallet` of what differs. `V4R2`
  (`TonSignatureRequested`): a wallet v4r2 message paying one payout, a batch of one (`domain/ton.py`), answered
  `TonMessageSigned`, live until its `valid_until`. `HIGHLOAD` (`TonBatchSignatureRequested`): a highload wallet v3
  message paying up to 254 payouts (`domain/ton_highload.py`), answered `TonBatchSigned`, live until
  `created_at + timeout`. The answer is the external message either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

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
from prizeflow_signer.domain.ton import CheckedTonMessage, TonPolicy, check_ton_request
from prizeflow_signer.domain.ton_highload import CheckedTonBatch, TonHighloadPolicy, check_ton_batch_request
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


class _CheckedTon(Protocol):
    """A TON message checked against its intents (`CheckedTonMessage`, `CheckedTonBatch`)."""

    @property
    def signing_hash(self) -> bytes: ...

    @property
    def amounts(self) -> Mapping[str, int]: ...

    @property
    def destinations(self) -> tuple[str, ...]: ...

    @property
    def live_until(self) -> int: ...


Req = TypeVar("Req", TonSignatureRequested, TonBatchSignatureRequested)
Pol = TypeVar("Pol", TonPolicy, TonHighloadPolicy)
Chk = TypeVar("Chk", bound=_CheckedTon)


@dataclass(frozen=True)
class TonWallet(Generic[Req, Pol, Chk]):
    """What one kind of TON wallet brings to the one TON scheme: its request and answer, how its message is checked
    and how the signed external message is made. A v4r2 message is a batch of one; a highload v3 one pays many."""

    name: str
    what: str  # the wallet, as a refusal names it
    request_type: type[Req]
    answer: type[TonMessageSigned | TonBatchSigned]
    checks: Callable[[Req, Pol, int], Chk]
    external: Callable[[Chk, bytes], Cell]


V4R2: TonWallet[TonSignatureRequested, TonPolicy, CheckedTonMessage] = TonWallet(
    name="ton_wallet",
    what="TON wallet",
    request_type=TonSignatureRequested,
    answer=TonMessageSigned,
    checks=lambda request, policy, now: check_ton_request(request, policy, now=now),
    external=lambda checked, signature: ton_messages.external_message(checked.message, signature),
)
HIGHLOAD: TonWallet[TonBatchSignatureRequested, TonHighloadPolicy, CheckedTonBatch] = TonWallet(
    name="ton_highload",
    what="highload TON wallet",
    request_type=TonBatchSignatureRequested,
    answer=TonBatchSigned,
    checks=lambda request, policy, now: check_ton_batch_request(request, policy, now=now),
    external=lambda checked, signature: highload.external_message(checked.batch, signature),
)


@dataclass(frozen=True)
class TonScheme(Generic[Req, Pol, Chk]):
    """A TON wallet's messages (`V4R2`, `HIGHLOAD`), signed under its policy. `policy` None: this signer signs for no
    such wallet (every request is refused, wrong_source)."""

    wallet: TonWallet[Req, Pol, Chk]
    policy: Pol | None
    amount_unit = ""
    signs = "message"

    @property
    def name(self) -> str:
        return self.wallet.name

    @property
    def request_type(self) -> type[Req]:
        return self.wallet.request_type

    @property
    def answer(self) -> type[TonMessageSigned | TonBatchSigned]:
        return self.wallet.answer

    def source_account(self, request: Req) -> str:
        return wallet_label(request.wallet)

    def check(self, request: Req, *, now: int) -> Signable:
        if self.policy is None:
            raise IntentViolation(Code.WRONG_SOURCE, f"this signer is configured for no {self.wallet.what}")
        checked = self.wallet.checks(request, self.policy, now)
        return _ton_signable(
            request,
            signing_hash=checked.signing_hash,
            live_until=checked.live_until,
            amounts=checked.amounts,
            destinations=checked.destinations,
            external=lambda signature: self.wallet.external(checked, signature),
            answer=self.wallet.answer,
        )

    def replayed(self, previous: EventPayload) -> dict[str, str | None]:
        return {}


__all__ = ["HIGHLOAD", "V4R2", "StellarScheme", "TonScheme", "TonWallet", "wallet_label"]
