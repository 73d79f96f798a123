from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from prizeflow_contracts.events.audit import Role as AuditRole
from prizeflow_runtime.audit import admin_action, audit_roles
from prizeflow_runtime.auth import Role

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_the_audit_names_each_known_role_the_actor_holds_once() -> None:
    assert audit_roles([Role.OPS, "admin", Role.OPS, "player-of-the-year"]) == [AuditRole.ADMIN, AuditRole.OPS]


def test_an_action_is_recorded_on_its_target_in_the_targets_flow() -> None:
    envelope = admin_action(
        actor_user_id="ops-1",
        actor_roles=frozenset({Role.OPS}),
        action="claim.release",
        target_type="claim",
        target_id="cl-1",
        service="rewards",
        source="prizeflow/rewards",
        correlation_id="claim-flow-1",
        reason="checked the destination",
        before={"state": "held", "amount": 60_000},
        after={"state": "approved"},
        occurred_at=AT,
        causation_id="act-1",
        action_id="act-1",
    )
    audit = envelope.data
    assert (envelope.subject, envelope.correlationid, envelope.causationid) == ("cl-1", "claim-flow-1", "act-1")
    assert (audit.action_id, audit.actor_roles, audit.occurred_at) == ("act-1", [AuditRole.OPS], AT)
    assert audit.before == {"state": "held", "amount": "60000"}


def test_an_actor_without_a_known_role_cannot_be_audited_so_cannot_act() -> None:
    with pytest.raises(ValidationError):
        admin_action(
            actor_user_id="someone",
            actor_roles=["superuser", "root"],  # roles no contract knows
            action="round.void",
            target_type="round",
            target_id="r-1",
            service="settlement",
            source="prizeflow/settlement",
            correlation_id="r-1",
        )
