"""SignTonRequest: a TonSignatureRequested checked against its intent and policy, signed or refused, on the same
path as Stellar requests (same topics, store, backends, audit, replay, caps and one-live-signature rule).

What is signed is the hash of exactly the body cell that was checked; the answer is the external message made
of those bytes and the signature. A message counts as live until its `valid_until` (plus the margin), so the
signer never signs a second message for a payout while the first can still land.
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
    TonMessageSigned,
    TonSignatureRequested,
)
from prizeflow_signer.application.ports import AuditRecord, BackendUnavailableError, SignatureBackend, SignerStore, Tx
from prizeflow_signer.domain.policy import LiveSignatureExistsError, OneLiveSignature, SpendingPolicy
from prizeflow_signer.domain.ton import CheckedTonMessage, TonPolicy, check_ton_request
from prizeflow_signer.metrics import SignerMetrics
from prizeflow_signer.settings import BackendKind
from prizeflow_stellar.checks import IntentViolation
from prizeflow_stellar.envelopes import TIME_BOUND_MARGIN_S
from prizeflow_ton.addresses import parse_address
from prizeflow_ton.messages import external_message, message_hash, to_b64

log = logging.getLogger(__name__)
Code = SignatureRefusalCode


def _result_event_id(request_id: str) -> Any:
    return event_id_for("signer-result", request_id)  # the same id SignRequest gives: one result per request


@dataclass
class SignTonRequest:
    store: SignerStore
    backend: SignatureBackend
    policy: TonPolicy | None  # None: this signer signs no TON message (every request is refused, wrong_source)
    spending: SpendingPolicy
    source: str
    metrics: SignerMetrics | None = None
    clock: Callable[[], float] = field(default=time.time)
    live: OneLiveSignature = field(default_factory=lambda: OneLiveSignature(TIME_BOUND_MARGIN_S))

    async def __call__(self, session: Tx, envelope: Envelope[EventPayload], request: TonSignatureRequested) -> None:
        stored = await self.store.stored_result(session, request.request_id)
        if stored is not None:
            await self._replay(session, envelope, request, stored)
            return
        now = int(self.clock())
        outcome, result, audit = await self._decide(session, envelope, request, now)
        retryable = isinstance(result, SignatureRefused) and result.retryable
        event_id = event_id_for("signer-attempt", envelope.id) if retryable else _result_event_id(request.request_id)
        out = follow(envelope, result, source=self.source, subject=request.request_id, event_id=event_id)
        if not retryable:
            await self.store.save_result(session, request.request_id, outcome, out.model_dump_json())
        await self.store.audit(session, audit)
        await self.store.emit(session, out)
        if self.metrics is not None:
            self.metrics.decisions.labels(outcome, audit.code or "none").inc()
        log.info(
            "ton signature request decided",
            extra={"request_id": request.request_id, "decision": outcome, "code": audit.code, "tx_hash": audit.tx_hash},
        )

    def _wallet_label(self, request: TonSignatureRequested) -> str:
        """The wallet as the audit's 56-character column can hold it: its user-friendly form."""
        return parse_address(request.wallet, workchains=frozenset({0, -1})).friendly(bounceable=True)

    def _audit(
        self, envelope: Envelope[EventPayload], request: TonSignatureRequested, decision: str, **kw: Any
    ) -> AuditRecord:
        return AuditRecord(
            request_id=request.request_id,
            event_id=str(envelope.id),
            correlation_id=envelope.correlationid,
            decision=decision,
            backend=self.backend.kind.value,
            payout_ids=tuple(request.payout_ids),
            source_account=self._wallet_label(request),
            **kw,
        )

    def _refusal(
        self, envelope: Envelope[EventPayload], request: TonSignatureRequested, v: IntentViolation, **kw: Any
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

    async def _decide(
        self, session: Tx, envelope: Envelope[EventPayload], request: TonSignatureRequested, now: int
    ) -> tuple[str, EventPayload, AuditRecord]:
        try:
            if self.policy is None:
                raise IntentViolation(Code.WRONG_SOURCE, "this signer is configured for no TON wallet")
            checked = check_ton_request(request, self.policy, now=now)
            self._check_static(checked)
        except IntentViolation as v:
            return self._refusal(envelope, request, v)
        return await self._sign(session, envelope, request, checked, now)

    def _check_static(self, checked: CheckedTonMessage) -> None:
        if checked.destination in self.spending.deny_destinations:
            raise IntentViolation(Code.DESTINATION_DENIED, f"{checked.destination} is on the deny list")
        for asset, amount in checked.amounts.items():
            cap = self.spending.tx_caps.get(asset)
            if cap is None or amount > cap:
                raise IntentViolation(Code.OVER_TX_CAP, f"{amount} of {asset} is over the per-transaction cap {cap}")

    async def _sign(
        self,
        session: Tx,
        envelope: Envelope[EventPayload],
        request: TonSignatureRequested,
        checked: CheckedTonMessage,
        now: int,
    ) -> tuple[str, EventPayload, AuditRecord]:
        # The message hash is known only once signed; the live-signature rule is keyed by the signing hash
        # (one per body), which identifies the message as well: same body, same signature, same message.
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
            log.warning("ton signing failed: %s", type(err).__name__, extra={"request_id": request.request_id})
            why = (
                f"the {self.backend.kind.value} backend could not sign"
                if isinstance(err, BackendUnavailableError)
                else f"signing failed ({type(err).__name__})"
            )
            return self._refusal(envelope, request, IntentViolation(Code.BACKEND_UNAVAILABLE, why), **common)
        external = external_message(checked.message, signature)
        await self.store.record_signature(
            session,
            request_id=request.request_id,
            tx_hash=key,
            max_time=checked.message.valid_until,
            payout_ids=request.payout_ids,
            now=now,
        )
        if not resigning:
            await self.store.record_spend(session, request.request_id, checked.amounts)
        payload = TonMessageSigned(
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
        self, session: Tx, envelope: Envelope[EventPayload], request: TonSignatureRequested, stored: str
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


__all__ = ["SignTonRequest"]
