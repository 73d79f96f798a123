"""Provider conformance: every payout rail (`prizeflow_testkit.conformance.HARNESSES`) passes the same scenarios,
end to end through the payouts service on real PostgreSQL and Kafka. Test ids are `<provider>-<scenario>`.

A rail that cannot have a scenario says why (`ProviderHarness.unsupported`); for the scenarios a capability
governs (cancel, webhooks) the kit then checks the provider refuses them properly; for the others it checks
what the rail claims instead (nothing stays pending, nothing is called out). Nothing is skipped. Success,
failure, error codes, capabilities and secrets can never be waived.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.events.payouts import PayoutFailed
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutStatus,
    RewardPayoutProvider,
)
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_runtime.dead_letters import DLQ_REASON
from prizeflow_testkit import eventually, header, read_topic
from prizeflow_testkit.conformance import (
    DISCREPANCIES,
    FINAL_STATES,
    HARNESSES,
    Behaviour,
    Kit,
    LogCapture,
    Scenario,
    provider_event,
    rendered,
)
from prizeflow_testkit.payouts import RECON_SLACK_S

pytestmark = pytest.mark.integration

B = Behaviour
WEBHOOKS: Final = "prizeflow.webhooks.provider-events.v1"
NEVER_WAIVED: Final = frozenset(
    {
        Scenario.CAPABILITIES,
        Scenario.SUCCESS,
        Scenario.FAILURE,
        Scenario.NOT_CANCELLABLE_AFTER_PAID,
        Scenario.ERROR_CODES,
        Scenario.SECRETS_NOT_LOGGED,
        Scenario.RECONCILIATION,
    }
)


def names(events: list[Envelope[Any]]) -> list[str]:
    return [e.type.split(".")[2] for e in events]


async def pay(kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
    """A payout the rail will treat so, requested and handed to the rail (and its operator)."""
    h = kit.harness
    key = await kit.request(await h.destination(kit, behaviour, code))
    await h.after_request(kit, key, behaviour, code)
    return key


async def pending(kit: Kit) -> str:
    """A payout the rail holds pending: submitted, and still so after payouts asked about it (where it asks)."""
    key = await pay(kit, B.STAY_PENDING)
    await kit.wait_state(key, "submitted")
    if kit.parts.config.registry.get(kit.harness.name).polls_status:
        await kit.wait_row(key, lambda r: r["sync_polls"] >= 2)
    assert await kit.state(key) == "submitted"
    assert await kit.harness.payments(kit, key) == 0
    return key


def settled(row: dict[str, Any]) -> bool:
    """Paid, or anything else for good (a failure waiting for its retry is not settled)."""
    return row.get("state") in FINAL_STATES and not (row["state"] == "failed" and row["next_attempt_at"])


async def paid_once(kit: Kit, key: str, *, timeout: float = 30.0) -> list[Envelope[Any]]:
    row = await kit.wait_row(key, settled, timeout=timeout)
    assert row["state"] == "paid", (row["state"], await kit.attempts(key))
    events = await kit.wait_events(key, "PayoutPaid")
    assert names(events).count("PayoutPaid") == 1, names(events)
    assert [to for _, to in await kit.history(key)].count("paid") == 1
    assert await kit.harness.payments(kit, key) == 1
    return events


# -- scenarios --------------------------------------------------------------------------------------------------
async def capabilities(kit: Kit) -> None:
    h, provider = kit.harness, kit.provider
    assert isinstance(provider, RewardPayoutProvider)
    assert provider.provider_type is h.provider_type
    caps = kit.capabilities  # derived from the rail's parts: what the admin API lists
    claimed = (caps.supports_cancel, caps.supports_quote, caps.supports_webhooks, caps.async_confirmation)
    c = h.claims
    assert claimed == (c.supports_cancel, c.supports_quote, c.supports_webhooks, c.async_confirmation)
    assert h.asset in caps.assets
    assert h.destination_type in caps.destination_types
    # What a capability rules out, the harness cannot claim to test, and the other way round.
    assert (h.unsupported(Scenario.CANCEL) is None) is caps.supports_cancel
    if not caps.supports_webhooks:
        assert h.unsupported(Scenario.DUPLICATE_WEBHOOK)
        assert h.unsupported(Scenario.STALE_WEBHOOK)
    if h.unsupported(Scenario.PENDING) is None:
        assert caps.async_confirmation, "a payout that can stay pending is confirmed later"
    assert not [s for s in NEVER_WAIVED if h.unsupported(s) is not None]
    listed = (await kit.client.get("/providers", headers=kit.admin)).json()["providers"]
    assert [p["capabilities"] for p in listed if p["name"] == h.name] == [caps.model_dump(mode="json")]
    address = await h.destination(kit, B.SUCCEED)
    body = {
        "amount": {"asset": h.asset, "amount": h.amount},
        "destination": {"type": h.destination_type, "address": address},
    }
    answer = await kit.client.post("/payouts/quote", json=body, headers=kit.admin)
    kit.answers.append(answer)
    instruction = PayoutInstruction(
        payout_id="kit-quote",
        idempotency_key="kit-quote",
        amount=Money(asset=h.asset, amount=h.amount),
        destination=PayoutDestination(type=h.destination_type, address=address),
    )
    if caps.supports_quote:
        assert answer.status_code == 200, answer.text
        assert answer.json()["amount"] == {"asset": h.asset, "amount": h.amount}
        assert (await provider.quote(instruction)).amount == instruction.amount
    else:
        assert answer.json()["code"] == "unsupported_operation", answer.text
        with pytest.raises(PayoutProviderError) as err:
            await provider.quote(instruction)
        assert err.value.code is PayoutErrorCode.UNSUPPORTED_OPERATION


async def success(kit: Kit) -> None:
    key = await pay(kit, B.SUCCEED)
    events = await paid_once(kit, key)
    assert names(events)[0] == "PayoutCreated"
    assert "PayoutFailed" not in names(events)


async def pending_then_completed(kit: Kit) -> None:
    key = await pending(kit)
    assert "PayoutSubmitted" in names(await kit.wait_events(key, "PayoutSubmitted"))
    await kit.harness.complete(kit, key)
    await paid_once(kit, key)


async def failure(kit: Kit) -> None:
    h = kit.harness
    code = h.terminal_codes()[0]
    key = await pay(kit, B.FAIL, code)
    assert (await kit.wait_row(key, settled))["state"] == "failed"
    events = await kit.wait_events(key, "PayoutFailed")
    failed = [e.data for e in events if isinstance(e.data, PayoutFailed)]
    assert [(f.code, f.final, f.retryable) for f in failed] == [(code, True, False)]
    row = await kit.row(key)
    assert (row["last_error_code"], row["next_attempt_at"]) == (code.value, None)
    assert "PayoutPaid" not in names(events)
    assert await h.payments(kit, key) == 0


async def retry(kit: Kit) -> None:
    key = await pay(kit, B.TRANSIENT_THEN_SUCCEED)
    events = await paid_once(kit, key)
    assert all(not e.data.final for e in events if isinstance(e.data, PayoutFailed))
    assert await kit.harness.rail_attempts(kit, key) >= 2


async def duplicate_webhook(kit: Kit) -> None:
    h = kit.harness
    key = await pending(kit)
    counted = kit.metric("prizeflow_payouts_webhooks_total", provider=h.provider_type.value, outcome="duplicate")
    # The rail delivers the same event twice: the ingress publishes it twice (two envelopes, one event id).
    deliveries = [await h.webhook(kit, key, ProviderPayoutStatus.PAID) for _ in range(2)]
    assert deliveries[0].id != deliveries[1].id
    event_id = deliveries[0].data.provider_event_id
    assert deliveries[1].data.provider_event_id == event_id
    await kit.publish_provider_events(deliveries)
    await paid_once(kit, key)

    def duplicates() -> float:
        return kit.metric("prizeflow_payouts_webhooks_total", provider=h.provider_type.value, outcome="duplicate")

    async def probe() -> float:
        return duplicates()

    await eventually(probe, lambda n: n == counted + 1, timeout=20)
    # The first delivery moved the payout (or found it already moved by a status sync): recorded once.
    assert (await kit.provider_events([event_id]))[event_id] in ("applied", "stale")


async def stale_webhook(kit: Kit) -> None:
    h = kit.harness
    key = await pending(kit)
    await kit.publish_provider_events([await h.webhook(kit, key, ProviderPayoutStatus.PAID)])
    await paid_once(kit, key)
    before = await kit.events(key)
    # The rail's earlier event (still pending), delivered late: after the one that paid it.
    late = await h.webhook(kit, key, ProviderPayoutStatus.PENDING)
    older = late.data.provider_event_id
    await kit.publish_provider_events([late])

    async def probe() -> dict[str, str]:
        return await kit.provider_events([older])

    # Stale (an older status), or no status at all (the ingress leaves out what says nothing new).
    assert (await eventually(probe, lambda r: older in r, timeout=20))[older] in ("stale", "no_status")
    assert await kit.state(key) == "paid"
    assert names(await kit.events(key)) == names(before)
    await paid_once(kit, key)


async def webhooks_refused(kit: Kit, reason: str) -> None:
    """A rail without webhooks: its provider refuses to parse one, and an event for it moves nothing."""
    h = kit.harness
    assert not kit.capabilities.supports_webhooks, reason
    with pytest.raises(PayoutProviderError) as err:
        await kit.provider.parse_webhook({"content-type": "application/json"}, b"{}")
    assert err.value.code is PayoutErrorCode.UNSUPPORTED_OPERATION
    key = await pending(kit)
    letters = len(await kit.dead_letters(WEBHOOKS))
    event_id = f"evt-{uuid.uuid4().hex[:12]}"
    forged = provider_event(
        provider=h.provider_type,
        event_id=event_id,
        key=key,
        status=ProviderPayoutStatus.PAID,
        kind="payout.paid",
        body=b'{"status": "paid"}',
    )
    await kit.publish_provider_events([forged])

    async def refused() -> list[Any]:
        return await kit.dead_letters(WEBHOOKS)

    dead = await eventually(refused, lambda r: len(r) > letters, timeout=20)
    assert header(dead[-1], DLQ_REASON) == "unverified_provider_event"
    assert await kit.state(key) == "submitted"
    assert await kit.provider_events([event_id]) == {}
    await kit.harness.complete(kit, key)  # the rail's own way still pays it, once
    await paid_once(kit, key)


async def outage(kit: Kit) -> None:
    h = kit.harness
    key = await pay(kit, B.OUTAGE)

    async def felt() -> bool:
        return await h.outage_felt(kit, key)

    await eventually(felt, bool, timeout=30, interval=0.05)
    assert await kit.state(key) != "paid"
    assert await h.payments(kit, key) == 0
    await h.heal(kit)
    events = await paid_once(kit, key, timeout=60)
    assert all(not e.data.final for e in events if isinstance(e.data, PayoutFailed))


async def timeout_after_success(kit: Kit) -> None:
    key = await pay(kit, B.TIMEOUT_AFTER_SUCCESS)
    await paid_once(kit, key, timeout=60)
    creates = [a for a in await kit.attempts(key) if a["kind"] == "create"]
    assert len(creates) == 1, creates  # found by a sync with the same key, never created twice


async def cancel(kit: Kit) -> None:
    h = kit.harness
    key = await pending(kit)
    resp = await kit.cancel(key)
    assert resp.status_code == 200, resp.text
    assert await kit.state(key) == "cancelled"
    events = await kit.wait_events(key, "PayoutCancelled")
    assert "PayoutPaid" not in names(events)
    assert await h.payments(kit, key) == 0


async def cancel_refused(kit: Kit, reason: str) -> None:
    """A rail that cannot cancel: its provider says `unsupported_operation`, payouts answers 409, nothing moves."""
    h = kit.harness
    assert not kit.capabilities.supports_cancel, reason
    held = h.unsupported(Scenario.PENDING) is None
    key = await pending(kit) if held else await pay(kit, B.SUCCEED)
    state = await kit.wait_state(key, "submitted" if held else "paid")
    with pytest.raises(PayoutProviderError) as err:
        await kit.provider.cancel(PayoutLookup(payout_id=payout_id_for(key), idempotency_key=key))
    assert err.value.code is PayoutErrorCode.UNSUPPORTED_OPERATION
    resp = await kit.cancel(key)
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"] == "not_cancellable"
    assert await kit.state(key) == state
    if held:
        await h.complete(kit, key)
    await paid_once(kit, key)


async def not_cancellable_after_paid(kit: Kit) -> None:
    key = await pay(kit, B.SUCCEED)
    await paid_once(kit, key)
    resp = await kit.cancel(key)
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"] == "not_cancellable"
    assert await kit.state(key) == "paid"
    assert "PayoutCancelled" not in names(await kit.events(key))


async def error_codes(kit: Kit) -> None:
    """Each failure the rail reports maps to its stable code: terminal ones fail the payout at once, retryable
    ones are retried (then cancelled here, to end them)."""
    h = kit.harness
    assert h.terminal_codes(), "every rail can fail a payout for good"
    final = [(c, await kit.request(await h.destination(kit, B.FAIL, c))) for c in h.terminal_codes()]
    again = [(c, await kit.request(await h.destination(kit, B.FAIL, c))) for c in h.retryable_codes()]
    await asyncio.gather(*(h.after_request(kit, key, B.FAIL, c) for c, key in [*final, *again]))

    async def terminal_failure(code: PayoutErrorCode, key: str) -> None:
        assert (await kit.wait_row(key, settled, timeout=60))["state"] == "failed", code
        failed = [e.data for e in await kit.wait_events(key, "PayoutFailed") if isinstance(e.data, PayoutFailed)]
        assert [(f.code, f.final) for f in failed] == [(code, True)], code
        assert (await kit.row(key))["attempts"] == 1, code
        assert await h.payments(kit, key) == 0, code

    async def retried(code: PayoutErrorCode, key: str) -> None:
        await kit.wait_row(key, lambda r: r["attempts"] >= 2, timeout=60)
        failed = [e.data for e in await kit.wait_events(key, "PayoutFailed") if isinstance(e.data, PayoutFailed)]
        assert (failed[0].code, failed[0].final, failed[0].retryable) == (code, False, True), code
        resp = await kit.cancel(key)
        assert resp.status_code == 200, (code, resp.text)
        assert await h.payments(kit, key) == 0, code

    await asyncio.gather(*(terminal_failure(c, k) for c, k in final), *(retried(c, k) for c, k in again))


async def secrets_not_logged(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    """Whatever the rail is configured with, no secret reaches a log line, a problem detail or an event."""
    h = kit.harness
    caplog.set_level(logging.DEBUG)
    ok = await pay(kit, B.SUCCEED)
    ko = await pay(kit, B.FAIL, h.terminal_codes()[0])
    await paid_once(kit, ok)
    assert (await kit.wait_row(ko, settled))["state"] == "failed"
    refusals = []
    if kit.capabilities.supports_webhooks:
        for headers in ({}, {"stripe-signature": "t=1,v1=00", "prizeflow-signature": "t=1,v1=" + "0" * 64}):
            with pytest.raises(PayoutProviderError) as err:
                await kit.provider.parse_webhook(headers, b'{"event_id": "evt-forged"}')  # unsigned, badly signed
            assert err.value.code is PayoutErrorCode.WEBHOOK_SIGNATURE_INVALID
            refusals.append(f"{err.value} {err.value.error.model_dump_json()}")
    for path in ("/providers", f"/payouts/{payout_id_for(ok)}", f"/payouts/{payout_id_for(ko)}", "/payouts/nope"):
        kit.answers.append(await kit.client.get(path, headers=kit.admin))
    kit.answers.append(await kit.post(ok, "mark-failed", {"reason": "too late", "code": "tx_failed"}))
    secrets = [*h.secrets(), kit.admin["Authorization"].removeprefix("Bearer ")]
    capture = kit.extra["log"]
    assert isinstance(capture, LogCapture)
    topics = ["prizeflow.payouts.events.v1", "prizeflow.audit.v1", WEBHOOKS]
    events = [r.value.decode() for t in topics for r in await read_topic(kit.kafka, kit.topic(t))]
    places = {
        "logs of this scenario": rendered(caplog.records),
        "logs of the whole module": rendered(capture.records),
        "problem details and answers": "\n".join(a.text for a in kit.answers),
        "events": "\n".join(events),
        "webhook refusals": "\n".join(refusals),
        **{str(p): p.read_text(errors="replace") for p in h.log_files(kit)},
    }
    assert any("problem" in a.headers.get("content-type", "") for a in kit.answers)
    for secret in secrets:
        assert len(secret) >= 16
        leaks = [where for where, text in places.items() if secret in text or json.dumps(secret)[1:-1] in text]
        assert not leaks, f"a secret of {h.name} is in: {leaks}"


async def _run(kit: Kit, since: datetime, until: datetime) -> dict[str, Any]:
    answer = await kit.client.post(
        "/reconciliation/runs",
        json={"provider": kit.harness.name, "since": since.isoformat(), "until": until.isoformat()},
        headers=kit.admin,
    )
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    assert run["state"] == "completed", run
    return run


async def _exceptions(kit: Kit) -> list[dict[str, Any]]:
    answer = await kit.client.get(
        "/reconciliation/exceptions", params={"provider": kit.harness.name, "limit": 500}, headers=kit.admin
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["exceptions"]
    return found


async def _closed_since(at: datetime) -> datetime:
    """A window's end at `at`, once it ended the slack ago (a window is reconciled once its late lines are listed)."""

    async def now() -> datetime:
        return datetime.now(UTC)

    await eventually(now, lambda t: t > at + timedelta(seconds=RECON_SLACK_S), timeout=15.0)
    return at


