"""The Prizeflow webhook format (sandbox): validating is normalizing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from webhooks_fakes import sandbox_payout

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.webhooks import PaymentEventReceived, PaymentEventStatus, ProviderEventReceived
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails import prizeflow_events
from prizeflow_contracts.rails.reading import IgnoredReason, NormalizationError, Normalized

AT = datetime(2025, 6, 1, tzinfo=UTC)


def normalize(doc: dict[str, Any]) -> Normalized:
    return prizeflow_events.normalize(doc, provider=ProviderType.SANDBOX, digest="cd" * 32, received_at=AT)


def test_a_payout_event() -> None:
    got = normalize(sandbox_payout(status="failed", error_code="account_closed", kind="payout.failed"))
    assert isinstance(got.event, ProviderEventReceived)
    assert got.event.provider is ProviderType.SANDBOX
    assert got.event.verified
    assert got.event.status is ProviderPayoutStatus.FAILED
    assert got.event.error_code is PayoutErrorCode.ACCOUNT_CLOSED
    assert (got.event.provider_payout_ref, got.event.idempotency_key) == ("sbx-ref-1", "claim-1:payout:1")
    assert got.correlation_id == "c-claim-1"


def test_a_payout_event_without_status_is_informational() -> None:
    got = normalize(sandbox_payout(status=None, kind="payout.created"))
    assert isinstance(got.event, ProviderEventReceived)
    assert got.event.status is None


def test_a_payment_event() -> None:
    doc = {
        "event_id": "sbx-evt-2", "kind": "checkout.completed", "subject": "payment", "status": "paid",
        "top_up_id": "tu-1", "session_ref": "cs-1", "payment_ref": "pi-1", "amount": {"asset": "USD", "amount": 1000},
    }  # fmt: skip
    got = normalize(doc)
    assert isinstance(got.event, PaymentEventReceived)
    assert got.event.status is PaymentEventStatus.PAID
    assert got.event.amount == Money(asset="USD", amount=1000)
    assert got.correlation_id is None


def test_another_subject_is_ignored() -> None:
    got = normalize({"event_id": "sbx-evt-3", "kind": "account.updated", "subject": "account"})
    assert got.event is None
    assert got.ignored is IgnoredReason.KIND_NOT_HANDLED


@pytest.mark.parametrize(
    "doc",
    [
        sandbox_payout(event_id=""),
        sandbox_payout(event_id="has space"),
        sandbox_payout(kind="bad kind!"),
        sandbox_payout(correlation_id="bad id"),
        # An id with a newline after it matched `re.match` (Python's `$`), then the envelope refused it: a 500.
        sandbox_payout(correlation_id="c-claim-1\n"),
        sandbox_payout(event_id="sbx-evt-1\n"),
        sandbox_payout(kind="payout.paid\n"),
        sandbox_payout(status="teleported"),
        sandbox_payout(provider_ref=None, idempotency_key=None),
        sandbox_payout(error_code="account_closed"),  # an error code on a paid status
        {"event_id": "e", "kind": "k", "subject": "payment", "status": "paid", "top_up_id": "tu-1"},  # no amount
        {"event_id": "e", "kind": "k", "subject": "payment", "status": "paid", "top_up_id": "tu-1",
         "amount": {"asset": "USD", "amount": "10"}},  # money is a JSON integer
    ],
)  # fmt: skip
def test_a_body_breaking_the_contract_is_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(NormalizationError):
        normalize(doc)
