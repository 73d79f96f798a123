"""Admin API on real PostgreSQL + Kafka: the approval matrix, audit events, manual payouts, problem details."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from prizeflow_contracts.envelope import decode
from prizeflow_testkit import eventually, read_topic
from prizeflow_testkit.payouts import (
    books,
    fetch,
    providers_file,
    request_payout,
    running,
    settings_for,
    state_of,
    token,
    unique,
    wait_state,
)

pytestmark = pytest.mark.integration


async def test_approval_matrix_and_two_approver_path(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    key = unique("big")
    # The requester (an operator acting for the player) ALSO holds the approver role: still may not approve it.
    requester = token(settings, "alice", "admin", "approver")
    async with running(settings) as (_, client):
        pid = await request_payout(settings, key, amount=2_000 * 10**7, requested_by="alice")  # 2,000 USDC: dual
        assert await wait_state(db, key, "pending_approval") == "pending_approval"

        refusals = {
            "self": await client.post(f"/payouts/{pid}/approve", json={}, headers=requester),
            "player": await client.post(f"/payouts/{pid}/approve", json={}, headers=token(settings, "p-1", "player")),
            "ops": await client.post(f"/payouts/{pid}/approve", json={}, headers=token(settings, "olga", "ops")),
            "admin_only": await client.post(
                f"/payouts/{pid}/approve", json={}, headers=token(settings, "adam", "admin")
            ),
            "no_token": await client.post(f"/payouts/{pid}/approve", json={}),
        }
        assert {k: r.status_code for k, r in refusals.items()} == {
            "self": 403,
            "player": 403,
            "ops": 403,
            "admin_only": 403,
            "no_token": 401,
        }
        assert refusals["self"].json()["code"] == "self_approval"
        assert refusals["self"].headers["content-type"].startswith("application/problem+json")

        bob = token(settings, "bob", "approver")
        first = await client.post(
            f"/payouts/{pid}/approve", json={"reason": "looks right"}, headers={**bob, "X-Correlation-Id": "cr-bob-1"}
        )
        assert first.status_code == 200
        assert first.json()["state"] == "pending_approval"
        twice = await client.post(f"/payouts/{pid}/approve", json={}, headers=bob)
        assert twice.status_code == 409
        assert twice.json()["code"] == "already_approved"
        assert await wait_state(db, key, "pending_approval") == "pending_approval"

        carol = token(settings, "carol", "approver")
        second = await client.post(f"/payouts/{pid}/approve", json={"reason": "ok"}, headers=carol)
        assert second.status_code == 200
        assert second.json()["state"] == "approved"
        assert await wait_state(db, key, "paid") == "paid"

        detail = (await client.get(f"/payouts/{pid}", headers=token(settings, "olga", "ops"))).json()
        assert [a["approver_id"] for a in detail["approvals"]] == ["bob", "carol"]
        assert [h["to_state"] for h in detail["history"]] == [
            "pending_approval",
            "pending_approval",
            "approved",
            "submitting",
            "paid",
        ]
        assert len(detail["attempts"]) == 1

        # The payout's flow, in order: its states, its provider attempt and both approvals; never its destination.
        flow = (await client.get(f"/admin/timeline/corr-{key}", headers=token(settings, "olga", "ops"))).json()
        assert (flow["correlation_id"], flow["service"]) == (f"corr-{key}", "payouts")
        kinds = [(e["kind"], e["type"]) for e in flow["entries"]]
        assert [t for k, t in kinds if k == "state"] == [
            "payout.requested",
            "payout.pending_approval",
            "payout.pending_approval",
            "payout.approved",
            "payout.submitting",
            "payout.paid",
        ]
        assert kinds.count(("event", "payout.approval")) == 2
        # Each approval's audit record joins the payout's own flow (not the approver's request id).
        assert [t for k, t in kinds if k == "audit"].count("payout.approve") == 2
        assert ("event", "attempt.create") in kinds
        assert [e["at"] for e in flow["entries"]] == sorted(e["at"] for e in flow["entries"])
        assert all(e["subject"] == pid for e in flow["entries"])
        assert "success:p1" not in str(flow)
        assert "to a sandbox via" in flow["entries"][0]["summary"]  # the destination's type, not its address

        audit_topic = "prizeflow.audit.v1" + settings.kafka_topic_suffix

        async def audits() -> list[Any]:
            return [decode(r.value) for r in await read_topic(kafka_bootstrap, audit_topic)]

        events = await eventually(audits, lambda e: len(e) >= 2, timeout=20)
    actions = sorted((e.data.actor_user_id, e.data.action, e.data.after.get("approvals")) for e in events)
    assert actions == [("bob", "payout.approve", "1/2"), ("carol", "payout.approve", "2/2")]
    # An approval's audit joins the payout's own flow (round → claim → payout → audit under one correlation id),
    # whatever X-Correlation-Id the approver's request carried.
    by_bob = next(e for e in events if e.data.actor_user_id == "bob")
    assert by_bob.correlationid == f"corr-{key}"
    assert by_bob.data.reason == "looks right"
    assert (await books(db, key))["transfers"] == 1


async def test_one_person_never_satisfies_dual_approval_whatever_tokens_they_hold(
    db: str, kafka_bootstrap: str, tmp_path: Path, topic_suffix: str
) -> None:
    """A person is a token subject. A second token for the same `sub` with other roles is the same approver; the
    requester and the player the payout pays never decide, whatever roles their tokens carry."""
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    key = unique("dual")
    async with running(settings) as (_, client):
        # Eve's held claim was released by the reviewer Rita: Rita requested the payout, Eve is paid by it.
        pid = await request_payout(settings, key, amount=5_000 * 10**7, requested_by="rita", player_id="eve")
        assert await wait_state(db, key, "pending_approval") == "pending_approval"

        def approve(user: str, *roles: str) -> Any:
            return client.post(f"/payouts/{pid}/approve", json={}, headers=token(settings, user, *roles))

        refusals = {
            "paid_player_as_approver": await approve("eve", "approver"),
            "paid_player_as_approver_admin": await approve("eve", "approver", "admin", "player"),
            "requester_as_approver": await approve("rita", "approver", "ops"),
            "no_known_role": await approve("mallory", "superuser", "Approver"),
            "sub_with_a_space": await approve("bob ", "approver"),
        }
        assert {k: r.status_code for k, r in refusals.items()} == {
            "paid_player_as_approver": 403,
            "paid_player_as_approver_admin": 403,
            "requester_as_approver": 403,
            "no_known_role": 403,
            "sub_with_a_space": 401,
        }
        assert {refusals[k].json()["code"] for k in ("paid_player_as_approver", "requester_as_approver")} == {
            "self_approval"
        }
        eve_rejects = await client.post(
            f"/payouts/{pid}/reject", json={"reason": "mine"}, headers=token(settings, "eve", "approver")
        )
        assert (eve_rejects.status_code, eve_rejects.json()["code"]) == (403, "self_approval")

        # Bob approves once; his other tokens (other role sets, sent at once) are still Bob.
        assert (await approve("bob", "approver")).json()["state"] == "pending_approval"
        again = await asyncio.gather(
            approve("bob", "approver", "admin"), approve("bob", "approver", "ops"), approve("bob", "approver")
        )
        assert [(r.status_code, r.json()["code"]) for r in again] == [(409, "already_approved")] * 3
        assert await wait_state(db, key, "pending_approval") == "pending_approval"

        second = await approve("carol", "approver")
        assert second.json()["state"] == "approved"
        detail = (await client.get(f"/payouts/{pid}", headers=token(settings, "olga", "ops"))).json()
    assert [a["approver_id"] for a in detail["approvals"]] == ["bob", "carol"]


async def test_single_approval_reject_cancel_and_no_payout_without_a_reservation(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    admin = token(settings, "alice", "admin")
    approver = token(settings, "bob", "approver")
    async with running(settings) as (_, client):
        k1, k2 = unique("mid"), unique("mid")
        # Payouts are created only from PayoutRequested (rewards reserved the money first): there is no
        # admin route that pays money no reservation backs.
        forged = await client.post(
            "/payouts",
            json={"claim_id": "cl-x", "amount": {"asset": "USDC", "amount": 5}, "idempotency_key": k1},
            headers=admin,
        )
        assert forged.status_code == 405
        p1 = await request_payout(settings, k1, amount=500 * 10**7)  # single approver
        assert await wait_state(db, k1, "pending_approval") == "pending_approval"
        no_reason = await client.post(f"/payouts/{p1}/reject", json={}, headers=approver)
        assert no_reason.status_code == 400
        rejected = await client.post(f"/payouts/{p1}/reject", json={"reason": "fraud check"}, headers=approver)
        assert rejected.json()["state"] == "rejected"
        late = await client.post(f"/payouts/{p1}/approve", json={}, headers=approver)
        assert late.status_code == 409
        assert late.json()["code"] == "not_pending_approval"

        p2 = await request_payout(settings, k2, amount=500 * 10**7)
        ops_cancel = await client.post(
            f"/payouts/{p2}/cancel", json={"reason": "x"}, headers=token(settings, "o", "ops")
        )
        assert ops_cancel.status_code == 403
        cancelled = await client.post(f"/payouts/{p2}/cancel", json={"reason": "player asked"}, headers=admin)
        assert cancelled.json()["state"] == "cancelled"
        missing = await client.get("/payouts/po-nope", headers=admin)
        assert missing.status_code == 404
        assert missing.json()["code"] == "payout_not_found"
        listed = await client.get("/payouts", params={"state": "cancelled"}, headers=admin)
        assert [p["id"] for p in listed.json()["items"]] == [p2]
        providers = await client.get("/providers", headers=admin)
        text = providers.text
    assert "test-webhook-secret" not in text
    assert "PAYOUTS_TEST_SANDBOX_WEBHOOK_SECRET" not in text
    assert {p["name"] for p in providers.json()["providers"]} == {"sandbox", "manual"}


async def test_manual_provider_marked_paid_and_failed_by_ops(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    # An hour's backoff: only the operator retries the retryable failure below, the worker does not.
    hour = 3_600_000
    settings = settings_for(
        db,
        kafka_bootstrap,
        providers_file(tmp_path),
        topic_suffix=topic_suffix,
        payouts_retry_base_ms=hour,
        payouts_retry_max_ms=hour,
    )
    admin = token(settings, "alice", "admin")
    ops = token(settings, "olga", "ops")
    async with running(settings) as (_, client):
        k1, k2, k3 = unique("man"), unique("man"), unique("man")
        p1 = {"payout_id": await request_payout(settings, k1, amount=10**7, address="iban-1", dtype="manual")}
        p2 = {"payout_id": await request_payout(settings, k2, amount=10**7, address="iban-2", dtype="manual")}
        p3 = {"payout_id": await request_payout(settings, k3, amount=10**7, address="iban-3", dtype="manual")}
        for k in (k1, k2, k3):
            assert await wait_state(db, k, "submitted") == "submitted"
        player = await client.post(
            f"/payouts/{p1['payout_id']}/mark-paid",
            json={"reference": "bank-123"},
            headers=token(settings, "p", "player"),
        )
        assert player.status_code == 403
        paid = await client.post(f"/payouts/{p1['payout_id']}/mark-paid", json={"reference": "bank-123"}, headers=ops)
        assert paid.json()["state"] == "paid"
        twice = await client.post(f"/payouts/{p1['payout_id']}/mark-paid", json={"reference": "bank-124"}, headers=ops)
        assert twice.status_code == 409
        failed = await client.post(
            f"/payouts/{p2['payout_id']}/mark-failed",
            json={"reason": "account closed", "code": "account_closed"},
            headers=ops,
        )
        assert failed.json()["state"] == "failed"
        # A final failure: rewards gave the reservation back to the wallet. Another attempt would pay twice.
        retry = await client.post(f"/payouts/{p2['payout_id']}/retry", json={"reason": "fixed"}, headers=admin)
        cancel = await client.post(f"/payouts/{p2['payout_id']}/cancel", json={"reason": "fixed"}, headers=admin)
        for refused in (retry, cancel):
            assert (refused.status_code, refused.json()["code"]) == (409, "failure_final")
            assert refused.headers["content-type"].startswith("application/problem+json")
        assert "the reservation went back to the player's wallet" in retry.json()["detail"]
        assert "the player can claim again" in retry.json()["detail"]
        assert await state_of(db, k2) == "failed"
        # A retryable failure waiting for its backoff: the operator may give it its next attempt now.
        unavailable = await client.post(
            f"/payouts/{p3['payout_id']}/mark-failed",
            json={"reason": "bank offline", "code": "provider_unavailable"},
            headers=ops,
        )
        assert unavailable.json()["state"] == "failed"
        retried = await client.post(f"/payouts/{p3['payout_id']}/retry", json={"reason": "fixed"}, headers=admin)
        assert retried.json()["state"] == "approved"
        assert await wait_state(db, k3, "submitted") == "submitted"
        quote = await client.post(
            "/payouts/quote",
            json={"amount": {"asset": "USDC", "amount": 10**7}, "destination": {"type": "sandbox", "address": "x"}},
            headers=ops,
        )
        assert quote.status_code == 200
        assert quote.json()["provider"] == "sandbox"
    rows = await fetch(db, "SELECT provider_ref, state FROM payouts WHERE idempotency_key = $1", k1)
    assert (rows[0]["provider_ref"], rows[0]["state"]) == ("bank-123", "paid")