async def reconciliation(kit: Kit) -> None:
    """The rail's statement against our payouts: a clean window finds nothing; then each discrepancy the
    provider's books can show is found exactly once and classified right, and running again (the same window,
    or one overlapping it) finds none of them twice."""
    h = kit.harness
    t0 = datetime.now(UTC)
    clean = [await pay(kit, B.SUCCEED) for _ in range(2)]
    for key in clean:
        await paid_once(kit, key)
    t1 = await _closed_since(datetime.now(UTC))
    run = await _run(kit, t0, t1)
    assert (run["exceptions"], run["matched"]) == (0, 2), (run, await _exceptions(kit))
    assert await _exceptions(kit) == []
    paid = {t["asset"]: t["ours_paid"] for t in run["totals"]}
    assert paid[h.asset] == 2 * h.amount, run["totals"]  # (fees may add a line of the network's asset)
    assert sum(paid.values()) == 2 * h.amount

    kinds = [k for k in DISCREPANCIES if k not in h.discrepancies_waived()]
    about: dict[str, str] = {}
    for kind in kinds:
        if kind == "unrequested":
            continue
        key = await pay(kit, B.SUCCEED)
        await paid_once(kit, key)
        about[kind] = (await kit.row(key))["id"]
        await h.inject(kit, kind, key)
    if "unrequested" in kinds:
        await h.inject(kit, "unrequested", None)
    # The window ends a moment after the injections: a chain lands them with its next ledger.
    t2 = await _closed_since(datetime.now(UTC) + timedelta(seconds=2))
    second = await _run(kit, t1, t2)
    found = await _exceptions(kit)
    got = sorted((e["kind"], e["payout_id"]) for e in found)
    if not h.fees_name_payouts:
        about.pop("fee", None)
    expected = sorted((DISCREPANCIES[k], about.get(k)) for k in kinds)
    assert got == expected, (h.name, [g for g in got if g not in expected], [e for e in expected if e not in got])
    assert second["exceptions"] == len(expected)
    assert all(e["state"] == "open" and e["theirs"] is not None for e in found)
    # Again: the same window is the same run; an overlapping one finds nothing new.
    assert (await _run(kit, t1, t2))["run_id"] == second["run_id"]
    await _run(kit, t0, t2)
    assert sorted((e["kind"], e["payout_id"]) for e in await _exceptions(kit)) == expected


