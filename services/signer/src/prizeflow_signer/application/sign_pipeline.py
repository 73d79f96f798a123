"""SignPipeline: a signing request checked against its intent and policy, signed or refused, audited, answered.

Every request type takes the same steps; what differs is its `SigningScheme` (`application/schemes.py`: Stellar
transactions, TON wallet v4r2 messages, TON highload wallet v3 batches — a single TON message is a batch of one here):

1. a request id answered before gets that answer again, under the same event id (consumers dedup it);
2. the scheme decodes the bytes and checks them against the intent (a `Signable`: the hash to sign, what it moves,
   to whom, until when it can land), then the deny list (every destination) and the per-transaction caps (the sums);
3. under the spending lock: no other live signature for any of its payouts, then the rolling daily caps (unless it
   is the very transaction signed before: it moves nothing new), then an `external` backend refuses (the checks
   passed; an operator signs out of band);
4. the backend signs the hash and the signature is verified before anything leaves (a misbehaving HSM);
5. the payouts' live signature and the spend are recorded;
6. the answer is stored (a deterministic event id per request, except a retryable refusal: the same request may be
   tried again), audited and staged in the outbox.

All of it in the consumer's one transaction (`books`), so a crash anywhere yields exactly one outcome per request id.
What is signed is the hash of exactly the bytes that were checked; the answer is those bytes plus the signature.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar, cast

from stellar_sdk import Keypair

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, event_id_for, follow
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.signer import SignatureRefusalCode, SignatureRefused
from prizeflow_signer.application.books import Books
from prizeflow_signer.application.ports import AuditRecord, BackendUnavailableError, SignatureBackend
from prizeflow_signer.domain.policy import LiveSignatureExistsError, OneLiveSignature, SpendingPolicy
from prizeflow_signer.metrics import SignerMetrics
from prizeflow_signer.settings import BackendKind
from prizeflow_stellar.checks import IntentViolation
from prizeflow_stellar.envelopes import TIME_BOUND_MARGIN_S

log = logging.getLogger(__name__)
Code = SignatureRefusalCode
R_contra = TypeVar("R_contra", contravariant=True)


def result_event_id(request_id: str) -> Any:
    """The id of THE result of a request: a replay re-emits the same id, so consumers dedup it."""
    return event_id_for("signer-result", request_id)


@dataclass(frozen=True, slots=True)
class Signable:
    """A request that matched its intent: what the pipeline decides on and signs (one message or a batch alike)."""

    signing_hash: bytes  # what the key signs: the hash of exactly the bytes checked
    live_until: int  # unix seconds: it can land until then, so its payouts have no other live signature before
    amounts: Mapping[str, int]  # by asset, summed over the batch
    destinations: tuple[str, ...]
    source_account: str  # what the audit names as the paying account (the Stellar source, the TON wallet)
    seal: Callable[[bytes, str], EventPayload]  # the signed answer, from the signature and the key's G... address

    @property
    def key(self) -> str:
        """What the live-signature rule and the audit know it by: the same bytes, the same key."""
        return self.signing_hash.hex()


class SigningScheme(Protocol[R_contra]):
    """One request type's own part of the pipeline: how it is decoded and checked, and how it is answered."""

    @property
    def request_type(self) -> type[EventPayload]: ...

    @property
    def name(self) -> str:
        """The scheme in logs."""
        ...

    @property
    def amount_unit(self) -> str:
        """How a per-transaction cap refusal names the amounts ("stroops"; empty: none)."""
        ...

    @property
    def signs(self) -> str:
        """What it signs, as a re-signing is audited ("transaction", "message")."""
        ...

    def source_account(self, request: R_contra) -> str:
        """The paying account the audit names, whatever the checks find."""
        ...

    def check(self, request: R_contra, *, now: int) -> Signable:
        """Decode the bytes and check them against the intent and the scheme's policy; raises IntentViolation."""
        ...

    @property
    def answer(self) -> type[EventPayload]:
        """The result a signature under this scheme is (a refusal is `SignatureRefused`, whatever the scheme)."""
        ...

    def replayed(self, previous: EventPayload) -> dict[str, str | None]:
        """What the audit of a replay repeats of the stored answer, besides its code."""
        ...


