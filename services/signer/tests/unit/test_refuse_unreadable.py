"""RefuseUnreadableRequest on the fake stores: which refused records get an answer, and that a request id gets one
outcome whatever arrives under it."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest
from signer_fakes import FakeSignatureStore, FakeSpendStore, SignerFakes
from signer_pipelines import STELLAR, pipeline

from prizeflow_contracts.envelope import decode, new_event
from prizeflow_contracts.events.signer import SignatureRefused, TonMessageSigned, TransactionSigned
from prizeflow_signer.application.refuse_unreadable import RefuseUnreadableRequest, UnreadableRequest
from prizeflow_signer.application.schemes import HIGHLOAD, V4R2, StellarScheme, TonScheme
from prizeflow_signer.application.sign_pipeline import result_event_id

DIGEST = b"\x01" * 32


class Untouchable:
    """A store an unreadable request must never reach."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(self.why)


def fakes_for_refusals() -> SignerFakes:
    """The books of an unreadable request: it never reaches the caps, nothing is signed or spent."""
    fakes = SignerFakes()
    caps = cast("FakeSpendStore", Untouchable("an unreadable request never reaches the caps"))
    signed = cast("FakeSignatureStore", Untouchable("nothing is signed"))
    return SignerFakes(results=fakes.results, spend=caps, signatures=signed, audit=fakes.audit, outbox=fakes.outbox)


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


def refuser() -> RefuseUnreadableRequest:
    """As bootstrap builds it: a replay's audit repeats what the stored answer's own scheme says."""
    schemes = [StellarScheme(STELLAR), TonScheme(V4R2, None), TonScheme(HIGHLOAD, None)]
    return RefuseUnreadableRequest(
        backend_kind="hot_key", source="/prizeflow/signer", replayed=pipeline(*schemes).replayed
    )


async def test_the_refusal_is_the_requests_one_stored_result() -> None:
    fakes = fakes_for_refusals()
    refuse = refuser()
    request = unreadable({"data": {"request_id": "stx-1", "payout_ids": ["po-1"]}})
    assert request is not None
    await refuse(fakes.books, request)
    (out,) = fakes.outbox.emitted
    assert out.id == result_event_id("stx-1")
    refusal = decode(out.encode()).data
    assert isinstance(refusal, SignatureRefused)
    assert (refusal.code.value, refusal.payout_ids) == ("malformed_request", ["po-1"])
    assert "invalid_payload" in refusal.detail
    assert fakes.results.saved["stx-1"] == out.model_dump_json()
    assert [(a.decision, a.code, tuple(a.payout_ids)) for a in fakes.audit.records] == [
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
    await refuse(fakes.books, again)
    assert [e.id for e in fakes.outbox.emitted] == [out.id, out.id]
    assert [a.decision for a in fakes.audit.records] == ["refused", "replayed"]


async def test_an_unreadable_copy_of_a_signed_request_re_emits_the_signature() -> None:
    fakes = fakes_for_refusals()
    signed = TransactionSigned(
        request_id="stx-2",
        payout_ids=["po-2"],
        signed_xdr="AAAA",
        tx_hash="ab" * 32,
        signed_by="G" + "A" * 55,
    )
    previous = new_event(signed, source="/prizeflow/signer", correlation_id="c", event_id=result_event_id("stx-2"))
    fakes.results.saved["stx-2"] = previous.model_dump_json()
    refuse = refuser()
    request = unreadable({"data": {"request_id": "stx-2"}})
    assert request is not None
    await refuse(fakes.books, request)
    (out,) = fakes.outbox.emitted
    assert out.id == previous.id
    assert isinstance(out.data, TransactionSigned)
    assert [(a.decision, a.tx_hash) for a in fakes.audit.records] == [("replayed", "ab" * 32)]


async def test_an_unreadable_copy_of_a_signed_ton_message_re_emits_it_and_audits_no_raw_key() -> None:
    """A TON answer names its key as raw hex (64 characters), which the audit's 56-character `signed_by` cannot hold:
    the replay audits what the TON scheme's own replay does (nothing of the key), so the dead letter's transaction
    commits and the stored answer goes out again (it used to fail on PostgreSQL, holding the partition)."""
    fakes = fakes_for_refusals()
    signed = TonMessageSigned(
        request_id="ton-3", payout_ids=["po-3"], signed_boc="te6c", message_hash="cd" * 32, signed_by="ab" * 32
    )
    previous = new_event(signed, source="/prizeflow/signer", correlation_id="c", event_id=result_event_id("ton-3"))
    fakes.results.saved["ton-3"] = previous.model_dump_json()
    request = unreadable({"data": {"request_id": "ton-3"}})
    assert request is not None
    await refuser()(fakes.books, request)
    (out,) = fakes.outbox.emitted
    assert out.id == previous.id
    assert [(a.decision, a.tx_hash, a.signed_by) for a in fakes.audit.records] == [("replayed", None, None)]
