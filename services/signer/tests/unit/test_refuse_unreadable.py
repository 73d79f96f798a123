"""RefuseUnreadableRequest on a fake store: which refused records get an answer, and that a request id gets one
outcome whatever arrives under it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from prizeflow_contracts.envelope import Envelope, decode, new_event
from prizeflow_contracts.events.signer import SignatureRefused, TransactionSigned
from prizeflow_signer.application.ports import AuditRecord
from prizeflow_signer.application.refuse_unreadable import RefuseUnreadableRequest, UnreadableRequest
from prizeflow_signer.application.sign_request import result_event_id
from prizeflow_signer.domain.policy import LiveSignature

DIGEST = b"\x01" * 32


@dataclass
class FakeStore:
    results: dict[str, str] = field(default_factory=dict)
    audits: list[AuditRecord] = field(default_factory=list)
    emitted: list[Envelope[Any]] = field(default_factory=list)

    async def stored_result(self, session: Any, request_id: str) -> str | None:
        return self.results.get(request_id)

    async def save_result(self, session: Any, request_id: str, outcome: str, envelope: str) -> None:
        assert request_id not in self.results
        self.results[request_id] = envelope

    async def lock_spending(self, session: Any) -> None:
        raise AssertionError("an unreadable request never reaches the caps")

    async def spent_in_window(self, session: Any, assets: Sequence[str]) -> dict[str, int]:
        raise AssertionError("an unreadable request never reaches the caps")

    async def record_spend(self, session: Any, request_id: str, amounts: Mapping[str, int]) -> None:
        raise AssertionError("nothing is spent")

    async def live_signatures(self, session: Any, payout_ids: Sequence[str]) -> dict[str, LiveSignature]:
        raise AssertionError("nothing is signed")

    async def record_signature(self, session: Any, **kw: Any) -> None:
        raise AssertionError("nothing is signed")

    async def audit(self, session: Any, record: AuditRecord) -> None:
        self.audits.append(record)

    async def emit(self, session: Any, envelope: Envelope[Any]) -> None:
        self.emitted.append(envelope)

    async def reemit(self, session: Any, envelope: Envelope[Any]) -> None:
        self.emitted.append(envelope)


def unreadable(doc: Any, reason: str = "invalid_payload") -> UnreadableRequest | None:
    return UnreadableRequest.from_document(
        doc, reason=reason, detail="data.intent: Field required", event_id=None, correlation_id=None, digest=DIGEST
    )


@pytest.mark.parametrize(
    ("doc", "reason", "request_id", "payout_ids"),
    [
        (
            {"data": {"request_id": "stx-1", "payout_ids": ["po-1", "po-2"]}},
            "invalid_payload",
            "stx-1",
            ("po-1", "po-2"),
        ),
        ({"data": {"request_id": "stx-1"}}, "unknown_event_type", "stx-1", ()),
        ({"data": {"request_id": "stx-1", "payout_ids": ["po-1", "bad id"]}}, "invalid_payload", "stx-1", ()),
        ({"data": {"request_id": "stx-1", "payout_ids": ["po-1", "po-1"]}}, "invalid_payload", "stx-1", ()),
        ({"data": {"request_id": "stx-1", "payout_ids": [{"x": 1}]}}, "invalid_payload", "stx-1", ()),
        ({"type": ["unhashable"], "data": {"request_id": "stx-1"}}, "unknown_event_type", "stx-1", ()),
    ],
)
def test_a_readable_request_id_is_answered(
    doc: dict[str, Any], reason: str, request_id: str, payout_ids: tuple[str, ...]
) -> None:
    got = unreadable(doc, reason)
    assert got is not None
    assert (got.request_id, got.payout_ids) == (request_id, payout_ids)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (None, "malformed_json"),
        ({"data": "stx-1"}, "invalid_payload"),
        ({"data": {"request_id": "bad id!"}}, "invalid_payload"),
        ({"data": {"request_id": 7}}, "invalid_payload"),
        ({"data": {"request_id": "stx-1"}}, "handler_failed"),  # readable: payouts asks again, same request id
        ({"type": TransactionSigned.event_type(), "data": {"request_id": "stx-1"}}, "unknown_event_type"),
        ({"type": SignatureRefused.event_type(), "data": {"request_id": "stx-1"}}, "unknown_event_type"),
    ],
)
def test_records_naming_no_request_or_not_a_request_are_only_dead_lettered(doc: Any, reason: str) -> None:
    assert unreadable(doc, reason) is None


async def test_the_refusal_is_the_requests_one_stored_result() -> None:
    store = FakeStore()
    refuse = RefuseUnreadableRequest(store=store, backend_kind="hot_key", source="/prizeflow/signer")
    request = unreadable({"data": {"request_id": "stx-1", "payout_ids": ["po-1"]}})
    assert request is not None
    await refuse(None, request)
    (out,) = store.emitted
    assert out.id == result_event_id("stx-1")
    refusal = decode(out.encode()).data
    assert isinstance(refusal, SignatureRefused)
    assert (refusal.code.value, refusal.payout_ids) == ("malformed_request", ["po-1"])
    assert "invalid_payload" in refusal.detail
    assert store.results["stx-1"] == out.model_dump_json()
    assert [(a.decision, a.code, tuple(a.payout_ids)) for a in store.audits] == [
        ("refused", "malformed_request", ("po-1",))
    ]
    # Another unreadable copy (other bytes): the same answer again, not a second one.
    again = UnreadableRequest.from_document(
        {"data": {"request_id": "stx-1"}},
        reason="invalid_envelope",
        detail="x",
        event_id=uuid.uuid4(),
        correlation_id="corr-1",
        digest=b"\x02" * 32,
    )
    assert again is not None
    await refuse(None, again)
    assert [e.id for e in store.emitted] == [out.id, out.id]
    assert [a.decision for a in store.audits] == ["refused", "replayed"]


async def test_an_unreadable_copy_of_a_signed_request_re_emits_the_signature() -> None:
    store = FakeStore()
    signed = TransactionSigned(
        request_id="stx-2",
        payout_ids=["po-2"],
        signed_xdr="AAAA",
        tx_hash="ab" * 32,
        signed_by="G" + "A" * 55,
    )
    previous = new_event(signed, source="/prizeflow/signer", correlation_id="c", event_id=result_event_id("stx-2"))
    store.results["stx-2"] = previous.model_dump_json()
    refuse = RefuseUnreadableRequest(store=store, backend_kind="hot_key", source="/prizeflow/signer")
    request = unreadable({"data": {"request_id": "stx-2"}})
    assert request is not None
    await refuse(None, request)
    (out,) = store.emitted
    assert out.id == previous.id
    assert isinstance(out.data, TransactionSigned)
    assert [(a.decision, a.tx_hash) for a in store.audits] == [("replayed", "ab" * 32)]