class SigningRequest(Protocol):
    """What every request type carries."""

    @property
    def request_id(self) -> str: ...

    @property
    def payout_ids(self) -> list[str]: ...


class Decision(NamedTuple):
    outcome: str  # signed | refused | external
    payload: EventPayload
    audit: AuditRecord


@dataclass(frozen=True, slots=True)
class _Deciding:
    """One request being decided: its envelope, scheme, and what every audit record of it says."""

    envelope: Envelope[EventPayload]
    request: SigningRequest
    scheme: SigningScheme[Any]
    backend: str
    source_account: str

    def audit(self, decision: str, **kw: Any) -> AuditRecord:
        return AuditRecord(
            request_id=self.request.request_id,
            event_id=str(self.envelope.id),
            correlation_id=self.envelope.correlationid,
            decision=decision,
            backend=self.backend,
            payout_ids=tuple(self.request.payout_ids),
            **{"source_account": self.source_account, **kw},
        )

    def refusal(self, v: IntentViolation, **kw: Any) -> Decision:
        decision = "external" if v.code is Code.EXTERNAL_SIGNING_REQUIRED else "refused"
        payload = SignatureRefused(
            request_id=self.request.request_id,
            payout_ids=self.request.payout_ids,
            code=v.code,
            detail=v.detail[:2000],
            live_until=v.live_until if isinstance(v, LiveSignatureExistsError) else None,
        )
        return Decision(decision, payload, self.audit(decision, code=v.code.value, detail=v.detail, **kw))