SCENARIOS: Final[dict[Scenario, Callable[[Kit], Awaitable[None]]]] = {
    Scenario.CAPABILITIES: capabilities,
    Scenario.SUCCESS: success,
    Scenario.PENDING: pending_then_completed,
    Scenario.FAILURE: failure,
    Scenario.RETRY: retry,
    Scenario.DUPLICATE_WEBHOOK: duplicate_webhook,
    Scenario.STALE_WEBHOOK: stale_webhook,
    Scenario.OUTAGE: outage,
    Scenario.TIMEOUT_AFTER_SUCCESS: timeout_after_success,
    Scenario.CANCEL: cancel,
    Scenario.NOT_CANCELLABLE_AFTER_PAID: not_cancellable_after_paid,
    Scenario.ERROR_CODES: error_codes,
    Scenario.RECONCILIATION: reconciliation,
}


REFUSALS: Final[dict[Scenario, Callable[[Kit, str], Awaitable[None]]]] = {
    Scenario.DUPLICATE_WEBHOOK: webhooks_refused,
    Scenario.STALE_WEBHOOK: webhooks_refused,
    Scenario.CANCEL: cancel_refused,
}


def waiver_holds(kit: Kit, scenario: Scenario, reason: str) -> None:
    """A scenario a rail says it cannot have (not skipped): what the rail claims instead must be true of it."""
    caps = kit.capabilities
    entry = kit.parts.config.registry.get(kit.harness.name)
    name = kit.harness.name
    if scenario in (Scenario.PENDING, Scenario.DUPLICATE_WEBHOOK, Scenario.STALE_WEBHOOK):
        # "nothing stays pending": then the rail answers every create definitively, and no status can follow it
        assert not caps.async_confirmation, f"{name} waives {scenario.value} ({reason}) but confirms asynchronously"
    elif scenario in (Scenario.OUTAGE, Scenario.TIMEOUT_AFTER_SUCCESS):
        # "nothing is called out": then a person reports every outcome and the worker never asks the rail
        assert not entry.polls_status, f"{name} waives {scenario.value} ({reason}) but the worker polls it"
        assert not caps.requires_signature, f"{name} waives {scenario.value} ({reason}) but signs transactions"
    else:
        pytest.fail(f"{name} waives {scenario.value} ({reason}): the kit has no claim to check for it")


