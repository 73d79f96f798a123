"""A paid payout that comes back: `failed` after `paid` is a return on rails whose payouts can be returned
(capability `supports_returns`), and changes nothing on the others; a return publishes PayoutReturned only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.events.payouts import ApprovalPolicy, PayoutReturned
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    ProviderPayoutResult,
    ProviderPayoutStatus,
)
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.domain.payout import Payout
from prizeflow_payouts.domain.state import PayoutState, steps_for_provider_status

S = PayoutState
P = ProviderPayoutStatus
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "status", "returns", "steps"),
    [
        (S.PAID, P.FAILED, True, (S.RETURNED,)),  # a bank return of a paid payout
        (S.PAID, P.FAILED, False, ()),  # a rail that never returns: out of order, ignored
        (S.SUBMITTED, P.FAILED, True, (S.FAILED,)),  # failed before it was paid: an ordinary failure
        (S.RETURNED, P.FAILED, True, ()),  # a duplicate of the return
        (S.FAILED, P.FAILED, True, ()),
        (S.CANCELLED, P.FAILED, True, ()),
    ],
)
def test_failed_after_paid_is_a_return_only_where_payouts_can_come_back(
    current: PayoutState, status: ProviderPayoutStatus, returns: bool, steps: tuple[PayoutState, ...]
) -> None:
    assert steps_for_provider_status(current, status, returns=returns) == steps


def payout(state: PayoutState) -> Payout:
    return Payout(
        id="pay-1",
        payout_request_id="req-1",
        idempotency_key="key-1",
        request_hash="h",
        claim_id="claim-1",
        player_id="p-1",
        requested_by="rewards",
        asset="USD",
        amount=1_000,
        destination_type="stripe_account",
        destination_address="acct_1",
        destination_memo=None,
        provider_type="stripe",
        provider_name="stripe",
        state=state,
        approval_policy=ApprovalPolicy.AUTO,
        correlation_id="corr-1",
        cause_event_id=None,
        attempts=1,
        max_attempts=5,
        sync_first=False,
        sync_polls=0,
        provider_ref="po_1",
        tx_hash=None,
        last_error_code=None,
        created_at=NOW,
    )


def failed(code: PayoutErrorCode = PayoutErrorCode.ACCOUNT_CLOSED) -> ProviderPayoutResult:
    return ProviderPayoutResult(
        status=P.FAILED,
        idempotency_key="key-1",
        provider_ref="po_1",
        error=PayoutError.of(code, "stripe: payout failed (account_closed)", provider="stripe", retryable=False),
    )


def test_a_return_publishes_payout_returned_and_no_second_payout_paid() -> None:
    builder = ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy())
    change = builder.from_result(
        payout(S.PAID), S.PAID, failed(), now=NOW, actor="webhook:stripe", token=None, polls_status=True, returns=True
    )
    assert change is not None
    assert change.to is S.RETURNED
    assert change.paid_at is None  # the payout keeps the time it was paid
    assert [type(e.data).__name__ for e in change.events] == ["PayoutReturned"]
    returned = change.events[0].data
    assert isinstance(returned, PayoutReturned)
    assert returned.returned_amount == payout(S.PAID).money
    assert "account_closed" in returned.reason
    assert [(h.from_state, h.to_state) for h in change.history] == [(S.PAID, S.RETURNED)]


def test_a_rail_without_returns_ignores_a_late_failure() -> None:
    builder = ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy())
    kw = {"now": NOW, "actor": "webhook:x", "token": None, "polls_status": True}
    assert builder.from_result(payout(S.PAID), S.PAID, failed(), **kw) is None  # type: ignore[arg-type]


def test_a_returned_status_of_a_submitted_payout_still_publishes_paid_then_returned() -> None:
    builder = ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy())
    result = ProviderPayoutResult(status=P.RETURNED, idempotency_key="key-1", provider_ref="tr_1")
    change = builder.from_result(
        payout(S.SUBMITTED), S.SUBMITTED, result, now=NOW, actor="w", token=None, polls_status=True
    )
    assert change is not None
    assert [type(e.data).__name__ for e in change.events] == ["PayoutPaid", "PayoutReturned"]
    assert change.paid_at == NOW


def test_the_lookup_a_sync_or_cancel_gets_carries_the_payout_s_amount_and_destination() -> None:
    """So a rail can tell its payout's order from another one under the same id (never paid from a foreign one)."""
    rec = payout(PayoutState.SUBMITTED)
    found = rec.lookup()
    assert (found.payout_id, found.idempotency_key, found.provider_ref) == ("pay-1", "key-1", "po_1")
    assert found.amount == Money(asset="USD", amount=1_000)
    assert found.destination == PayoutDestination(type=DestinationType.STRIPE_ACCOUNT, address="acct_1")
