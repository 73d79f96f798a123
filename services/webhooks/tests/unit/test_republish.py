"""`RepublishDelivery` on fakes: a new envelope id, the same payload, audited in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from webhooks_fakes import (
    SANDBOX,
    SANDBOX_SECRET,
    FakeDeliveries,
    WebhooksFakes,
    ingress,
    metrics,
    sandbox_payout,
    signed,
)

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_webhooks.application.ports import StoredDelivery
from prizeflow_webhooks.application.republish import Actor, RepublishDelivery

OPS = Actor("ops-1", ("ops",))


async def stored_delivery() -> StoredDelivery:
    uc, writer, _, _ = ingress()
    await uc(SANDBOX, *signed(SANDBOX_SECRET, sandbox_payout()))
    d = writer.deliveries[("sandbox", "sbx-evt-1")]
    return StoredDelivery(7, d.provider, d.provider_event_id, d.outcome, d.event_json, d.correlation_id, 0)


async def test_republish_stages_the_same_payload_under_a_new_id_with_its_audit_record() -> None:
    row = await stored_delivery()
    fakes = WebhooksFakes(deliveries=FakeDeliveries({7: row}))
    at = datetime(2025, 6, 2, tzinfo=UTC)
    republish = RepublishDelivery(fakes.uow, "/prizeflow/webhooks", "webhooks", metrics(), clock=lambda: at)
    out = await republish(7, reason="payouts lost its offsets", actor=OPS)
    event, audit = (decode(e.payload) for e in fakes.outbox.staged)
    assert row.event_json is not None
    original = decode(row.event_json)
    assert event.id != original.id
    assert str(event.id) == out["event_id"]
    assert event.data == original.data
    assert event.correlationid == original.correlationid
    assert event.source == "/prizeflow/webhooks"
    assert isinstance(audit.data, AdminActionRecorded)
    assert audit.data.action == "delivery.republish"
    assert audit.data.target_id == "7"
    assert audit.data.reason == "payouts lost its offsets"
    assert audit.data.actor_user_id == "ops-1"
    assert audit.data.after["event_id"] == out["event_id"]
    assert event.causationid == audit.data.action_id
    assert fakes.deliveries.rows[7].republished == 1
    assert out["republished"] == 1


async def test_republish_refuses_an_unknown_or_ignored_delivery_and_changes_nothing() -> None:
    row = await stored_delivery()
    ignored = StoredDelivery(8, "sandbox", "e-ign", "ignored", None, "c-1", 0)
    fakes = WebhooksFakes(deliveries=FakeDeliveries({7: row, 8: ignored}))
    republish = RepublishDelivery(fakes.uow, "/prizeflow/webhooks", "webhooks")
    with pytest.raises(UseCaseError) as missing:
        await republish(9, reason="r", actor=OPS)
    assert missing.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(UseCaseError) as nothing:
        await republish(8, reason="r", actor=OPS)
    assert nothing.value.kind is ErrorKind.CONFLICT
    assert nothing.value.code == "nothing_to_publish"
    assert fakes.outbox.staged == []


async def test_an_actor_without_a_role_is_refused_by_the_audit_contract() -> None:
    fakes = WebhooksFakes(deliveries=FakeDeliveries({7: await stored_delivery()}))
    republish = RepublishDelivery(fakes.uow, "/prizeflow/webhooks", "webhooks")
    with pytest.raises(ValueError, match="actor_roles"):
        await republish(7, reason="r", actor=Actor("nobody", ()))
    assert fakes.outbox.staged == []
    assert fakes.deliveries.rows[7].republished == 0
