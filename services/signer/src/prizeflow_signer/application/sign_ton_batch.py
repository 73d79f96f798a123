"""SignTonBatchRequest: a TonBatchSignatureRequested (a highload wallet v3 message paying many payouts) checked
against its intents and policy, signed or refused, on the same path as every other request (topics, store,
backends, audit, replay, caps on the batch's sums, deny list per destination, one live signature per payout).

What is signed is the hash of exactly the MsgInner cell that was checked; the answer is the external message made
of those bytes and the signature. The message counts as live for each of its payouts until `created_at + timeout`
(plus the margin): the wallet accepts it until then, so no other message is signed for any of them before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stellar_sdk import Keypair

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, event_id_for, follow
from prizeflow_contracts.events.signer import (
    SignatureRefusalCode,
    SignatureRefused,
    TonBatchSignatureRequested,
    TonBatchSigned,
)
from prizeflow_signer.application.ports import AuditRecord, BackendUnavailableError, SignatureBackend, SignerStore, Tx
from prizeflow_signer.domain.policy import LiveSignatureExistsError, OneLiveSignature, SpendingPolicy
from prizeflow_signer.domain.ton_highload import CheckedTonBatch, TonHighloadPolicy, check_ton_batch_request
from prizeflow_signer.metrics import SignerMetrics
from prizeflow_signer.settings import BackendKind
from prizeflow_stellar.checks import IntentViolation
from prizeflow_stellar.envelopes import TIME_BOUND_MARGIN_S
from prizeflow_ton.addresses import parse_address
from prizeflow_ton.highload import external_message
from prizeflow_ton.messages import message_hash, to_b64

log = logging.getLogger(__name__)
Code = SignatureRefusalCode
Decision = tuple[str, EventPayload, AuditRecord]


@dataclass
class SignTonBatchRequest:
    store: SignerStore
    backend: SignatureBackend
    policy: TonHighloadPolicy | None  # None: no highload wallet configured (every request refused, wrong_source)
    spending: SpendingPolicy
    source: str
    metrics: SignerMetrics | None = None
    clock: Callable[[], float] = field(default=time.time)
    live: OneLiveSignature = field(default_factory=lambda: OneLiveSignature(TIME_BOUND_MARGIN_S))

    async def __call__(
        self, session: Tx, envelope: Envelope[EventPayload], request: TonBatchSignatureRequested
    ) -> None:
        stored = await self.store.stored_result(session, request.request_id)
        if stored is not None:
            await self._replay(session, envelope, request, stored)
            return
        now = int(self.clock())
        outcome, result, audit = await self._decide(session, envelope, request, now)
        retryable = isinstance(result, SignatureRefused) and result.retryable
        event_id = (
            event_id_for("signer-attempt", envelope.id)
            if retryable
            else event_id_for("signer-result", request.request_id)  # one result per request, as SignRequest
        )
        out = follow(envelope, result, source=self.source, subject=request.request_id, event_id=event_id)
        if not retryable:
            await self.store.save_result(session, request.request_id, outcome, out.model_dump_json())
        await self.store.audit(session, audit)
        await self.store.emit(session, out)
        if self.metrics is not None:
            self.metrics.decisions.labels(outcome, audit.code or "none").inc()
        log.info(
            "ton batch signature request decided",
            extra={
                "request_id": request.request_id,
                "decision": outcome,
                "code": audit.code,
                "tx_hash": audit.tx_hash,
                "payouts": len(request.payout_ids),
            },
        )

    def _audit(
        self, envelope: Envelope[EventPayload], request: TonBatchSignatureRequested, decision: str, **kw: Any
    ) -> AuditRecord:
        return AuditRecord(
            request_id=request.request_id,
            event_id=str(envelope.id),
            correlation_id=envelope.correlationid,
            decision=decision,
            backend=self.backend.kind.value,
            payout_ids=tuple(request.payout_ids),
            # The audit's 56-character column holds the wallet's user-friendly form.
            source_account=parse_address(request.wallet, workchains=frozenset({0, -1})).friendly(bounceable=True),
            **kw,
        )

    def _refusal(
        self, envelope: Envelope[EventPayload], request: TonBatchSignatureRequested, v: IntentViolation, **kw: Any
    ) -> Decision:
        decision = "external" if v.code is Code.EXTERNAL_SIGNING_REQUIRED else "refused"
        payload = SignatureRefused(
            request_id=request.request_id,
            payout_ids=request.payout_ids,
            code=v.code,
            detail=v.detail[:2000],
            live_until=v.live_until if isinstance(v, LiveSignatureExistsError) else None,
        )
        return decision, payload, self._audit(envelope, request, decision, code=v.code.value, detail=v.detail, **kw)

    async def _decide(
        self, session: Tx, envelope: Envelope[EventPayload], request: TonBatchSignatureRequested, now: int
    ) -> Decision:
        try:
            if self.policy is None:
                raise IntentViolation(Code.WRONG_SOURCE, "this signer is configured for no highload TON wallet")
            checked = check_ton_batch_request(request, self.policy, now=now)
            self._check_static(checked)
        except IntentViolation as v:
            return self._refusal(envelope, request, v)
        return await self._sign(session, envelope, request, checked, now)

    def _check_static(self, checked: CheckedTonBatch) -> None:
        for destination in checked.destinations:
            if destination in self.spending.deny_destinations:
                raise IntentViolation(Code.DESTINATION_DENIED, f"{destination} is on the deny list")
        for asset, amount in checked.amounts.items():
            cap = self.spending.tx_caps.get(asset)
            if cap is None or amount > cap:
                raise IntentViolation(Code.OVER_TX_CAP, f"{amount} of {asset} is over the per-transaction cap {cap}")

    async def _sign(
        self,
        session: Tx,
        envelope: Envelope[EventPayload],
        request: TonBatchSignatureRequested,
        checked: CheckedTonBatch,
        now: int,
    ) -> Decision:
        # Keyed by the signing hash (one per MsgInner): the same batch signed again is the same message.
        key = checked.signing_hash.hex()
        common: dict[str, Any] = {"tx_hash": key, "amounts": dict(checked.amounts)}
        try:
            await self.store.lock_spending(session)
            live = await self.store.live_signatures(session, request.payout_ids)
            resigning = self.live.check(request.payout_ids, key, live, now)
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
        try:
            signature = self.backend.sign(checked.signing_hash)
            public_key = self.backend.public_key
            assert public_key is not None
            Keypair.from_public_key(public_key).verify(checked.signing_hash, signature)
        except Exception as err:  # noqa: BLE001 - any key-store failure is a retryable refusal, never a crash loop
            log.warning("ton batch signing failed: %s", type(err).__name__, extra={"request_id": request.request_id})
            why = (
                f"the {self.backend.kind.value} backend could not sign"
                if isinstance(err, BackendUnavailableError)
                else f"signing failed ({type(err).__name__})"
            )
            return self._refusal(envelope, request, IntentViolation(Code.BACKEND_UNAVAILABLE, why), **common)
        external = external_message(checked.batch, signature)
        await self.store.record_signature(
            session,
            request_id=request.request_id,
            tx_hash=key,
            max_time=checked.live_until,
            payout_ids=request.payout_ids,
            now=now,
        )
        if not resigning:
            await self.store.record_spend(session, request.request_id, checked.amounts)
        payload = TonBatchSigned(
            request_id=request.request_id,
            payout_ids=request.payout_ids,
            signed_boc=to_b64(external),
            message_hash=message_hash(external),
            signed_by=Keypair.from_public_key(public_key).raw_public_key().hex(),
        )
        detail = "the same message as an earlier request: signed again, not counted again" if resigning else None
        audit = self._audit(envelope, request, "signed", signed_by=public_key, detail=detail, **common)
        return "signed", payload, audit

    async def _replay(
        self, session: Tx, envelope: Envelope[EventPayload], request: TonBatchSignatureRequested, stored: str
    ) -> None:
        previous = decode(stored)
        await self.store.reemit(session, previous)
        code = getattr(previous.data, "code", None)
        record = self._audit(
            envelope,
            request,
            "replayed",
            code=str(code.value) if code is not None else None,
            detail=f"result {previous.id} re-emitted",
        )
        await self.store.audit(session, record)
        if self.metrics is not None:
            self.metrics.decisions.labels("replayed", "none").inc()


__all__ = ["SignTonBatchRequest"]
