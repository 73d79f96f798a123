"""Signatures of the highload lane's batch messages: the signer's answers (consumer `payouts-signer-results`, inside
its inbox transaction) and out-of-band signing by an operator (signer backend `external`, admin API).

A signature is taken only for exactly the batch built (the same MsgInner cell), signed by the wallet's key (when
configured), before it expires. A refusal that is a verdict requeues a batch of several payouts with each payout
alone (`solo`): only the payout the refusal is about can then fail; a batch of one fails its payout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pytoniq_core.crypto.signature import verify_sign
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.signer import (
    SignatureRefusalCode,
    SignatureRefused,
    TonBatchSignatureRequested,
    TonBatchSigned,
)
from prizeflow_payouts.adapters.ton import batch_store as b_q
from prizeflow_payouts.adapters.ton import store as q
from prizeflow_payouts.adapters.ton.options import TonOptions
from prizeflow_payouts.adapters.ton.signing import SIGNED_MESSAGE_MISMATCH, TonSubmission
from prizeflow_payouts.application.ports import ExternalSigningError
from prizeflow_runtime.errors import ErrorKind
from prizeflow_ton.highload import HighloadBatch, parse_external, parse_inner
from prizeflow_ton.messages import MalformedMessageError, from_b64

log = logging.getLogger(__name__)
C = PayoutErrorCode


def _row(mapping: Any) -> dict[str, Any]:
    return dict(mapping) if mapping is not None else {}


def _built(row: Any) -> tuple[TonBatchSignatureRequested, HighloadBatch]:
    request = TonBatchSignatureRequested.model_validate_json(row["request"])
    return request, parse_inner(from_b64(request.unsigned_inner_boc), wallet=request.wallet)


class TonBatchSignatures:
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
            if not isinstance(data, TonBatchSigned | SignatureRefused):
                continue
            params = {"id": data.request_id, "provider": self.name}
            row = (await session.execute(b_q.BATCH_FOR_UPDATE, params)).mappings().first()
            if row is None or row["state"] != "awaiting_signature":
                continue  # not ours, or decided meanwhile (a duplicate or late answer)
            if isinstance(data, TonBatchSigned):
                await self._signed(session, _row(row), data)
            else:
                await self._refused(session, _row(row), data)
            touched = True
        if touched:
            self._wake()

    def _not_the_batch_built(self, row: Mapping[str, Any], data: TonBatchSigned) -> str | None:  # noqa: PLR0911 - one per check
        try:
            request, built = _built(row)
            ext = parse_external(from_b64(data.signed_boc))
        except MalformedMessageError as err:
            return f"unreadable: {err}"
        if ext.batch != built or ext.inner_hash != row["inner_hash"]:
            return "the signed message is not the batch built"
        if data.payout_ids != request.payout_ids:
            return "the answer names other payouts than the batch"
        if ext.hash != data.message_hash:
            return "the answer's message hash is not the message's"
        if self.o.public_key is not None and data.signed_by != self.o.public_key:
            return f"signed by {data.signed_by}, not the wallet's key"
        if not verify_sign(bytes.fromhex(data.signed_by), bytes.fromhex(ext.inner_hash), ext.signature):
            return "the signature does not verify"
        return None

    async def _payout_keys(self, session: AsyncSession | AsyncConnection, request_id: str) -> list[str]:
        items = (await session.execute(b_q.ITEMS, {"id": request_id})).mappings().all()
        return [str(i["idempotency_key"]) for i in items if i["state"] == "in_flight"]

    async def _close(self, session: AsyncSession, row: Mapping[str, Any], code: str, detail: str) -> list[str]:
        keys = await self._payout_keys(session, row["request_id"])
        closed = {"id": row["request_id"], "state": "refused", "code": code, "detail": detail}
        await session.execute(b_q.BATCH_CLOSED, closed)
        await session.execute(b_q.ITEMS_CLOSED, closed)
        return keys

    async def _signed(self, session: AsyncSession, row: Mapping[str, Any], data: TonBatchSigned) -> None:
        why = self._not_the_batch_built(row, data)
        if why is not None:
            log.error("signed TON batch refused", extra={"request_id": data.request_id, "reason": why})
            detail = f"signed message refused, never sent: {why}"
            for key in await self._close(session, row, SIGNED_MESSAGE_MISMATCH, detail):
                await session.execute(
                    q.PAYOUT_FAILED,
                    {
                        "provider": self.name,
                        "key": key,
                        "code": C.SIGNATURE_REFUSED.value,
                        "retryable": False,
                        "detail": detail,
                    },
                )
            return
        await self._take(session, row, data.signed_boc, data.message_hash)

    async def _take(self, session: AsyncSession | AsyncConnection, row: Any, boc: str, message_hash: str) -> None:
        await session.execute(b_q.BATCH_SIGNED, {"id": row["request_id"], "boc": boc, "hash": message_hash})
        for key in await self._payout_keys(session, row["request_id"]):
            await session.execute(q.PAYOUT_MESSAGE_HASH, {"provider": self.name, "key": key, "hash": message_hash})

    async def _refused(self, session: AsyncSession, row: Mapping[str, Any], data: SignatureRefused) -> None:
        if data.code is SignatureRefusalCode.BACKEND_UNAVAILABLE:
            return  # not a verdict: the driver asks again after resign_after_s
        if data.code is SignatureRefusalCode.EXTERNAL_SIGNING_REQUIRED:
            await session.execute(b_q.BATCH_EXTERNAL, {"id": row["request_id"]})
            return
        detail = f"signer refused: {data.code.value}: {data.detail}"[:1000]
        keys = await self._close(session, row, data.code.value, detail)
        if data.code is SignatureRefusalCode.LIVE_SIGNATURE_EXISTS:
            # An earlier message for one of these payouts may still land: never fail them; build again after.
            until = data.live_until if data.live_until is not None else int(self.clock()) + self.o.highload_timeout_s
            for key in keys:
                await session.execute(
                    q.PAYOUT_REQUEUE,
                    {"provider": self.name, "key": key, "not_before": datetime.fromtimestamp(until + 1, UTC)},
                )
            return
        if len(keys) > 1:
            # Which payout the verdict is about is not said: each goes again alone, the others get paid.
            log.warning(
                "ton batch refused by the signer: its payouts go again one by one",
                extra={"request_id": row["request_id"], "code": data.code.value, "payouts": len(keys)},
            )
            for key in keys:
                await session.execute(
                    b_q.PAYOUT_REQUEUE_SOLO, {"provider": self.name, "key": key, "not_before": datetime.now(UTC)}
                )
            return
        for key in keys:
            await session.execute(
                q.PAYOUT_FAILED,
                {
                    "provider": self.name,
                    "key": key,
                    "code": C.SIGNATURE_REFUSED.value,
                    "retryable": False,
                    "detail": detail,
                },
            )

    # -- external signing (signer backend `external`, admin API) -----------------------------------------------

    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None:
        """The batch message of this payout waiting for an out-of-band signature: its MsgInner (whose hash is
        signed), its query id, created_at, timeout and every payout's intent (one message pays them all)."""
        async with self._db().begin() as conn:
            row = (
                (await conn.execute(b_q.OPEN_BATCH_OF_PAYOUT, {"provider": self.name, "payout_id": payout_id}))
                .mappings()
                .first()
            )
        if row is None:
            return None
        request, built = _built(row)
        return {
            "payout_id": payout_id,
            "request_id": row["request_id"],
            "state": row["state"],
            "wallet": request.wallet,
            "wallet_version": "highload_v3",
            "query_id": request.query_id,
            "created_at": request.created_at,
            "timeout": request.timeout,
            "expires_at": built.expires_at,
            "unsigned_inner_boc": request.unsigned_inner_boc,
            "signing_hash": row["inner_hash"],
            "payout_ids": request.payout_ids,
            "intents": [i.model_dump(mode="json") for i in request.intents],
            "submit": "POST the whole signed external message (base64 BOC) as `signed_xdr`",
        }

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> TonSubmission:
        """Take an externally signed batch message: exactly the batch built, signed by the wallet's key, before it
        expires; then the driver sends it like any other."""
        if self.o.public_key is None:
            raise ExternalSigningError(
                ErrorKind.CONFLICT, "public_key_unknown", "set the provider's public_key to accept external signatures"
            )
        async with self._db().begin() as conn:
            row = (
                (await conn.execute(b_q.OPEN_BATCH_OF_PAYOUT, {"provider": self.name, "payout_id": payout_id}))
                .mappings()
                .first()
            )
            if row is None or row["state"] != "external":
                raise ExternalSigningError(
                    ErrorKind.CONFLICT, "not_awaiting_signature", "no batch of this payout awaits an external signature"
                )
            request, built = _built(row)
            try:
                ext = parse_external(from_b64(signed_xdr))
            except MalformedMessageError as err:
                raise ExternalSigningError(ErrorKind.INVALID, "malformed_message", str(err)) from err
            if ext.batch != built:
                raise ExternalSigningError(ErrorKind.INVALID, "not_the_message_built", "another message was signed")
            if not verify_sign(bytes.fromhex(self.o.public_key), bytes.fromhex(ext.inner_hash), ext.signature):
                raise ExternalSigningError(ErrorKind.INVALID, "bad_signature", "not signed by the wallet's key")
            if self.clock() >= built.expires_at:
                raise ExternalSigningError(ErrorKind.CONFLICT, "expired", "the message's created_at + timeout passed")
            await self._take(conn, row, signed_xdr, ext.hash)
        self._wake()
        return TonSubmission(tx_hash=ext.hash, payout_ids=tuple(request.payout_ids))


__all__ = ["TonBatchSignatures"]
