"""SignRequest: check a SignatureRequested against its intent and policy, sign or refuse, audit, emit.

Everything happens in the consumer's database transaction: the result event (outbox), the audit row, the
stored result, the spend rows and the payouts' live signatures commit together or not at all, so a crash
anywhere yields exactly one outcome per request id.

What is signed is the hash of exactly the bytes that were checked, and the signed envelope returned is those
bytes plus the signature.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stellar_sdk import Keypair

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, event_id_for, follow
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.signer import (
    SignatureRefusalCode,
    SignatureRefused,
    SignatureRequested,
    TonBatchSignatureRequested,
    TonSignatureRequested,
    TransactionSigned,
)
from prizeflow_signer.application.ports import AuditRecord, BackendUnavailableError, SignatureBackend, SignerStore, Tx
from prizeflow_signer.application.sign_ton import SignTonRequest
from prizeflow_signer.application.sign_ton_batch import SignTonBatchRequest
from prizeflow_signer.domain.policy import LiveSignatureExistsError, OneLiveSignature, SpendingPolicy
from prizeflow_signer.metrics import SignerMetrics
from prizeflow_signer.settings import BackendKind
from prizeflow_stellar.checks import CheckedTransaction, CheckPolicy, IntentViolation, decode_and_check
from prizeflow_stellar.envelopes import TIME_BOUND_MARGIN_S

log = logging.getLogger(__name__)
Code = SignatureRefusalCode


def result_event_id(request_id: str) -> Any:
    """The id of THE result of a request: a replay re-emits the same id, so consumers dedup it."""
    return event_id_for("signer-result", request_id)


@dataclass
class SignRequest:
    store: SignerStore
    backend: SignatureBackend
    check_policy: CheckPolicy
    spending: SpendingPolicy
    source: str
    metrics: SignerMetrics | None = None
    clock: Callable[[], float] = field(default=time.time)
    live: OneLiveSignature = field(default_factory=lambda: OneLiveSignature(TIME_BOUND_MARGIN_S))
    ton: SignTonRequest | None = None  # TON wallet messages, on the same topics and books
    ton_batch: SignTonBatchRequest | None = None  # TON highload wallet v3 batches, likewise

    async def __call__(self, session: Tx, envelope: Envelope[EventPayload]) -> None:
        request = envelope.data
        if isinstance(request, TonSignatureRequested) and self.ton is not None:
            await self.ton(session, envelope, request)
            return
        if isinstance(request, TonBatchSignatureRequested) and self.ton_batch is not None:
            await self.ton_batch(session, envelope, request)
            return
        if not isinstance(request, SignatureRequested):
            raise EventRefusal("unknown_event_type", f"the signer does not handle {envelope.type}")
        stored = await self.store.stored_result(session, request.request_id)
        if stored is not None:
            await self._replay(session, envelope, request, stored)
            return
        now = int(self.clock())
        outcome, result, audit = self._decide_static(envelope, request, now)
        if outcome == "checked":
            assert isinstance(result, CheckedTransaction)
            outcome, result, audit = await self._decide_and_sign(session, envelope, request, result, now)
        assert isinstance(result, EventPayload)
        retryable = isinstance(result, SignatureRefused) and result.retryable
        event_id = event_id_for("signer-attempt", envelope.id) if retryable else result_event_id(request.request_id)
        out = follow(envelope, result, source=self.source, subject=request.request_id, event_id=event_id)
        if not retryable:  # a backend outage is not a verdict: the same request may be tried again
            await self.store.save_result(session, request.request_id, outcome, out.model_dump_json())
        await self.store.audit(session, audit)
        await self.store.emit(session, out)
        if self.metrics is not None:
            self.metrics.decisions.labels(outcome, audit.code or "none").inc()
        log.info(
            "signature request decided",
            extra={"request_id": request.request_id, "decision": outcome, "code": audit.code, "tx_hash": audit.tx_hash},
        )

    def _audit(
        self, envelope: Envelope[EventPayload], request: SignatureRequested, decision: str, **kw: Any
    ) -> AuditRecord:
        return AuditRecord(
            request_id=request.request_id,
            event_id=str(envelope.id),
            correlation_id=envelope.correlationid,
            decision=decision,
            backend=self.backend.kind.value,
            payout_ids=tuple(request.payout_ids),
            **kw,
        )

    def _refusal(
        self, envelope: Envelope[EventPayload], request: SignatureRequested, v: IntentViolation, **kw: Any
    ) -> tuple[str, EventPayload, AuditRecord]:
        decision = "external" if v.code is Code.EXTERNAL_SIGNING_REQUIRED else "refused"
        payload = SignatureRefused(
            request_id=request.request_id,
            payout_ids=request.payout_ids,
            code=v.code,
            detail=v.detail[:2000],
            live_until=v.live_until if isinstance(v, LiveSignatureExistsError) else None,
        )
        return decision, payload, self._audit(envelope, request, decision, code=v.code.value, detail=v.detail, **kw)

    def _decide_static(
        self, envelope: Envelope[EventPayload], request: SignatureRequested, now: int
    ) -> tuple[str, EventPayload | CheckedTransaction, AuditRecord]:
        try:
            checked = decode_and_check(request.unsigned_xdr, request, self.check_policy, now=now)
            self.spending.check_transaction(checked)
        except IntentViolation as v:
            return self._refusal(envelope, request, v, source_account=request.source_account)
        return "checked", checked, self._audit(envelope, request, "checked")

    async def _decide_and_sign(
        self,
        session: Tx,
        envelope: Envelope[EventPayload],
        request: SignatureRequested,
        checked: CheckedTransaction,
        now: int,
    ) -> tuple[str, EventPayload, AuditRecord]:
        common: dict[str, Any] = {
            "tx_hash": checked.tx_hash_hex,
            "source_account": checked.source_account,
            "amounts": dict(checked.amounts),
        }
        try:
            await self.store.lock_spending(session)
            live = await self.store.live_signatures(session, request.payout_ids)
            # The same transaction signed again moves nothing new: it is neither capped nor counted twice.
            resigning = self.live.check(request.payout_ids, checked.tx_hash_hex, live, now)
            if not resigning:
                used = await self.store.spent_in_window(session, sorted(checked.amounts))
                self.spending.check_daily(checked.amounts, used)
            if self.backend.kind is BackendKind.EXTERNAL:
                raise IntentViolation(
                    Code.EXTERNAL_SIGNING_REQUIRED,
                    "this signer holds no key: sign out of band via the payouts admin API",
                )
        except IntentViolation as v:
            return self._refusal(envelope, request, v, **common)
        started = time.perf_counter()
        try:
            signature = self.backend.sign(checked.tx_hash)
            public_key = self.backend.public_key
            assert public_key is not None
            signer = Keypair.from_public_key(public_key)
            signer.verify(checked.tx_hash, signature)  # a misbehaving HSM must not get a bad envelope out
        except Exception as err:  # noqa: BLE001 - any key-store failure is a retryable refusal, never a crash loop
            log.warning("signing failed: %s", type(err).__name__, extra={"request_id": request.request_id})
            why = (
                f"the {self.backend.kind.value} backend could not sign"
                if isinstance(err, BackendUnavailableError)
                else f"signing failed ({type(err).__name__})"
            )
            return self._refusal(envelope, request, IntentViolation(Code.BACKEND_UNAVAILABLE, why), **common)
        if self.metrics is not None:
            self.metrics.sign_seconds.labels(self.backend.kind.value).observe(time.perf_counter() - started)
        signed_xdr = checked.exact.with_signature(signer.signature_hint(), signature)
        await self.store.record_signature(
            session,
            request_id=request.request_id,
            tx_hash=checked.tx_hash_hex,
            max_time=checked.max_time,
            payout_ids=request.payout_ids,
            now=now,
        )
        if not resigning:
            await self.store.record_spend(session, request.request_id, checked.amounts)
        payload = TransactionSigned(
            request_id=request.request_id,
            payout_ids=request.payout_ids,
            signed_xdr=signed_xdr,
            tx_hash=checked.tx_hash_hex,
            signed_by=public_key,
        )
        detail = "the same transaction as an earlier request: signed again, not counted again" if resigning else None
        audit = self._audit(envelope, request, "signed", signed_by=public_key, detail=detail, **common)
        return "signed", payload, audit

    async def _replay(
        self, session: Tx, envelope: Envelope[EventPayload], request: SignatureRequested, stored: str
    ) -> None:
        """The same request id again: the same answer, with the same event id (consumers dedup it)."""
        previous = decode(stored)
        await self.store.reemit(session, previous)
        code = getattr(previous.data, "code", None)
        await self.store.audit(
            session,
            self._audit(
                envelope,
                request,
                "replayed",
                code=str(code.value) if code is not None else None,
                detail=f"result {previous.id} re-emitted",
                tx_hash=getattr(previous.data, "tx_hash", None),
                source_account=request.source_account,
                signed_by=getattr(previous.data, "signed_by", None),
            ),
        )
        if self.metrics is not None:
            self.metrics.decisions.labels("replayed", "none").inc()
