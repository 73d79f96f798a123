"""The one signing pipeline and its schemes, on the fake stores (a hot key: no HSM, no database): requests are
routed by type, a type without a scheme is refused as before, and what a replay's audit repeats of the stored
answer stays each scheme's own (the Stellar transaction and key; nothing for TON, whose raw key the audit's
column does not hold)."""

from __future__ import annotations

import pytest
from signer_fakes import SignerFakes
from signer_pipelines import STELLAR, pipeline

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.signer import (
    SignatureRequested,
    TonBatchSignatureRequested,
    TonMessageSigned,
    TonSignatureRequested,
    TransactionSigned,
)
from prizeflow_signer.application.ports import AuditRecord
from prizeflow_signer.application.schemes import HIGHLOAD, V4R2, StellarScheme, TonScheme, wallet_label
from prizeflow_signer.application.sign_pipeline import result_event_id
from prizeflow_testkit.events import example_payload


def envelope(payload: EventPayload) -> Envelope[EventPayload]:
    return new_event(payload, source="/prizeflow/payouts", correlation_id="flow-1")


@pytest.mark.parametrize("request_type", [TonSignatureRequested, TonBatchSignatureRequested])
async def test_a_request_type_without_its_scheme_is_refused_as_unknown(request_type: type[EventPayload]) -> None:
    fakes = SignerFakes()
    with pytest.raises(EventRefusal) as refused:
        await pipeline(StellarScheme(STELLAR))(fakes.books, envelope(example_payload(request_type)))
    assert refused.value.reason == "unknown_event_type"
    assert fakes.outbox.emitted == []
    assert fakes.audit.records == []


def test_one_scheme_per_request_type() -> None:
    with pytest.raises(ValueError, match="one signing scheme per request type"):
        pipeline(TonScheme(V4R2, None), TonScheme(V4R2, None))


async def test_a_ton_request_with_no_wallet_configured_is_refused_wrong_source_and_audited_under_the_wallet() -> None:
    fakes = SignerFakes()
    request = example_payload(TonBatchSignatureRequested)
    await pipeline(TonScheme(V4R2, None), TonScheme(HIGHLOAD, None))(fakes.books, envelope(request))
    (answer,) = fakes.outbox.emitted
    assert answer.id == result_event_id(request.request_id)
    assert getattr(answer.data, "code", None) == "wrong_source"
    assert "no highload TON wallet" in getattr(answer.data, "detail", "")
    (audit,) = fakes.audit.records
    assert (audit.decision, audit.code, audit.tx_hash, audit.amounts) == ("refused", "wrong_source", None, {})
    assert audit.source_account is not None
    assert len(audit.source_account) == 48  # the wallet's user-friendly form, for the 56-character column


async def replayed(request: SignatureRequested | TonSignatureRequested, answer: EventPayload) -> AuditRecord:
    """Decide `request` whose id was answered with `answer` before: the same answer out again, and its audit."""
    fakes = SignerFakes()
    stored = new_event(answer, source="/prizeflow/signer", correlation_id="flow-1")
    fakes.results.saved[request.request_id] = stored.model_dump_json()
    await pipeline(StellarScheme(STELLAR), TonScheme(V4R2, None))(fakes.books, envelope(request))
    assert [e.id for e in fakes.outbox.emitted] == [stored.id]
    (audit,) = fakes.audit.records
    assert (audit.decision, audit.detail) == ("replayed", f"result {stored.id} re-emitted")
    return audit


async def test_a_stellar_replay_audits_the_stored_transaction_and_key() -> None:
    request = example_payload(SignatureRequested)
    answer = example_payload(TransactionSigned, request_id=request.request_id)
    audit = await replayed(request, answer)
    assert (audit.tx_hash, audit.signed_by, audit.source_account) == (
        answer.tx_hash,
        answer.signed_by,
        request.source_account,
    )


async def test_a_ton_replay_audits_the_wallet_but_not_the_raw_key() -> None:
    request = example_payload(TonSignatureRequested)
    audit = await replayed(request, example_payload(TonMessageSigned, request_id=request.request_id))
    assert (audit.tx_hash, audit.signed_by) == (None, None)
    assert audit.source_account == wallet_label(request.wallet)