@pytest.mark.parametrize("scenario", list(Scenario), ids=[s.value for s in Scenario])
async def test_provider_conformance(kit: Kit, scenario: Scenario, caplog: pytest.LogCaptureFixture) -> None:
    reason = kit.harness.unsupported(scenario)
    if reason is not None:
        assert scenario not in NEVER_WAIVED, f"{kit.harness.name} cannot waive {scenario.value}"
        caps = kit.capabilities
        ruled_out = {Scenario.CANCEL: not caps.supports_cancel, Scenario.DUPLICATE_WEBHOOK: not caps.supports_webhooks}
        ruled_out[Scenario.STALE_WEBHOOK] = ruled_out[Scenario.DUPLICATE_WEBHOOK]
        if ruled_out.get(scenario):  # a capability says so: the provider must refuse it properly
            await REFUSALS[scenario](kit, reason)
            return
        waiver_holds(kit, scenario, reason)
        return
    if scenario is Scenario.SECRETS_NOT_LOGGED:
        await secrets_not_logged(kit, caplog)
    else:
        await SCENARIOS[scenario](kit)


def test_every_harness_covers_every_scenario() -> None:
    """The kit's own rule: a scenario added to the list is run or explicitly refused for every rail."""
    assert set(SCENARIOS) | {Scenario.SECRETS_NOT_LOGGED} == set(Scenario)
    assert {"manual", "sandbox", "stellar", "stripe", "stripe_transfer"} <= set(HARNESSES)
    for harness in HARNESSES.values():
        assert harness.destination_type in DestinationType
