"""RefuseUnreadableRequest: a signing request the signer cannot read still gets its one answer, at once.

It runs in the transaction that records the dead letter (the runtime's `on_refusal` hook). If the record names
a valid request id, that request's result is `SignatureRefused(malformed_request)` — or, if the request id was
decided before, the stored result again — so payouts hears now instead of at its transaction's time bound,
and a later readable copy of the same request gets the same answer (one outcome per request id).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from prizeflow_contracts.envelope import EventPayload, decode, event_id_for, new_event
from prizeflow_contracts.events.signer import (
    MAX_OPERATIONS,
    SignatureRefusalCode,
    SignatureRefused,
    TransactionSigned,
)
from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_signer.application.books import Books
from prizeflow_signer.application.ports import AuditRecord
from prizeflow_signer.application.sign_pipeline import result_event_id
from prizeflow_signer.metrics import SignerMetrics

log = logging.getLogger(__name__)

_ID: Final = re.compile(IDENTIFIER_PATTERN)
# A request the signer failed on while it could read it is not a verdict: payouts asks again, same request id.
NOT_ANSWERED_REASONS: Final = frozenset({"handler_failed"})
# Answering an answer (a result misrouted onto the requests topic) would put a second result on the request.
RESULT_TYPES: Final = frozenset({TransactionSigned.event_type(), SignatureRefused.event_type()})


@dataclass(frozen=True, slots=True)
class UnreadableRequest:
    """What a refused record still says: the request it belongs to, and why it was refused."""

    request_id: str
    payout_ids: tuple[str, ...]
    reason: str
    detail: str
    event_id: uuid.UUID | None
    correlation_id: str | None
    digest: bytes

    @classmethod
    def from_document(
        cls,
        doc: dict[str, Any] | None,
        *,
        reason: str,
        detail: str,
        event_id: uuid.UUID | None,
        correlation_id: str | None,
        digest: bytes,
    ) -> UnreadableRequest | None:
        """None unless the record is a JSON object whose `data.request_id` is a valid id."""
        if doc is None or reason in NOT_ANSWERED_REASONS:
            return None
        event_type = doc.get("type")
        if isinstance(event_type, str) and event_type in RESULT_TYPES:
            return None
        data = doc.get("data")
        if not isinstance(data, dict):
            return None
        request_id = data.get("request_id")
        if not isinstance(request_id, str) or _ID.fullmatch(request_id) is None:
            return None
        raw_ids = data.get("payout_ids")
        payout_ids: tuple[str, ...] = ()
        if (
            isinstance(raw_ids, list)
            and len(raw_ids) <= MAX_OPERATIONS
            and all(isinstance(p, str) and _ID.fullmatch(p) for p in raw_ids)
            and len(set(raw_ids)) == len(raw_ids)
        ):
            payout_ids = tuple(raw_ids)  # all or none: a partial list would misname the request
        return cls(request_id, payout_ids, reason, detail, event_id, correlation_id, digest)


@dataclass
class RefuseUnreadableRequest:
    backend_kind: str
    source: str
    # What the audit of a replay repeats of a stored answer (`SignPipeline.replayed`: the answer's own scheme says).
    replayed: Callable[[EventPayload], Mapping[str, str | None]]
    metrics: SignerMetrics | None = None

    async def __call__(self, books: Books, request: UnreadableRequest) -> None:
        """On the books of the transaction that records the dead letter."""
        event_id = request.event_id or event_id_for("signer-unreadable", request.digest.hex())
        correlation_id = request.correlation_id or request.request_id
        audit: dict[str, Any] = {
            "request_id": request.request_id,
            "event_id": str(event_id),
            "correlation_id": correlation_id,
            "backend": self.backend_kind,
            "payout_ids": request.payout_ids,
        }
        stored = await books.results.get(request.request_id)
        if stored is not None:
            previous = decode(stored)
            await books.outbox.stage_again(previous)
            code = getattr(previous.data, "code", None)
            await books.audit.record(
                AuditRecord(
                    decision="replayed",
                    code=str(code.value) if code is not None else None,
                    detail=f"unreadable copy ({request.reason}): result {previous.id} re-emitted",
                    **{**audit, **self.replayed(previous.data)},
                ),
            )
            self._count("replayed", "none")
            return
        why = f"the signing request could not be read ({request.reason}): {request.detail}"[:2000]
        payload = SignatureRefused(
            request_id=request.request_id,
            payout_ids=list(request.payout_ids),
            code=SignatureRefusalCode.MALFORMED_REQUEST,
            detail=why,
        )
        out = new_event(
            payload,
            source=self.source,
            correlation_id=correlation_id,
            causation_id=request.event_id,
            subject=request.request_id,
            event_id=result_event_id(request.request_id),
        )
        await books.results.save(request.request_id, "refused", out.model_dump_json())
        await books.audit.record(
            AuditRecord(decision="refused", code=SignatureRefusalCode.MALFORMED_REQUEST.value, detail=why, **audit)
        )
        await books.outbox.stage(out)
        self._count("refused", SignatureRefusalCode.MALFORMED_REQUEST.value)
        log.warning(
            "unreadable signature request refused",
            extra={"request_id": request.request_id, "reason": request.reason},
        )

    def _count(self, outcome: str, code: str) -> None:
        if self.metrics is not None:
            self.metrics.decisions.labels(outcome, code).inc()


__all__ = ["NOT_ANSWERED_REASONS", "RefuseUnreadableRequest", "UnreadableRequest"]
