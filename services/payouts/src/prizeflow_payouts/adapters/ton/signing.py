"""Signatures of the `ton_wallet` provider's messages: the signer's answers (consumer `payouts-signer-results`,
inside its inbox transaction) and out-of-band signing by an operator (signer backend `external`, admin API).

A signature is taken only for exactly the message built, signed by the wallet's key (when configured), before
its valid_until.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pytoniq_core.crypto.signature import verify_sign
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.signer import (
    SignatureRefusalCode,
    SignatureRefused,
    TonMessageSigned,
    TonSignatureRequested,
)
from prizeflow_payouts.adapters.ton import store as q
from prizeflow_payouts.adapters.ton.options import TonOptions
from prizeflow_payouts.application.ports import ExternalSigningError
from prizeflow_runtime.errors import ErrorKind
from prizeflow_ton.messages import MalformedMessageError, from_b64, parse_external, parse_unsigned, signing_hash

log = logging.getLogger(__name__)
C = PayoutErrorCode
SIGNED_MESSAGE_MISMATCH: Final = "signed_message_mismatch"


@dataclass(frozen=True, slots=True)
class TonSubmission:
    """An externally signed message accepted for sending (`tx_hash`: the message hash)."""

    tx_hash: str
    payout_ids: tuple[str, ...]


def _row(mapping: Any) -> dict[str, Any]:
    return dict(mapping) if mapping is not None else {}


class TonSignatures:
    def __init__(
        self,
        options: TonOptions,
        *,
        db: Callable[[], AsyncEngine],
        wake: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.o = options
        self.name = options.name
        self._db = db
        self._wake = wake
        self.clock = clock

    async def on_signer_results(self, session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None:
        touched = False
        for env in envelopes:
            data = env.data
            if isinstance(data, TonMessageSigned | SignatureRefused):
                row = (
                    (await session.execute(q.MESSAGE_FOR_UPDATE, {"id": data.request_id, "provider": self.name}))
                    .mappings()
                    .first()
                )
                if row is None or row["state"] != "awaiting_signature":
                    continue  # not ours, or decided meanwhile (a duplicate or late answer)
                if isinstance(data, TonMessageSigned):
                    await self._signed(session, _row(row), data)
                else:
                    await self._refused(session, _row(row), data)
                touched = True
        if touched:
            self._wake()

    def _not_the_message_built(self, row: Mapping[str, Any], data: TonMessageSigned) -> str | None:
        request = TonSignatureRequested.model_validate_json(row["request"])
        try:
            built = parse_unsigned(from_b64(request.unsigned_body_boc), wallet=request.wallet)
            ext = parse_external(from_b64(data.signed_boc))
        except MalformedMessageError as err:
            return f"unreadable: {err}"
        if ext.message != built:
            return "the signed message is not the message built"
        if ext.hash != data.message_hash:
            return "the answer's message hash is not the message's"
        if self.o.public_key is not None and data.signed_by != self.o.public_key:
            return f"signed by {data.signed_by}, not the wallet's key"
        if not verify_sign(bytes.fromhex(data.signed_by), signing_hash(built), ext.signature):
            return "the signature does not verify"
        return None

    async def _signed(self, session: AsyncSession, row: Mapping[str, Any], data: TonMessageSigned) -> None:
        why = self._not_the_message_built(row, data)
        params = {"provider": self.name, "key": row["idempotency_key"]}
        if why is not None:
            log.error("signed TON message refused", extra={"request_id": data.request_id, "reason": why})
            detail = f"signed message refused, never sent: {why}"
            await session.execute(
                q.MESSAGE_CLOSED,
                {
                    "id": row["request_id"],
                    "state": "refused",
                    "code": SIGNED_MESSAGE_MISMATCH,
                    "detail": detail,
                },
            )
            await session.execute(
                q.PAYOUT_FAILED, {**params, "code": C.SIGNATURE_REFUSED.value, "retryable": False, "detail": detail}
            )
            return
        await session.execute(
            q.MESSAGE_SIGNED, {"id": row["request_id"], "boc": data.signed_boc, "hash": data.message_hash}
        )
        await session.execute(q.PAYOUT_MESSAGE_HASH, {**params, "hash": data.message_hash})

    async def _refused(self, session: AsyncSession, row: Mapping[str, Any], data: SignatureRefused) -> None:
        params = {"provider": self.name, "key": row["idempotency_key"]}
        if data.code is SignatureRefusalCode.BACKEND_UNAVAILABLE:
            return  # not a verdict: the driver asks again after resign_after_s
        if data.code is SignatureRefusalCode.EXTERNAL_SIGNING_REQUIRED:
            # The checks passed; an operator signs it out of band (admin API) before its valid_until.
            await session.execute(q.MESSAGE_EXTERNAL, {"id": row["request_id"]})
            return
        detail = f"signer refused: {data.code.value}: {data.detail}"[:1000]
        await session.execute(
            q.MESSAGE_CLOSED, {"id": row["request_id"], "state": "refused", "code": data.code.value, "detail": detail}
        )
        if data.code is SignatureRefusalCode.LIVE_SIGNATURE_EXISTS:
            # An earlier message for this payout may still land: never fail it now; build again after.
            until = data.live_until if data.live_until is not None else int(self.clock()) + self.o.validity_s
            await session.execute(q.PAYOUT_REQUEUE, {**params, "not_before": datetime.fromtimestamp(until + 1, UTC)})
            return
        await session.execute(
            q.PAYOUT_FAILED, {**params, "code": C.SIGNATURE_REFUSED.value, "retryable": False, "detail": detail}
        )

    # -- external signing (signer backend `external`, admin API) -----------------------------------------------

    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None:
        """The message waiting for an out-of-band signature: the body cell to sign (its hash) and its intent."""
        async with self._db().begin() as conn:
            row = (
                (await conn.execute(q.OPEN_MESSAGE_OF_PAYOUT, {"provider": self.name, "payout_id": payout_id}))
                .mappings()
                .first()
            )
        if row is None:
            return None
        request = TonSignatureRequested.model_validate_json(row["request"])
        built = parse_unsigned(from_b64(request.unsigned_body_boc), wallet=request.wallet)
        return {
            "payout_id": payout_id,
            "request_id": row["request_id"],
            "state": row["state"],
            "wallet": request.wallet,
            "seqno": request.seqno,
            "valid_until": request.valid_until,
            "unsigned_body_boc": request.unsigned_body_boc,
            "signing_hash": signing_hash(built).hex(),
            "intent": request.intent.model_dump(mode="json"),
            "submit": "POST the whole signed external message (base64 BOC) as `signed_xdr`",
        }

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> TonSubmission:
        """Take an externally signed external message: exactly the message built, signed by the wallet's key,
        before its valid_until; then the driver sends it like any other."""
        if self.o.public_key is None:
            raise ExternalSigningError(
                ErrorKind.CONFLICT, "public_key_unknown", "set the provider's public_key to accept external signatures"
            )
        async with self._db().begin() as conn:
            row = (
                (await conn.execute(q.OPEN_MESSAGE_OF_PAYOUT, {"provider": self.name, "payout_id": payout_id}))
                .mappings()
                .first()
            )
            if row is None or row["state"] != "external":
                raise ExternalSigningError(
                    ErrorKind.CONFLICT,
                    "not_awaiting_signature",
                    "no message of this payout awaits an external signature",
                )
            request = TonSignatureRequested.model_validate_json(row["request"])
            built = parse_unsigned(from_b64(request.unsigned_body_boc), wallet=request.wallet)
            try:
                ext = parse_external(from_b64(signed_xdr))
            except MalformedMessageError as err:
                raise ExternalSigningError(ErrorKind.INVALID, "malformed_message", str(err)) from err
            if ext.message != built:
                raise ExternalSigningError(ErrorKind.INVALID, "not_the_message_built", "another message was signed")
            if not verify_sign(bytes.fromhex(self.o.public_key), signing_hash(built), ext.signature):
                raise ExternalSigningError(ErrorKind.INVALID, "bad_signature", "not signed by the wallet's key")
            if self.clock() >= built.valid_until:
                raise ExternalSigningError(ErrorKind.CONFLICT, "expired", "the message's valid_until has passed")
            await conn.execute(q.MESSAGE_SIGNED, {"id": row["request_id"], "boc": signed_xdr, "hash": ext.hash})
            await conn.execute(
                q.PAYOUT_MESSAGE_HASH, {"provider": self.name, "key": row["idempotency_key"], "hash": ext.hash}
            )
        self._wake()
        return TonSubmission(tx_hash=ext.hash, payout_ids=(payout_id,))


__all__ = ["SIGNED_MESSAGE_MISMATCH", "TonSignatures", "TonSubmission"]
