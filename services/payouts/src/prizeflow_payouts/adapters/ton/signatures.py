"""Signatures of the `ton_wallet` provider's messages, one pipeline for both wallet versions: the signer's answers
(consumer `payouts-signer-results`, inside its inbox transaction) and out-of-band signing by an operator (signer
backend `external`, admin API).

A wallet v4r2 message pays one payout, a highload v3 message a batch: a v4r2 message is a batch of one. What
differs is only the message's format (`MESSAGES`, `BATCHES`: where it is kept, how a signed one is checked against
the one built); the rules are the pipeline's:

- a signature is taken only for exactly the message built, signed by the wallet's key (when configured), before
  it expires; anything else closes the message and fails its payouts (`signature_refused`, never sent);
- a refusal that is not a verdict (`backend_unavailable`) changes nothing: the driver asks again;
  `external_signing_required` leaves it to an operator; `live_signature_exists` requeues its payouts after the
  live signature's time (an earlier message may still land: never failed);
- any other refusal fails the payout of a message of one; a batch of several goes again payout by payout
  (`solo`): only the payout the refusal is about can then fail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pytoniq_core.crypto.signature import verify_sign
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.signer import (
    SignatureRefusalCode,
    SignatureRefused,
    TonBatchSignatureRequested,
    TonBatchSigned,
    TonMessageSigned,
    TonSignatureRequested,
)
from prizeflow_payouts.adapters.ton.books import SqlTonBooks
from prizeflow_payouts.adapters.ton.options import TonOptions
from prizeflow_payouts.application.ports import ExternalSigningError
from prizeflow_runtime.errors import ErrorKind
from prizeflow_ton import highload
from prizeflow_ton import messages as v4r2
from prizeflow_ton.messages import MalformedMessageError, from_b64

log = logging.getLogger(__name__)
C = PayoutErrorCode
SIGNED_MESSAGE_MISMATCH: Final = "signed_message_mismatch"
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TonSubmission:
    """An externally signed message accepted for sending (`tx_hash`: the message hash)."""

    tx_hash: str
    payout_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Checked:
    """An externally signed message that is exactly the one built: its hash and when it stops being valid."""

    message_hash: str
    expires_at: int


class MessageFormat:
    """What differs between a v4r2 message (one payout) and a highload batch: where it is kept and how a signed one
    is compared with the one built. The pipeline (`TonSignatures`) holds the rules."""

    noun: str
    signed: type[TonMessageSigned] | type[TonBatchSigned]
    expired: str

    async def locked(self, books: SqlTonBooks, request_id: str) -> Row | None:
        """The message of this request id, locked (None: not one of this provider's)."""
        raise NotImplementedError

    async def of_payout(self, books: SqlTonBooks, payout_id: str) -> Row | None:
        """The payout's live message, locked."""
        raise NotImplementedError

    async def external(self, books: SqlTonBooks, row: Row) -> None:
        """Left to an operator to sign out of band."""
        raise NotImplementedError

    async def keys(self, books: SqlTonBooks, row: Row) -> list[str]:
        """The idempotency keys of the payouts the message pays (still in it)."""
        raise NotImplementedError

    async def close(self, books: SqlTonBooks, row: Row, code: str, detail: str) -> None:
        raise NotImplementedError

    async def take(self, books: SqlTonBooks, row: Row, keys: Sequence[str], boc: str, message_hash: str) -> None:
        """The signature taken: the message signed, its payouts' provider reference its hash."""
        raise NotImplementedError

    def mismatch(self, row: Row, data: Any, public_key: str | None) -> str | None:
        """Why a signer's answer is not exactly the message built, signed by the wallet's key (None: it is)."""
        raise NotImplementedError

    def check_external(self, row: Row, signed_boc: str, public_key: str) -> Checked:
        """The operator's signed message, if it is exactly the one built and signed by `public_key`."""
        raise NotImplementedError

    def live_s(self, options: TonOptions) -> int:
        """How long a signature may still land when the signer does not say (a refusal `live_signature_exists`)."""
        raise NotImplementedError

    def describe(self, row: Row, payout_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def pays(self, row: Row, payout_id: str) -> tuple[str, ...]:
        """The payouts the message pays (`payout_id`'s among them)."""
        raise NotImplementedError


def _verified(public_key: str, digest: bytes, signature: bytes) -> None:
    if not verify_sign(bytes.fromhex(public_key), digest, signature):
        raise ExternalSigningError(ErrorKind.INVALID, "bad_signature", "not signed by the wallet's key")


class _Messages(MessageFormat):
    """Wallet v4r2: `ton_messages`, one payout a message, signed over the body cell's hash."""

    noun = "message"
    signed = TonMessageSigned
    expired = "the message's valid_until has passed"

    @staticmethod
    def _built(row: Row) -> tuple[TonSignatureRequested, v4r2.WalletMessage]:
        request = TonSignatureRequested.model_validate_json(row["request"])
        return request, v4r2.parse_unsigned(from_b64(request.unsigned_body_boc), wallet=request.wallet)

    async def locked(self, books: SqlTonBooks, request_id: str) -> Row | None:
        return await books.message_locked(request_id)

    async def of_payout(self, books: SqlTonBooks, payout_id: str) -> Row | None:
        return await books.message_of_payout(payout_id)

    async def external(self, books: SqlTonBooks, row: Row) -> None:
        await books.message_external(row["request_id"])

    async def keys(self, books: SqlTonBooks, row: Row) -> list[str]:
        return [str(row["idempotency_key"])]

    async def close(self, books: SqlTonBooks, row: Row, code: str, detail: str) -> None:
        await books.message_refused(row["request_id"], code, detail)

    async def take(self, books: SqlTonBooks, row: Row, keys: Sequence[str], boc: str, message_hash: str) -> None:
        await books.message_signed(row["request_id"], boc, message_hash)
        for key in keys:
            await books.payouts.signed(key, message_hash)

    def mismatch(self, row: Row, data: Any, public_key: str | None) -> str | None:
        try:
            _, built = self._built(row)
            ext = v4r2.parse_external(from_b64(data.signed_boc))
        except MalformedMessageError as err:
            return f"unreadable: {err}"
        if ext.message != built:
            return "the signed message is not the message built"
        if ext.hash != data.message_hash:
            return "the answer's message hash is not the message's"
        if public_key is not None and data.signed_by != public_key:
            return f"signed by {data.signed_by}, not the wallet's key"
        if not verify_sign(bytes.fromhex(data.signed_by), v4r2.signing_hash(built), ext.signature):
            return "the signature does not verify"
        return None

    def check_external(self, row: Row, signed_boc: str, public_key: str) -> Checked:
        _, built = self._built(row)
        try:
            ext = v4r2.parse_external(from_b64(signed_boc))
        except MalformedMessageError as err:
            raise ExternalSigningError(ErrorKind.INVALID, "malformed_message", str(err)) from err
        if ext.message != built:
            raise ExternalSigningError(ErrorKind.INVALID, "not_the_message_built", "another message was signed")
        _verified(public_key, v4r2.signing_hash(built), ext.signature)
        return Checked(ext.hash, built.valid_until)

    def live_s(self, options: TonOptions) -> int:
        return options.validity_s

    def pays(self, row: Row, payout_id: str) -> tuple[str, ...]:
        return (payout_id,)

    def describe(self, row: Row, payout_id: str) -> dict[str, Any]:
        request, built = self._built(row)
        return {
            "payout_id": payout_id,
            "request_id": row["request_id"],
            "state": row["state"],
            "wallet": request.wallet,
            "seqno": request.seqno,
            "valid_until": request.valid_until,
            "unsigned_body_boc": request.unsigned_body_boc,
            "signing_hash": v4r2.signing_hash(built).hex(),
            "intent": request.intent.model_dump(mode="json"),
            "submit": "POST the whole signed external message (base64 BOC) as `signed_xdr`",
        }


class _Batches(MessageFormat):
    """Highload v3: `ton_batches` and their items, many payouts a message, signed over the MsgInner's hash."""

    noun = "batch"
    signed = TonBatchSigned
    expired = "the message's created_at + timeout passed"

    @staticmethod
    def _built(row: Row) -> tuple[TonBatchSignatureRequested, highload.HighloadBatch]:
        request = TonBatchSignatureRequested.model_validate_json(row["request"])
        return request, highload.parse_inner(from_b64(request.unsigned_inner_boc), wallet=request.wallet)

    async def locked(self, books: SqlTonBooks, request_id: str) -> Row | None:
        return await books.batches.locked(request_id)

    async def of_payout(self, books: SqlTonBooks, payout_id: str) -> Row | None:
        return await books.batches.of_payout(payout_id)

    async def external(self, books: SqlTonBooks, row: Row) -> None:
        await books.batches.external(row["request_id"])

    async def keys(self, books: SqlTonBooks, row: Row) -> list[str]:
        items = await books.batches.items(row["request_id"])
        return [str(i["idempotency_key"]) for i in items if i["state"] == "in_flight"]

    async def close(self, books: SqlTonBooks, row: Row, code: str, detail: str) -> None:
        await books.batches.closed(row["request_id"], "refused", code, detail)

    async def take(self, books: SqlTonBooks, row: Row, keys: Sequence[str], boc: str, message_hash: str) -> None:
        await books.batches.signed(row["request_id"], boc, message_hash)
        for key in keys:
            await books.payouts.signed(key, message_hash)

    def mismatch(self, row: Row, data: Any, public_key: str | None) -> str | None:  # noqa: PLR0911 - one per check
        try:
            request, built = self._built(row)
            ext = highload.parse_external(from_b64(data.signed_boc))
        except MalformedMessageError as err:
            return f"unreadable: {err}"
        if ext.batch != built or ext.inner_hash != row["inner_hash"]:
            return "the signed message is not the batch built"
        if data.payout_ids != request.payout_ids:
            return "the answer names other payouts than the batch"
        if ext.hash != data.message_hash:
            return "the answer's message hash is not the message's"
        if public_key is not None and data.signed_by != public_key:
            return f"signed by {data.signed_by}, not the wallet's key"
        if not verify_sign(bytes.fromhex(data.signed_by), bytes.fromhex(ext.inner_hash), ext.signature):
            return "the signature does not verify"
        return None

    def check_external(self, row: Row, signed_boc: str, public_key: str) -> Checked:
        _, built = self._built(row)
        try:
            ext = highload.parse_external(from_b64(signed_boc))
        except MalformedMessageError as err:
            raise ExternalSigningError(ErrorKind.INVALID, "malformed_message", str(err)) from err
        if ext.batch != built:
            raise ExternalSigningError(ErrorKind.INVALID, "not_the_message_built", "another message was signed")
        _verified(public_key, bytes.fromhex(ext.inner_hash), ext.signature)
        return Checked(ext.hash, built.expires_at)

    def live_s(self, options: TonOptions) -> int:
        return options.highload_timeout_s

    def pays(self, row: Row, payout_id: str) -> tuple[str, ...]:
        return tuple(self._built(row)[0].payout_ids)

    def describe(self, row: Row, payout_id: str) -> dict[str, Any]:
        request, built = self._built(row)
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


MESSAGES: Final[MessageFormat] = _Messages()
BATCHES: Final[MessageFormat] = _Batches()


class TonSignatures:
    """The pipeline, for messages of one `MessageFormat`. The signer's answers are applied on the inbox's session
    (the books bound on it: they commit with the inbox); an operator's signature in a unit of work of its own."""

    def __init__(
        self,
        options: TonOptions,
        fmt: MessageFormat,
        *,
        uow: Callable[[], AbstractAsyncContextManager[SqlTonBooks]],
        wake: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.o = options
        self.name = options.name
        self.fmt = fmt
        self.uow = uow
        self._wake = wake
        self.clock = clock

    async def on_signer_results(self, session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None:
        """Each answer about a message of this format still awaiting its signature; others are not ours."""
        books = SqlTonBooks(session, self.name)
        touched = False
        for env in envelopes:
            data = env.data
            if not isinstance(data, self.fmt.signed | SignatureRefused):
                continue
            found = await self.fmt.locked(books, data.request_id)
            if found is None or found["state"] != "awaiting_signature":
                continue  # not ours, or decided meanwhile (a duplicate or late answer)
            row = {**found, "provider": self.name}
            if isinstance(data, SignatureRefused):
                await self._refused(books, row, data)
            else:
                await self._signed(books, row, data)
            touched = True
        if touched:
            self._wake()

    async def _fail(self, books: SqlTonBooks, keys: Sequence[str], detail: str) -> None:
        for key in keys:
            await books.payouts.failed(key, code=C.SIGNATURE_REFUSED.value, retryable=False, detail=detail)

    async def _signed(self, books: SqlTonBooks, row: Row, data: TonMessageSigned | TonBatchSigned) -> None:
        keys = await self.fmt.keys(books, row)
        why = self.fmt.mismatch(row, data, self.o.public_key)
        if why is not None:
            log.error("signed TON %s refused", self.fmt.noun, extra={"request_id": data.request_id, "reason": why})
            detail = f"signed message refused, never sent: {why}"
            await self.fmt.close(books, row, SIGNED_MESSAGE_MISMATCH, detail)
            await self._fail(books, keys, detail)
            return
        await self.fmt.take(books, row, keys, data.signed_boc, data.message_hash)

    async def _refused(self, books: SqlTonBooks, row: Row, data: SignatureRefused) -> None:
        if data.code is SignatureRefusalCode.BACKEND_UNAVAILABLE:
            return  # not a verdict: the driver asks again after resign_after_s
        if data.code is SignatureRefusalCode.EXTERNAL_SIGNING_REQUIRED:
            # The checks passed; an operator signs it out of band (admin API) before it expires.
            await self.fmt.external(books, row)
            return
        detail = f"signer refused: {data.code.value}: {data.detail}"[:1000]
        keys = await self.fmt.keys(books, row)
        await self.fmt.close(books, row, data.code.value, detail)
        if data.code is SignatureRefusalCode.LIVE_SIGNATURE_EXISTS:
            # An earlier message for these payouts may still land: never fail them now; build again after.
            until = data.live_until if data.live_until is not None else int(self.clock()) + self.fmt.live_s(self.o)
            for key in keys:
                await books.payouts.requeue(key, datetime.fromtimestamp(until + 1, UTC))
            return
        if len(keys) > 1:
            # Which payout the verdict is about is not said: each goes again alone, the others get paid.
            log.warning(
                "ton batch refused by the signer: its payouts go again one by one",
                extra={"request_id": row["request_id"], "code": data.code.value, "payouts": len(keys)},
            )
            for key in keys:
                await books.payouts.requeue(key, datetime.now(UTC), alone=True)
            return
        await self._fail(books, keys, detail)

    # -- external signing (signer backend `external`, admin API) -----------------------------------------------

    async def _of_payout(self, books: SqlTonBooks, payout_id: str) -> Row | None:
        found = await self.fmt.of_payout(books, payout_id)
        return {**found, "provider": self.name} if found is not None else None

    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None:
        """The message of this payout waiting for an out-of-band signature: what is signed (its hash) and what
        it pays."""
        async with self.uow() as books:
            row = await self._of_payout(books, payout_id)
        return self.fmt.describe(row, payout_id) if row is not None else None

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> TonSubmission:
        """Take an externally signed message: exactly the one built, signed by the wallet's key, before it
        expires; then the driver sends it like any other."""
        if self.o.public_key is None:
            raise ExternalSigningError(
                ErrorKind.CONFLICT, "public_key_unknown", "set the provider's public_key to accept external signatures"
            )
        async with self.uow() as books:
            row = await self._of_payout(books, payout_id)
            if row is None or row["state"] != "external":
                raise ExternalSigningError(
                    ErrorKind.CONFLICT,
                    "not_awaiting_signature",
                    f"no {self.fmt.noun} of this payout awaits an external signature",
                )
            checked = self.fmt.check_external(row, signed_xdr, self.o.public_key)
            if self.clock() >= checked.expires_at:
                raise ExternalSigningError(ErrorKind.CONFLICT, "expired", self.fmt.expired)
            keys = await self.fmt.keys(books, row)
            await self.fmt.take(books, row, keys, signed_xdr, checked.message_hash)
        self._wake()
        return TonSubmission(tx_hash=checked.message_hash, payout_ids=self.fmt.pays(row, payout_id))


__all__ = ["BATCHES", "MESSAGES", "SIGNED_MESSAGE_MISMATCH", "MessageFormat", "TonSignatures", "TonSubmission"]