@dataclass
class SignPipeline:
    schemes: Sequence[SigningScheme[Any]]
    backend: SignatureBackend
    spending: SpendingPolicy
    source: str
    metrics: SignerMetrics | None = None
    clock: Callable[[], float] = field(default=time.time)
    live: OneLiveSignature = field(default_factory=lambda: OneLiveSignature(TIME_BOUND_MARGIN_S))
    _by_type: dict[type[EventPayload], SigningScheme[Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_type = {s.request_type: s for s in self.schemes}
        if len(self._by_type) != len(self.schemes):
            raise ValueError("one signing scheme per request type")

    def replayed(self, previous: EventPayload) -> dict[str, str | None]:
        """What an audit of a replay repeats of a stored answer, by the scheme whose answer it is (a refusal names
        no transaction and no key). The one rule for a readable copy and an unreadable one alike."""
        scheme = next((s for s in self.schemes if isinstance(previous, s.answer)), None)
        return scheme.replayed(previous) if scheme is not None else {}

    async def __call__(self, books: Books, envelope: Envelope[EventPayload]) -> None:
        """The consumer's handler: `books` are bound to its transaction, the inbox row claimed."""
        scheme = self._by_type.get(type(envelope.data))
        if scheme is None:
            raise EventRefusal("unknown_event_type", f"the signer does not handle {envelope.type}")
        request = cast("SigningRequest", envelope.data)
        deciding = _Deciding(envelope, request, scheme, self.backend.kind.value, scheme.source_account(request))
        stored = await books.results.get(request.request_id)
        if stored is not None:
            await self._replay(books, deciding, stored)
            return
        outcome, result, audit = await self._decide(books, deciding, int(self.clock()))
        retryable = isinstance(result, SignatureRefused) and result.retryable
        event_id = event_id_for("signer-attempt", envelope.id) if retryable else result_event_id(request.request_id)
        out = follow(envelope, result, source=self.source, subject=request.request_id, event_id=event_id)
        if not retryable:  # a backend outage is not a verdict: the same request may be tried again
            await books.results.save(request.request_id, outcome, out.model_dump_json())
        await books.audit.record(audit)
        await books.outbox.stage(out)
        if self.metrics is not None:
            self.metrics.decisions.labels(outcome, audit.code or "none").inc()
        log.info(
            "signature request decided",
            extra={
                "scheme": scheme.name,
                "request_id": request.request_id,
                "decision": outcome,
                "code": audit.code,
                "tx_hash": audit.tx_hash,
                "payouts": len(request.payout_ids),
            },
        )

    async def _decide(self, books: Books, deciding: _Deciding, now: int) -> Decision:
        scheme = deciding.scheme
        try:
            signable = scheme.check(deciding.request, now=now)
            self.spending.check_transaction(signable.destinations, signable.amounts, unit=scheme.amount_unit)
        except IntentViolation as v:
            return deciding.refusal(v)
        return await self._sign(books, deciding, signable, now)

    async def _sign(self, books: Books, deciding: _Deciding, signable: Signable, now: int) -> Decision:
        request = deciding.request
        key = signable.key
        common: dict[str, Any] = {
            "tx_hash": key,
            "source_account": signable.source_account,
            "amounts": dict(signable.amounts),
        }
        try:
            await books.spend.lock()
            live = await books.signatures.live(request.payout_ids)
            # The same transaction signed again moves nothing new: it is neither capped nor counted twice.
            resigning = self.live.check(request.payout_ids, key, live, now)
            if not resigning:
                used = await books.spend.spent_in_window(sorted(signable.amounts))
                self.spending.check_daily(signable.amounts, used)
            if self.backend.kind is BackendKind.EXTERNAL:
                raise IntentViolation(
                    Code.EXTERNAL_SIGNING_REQUIRED,
                    "this signer holds no key: sign out of band via the payouts admin API",
                )
        except IntentViolation as v:
            return deciding.refusal(v, **common)
        started = time.perf_counter()
        try:
            signature = self.backend.sign(signable.signing_hash)
            public_key = self.backend.public_key
            assert public_key is not None
            Keypair.from_public_key(public_key).verify(signable.signing_hash, signature)  # a bad HSM's stays here
        except Exception as err:  # noqa: BLE001 - any key-store failure is a retryable refusal, never a crash loop
            log.warning(
                "signing failed: %s",
                type(err).__name__,
                extra={"request_id": request.request_id, "scheme": deciding.scheme.name},
            )
            why = (
                f"the {self.backend.kind.value} backend could not sign"
                if isinstance(err, BackendUnavailableError)
                else f"signing failed ({type(err).__name__})"
            )
            return deciding.refusal(IntentViolation(Code.BACKEND_UNAVAILABLE, why), **common)
        if self.metrics is not None:
            self.metrics.sign_seconds.labels(self.backend.kind.value).observe(time.perf_counter() - started)
        payload = signable.seal(signature, public_key)
        await books.signatures.record(
            request_id=request.request_id,
            tx_hash=key,
            max_time=signable.live_until,
            payout_ids=request.payout_ids,
            now=now,
        )
        if not resigning:
            await books.spend.record(request.request_id, signable.amounts)
        signs = deciding.scheme.signs
        detail = f"the same {signs} as an earlier request: signed again, not counted again" if resigning else None
        return Decision("signed", payload, deciding.audit("signed", signed_by=public_key, detail=detail, **common))

    async def _replay(self, books: Books, deciding: _Deciding, stored: str) -> None:
        """The same request id again: the same answer, with the same event id (consumers dedup it)."""
        previous = decode(stored)
        await books.outbox.stage_again(previous)
        code = getattr(previous.data, "code", None)
        await books.audit.record(
            deciding.audit(
                "replayed",
                code=str(code.value) if code is not None else None,
                detail=f"result {previous.id} re-emitted",
                **self.replayed(previous.data),
            )
        )
        if self.metrics is not None:
            self.metrics.decisions.labels("replayed", "none").inc()


__all__ = ["Decision", "SignPipeline", "Signable", "SigningRequest", "SigningScheme", "result_event_id"]
