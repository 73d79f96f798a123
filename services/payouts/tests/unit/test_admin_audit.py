"""A payout decision is audited with the roles its actor holds; an actor holding no known role is refused, never
recorded as an admin (the fallback that used to fill in `admin` is gone)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_payouts.application.admin import Actor, PayoutAdmin
from prizeflow_payouts.application.registry import ProviderRegistry
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.domain.payout import Payout
from prizeflow_payouts.domain.state import PayoutState

AT = datetime(2026, 1, 1, tzinfo=UTC)
RECORD = Payout(
    id="po-1", payout_request_id="pr-1", idempotency_key="k-1", request_hash="h", claim_id="cl-1",
    player_id="p-1", requested_by="p-1", asset="USDC", amount=10**10, destination_type="sandbox",
    destination_address="success:p", destination_memo=None, provider_type="sandbox", provider_name="sandbox",
    state=PayoutState.PENDING_APPROVAL, approval_policy=ApprovalPolicy.DUAL, correlation_id="c-1",
    cause_event_id=None, attempts=0, max_attempts=5, sync_first=False, sync_polls=0, provider_ref=None,
    tx_hash=None, last_error_code=None, created_at=AT,
)  # fmt: skip


def admin() -> PayoutAdmin:
    return PayoutAdmin(
        uow=None,  # type: ignore[arg-type]
        registry=ProviderRegistry([]),
        builder=ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy()),
        service="payouts",
    )


def audit_of(roles: frozenset[str]) -> Any:
    return admin()._audit(Actor("bob", roles, "c-1"), "payout.approve", RECORD, reason=None, after={}, now=AT)


@pytest.mark.parametrize("roles", [frozenset(), frozenset({"superuser", "Approver"})])
def test_an_actor_without_a_known_role_is_refused(roles: frozenset[str]) -> None:
    with pytest.raises(ValidationError, match="actor_roles"):
        audit_of(roles)


def test_the_audit_names_the_roles_the_actor_holds() -> None:
    assert audit_of(frozenset({"approver", "ops", "x"})).data.actor_roles == ["approver", "ops"]
